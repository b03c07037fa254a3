"""Online load forecasts, hour-ahead and day-ahead, for a transformer (kVA) or an industrial
customer (kW), scored as they come true, with a warning before the limit is exceeded.

The model is a seasonal profile with a level (numpy, compact): a time-of-week profile (one
value per interval of the week, exponentially updated) falling back to a time-of-day profile
until the week is seen; the hour-ahead forecast scales it by the recent level (actual / profile
over the last hours), the day-ahead is the profile (a slow level only added error on the
simulated fleet: 4.1 % against 3.0 % MAPE). A value is learned clipped to between half and
double its profile slot, so an outage or a spike does not wreck the profile. Quantiles (10 %
and 90 %) are the forecast times online quantiles of the ratio actual / forecast per horizon.
Every forecast is kept until its interval comes; then it is scored: absolute percentage error
(MAPE) and pinball loss at 10, 50 and 90 %. A pending forecast above ``limit`` raises
``overload_forecast`` (a transformer) or ``capacity_forecast`` (a customer) with the lead time
until it would happen. Pure: no IO; the clock is the data's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from gridwatch._schemas import Event, Forecast, Severity

__all__ = ["HORIZONS", "ForecastScores", "LoadForecaster", "pinball", "score_stored"]

#: Horizon name → how far ahead.
HORIZONS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
_QUANTILES = (0.1, 0.5, 0.9)


def pinball(actual: float, forecast: float, q: float) -> float:
    """Pinball (quantile) loss of a ``q``-quantile forecast."""
    d = actual - forecast
    return max(q * d, (q - 1) * d)


@functools.lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays(country, years=year))


@dataclass
class ForecastScores:
    """Running scores of one horizon: count, sum of absolute percentage errors (over intervals
    with a real load), sum of pinball losses (mean of the three quantiles) and of actuals."""

    n: int = 0
    n_ape: int = 0
    ape: float = 0.0
    pinball: float = 0.0
    actual: float = 0.0

    @property
    def mape(self) -> float | None:
        return self.ape / self.n_ape if self.n_ape else None

    @property
    def scaled_pinball(self) -> float | None:
        """Mean pinball loss over the mean actual (unit-free)."""
        return self.pinball / self.actual if self.actual > 0 else None


@dataclass
class LoadForecaster:
    """Forecasts of one target. ``interval_s`` is the data's interval; ``tz`` the local time
    of the profile slots; ``limit`` the rated kVA or the contracted capacity."""

    target: str
    target_kind: str
    limit: float | None = None
    interval_s: int = 900
    tz: str = "UTC"
    grid_cell: str | None = None
    customer_id: str | None = None
    warmup_days: float = 2.0
    country: str | None = None
    n: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    week: np.ndarray = field(default_factory=lambda: np.empty(0))
    day: np.ndarray = field(default_factory=lambda: np.empty(0))
    level_h: float = 1.0
    q: dict[str, list[float]] = field(default_factory=dict)
    pending: dict[tuple[str, int], tuple[float, float, float, float]] = field(
        default_factory=dict)
    scores: dict[str, ForecastScores] = field(default_factory=dict)
    warning: float | None = None  # onset of the open warning
    calm: int = 0

    def __post_init__(self) -> None:
        per_day = 86400 // self.interval_s
        if self.week.size == 0:
            self.week = np.full(per_day * 7, np.nan)
            self.day = np.full(per_day, np.nan)
        for h in HORIZONS:
            self.q.setdefault(h, [0.9, 1.1])
            self.scores.setdefault(h, ForecastScores())

    # -- slots -----------------------------------------------------------------------------
    def _slots(self, ts: float) -> tuple[int, int]:
        """(week slot, day slot) of the interval ending at ``ts``; a public holiday of
        ``country`` counts as a Sunday."""
        local = datetime.fromtimestamp(ts - self.interval_s, ZoneInfo(self.tz))
        s = (local.hour * 3600 + local.minute * 60 + local.second) // self.interval_s
        wd = local.weekday()
        if self.country and local.date() in _holidays(self.country, local.year):
            wd = 6
        return wd * self.day.size + s, s

    def _base(self, ts: float) -> float | None:
        w, d = self._slots(ts)
        v = self.week[w]
        if math.isnan(v):
            v = self.day[d]
        return None if math.isnan(v) else float(v)

    # -- the step --------------------------------------------------------------------------
    def update(self, ts_dt: datetime, value: float) -> tuple[list[Forecast], list[Event]]:
        """One actual value (the interval ending at ``ts_dt``): score what was forecast for
        it, learn, forecast ahead, and warn when a forecast crosses the limit."""
        ts = ts_dt.timestamp()
        if ts <= self.last_ts:
            return [], []
        if not self.n:
            self.first_ts = ts
        self.last_ts = ts
        self.n += 1
        out: list[Forecast] = []
        for h in HORIZONS:
            made = self.pending.pop((h, int(ts)), None)
            if made is None:
                continue
            f50, f10, f90, made_at = made
            sc = self.scores[h]
            sc.n += 1
            sc.actual += value
            sc.pinball += sum(pinball(value, f, q) for f, q in
                              zip((f10, f50, f90), _QUANTILES, strict=True)) / 3
            if (self.limit is None or value > 0.05 * self.limit) and value > 0:
                sc.ape += abs(value - f50) / value
                sc.n_ape += 1
            if f50 > 0:
                r = value / f50
                lo, hi = self.q[h]
                # online quantiles of the ratio (stochastic approximation)
                self.q[h] = [lo + 0.02 * (0.1 - (r < lo)), hi + 0.02 * (0.9 - (r < hi))]
            out.append(self._forecast(h, ts, f50, f10, f90, made_at, actual=value))
        base = self._base(ts)
        if base is not None and base > 0:
            r = min(max(value / base, 0.2), 5.0)
            self.level_h = 0.7 * self.level_h + 0.3 * r
        w, d = self._slots(ts)
        # learned clipped to half or double the slot: an outage or a spike does not wreck it
        # (a trend still passes, a few days later)
        for arr, i, a in ((self.week, w, 0.7), (self.day, d, 0.2)):
            old = arr[i]
            arr[i] = value if math.isnan(old) else (1 - a) * old + a * min(
                max(value, 0.5 * old), 2.0 * old)
        if ts - self.first_ts < self.warmup_days * 86400:
            return out, []
        for h, ahead in HORIZONS.items():
            t_f = ts + ahead.total_seconds()
            b = self._base(t_f)
            if b is None:
                continue
            level = self.level_h if h == "1h" else 1.0  # day ahead: the profile itself
            f50 = max(b * level, 0.0)
            lo, hi = self.q[h]
            f10, f90 = f50 * min(lo, 1.0), f50 * max(hi, 1.0)
            self.pending[(h, int(t_f))] = (f50, f10, f90, ts)
            out.append(self._forecast(h, t_f, f50, f10, f90, ts))
        return out, self._warn(ts, value)

    def _forecast(self, h: str, t: float, f50: float, f10: float, f90: float, made_at: float,
                  actual: float | None = None) -> Forecast:
        tz = ZoneInfo("UTC")
        return Forecast(
            target=self.target, target_kind=self.target_kind, horizon=h,
            ts=datetime.fromtimestamp(t, tz), made_at=datetime.fromtimestamp(made_at, tz),
            value=round(f50, 3), p10=round(f10, 3), p90=round(f90, 3), limit=self.limit,
            actual=actual, grid_cell=self.grid_cell, customer_id=self.customer_id)

    def _warn(self, ts: float, value: float) -> list[Event]:
        if not self.limit:
            return []
        over = sorted((t, f50, h) for (h, t), (f50, _l, _u, _m) in self.pending.items()
                      if f50 > self.limit)
        etype = "overload_forecast" if self.target_kind == "transformer" else "capacity_forecast"
        now = datetime.fromtimestamp(ts, ZoneInfo("UTC"))
        if over and self.warning is None:
            t, f50, h = over[0]
            self.warning, self.calm = ts, 0
            lead = (t - ts) / 60
            what = "transformer load" if self.target_kind == "transformer" else "demand"
            return [Event(
                meter_id=self.target, type=etype, severity=Severity.WARNING,
                score=round(f50 / self.limit, 3), onset=now, raised_at=now,
                summary=f"{what} of {self.target} forecast to reach {f50 / self.limit:.0%} of "
                        f"its limit in {lead:.0f} min",
                evidence={"forecast": round(f50, 1), "limit": self.limit, "lead_min": lead,
                          "horizon": h, "expected_at": datetime.fromtimestamp(
                              t, ZoneInfo("UTC")).isoformat(), "target_kind": self.target_kind},
                grid_cell=self.grid_cell, customer_id=self.customer_id)]
        if self.warning is not None and not over and value < 0.9 * self.limit:
            self.calm += 1
            if self.calm >= 4:
                self.warning = None
                return [Event(meter_id=self.target, type=etype, severity=Severity.INFO,
                              score=0.0, onset=now, raised_at=now, state="resolved",
                              summary=f"no forecast of {self.target} above its limit any more",
                              grid_cell=self.grid_cell, customer_id=self.customer_id)]
        elif over:
            self.calm = 0
        return []


def score_stored(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], ForecastScores]:
    """Scores per (target kind, horizon) of stored forecasts (rows of the ``forecast``
    measurement: ``value``, ``p10``, ``p90`` and, once come true, ``actual``); forecasts not
    yet come true are left out."""
    out: dict[tuple[str, str], ForecastScores] = {}
    for r in rows:
        actual, value = r.get("actual"), r.get("value")
        if actual is None or value is None:
            continue
        sc = out.setdefault((str(r.get("target_kind")), str(r.get("horizon"))),
                            ForecastScores())
        a, f50 = float(actual), float(value)
        f10, f90 = float(r.get("p10", f50)), float(r.get("p90", f50))
        sc.n += 1
        sc.actual += a
        sc.pinball += sum(pinball(a, f, q) for f, q in
                          zip((f10, f50, f90), _QUANTILES, strict=True)) / 3
        limit = r.get("limit")
        if a > 0 and (limit is None or a > 0.05 * float(limit)):
            sc.ape += abs(a - f50) / a
            sc.n_ape += 1
    return out
