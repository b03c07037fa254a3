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
The process stops when asked (the engine's own stop), on SIGTERM or SIGINT, and when the
engine's process is gone (``kill -9`` of the engine): it looks at its parent every
``PARENT_POLL_S``. A new collector waits for the journal partition while a stopping one still
holds it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

from gridwatch._settings import Settings

__all__ = ["CollectorProcess"]

log = logging.getLogger("gridwatch.engine")

#: How often the collector process looks whether the engine's process is still its parent.
PARENT_POLL_S = 0.5
#: How long a new collector process waits for the journal partition a stopping one holds.
LOCK_WAIT_S = 60.0
_RESTART_FIRST_S = 1.0
_RESTART_MAX_S = 60.0


class CollectorProcess:
    """The collector of journal partition ``partition`` in a child process, started again if
    it ends on its own. ``metrics_port``: where the child serves its metrics (0: nowhere)."""

    def __init__(self, settings: Settings, partition: int, metrics_port: int = 0,
                 gc_threshold: int = 0) -> None:
        self.settings = settings
        self.partition = partition
        self.metrics_port = metrics_port
        self.gc_threshold = gc_threshold
        self._ctx = multiprocessing.get_context("spawn")  # (no copy of the engine's threads)
        self._stop = self._ctx.Event()
        self._proc: Any = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> CollectorProcess:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="gridwatch-collector-watch")
        self._watcher.start()
        return self

    def _spawn(self) -> None:
        self._proc = self._ctx.Process(
            target=collector_main, name=f"gridwatch-collector-p{self.partition}",
            args=(self.settings, self.partition, self._stop, self.metrics_port, os.getpid(),
                  self.gc_threshold))
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
            self._spawn()

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the process to journal and acknowledge what it has, then to stop; wait for it."""
        self._stopping.set()
        self._stop.set()
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


def collector_main(settings: Settings, partition: int, stop: Any, metrics_port: int,
                   parent: int, gc_threshold: int = 0) -> None:
    """The collector process: run one collector until ``stop`` is set, a signal asks it to,
    or process ``parent`` is gone; the exit code is the collector's."""
    from gridwatch._cli_common import log_to_stderr
    from gridwatch._gc import tuned_gc
    from gridwatch.ingest._collector import run_collector
    from gridwatch.ingest._journal import JournalLockedError

    log_to_stderr()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def orphaned() -> None:
        while not stop.wait(PARENT_POLL_S):
            if os.getppid() != parent:
                log.error("the engine (process %d) is gone: the collector stops", parent)
                stop.set()

    threading.Thread(target=orphaned, daemon=True, name="gridwatch-parent-watch").start()
    deadline = time.monotonic() + LOCK_WAIT_S
    with tuned_gc(gc_threshold):  # (the engine's collector settings)
        while True:
            try:
                code = run_collector(settings, partition, stop, metrics_port)
                break
            except JournalLockedError as exc:
                if stop.is_set() or time.monotonic() > deadline:
                    log.error("%s", exc)
                    code = 2
                    break
                log.warning("%s: waiting for it", exc)
                stop.wait(1.0)
    raise SystemExit(code)
