"""The quiet path's arithmetic compiled to machine code (numba): :func:`kernel`.

``_quiet.quiet_step`` hands a reading here after the checks that need Python objects (the
meter's open alarms and counts, its metadata, the calendar); the kernel checks the rest of the
quiet path's preconditions and, when they all hold, makes the quiet path's updates straight in
the record's own buffers (``x``, ``h`` and ``th``, by address). It performs the same IEEE
operations in the same order as ``_quiet.python_quiet_step`` and the detectors, so the record it
leaves is bit-identical (``tests/models/test_quiet_path.py`` runs every stream through the
kernel, the Python quiet path and the full path).

It answers ``NOT_QUIET`` (nothing changed: the full path runs), ``DONE`` (the record updated;
the caller sets the few Python-level fields the flags name and builds the sampled score and,
for a day closed, its profile), or ``PYTHON`` (nothing changed: a case the kernel leaves to the
Python quiet path: the first reading of a local day whose close is Python's (a daily run or
a possible-theft alarm, a day without readings before it, or no close buffer given); the
closing of a theft window whose judgement is not clearly quiet, three voltages not all live, a
sum beyond float32's range or a band beyond ``exp``'s).

The first reading of a local day closes the day before here (:func:`_plan_close`,
:func:`_close`): the day's numbers, its judgement where it starts no daily run, the usual
curve's learning, the month, the meter's history and the record ring, as ``_daily.turn_day``
makes them, with the profile's numbers left in the caller's close buffer
(``_quiet.close_buffer``, a row a reading) for Python to make the profile object. A meter's
first reading sets up its record and day here too, and a theft window not being filled (a
meter's first judged hour) opens here, from zeros, in the window the caller allocated
(``_quiet.lane_entry``: without one, the reading is not quiet).

numba compiles it once per machine (``cache=True``: the machine code is kept beside this file
in ``__pycache__``, and later processes load it in a fraction of a second).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from gridwatch.models._baseline import (
    _ALPHA_DT,
    _ALPHA_G,
    _ALPHA_TOW,
    _LEVEL,
    _MIN_DEV,
    _SHRINK,
    _SHRINK_TOW,
)
from gridwatch.models._quiet_codes import (
    ANOMALOUS,
    CL_DAY,
    CL_HAS_MOM,
    CL_HAS_RATIO,
    CL_KWH,
    CL_MOM,
    CL_OFF,
    CL_PEAK,
    CL_RATIO,
    CL_VALLEY,
    CLOSE_N,
    CLOSED,
    CONSTS,
    DAY_TURNED,
    DONE,
    NOT_QUIET,
    POLICY,
    PYTHON,
    RUN_HI,
    RUN_KIND,
    RUN_LO,
    RUN_N,
    RUN_ONSET,
    RUN_PEAK,
    RUNS,
    SCORED,
    SET_NO_RUN,
    STUCK,
    STUCK_COUNT,
    TH_HOUR,
)
from gridwatch.models._record import (
    C_CALM,
    C_DAYS,
    C_PEAK_DAYS,
    C_WD_DAYS,
    C_WE_DAYS,
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
    H_LEN,
    HIST_KWH,
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
    MONTH_KWH,
    MONTH_NO,
    N_PEAKS,
    PEAK_MAX,
    PEAK_TODAY,
    PEAKS,
    PREV_MONTH_KWH,
    RESID_EW,
    STARTED,
    TH_CNT,
    TH_EXP,
    TH_LEN,
    TH_OBS,
    TOW_MU,
    TOW_N,
    TREND_EW,
    WD,
    WE,
    X_AT,
    ZERO_FRAC,
    N,
)

__all__ = ["LANE_ADDRESSES", "LANE_IN", "LANE_METER", "LANE_PROFILE", "direct", "kernel", "lane"]

# (the positions of _quiet_codes.CONSTS, in its order)
(_MIN_KW, _TWO_MIN_KW, _REV_KW, _DRIFT_S, _INFER, _INTERVAL_S, _WARMUP_S, _BAND_HI, _BAND_LO,
 _LO_F1, _HI_F1, _LO_F3, _HI_F3, _LO1, _HI1, _LO3, _HI3, _MIN_PF, _SEVERE_PF, _WIDEN,
 _THIN_WIDEN, _V_UNB, _I_UNB, _SAMPLE, _WARN_FRACTION, _THEFT_N, _THEFT_LIMIT,
 _STUCK_FIRE, _MIN_DAYS, _DAY_MIN_KWH, _LEVEL_LIMIT, _LEVEL_DOWN, _THEFT_CORR, _CLEAR_S,
 _RELEARN_S) = range(len(CONSTS))
_N_CONSTS = len(CONSTS)
_N_POLICY = len(POLICY)
_N_X = N + 3  # (the record's scalars up to the month number)

_S, _B = LOG_STEP, LOG_BIAS
_F16_MAX = 65_504.0
_EXP_MAX = 709.0  # (math.exp raises beyond about 709.78; the kernel leaves such a band to Python)
_MU_G, _DEV_G, _KW_G, _N_G = LV_MU + GLOBAL, LV_DEV + GLOBAL, LV_KW + GLOBAL, LV_N + GLOBAL
#: the record's decodings, as tables (frozen into the machine code)
_LV = np.array([code * _S - _B for code in range(65_536)], dtype=np.float64)
_F16 = np.array(F16, dtype=np.float64)
_LEVELS = np.array(_LEVEL, dtype=np.int64)


def _pointer(kind: types.Type) -> Any:
    """An intrinsic that takes an address (an int) as a pointer to ``kind``."""

    @intrinsic
    def as_pointer(typingctx, addr):
        sig = types.CPointer(kind)(types.intp)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return sig, codegen

    return as_pointer


_f64p = _pointer(types.float64)
_f32p = _pointer(types.float32)
_u16p = _pointer(types.uint16)
_u8p = _pointer(types.uint8)


@numba.njit(cache=True)
def _rint(v: float) -> float:
    """Python's ``round(v)`` (to the nearest integer, ties to even), as a float."""
    f = float(np.floor(v))  # (np.floor: a float; math.floor would be an int64)
    d = v - f
    if d > 0.5 or (d == 0.5 and f % 2.0 != 0.0):
        f += 1.0
    return f


@numba.njit(cache=True)
def _enc_log(v: float) -> int:
    """``enc_log``'s last step: ``v`` is ``(y + LOG_BIAS) * 2048 + 0.5``."""
    if 0.0 <= v < 65_535.0:
        return int(v)
    return 65_535 if v >= 65_535.0 else 0


@numba.njit(cache=True)
def _enc_f16(v: float) -> int:
    """The float16 code of ``v`` (|v| <= 65,504, not NaN): ``struct``'s ``e``, rounding the
    double once to the nearest half, ties to even."""
    sign = 0
    if v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0):
        sign = 0x8000
    a = abs(v)
    if a == 0.0:
        return sign
    if a < 6.103515625e-05:  # below the smallest normal half (2**-14): steps of 2**-24
        return sign | int(_rint(a * 16_777_216.0))
    m, e = math.frexp(a)  # a = m * 2**e, 0.5 <= m < 1
    q = int(_rint(math.ldexp(m, 11)))  # 11 significant bits, 1024..2048
    return sign | (((e + 14) << 10) + q - 1024)


@numba.njit(cache=True)
def _enc_f16_saturating(v: float) -> int:
    """``_record.enc_f16``: saturating at ±65,504."""
    if v > _F16_MAX:
        v = _F16_MAX
    elif v < -_F16_MAX:
        v = -_F16_MAX
    return _enc_f16(v)


@numba.njit(cache=True)
def _update(h, idx: int, y: float, kw: float, alpha: float, prior: float,
            spread: bool = True) -> None:
    """``_baseline._update``."""
    n = int(h[LV_N + idx])
    if n == 0 and prior == 0.0:
        h[LV_MU + idx] = _enc_log((y + _B) * 2048.0 + 0.5)
        h[LV_DEV + idx] = _enc_log((0.0 + _B) * 2048.0 + 0.5)
        h[LV_KW + idx] = _enc_f16_saturating(kw)
    else:
        a = 1.0 / (n + 1 + prior)
        if alpha > a:
            a = alpha
        _learn_level(h, LV_MU + idx, LV_DEV + idx, LV_KW + idx, a, _LV[h[LV_MU + idx]],
                     _LV[h[LV_DEV + idx]], n + prior >= 8, y, kw, spread)
    if n < 65_535:
        h[LV_N + idx] = n + 1


