"""The meter's day: load profile accumulators, and the detectors that judge whole days.

Each local day's 24 hourly means close into a :class:`DailyProfile` when the first reading of the
next day arrives. The closed day is compared with the meter's usual curve for its day type:

* **possible theft** — the day's energy stays below ``theft_ratio`` of usual for ``theft_days``
  days in a row *while keeping the usual shape* (a bypass scales the whole curve down; an empty
  house flattens it);
* **level shift** — the day's energy beyond ``level_ratio`` (or below its inverse, where the
  class policy asks for it) for ``level_days`` days in a row.

Both resolve when a day is back near the usual level, never on one calm reading.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np

from gridwatch._schemas import Event, MeterMeta, Severity
from gridwatch.models import _quiet_codes as cl
from gridwatch.models._alarms import feedback, fire, r3, resolve
from gridwatch.models._calendar import Calendar
from gridwatch.models._config import DetectionSettings
from gridwatch.models._consumption import (
    DAILY_KINDS,
    ETYPE,
    HIGH_KINDS,
    open_kind,
    policy,
    supersede,
)
from gridwatch.models._record import (
    _F16_MAX,
    DAY_CNT,
    DAY_MAX,
    DAY_MIN,
    DAY_NO,
    DAY_SUM,
    F16,
    N_PEAKS,
    NO_DAYS,
    PEAKS,
    MeterRecord,
    enc_f16,
    f32,
    get_f32,
    inc_u8,
    set_f32,
)

__all__ = ["DailyProfile", "accumulate", "closed_profile"]

_sum = np.add.reduce
_ALPHA_CURVE = 0.125  # daily curves: about eight days of memory
_NO_SUMS = array("H", bytes(96))  # today's sums and counts when the day starts
_NO_COUNTS = array("H", bytes(24))
_T = TypeVar("_T")
_F16_INF = 0x7C00  #: the float16 code of +inf: the codes up to it are zero and positive values


@dataclass(slots=True)
class DailyProfile:
    """One finished local day of one meter: what the segment models learn from."""

    meter_id: str
    day: datetime
    customer_id: str | None
    customer_class: str
    daily_kwh: float
    peak_kw: float
    valley_kw: float
    day_curve: tuple[float, ...]  # the day's 24 hourly means (kW)
    weekday_curve: tuple[float, ...]  # learned typical weekday curve (kW)
    weekend_curve: tuple[float, ...]  # learned typical weekend/holiday curve (kW)
    is_day_off: bool
    mom_growth: float | None
    #: today's energy over the meter's own history (1.0 = as usual); None while learning
    ratio: float | None


def accumulate(rec: MeterRecord, kw: float, t: float, interval: float, meta: MeterMeta | None,
               s: DetectionSettings, cal: Calendar, out: list[Event],
               info: tuple[int, int, int] | None = None) -> DailyProfile | None:
    """Add one reading to its local day; close the previous day when a new one starts.
    ``info`` is ``cal.info(t)`` when the caller has it."""
    _, slot, day = info or cal.info(t)
    done = None
    x = rec.x
    if day != x[DAY_NO]:
        done = turn_day(rec, day, meta, s, cal, t, out)
    h = rec.h
    hr = slot % 24
    # a float32 sum, rounded as the float32 array of version 4 rounded it
    i = DAY_SUM + 2 * hr
    set_f32(h, i, get_f32(h, i) + f32(kw))
    inc_u8(h, DAY_CNT, hr)  # (capped at 255)
    if kw > x[DAY_MAX]:
        x[DAY_MAX] = kw
    if kw < x[DAY_MIN]:
        x[DAY_MIN] = kw
    return done


def turn_day(rec: MeterRecord, day: int, meta: MeterMeta | None, s: DetectionSettings,
             cal: Calendar, t: float, out: list[Event]) -> DailyProfile | None:
    """What a reading of a new local day ``day`` does first: close the meter's day (its
    profile, or None when it has none or too little of it was seen) and start ``day``.
    The full path and the quiet path (``_quiet.python_quiet_step``) call it after the
    reading's judgements and before its own sums."""
    done = _close_day(rec, meta, s, cal, t, out) if rec.x[DAY_NO] else None
    _new_day(rec, day)
    return done


