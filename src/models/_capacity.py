"""Over-capacity risk: demand projected to reach the contracted capacity within the horizon.

The forecast adds the meter's usual load for the coming slots (from the baseline), the current
residual decaying, and a damped trend of the residual; the lead time to the projected crossing is
in the event.
"""

from __future__ import annotations

import math
from functools import lru_cache

from gridwatch._schemas import Event, MeterMeta, Reading, Severity
from gridwatch.models._alarms import fire, iso, r3, resolve
from gridwatch.models._baseline import _LEVEL, _SHRINK, mean_kw_at
from gridwatch.models._calendar import Calendar
from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import (
    F16,
    GLOBAL,
    LAST_KW,
    LV_KW,
    LV_N,
    RESID_EW,
    TREND_EW,
    MeterRecord,
    drop,
    put,
)

__all__ = ["judge", "plan"]


#: ``0.85 ** h`` and ``0.9 ** h`` for the horizon's steps (h = 0 .. 240: a one-minute
#: interval over the longest horizon)
_P85 = tuple(0.85 ** h for h in range(242))
_P90 = tuple(0.9 ** h for h in range(242))


@lru_cache(maxsize=64)
def plan(horizon_min: float, interval: float) -> tuple[tuple[float, float, float], ...]:
    """The forecast's steps over ``horizon_min`` at ``interval`` seconds: (offset in seconds,
    the trend's damping, the residual's decay), the same for every meter at that interval."""
    out = []
    damp = 0.0
    for step in range(1, max(1, int(horizon_min * 60 // interval)) + 1):
        damp += _P85[step] if step < 242 else 0.85 ** step
        out.append((step * interval, damp, _P90[step] if step < 242 else 0.9 ** step))
    return tuple(out)


def judge(rec: MeterRecord, r: Reading, t: float, interval: float, meta: MeterMeta,
              s: DetectionSettings, cal: Calendar, ev: list[Event], expected: float,
              warm: bool) -> None:
    kva = float(meta.contracted_kva or 0.0)
    kw = r.kw
    pf = max(abs(r.pf), 0.5) if r.pf is not None else 1.0
    x = rec.x
    resid = x[RESID_EW] = 0.7 * x[RESID_EW] + 0.3 * (kw - expected) if warm else 0.0
    last_kw = x[LAST_KW]
    if not math.isnan(last_kw):
        # With a warm baseline the daily ramp is in the baseline: trend the residual only.
        prev = last_kw - (mean_kw_at(rec, cal.slot(t - interval)) if warm else 0.0)
        cur = kw - (expected if warm else 0.0)
        x[TREND_EW] = 0.7 * x[TREND_EW] + 0.3 * (cur - prev)
    limit = kva * s.capacity_warn_fraction
    cross_t = cross_kva = None
    peak = kw / pf
    trend = x[TREND_EW]
    h = rec.h
    g = _SHRINK * F16[h[LV_KW + GLOBAL]]
    known = cal._q.get  # the calendar's quarters (its ``info`` fills them)
    for off, damp, p90 in plan(s.capacity_horizon_min, interval):
        th = t + off
        # the larger of the usual shape of the day carried forward and the trend of now: a
        # warning errs on the side of the feeder
        if warm:
            d = _LEVEL[(known(int(th // 900)) or cal.info(th))[1]]
            n_d = h[LV_N + d]
            usual = (n_d * F16[h[LV_KW + d]] + g) / (n_d + _SHRINK) + resid * p90
            if usual < kw:
                usual = kw
        else:
            usual = kw
        fc = (usual + trend * damp) / pf
        if fc > peak:
            peak = fc
        if fc >= limit and cross_t is None:
            cross_t, cross_kva = th, fc
    now_kva = kw / pf
    if now_kva >= limit and cross_t is None:
        cross_t, cross_kva = t, now_kva
    bad = cross_t is not None
    clear = peak < 0.9 * limit
    n_bad = rec.cnt.get("over_capacity_risk", 0) + 1 if bad else 0
    if n_bad:
        put(rec, "cnt", "over_capacity_risk", n_bad)
    elif "over_capacity_risk" in rec.cnt:
        drop(rec, "cnt", "over_capacity_risk")
    if bad and n_bad >= 2 and "over_capacity_risk" not in rec.act:
        assert cross_t is not None and cross_kva is not None
        lead = (cross_t - t) / 60
        sev = Severity.CRITICAL if now_kva >= kva else Severity.WARNING
        ev.append(fire(rec,
            "over_capacity_risk", sev, cross_kva / kva, t, t, meta,
            f"demand projected to reach {cross_kva:.1f} kVA of the contracted {kva:.0f} kVA "
            f"in {lead:.0f} min", {
                "contracted_kva": kva, "current_kva": r3(now_kva, 2),
                "projected_kva": r3(cross_kva, 2), "projected_crossing": iso(cross_t),
                "lead_min": r3(lead, 1), "trend_kw_per_interval": r3(rec.trend_ew),
                "horizon_min": s.capacity_horizon_min}))
    elif "over_capacity_risk" in rec.act and clear:
        ev.append(resolve(rec, "over_capacity_risk", t, meta,
                                "demand is back well below the contracted capacity",
                                {"projected_peak_kva": r3(peak, 2), "contracted_kva": kva}))
