"""gridwatch.stream: the bytewax dataflow that runs the detectors over readings.

``build_flow(settings, source, sinks, meta)`` wires it; ``run_replay`` runs it over a list of
readings in-process and returns the events (evaluation and tests use it).
"""

from gridwatch.stream._flow import ReplayResult, Sinks, build_flow, meta_lookup, run_replay
from gridwatch.stream._logic import (
    CellWatchLogic,
    EventClockLogic,
    MeterLogic,
    Silence,
    Tick,
)

__all__ = [
    "CellWatchLogic",
    "EventClockLogic",
    "MeterLogic",
    "ReplayResult",
    "Silence",
    "Sinks",
    "Tick",
    "build_flow",
    "meta_lookup",
    "run_replay",
]
