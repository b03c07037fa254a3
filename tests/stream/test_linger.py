"""The journal source in follow mode holds a trickle of records for a fuller batch, at most
``linger`` long, and its snapshot never passes a record it has not handed on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridwatch import Reading
from gridwatch.ingest import JournalSource
from gridwatch.ingest._journal import Journal, encode_item

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _append(directory, first: int, n: int) -> None:
    with Journal(directory, 0) as j:
        j.append([encode_item(Reading.model_validate(
            {"meter_id": f"m{i}", "ts": T0 + timedelta(minutes=15 * i), "kw": 1.0},
            context={"now": datetime(2100, 1, 1, tzinfo=UTC)})) for i in range(first, first + n)])


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_trickle_waits_for_a_fuller_batch_at_most_linger(tmp_path):
    _append(tmp_path, 0, 3)
    clock = _Clock()
    src = JournalSource(tmp_path, partitions=[0], batch_size=10,
                        linger=timedelta(milliseconds=100), clock=clock)
    part = src.build_part("in", src.list_parts()[0], None)
    assert part.next_batch() == []  # 3 of 10: hold them
    assert part.snapshot() == 0  # nothing handed on: a resume reads them again
    assert part.next_awake() == clock.now + timedelta(milliseconds=100)
    _append(tmp_path, 3, 2)
    clock.now += timedelta(milliseconds=60)
    assert part.next_batch() == []  # 5 of 10, 60 ms: still holding
    clock.now += timedelta(milliseconds=40)
    got = part.next_batch()  # linger over: everything read so far, in order
    assert [r.meter_id for r in got] == [f"m{i}" for i in range(5)]
    assert part.snapshot() == 5
    assert part.next_batch() == []
    assert part.next_awake() == clock.now + src.poll_interval  # idle: the ordinary poll


def test_a_full_batch_goes_at_once_and_no_linger_is_the_old_behaviour(tmp_path):
    _append(tmp_path, 0, 25)
    clock = _Clock()
    src = JournalSource(tmp_path, partitions=[0], batch_size=10,
                        linger=timedelta(seconds=5), clock=clock)
    part = src.build_part("in", src.list_parts()[0], None)
    assert len(part.next_batch()) == 10
    assert len(part.next_batch()) == 10
    assert part.next_batch() == []  # the last 5 wait
    clock.now += timedelta(seconds=5)
    assert [r.meter_id for r in part.next_batch()] == [f"m{i}" for i in range(20, 25)]
    assert part.snapshot() == 25

    plain = JournalSource(tmp_path, partitions=[0], batch_size=10)
    p2 = plain.build_part("in", plain.list_parts()[0], 22)
    assert [r.meter_id for r in p2.next_batch()] == ["m22", "m23", "m24"]


def test_replay_never_lingers(tmp_path):
    _append(tmp_path, 0, 3)
    src = JournalSource(tmp_path, partitions=[0], follow=False, batch_size=10,
                        linger=timedelta(seconds=5))
    part = src.build_part("in", src.list_parts()[0], None)
    assert len(part.next_batch()) == 3
    with pytest.raises(StopIteration):  # a replay ends at the end of the journal
        part.next_batch()
