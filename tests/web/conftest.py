"""Fixtures of the workspace tests; the helpers they share are in ``_web_helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _web_helpers import Web, build_web, chromium, event

from gridwatch.web import _accounts as acc


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with test-sized cost (the default takes 64 MiB and most of a second on a busy
    machine per hash); what is tested is the flow, not the cost."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(acc, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = build_web(tmp_path)
    # One open alert per cell and customer; m1's is also a notice to C1 (industrial).
    w.seed(event("m1"), event("r1", "outage", severity="critical"),
           event("m3"), event("m3", "outage", severity="critical"))
    yield w
    for c in w.clients:
        c.close()
    w.router.close()
    w.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """A headless chromium of its own for the test (``_web_helpers.chromium``)."""
    driver = chromium(tmp_path / "chromium")
    yield driver
    driver.quit()
