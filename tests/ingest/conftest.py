"""Fixtures of the ingest tests; the helpers live in ``_ingest_helpers`` (importable by name:
this folder is on ``pythonpath`` in pyproject.toml, since tests run with
``--import-mode=importlib``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
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
