"""The quiet path of ``MeterState.step``: a reading that only teaches the meter its usual load.

Most readings are *quiet*: in order, no status flag, nothing open on the meter (no alarm but a
possible-theft one, no high, low or record run, no condition count pending but a stuck-reading
count), no fault, no power-quality issue, inside the band, no over-capacity projection, and not
closing a local day. For such a reading every detector of the full path only *learns* (or
counts a repeated value towards a stuck reading); :func:`quiet_step` does that in one function,
with the same floating-point operations in the same order as the detectors, so the state it
leaves is bit-identical.

It checks every precondition before it changes anything: the first one that fails returns
``None`` with the state untouched, and ``MeterState.step`` runs the full path. What is left to the
full path: the first reading, duplicates and readings out of order, status flags, a meter back
from silence or with an alarm open (other than possible theft) or a condition pending (other
than a stuck-reading count that does not fire), a reading that starts a run (above or below the
band, beyond the record) or is judged while a manager's verdict is on record, a fault (register
going backwards or frozen, a stuck reading that fires, off the interval grid, reverse flow),
voltage, phase or power-factor trouble, an over-capacity projection, the first reading of a
local day, and, for classes that judge theft within the day, the first reading of an hour when
judging the window that closes would raise or resolve the alarm (judged first, without changes:
:func:`~gridwatch.models._theft.window_quiet`) or when hours without a reading lie between. A
meter with a time zone of its own takes its own calendar (cached, as on the full path).
Exporting readings (negative kW on a meter with export) are quiet: not judged as consumption, as
on the full path.

``tests/models/test_quiet_path.py`` proves the equivalence (hypothesis streams and real and
simulated fleets run both ways: identical states, events, scores and profiles).
"""

from __future__ import annotations

import math
import struct
from array import array

from gridwatch._schemas import MeterMeta, Reading, Score
from gridwatch.models._alarms import cond, r3
from gridwatch.models._baseline import (
    _LEVEL,
    _MIN_DEV,
    _SHRINK,
    _SHRINK_TOW,
    learn,
)
from gridwatch.models._calendar import Calendar, calendar_for
from gridwatch.models._capacity import plan as capacity_plan
from gridwatch.models._config import ClassPolicy, DetectionSettings
from gridwatch.models._consumption import policy
from gridwatch.models._record import (
    DAY_CNT,
    DAY_MAX,
    DAY_MIN,
    DAY_NO,
    DAY_SUM,
    F16,
    FLOOR_KW,
    GAP_RUN,
    GAP_S,
    GLOBAL,
    INFERRED_S,
    INTERVAL_S,
    LAST_KW,
    LAST_KWH,
    LAST_TS,
    LAST_VMIN,
    LOG_BIAS,
    LOG_STEP,
    LV_DEV,
    LV_KW,
    LV_MU,
    LV_N,
    NO_RUN,
    PEAK_MAX,
    PEAK_TODAY,
    RESID_EW,
    STARTED,
    TH_CNT,
    TH_EXP,
    TH_OBS,
    TOW_MU,
    TOW_N,
    TREND_EW,
    ZERO_FRAC,
    MeterRecord,
    N,
    f32,
)
from gridwatch.models._result import StepResult
from gridwatch.models._theft import window_quiet

__all__ = ["quiet_step"]

_S, _B = LOG_STEP, LOG_BIAS
_STUCK = "stuck_reading"
_THEFT = "possible_theft"
_TABLE = 4096
#: the band's weights by sample count, as _baseline.band computes them: (w, 1 - w) of a
#: day-type hour with ``n`` samples (below ``_TABLE``) and of a time-of-week slot
_W_D = tuple((n / (n + _SHRINK), 1 - n / (n + _SHRINK)) for n in range(_TABLE))
_W_S = tuple((n / (n + _SHRINK_TOW), 1 - n / (n + _SHRINK_TOW)) for n in range(256))
_f32_pack_into = struct.Struct("=f").pack_into
_f32_unpack_from = struct.Struct("=f").unpack_from
_SCRATCH = array("f", b"\0\0\0\0")
_exp = math.exp
_log = math.log
_sqrt = math.sqrt
_isnan = math.isnan


