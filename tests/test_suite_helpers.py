"""The suite's waiting helpers: they return as soon as the condition holds and fail naming it."""

from __future__ import annotations

import time

import pytest
from _suite_helpers import holds, wait_until


def test_wait_until_returns_the_first_true_value() -> None:
    calls = iter([0, None, [], "ready"])
    assert wait_until(lambda: next(calls), 5, "ready", every=0.001) == "ready"


def test_wait_until_fails_naming_what_and_what_there_was() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the answer: got 41"):
        wait_until(lambda: False, 0.05, "the answer", every=0.01, detail=lambda: "got 41")


def test_wait_until_stops_when_what_it_waits_on_dies() -> None:
    def dead() -> None:
        raise AssertionError("engine exited with 1")

    with pytest.raises(AssertionError, match="engine exited"):
        wait_until(lambda: False, 5, "never", every=0.01, alive=dead)


def test_holds_fails_the_moment_the_condition_breaks() -> None:
    start = time.monotonic()
    values = iter([True, True, False])
    with pytest.raises(AssertionError, match="no longer true: quiet"):
        holds(lambda: next(values), 10, "quiet", every=0.001)
    assert time.monotonic() - start < 5  # not after the whole period
    holds(lambda: True, 0.02, "always", every=0.005)


def test_holds_stops_when_what_it_watches_dies() -> None:
    def dead() -> None:
        raise AssertionError("engine exited with 1")

    with pytest.raises(AssertionError, match="engine exited"):
        holds(lambda: True, 5, "quiet", dead, every=0.01)
