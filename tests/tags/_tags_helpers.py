"""Helpers for the tag tests: the shipped catalogue and schedule, and daily profiles."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from gridwatch.models._meter import DailyProfile

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "config" / "tags"
TARIFF = REPO / "config" / "tariffs" / "guangdong.yaml"


def profile(customer: str, day: date, curve: list[float], *, meter: str | None = None,
            cls: str = "residential", day_off: bool | None = None) -> DailyProfile:
    """A finished day as the per-meter model emits it (``day`` at local midnight, UTC)."""
    off = day.weekday() >= 5 if day_off is None else day_off
    return DailyProfile(
        meter_id=meter or f"m-{customer}", day=datetime(day.year, day.month, day.day,
                                                         tzinfo=UTC),
        customer_id=customer, customer_class=cls, daily_kwh=float(sum(curve)),
        peak_kw=float(max(curve)), valley_kw=float(min(curve)), day_curve=tuple(curve),
        weekday_curve=tuple(curve), weekend_curve=tuple(curve), is_day_off=off,
        mom_growth=None, ratio=None)