class _Consts:
    """Per-settings constants of the quiet path (computed once per settings object)."""

    __slots__ = ("band_hi", "band_lo", "drift_s", "hi1", "hi3", "hi_f1", "hi_f3", "i_unb", "infer",
                 "interval_s", "levels", "lo1", "lo3", "lo_f1", "lo_f3", "min_kw", "min_pf",
                 "pols", "rev_kw", "settings", "severe_pf", "thin",
                 "two_min_kw", "v_unb", "warmup_s", "widen")

    def __init__(self, s: DetectionSettings) -> None:
        self.settings = s
        self.min_kw = s.min_kw
        self.two_min_kw = 2 * s.min_kw
        self.rev_kw = -max(s.min_kw, 0.01)
        self.drift_s = s.clock_drift_s
        self.infer = s.infer_interval
        self.interval_s = s.interval_s
        self.warmup_s = s.warmup_h * 3600
        self.band_hi, self.band_lo = s.band_hi, s.band_lo
        # (the factors as _quality writes them: nominal * (1 - pct / 100))
        nom1, nom3 = s.nominal_voltage_v, s.three_phase_nominal_v
        self.lo_f1, self.hi_f1 = 1 - s.voltage_low_pct / 100, 1 + s.voltage_high_pct / 100
        self.lo_f3, self.hi_f3 = 1 - s.three_phase_pct / 100, 1 + s.three_phase_pct / 100
        self.lo1, self.hi1 = nom1 * self.lo_f1, nom1 * self.hi_f1
        self.lo3, self.hi3 = nom3 * self.lo_f3, nom3 * self.hi_f3
        self.min_pf, self.severe_pf = s.min_power_factor, s.severe_power_factor
        # a meter with no verdict on record: _consumption's ``widen`` with a zero weight
        self.widen = 1.0 + s.feedback_strength * 0.0
        #: the band's widening while evidence is thin, by day-type samples (below _TABLE)
        self.thin = tuple(1.0 + s.thin_widen / _sqrt(1.0 + n) for n in range(_TABLE))
        self.v_unb, self.i_unb = s.voltage_unbalance_pct, s.current_unbalance_pct
        self.pols: dict[object, ClassPolicy] = {None: policy(None, s)}
        #: (event time, interval, calendar) -> the level of each step of the capacity forecast
        self.levels: dict[tuple[float, int, Calendar], tuple[int, ...]] = {}


_CONSTS: list[_Consts] = []


def _new_consts(s: DetectionSettings) -> _Consts:
    """The constants of settings ``s``, kept (``quiet_step`` looks for them first)."""
    c = _Consts(s)
    _CONSTS.insert(0, c)
    del _CONSTS[4:]  # (settings are frozen and few: an engine holds one)
    return c


