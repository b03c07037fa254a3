"""The store's time format: every aware instant goes to text and back unchanged, text order is
time order, and text that is not a stored time is refused (hypothesis). A delivery's claim is
committed without a disk sync; every other write is synced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from _alerts_helpers import Clock, Recorder, event, make_router
from hypothesis import given
from hypothesis import strategies as s

from gridwatch.alerts._store import parse_ts, ts

INSTANTS = s.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=s.sampled_from([UTC, timezone(timedelta(hours=8)),
                                                 timezone(timedelta(hours=-5, minutes=-30))]))


@given(INSTANTS)
def test_a_stored_time_comes_back_as_the_same_instant(t: datetime) -> None:
    back = parse_ts(ts(t))
    assert back == t and back is not None and back.utcoffset() == timedelta(0)


@given(INSTANTS, INSTANTS)
def test_text_order_is_time_order(a: datetime, b: datetime) -> None:
    assert (ts(a) < ts(b)) == (a < b)


@pytest.mark.parametrize("text", ["2026-05-04T02:00:00Z", "2026-05-04T02:00:00.000000",
                                  "2026-05-04T02:00:00.000000+00:00", "2026-13-04T02:00:00.000000Z",
                                  "yesterday"])
def test_text_that_is_not_a_stored_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ts(text)


def test_none_stays_none() -> None:
    assert parse_ts(None) is None


def test_an_unsynced_claim_leaves_the_connection_synced(tmp_path: Path) -> None:
    clock, rec = Clock(), Recorder()
    router = make_router(db=tmp_path / "alerts.sqlite", clock=clock, notifiers={"mqtt": rec})
    full = router.db.execute("PRAGMA synchronous").fetchone()[0]
    assert full == 2  # FULL
    router.submit(event("r1", "outage"))
    clock.advance(31)
    router.tick()
    assert router.deliver_pending() == 1 and len(rec.sent) == 1
    assert router.db.execute("PRAGMA synchronous").fetchone()[0] == full
    with pytest.raises(RuntimeError), router._tx(synced=False):
        raise RuntimeError("a claim that fails")
    assert router.db.execute("PRAGMA synchronous").fetchone()[0] == full
    router.close()