@numba.njit(cache=True)
def _learn_global(h, x, slot: int, kw: float) -> tuple[float, float, int, float]:
    """The first part of ``_baseline.learn``: the reading's kW (``max(kw, 0.0)``: NaN and
    -0.0 kept, as max keeps its first argument), the log offset that follows the meter's own
    level, the meter-wide level's step, and the slot's level started from the meter-wide one
    if new; returns (kW, offset, the slot's level, the reading's log)."""
    if kw < 0.0:
        kw = 0.0
    g_n = int(h[_N_G])
    usual = _F16[h[_KW_G]] if g_n else kw
    fl = x[FLOOR_KW]
    if g_n < 96 or fl == 0.0:
        fl = 0.05 * usual
        if not fl > 0.01:
            fl = 0.01
        x[FLOOR_KW] = fl
    y = math.log(kw + fl)
    _update(h, GLOBAL, y, kw, _ALPHA_G, 0.0)
    d = _LEVELS[slot]
    if not h[LV_N + d]:
        h[LV_MU + d] = h[_MU_G]
        h[LV_DEV + d] = h[_DEV_G]
        h[LV_KW + d] = h[_KW_G]
    return kw, fl, d, y


@numba.njit(cache=True)
def _learn(h, x, slot: int, kw: float) -> None:
    """``_baseline.learn(rec, slot, kw)`` with no band edge (what ``_quiet._learn_settled``
    writes out for a settled meter is this too: compiled, decoding a level again costs a
    table look-up, so the kernel has the one function)."""
    kw, _, d, y = _learn_global(h, x, slot, kw)
    _update(h, d, y, kw, _ALPHA_DT, _SHRINK)
    _learn_tow(h, slot, d, y)


@numba.njit(cache=True)
def _learn_edge(h, x, slot: int, kw: float, lo: float, hi: float) -> None:
    """``_baseline.learn(rec, slot, kw, (lo, hi))``: the meter-wide level learns the reading,
    the slot's levels the band's edge nearest it (and not its spread)."""
    kw, fl, d, _ = _learn_global(h, x, slot, kw)
    kw_slot = lo if lo > kw else kw  # (min(max(kw, lo), hi), as Python's max and min)
    if hi < kw_slot:
        kw_slot = hi
    y_slot = math.log(kw_slot + fl)
    _update(h, d, y_slot, kw_slot, _ALPHA_DT, _SHRINK, False)
    _learn_tow(h, slot, d, y_slot)


@numba.njit(cache=True)
def _learn_tow(h, slot: int, d: int, y: float) -> None:
    """The time-of-week slot's step of ``_baseline.learn``, after its level ``d`` learned: a
    new slot starts from the level's mean; winsorised by the level's dispersion."""
    i = TOW_N + (slot >> 1)
    c = int(h[i])
    n = c >> 8 if slot & 1 else c & 255
    mu = _LV[h[TOW_MU + slot] if n else h[LV_MU + d]]
    dev = _LV[h[LV_DEV + d]]
    lim = 2.5 * (_MIN_DEV if dev < _MIN_DEV else dev)
    r = y - mu
    if r > lim:
        r = lim
    elif r < -lim:
        r = -lim
    h[TOW_MU + slot] = _enc_log((mu + _ALPHA_TOW * r + _B) * 2048.0 + 0.5)
    if n < 255:
        h[i] = c + 256 if slot & 1 else c + 1


@numba.njit(cache=True)
def _unbalance_pct(a: float, b: float, c: float, mean: float) -> float:
    """The largest deviation of three phases from their ``mean``, in % of it (as
    ``_quality.judge`` computes it, the maximum written as conditionals)."""
    a0, a1, a2 = abs(a - mean), abs(b - mean), abs(c - mean)
    if a1 > a0:
        a0 = a1
    if a2 > a0:
        a0 = a2
    return a0 / mean * 100


@numba.njit(cache=True)
def _window_quiet(th, last: int, theft_open: bool, min_kw: float, n_hours: float,
                  limit: float) -> bool:
    """Whether the theft window closing with hour ``last`` clearly raises nothing, as
    ``_theft._assess`` judges it for a meter without the alarm open and without verdicts: a
    gap in the window, too little usual energy, or a ratio of observed to usual energy at or
    above the limit. The sums are not numpy's (pairwise) ones, so a total or ratio within a
    relative 1e-9 of its threshold is left to Python (``False``), as is an open alarm."""
    if theft_open:
        return False
    n = int(n_hours)
    for k in range(n):
        if th[TH_CNT + (last - k) % 24] == 0.0:
            return True  # a gap in the window: not judged
    obs = total = 0.0
    for k in range(n):
        i = (last - k) % 24
        cnt = np.float64(th[TH_CNT + i])
        obs += np.float64(th[TH_OBS + i]) / cnt
        total += np.float64(th[TH_EXP + i]) / cnt
    floor = n * 2 * min_kw
    margin = 1e-9 * (abs(floor) + abs(total))
    if total < floor - margin:
        return True
    if total <= floor + margin or total == 0.0:
        return False
    ratio = obs / total
    return ratio > limit + 1e-9 * abs(limit)


@numba.njit(cache=True)
def _learn_level(h, i_mu: int, i_dev: int, i_kw: int, a: float, mu: float, dev: float,
                 winsorise: bool, y: float, kw: float, spread: bool = True) -> None:
    """One level's step of ``_baseline._update`` at rate ``a`` from its decoded mean ``mu`` and
    dispersion ``dev`` (``_quiet._learn_level``, whose ``abs`` written as a conditional differs
    only for ``r = -0.0``, and then leaves the same codes); ``spread``: the dispersion learns
    too."""
    r = y - mu
    d_new = abs(r)
    if winsorise:
        md = _MIN_DEV if dev < _MIN_DEV else dev
        lim = 2.5 * md
        if r > lim:
            r = lim
        elif r < -lim:
            r = -lim
        if 4 * md < d_new:
            d_new = 4 * md
    h[i_mu] = _enc_log((mu + a * r + _B) * 2048.0 + 0.5)
    if spread:
        h[i_dev] = _enc_log((dev + a * (d_new - dev) + _B) * 2048.0 + 0.5)
    lv_kw = _F16[h[i_kw]]
    h[i_kw] = _enc_f16_saturating(lv_kw + a * (kw - lv_kw))


# ---- a day's close (``_daily._close_day`` and ``_daily._new_day``)
@numba.njit(cache=True)
def pairwise24(a: Any) -> Any:
    """numpy's ``add.reduce`` of 24 float32 values, in its order: eight running sums over the
    first 24 (the unrolled block), combined as ((0+1)+(2+3))+((4+5)+(6+7)); 24 is a multiple
    of eight, so nothing is added after."""
    r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
    r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
    for i in range(8, 24, 8):
        r0 = np.float32(r0 + a[i])
        r1 = np.float32(r1 + a[i + 1])
        r2 = np.float32(r2 + a[i + 2])
        r3 = np.float32(r3 + a[i + 3])
        r4 = np.float32(r4 + a[i + 4])
        r5 = np.float32(r5 + a[i + 5])
        r6 = np.float32(r6 + a[i + 6])
        r7 = np.float32(r7 + a[i + 7])
    return np.float32(np.float32(np.float32(r0 + r1) + np.float32(r2 + r3))
                      + np.float32(np.float32(r4 + r5) + np.float32(r6 + r7)))


@numba.njit(cache=True)
def _mean32(a: Any) -> Any:
    """``_daily._mean32``: the float32 sum, divided as a double by the count, to float32."""
    return np.float32(np.float64(pairwise24(a)) / 24.0)


