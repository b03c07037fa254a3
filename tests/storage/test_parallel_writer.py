"""A batch written as several requests at once (``influx.write_requests``): every part is
written, and the batch's outcome is what one writer would report, so the sink's spool and
dead letter work as with one request."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from _storage_helpers import influxql, reading
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import _services
from gridwatch.storage import (
    InfluxSettings,
    InfluxSink,
    RejectedPointsError,
    RetryableWriteError,
    V1Writer,
)
from gridwatch.storage._writer import InfluxAuthError, ParallelWriter


class _Recording:
    """A writer that keeps what it was given, from which thread, and fails as told."""

    def __init__(self, error: BaseException | None = None,
                 barrier: threading.Barrier | None = None) -> None:
        self.calls: list[list[Any]] = []
        self.threads: set[str] = set()
        self.error = error
        self.barrier = barrier
        self.closed = False

    def write(self, points: Sequence[Any]) -> None:
        self.calls.append(list(points))
        self.threads.add(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # every part is in flight at the same time
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 5000), writers=st.integers(1, 4), min_part=st.integers(1, 800))
def test_every_point_is_written_once_in_order_over_the_parts(n: int, writers: int,
                                                             min_part: int) -> None:
    ws = [_Recording() for _ in range(writers)]
    pw = ParallelWriter(ws, min_part=min_part)
    points = [f"p{i}" for i in range(n)]
    pw.write(points)
    pw.close()
    parts = [c for w in ws for c in w.calls]
    assert [p for w in ws for c in w.calls for p in c] == points
    expected_parts = max(1, min(writers, n // min_part))
    assert len(parts) == expected_parts
    if expected_parts > 1:
        assert all(len(c) >= min_part for c in parts)
    assert all(w.closed for w in ws)


def test_the_parts_are_in_flight_at_the_same_time() -> None:
    barrier = threading.Barrier(3)
    ws = [_Recording(barrier=barrier) for _ in range(3)]
    pw = ParallelWriter(ws, min_part=10)
    pw.write([f"p{i}" for i in range(30)])  # would wait out the barrier if one at a time
    pw.close()
    assert [len(w.calls[0]) for w in ws] == [10, 10, 10]
    assert len({name for w in ws for name in w.threads}) == 3


def test_a_part_that_cannot_reach_the_server_makes_the_batch_retryable() -> None:
    ws = [_Recording(RejectedPointsError("bad line", ["x"])),
          _Recording(RetryableWriteError("HTTP 503", retry_after=2.0)),
          _Recording(RetryableWriteError("HTTP 429", retry_after=7.0))]
    pw = ParallelWriter(ws, min_part=1)
    with pytest.raises(RetryableWriteError) as info:
        pw.write(["a", "b", "c"])
    assert info.value.retry_after == 7.0  # the longest wait any part was asked for
    assert all(len(w.calls) == 1 for w in ws)  # every part was tried


def test_refused_credentials_stay_an_auth_error() -> None:
    ws = [_Recording(), _Recording(InfluxAuthError("HTTP 401: unauthorized"))]
    with pytest.raises(InfluxAuthError):
        ParallelWriter(ws, min_part=1).write(["a", "b"])


def test_a_rejected_part_rejects_the_whole_batch_with_the_servers_message() -> None:
    ws = [_Recording(), _Recording(RejectedPointsError("field type conflict", ["b"]))]
    points = ["a", "b"]
    with pytest.raises(RejectedPointsError) as info:
        ParallelWriter(ws, min_part=1).write(points)
    assert info.value.message == "field type conflict"
    assert info.value.points == points  # the sink isolates the bad points in all of them


def test_an_unexpected_error_is_raised_after_every_part_is_answered() -> None:
    ws = [_Recording(ValueError("bug")), _Recording()]
    with pytest.raises(ValueError, match="bug"):
        ParallelWriter(ws, min_part=1).write(["a", "b"])
    assert ws[1].calls == [["b"]]


def test_one_request_writes_through_the_plain_writer() -> None:
    s = InfluxSettings(api="v1", write_requests=1)
    assert isinstance(ParallelWriter.of(s, V1Writer), V1Writer)
    two = ParallelWriter.of(s.model_copy(update={"write_requests": 2}), V1Writer)
    assert isinstance(two, ParallelWriter)
    two.close()
    with pytest.raises(ValueError):
        InfluxSettings(write_requests=0)


class _Sizes(V1Writer):
    """The v1 writer (real requests), keeping the size of each request it sends."""

    sent: ClassVar[list[int]] = []

    def write(self, points: Sequence[Any]) -> None:
        type(self).sent.append(len(points))
        super().write(points)


def test_the_sink_stores_a_large_batch_in_parallel_parts_and_isolates_a_bad_point(
        v1_settings: Any, influxdb: _services.Service) -> None:
    """On InfluxDB 1.6.7: 3,000 readings and a bad line in one batch go out as three requests
    at once; the point the server refuses, in the last part, is dead-lettered alone."""
    s = v1_settings(batch_size=5000, write_requests=3)
    _Sizes.sent = []
    part = InfluxSink(s, writer_factory=_Sizes).build("s", 0, 1)
    part.write_batch([reading("m-1", 0)])  # kw is a float field from now on
    bad = 'reading,meter_id=m-bad kw="high" 1714521600000000000'
    batch: list[Any] = [reading(f"m-{i % 50}", 1 + i // 50) for i in range(3000)]
    batch.insert(2900, bad)
    part.write_batch(batch)
    assert part.flush()
    part.close()
    # the single reading alone, then the batch as three parts (then the halving's requests)
    assert _Sizes.sent[0] == 1 and sorted(_Sizes.sent[1:4]) == [1000, 1000, 1001]
    rows = influxql(influxdb, s.database, "SELECT COUNT(kw) FROM reading")
    assert rows[0]["count"] == 3001
    assert part.written == 3001 and part.rejected == 1
    assert part.readings_written == 3001  # (the refused reading is not counted)
    [record] = [json.loads(x) for x in part.deadletter_path.read_text().splitlines()]
    assert record["line"] == bad and "field type conflict" in record["error"]
