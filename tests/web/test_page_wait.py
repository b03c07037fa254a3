"""``page_wait``, the browser tests' wait: it reads again only across a page load (a stale
node, chromium's error for a node of a document being torn down), never past another error,
and still times out. Its conditions are plain functions here: no browser is needed."""

from __future__ import annotations

from typing import Any

import pytest
from _web_helpers import page_wait
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)

TORN_DOWN = ('unknown error: unhandled inspector error: {"code":-32000,"message":"Node with '
             'given id does not belong to the document"}')


def _answers(*answers: Any) -> Any:
    """A condition giving ``answers`` in turn (raising those that are exceptions)."""
    left = list(answers)

    def condition(_driver: object) -> Any:
        got = left.pop(0)
        if isinstance(got, BaseException):
            raise got
        return got
    return condition


def test_it_reads_again_across_a_page_load() -> None:
    wait = page_wait(object(), timeout=5)
    wait._poll = 0.01
    got = wait.until(_answers(WebDriverException(TORN_DOWN),
                              StaleElementReferenceException("stale"), "the new page"))
    assert got == "the new page"


def test_any_other_error_ends_the_wait_at_once() -> None:
    wait = page_wait(object(), timeout=5)
    wait._poll = 0.01
    with pytest.raises(WebDriverException, match="invalid selector"):
        wait.until(_answers(WebDriverException("invalid selector"), "never read"))


def test_a_condition_never_met_times_out() -> None:
    wait = page_wait(object(), timeout=0.2)
    wait._poll = 0.01
    with pytest.raises(TimeoutException):
        wait.until(lambda _d: False)
