"""``gridwatch replay --processes N``: one replay run by N local processes.

**A file** (CSV or JSONL): the processes run apart, each a dataflow of its own, not a
cluster. Each reads the whole file but keeps only its share of the lines: the meters whose
watch key (grid cell, else hash shard) falls to it (:class:`gridwatch.ingest.FileShare`), so
a cell's meters are all in one process and every event of a meter or a cell is the one a
single process raises. Each hands its meters' finished days and theft candidates, instead
of to a segment stage of its own, to a file with an index of where each day's records are;
when all have ended, the parent runs the one segment stage
(:func:`gridwatch.stream.build_segment_flow`: segmentation per customer class, candidates
judged per segment) over every process's days, a day's records at a time, in the order of
the days they describe (then by meter, a candidate before its meter's day). That order
does not depend on the number of processes: a replay on 2 processes writes the same events
as on 3.

**A journal directory**: the processes form a bytewax cluster on loopback addresses, and
each reads every N-th partition; a meter's readings may be in several partitions, and the
cluster brings them to their cell's process. Only the event-time summaries and the finished
meter-days cross between the processes; the segmenter of a customer class learns the
meter-days in the order they arrive, which may differ from run to run, as in any cluster.

Either way each process keeps its dead letters in a partition of its own and writes its
events to a file of its own (``<alerts>.w<index>.jsonl``); when all have ended, the files are
merged into the one asked for, sorted by the events' times, and the counts each process sent
back through a pipe are added up.

What differs from one process: a single process's segment stage learns the meter-days in the
order its dataflow finishes them, not the order of the days, so the segments it finds and
the events a segment judges (possible theft, daily level shifts) may differ a little; every
other event is a function of its meter's or cell's readings alone, and the same.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from gridwatch._settings import Settings
from gridwatch.models._segment import _day_of
from gridwatch.stream._logic import TheftCandidate

if TYPE_CHECKING:
    from gridwatch._engine import RunStats

__all__ = ["ReplayFailed", "replay_cluster"]

log = logging.getLogger("gridwatch.replay")

#: how often the parent looks at its processes
_POLL_S = 0.2
#: how long the others may take to end on their own after one failed
_SETTLE_S = 1.0
#: how long they get to end once told to, before they are killed
_GRACE_S = 5.0


class ReplayFailed(RuntimeError):
    """A process of a parallel replay failed; the others were stopped."""


class _Shared:
    """A process's progress, in memory its parent reads: the file's lines it has consumed
    and the time of its last reading (epoch seconds)."""

    def __init__(self, ctx: Any) -> None:
        self.line = ctx.Value("q", 0, lock=False)
        self.at = ctx.Value("d", 0.0, lock=False)

    def __call__(self, line: int, ts: datetime) -> None:
        self.line.value = line
        self.at.value = ts.timestamp()


def _process(settings: Settings, path: Path, influx: bool, alerts_out: Path | None,
             index: int, processes: int, addresses: list[str], counts: Connection,
             shared: _Shared, days: Path | None = None) -> None:
    """Process ``index`` of ``processes`` of the replay (the target of a forked or spawned
    process): apart, handing its finished days to files in ``days``, or, without ``days``,
    in the cluster of ``addresses``. Its counts go back through ``counts``."""
    from gridwatch._engine import replay

    if days is None:
        stats = replay(settings, path, influx=influx, alerts_out=alerts_out, entry_point=True,
                       cluster=(index, addresses), progress=shared)
    else:
        stats = replay(settings, path, influx=influx, alerts_out=alerts_out, entry_point=True,
                       share=(index, processes), days_out=DaysOut(days, index),
                       progress=shared)
    counts.send(asdict(stats))  # (a few hundred bytes: well within the pipe's buffer, so the
    counts.close()              # process ends before its parent reads them)


class DaysOut(DynamicSink[Any]):
    """Process ``index``'s finished days and theft candidates, pickled to one file in
    ``directory`` (``days.<index>.pickle``), a day's items of each batch as one record, in
    the order the process's dataflow hands them on; when the process's dataflow ends, where
    each day's records are goes beside it (``days.<index>.index``: a file a day cost a
    process a third of a millisecond a day to create here). :func:`read_days` reads them
    back, a day at a time."""

    def __init__(self, directory: Path, index: int) -> None:
        self.directory = directory
        self.index = index

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DaysPart:
        if worker_count != 1:
            raise ValueError("a replay process apart runs one worker")
        return _DaysPart(self.directory, self.index)


class _DaysPart(StatelessSinkPartition[Any]):
    def __init__(self, directory: Path, index: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._index = index
        self._fh: BinaryIO = (directory / f"days.{index}.pickle").open("wb")
        #: each day's records: (offset, length) in the file, in the order written
        self._records: dict[int, list[tuple[int, int]]] = {}

    def write_batch(self, items: list[Any]) -> None:
        by_day: dict[int, list[Any]] = {}
        for x in items:
            by_day.setdefault(day_order(x)[0], []).append(x)
        fh = self._fh
        for day, xs in by_day.items():  # (a batch holds a day or two: a record each)
            at = fh.tell()
            pickle.dump(xs, fh, protocol=pickle.HIGHEST_PROTOCOL)
            self._records.setdefault(day, []).append((at, fh.tell() - at))

    def close(self) -> None:
        self._fh.close()
        with (self._directory / f"days.{self._index}.index").open("wb") as fh:
            pickle.dump(self._records, fh, protocol=pickle.HIGHEST_PROTOCOL)


def read_days(directory: Path, told: Callable[[int, int], None] | None = None
              ) -> Iterator[Any]:
    """What the processes' :class:`DaysOut` wrote to ``directory``, in :func:`day_order`:
    a day at a time (only one day's items are held at once); ``told(k, n)`` before the k-th
    of n days (k from 0). ``ValueError`` for a process's days without their index (its
    dataflow did not end)."""
    files = sorted(directory.glob("days.*.pickle"), key=lambda p: int(p.name.split(".")[1]))
    readers: list[tuple[BinaryIO, dict[int, list[tuple[int, int]]]]] = []
    try:
        for path in files:  # (by process)
            try:
                with path.with_suffix(".index").open("rb") as index:
                    records = pickle.load(index)
            except FileNotFoundError:
                raise ValueError(f"{path} has no index: the process that wrote it did not "
                                 "end") from None
            readers.append((path.open("rb"), records))
        days = sorted({day for _, records in readers for day in records})
        for k, day in enumerate(days):
            if told is not None:
                told(k, len(days))
            items: list[Any] = []
            for data, records in readers:  # (by process)
                for at, length in records.get(day, ()):
                    data.seek(at)
                    items.extend(pickle.loads(data.read(length)))
            items.sort(key=day_order)  # (stable: a meter's own order, all in one process)
            yield from items
    finally:
        for data, _ in readers:
            data.close()


#: how often the segment stage of a replay apart says how far it is
_SAY_EVERY_S = 10.0


def _told(say: Callable[[str], None]) -> Callable[[int, int], None]:
    """What :func:`read_days` calls a day: ``say`` at the first day and then every
    ``_SAY_EVERY_S`` seconds."""
    last = [-math.inf]

    def told(k: int, n: int) -> None:
        now = time.monotonic()
        if k == 0:
            say(f"segment stage: the meter-days of {n:,} day{'s' if n != 1 else ''}, from "
                "every process, in the order of the days")
        elif now - last[0] >= _SAY_EVERY_S:
            say(f"segment stage: day {k + 1:,} of {n:,}")
        else:
            return
        last[0] = now

    return told


def day_order(item: Any) -> tuple[int, str, int]:
    """Where a finished day or a theft candidate goes in the segment stage of a replay apart:
    by the day it is about (the key the segment judges use), then by meter, a candidate
    before its meter's day (as a process's dataflow hands them on)."""
    if isinstance(item, TheftCandidate):
        return _day_of(item.event), item.event.meter_id, 0
    return item.day.toordinal(), item.meter_id, 1


def _segments(settings: Settings, days: Path, influx: bool, alerts_out: Path | None,
              processes: int, say: Callable[[str], None] | None = None
              ) -> tuple[Counter[str], Counter[str]]:
    """The one segment stage of a replay apart, over every process's days (the directory of
    their :class:`DaysOut`) in :func:`day_order`: its events to ``alerts_out`` (and with the
    load profiles to InfluxDB, through the spool of process 0, which has ended); returns the
    firing events and the resolutions it counted, by type. ``say``: see
    :func:`replay_cluster`."""
    from bytewax.testing import TestingSource, run_main

    from gridwatch import storage, stream
    from gridwatch._engine import EventSink

    items = read_days(days, _told(say) if say is not None else None)  # (a day at a time)
    sink = EventSink(jsonl=alerts_out)
    sinks = stream.Sinks(points=storage.InfluxSink(settings.influx, process_id=0,
                                                   processes=processes) if influx else None,
                         events=sink)
    run_main(stream.build_segment_flow(settings, TestingSource(items, batch_size=1000), sinks))
    return sink.counts, sink.resolved


def replay_cluster(settings: Settings, path: Path, processes: int, *, influx: bool = True,
                   alerts_out: Path | None = None,
                   progress: AbstractContextManager[Callable[[int, datetime], None]] | None
                   = None, say: Callable[[str], None] | None = None) -> RunStats:
    """Replay ``path`` with ``processes`` local processes (see the module's text) and return
    the merged :class:`~gridwatch._engine.RunStats`. ``progress`` (a file's progress bar,
    e.g. :class:`gridwatch._filereplay.Progress`) is entered once the processes have started,
    and called with the lines the slowest process has consumed and the time of its last
    reading. ``say`` (a line for the user: the console's ``print``) is told when the segment
    stage of a file's replay starts, and every ``_SAY_EVERY_S`` seconds how far it is.

    Raises :class:`ReplayFailed` when a process fails (after stopping the others), and
    ``ValueError`` for fewer than two processes or a file no replay can read."""
    from gridwatch._engine import EventSink, RunStats
    from gridwatch._services import free_port

    if processes < 2:
        raise ValueError(f"a parallel replay needs at least 2 processes, not {processes}")
    apart = not path.is_dir()  # a file: processes apart; a journal: a cluster
    if apart:  # what no process could read fails here, once, with its reason
        from gridwatch.ingest import check_readings_file

        check_readings_file(path)
    addresses = [] if apart else [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    # the events files: a cluster's workers', or each process apart's and the segment stage's
    writers = processes + 1 if apart else processes * settings.engine.workers
    worker_files = ([EventSink.worker_path(alerts_out, w) for w in range(writers)]
                    if alerts_out is not None else [])
    for f in ([alerts_out] if alerts_out is not None else []) + worker_files:
        f.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gridwatch-replay-")) if apart else None
    ctx = _context()
    shared = [_Shared(ctx) for _ in range(processes)]
    pipes = [ctx.Pipe(duplex=False) for _ in range(processes)]
    procs = [ctx.Process(target=_process, name=f"gridwatch-replay-{i}",
                         args=(settings, path, influx,
                               worker_files[i] if apart and worker_files else alerts_out,
                               i, processes, addresses, pipes[i][1], shared[i], work))
             for i in range(processes)]
    if apart:
        log.info("replay of %s with %d processes apart", path, processes)
    else:
        log.info("replay of %s with %d processes (%s)", path, processes, ", ".join(addresses))
    for p in procs:
        p.start()
    for _, sender in pipes:
        sender.close()  # (the processes hold their own ends)
    try:
        try:
            if progress is None:
                _wait(procs)
            else:
                with progress as report:
                    _wait(procs, lambda: _report(report, shared))
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                p.join()
        fired: Counter[str] = Counter()
        resolved: Counter[str] = Counter()
        if work is not None:
            fired, resolved = _segments(settings, work, influx,
                                        worker_files[processes] if worker_files else None,
                                        processes, say)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    total = RunStats()
    rejected: Counter[str] = Counter()
    for receiver, _ in pipes:
        one = receiver.recv()  # (each process ended well, having sent its counts)
        total.readings += one["readings"]
        rejected.update(one["rejected_by_reason"])
        fired.update(one["events_by_type"])
        resolved.update(one["resolutions_by_type"])
    total.rejected_by_reason = dict(rejected)
    total.rejected = sum(rejected.values())
    total.events_by_type = dict(fired)
    total.events = sum(fired.values())
    total.resolutions_by_type = dict(resolved)
    total.resolutions = sum(resolved.values())
    if alerts_out is not None:
        merge_event_files([f for f in worker_files if f.exists()], alerts_out)
    return total


def _context() -> Any:
    """How the processes start: forked from this one once it has loaded what a replay runs
    (the modules and the compiled quiet path: 2-3 CPU-seconds a process, paid once here),
    where forking is safe (a POSIX system, this process running one thread); else spawned,
    each loading them itself."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return multiprocessing.get_context("spawn")
    import bytewax.testing  # noqa: F401

    import gridwatch._engine
    import gridwatch.stream._devices
    import gridwatch.tags._live  # noqa: F401
    from gridwatch import ingest, storage, stream  # noqa: F401
    from gridwatch.models import use_compiled

    use_compiled(True)
    if threading.active_count() > 1:  # (nothing loaded above may start a thread)
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def _report(report: Callable[[int, datetime], None], shared: list[_Shared]) -> None:
    slowest = min(shared, key=lambda s: s.line.value)
    if slowest.line.value > 0:
        report(slowest.line.value, datetime.fromtimestamp(slowest.at.value, UTC))


def _wait(procs: list[Any], tick: Callable[[], None] | None = None) -> None:
    """Until every process has ended (``tick`` between looks); the first that fails stops
    the rest."""
    while True:
        if tick is not None:
            tick()
        if any(p.exitcode not in (None, 0) for p in procs):
            # (a process whose peer died fails too: wait a moment for the whole story)
            deadline = time.monotonic() + _SETTLE_S
            while any(p.exitcode is None for p in procs) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            for p in procs:
                if p.exitcode is None:
                    p.terminate()
            deadline = time.monotonic() + _GRACE_S
            while any(p.exitcode is None for p in procs) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            failed = [f"process {i} {_how(p.exitcode)}" for i, p in enumerate(procs)
                      if p.exitcode not in (None, 0, -signal.SIGTERM)]
            raise ReplayFailed(f"the replay failed: {', '.join(failed)}; the errors are "
                               "above, and the other processes were stopped")
        if all(p.exitcode == 0 for p in procs):
            return
        time.sleep(_POLL_S)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"ended by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"ended by signal {-code}"
    return f"ended with exit code {code}"


def merge_event_files(parts: list[Path], out: Path) -> int:
    """The events of ``parts`` (one JSON line each) as one file, sorted by their event times
    (``raised_at``), then by meter (a device's events: by device; among equal times and
    meters the order of the parts, then each part's own order: a meter's events are in one
    process's part, and the segment stage's, written last); the parts are removed. Returns
    the number of events."""
    lines: list[tuple[datetime, str, str]] = []
    for part in parts:
        with part.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    doc = json.loads(line)
                    lines.append((datetime.fromisoformat(doc["raised_at"]),
                                  doc.get("meter_id") or doc.get("device_id") or "",
                                  line if line.endswith("\n") else line + "\n"))
    lines.sort(key=lambda x: x[:2])  # stable
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(line for _, _, line in lines)
    tmp.replace(out)
    for part in parts:
        part.unlink()
    return len(lines)
