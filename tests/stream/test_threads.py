"""A worker thread of a bytewax cluster keeps its Python thread state once the dataflow's
source has been built on it (``keep_thread_state``); without it, bytewax's worker threads run
every call into Python in a state made for that call alone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main
from bytewax.testing import TestingSource

from gridwatch import Reading
from gridwatch.stream._partition import summarized
from gridwatch.stream._threads import keep_thread_state

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _states_seen(source: Any) -> dict[int, tuple[int, int]]:
    """Run ``source`` through a step on two worker threads of one process; for each thread
    that ran the step: (items, items that found the thread's ``threading.local`` empty, i.e.
    ran in a thread state none of the earlier items had)."""
    local = threading.local()
    seen: dict[int, list[int]] = {}

    def mark(x: Any) -> Any:
        counts = seen.setdefault(threading.get_ident(), [0, 0])
        counts[0] += 1
        if not hasattr(local, "here"):
            counts[1] += 1
            local.here = True
        return x

    flow = Dataflow("threads")
    op.inspect("marked", op.map("mark", op.input("in", flow, source), mark),
               lambda *_a: None)
    cli_main(flow, workers_per_process=2)  # (threads bytewax starts, not Python)
    return {k: (v[0], v[1]) for k, v in seen.items()}


def _readings(n: int) -> list[Reading]:
    return [Reading(meter_id=f"m{i % 7}", ts=T0 + timedelta(minutes=15 * i), kw=1.0)
            for i in range(n)]


def test_a_bytewax_worker_thread_runs_each_call_in_a_new_thread_state() -> None:
    # What the engine works around: bytewax's own behaviour, on a plain source.
    seen = _states_seen(TestingSource(list(range(200)), batch_size=10))
    assert seen, "the step ran on no thread"
    assert threading.get_ident() not in seen
    # (the step takes a batch of 10 items in one call into Python: a new state each batch)
    assert any(fresh == calls // 10 > 1 for calls, fresh in seen.values()), seen


def test_the_dataflow_source_keeps_each_worker_thread_state() -> None:
    source = summarized(TestingSource(_readings(400), batch_size=10), lambda _r: "cell:a")
    seen = _states_seen(source)
    assert seen, "the step ran on no thread"
    assert threading.get_ident() not in seen
    assert sum(calls for calls, _fresh in seen.values()) > 20
    # each worker thread's first call found the local empty, and no call after it
    assert all(fresh == 1 for _calls, fresh in seen.values()), seen


def test_keep_thread_state_is_once_per_thread() -> None:
    got: list[bool] = []

    def twice() -> None:
        got.extend([keep_thread_state(), keep_thread_state()])

    t = threading.Thread(target=twice)
    t.start()
    t.join()
    assert got == [True, False]
