"""The pipelined storage partition as a state machine: batches handed over, epochs ended
while the database is slow or failing, in any order. Whatever the interleaving, every point
handed over is written or spooled when a snapshot returns, and the database ends with each
point's newest value, each point written once.

The database here is an in-memory writer that takes one request at a time when the test lets
it (or fails it): the partition's own logic under every interleaving, which a real server
cannot be driven through. The same paths against InfluxDB are in ``test_sink.py``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule
from prometheus_client import CollectorRegistry

from gridwatch.storage import (
    InfluxSettings,
    InfluxSink,
    PipelinedPartition,
    RetryableWriteError,
    StorageMetrics,
)


class SlowDatabase:
    """A writer whose requests each wait for a permit; ``fail_next`` fails the next one."""

    def __init__(self) -> None:
        self.lines: list[str] = []  # every line written, in the order written
        self.permits = threading.Semaphore(0)
        self.fail_next = False
        self.failed = 0

    def write(self, points) -> None:
        assert self.permits.acquire(timeout=30), "no permit for a request in 30 s"
        if self.fail_next:
            self.fail_next = False
            self.failed += 1
            raise RetryableWriteError("the server is busy")
        self.lines.extend(points)

    def close(self) -> None:
        pass


def line(key: int, value: int) -> str:
    return f"reading,meter_id=m{key} kw={value} {1_700_000_000 + key}000000000"


class PipelinedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="gridwatch-pipelined-"))
        self.db = SlowDatabase()
        s = InfluxSettings(api="v1", url="http://127.0.0.1:9", spool_dir=self.dir,
                           spool_fsync=False, batch_size=2, write_requests=1, retry_initial_ms=0,
                           retry_max_ms=0, drain_budget_ms=50)
        sink = InfluxSink(s, writer_factory=lambda _: self.db,
                          metrics=StorageMetrics(CollectorRegistry()))
        # (a short queue: a hand-over beyond it spools what the writer holds, as an epoch's
        # end does)
        self.part = PipelinedPartition(sink.build("s", 0, 1), queue_points=2, poll_s=0.01,
                                       snapshot_wait_s=0.0)
        self.handed: list[str] = []
        self.newest: dict[int, str] = {}
        self.value = 0

    @rule(keys=st.lists(st.integers(0, 2), min_size=1, max_size=4), pause=st.booleans())
    def hand_over(self, keys: list[int], pause: bool) -> None:
        """A batch of newer values; with ``pause``, time for the writer to take what is
        queued (and wait in its request for a permit)."""
        items = []
        for key in keys:
            self.value += 1
            items.append(line(key, self.value))
            self.newest[key] = items[-1]
        self.handed += items
        self.part.write_batch(items)
        if pause:
            time.sleep(0.01)

    @rule(n=st.integers(1, 3), fail=st.booleans())
    def serve(self, n: int, fail: bool) -> None:
        """The database answers ``n`` requests; with ``fail``, the first with an error."""
        self.db.fail_next = fail
        for _ in range(n):
            self.db.permits.release()
        time.sleep(0.005)

    @rule()
    def end_an_epoch(self) -> None:
        self.part.snapshot()
        # the spool first: a line leaves it only once written
        _, spooled = self.part.core.spool.take(10**9)
        safe = set(spooled) | set(self.db.lines)
        missing = [x for x in self.handed if x not in safe]
        assert not missing, f"{len(missing)} points neither written nor spooled: {missing[:3]}"

    def teardown(self) -> None:
        try:
            self.db.fail_next = False
            for _ in range(10_000):
                self.db.permits.release()
            self.part.close()
            deadline = time.monotonic() + 10
            while len(self.part.core.spool) and time.monotonic() < deadline:
                self.part.core.flush()
            assert not len(self.part.core.spool)
            last: dict[int, str] = {}
            for x in self.db.lines:
                last[int(x.split(",meter_id=m")[1].split(" ")[0])] = x
            assert last == self.newest  # each point's newest value, written last
            # every point once: a spilled copy of a request that succeeds is dropped, one that
            # fails is not spooled again (the database here stores nothing of a failed request)
            assert sorted(self.db.lines) == sorted(self.handed)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


PipelinedMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestPipelinedPartition = PipelinedMachine.TestCase
