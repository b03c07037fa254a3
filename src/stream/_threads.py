"""A Python thread state for each of bytewax's worker threads, kept for the thread's life.

bytewax runs the workers of a cluster (several processes, or more than one worker a process)
on threads that Python did not start. Each time such a thread calls into Python (a source's
batch, a step's items, a sink's write), pyo3 takes the interpreter lock with
``PyGILState_Ensure`` and gives it back with ``PyGILState_Release``. On a thread Python does
not know, the first makes a new thread state and the second deletes it again once its count
is back at zero: every call then builds a thread state and its frame stack afresh, and
whatever the thread kept in ``threading.local`` is gone by the next call. (A run of one
process and one worker is not concerned: its worker is the main thread, whose state lives
on.)

:func:`keep_thread_state` raises that count by one on the calling thread, so the state it runs
in now is the one every later call on the thread reuses. The dataflow's source calls it on
each worker as the worker builds it (:class:`~gridwatch.stream.SummarizedSource`). On the main
thread, or on a thread Python started, it changes nothing but the count: their states live
until the thread ends anyway.

Measured on a two-process cluster (``benchmarks/dataflow.py --only flow --against DIR
--flow-processes 2``): without it every batch a worker read ran in a fresh thread state, and
the cluster stepped 1.088× fewer readings a CPU-second (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["keep_thread_state"]

_kept = threading.local()


def keep_thread_state() -> bool:
    """Keep the calling thread's Python thread state until the thread ends. Once per thread:
    returns True when this call kept it, False when it was kept already."""
    if getattr(_kept, "done", False):
        return False
    # PyGILState_Ensure on a thread that holds the lock with a state of its own (as any
    # Python code does) only counts one more holder of that state; with the count never
    # back at zero, pyo3's PyGILState_Release leaves the state alone. ``pythonapi`` calls
    # keep the lock, as this call must.
    ctypes.pythonapi.PyGILState_Ensure()
    _kept.done = True
    return True
