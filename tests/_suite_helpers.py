"""Helpers the whole suite shares (imported by name: ``from _suite_helpers import wait_until``;
``tests/`` is on the import path through ``pythonpath`` in ``pyproject.toml``).

Waiting in tests: never a fixed sleep that hopes something has happened by then. Wait for the
condition with a deadline (:func:`wait_until`); where a test must show that something does *not*
happen, watch the condition for the whole period and fail the moment it breaks (:func:`holds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["holds", "wait_until"]

T = TypeVar("T")


def wait_until(pred: Callable[[], T], timeout: float, what: str,
               alive: Callable[[], object] | None = None,
               detail: Callable[[], object] | None = None, *, every: float = 0.1) -> T:
    """Poll ``pred`` until it returns something true and return that.

    ``alive`` is called between polls and should raise when what the test waits on has died
    (an engine process); on a timeout the error names ``what`` and, with ``detail``, what there
    was instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        if alive is not None:
            alive()
        time.sleep(every)


def holds(pred: Callable[[], object], seconds: float, what: str,
          alive: Callable[[], object] | None = None, *, every: float = 0.1) -> None:
    """Check ``pred`` over ``seconds`` (room for a wrong message, a double, a crash to show
    up), failing as soon as it is false."""
    deadline = time.monotonic() + seconds
    while True:
        if not pred():
            raise AssertionError(f"no longer true: {what}")
        if alive is not None:
            alive()
        if time.monotonic() >= deadline:
            return
        time.sleep(every)
