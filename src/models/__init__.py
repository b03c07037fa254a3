"""gridwatch.models: pure detection and load-profiling logic (no stream runtime imports).

``MeterState`` is the compact per-meter state the dataflow keeps for every meter; ``Segmenter``
and ``SegmentJudge`` are the River models shared per customer segment.
"""

from gridwatch.models._calendar import Calendar
from gridwatch.models._config import ClassPolicy, DetectionSettings
from gridwatch.models._meter import EVENT_TYPES, DailyProfile, MeterState, StepResult
from gridwatch.models._segment import (
    Segmenter,
    SegmentJudge,
    Verdict,
    is_candidate,
    load_profile,
    profile_tags,
)

__all__ = [
    "EVENT_TYPES",
    "Calendar",
    "ClassPolicy",
    "DailyProfile",
    "DetectionSettings",
    "MeterState",
    "SegmentJudge",
    "Segmenter",
    "StepResult",
    "Verdict",
    "is_candidate",
    "load_profile",
    "profile_tags",
]
