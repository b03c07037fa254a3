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
    """Run ``source`` through a keyed step on two worker threads of one process (the keys
    spread its items over both: one thread reads the source, the other only receives); for
    each thread that ran the step: (items, items that found the thread's
    ``threading.local`` empty, i.e. ran in a thread state none of the earlier items had)."""
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
    keyed = op.key_on("key", op.input("in", flow, source),
                      lambda x: str(getattr(x, "key", x if isinstance(x, int) else "w")))
    op.inspect("marked", op.stateful_map("mark", keyed, lambda s, x: (s, mark(x))),
               lambda *_a: None)
    cli_main(flow, workers_per_process=2)  # (threads bytewax starts, not Python)
    return {k: (v[0], v[1]) for k, v in seen.items()}


def _readings(n: int) -> list[Reading]:
    return [Reading(meter_id=f"m{i % 7}", ts=T0 + timedelta(minutes=15 * i), kw=1.0)
            for i in range(n)]


def test_a_bytewax_worker_thread_runs_each_call_in_a_new_thread_state() -> None:
    # What the engine works around: bytewax's own behaviour, on a plain source.
    seen = _states_seen(TestingSource([i % 8 for i in range(400)], batch_size=10))
    assert len(seen) == 2, seen
    assert threading.get_ident() not in seen
    # (the step takes the items of a batch in one call into Python: on the thread that
    # reads the source, a new state for each of its 40 batches)
    assert max(fresh for _calls, fresh in seen.values()) > 20, seen


def test_the_dataflow_source_keeps_each_worker_thread_state() -> None:
    source = summarized(TestingSource(_readings(400), batch_size=10),
                        lambda r: f"cell:{r.meter_id}")
    seen = _states_seen(source)
    assert len(seen) == 2, seen  # (the worker that reads the source, and the other)
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