def _new_day(rec: MeterRecord, day: int) -> None:
    h = rec.h
    last = rec.day_no
    if last and rec.peak_today > 0:
        h[PEAKS + last % N_PEAKS] = enc_f16(rec.peak_today)  # (float16: 11 significant bits)
        if day - last > 1:  # days without readings hold no record
            for d in range(last + 1, min(day, last + 1 + N_PEAKS)):
                h[PEAKS + d % N_PEAKS] = 0
    h[PEAKS + day % N_PEAKS] = 0  # (the float16 code of 0.0)
    codes = h[PEAKS:PEAKS + N_PEAKS]
    top = max(codes)
    if top <= _F16_INF:  # zeros and positive values (what is written): ordered as their codes
        rec.peak_max = F16[top]
        rec.peak_days = N_PEAKS - codes.count(0)
    else:  # a negative or NaN code: the values themselves
        ring = [F16[c] for c in codes]
        rec.peak_max = max(ring)
        rec.peak_days = sum(1 for x in ring if x > 0)
    rec.peak_today = 0.0
    rec.day_no = day
    h[DAY_SUM:DAY_SUM + 48] = _NO_SUMS
    h[DAY_CNT:DAY_CNT + 12] = _NO_COUNTS
    rec.day_max, rec.day_min = -math.inf, math.inf


def _learn_curve(usual: np.ndarray, curve: np.ndarray, a: float) -> None:
    """Move a usual curve (a float16 view) towards ``curve`` by ``a``, saturating at float16's
    largest value as every other float16 part of the record does (beyond it a curve would turn
    infinite, then NaN the next day, for good)."""
    # (np.clip's result, NaN kept, without its Python wrapper)
    usual[:] = np.minimum(np.maximum(usual + a * (curve - usual), -_F16_MAX), _F16_MAX)


#: the compiled close (``_daily_jit.entry_points()``) while the compiled path is on (set and
#: cleared by ``_quiet.use_compiled``), else None: the numpy path below
COMPILED: list[Any] = [None]


def _close_day(rec: MeterRecord, meta: MeterMeta | None, s: DetectionSettings, cal: Calendar,
               t: float, out: list[Event]) -> DailyProfile | None:
    compiled = COMPILED[0]
    if compiled is None:
        cnt = rec.view("day_cnt").astype(np.float32)
        if np.count_nonzero(cnt) < 20:  # too little of the day seen to profile it
            return None
        day_start, day_t, off, day_utc = cal.day(rec.day_no)
        # (the curves are float16 views; what is judged against them is summed in float32)
        typical = (rec.view("we_curve") if off else rec.view("wd_curve")).astype(np.float32)
        # each hour's mean, the usual curve's for an hour without readings (a float32 sum of
        # finite readings over a positive count is never NaN: no mean is taken for one)
        curve = np.where(cnt > 0, rec.view("day_sum") / np.maximum(cnt, 1), typical)
        daily_kwh = float(_sum(curve))  # 24 hourly means in kW = kWh of the day
        usual_day = float(_sum(typical))
        corr = None
    else:  # the same numbers, compiled (``_daily_jit.close_numbers``)
        day_start, day_t, off, day_utc = cal.day(rec.day_no)
        sc = _scratch()
        curve, typical = sc.curve, sc.typical
        covered, daily_kwh, usual_day, corr = compiled[0](
            rec.h.buffer_info()[0], off, sc.curve_at, sc.typical_at)
        if covered < 20:
            return None
    wd_curve, we_curve = rec.view("wd_curve"), rec.view("we_curve")
    typical_days = rec.we_days if off else rec.wd_days
    judged = (typical_days >= s.daily_min_days and rec.days >= s.daily_min_days
              and usual_day > 24 * s.min_kw)
    held = False
    if judged:
        held = _judge_day(rec, _shape_corr(curve, typical) if corr is None else corr,
                          daily_kwh / usual_day, usual_day, daily_kwh, day_t, t, meta, s, out)
    if not held:
        if off:
            rec.we_days += 1
            a = max(1.0 / rec.we_days, _ALPHA_CURVE)
            _learn_curve(we_curve, curve, a)
        else:
            rec.wd_days += 1
            a = max(1.0 / rec.wd_days, _ALPHA_CURVE)
            _learn_curve(wd_curve, curve, a)

    # month-on-month growth
    month = day_start.year * 12 + day_start.month
    mom = None
    if rec.month_no and month != rec.month_no:
        if not math.isnan(rec.prev_month_kwh) and rec.prev_month_kwh > 0:
            mom = rec.month_kwh / rec.prev_month_kwh - 1
        rec.prev_month_kwh = rec.month_kwh
        rec.month_kwh = 0.0
    rec.month_no = month
    rec.month_kwh += daily_kwh
    if mom is None and not math.isnan(rec.prev_month_kwh) and rec.prev_month_kwh > 0:
        mom = rec.month_kwh / day_start.day * 30.4 / rec.prev_month_kwh - 1
    # today's energy against the meter's own history: what the segment judge compares
    ratio = None
    rec.days += 1
    if rec.days > s.daily_min_days and rec.hist_kwh > 0:
        ratio = daily_kwh / rec.hist_kwh
    if not held:
        a = max(1.0 / rec.days, 1.0 / 28)
        rec.hist_kwh += a * (daily_kwh - rec.hist_kwh)
    curves = _rounded(curve, wd_curve, we_curve) if compiled is None \
        else _rounded_compiled(compiled[1], sc, rec.h)
    return _profile(rec.meter_id, meta, day_utc, daily_kwh, rec.day_max, rec.day_min, curves,
                    off, mom, ratio)