def quiet_step(rec: MeterRecord, r: Reading, meta: MeterMeta | None, s: DetectionSettings,
               cal: Calendar) -> StepResult | None:
    """``MeterState.step`` for a quiet reading, or ``None`` (nothing changed) if it is not."""
    # ---- preconditions: nothing below changes the record until the commit
    x = rec.x
    if not x[N] or r.status or rec.silent:
        return None
    act = rec.act  # (only a possible-theft alarm may be open: judged on closing an hour or day)
    if act and (len(act) > 1 or _THEFT not in act):
        return None
    pending = rec.cnt  # (only a stuck-reading count may be pending: see below)
    if pending and (len(pending) > 1 or _STUCK not in pending):
        return None
    if rec.hi[1] or rec.lo[1] or rec.peak_run[1]:
        return None
    t = r.ts.timestamp()
    last_ts = x[LAST_TS]
    if t <= last_ts:
        return None
    for c in _CONSTS:
        if c.settings is s:
            break
    else:
        c = _new_consts(s)
    kw = r.kw
    kva = None
    has_export = exporting = False
    stated = None
    if meta is not None:
        tz = meta.timezone
        if tz and tz != cal.tz.key:  # a meter of another region: its own calendar (cached)
            cal = calendar_for(tz, meta.holiday_country or cal.country)
        if meta.has_export:
            has_export = True
            exporting = kw < 0  # (not judged as consumption)
        kva = meta.contracted_kva
        stated = meta.interval_s
    # the interval (as MeterState._interval infers it, committed below)
    gap_s = x[GAP_S]
    run = x[GAP_RUN]
    inferred = x[INFERRED_S]
    if c.infer:
        gap = round(t - last_ts)
        if gap == gap_s:
            run = run + 1
        else:
            gap_s = gap
            run = 1.0
        if gap >= 60 and (
                (run >= 3 and (not inferred or gap < inferred))
                or (gap > inferred and run >= max(3, 86_400 // max(gap, 1)))):
            inferred = gap
    interval_i = int(stated or r.interval_s or inferred or c.interval_s)
    interval = float(interval_i)

    # faults: register going backwards or frozen, reverse flow, stuck value, clock drift
    min_kw = c.min_kw
    kwh = r.kwh
    if kwh is not None:
        last_kwh = x[LAST_KWH]
        if kwh < last_kwh - 1e-6:
            return None
        if kwh == last_kwh and kw > min_kw and kw * interval / 3600 > 0.01:
            return None
    if kw < c.rev_kw and not has_export:
        return None
    # the same non-zero value again: counted as a stuck reading (raised by the full path)
    stuck = kw == x[LAST_KW] and kw != 0.0
    if stuck:
        n_stuck = pending.get(_STUCK, 0) + 1
        if n_stuck >= s.stuck_readings - 1:
            return None
    off = t % interval
    if interval - off < off:
        off = interval - off
    if off > c.drift_s:
        return None

    # power quality (as _quality.judge decides)
    h = rec.h
    volts = r.voltage
    if volts:
        nv = len(volts)
        three = (meta.phases if meta is not None else nv) == 3 or nv == 3
        nominal = meta.nominal_voltage_v if meta is not None else None
        if nominal:
            lo, hi = ((nominal * c.lo_f3, nominal * c.hi_f3) if three
                      else (nominal * c.lo_f1, nominal * c.hi_f1))
        else:
            lo, hi = (c.lo3, c.hi3) if three else (c.lo1, c.hi1)
        if nv == 1:
            v0 = volts[0]
            if (1.0 < v0 < lo) or v0 > hi:
                return None
            vmin_last = v0
        elif nv == 3 and volts[0] > 1.0 and volts[1] > 1.0 and volts[2] > 1.0:
            # three live phases (the common case, without the list of live ones)
            v0, v1, v2 = volts
            vmin_last = min(volts)
            if vmin_last < lo or max(volts) > hi:
                return None
            mean_v = sum(volts) / 3
            if max(abs(v0 - mean_v), abs(v1 - mean_v), abs(v2 - mean_v)) / mean_v * 100 \
                    > c.v_unb:
                return None
        else:
            live = [v for v in volts if v > 1.0]
            if (live and min(live) < lo) or max(volts) > hi:
                return None
            if len(live) == 3:
                mean_v = sum(live) / 3
                if max(abs(v - mean_v) for v in live) / mean_v * 100 > c.v_unb:
                    return None
            vmin_last = min(volts)
        cur = r.current
        if cur and len(cur) == 3 and kw > min_kw:
            mean_i = sum(cur) / 3
            if mean_i > 1.0:
                i0, i1, i2 = cur
                if max(abs(i0 - mean_i), abs(i1 - mean_i), abs(i2 - mean_i)) / mean_i * 100 \
                        > c.i_unb:
                    return None
    else:
        vmin_last = math.nan
    pf_r = r.pf
    if pf_r is not None:
        pf = abs(pf_r)
        if pf < c.min_pf and kw > min_kw:
            if pf < c.severe_pf:
                return None
            if kw >= (0.3 * kva if kva else F16[h[LV_KW + GLOBAL]]):
                return None

    # the local day (and hour) the reading adds to
    info = cal._q.get(int(t // 900)) or cal.info(t)  # (the calendar's quarters, as ``info``)
    slot = info[1]
    if info[2] != x[DAY_NO]:
        return None  # closes a day
    if meta is None:
        pol = c.pols[None]
    else:
        cls = meta.customer_class
        pol = c.pols.get(cls)
        if pol is None:
            pol = c.pols[cls] = policy(meta, s)
    theft = pol.theft_window and not exporting
    if theft:
        th = rec.th
        th_hour = rec.th_hour
        if th is None or not th_hour:
            return None  # opens the theft window
        hour = int(t // 3600)
        closes = hour != th_hour
        if closes and hour != th_hour + 1:
            return None  # hours with no reading: the full path clears them

    started = x[STARTED]
    new_start = not started and kw > min_kw
    if new_start:
        started = t
    g_n = h[LV_N + GLOBAL]
    warm = bool(started) and t - started >= c.warmup_s and g_n >= 8
    n_read = int(x[N]) + 1
    sample = s.score_sample_every
    scored = bool(sample) and n_read % sample == 0

    # the band (as _baseline.band computes it): its mean load, and the rest when judged
    d = _LEVEL[slot]
    if g_n:
        n_d = h[LV_N + d]
        mean_kw = (n_d * F16[h[LV_KW + d]] + _SHRINK * F16[h[LV_KW + GLOBAL]]) / (n_d + _SHRINK)
    else:
        n_d = 0
        mean_kw = kw
    if g_n and (warm or scored):
        mu_g, dev_g = h[LV_MU + GLOBAL] * _S - _B, h[LV_DEV + GLOBAL] * _S - _B
        if n_d < _TABLE:
            w_d, u_d = _W_D[n_d]
            thin = c.thin[n_d]
        else:
            w_d = n_d / (n_d + _SHRINK)
            u_d = 1 - w_d
            thin = 1.0 + s.thin_widen / _sqrt(1.0 + n_d)
        mu_d = w_d * (h[LV_MU + d] * _S - _B) + u_d * mu_g
        dev_d = w_d * (h[LV_DEV + d] * _S - _B) + u_d * dev_g
        cc = h[TOW_N + (slot >> 1)]
        w_s, u_s = _W_S[cc >> 8 if slot & 1 else cc & 255]
        mu = w_s * (h[TOW_MU + slot] * _S - _B) + u_s * mu_d
        dev = dev_d if dev_d > _MIN_DEV else _MIN_DEV  # (max of three: all finite, > 0)
        young = pol.young_dev * u_d
        if young > dev:
            dev = young
        dev *= thin
        fl = x[FLOOR_KW] or 0.01
        if warm and not exporting:  # consumption: inside the band, no run starts
            if kw > _exp(mu + c.band_hi * dev) - fl:
                return None
            if (kw < max(_exp(mu - c.band_lo * dev) - fl, 0.0)
                    and max(_exp(mu) - fl, 0.0) > c.two_min_kw):
                return None
            if rec.fb:
                return None  # a manager's verdict widens the thresholds: the full path
            history = x[PEAK_MAX]
            ref = c.widen * (history * pol.peak_factor if rec.peak_days >= 7
                             else 2.0 * max(history, x[PEAK_TODAY]))
            if ref > 0 and kw > ref and kw > _exp(mu + c.band_hi * dev / 2) - fl:
                return None  # beyond the meter's record
    else:
        mu = dev = fl = 0.0

    # over-capacity (as _capacity.judge projects it)
    resid = trend = 0.0
    last_kw = x[LAST_KW]
    if kva:
        pfc = max(abs(pf_r), 0.5) if pf_r is not None else 1.0
        resid = 0.7 * x[RESID_EW] + 0.3 * (kw - mean_kw) if warm else 0.0
        trend = x[TREND_EW]
        known = cal._q.get  # the calendar's quarters (its ``info`` fills them)
        g = _SHRINK * F16[h[LV_KW + GLOBAL]]
        if not _isnan(last_kw):
            if warm:  # (mean_kw_at of the previous interval's slot; mean_kw if the same level)
                t_prev = t - interval
                dp = _LEVEL[(known(int(t_prev // 900)) or cal.info(t_prev))[1]]
                if dp == d and g_n:
                    prev = last_kw - mean_kw
                else:
                    nd = h[LV_N + dp]
                    prev = last_kw - (nd * F16[h[LV_KW + dp]] + g) / (nd + _SHRINK)
                trend = 0.7 * trend + 0.3 * ((kw - mean_kw) - prev)
            else:
                trend = 0.7 * trend + 0.3 * ((kw - 0.0) - (last_kw - 0.0))
        limit = float(kva) * s.capacity_warn_fraction
        if kw / pfc >= limit:
            return None
        plan = capacity_plan(s.capacity_horizon_min, interval)
        if warm:
            # the level of each step's slot: the same for every meter reading at ``t``
            key = (t, interval_i, cal)
            levels = c.levels.get(key)
            if levels is None:
                if len(c.levels) * len(plan) >= 16_384:  # (bounded: a few hundred kB)
                    c.levels.clear()
                levels = c.levels[key] = tuple(
                    _LEVEL[(known(int((t + off) // 900)) or cal.info(t + off))[1]]
                    for off, _, _ in plan)
            d_last = -1
            lv_mean = 0.0
            for dd, (_off, damp, p90) in zip(levels, plan, strict=True):
                if dd != d_last:
                    nd = h[LV_N + dd]
                    lv_mean = (nd * F16[h[LV_KW + dd]] + g) / (nd + _SHRINK)
                    d_last = dd
                usual = lv_mean + resid * p90
                if usual < kw:
                    usual = kw
                if (usual + trend * damp) / pfc >= limit:
                    return None
        else:
            for _off, damp, _p90 in plan:
                if (kw + trend * damp) / pfc >= limit:
                    return None

    # the theft window's judgement of the hour this reading closes: nothing raised
    if (theft and closes and warm and rec.days >= s.daily_min_days
            and not window_quiet(rec, th, th_hour, t, s)):
        return None

    # ---- commit: the detectors' updates, in the full path's order
    out = StepResult()
    x[GAP_S] = gap_s
    x[GAP_RUN] = run
    x[INFERRED_S] = inferred
    x[INTERVAL_S] = interval_i
    if stuck or pending:  # counted, or the count reset: never fires (checked above)
        cond(rec, out.events, _STUCK, stuck, t, meta, fire_after=s.stuck_readings - 1)
    if new_start:
        x[STARTED] = t
    if warm and not exporting:
        rec.hi = rec.lo = NO_RUN
    if theft:
        if closes:  # (the next hour starts from zero)
            i = hour % 24
            th[TH_OBS + i] = th[TH_EXP + i] = th[TH_CNT + i] = 0.0
            rec.th_hour = th_hour = hour
        i = th_hour % 24
        th[TH_OBS + i] = th[TH_OBS + i] + f32(max(kw, 0.0))
        th[TH_EXP + i] = th[TH_EXP + i] + f32(mean_kw)
        th[TH_CNT + i] = min(int(th[TH_CNT + i]) + 1, 255)
    if kva:
        x[RESID_EW] = resid
        if not _isnan(last_kw):
            x[TREND_EW] = trend
    # (set_f32, get_f32, f32 and inc_u8 of _daily.accumulate, inlined)
    hr = slot % 24
    i = 2 * (DAY_SUM + 2 * hr)  # (bytes)
    _SCRATCH[0] = kw
    _f32_pack_into(h, i, _f32_unpack_from(h, i)[0] + _SCRATCH[0])
    j = DAY_CNT + (hr >> 1)
    cc = h[j]
    if hr & 1:
        if cc < 0xFF00:
            h[j] = cc + 256
    elif cc & 255 != 255:
        h[j] = cc + 1
    if kw > x[DAY_MAX]:
        x[DAY_MAX] = kw
    if kw < x[DAY_MIN]:
        x[DAY_MIN] = kw
    if kw > x[PEAK_TODAY]:
        x[PEAK_TODAY] = kw
    if started:
        learn(rec, slot, kw)  # (the full path's learning: no band edge, nothing open)
        zf = x[ZERO_FRAC]
        a = 1.0 / int(x[N])  # (max(a, 0.002); N > 0 on this path)
        if a < 0.002:
            a = 0.002
        x[ZERO_FRAC] = zf + a * ((kw <= min_kw) - zf)
    x[N] = n_read
    if scored:
        if g_n:
            expected = max(_exp(mu) - fl, 0.0)
            z = (_log(max(kw, 0.0) + fl) - mu) / dev
        else:
            expected, z = kw, 0.0
        out.score = Score(meter_id=rec.meter_id, ts=r.ts, kw=kw, expected_kw=r3(expected, 4),
                          score=r3(abs(z)), anomalous=False)
    x[LAST_TS] = t
    x[LAST_KW] = kw
    if kwh is not None:
        x[LAST_KWH] = kwh
    x[LAST_VMIN] = vmin_last
    rec.last_fail = False
    return out