@numba.njit(cache=True)
def day_numbers(hp: int, off: bool, curve: Any, typical: Any) -> tuple[float, float, float,
                                                                      float]:
    """The numbers of a day's close from the record's buffer ``h`` (at address ``hp``):
    fills ``curve`` with the day's curve (each hour's mean, the usual curve's value for an
    hour without readings) and ``typical`` with the usual curve of the day's type (``off``: a
    day off), both float32; returns (hours covered, the day's kWh, the usual day's kWh, the
    shape correlation of the two curves), as ``_daily._close_day`` and ``_daily._shape_corr``
    compute them."""
    cnt = numba.carray(_u8p(hp + 2 * DAY_CNT), (24,))
    sums = numba.carray(_f32p(hp + 2 * DAY_SUM), (24,))
    codes = numba.carray(_u16p(hp + 2 * (WE if off else WD)), (24,))
    covered = 0
    for i in range(24):
        typical[i] = np.float32(_F16[codes[i]])
        if cnt[i] > 0:
            covered += 1
            curve[i] = np.float32(sums[i] / np.float32(cnt[i]))
        else:
            curve[i] = typical[i]
    m_c = _mean32(curve)
    m_t = _mean32(typical)
    aa = np.empty(24, np.float32)
    bb = np.empty(24, np.float32)
    ab = np.empty(24, np.float32)
    for i in range(24):
        x = np.float32(curve[i] - m_c)
        y = np.float32(typical[i] - m_t)
        aa[i] = np.float32(x * x)
        bb[i] = np.float32(y * y)
        ab[i] = np.float32(x * y)
    den = np.float64(np.sqrt(np.float32(pairwise24(aa) * pairwise24(bb))))
    corr = np.float64(pairwise24(ab)) / den if den > 1e-12 else 0.0
    return (float(covered), np.float64(pairwise24(curve)), np.float64(pairwise24(typical)),
            corr)


@numba.njit(cache=True)
def round4(v: float) -> float:
    """``round(v, 4)`` of a float32 or float16 value (as a double): ``k / 10**4`` with ``k``
    the integer nearest ``v * 10**4``, ties to even. Such a value times 10**4 is exact in a
    double (at most 24 + 14 significant bits), so ``k`` is the integer nearest the exact
    ``v * 10**4``, which ``round`` takes too, and ``k / 10**4`` is the double nearest the
    decimal ``k * 10**-4``, which ``round`` returns; NaN and the infinities come out as they
    went in."""
    return np.rint(v * 1e4) / 1e4


#: the cells of the close buffer after the profile (``_quiet_codes.CLOSE_N``): what the
#: close will write to the record, planned before the commit (the learned curve's 24 float16
#: codes and the ring's 28 from ``_CL_CODES`` and ``_CL_RING``)
(_CL_PEAK_MAX, _CL_PEAK_DAYS, _CL_DAYS, _CL_TYPE_DAYS, _CL_MONTH, _CL_MONTH_KWH, _CL_PREV_MONTH,
 _CL_HIST, _CL_MADE, _CL_CODES) = range(CL_DAY + 1, CL_DAY + 11)
_CL_RING = _CL_CODES + 24
if _CL_RING + N_PEAKS > CLOSE_N:
    raise ImportError("the close buffer's row is too short for the close")


@numba.njit(cache=True)
def _plan_close(hp, x, c, day: int, off: int, month: int, dom: float, cl) -> bool:
    """What a reading of local day ``day`` does to the record before its own sums, as
    ``_daily.turn_day`` does it, planned without writing the record: the record's day
    (``day - 1``: ``off``, its month ``year * 12 + month``, its day of the month ``dom``)
    closed, its profile (in ``cl``, the rounded curves included), the usual curve learned
    (its new float16 codes) and the record ring moved to ``day``. False where the close is
    Python's: a day judged whose energy or shape starts a daily run (the meter has none open:
    the caller checks), a learned value NaN, a ring with a negative or NaN value (only older
    snapshots hold one)."""
    h = numba.carray(_u16p(hp), (X_AT,))
    last = int(x[DAY_NO])
    # the ring (``_new_day``): the closed day's record peak in, the new day's slot emptied
    ring = np.empty(N_PEAKS, np.int64)
    for k in range(N_PEAKS):
        ring[k] = h[PEAKS + k]
    peak = x[PEAK_TODAY]
    if last != 0 and peak > 0:
        ring[last % N_PEAKS] = _enc_f16_saturating(peak)
    ring[day % N_PEAKS] = 0
    top = 0
    empty = 0
    for k in range(N_PEAKS):
        cl[_CL_RING + k] = ring[k]
        if ring[k] > top:
            top = ring[k]
        if ring[k] == 0:
            empty += 1
    if top > 0x7C00:
        return False
    cl[_CL_PEAK_MAX] = _F16[top]
    cl[_CL_PEAK_DAYS] = N_PEAKS - empty
    # the close (``_close_day``)
    curve = np.empty(24, np.float32)
    typical = np.empty(24, np.float32)
    covered, daily_kwh, usual_day, corr = day_numbers(hp, off != 0, curve, typical)
    cl[_CL_MADE] = 0.0
    if covered < 20:  # too little of the day seen to profile it
        return True
    c_type = C_WE_DAYS if off else C_WD_DAYS
    type_days = int(h[c_type])
    days = int(h[C_DAYS])
    min_days = c[_MIN_DAYS]
    if type_days >= min_days and days >= min_days and usual_day > c[_DAY_MIN_KWH]:
        ratio = daily_kwh / usual_day
        shaped = corr >= c[_THEFT_CORR]
        if (ratio < c[_THEFT_LIMIT] and shaped) or ratio >= c[_LEVEL_LIMIT] or (
                ratio <= c[_LEVEL_DOWN] and not shaped):
            return False  # (a run starts: ``_judge_day``'s)
    # the usual curve of the day's type learns the day (``_learn_curve``: float32, clipped
    # to float16's range, NaN kept)
    type_days = type_days + 1 if type_days < 65_534 else 65_535
    a = 1.0 / type_days
    if a < 0.125:
        a = 0.125
    a32 = np.float32(a)
    base = WE if off else WD
    for i in range(24):
        u = np.float32(_F16[h[base + i]])
        v = np.float32(u + np.float32(a32 * np.float32(curve[i] - u)))
        if math.isnan(v):
            return False
        if v < -_F16_MAX:
            v = np.float32(-_F16_MAX)
        elif v > _F16_MAX:
            v = np.float32(_F16_MAX)
        cl[_CL_CODES + i] = _enc_f16(np.float64(v))
    # month-on-month growth
    mom = math.nan
    has_mom = False
    month_kwh, prev = x[MONTH_KWH], x[PREV_MONTH_KWH]
    if x[MONTH_NO] != 0.0 and month != x[MONTH_NO]:
        if not math.isnan(prev) and prev > 0:
            mom = month_kwh / prev - 1
            has_mom = True
        prev = month_kwh
        month_kwh = 0.0
    month_kwh += daily_kwh
    if not has_mom and not math.isnan(prev) and prev > 0:
        mom = month_kwh / dom * 30.4 / prev - 1
        has_mom = True
    # today's energy against the meter's own history
    days = days + 1 if days < 65_534 else 65_535
    hist = x[HIST_KWH]
    ratio = math.nan
    has_ratio = days > min_days and hist > 0
    if has_ratio:
        ratio = daily_kwh / hist
    a = 1.0 / days
    if a < 1.0 / 28:
        a = 1.0 / 28
    hist += a * (daily_kwh - hist)
    # the profile
    other = WD if off else WE
    for i in range(24):
        cl[i] = round4(np.float64(curve[i]))
        learned = _F16[int(cl[_CL_CODES + i])]
        wd = learned if not off else _F16[h[other + i]]
        we = learned if off else _F16[h[other + i]]
        cl[24 + i] = round4(wd)
        cl[48 + i] = round4(we)
    cl[CL_KWH] = daily_kwh
    cl[CL_PEAK] = x[DAY_MAX]
    cl[CL_VALLEY] = x[DAY_MIN]
    cl[CL_OFF] = off
    cl[CL_MOM] = mom
    cl[CL_HAS_MOM] = has_mom
    cl[CL_RATIO] = ratio
    cl[CL_HAS_RATIO] = has_ratio
    cl[CL_DAY] = last
    cl[_CL_DAYS] = days
    cl[_CL_TYPE_DAYS] = type_days
    cl[_CL_MONTH] = month
    cl[_CL_MONTH_KWH] = month_kwh
    cl[_CL_PREV_MONTH] = prev
    cl[_CL_HIST] = hist
    cl[_CL_MADE] = 1.0
    return True