def _profile(meter_id: str, meta: MeterMeta | None, day: datetime, daily_kwh: float,
             peak_kw: float, valley_kw: float, curves: list[tuple[float, ...]], off: bool,
             mom: float | None, ratio: float | None) -> DailyProfile:
    """The profile of a closed day (``curves``: the day's, the usual weekday and day-off
    curves, rounded)."""
    return DailyProfile(
        meter_id=meter_id, day=day,
        customer_id=meta.customer_id if meta else None,
        customer_class=str(meta.customer_class) if meta else "residential",
        daily_kwh=daily_kwh, peak_kw=float(peak_kw), valley_kw=float(valley_kw),
        day_curve=curves[0], weekday_curve=curves[1], weekend_curve=curves[2],
        is_day_off=off, mom_growth=None if mom is None else round(mom, 4),
        ratio=None if ratio is None else round(ratio, 4))


def closed_profile(meter_id: str, meta: MeterMeta | None, cal: Calendar,
                   row: np.ndarray) -> DailyProfile:
    """The profile of a day the lane's kernel closed, from its row of the close buffer
    (``_quiet_codes.CL_KWH`` and the rest)."""
    v = row[:cl.CL_DAY + 1].tolist()
    return _profile(meter_id, meta, cal.day(int(v[cl.CL_DAY]))[3], v[cl.CL_KWH], v[cl.CL_PEAK],
                    v[cl.CL_VALLEY], [tuple(v[:24]), tuple(v[24:48]), tuple(v[48:72])],
                    bool(v[cl.CL_OFF]), v[cl.CL_MOM] if v[cl.CL_HAS_MOM] else None,
                    v[cl.CL_RATIO] if v[cl.CL_HAS_RATIO] else None)


#: ``v`` within this much of a half (relative to ``v * 10**4``) is rounded by ``round`` itself
_NEAR_HALF = 2.0 ** -50
#: below this, ``v * 10**4`` is finite (the largest float is about 1.8e308)
_NO_OVERFLOW = 1e300
_top = np.maximum.reduce


