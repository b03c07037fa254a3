"""gridwatch.stream: the bytewax dataflow that runs the detectors over readings.

``build_flow(settings, source, sinks, meta)`` wires it; ``run_replay`` runs it over a list of
readings in-process and returns the events (evaluation and tests use it).
"""

from gridwatch.stream._flow import (
    ReplayResult,
    Sinks,
    build_flow,
    build_segment_flow,
    meta_lookup,
    run_replay,
)
from gridwatch.stream._logic import CellLogic, CellWatch, Silence
from gridwatch.stream._partition import (
    ClockLogic,
    ReadingBatch,
    SummarizedSource,
    Tick,
    Watermark,
)
from gridwatch.stream._place import Placement, route

__all__ = [
    "CellLogic",
    "CellWatch",
    "ClockLogic",
    "Placement",
    "ReadingBatch",
    "ReplayResult",
    "Silence",
    "Sinks",
    "SummarizedSource",
    "Tick",
    "Watermark",
    "build_flow",
    "build_segment_flow",
    "meta_lookup",
    "route",
    "run_replay",
]