@numba.njit(cache=True)
def _close(hp, x, day: int, off: int, cl) -> bool:
    """Writes the close :func:`_plan_close` planned, and starts local day ``day``: its sums
    and counts empty, its extremes and record peak none yet. Returns whether a profile was
    made."""
    h = numba.carray(_u16p(hp), (X_AT,))
    made = cl[_CL_MADE] != 0.0
    if made:
        base = WE if off else WD
        for i in range(24):
            h[base + i] = int(cl[_CL_CODES + i])
        h[C_WE_DAYS if off else C_WD_DAYS] = int(cl[_CL_TYPE_DAYS])
        h[C_DAYS] = int(cl[_CL_DAYS])
        x[MONTH_NO] = cl[_CL_MONTH]
        x[MONTH_KWH] = cl[_CL_MONTH_KWH]
        x[PREV_MONTH_KWH] = cl[_CL_PREV_MONTH]
        x[HIST_KWH] = cl[_CL_HIST]
    for k in range(N_PEAKS):
        h[PEAKS + k] = int(cl[_CL_RING + k])
    x[PEAK_MAX] = cl[_CL_PEAK_MAX]
    h[C_PEAK_DAYS] = int(cl[_CL_PEAK_DAYS])
    x[PEAK_TODAY] = 0.0
    x[DAY_NO] = day
    for k in range(48):
        h[DAY_SUM + k] = 0
    for k in range(12):
        h[DAY_CNT + k] = 0
    x[DAY_MAX] = -math.inf
    x[DAY_MIN] = math.inf
    return made


_i8, _f8 = types.int64, types.float64
_SIGNATURE = types.Tuple((_i8, _i8, _f8, _f8, _i8))(
    _i8, _i8, _i8, _i8,  # addresses: x, h, th (0: none), the constants
    _f8, _f8, _f8, _i8,  # t, kw, kwh, has_kwh
    _f8, _f8, _i8,  # the reading's interval, the meta's stated interval, has_export
    _i8, _f8, _f8, _f8, _f8, _i8,  # voltages: count, three values, nominal, three-phase
    _i8, _f8, _f8, _f8,  # currents: count (0 or 3), three values
    _f8, _i8,  # power factor, has_pf
    _i8, _f8,  # the calendar's slot and local day number
    _f8, _f8, _i8,  # the class's young dispersion, peak factor, theft window
    _i8, _i8, _i8,  # the theft window's hour, enough days to judge it, days with a record peak
    _f8, _i8, _i8, _i8, _i8,  # contracted kVA (0: none), the interval the forecast's steps are
#                             for, the level of the previous interval's slot, the steps
#                             (level, damping, decay: float64 triples) by address, their count
    _i8, _i8,  # a possible-theft alarm open, the stuck-reading count pending (-1: none)
    _i8,  # a run above or below the band open
    _i8, _i8, _i8, _f8, _i8,  # the close buffer's row (0: none), the day before's day off,
#                             month and day of the month, a daily run open
    _i8, _i8)  # the runs' row by address (0: none), the class's policy (``POLICY``) by address