def _rounded(*curves: np.ndarray) -> list[tuple[float, ...]]:
    """Each curve's values rounded to 4 decimals: exactly ``round(float(v), 4)`` of each, in one
    pass over all of them (``round`` with digits goes through a decimal string, about 0.3 µs a
    value: 72 values a meter-day).

    For ``p = v * 10**4`` (computed) the nearest integer ``k`` is taken, and ``k / 10**4``: the
    float nearest to the decimal ``k * 10**-4``, which is what ``round`` returns. ``k`` is the
    integer nearest to the exact ``v * 10**4`` too unless the product's own rounding (at most
    ``2**-53`` of it) could have moved it across a half: the values that near a half, and any
    that are not finite, are rounded by ``round`` itself."""
    v = np.concatenate(curves, dtype=np.float64) if len(curves) > 1 else \
        np.asarray(curves[0], dtype=np.float64)
    if _top(np.abs(v), initial=0.0) < _NO_OVERFLOW:  # all finite (NaN compares false)
        out, near = _nearest(v)
    else:  # (``np.errstate`` costs more than the rest: only where a value is not finite)
        with np.errstate(invalid="ignore", over="ignore"):
            out, near = _nearest(v)
    if len(near):
        values = v.tolist()
        for i in near.tolist():
            out[i] = round(values[i], 4)
    rounded = []
    at = 0
    for c in curves:
        n = len(c)
        rounded.append(tuple(out[at:at + n]))
        at += n
    return rounded


def _rounded_compiled(kernel: Any, sc: _Scratch, h: array) -> list[tuple[float, ...]]:
    """``_rounded(curve, wd_curve, we_curve)`` through the compiled ``_daily_jit.rounded``, of
    the day's curve in ``sc`` and the usual curves in the record's buffer ``h``: the same
    values."""
    kernel(sc.curve_at, h.buffer_info()[0], sc.rounded_at)
    got = sc.rounded.tolist()
    return [tuple(got[:24]), tuple(got[24:48]), tuple(got[48:])]


class _Scratch:
    """One thread's buffers for the compiled close, with their addresses: the day's curve and
    the usual one (float32) and the 72 rounded values. A close fills them and is done with
    them before it returns (nothing of them is kept: the profile holds tuples)."""

    __slots__ = ("curve", "curve_at", "rounded", "rounded_at", "typical", "typical_at")

    def __init__(self) -> None:
        self.curve = np.empty(24, np.float32)
        self.typical = np.empty(24, np.float32)
        self.rounded = np.empty(72, np.float64)
        self.curve_at = self.curve.ctypes.data
        self.typical_at = self.typical.ctypes.data
        self.rounded_at = self.rounded.ctypes.data


def per_thread(store: threading.local, make: Callable[[], _T]) -> _T:
    """This thread's object in ``store``, made by ``make`` on its first use (an engine may run
    several dataflow workers as threads of one process: each has its own scratch buffers)."""
    got: _T | None = getattr(store, "got", None)
    if got is None:
        got = store.got = make()
    return got


_SCRATCH = threading.local()


def _scratch() -> _Scratch:
    """This thread's :class:`_Scratch`."""
    return per_thread(_SCRATCH, _Scratch)


def _nearest(v: np.ndarray) -> tuple[list[float], np.ndarray]:
    """``k / 10**4`` of each value (see :func:`_rounded`), and the indexes of those too near
    a half to trust it."""
    p = v * 1e4
    k = np.rint(p)
    return (k / 1e4).tolist(), \
        np.flatnonzero(~(np.abs(np.abs(p - k) - 0.5) > np.abs(p) * _NEAR_HALF))


def _mean(a: np.ndarray) -> float:
    """``float(a.mean())`` of a float64 array, without ``mean``'s Python wrapper (more than
    half its cost on 24 values): numpy's ``mean`` of float64 is the same pairwise sum divided
    by the count, so the result is the same float."""
    return float(np.add.reduce(a)) / a.size


def _mean32(a: np.ndarray) -> np.float32:
    """``a.mean()`` of a float32 array, without ``mean``'s Python wrapper: numpy sums in
    float32 and divides that sum, as a double, by the count, then rounds to float32."""
    return np.float32(float(np.add.reduce(a)) / a.size)


def _shape_corr(curve: np.ndarray, typical: np.ndarray) -> float:
    a = curve - _mean32(curve)
    b = typical - _mean32(typical)
    # (``np.add.reduce``: what ``ndarray.sum`` calls, without its Python wrapper)
    den = float(np.sqrt(_sum(a * a) * _sum(b * b)))
    return float(_sum(a * b)) / den if den > 1e-12 else 0.0


