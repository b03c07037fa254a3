"""When the weekly digest is due: fixed clocks in a zone without DST (Asia/Shanghai) and in
zones with it (Europe/Berlin, America/New_York), and the due-time invariants over any time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.web._digest_schedule import last_due, next_due

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("now", "last", "nxt"), [
    # Monday 08:00 in Shanghai is Monday 00:00 UTC.
    (utc(2026, 11, 30, 0, 0), utc(2026, 11, 30, 0, 0), utc(2026, 12, 7, 0, 0)),
    (utc(2026, 11, 29, 23, 59, 59), utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0)),
    (utc(2026, 12, 3, 12, 0), utc(2026, 11, 30, 0, 0), utc(2026, 12, 7, 0, 0)),
    # Sunday 20:00 UTC is already Monday 04:00 in Shanghai, before the hour
    (utc(2026, 11, 29, 20, 0), utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0)),
])
def test_monday_eight_in_shanghai(now: datetime, last: datetime, nxt: datetime) -> None:
    assert last_due(now, 0, 8, SHANGHAI) == last
    assert next_due(now, 0, 8, SHANGHAI) == nxt
    assert last_due(now, 0, 8, SHANGHAI).tzinfo is SHANGHAI


def test_other_weekday_and_hour() -> None:
    # Friday 17:00 in Shanghai = Friday 09:00 UTC
    assert last_due(utc(2026, 12, 1, 0, 0), 4, 17, SHANGHAI) == utc(2026, 11, 27, 9, 0)
    assert next_due(utc(2026, 11, 27, 9, 0), 4, 17, SHANGHAI) == utc(2026, 12, 4, 9, 0)


def test_berlin_keeps_the_local_hour_across_dst() -> None:
    # Summer time ends on Sunday 25 October 2026: Monday 08:00 is 06:00 UTC, then 07:00 UTC.
    before = last_due(utc(2026, 10, 20, 0, 0), 0, 8, BERLIN)
    after = next_due(before, 0, 8, BERLIN)
    assert before == utc(2026, 10, 19, 6, 0)
    assert after == utc(2026, 10, 26, 7, 0)
    assert after.astimezone(UTC) - before.astimezone(UTC) == 169 * H
    # and it starts on Sunday 29 March 2026: 07:00 UTC, then 06:00 UTC
    spring = last_due(utc(2026, 3, 24, 0, 0), 0, 8, BERLIN)
    assert spring == utc(2026, 3, 23, 7, 0)
    assert next_due(spring, 0, 8, BERLIN) == utc(2026, 3, 30, 6, 0)
    assert last_due(utc(2026, 3, 30, 5, 59), 0, 8, BERLIN) == spring


def test_an_hour_that_does_not_exist_that_day_is_still_one_moment() -> None:
    # Sunday 8 March 2026, New York: 02:00-03:00 does not exist; 02:00 reads as EST (07:00 UTC)
    due = last_due(utc(2026, 3, 8, 7, 30), 6, 2, NEW_YORK)
    assert due == utc(2026, 3, 8, 7, 0)
    assert last_due(utc(2026, 3, 8, 6, 59), 6, 2, NEW_YORK) == utc(2026, 3, 1, 7, 0)
    assert next_due(due, 6, 2, NEW_YORK) == utc(2026, 3, 15, 6, 0)


@settings(max_examples=300, deadline=None)
@given(now=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31),
                        timezones=st.just(UTC)),
       weekday=st.integers(0, 6), hour=st.integers(4, 23),
       zone=st.sampled_from([SHANGHAI, BERLIN, NEW_YORK, ZoneInfo("Australia/Sydney")]))
def test_due_moments_bracket_now(now: datetime, weekday: int, hour: int, zone: ZoneInfo
                                 ) -> None:
    """(Hours from 04:00 on exist every day in these zones.)"""
    last, nxt = last_due(now, weekday, hour, zone), next_due(now, weekday, hour, zone)
    assert last <= now < nxt
    assert nxt.astimezone(UTC) - last.astimezone(UTC) in (167 * H, 168 * H, 169 * H)
    for due in (last, nxt):
        local = due.astimezone(zone)
        assert (local.weekday(), local.hour, local.minute, local.second) == (weekday, hour, 0, 0)
    # every moment of one due week maps to the same due moment
    assert last_due(last, weekday, hour, zone) == last
    end = nxt.astimezone(UTC) - timedelta(microseconds=1)
    assert last_due(end, weekday, hour, zone) == last
