"""What one reading produced (shared by the full and the quiet path of ``MeterState.step``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gridwatch._schemas import Event, Score
from gridwatch.models._daily import DailyProfile

__all__ = ["StepResult"]


@dataclass(slots=True)
class StepResult:
    """What one reading produced: events, an optional Score point, an optional finished day."""

    events: list[Event] = field(default_factory=list)
    score: Score | None = None
    profile: DailyProfile | None = None