def _run(state: tuple[float, int], holds: bool, day_t: float) -> tuple[float, int]:
    if not holds:
        return NO_DAYS
    return (state[0] if state[1] else day_t, state[1] + 1)


def _judge_day(rec: MeterRecord, corr: float, ratio: float,
               usual_day: float, daily_kwh: float, day_t: float, t: float,
               meta: MeterMeta | None, s: DetectionSettings, out: list[Event]) -> bool:
    """Judge a closed day (``corr``: the shape correlation of its curve with the usual one);
    returns True when the day should not be learned as usual."""
    pol = policy(meta, s)
    half_life = s.feedback_half_life_days * 86_400
    theft_ratio = s.theft_ratio / (
        1.0 + s.feedback_strength * feedback(rec, "possible_theft", "", t, half_life))
    level_ratio = s.level_ratio * (
        1.0 + s.feedback_strength * feedback(rec, ETYPE, "level_shift_up", t, half_life))
    shaped = corr >= s.theft_shape_corr
    rec.low_days = _run(rec.low_days, ratio < theft_ratio and shaped, day_t)
    rec.high_days = _run(rec.high_days, ratio >= level_ratio, day_t)
    rec.down_days = _run(rec.down_days, ratio <= 1 / s.level_ratio and not shaped, day_t)

    def evidence() -> dict[str, Any]:  # (only for a day that raises or resolves an alarm)
        return {"day_ratio": r3(ratio), "day_kwh": r3(daily_kwh, 2),
                "usual_day_kwh": r3(usual_day, 2), "shape_corr": r3(corr)}

    # possible theft
    if "possible_theft" in rec.act:
        if ratio >= (1 + s.theft_ratio) / 2:
            out.append(resolve(rec, "possible_theft", t, meta,
                               "daily consumption is back near its usual level", evidence()))
    elif rec.low_days[1] >= s.theft_days:
        since, days = rec.low_days
        out.append(fire(
            rec, "possible_theft", Severity.WARNING, 1 - ratio, since, t, meta,
            f"{days} days at {ratio:.0%} of the energy the meter's own history expects, with "
            "the usual daily shape (a bypass scales the load down; an empty home flattens it)",
            {**evidence(), "days_low": days, "threshold_ratio": s.theft_ratio,
             "strong": ratio < s.theft_strong_ratio and corr >= 0.7 and days > s.theft_days,
             "baseline": "the meter's usual curve for this day type"}))

    # level shifts (daily kinds of abnormal consumption)
    kind = open_kind(rec)
    if kind in DAILY_KINDS:
        back = (ratio < math.sqrt(s.level_ratio) if kind == "level_shift_up"
                else ratio > 1 / math.sqrt(s.level_ratio))
        if back:
            rec.kind = ""
            out.append(resolve(rec, ETYPE, t, meta, "daily consumption is back to its usual "
                               "level", {**evidence(), "kind": kind}))
    for new, run in (("level_shift_up", rec.high_days),
                     ("level_shift_down", rec.down_days if pol.level_down else (0.0, 0))):
        if run[1] >= s.level_days and kind != new:
            if (kind in HIGH_KINDS) == (new == "level_shift_up") and kind:
                # the episode raised within the day goes on as a level shift: one fault, one
                # alarm; it now resolves on whole days
                rec.kind = new
                break
            supersede(rec, t, meta, new, out)
            rec.kind = new
            rec.calm = 0
            out.append(fire(
                rec, ETYPE, Severity.WARNING, abs(math.log(max(ratio, 1e-3))), run[0], t, meta,
                f"{new.replace('_', ' ')}: {run[1]} days at {ratio:.0%} of the usual daily "
                f"energy ({daily_kwh:.1f} kWh where {usual_day:.1f} kWh is usual)",
                {**evidence(), "kind": new, "days": run[1], "threshold_ratio": s.level_ratio,
                 "baseline": "the meter's usual curve for this day type"}))
            break
    persisted = any(t - onset > s.relearn_after_s for onset in rec.act.values())
    return (("possible_theft" in rec.act or open_kind(rec) in DAILY_KINDS)
            and not persisted)
