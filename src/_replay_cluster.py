"""``gridwatch replay --processes N``: one replay run by a cluster of N local processes.

Each process is a bytewax cluster process on a loopback address. It reads the whole file but
keeps only its share of the lines: the meters whose watch key (grid cell, else hash shard)
bytewax sends to one of its own workers (:class:`gridwatch.ingest.FileShare`), so no reading
crosses between the processes; only the event-time summaries meet at the clock, and the
finished meter-days at their customer class's segmenter. A journal directory is shared by
partition instead, as a live cluster's is. Each process keeps its dead letters in a partition
of its own and writes its events to a file of its own (``<alerts>.w<worker>.jsonl``); when all
have ended, the files are merged into the one asked for, sorted by the events' times, and
the counts each process sent back through a pipe are added up.

What differs from one process: the segmenter of a customer class learns the meter-days of
the processes in the order they arrive, so the segments it finds (and the possible thefts
judged within a segment) may differ a little from one run to the next, as in any cluster;
every other event is a function of its meter's or cell's readings alone.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridwatch._settings import Settings

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
             index: int, addresses: list[str], counts: Connection, shared: _Shared) -> None:
    """One process of the cluster (the target of a forked or spawned process); its counts go
    back to the parent through ``counts``."""
    from gridwatch._engine import replay

    stats = replay(settings, path, influx=influx, alerts_out=alerts_out, entry_point=True,
                   cluster=(index, addresses), progress=shared)
    counts.send(asdict(stats))  # (a few hundred bytes: well within the pipe's buffer, so the
    counts.close()              # process ends before its parent reads them)


def replay_cluster(settings: Settings, path: Path, processes: int, *, influx: bool = True,
                   alerts_out: Path | None = None,
                   progress: AbstractContextManager[Callable[[int, datetime], None]] | None
                   = None) -> RunStats:
    """Replay ``path`` with ``processes`` local processes (see the module's text) and return
    the merged :class:`~gridwatch._engine.RunStats`. ``progress`` (a file's progress bar,
    e.g. :class:`gridwatch._filereplay.Progress`) is entered once the processes have started,
    and called with the lines the slowest process has consumed and the time of its last
    reading.

    Raises :class:`ReplayFailed` when a process fails (after stopping the others), and
    ``ValueError`` for fewer than two processes or a file no replay can read."""
    from gridwatch._engine import EventSink, RunStats
    from gridwatch._services import free_port

    if processes < 2:
        raise ValueError(f"a parallel replay needs at least 2 processes, not {processes}")
    if not path.is_dir():  # what no process could read fails here, once, with its reason
        from gridwatch.ingest import check_readings_file

        check_readings_file(path)
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    worker_files = ([EventSink.worker_path(alerts_out, w)
                     for w in range(processes * settings.engine.workers)]
                    if alerts_out is not None else [])
    for f in ([alerts_out] if alerts_out is not None else []) + worker_files:
        f.unlink(missing_ok=True)
    ctx = _context()
    shared = [_Shared(ctx) for _ in range(processes)]
    pipes = [ctx.Pipe(duplex=False) for _ in range(processes)]
    procs = [ctx.Process(target=_process, name=f"gridwatch-replay-{i}",
                         args=(settings, path, influx, alerts_out, i, addresses, pipes[i][1],
                               shared[i]))
             for i in range(processes)]
    log.info("replay of %s with %d processes (%s)", path, processes, ", ".join(addresses))
    for p in procs:
        p.start()
    for _, sender in pipes:
        sender.close()  # (the processes hold their own ends)
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
    total = RunStats()
    rejected: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
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
    (``raised_at``; among equal times the order of the parts, then each part's own order); the
    parts are removed. Returns the number of events."""
    lines: list[tuple[datetime, str]] = []
    for part in parts:
        with part.open(encoding="utf-8") as fh:
            lines.extend((datetime.fromisoformat(json.loads(line)["raised_at"]),
                          line if line.endswith("\n") else line + "\n")
                         for line in fh if line.strip())
    lines.sort(key=lambda x: x[0])  # stable
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(line for _, line in lines)
    tmp.replace(out)
    for part in parts:
        part.unlink()
    return len(lines)
