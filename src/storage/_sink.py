"""The bytewax sink that stores value objects in InfluxDB without losing any.

``write_batch`` converts items to points and writes them synchronously, in batches of
``batch_size``. Points that cannot go out now — the server is down, overloaded, or the batch is
still small and young (time batching) — are appended to the on-disk :class:`Spool` before
``write_batch`` returns, so a crash (bytewax does not call ``close()`` on one) loses nothing that
bytewax already considers delivered. The spool drains oldest first as soon as the server takes
writes again; meanwhile the dataflow goes on: a failed write only starts a backoff during which
points go straight to the spool, nobody sleeps.

Points the server rejects (HTTP 400) are isolated by halving the batch — rewriting the valid
ones is harmless, points are idempotent — and each goes to a dead-letter JSONL file in the spool
directory with the server's message.

The spool is bounded (``influx.spool_max_bytes``). When it is full the sink applies
backpressure instead of dropping: ``write_batch`` does not return until the server has taken
enough of the backlog to make room, retrying with the configured backoff, logging the wait and
raising the ``gridwatch_storage_blocked`` gauge. The dataflow pauses meanwhile; the collectors
go on journalling what the broker delivers, so nothing that was accepted is lost.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import methodcaller
from pathlib import Path
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition
from influxdb_client import Point
from prometheus_client import CollectorRegistry, Counter, Gauge

from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._points import MEASUREMENTS, field_lines, to_lines
from gridwatch.storage._spool import Spool
from gridwatch.storage._writer import (
    ParallelWriter,
    PointWriter,
    RejectedPointsError,
    RetryableWriteError,
    build_writer,
    describe,
    to_line_protocol,
)

__all__ = ["InfluxSink", "InfluxSinkPartition", "PipelinedPartition", "StorageMetrics",
           "StorageWriterError"]

log = logging.getLogger("gridwatch.storage")


def _utc_now() -> datetime:
    return datetime.now(UTC)

#: Whether a line is a point of the reading measurement (its name and the comma before its
#: tags: a reading always has its meter's tag)
_is_reading = methodcaller("startswith", "reading,")

#: Most requests spent finding the rejected points of one batch by halving it.
_ISOLATION_REQUESTS = 64


class StorageMetrics:
    """Prometheus metrics of the storage stage, on an injectable registry (tests do not collide;
    pass the global ``prometheus_client.REGISTRY`` to export them with the engine's)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.written = Counter(
            "gridwatch_storage_points_written", "Points the server accepted.", ["worker"],
            registry=r)
        self.readings_written = Counter(
            "gridwatch_storage_readings_written",
            "Meter readings (points of the reading measurement) the server accepted.",
            ["worker"], registry=r)
        self.rejected = Counter(
            "gridwatch_storage_points_rejected",
            "Points the server refused, kept in the dead-letter file.", ["worker"], registry=r)
        self.dropped = Counter(
            "gridwatch_storage_points_dropped",
            "Items not stored, by reason (spool_full, unsupported).", ["worker", "reason"],
            registry=r)
        self.failures = Counter(
            "gridwatch_storage_write_failures", "Writes that failed and will be retried.",
            ["worker"], registry=r)
        self.spool_bytes = Gauge(
            "gridwatch_storage_spool_bytes", "Bytes of points waiting in the on-disk spool.",
            ["worker"], registry=r)
        self.spool_points = Gauge(
            "gridwatch_storage_spool_points", "Points waiting in the on-disk spool.", ["worker"],
            registry=r)
        self.spilled = Counter(
            "gridwatch_storage_epoch_spooled_points",
            "Points the dataflow spooled itself, at an epoch's end or past a full queue, "
            "because the background writer had not written them yet (written from the spool "
            "soon after).", ["worker"], registry=r)
        self.blocked = Gauge(
            "gridwatch_storage_blocked",
            "1 while the spool is full and the sink holds the dataflow back until the server "
            "takes writes again.", ["worker"], registry=r)


