"""``gridwatch run``'s MQTT collector in a process of its own (``engine.collector_process``).

The engine's threads share one interpreter lock, and the collector (decoding, checking and
journaling each reading) holds it for about half of the engine's time under load. In a process
of its own it runs beside the dataflow instead of taking turns with it: the collector writes
its journal partition, and the dataflow follows the journal as it follows one written by
``gridwatch collect`` (decoding every record: there is no in-memory hand-over between
processes). Delivery is unchanged: a reading is acknowledged to the broker only once it is in
the journal, and the dataflow reads only what the journal holds.

The engine supervises the process: if it ends on its own (a crash, ``kill -9``) it is started
again after a pause that doubles up to a minute, the broker keeping the session meanwhile.
The process stops when asked (the engine's own stop, and its ``SIGTERM``), on SIGTERM or
SIGINT, and when the engine's process is gone (``kill -9`` of the engine): it looks every
``PARENT_POLL_S``. The two share plain memory, no lock, so an engine that ends abruptly leaves
no semaphore behind. A new collector waits for the journal partition while a stopping one still
holds it.

Its metrics reach the engine's endpoint: the process serves them on a loopback port of its own
choosing, and at a scrape the engine reads them there (at most once a second) and serves them
with its own (:class:`ProcessMetrics`), one family a name, so a scrape of the engine sees the
collector's counters in either layout.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gridwatch._settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["CollectorProcess", "ProcessMetrics"]

log = logging.getLogger("gridwatch.engine")

#: What the collector process tells the engine of its start (``_Shared.state``).
_STARTING, _READY, _FAILED = 0, 1, 2
#: How often the collector process looks whether the engine asks it to stop or is gone.
PARENT_POLL_S = 0.2
#: How often the collector process publishes its journal's end (``_Shared.end``).
END_EVERY_S = 0.05
#: How long a new collector process waits for the journal partition a stopping one holds.
LOCK_WAIT_S = 60.0
_RESTART_FIRST_S = 1.0
_RESTART_MAX_S = 60.0


class _Shared:
    """What the engine and its collector process share: plain shared memory, no lock (each
    value has one writer), so no semaphore outlives an engine that ends abruptly."""

    def __init__(self, ctx: Any) -> None:
        #: 1 once the engine asks the process to stop
        self.stop = ctx.RawValue("b", 0)
        #: the loopback port the process serves its metrics on for the engine (0: none)
        self.port = ctx.RawValue("i", 0)
        #: how the process's start went (_STARTING, _READY, _FAILED) and, failed, why
        self.state = ctx.RawValue("i", _STARTING)
        self.why = ctx.RawArray("c", 1024)
        #: the offset the journal partition's next record will get, as the process last
        #: published it (every ``END_EVERY_S``; -1 while unknown): the dataflow's lag gauge
        #: follows it instead of reading the records ahead of it twice
        self.end = ctx.RawValue("q", -1)


class CollectorProcess:
    """The collector of journal partition ``partition`` in a child process, started again if
    it ends on its own. ``metrics_port``: where the child serves its metrics (0: nowhere)."""

    def __init__(self, settings: Settings, partition: int, metrics_port: int = 0,
                 gc_threshold: int = 0, *, registry: CollectorRegistry | None = None,
                 own_metrics: CollectorRegistry | None = None) -> None:
        """With ``registry`` (the engine's, which its endpoint serves) the process's metrics
        are served there too, merged with ``own_metrics`` (the engine's own figures of the same
        names), and the restarts are counted as ``gridwatch_engine_collector_restarts``."""
        self.settings = settings
        self.partition = partition
        self.metrics_port = metrics_port
        self.gc_threshold = gc_threshold
        self._ctx = multiprocessing.get_context("spawn")  # (no copy of the engine's threads)
        self._shared = _Shared(self._ctx)
        self._proc: Any = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._restarts: Any = None
        self._serve_inner = registry is not None
        if registry is not None:
            from prometheus_client import CollectorRegistry, Counter

            registry.register(ProcessMetrics(
                own_metrics if own_metrics is not None else CollectorRegistry(),
                self._shared.port))
            self._restarts = Counter(
                "gridwatch_engine_collector_restarts",
                "Times the collector process ended on its own and was started again.",
                ["partition"], registry=registry)

    def start(self) -> CollectorProcess:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="gridwatch-collector-watch")
        self._watcher.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the process's collector is connected and subscribed, as
        :meth:`gridwatch.ingest.Collector.wait_ready`: raise
        :class:`~gridwatch.ingest.ConnectError` naming the cause when the broker refuses the
        connection (:attr:`failed` says why; the process is not started again) or cannot be
        reached in ``timeout`` seconds (the process keeps trying)."""
        from gridwatch.ingest import ConnectError

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._shared.state.value == _READY:
                return
            if self._shared.state.value == _FAILED:
                self._stopping.set()  # (a refused login is not mended by a restart)
                raise ConnectError(self.failed or "the collector failed")
            time.sleep(0.05)
        mqtt = self.settings.mqtt
        raise ConnectError(f"not connected to {mqtt.host}:{mqtt.port} after {timeout:.0f}s: "
                           "no answer from the broker")

    def journal_end(self, partition: int) -> int | None:
        """The end of journal partition ``partition`` as the process last published it (at most
        ``END_EVERY_S`` old), or None when it is not this process's partition or not known
        (the process is starting): what ``JournalSource(journal_end=...)`` takes."""
        if partition != self.partition:
            return None
        end = self._shared.end.value
        return end if end >= 0 else None

    @property
    def failed(self) -> str | None:
        """Why the process's collector stopped on its own at its start, if it did."""
        if self._shared.state.value != _FAILED:
            return None
        return self._shared.why.value.decode("utf-8", "replace")

    def _spawn(self) -> None:
        self._shared.state.value = _STARTING
        self._shared.end.value = -1
        self._proc = self._ctx.Process(
            target=collector_main, name=f"gridwatch-collector-p{self.partition}",
            args=(self.settings, self.partition, self._shared, self.metrics_port, os.getpid(),
                  self.gc_threshold, self._serve_inner))
        self._proc.start()
        log.info("collector of journal partition %d runs in process %d", self.partition,
                 self._proc.pid)

    def _watch(self) -> None:
        pause = _RESTART_FIRST_S
        while not self._stopping.is_set():
            proc = self._proc
            proc.join(0.5)
            if proc.exitcode is None or self._stopping.is_set():
                continue
            log.error("the collector process %d ended with exit code %d; it starts again in "
                      "%.0f s (the broker keeps what it has not acknowledged)", proc.pid,
                      proc.exitcode, pause)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, _RESTART_MAX_S)
            if self._restarts is not None:
                self._restarts.labels(str(self.partition)).inc()
            self._spawn()

    def stop_soon(self) -> None:
        """Ask the process to journal and acknowledge what it has, then to stop, and not to
        start it again; return at once (the engine's ``SIGTERM``)."""
        self._stopping.set()
        self._shared.stop.value = 1

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the process to journal and acknowledge what it has, then to stop; wait for it."""
        self.stop_soon()
        if self._watcher is not None:
            self._watcher.join(timeout)
        proc = self._proc
        if proc is None:
            return
        proc.join(timeout)
        if proc.is_alive():
            log.error("the collector process %d did not stop in %.0f s: terminated", proc.pid,
                      timeout)
            proc.terminate()
            proc.join(5)


class ProcessMetrics:
    """A Prometheus collector for the engine's registry: the families of ``own`` and those the
    collector process serves on loopback port ``port.value``, one family a name with the
    samples of both; ``own``'s alone while the process serves none (starting, restarting).
    The process's are read at a scrape (``timeout_s`` at most) and kept ``max_age_s``: a
    reading and parsing costs about 3 ms, and scrapes close together share one."""

    def __init__(self, own: CollectorRegistry, port: Any, timeout_s: float = 2.0,
                 max_age_s: float = 1.0) -> None:
        self.own = own
        self.port = port
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self._read_at = -math.inf
        self._theirs: list[Metric] = []

    def _process_families(self) -> list[Metric]:
        from prometheus_client.parser import text_string_to_metric_families

        port = self.port.value
        if not port:
            return []
        if time.monotonic() - self._read_at < self.max_age_s:
            return self._theirs
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                        timeout=self.timeout_s) as answer:
                text = answer.read().decode("utf-8")
        except OSError as exc:  # (the process ending or starting again)
            log.debug("the collector process's metrics: %s", exc)
            return []
        self._theirs = list(text_string_to_metric_families(text))
        self._read_at = time.monotonic()
        return self._theirs

    def collect(self) -> Iterator[Metric]:
        families = {family.name: family for family in self.own.collect()}
        for family in self._process_families():
            mine = families.setdefault(family.name, family)
            if mine is not family:
                seen = {(x.name, tuple(sorted(x.labels.items()))) for x in mine.samples}
                mine.samples.extend(x for x in family.samples
                                    if (x.name, tuple(sorted(x.labels.items()))) not in seen)
        yield from families.values()


def _publish_end(collector: Any, shared: _Shared, stop: threading.Event) -> None:
    """Until ``stop``, tell the engine every ``END_EVERY_S`` where ``collector``'s journal
    ends (``shared.end``: the writer's own count, no look at the disk)."""
    journal = collector.journal  # (set by the collector's start, before this is called)

    def publish() -> None:
        while not stop.wait(END_EVERY_S):
            shared.end.value = journal.end_offset

    threading.Thread(target=publish, daemon=True, name="gridwatch-journal-end").start()


def _report_start(collector: Any, shared: _Shared) -> None:
    """Tell the engine (``shared.state``, ``shared.why``) when ``collector`` is subscribed, or
    why it stopped before it was."""
    from gridwatch.ingest import ConnectError

    def watch() -> None:
        try:  # (raises only when the collector stops: it retries an unreachable broker)
            collector.wait_ready(timeout=math.inf)
        except ConnectError as exc:
            shared.why.value = str(exc).encode("utf-8")[: len(shared.why) - 1]
            shared.state.value = _FAILED
        else:
            shared.state.value = _READY

    threading.Thread(target=watch, daemon=True, name="gridwatch-collector-start").start()


def collector_main(settings: Settings, partition: int, shared: _Shared, metrics_port: int,
                   parent: int, gc_threshold: int = 0, serve_engine: bool = False) -> None:
    """The collector process: run one collector until the engine asks it to stop
    (``shared.stop``), a signal does, or process ``parent`` is gone; the exit code is the
    collector's. It tells the engine how its start went, and with ``serve_engine`` serves its
    metrics on a free loopback port, which it writes in ``shared.port``."""
    from gridwatch._cli_common import log_to_stderr
    from gridwatch._gc import tuned_gc
    from gridwatch.ingest import IngestMetrics, start_metrics_server
    from gridwatch.ingest._collector import run_collector
    from gridwatch.ingest._journal import JournalLockedError

    log_to_stderr()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def watch_engine() -> None:
        while not stop.wait(PARENT_POLL_S):
            if shared.stop.value:
                stop.set()
            elif os.getppid() != parent:
                log.error("the engine (process %d) is gone: the collector stops", parent)
                stop.set()

    threading.Thread(target=watch_engine, daemon=True, name="gridwatch-engine-watch").start()
    metrics = IngestMetrics()
    inner = None
    if serve_engine:
        inner = start_metrics_server(0, metrics.registry, "127.0.0.1")
        shared.port.value = inner.server_port
    def started(collector: Any) -> None:
        _report_start(collector, shared)
        _publish_end(collector, shared, stop)

    deadline = time.monotonic() + LOCK_WAIT_S
    with tuned_gc(gc_threshold):  # (the engine's collector settings)
        while True:
            try:
                code = run_collector(settings, partition, stop, metrics_port, metrics=metrics,
                                     started=started)
                break
            except JournalLockedError as exc:
                if stop.is_set() or time.monotonic() > deadline:
                    log.error("%s", exc)
                    code = 2
                    break
                log.warning("%s: waiting for it", exc)
                stop.wait(1.0)
    if inner is not None:
        shared.port.value = 0
        inner.shutdown()
    raise SystemExit(code)
