"""Fixtures of the ingest tests; the helpers live in ``_ingest_helpers`` (importable because
this folder is put on ``sys.path``: tests run with ``--import-mode=importlib``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _ingest_helpers import Publisher


@pytest.fixture
def publisher_factory() -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(port: int, **kw: Any) -> Publisher:
        p = Publisher(port, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