class InfluxSinkPartition(StatelessSinkPartition[Any]):
    """One worker's writer, spool and dead letter. Plain counters (``written``,
    ``readings_written``, ``rejected``, ``dropped``, ``unsupported``) mirror the metrics for
    tests and summaries."""

    def __init__(self, settings: InfluxSettings, writer: PointWriter, spool: Spool,
                 deadletter: Path, metrics: StorageMetrics, *, worker: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], datetime] = _utc_now) -> None:
        self._settings = settings
        self._writer = writer
        self.spool = spool
        self.deadletter_path = deadletter
        self._metrics = metrics
        self._worker = str(worker)
        #: The metrics label of this partition, and its metrics.
        self.worker = self._worker
        self.metrics = metrics
        self.batch_size = settings.batch_size
        self._clock = clock
        self._wall_clock = wall_clock
        self._batch = settings.batch_size
        self._interval = settings.flush_interval_ms / 1000
        self._budget = settings.drain_budget_ms / 1000
        self._backoff_until = float("-inf")
        self._failures = 0
        self._last_write = float("-inf")
        # A spool left by an earlier run is due at once.
        self._held_since: float | None = float("-inf") if len(spool) else None
        self._full_since: float | None = None
        self._last_full_log = float("-inf")
        self._sleep = sleep
        #: Held by a thread that spills while another writes (:meth:`spill_rest`), and by
        #: the writing thread as it marks a chunk of its batch written or spooled.
        self.hold_lock = threading.Lock()
        #: the batch being written (``write_lines``, in chunks of ``batch_size``): how many of
        #: its lines are written or spooled so far, in order, and the spool segment of each
        #: chunk after them that a spill copied, by the chunk's first line
        self.current_done = 0
        self.copied: dict[int, int] = {}
        self.written = 0
        #: of them, points of the reading measurement
        self.readings_written = 0
        self.rejected = 0
        self.dropped = 0
        self.unsupported = 0
        self._gauges()
        if len(spool):
            log.warning("storage spool %s holds %d points from an earlier run: writing them "
                        "first", spool.directory, spool.points)

    # -- bytewax ---------------------------------------------------------------------------

    def write_batch(self, items: list[Any]) -> None:
        """Convert, write synchronously (or spool), and return."""
        self.write_lines(self.lines_of(items))

    # -- public helpers --------------------------------------------------------------------

    def write_lines(self, lines: list[str]) -> None:
        """Write line protocol synchronously (or spool it), and return."""
        now = self._clock()
        if not len(self.spool) and now >= self._backoff_until:
            self._write_direct(lines, now)
        else:
            self._hold(lines, now)
            self._drain(now, force=False)
        self._gauges()

    def close(self) -> None:
        """Try once more to empty the spool (within the drain budget), then close the writer;
        whatever is left stays on disk for the next start."""
        self.flush()
        self._writer.close()

    def spill(self, lines: list[str], first: int = 0) -> list[int] | None:
        """Append ``lines`` to the spool (fsynced) from another thread than the one writing,
        holding :attr:`hold_lock`, in segments of ``batch_size`` from line ``first`` on; the
        ids of the segments, or None (and nothing kept) when the spool has no room for all
        of them."""
        seqs: list[int] = []
        for start in range(first, len(lines), self._batch):
            seq = self.spool.add(lines[start:start + self._batch])
            if seq is None:
                self.spool.remove(seqs)
                return None
            seqs.append(seq)
        self._metrics.spilled.labels(self._worker).inc(len(lines) - first)
        self._gauges()
        return seqs

    def spill_rest(self, lines: list[str]) -> bool | None:
        """Holding :attr:`hold_lock`: spool a copy of what the batch being written (whose
        lines are ``lines``) has not written or spooled yet, chunk by chunk as the writer
        sends it, ahead of newer points. False when there is nothing to copy (all of it is
        done, or an earlier spill copied it already), None when the spool has no room."""
        if self.copied or self.current_done >= len(lines):
            return False
        seqs = self.spill(lines, self.current_done)
        if seqs is None:
            return None
        self.copied = dict(zip(range(self.current_done, len(lines), self._batch), seqs,
                               strict=True))
        return True

    def drop_copy(self) -> None:
        """Holding :attr:`hold_lock`: forget a copy :meth:`spill_rest` just made (its
        segments removed), when what it was to go ahead of could not be spooled."""
        self.spool.remove(list(self.copied.values()))
        self.copied = {}

    def finish_current(self) -> None:
        """After ``write_lines``, in the thread that writes, holding :attr:`hold_lock`: its
        batch is over. The segments a spill copied of chunks it did not write stay in the
        spool: they hold those points in their place."""
        self.current_done = 0
        self.copied = {}

    def poll(self) -> None:
        """Drain the spool if it is due (the backoff is over, or held points have waited
        ``flush_interval_ms``): what a timer calls when no new points come."""
        self._drain(self._clock(), force=False)
        self._gauges()

    def flush(self) -> bool:
        """Write held and spooled points now (unless in a backoff); True when none are left."""
        self._drain(self._clock(), force=True)
        self._gauges()
        return not len(self.spool)

    @property
    def backoff_remaining(self) -> float:
        """Seconds until the next write attempt after a failure (0 when not backing off)."""
        return max(0.0, self._backoff_until - self._clock())

    # -- internals -------------------------------------------------------------------------

    def lines_of(self, items: Sequence[Any]) -> list[str]:
        """The line protocol of the items (value objects, reading batches, points, lines);
        items it cannot store are counted."""
        lines: list[str] = []
        for item in items:
            obj = item
            if isinstance(obj, tuple) and len(obj) == 2 and type(obj[1]) in MEASUREMENTS:
                obj = obj[1]  # a (key, value) pair from a keyed step
            if isinstance(obj, str):
                lines.append(obj)
            elif _is_reading_batch(obj):
                # a reading batch of the dataflow (its fields: no reading objects made)
                lines += field_lines(obj.fields())
            elif isinstance(obj, Point):
                lines.extend(to_line_protocol([obj]))
            elif type(obj) in MEASUREMENTS:
                lines.extend(to_lines(obj))
            else:
                self.unsupported += 1
                self._metrics.dropped.labels(self._worker, "unsupported").inc()
                if self.unsupported == 1:
                    log.warning("storage sink got a %s it cannot store (counted in "
                                "gridwatch_storage_points_dropped_total{reason=\"unsupported\"})",
                                type(obj).__name__)
        return lines

    def _write_direct(self, lines: list[str], now: float) -> None:
        full = len(lines) - len(lines) % self._batch
        for start in range(0, full, self._batch):
            if not self._send(lines[start:start + self._batch]):
                self._hold(lines, now, start)
                return
            self._written(start, start + self._batch)
        if full == len(lines):
            return
        if now - self._last_write >= self._interval and self._send(lines[full:]):
            self._written(full, len(lines))
        else:  # failed, or time batching: wait, durably, for more or for the interval
            self._hold(lines, now, full)

    def _written(self, start: int, end: int) -> None:
        """The chunk of the batch being written from ``start`` to ``end`` is stored: a copy
        of it a spill made is not needed."""
        with self.hold_lock:
            self.current_done = end
            seq = self.copied.pop(start, None)
        if seq is not None:
            self.spool.remove([seq])

    def _hold(self, lines: list[str], now: float, first: int = 0) -> None:
        """Spool ``lines`` from ``first`` on (waiting for room if there is none)."""
        for start in range(first, len(lines), self._batch):
            chunk = lines[start:start + self._batch]
            while not self._append_held(chunk, start):
                if not len(self.spool) and self._clock() >= self._backoff_until \
                        and self._send(chunk):
                    self._written(start, start + len(chunk))
                    break  # larger than the whole spool: written directly instead
                self._wait_for_room()
            else:
                if self._held_since is None:
                    self._held_since = now
            if self._full_since is not None:
                log.warning("storage spool has room again after %.1fs; the dataflow goes on",
                            self._clock() - self._full_since)
                self._full_since = None
                self._metrics.blocked.labels(self._worker).set(0)

    def _append_held(self, chunk: list[str], start: int) -> bool:
        """Spool the chunk of the batch being written from line ``start``; False when there is
        no room. When another thread has already spilled a copy of it (:attr:`copied`),
        ahead of the newer points it spilled, the copy holds it in its place: appending it
        again, behind those newer points, would write older values over newer ones."""
        with self.hold_lock:
            if start in self.copied:
                return True
            if not self.spool.append(chunk):
                return False
            self.current_done = start + len(chunk)
            return True

    def _wait_for_room(self) -> None:
        """Backpressure: the spool is full, so hold the dataflow until the server has taken
        some of the backlog. Logs when it starts and every minute while it lasts."""
        now = self._clock()
        if self._full_since is None and self.spool.disk_full:
            self._full_since = now
            self._last_full_log = now
            self._metrics.blocked.labels(self._worker).set(1)
            log.error(
                "storage spool cannot be written, the disk is full: %s; %d points wait in the "
                "spool; the dataflow is held back until there is space again or %s accepts "
                "writes (readings keep being journalled meanwhile)",
                self.spool.disk_full, self.spool.points, self._settings.url)
        elif self._full_since is None:
            self._full_since = now
            self._last_full_log = now
            self._metrics.blocked.labels(self._worker).set(1)
            log.error(
                "storage spool FULL: %d points (%d bytes) wait in %s, the limit is "
                "influx.spool_max_bytes=%d; the dataflow is held back until %s accepts writes "
                "again (readings keep being journalled meanwhile)",
                self.spool.points, self.spool.size_bytes, self.spool.directory,
                self.spool.max_bytes, self._settings.url)
        elif now - self._last_full_log >= 60:
            self._last_full_log = now
            log.error("storage spool still FULL after %.0fs (%s); %s does not accept writes",
                      now - self._full_since, self.spool.disk_full or "spool_max_bytes",
                      self._settings.url)
        wait = min(max(self._backoff_until - now, 0.0), 5.0)
        if wait > 0:
            self._sleep(wait)
        self._drain(self._clock(), force=True)

    def _due(self, now: float, force: bool) -> bool:
        if not len(self.spool) or now < self._backoff_until:
            return False
        if force or self._failures or self.spool.points >= self._batch:
            return True
        return self._held_since is None or now - self._held_since >= self._interval

    def _drain(self, now: float, *, force: bool) -> None:
        deadline = now + self._budget
        while self._due(self._clock(), force):
            seqs, lines = self.spool.take(self._batch)
            if not self._send(lines):
                break
            self.spool.remove(seqs)
            if self._clock() >= deadline:
                break
        if not len(self.spool):
            self._held_since = None

    def _send(self, lines: list[str]) -> bool:
        """Write ``lines``; True when done (stored or dead-lettered), False to retry later."""
        try:
            self._writer.write(lines)
        except RetryableWriteError as exc:
            self._failed(exc)
            return False
        except RejectedPointsError as exc:
            if not self._isolate(lines, exc.message, [_ISOLATION_REQUESTS]):
                return False
        else:
            self._stored(lines)
        self._last_write = self._clock()
        return True

    def _isolate(self, lines: list[str], message: str, budget: list[int]) -> bool:
        """Find the rejected points by halving; the good ones are (re)written on the way.

        After ``_ISOLATION_REQUESTS`` requests for one batch, a still rejected part goes to the
        dead letter whole (its valid points are stored all the same: InfluxDB's partial write),
        so a batch full of bad points cannot hold the dataflow up."""
        if len(lines) == 1 or budget[0] <= 0:
            self._dead_letter(lines, message)
            return True
        mid = len(lines) // 2
        for half in (lines[:mid], lines[mid:]):
            budget[0] -= 1
            try:
                self._writer.write(half)
            except RejectedPointsError as exc:
                if not self._isolate(half, exc.message, budget):
                    return False
            except RetryableWriteError as exc:
                self._failed(exc)
                return False
            else:
                self._stored(half)
        return True

    def _stored(self, lines: list[str]) -> None:
        if self._failures:
            log.warning("storage: %s accepts writes again after %d failed attempts",
                        self._settings.url, self._failures)
        self._failures = 0
        self._backoff_until = float("-inf")
        n = len(lines)
        self.written += n
        self._metrics.written.labels(self._worker).inc(n)
        readings = sum(map(_is_reading, lines))
        self.readings_written += readings
        self._metrics.readings_written.labels(self._worker).inc(readings)

    def _failed(self, exc: RetryableWriteError) -> None:
        self._failures += 1
        self._metrics.failures.labels(self._worker).inc()
        initial = self._settings.retry_initial_ms / 1000
        cap = self._settings.retry_max_ms / 1000
        delay = min(cap, initial * 2 ** min(self._failures - 1, 30))
        if exc.retry_after is not None:
            delay = exc.retry_after
        self._backoff_until = self._clock() + delay
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "storage: write to %s failed (%s); points go to the spool %s, next "
                "attempt in %.1fs", self._settings.url, exc, self.spool.directory, delay)

    def _dead_letter(self, lines: list[str], message: str) -> None:
        at = self._wall_clock().isoformat().replace("+00:00", "Z")
        with open(self.deadletter_path, "a", encoding="utf-8") as fh:
            for line in lines:
                fh.write(json.dumps({"at": at, "error": message, "line": line},
                                    ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rejected += len(lines)
        self._metrics.rejected.labels(self._worker).inc(len(lines))
        log.warning("storage: %d point(s) rejected by the server (%s), kept in %s", len(lines),
                    message, self.deadletter_path)

    def _gauges(self) -> None:
        self._metrics.spool_bytes.labels(self._worker).set(self.spool.size_bytes)
        self._metrics.spool_points.labels(self._worker).set(self.spool.points)


class StorageWriterError(RuntimeError):
    """The background writer of a storage partition stopped on an unexpected error; the
    dataflow stops with it rather than go on without storing (nothing is lost: the epoch
    whose points were not yet written or spooled is not committed)."""


def _is_reading_batch(obj: Any) -> bool:
    """Whether ``obj`` is a reading batch of the dataflow (taken whole, by its fields)."""
    return hasattr(type(obj), "readings") and hasattr(obj, "fields")


def _points_in(items: list[Any]) -> int:
    """About how many points items of the sink make (a reading batch makes one a reading)."""
    n = 0
    for item in items:
        given = getattr(item, "given", None)
        n += (len(given) if given is not None
              else len(item.readings) if _is_reading_batch(item) else 1)
    return n


class PipelinedPartition(StatefulSinkPartition[Any, None]):
    """A storage partition whose writing runs in a background thread, so the dataflow computes
    while the previous batches are stored.

    ``write_batch`` hands the items to a queue of at most ``queue_points`` points (four
    requests' worth by default) and returns. ``snapshot()`` — which bytewax calls at the end
    of every epoch in which the partition got items, with or without recovery, before the
    epoch is committed — returns
    once every item handed over so far is written, spooled or dead-lettered: it waits up to
    ``snapshot_wait_s`` for the writer, and then spools (fsynced) what the writer has not
    written yet, so the dataflow does not wait for a database that is busy. So an epoch is only
    committed once its points are safe, and a crash redoes at most the epoch in flight (points
    are idempotent, so rewriting them is harmless). The spooled points are written from the
    spool, oldest first, before newer ones; the copy of each request of the batch the writer
    was sending is dropped from the spool when that request succeeds, so no point is written
    twice.

    Backpressure: bytewax cannot ask a sink to retry later. When the writer falls a whole
    queue behind (the server is slow), ``write_batch`` spools what the writer holds, as at an
    epoch's end, rather than wait for the database; only when the spool has no room either
    does it wait for the writer, logged and shown as ``gridwatch_storage_blocked``. While no
    points come, the writer polls the spool every ``poll_s`` seconds, so a backlog drains on
    its own when the server comes back; ``close()`` (a clean end) writes what is left, within
    the drain budget.
    """

    def __init__(self, core: InfluxSinkPartition, *, queue_points: int | None = None,
                 poll_s: float = 0.5, snapshot_wait_s: float | None = None) -> None:
        self.core = core
        self._max = queue_points if queue_points is not None else 4 * core.batch_size
        self._queued = 0  # points queued, about
        self._poll_s = poll_s
        self._wait_s = snapshot_wait_s
        self._cond = threading.Condition()
        #: (sequence number, items, their points) handed over and not yet taken by the writer
        self._queue: deque[tuple[int, list[Any], int]] = deque()
        self._handed = 0  # sequence number of the last items handed over
        self._safe = 0  # every item up to this number is written, spooled or dead-lettered
        #: what the writer is sending: (its last sequence number, items), and their lines
        self._current: tuple[int, list[Any]] | None = None
        self._current_lines: list[str] | None = None
        self._stop = False
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"gridwatch-storage-{core.worker}")
        self._thread.start()

    # -- bytewax ---------------------------------------------------------------------------
    def write_batch(self, values: list[Any]) -> None:
        if values:
            self._put(list(values))

    def snapshot(self) -> None:
        self.settle(self._wait_s)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        while self._thread.is_alive():
            self._thread.join(1.0)
            self._check()
        self._check()
        self.core.close()

    # -- helpers ---------------------------------------------------------------------------
    def wait(self) -> None:
        """Block until every item handed over so far is written, spooled or dead-lettered by
        the writer."""
        self.settle(None)

    def settle(self, within: float | None) -> None:
        """Return once every item handed over so far is written, spooled or dead-lettered:
        wait up to ``within`` seconds for the writer (None: as long as it takes), then spool
        the rest from this thread. If the spool has no room, wait for the writer after all."""
        deadline = None if within is None else time.monotonic() + within
        with self._cond:
            target = self._handed
            while self._safe < target:
                self._check()
                left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if left <= 0:
                    break
                self._cond.wait(left)
            self._check()
            if self._safe >= target:
                return
            queued = list(self._queue)
            self._queue.clear()
            self._queued = 0
            current, current_lines = self._current, self._current_lines
            self._cond.notify_all()  # room in the queue
        # Nothing new is handed over meanwhile: this is the thread that hands over.
        copy: list[str] = []
        if current is not None:
            copy = current_lines if current_lines is not None else self.core.lines_of(
                current[1])
        lines = self.core.lines_of([item for _, items, _ in queued for item in items])
        with self.core.hold_lock:
            with self._cond:
                writing = current is not None and self._current is current
            # What the batch in flight has not written or spooled yet first (nothing when it
            # is done, or an earlier spill copied it: then it is ahead of these), then the
            # newer ones.
            copied = self.core.spill_rest(copy) if writing else False
            spilled = self.core.spill(lines) if copied is not None and lines else []
            if copied is None or spilled is None:  # no room: the writer takes them after all
                if copied:
                    self.core.drop_copy()
                with self._cond:
                    self._queue.extendleft(reversed(queued))
                    self._queued += sum(points for _, _, points in queued)
                    self._cond.notify_all()
            else:
                with self._cond:
                    self._safe = max(self._safe, target)
        if self._safe < target:
            self._wait_for_writer()

    def _wait_for_writer(self) -> None:
        """Backpressure: the spool has no room, so the dataflow waits for the writer."""
        since = time.monotonic()
        self.core.metrics.blocked.labels(self.core.worker).set(1)
        log.warning("storage writer %s is behind and the spool has no room: the dataflow "
                    "waits for it", self.core.worker)
        self.settle(None)
        self.core.metrics.blocked.labels(self.core.worker).set(0)
        log.warning("storage writer %s caught up after %.1fs", self.core.worker,
                    time.monotonic() - since)

    def _put(self, items: list[Any]) -> None:
        points = _points_in(items)
        with self._cond:
            self._check()
            if not self._queue or self._queued + points <= self._max:
                self._append(items, points)
                return
        # The writer is a whole queue behind: spool what it has not written rather than wait
        # for the database (the dataflow waits only when the spool has no room either).
        self.settle(0.0)
        with self._cond:
            self._append(items, points)

    def _append(self, items: list[Any], points: int) -> None:
        """Queue ``items`` (holding the condition)."""
        self._handed += 1
        self._queue.append((self._handed, items, points))
        self._queued += points
        self._cond.notify_all()

    def _check(self) -> None:
        if self._error is not None:
            raise StorageWriterError(f"storage writer {self.core.worker} failed: "
                                     f"{self._error!r}") from self._error

    def _take(self) -> tuple[int, list[Any]] | None:
        """The next items to write, with what else is queued (fewer, larger writes), or None
        after ``poll_s`` without any (or at the end)."""
        with self._cond:
            if not self._queue and not self._stop:
                self._cond.wait(self._poll_s)
            if not self._queue:
                return None
            last, batch, points = self._queue.popleft()  # (the list _put made: ours)
            while self._queue and points + self._queue[0][2] <= self.core.batch_size:
                last, items, more = self._queue.popleft()
                batch += items
                points += more
            self._queued -= points
            self._current = (last, batch)
            self._current_lines = None
            self._cond.notify_all()  # room in the queue
            return self._current

    def _run(self) -> None:
        try:
            while True:
                if len(self.core.spool):
                    # What is spooled is older than anything queued: it goes first, and the
                    # queued batches then go out directly, not through the spool as well.
                    self.core.poll()
                taken = self._take()
                if taken is None:  # (nothing queued for poll_s: the spool is polled above)
                    if self._stop:
                        return
                    continue
                last, batch = taken
                lines = self.core.lines_of(batch)
                self._current_lines = lines
                self.core.write_lines(lines)
                # (the locks in the order a snapshot's spill takes them: a spill sees this
                # batch either in flight, with its marks, or over)
                with self.core.hold_lock, self._cond:
                    self.core.finish_current()
                    self._current = self._current_lines = None
                    self._safe = max(self._safe, last)
                    self._cond.notify_all()
        except BaseException as exc:  # surfaced in the worker by the next call
            with self._cond:
                self._error = exc
                self._cond.notify_all()
            log.exception("storage writer %s stopped", self.core.worker)


class InfluxSink(FixedPartitionedSink[Any, None]):
    """Stores readings, scores, events, load profiles and alert transitions (mixed, in any
    order; ``influxdb_client.Point`` and line-protocol strings pass through; a
    ``ReadingBatch`` of the dataflow is taken whole).

    One partition per process, ``p<process_id>``, listed only by that process: items keyed
    with :attr:`part_key` stay in the process that made them, and its spool
    ``<spool_dir>/influx/w<process_id>`` and dead-letter file
    ``<spool_dir>/influx-deadletter[.w<process_id>].jsonl`` are on that machine's disk. The
    partition (:class:`PipelinedPartition`) writes in the background and waits for its writer
    at each snapshot. ``writer_factory`` replaces the writer ``influx.api`` selects.
    """

    #: The dataflow may hand over a reading batch whole.
    takes_batches = True

    def __init__(self, settings: InfluxSettings, *,
                 writer_factory: Callable[[InfluxSettings], PointWriter] = build_writer,
                 metrics: StorageMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = _utc_now,
                 process_id: int = 0, processes: int = 1) -> None:
        self._settings = settings
        self._factory = writer_factory
        self.metrics = metrics if metrics is not None else StorageMetrics()
        self._clock = clock
        self._wall_clock = wall_clock
        self.process_id = process_id
        self.processes = processes
        #: The key to give items so that they stay in this process.
        self.part_key = f"p{process_id:04d}"
        #: The partitions bytewax built in this process (for summaries and tests).
        self.parts: list[PipelinedPartition] = []

    # -- bytewax ---------------------------------------------------------------------------
    def list_parts(self) -> list[str]:
        return [self.part_key]

    def part_fn(self, item_key: str) -> int:
        # Partitions p0000..p<n-1>, one per process, in order: the key's own.
        return int(item_key[1:])

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> PipelinedPartition:
        part = PipelinedPartition(self.build(step_id, int(for_part[1:]), self.processes),
                                  snapshot_wait_s=self._settings.snapshot_wait_ms / 1000)
        self.parts.append(part)
        return part

    # -- direct use ------------------------------------------------------------------------
    def build(self, step_id: str, worker_index: int, worker_count: int) -> InfluxSinkPartition:
        """The synchronous core of partition ``worker_index`` of ``worker_count``: writes in
        ``write_batch`` itself (tools and tests use it directly)."""
        s = self._settings
        spool = Spool(s.spool_dir / "influx" / f"w{worker_index}", s.spool_max_bytes,
                      fsync=s.spool_fsync)
        name = ("influx-deadletter.jsonl" if worker_count == 1
                else f"influx-deadletter.w{worker_index}.jsonl")
        log.info("storage: writing to %s", describe(s))
        if worker_index == 0:
            _adopt_orphans(spool, s.spool_dir / "influx", worker_count, s.batch_size)
        writer = ParallelWriter.of(s, self._factory)
        return InfluxSinkPartition(s, writer, spool, s.spool_dir / name, self.metrics,
                                   worker=worker_index, clock=self._clock,
                                   wall_clock=self._wall_clock)


def _adopt_orphans(spool: Spool, root: Path, worker_count: int, batch: int) -> None:
    """Move the spools of workers that no longer exist (the dataflow restarted with fewer)
    into worker 0's, so their points are written too."""
    for directory in sorted(root.glob("w*")):
        suffix = directory.name[1:]
        if not suffix.isdigit() or int(suffix) < worker_count or directory == spool.directory:
            continue
        orphan = Spool(directory, 2**63, fsync=False)
        moved = 0
        while len(orphan):
            seqs, lines = orphan.take(batch)
            if not spool.append(lines):
                log.error("storage: spool %s is full; %d points of %s stay there until it has "
                          "room", spool.directory, orphan.points, directory)
                break
            orphan.remove(seqs)
            moved += len(lines)
        if moved:
            log.warning("storage: took %d spooled points over from %s (a worker that no longer "
                        "exists)", moved, directory)
