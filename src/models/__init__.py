"""gridwatch.models: pure detection and load-profiling logic (no stream runtime imports).

``MeterState`` is the compact per-meter state the dataflow keeps for every meter; ``Segmenter``
and ``SegmentJudge`` are the River models shared per customer segment.

Names are imported on first use (PEP 562), so loading the settings, which imports this package
for its settings section, does not pull in River or numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Calendar": "_calendar",
    "ClassPolicy": "_config",
    "DetectionSettings": "_config",
    "DailyProfile": "_meter",
    "EVENT_TYPES": "_meter",
    "MeterState": "_meter",
    "StepResult": "_meter",
    "SegmentJudge": "_segment",
    "Segmenter": "_segment",
    "Verdict": "_segment",
    "is_candidate": "_segment",
    "load_profile": "_segment",
    "profile_tags": "_segment",
    "use_compiled": "_quiet",
}

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
    "use_compiled",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from gridwatch.models._calendar import Calendar
    from gridwatch.models._config import ClassPolicy, DetectionSettings
    from gridwatch.models._meter import EVENT_TYPES, DailyProfile, MeterState, StepResult
    from gridwatch.models._quiet import use_compiled
    from gridwatch.models._segment import (
        Segmenter,
        SegmentJudge,
        Verdict,
        is_candidate,
        load_profile,
        profile_tags,
    )