@numba.njit(_SIGNATURE, cache=True)
def kernel(xp, hp, thp, cp, t, kw, kwh, has_kwh, r_iv, stated, has_export, nv, v0, v1, v2,
           nominal, three, ncur, i0, i1, i2, pf_r, has_pf, slot, day_no_now, young_dev,
           peak_factor, theft_pol, th_hour, days_ok, peak_days, kva, cap_iv, dp, sp,
           n_steps, theft_open, stuck_cnt, runs_open, close_p, prev_off, prev_month,
           prev_dom, day_runs, rp, pp):
    """The quiet path from the record's scalars on: (answer, flags, expected kW, z, hour).
    ``runs_open``: a run above or below the band is open, which a quiet reading ends (judged:
    warm and not exporting; otherwise the full path learns the reading at the band's edge).
    The first reading of a local day closes the day before, where it is the record's day and
    ``close_p`` gives a row of the close buffer for its profile (0, none: Python closes it,
    and the full path a meter's first reading), with no possible-theft alarm open and no
    daily run (``day_runs``): see :func:`_plan_close`.

    ``rp``: the lane's row for the meter's runs (``_quiet_codes.RUN_N`` float64): with one, a
    judged reading beyond the band is judged here as ``_consumption.judge`` does, the row
    holding the runs (``runs_open``: it holds the meter's; else it is a free row, taken if a
    run starts), and ``pp`` gives the class's ``POLICY``. A run whose judgement would raise an
    alarm is Python's; so is a run's reading that starts a new local day. Without a row
    (0), a reading beyond the band is not quiet."""
    x = numba.carray(_f64p(xp), (_N_X,))
    h = numba.carray(_u16p(hp), (H_LEN,))
    c = numba.carray(_f64p(cp), (_N_CONSTS,))
    started, last_ts, last_kw, last_kwh = x[STARTED], x[LAST_TS], x[LAST_KW], x[LAST_KWH]
    n_prev = x[N]
    # a meter's first reading (with a close buffer: the day it starts is set up here)
    first = n_prev == 0.0
    if (first and close_p == 0) or t <= last_ts:
        return NOT_QUIET, 0, 0.0, 0.0, 0
    fl_x, zf, peak_today, peak_max = x[FLOOR_KW], x[ZERO_FRAC], x[PEAK_TODAY], x[PEAK_MAX]
    gap_s, run, inferred = x[GAP_S], x[GAP_RUN], x[INFERRED_S]
    min_kw = c[_MIN_KW]
    # the interval, as MeterState._interval infers it
    if c[_INFER] != 0.0 and not first:
        gap = _rint(t - last_ts)
        if gap == gap_s:
            run = run + 1
        else:
            gap_s = gap
            run = 1.0
        if gap >= 60 and (
                (run >= 3 and (inferred == 0.0 or gap < inferred))
                or (gap > inferred and run >= max(3, 86_400 // max(int(gap), 1)))):
            inferred = gap
    if stated != 0.0:
        iv = stated
    elif r_iv != 0.0:
        iv = r_iv
    elif inferred != 0.0:
        iv = inferred
    else:
        iv = c[_INTERVAL_S]
    interval_i = int(iv)
    interval = float(interval_i)
    if kva != 0.0 and interval_i != cap_iv:
        return PYTHON, 0, 0.0, 0.0, 0  # (the forecast's steps were looked up for another)
    # faults
    if has_kwh:
        if kwh < last_kwh - 1e-6:
            return NOT_QUIET, 0, 0.0, 0.0, 0
        if kwh == last_kwh and kw > min_kw and kw * interval / 3600 > 0.01:
            return NOT_QUIET, 0, 0.0, 0.0, 0
    if kw < c[_REV_KW] and not has_export:
        return NOT_QUIET, 0, 0.0, 0.0, 0
    stuck = kw == last_kw and kw != 0.0  # (counted towards a stuck reading; raised in full)
    if stuck and (stuck_cnt if stuck_cnt > 0 else 0) + 1 >= c[_STUCK_FIRE]:
        return NOT_QUIET, 0, 0.0, 0.0, 0
    off = t % interval
    if interval - off < off:
        off = interval - off
    if off > c[_DRIFT_S]:
        return NOT_QUIET, 0, 0.0, 0.0, 0
    # power quality
    vmin_last = math.nan
    if nv:
        if nominal != 0.0:
            if three:
                lo, hi = nominal * c[_LO_F3], nominal * c[_HI_F3]
            else:
                lo, hi = nominal * c[_LO_F1], nominal * c[_HI_F1]
        elif three:
            lo, hi = c[_LO3], c[_HI3]
        else:
            lo, hi = c[_LO1], c[_HI1]
        if nv == 1:
            if (1.0 < v0 < lo) or v0 > hi:
                return NOT_QUIET, 0, 0.0, 0.0, 0
            vmin_last = v0
        else:
            if not (v0 > 1.0 and v1 > 1.0 and v2 > 1.0):
                return PYTHON, 0, 0.0, 0.0, 0
            vmin_last = (v2 if v2 < v1 else v1) if v1 < v0 else (v2 if v2 < v0 else v0)
            if vmin_last < lo or v0 > hi or v1 > hi or v2 > hi:
                return NOT_QUIET, 0, 0.0, 0.0, 0
            if _unbalance_pct(v0, v1, v2, (v0 + v1 + v2) / 3) > c[_V_UNB]:
                return NOT_QUIET, 0, 0.0, 0.0, 0
        if ncur == 3 and kw > min_kw:
            mean_i = (i0 + i1 + i2) / 3
            if mean_i > 1.0 and _unbalance_pct(i0, i1, i2, mean_i) > c[_I_UNB]:
                return NOT_QUIET, 0, 0.0, 0.0, 0
    if has_pf:
        pf = abs(pf_r)
        if pf < c[_MIN_PF] and kw > min_kw:
            if pf < c[_SEVERE_PF]:
                return NOT_QUIET, 0, 0.0, 0.0, 0
            if kw >= (0.3 * kva if kva != 0.0 else _F16[h[_KW_G]]):
                return NOT_QUIET, 0, 0.0, 0.0, 0
    # the local day: a reading of a new one closes the day before, between the judgements
    # and the reading's sums (as the Python quiet path does), here where only the day before
    # is closed and nothing of the day's judgement can raise or end an alarm, else in Python
    turns = day_no_now != x[DAY_NO]
    if turns and (close_p == 0 or theft_open or day_runs or (
            x[DAY_NO] != day_no_now - 1.0 and x[DAY_NO] != 0.0)):
        return PYTHON, 0, 0.0, 0.0, 0
    exporting = has_export != 0 and kw < 0
    theft = theft_pol != 0 and not exporting
    hour = 0
    closes = opens = False
    if theft:
        if thp == 0:
            return NOT_QUIET, 0, 0.0, 0.0, 0
        hour = int(t // 3600)
        if th_hour == 0:  # (a window not being filled: it starts here, from zeros)
            opens = True
        else:
            closes = hour != th_hour
            if closes and hour != th_hour + 1:
                return NOT_QUIET, 0, 0.0, 0.0, 0
    new_start = started == 0.0 and kw > min_kw
    if new_start:
        started = t
    g_n = int(h[_N_G])
    warm = started != 0.0 and t - started >= c[_WARMUP_S] and g_n >= 8
    # (the runs beyond the band, when the reading is judged here: see below)
    judged = peak_ended = abnormal = False
    kind = 0
    onset = calm = 0.0
    hi_kw = lo_kw = 0.0
    hi_start = hi_n = hi_over = hi_exc = hi_usual = 0.0
    lo_start = lo_n = lo_def = lo_max = lo_usual = 0.0
    pk_start = pk_n = pk_max = 0.0
    if runs_open and not (warm and not exporting):
        return NOT_QUIET, 0, 0.0, 0.0, 0
    n_read = n_prev + 1.0
    sample = c[_SAMPLE]
    scored = sample != 0.0 and n_read % sample == 0
    # the band
    d = _LEVELS[slot]
    n_d = int(h[LV_N + d]) if g_n else 0
    mean_kw = kw
    if g_n and (theft or kva != 0.0):
        mean_kw = (n_d * _F16[h[LV_KW + d]] + _SHRINK * _F16[h[_KW_G]]) / (n_d + _SHRINK)
    if g_n and (warm or scored):
        mu_g, dev_g = _LV[h[_MU_G]], _LV[h[_DEV_G]]
        w_d = n_d / (n_d + _SHRINK)
        u_d = 1 - n_d / (n_d + _SHRINK)
        thin = 1.0 + c[_THIN_WIDEN] / math.sqrt(1.0 + n_d)
        mu_l, dev_l = _LV[h[LV_MU + d]], _LV[h[LV_DEV + d]]
        mu_d = w_d * mu_l + u_d * mu_g
        dev_d = w_d * dev_l + u_d * dev_g
        cc = int(h[TOW_N + (slot >> 1)])
        ns = cc >> 8 if slot & 1 else cc & 255
        w_s = ns / (ns + _SHRINK_TOW)
        u_s = 1 - ns / (ns + _SHRINK_TOW)
        mu = w_s * (_LV[h[TOW_MU + slot]]) + u_s * mu_d
        dev = dev_d if dev_d > _MIN_DEV else _MIN_DEV
        young = young_dev * u_d
        if young > dev:
            dev = young
        dev *= thin
        fl = fl_x if fl_x != 0.0 else 0.01
        if warm and not exporting:
            e_hi = mu + c[_BAND_HI] * dev
            e_lo = mu - c[_BAND_LO] * dev
            if e_hi > _EXP_MAX or e_lo > _EXP_MAX or mu > _EXP_MAX:
                return PYTHON, 0, 0.0, 0.0, 0
            hi_kw = math.exp(e_hi) - fl
            above = kw > hi_kw
            if above and rp == 0:
                return NOT_QUIET, 0, 0.0, 0.0, 0
            lo_kw = math.exp(e_lo) - fl
            if lo_kw < 0.0:
                lo_kw = 0.0
            usual = -1.0  # (the band's expected kW, when needed: below)
            below = False
            if kw < lo_kw:
                usual = math.exp(mu) - fl
                if usual < 0.0:
                    usual = 0.0
                below = usual > c[_TWO_MIN_KW]
                if below and rp == 0:
                    return NOT_QUIET, 0, 0.0, 0.0, 0
            widen = c[_WIDEN]
            if peak_days >= 7:
                ref = widen * (peak_max * peak_factor)
            else:
                ref = widen * (2.0 * (peak_today if peak_today > peak_max else peak_max))
            beyond = False
            if ref > 0 and kw > ref:
                e_half = mu + c[_BAND_HI] * dev / 2
                if e_half > _EXP_MAX:
                    return PYTHON, 0, 0.0, 0.0, 0
                beyond = kw > math.exp(e_half) - fl
                if beyond and rp == 0:
                    return NOT_QUIET, 0, 0.0, 0.0, 0
            if rp != 0 and (runs_open or above or below or beyond):
                # ---- the runs beyond the band (``_consumption.judge``), planned
                judged = True
                if usual < 0.0:
                    usual = math.exp(mu) - fl
                    if usual < 0.0:
                        usual = 0.0
                ru = numba.carray(_f64p(rp), (RUN_N,))
                if runs_open:
                    kind, onset = int(ru[RUN_KIND]), ru[RUN_ONSET]
                    hi_start, hi_n, hi_over = ru[RUN_HI], ru[RUN_HI + 1], ru[RUN_HI + 2]
                    hi_exc, hi_usual = ru[RUN_HI + 3], ru[RUN_HI + 4]
                    lo_start, lo_n, lo_def = ru[RUN_LO], ru[RUN_LO + 1], ru[RUN_LO + 2]
                    lo_max, lo_usual = ru[RUN_LO + 3], ru[RUN_LO + 4]
                    pk_start, pk_n, pk_max = ru[RUN_PEAK], ru[RUN_PEAK + 1], ru[RUN_PEAK + 2]
                if turns and (above or below or beyond or pk_n != 0.0 or kind != 0):
                    return PYTHON, 0, 0.0, 0.0, 0  # (a run or alarm at a day's close: Python's)
                hours = interval / 3600.0
                if above:
                    if hi_n == 0.0:
                        hi_start, hi_over, hi_exc, hi_usual = t, 0.0, 0.0, 0.0
                    hi_n += 1.0
                    hi_over = hi_over + (kw - hi_kw) * hours
                    hi_exc = hi_exc + (kw - usual) * hours
                    hi_usual = hi_usual + usual * hours
                else:
                    hi_start = hi_n = hi_over = hi_exc = hi_usual = 0.0
                if below:
                    if lo_n == 0.0:
                        lo_start, lo_def, lo_max, lo_usual = t, 0.0, 0.0, 0.0
                    lo_n += 1.0
                    lo_def = lo_def + (usual - kw) * hours
                    lo_max = kw if kw > lo_max else lo_max
                    lo_usual = lo_usual + usual * hours
                else:
                    lo_start = lo_n = lo_def = lo_max = lo_usual = 0.0
                if beyond:
                    if pk_n == 0.0:
                        pk_start, pk_max = t, 0.0
                    pk_n += 1.0
                    pk_max = kw if kw > pk_max else pk_max
                elif pk_n != 0.0:  # (the record's day takes the run's highest reading)
                    peak_today = pk_max if pk_max > peak_today else peak_today
                    peak_ended = True
                    pk_start = pk_n = pk_max = 0.0
                # what would raise or end an alarm is Python's (an alarm open of the same
                # side, or a level shift that way, holds a new one back)
                pp_ = numba.carray(_f64p(pp), (_N_POLICY,))
                d1, d2 = 24.0 * _F16[h[_KW_G]], 24.0 * min_kw
                daily = d2 if d2 > d1 else d1
                high_held = kind == 1 or kind == 3
                burst = peak_days >= 7 and kw > pp_[0] * widen * peak_max
                if pk_n != 0.0 and (pk_n * interval >= pp_[1] or burst) and not high_held:
                    return PYTHON, 0, 0.0, 0.0, 0
                e1, e2 = pp_[3] * daily, pp_[4]
                if hi_n != 0.0 and hi_n * interval >= pp_[2] and hi_over >= (
                        e2 if e2 > e1 else e1) * widen and not high_held:
                    return PYTHON, 0, 0.0, 0.0, 0
                all_zero = lo_max <= min_kw and kw <= min_kw and zf < 0.01
                if lo_n != 0.0 and kind != 2 and kind != 4 and not theft_open and (
                        (all_zero and lo_n * interval >= pp_[5])
                        or (lo_n * interval >= pp_[6] and lo_def >= pp_[7] * daily)):
                    return PYTHON, 0, 0.0, 0.0, 0
                if kind == 1 or kind == 2:  # (back inside the inner band, for a while)
                    if kind == 1:
                        inside = kw <= math.exp(mu + c[_BAND_HI] * dev / 2) - fl
                    else:
                        lo_in = math.exp(mu - c[_BAND_LO] * dev / 2) - fl
                        if lo_in < 0.0:
                            lo_in = 0.0
                        inside = kw >= lo_in or usual <= c[_TWO_MIN_KW]
                    calm = float(h[C_CALM]) + 1.0 if inside else 0.0
                    if calm > 65_535.0:
                        calm = 65_535.0
                    if calm * interval >= c[_CLEAR_S]:
                        return PYTHON, 0, 0.0, 0.0, 0  # (the alarm resolves)
                abnormal = kind != 0
    else:
        mu = dev = fl = 0.0
    # over-capacity (as _capacity.judge projects it)
    resid = trend = 0.0
    if kva != 0.0:
        if has_pf:
            pfc = abs(pf_r)
            if pfc < 0.5:
                pfc = 0.5
        else:
            pfc = 1.0
        resid = 0.7 * x[RESID_EW] + 0.3 * (kw - mean_kw) if warm else 0.0
        trend = x[TREND_EW]
        limit = kva * c[_WARN_FRACTION]
        if kw / pfc >= limit:
            return NOT_QUIET, 0, 0.0, 0.0, 0
        steps = numba.carray(_f64p(sp), (3 * n_steps,))
        if warm:
            g = _SHRINK * _F16[h[_KW_G]]
            if not math.isnan(last_kw):
                if dp == d and g_n:
                    prev = last_kw - mean_kw
                else:
                    nd = int(h[LV_N + dp])
                    prev = last_kw - (nd * _F16[h[LV_KW + dp]] + g) / (nd + _SHRINK)
                trend = 0.7 * trend + 0.3 * ((kw - mean_kw) - prev)
            d_last = -1
            lv_mean = 0.0
            for k in range(n_steps):
                dd = int(steps[3 * k])
                if dd != d_last:
                    nd = int(h[LV_N + dd])
                    lv_mean = (nd * _F16[h[LV_KW + dd]] + g) / (nd + _SHRINK)
                    d_last = dd
                usual = lv_mean + resid * steps[3 * k + 2]
                if usual < kw:
                    usual = kw
                if (usual + trend * steps[3 * k + 1]) / pfc >= limit:
                    return NOT_QUIET, 0, 0.0, 0.0, 0
        else:
            if not math.isnan(last_kw):
                trend = 0.7 * trend + 0.3 * ((kw - 0.0) - (last_kw - 0.0))
            for k in range(n_steps):
                if (kw + trend * steps[3 * k + 1]) / pfc >= limit:
                    return NOT_QUIET, 0, 0.0, 0.0, 0
    if theft and closes and warm and days_ok and not _window_quiet(
            numba.carray(_f32p(thp), (TH_LEN,)), th_hour, theft_open, min_kw, c[_THEFT_N],
            c[_THEFT_LIMIT]):
        return PYTHON, 0, 0.0, 0.0, 0  # (the theft window's judgement: Python's)
    # today's hourly sum of kW, in float32 as struct packs it (which refuses an overflow)
    hr = slot % 24
    day_sum = numba.carray(_f32p(hp + 2 * (DAY_SUM + 2 * hr)), (1,))
    total = np.float64(day_sum[0]) + np.float64(np.float32(kw))
    if math.isinf(np.float32(total)) and not math.isinf(total):
        return PYTHON, 0, 0.0, 0.0, 0
    if scored and g_n and mu > _EXP_MAX:
        return PYTHON, 0, 0.0, 0.0, 0
    if turns and not _plan_close(hp, x, c, int(day_no_now), prev_off, prev_month, prev_dom,
                                 numba.carray(_f64p(close_p), (CLOSE_N,))):
        return PYTHON, 0, 0.0, 0.0, 0

    # ---- commit
    flags = 0
    if stuck or stuck_cnt >= 0:  # counted, or the count reset (the caller's _alarms.cond)
        flags |= STUCK_COUNT | (STUCK if stuck else 0)
    x[INTERVAL_S] = interval_i
    x[GAP_S] = gap_s
    x[GAP_RUN] = run
    x[INFERRED_S] = inferred
    x[N] = n_read
    if new_start:
        x[STARTED] = t
    if judged:
        flags |= RUNS
        ru = numba.carray(_f64p(rp), (RUN_N,))
        ru[RUN_HI], ru[RUN_HI + 1], ru[RUN_HI + 2] = hi_start, hi_n, hi_over
        ru[RUN_HI + 3], ru[RUN_HI + 4] = hi_exc, hi_usual
        ru[RUN_LO], ru[RUN_LO + 1], ru[RUN_LO + 2] = lo_start, lo_n, lo_def
        ru[RUN_LO + 3], ru[RUN_LO + 4] = lo_max, lo_usual
        ru[RUN_PEAK], ru[RUN_PEAK + 1], ru[RUN_PEAK + 2] = pk_start, pk_n, pk_max
        ru[RUN_KIND], ru[RUN_ONSET] = kind, onset
        if peak_ended:
            x[PEAK_TODAY] = peak_today
        if kind == 1 or kind == 2:
            h[C_CALM] = int(calm)
    elif warm and not exporting:
        flags |= SET_NO_RUN
    kw0 = 0.0 if kw < 0.0 else kw
    if theft:
        th = numba.carray(_f32p(thp), (TH_LEN,))
        if opens:  # (as ``_theft.judge`` opens a window: all zeros, this hour's first)
            for q in range(TH_LEN):
                th[q] = 0.0
            th_hour = hour
            flags |= TH_HOUR
        elif closes:
            i = hour % 24
            th[TH_OBS + i] = 0.0
            th[TH_EXP + i] = 0.0
            th[TH_CNT + i] = 0.0
            th_hour = hour
            flags |= TH_HOUR
        i = th_hour % 24
        th[TH_OBS + i] = np.float64(th[TH_OBS + i]) + np.float64(np.float32(kw0))
        th[TH_EXP + i] = np.float64(th[TH_EXP + i]) + np.float64(np.float32(mean_kw))
        n_th = int(th[TH_CNT + i]) + 1
        th[TH_CNT + i] = n_th if n_th < 255 else 255
    if kva != 0.0:
        x[RESID_EW] = resid
        if not math.isnan(last_kw):
            x[TREND_EW] = trend
    if turns:  # (the day's sums, extremes and record peak start anew)
        flags |= DAY_TURNED
        if _close(hp, x, int(day_no_now), prev_off, numba.carray(_f64p(close_p), (CLOSE_N,))):
            flags |= CLOSED
        total = 0.0 + np.float64(np.float32(kw))  # (the sum is 0.0 now: -0.0 adds to 0.0)
        peak_today = 0.0
    day_sum[0] = np.float32(total)
    j = DAY_CNT + (hr >> 1)
    cc = int(h[j])
    if hr & 1:
        if cc < 0xFF00:
            h[j] = cc + 256
    elif cc & 255 != 255:
        h[j] = cc + 1
    if kw > x[DAY_MAX]:
        x[DAY_MAX] = kw
    if kw < x[DAY_MIN]:
        x[DAY_MIN] = kw
    if kw > peak_today and pk_n == 0.0:
        x[PEAK_TODAY] = kw
    # an episode's readings are not learned, unless it has lasted beyond ``relearn_after_s``
    if started != 0.0 and (not abnormal or t - onset > c[_RELEARN_S]):
        if hi_n != 0.0 or lo_n != 0.0:  # (a run open: the slot learns the band's edge)
            _learn_edge(h, x, slot, kw, lo_kw, hi_kw)
        else:
            _learn(h, x, slot, kw)
        a = 1.0 / n_prev if not first else 1.0
        if a < 0.002:
            a = 0.002
        x[ZERO_FRAC] = zf + a * ((1.0 if kw <= min_kw else 0.0) - zf)
    expected = z = 0.0
    if abnormal:
        flags |= ANOMALOUS
    if scored or abnormal:
        flags |= SCORED
        if g_n:
            expected = math.exp(mu) - fl
            if expected < 0.0:
                expected = 0.0
            z = (math.log(kw0 + fl) - mu) / dev
        else:
            expected, z = kw, 0.0
    x[LAST_TS] = t
    x[LAST_KW] = kw
    x[LAST_KWH] = kwh if has_kwh else last_kwh
    x[LAST_VMIN] = vmin_last
    return DONE, flags, expected, z, hour


# ---- the lane: a cell's micro-batch of quiet readings in one call
#: columns of the lane's reading rows (float64): the meter's lane slot (-1: the reading goes
#: through Python), event time, kW, kWh (NaN: none), the reading's interval (0: none), the
#: voltages' count (0, 1 or 3), three voltages, the currents' count (0 or 3), three currents,
#: the power factor (NaN: none), the calendar's slot and local day; for a meter with a
#: contracted kVA, the interval the forecast's steps are for, the level of the previous
#: interval's slot, the steps' address and count (0 otherwise); the day before the reading's
#: local day: whether it is a day off, its month (``year * 12 + month``), its day of the month
LANE_IN = ("slot", "t", "kw", "kwh", "r_iv", "nv", "v0", "v1", "v2", "ncur", "i0", "i1", "i2",
           "pf", "cal_slot", "cal_day", "cap_iv", "dp", "sp", "n_steps", "prev_off",
           "prev_month", "prev_dom")
#: columns of the lane's meter rows: the record's buffers by address (``th``: 0 if none;
#: int64), then (int32) the theft window's hour, enough days to judge it, days with a record
#: peak, a possible-theft alarm open, the stuck-reading count pending (-1: none), the row of
#: ``runs`` holding the meter's runs beyond the band + 1 (0: none open; ``_lane.Lane`` sets it
#: from the record's, the lane moves it as they start and end), whether
#: a daily run is open (``low_days``, ``high_days``, ``down_days``: a day's close is then
#: Python's), the meter's profile
LANE_ADDRESSES = ("x", "h", "th")
LANE_METER = ("th_hour", "days_ok", "peak_days", "theft_open", "stuck_cnt", "runs", "day_runs",
              "profile")
#: columns of the lane's profiles (float64): what the registry and the class give the kernel
LANE_PROFILE = ("stated", "has_export", "nominal", "three", "young_dev", "peak_factor",
                "theft_window", "kva", *POLICY)
_N_LANE_PROFILE = LANE_PROFILE.index(POLICY[0])  # (where POLICY starts)


@numba.njit(cache=True)
def _look(w_last, w_iv, w_st, now: float, k: float, slack: float) -> float:
    """``CellWatch.tick`` at ``now`` when it finds nothing: the watch's new ``due`` (``inf``
    with no meter reporting), or NaN if a meter is held or falls silent at ``now`` (the tick
    is then the cell's)."""
    due = math.inf
    for j in range(w_st.shape[0]):
        st = w_st[j]
        if st == 0:
            last = w_last[j]
            window = k * w_iv[j]
            if now - last >= window:
                return math.nan
            deadline = last + window - slack
            if deadline < due:
                due = deadline
        elif st == 1:
            return math.nan
    return due


_LANE_SIGNATURE = types.Tuple((_i8, _f8, _f8, _f8, _i8, _i8, _i8))(
    _f8[:, ::1], _i8, _i8[:, ::1], types.int32[:, ::1], types.uint8[::1],  # rows, start, meters
    _f8[:, ::1], _f8[::1], _i8[::1], types.uint8[::1],  # profiles, the watch's columns
    _i8, _f8, _f8, _f8, _f8, _f8,  # constants, lateness, watermark, next tick, tick, due
    _f8, _f8, _f8,  # silence intervals, slack, default interval
    _f8[:, ::1], _f8[:, ::1],  # answers, the close buffer
    _f8[:, ::1], _i8[::1])  # the runs' rows, the free ones (a count, then their indices)


@numba.njit(_LANE_SIGNATURE, cache=True)
def lane(rows, start, addrs, meters, ready, profiles, w_last, w_iv, w_st, cp, lateness, wm0,
         next_tick, tick_s, due, k, slack, default_iv, answers, closes, runs, free):
    """The quiet path over a cell's readings from ``start`` on, in order, while each one is
    quiet: its meter ready (``ready``: nothing open the kernel cannot see, see
    ``_quiet.lane_entry``), its silence watch at rest, and the kernel's answer DONE. Each such
    reading updates its record (the kernel) and the watch's columns as ``CellWatch.seen``
    would; its flags (but ``DAY_TURNED``, whose day counts go to the meter's row here),
    expected kW, z and hour go to ``answers``, the profile of a day it
    closed to its row of ``closes`` (``_quiet_codes.CL_KWH`` and the rest). The cell's
    watermark moves as ``CellLogic`` moves it, reading by reading, and the ticks it passes
    are counted here: those before the watch's ``due`` (no meter can have fallen silent) and
    those whose look
    at the watch's columns finds no meter held or silent (``_look``, which sets ``due``
    again as the watch's own look does); a tick that finds one is the cell's.

    Stops at the first reading that is not quiet (nothing of it changed: Python takes it; -1
    in its ``answers`` flags when the kernel left it to the Python quiet path),
    before one whose watermark passes a tick that finds a meter (the cell ticks first) and
    after one whose watermark is such a tick (the cell ticks there after it). A repeated
    value's count (``STUCK_COUNT``) goes on in the meter's ``stuck_cnt`` column as Python's
    record counts it (``_alarms.cond``, after the call): the kernel hands back the reading
    that would raise the alarm.

    A meter's runs beyond the band live in a row of ``runs`` while one is open (its index + 1
    in the meter's ``runs`` column; 0: none): a reading that starts one takes the first free
    row (``free``: their count, then their indices), one that ends them all gives it back,
    and a reading that changed them has the runs after it in its ``answers`` from column 4
    (flag ``RUNS``) for Python's record. Without a free row, a reading beyond the band is not
    quiet. Returns (the index it stopped at, the cell's
    watermark, its next tick, the watch's due, the ticks counted, 1 if it stopped before a
    reading for a tick, 2 after one at a tick, else 0, and how many readings carry flags for
    Python)."""
    n = rows.shape[0]
    closes_at = closes.ctypes.data
    runs_at = runs.ctypes.data
    profiles_at = profiles.ctypes.data
    n_profile = profiles.shape[1]
    c = numba.carray(_f64p(cp), (_N_CONSTS,))
    wm_cur = wm0
    ticks = 0
    flagged = 0
    i = start
    while i < n:
        j = int(rows[i, 0])
        if j < 0 or ready[j] == 0 or w_st[j] != 0:
            break
        t = rows[i, 1]
        wm = t - lateness
        if wm > next_tick:  # the ticks before the reading (CellLogic._catch_up)
            if next_tick == -math.inf:  # (the cell's first tick, which Python sets: the
                answers[i, 0] = -1.0  # reading may still be quiet, as for PYTHON below)
                break
            while next_tick < wm:
                b = next_tick
                if b >= due:  # a tick that looks: here if it finds nothing
                    found = _look(w_last, w_iv, w_st, b, k, slack)
                    if math.isnan(found):
                        return i, wm_cur, next_tick, due, ticks, 1, flagged
                    due = found
                if b > wm_cur:
                    wm_cur = b
                next_tick = b + tick_s
                ticks += 1
        p = meters[j, 7]
        nv = int(rows[i, 5])
        three = int(profiles[p, 3])
        if nv == 3:
            three = 1
        kwh = rows[i, 3]
        has_kwh = 1
        if math.isnan(kwh):
            kwh = 0.0
            has_kwh = 0
        pf = rows[i, 13]
        has_pf = 1
        if math.isnan(pf):
            pf = 0.0
            has_pf = 0
        own = meters[j, 5] - 1  # (the meter's row of runs, else a free one, else none)
        runs_open = 0
        if own >= 0:
            rp = runs_at + 8 * RUN_N * own
            runs_open = 1
        elif free[0] > 0:
            rp = runs_at + 8 * RUN_N * free[free[0]]
        else:
            rp = 0
        pp = profiles_at + 8 * (n_profile * p + _N_LANE_PROFILE)
        code, flags, expected, z, hour = kernel(
            addrs[j, 0], addrs[j, 1], addrs[j, 2], cp, t, rows[i, 2],
            kwh, has_kwh, rows[i, 4], profiles[p, 0],
            int(profiles[p, 1]), nv, rows[i, 6], rows[i, 7], rows[i, 8], profiles[p, 2],
            three, int(rows[i, 9]), rows[i, 10], rows[i, 11], rows[i, 12],
            pf, has_pf, int(rows[i, 14]), rows[i, 15], profiles[p, 4],
            profiles[p, 5], int(profiles[p, 6]), meters[j, 0], meters[j, 1], meters[j, 2],
            profiles[p, 7], int(rows[i, 16]), int(rows[i, 17]), int(rows[i, 18]),
            int(rows[i, 19]), meters[j, 3], meters[j, 4], runs_open,
            closes_at + 8 * CLOSE_N * i, int(rows[i, 20]), int(rows[i, 21]), rows[i, 22],
            meters[j, 6], rp, pp)
        if code != DONE:
            if code == PYTHON:  # (the cell tries the Python quiet path on it, not the full)
                answers[i, 0] = -1.0
            break
        flags &= ~SET_NO_RUN  # (runs open have a row: those changed say so with RUNS)
        if flags & RUNS:
            row = runs[own if own >= 0 else free[free[0]]]
            for q in range(RUN_N):
                answers[i, 4 + q] = row[q]
            if row[RUN_HI + 1] == 0.0 and row[RUN_LO + 1] == 0.0 and (
                    row[RUN_PEAK + 1] == 0.0 and row[RUN_KIND] == 0.0):
                if own >= 0:  # (all ended, no alarm open: the row is free again)
                    free[0] += 1
                    free[free[0]] = own
                    meters[j, 5] = 0
            elif own < 0:  # (a run started: the free row is the meter's)
                meters[j, 5] = free[free[0]] + 1
                free[0] -= 1
        # (the day counts a turned day moved are the row's, below: a reading with nothing
        # else flagged has nothing for Python, as the meter's first reading at start-up)
        answers[i, 0] = flags & ~DAY_TURNED
        if flags & ~DAY_TURNED:
            flagged += 1
        answers[i, 1] = expected
        answers[i, 2] = z
        answers[i, 3] = hour
        if flags & TH_HOUR:
            meters[j, 0] = hour
        if flags & STUCK_COUNT:  # (counted, or the count ended: Python's record takes it too)
            sc = meters[j, 4]
            meters[j, 4] = ((sc if sc > 0 else 0) + 1) if flags & STUCK else -1
        if flags & DAY_TURNED:  # (the day counts the kernel reads of the meter moved)
            hh = numba.carray(_u16p(addrs[j, 1]), (X_AT,))
            meters[j, 1] = hh[C_DAYS] >= c[_MIN_DAYS]
            meters[j, 2] = hh[C_PEAK_DAYS]
        last = w_last[j]
        if t > last:
            w_last[j] = last = t
        # the watch's interval: the registry's, else the reading's, else the configured one
        stated = profiles[p, 0]
        iv = int(stated if stated != 0.0 else (rows[i, 4] if rows[i, 4] != 0.0 else default_iv))
        w_iv[j] = iv
        deadline = last + k * iv - slack
        if deadline < due:
            due = deadline
        i += 1
        if wm > wm_cur:  # the watermark after the reading (CellLogic._advance)
            wm_cur = wm
            if wm >= next_tick:  # (== : the ticks before it left none behind)
                if wm >= due:
                    found = _look(w_last, w_iv, w_st, wm, k, slack)
                    if math.isnan(found):
                        return i, wm_cur, next_tick, due, ticks, 2, flagged
                    due = found
                next_tick = (wm // tick_s + 1) * tick_s
                ticks += 1
    return i, wm_cur, next_tick, due, ticks, 0, flagged


# ---- a kept compilation made with another record layout is compiled again
# numba keys its kept machine code on this file alone, while the kernel bakes in the record's
# offsets, the baseline's rates and the level table from other modules (the decoding tables
# follow from LOG_STEP, LOG_BIAS and IEEE half precision): a change there would leave the kept
# code reading the old layout. The layout it was compiled with is asked of the kept code itself
# and compared with the layout now; on a difference the kept code is removed and compiled anew.
_LAYOUT_NOW = (
    C_CALM, C_DAYS, C_PEAK_DAYS, C_WD_DAYS, C_WE_DAYS, CLOSE_N, HIST_KWH, MONTH_KWH, MONTH_NO,
    N_PEAKS, PEAKS, PREV_MONTH_KWH, WD, WE, X_AT,
    DAY_CNT, DAY_MAX, DAY_MIN, DAY_NO, DAY_SUM, FLOOR_KW, GAP_RUN, GAP_S, GLOBAL, H_LEN,
    INFERRED_S, INTERVAL_S, LAST_KW, LAST_KWH, LAST_TS, LAST_VMIN, LV_DEV, LV_KW, LV_MU, LV_N,
    PEAK_MAX, PEAK_TODAY, RESID_EW, STARTED, TH_CNT, TH_EXP, TH_LEN, TH_OBS, TOW_MU, TOW_N,
    TREND_EW, ZERO_FRAC, N, _N_X, _N_CONSTS, LOG_BIAS, LOG_STEP, _ALPHA_DT, _ALPHA_G,
    _ALPHA_TOW, _MIN_DEV, _SHRINK, _SHRINK_TOW,
    int((_LEVELS * np.arange(1, len(_LEVELS) + 1)).sum()),
    sum((i + 1) * sum(map(ord, name)) for i, name in enumerate(CONSTS)))


@numba.njit(cache=True)
def _layout() -> tuple[Any, ...]:
    return _LAYOUT_NOW  # (a global tuple: frozen into the machine code when compiled)


def direct(dispatcher: Any) -> Any:
    """The machine code of a function compiled for one explicit signature (``kernel``),
    callable without numba's dispatch: the dispatcher types every argument on each call to
    choose among its compiled signatures (about 0.45 µs of the kernel's 38 arguments here),
    then calls this same entry point, which converts the arguments to the signature's types.
    With one signature there is nothing to choose, so the call is the same, minus the typing."""
    (signature,) = dispatcher.signatures
    return dispatcher.overloads[signature].entry_point


def keep_current(module_file: str, layout: Any, now: tuple[Any, ...],
                 functions: tuple[Any, ...], what: str) -> None:
    """Compiles ``functions`` (of the module at ``module_file``) anew when their kept machine
    code was made with another record layout: ``layout`` is a compiled function returning the
    layout it was compiled with, ``now`` the layout now. The module's kept code is removed and
    compiled again; ``what`` names it in the error if it still does not match."""
    if tuple(layout()) == now:
        return
    # (kept code of a developer's checkout, made before the layout changed)
    kept = getattr(getattr(functions[0], "_cache", None), "_cache_path", None)
    folder = Path(kept) if kept else Path(module_file).parent / "__pycache__"
    for path in folder.glob(Path(module_file).stem + ".*.nb[ic]"):
        path.unlink(missing_ok=True)
    for f in (layout, *functions):
        f.recompile()
    if tuple(layout()) != now:
        raise ImportError(f"{what} does not match the record's layout")


keep_current(__file__, _layout, _LAYOUT_NOW, (kernel, lane), "the compiled quiet path")
