"""Python's cycle collector in the engine's processes: its settings while the engine runs
(``engine.gc_threshold``) and its pauses as a metric. Used by ``gridwatch run`` and
``replay`` (:mod:`gridwatch._engine`) and by a collector in a process of its own
(:mod:`gridwatch._collector_process`)."""

from __future__ import annotations

import gc
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["GcPauses", "tuned_gc"]


class GcPauses:
    """The cycle collector's pauses as a Prometheus histogram by generation,
    ``gridwatch_gc_pause_seconds`` (its ``_count`` is the collections, its ``_sum`` their
    time), beside prometheus-client's own ``GCCollector`` on the same registry (the
    ``python_gc_*`` counters: collections, objects freed, uncollectable). A collection holds
    the interpreter lock, so every thread of the engine waits through it: its time is the
    engine's, and a long one is latency for every reading in flight.

    The callback only adds to plain lists, and the histogram is built when the registry is
    scraped: a metric object's lock taken inside a collection could be the one the
    interrupted thread holds, which deadlocks (prometheus/client_python#363)."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client.gc_collector import GCCollector

        #: per generation: collections in each bucket (the last: beyond every bound)
        self._counts = [[0] * (len(self.BUCKETS) + 1) for _ in range(3)]
        self._sums = [0.0] * 3
        self._started = 0.0
        registry.register(self)
        GCCollector(registry=registry)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        g = info["generation"]
        self._counts[g][bisect_left(self.BUCKETS, took)] += 1
        self._sums[g] += took

    @staticmethod
    def _family() -> Any:
        from prometheus_client.core import HistogramMetricFamily

        return HistogramMetricFamily("gridwatch_gc_pause_seconds",
                                     "Pauses of Python's cycle collector, by generation.",
                                     labels=["generation"])

    def describe(self) -> Iterator[Any]:
        yield self._family()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.utils import floatToGoString

        pauses = self._family()
        for g in range(3):
            seen = 0
            buckets = []
            for bound, n in zip((*self.BUCKETS, math.inf), list(self._counts[g]), strict=True):
                seen += n
                buckets.append((floatToGoString(bound), seen))
            pauses.add_metric([str(g)], buckets, sum_value=self._sums[g])
        yield pauses


@contextmanager
def tuned_gc(threshold: int, registry: CollectorRegistry | None = None
             ) -> Iterator[Callable[[], None]]:
    """While the engine starts and runs: collect the youngest generation every ``threshold``
    new container objects, the older ones every 20 collections of the younger
    (``engine.gc_threshold``; 0 leaves Python's settings), and freeze what exists (the
    collector no longer scans it), at entry and again when the caller calls the callable
    this yields (start-up is over: the registry and the meters' tables are built); Python's
    settings again after (the process may go on: a command run in-process). With a
    ``registry``, the collections' pauses are measured there (:class:`GcPauses`)."""
    watch = GcPauses(registry) if registry is not None else None
    if watch is not None:
        gc.callbacks.append(watch)
    try:
        if threshold <= 0:
            yield _leave_gc
            return
        before = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(threshold, 20, 20)
        try:
            yield _freeze_all
        finally:
            gc.unfreeze()
            gc.set_threshold(*before)
    finally:
        if watch is not None:
            gc.callbacks.remove(watch)


def _freeze_all() -> None:
    """Collect once, then move every object left to the permanent generation."""
    gc.collect()
    gc.freeze()


def _leave_gc() -> None:
    """Python's own collector settings: nothing is frozen."""
