"""The quiet path of ``MeterState.step``: a reading that only teaches the meter its usual load.

Most readings are *quiet*: in order, no status flag, nothing open on the meter (no alarm but a
possible-theft one, no record run, no condition count pending but a stuck-reading count), no
fault, no power-quality issue, inside the band, and no over-capacity projection. For such a
reading every detector of the full path only *learns* (or counts a repeated value towards a
stuck reading); :func:`quiet_step` does that in one function, with the same floating-point
operations in the same order as the detectors, so the state it leaves is bit-identical. The
first reading of a local day closes the day before (``_daily.turn_day``: its profile and the
day's judgements) where the full path does, after the reading's judgements and before its
sums: in Python here, and by the compiled kernel where the day's judgement can start no
daily run (``_quiet_jit._plan_close``), which also takes a meter's first reading.

It checks every precondition before it changes anything: the first one that fails returns
``None`` with the state untouched, and ``MeterState.step`` runs the full path. What is left to the
full path: the first reading, duplicates and readings out of order, status flags, a meter back
from silence or with an alarm open (other than possible theft) or a condition pending (other
than a stuck-reading count that does not fire), a reading that starts a run (above or below the
band, beyond the record) or continues one beyond the record, a reading after a run above or
below the band that is not judged (before the meter is warm, or exporting: the full path
learns it at the band's edge; a judged one inside the band ends the run, as here), a fault
(register going backwards or frozen, a stuck reading that fires, off the interval grid,
reverse flow), voltage, phase or power-factor trouble, an over-capacity projection, and, for
classes that judge theft within the day, the first reading of an hour when judging the
window that closes would raise or resolve the alarm (judged first, without changes:
:func:`~gridwatch.models._theft.window_quiet`) or when hours without a reading lie between. A
meter with a time zone of its own takes its own calendar (cached, as on the full path).
Exporting readings (negative kW on a meter with export) are quiet: not judged as consumption, as
on the full path. A meter with managers' verdicts on record stays on the quiet path: a false alarm
only widens thresholds, and the one a quiet reading is judged against (the meter's record) is
widened here as ``_consumption.judge`` widens it; the theft window applies its own.

``tests/models/test_quiet_path.py`` proves the equivalence (hypothesis streams and real and
simulated fleets run both ways: identical states, events, scores and profiles).

The arithmetic runs compiled where numba is there (:mod:`._quiet_jit`, loaded on first use or
by :func:`use_compiled`): :func:`compiled_quiet_step` does the checks on Python objects and hands
the record's buffers to the kernel, which answers for most quiet readings and leaves a few
cases to :func:`python_quiet_step` (the same function in Python, and the whole quiet path with
``GRIDWATCH_JIT=0``). The equivalence tests run through both.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import sys
import threading
from array import array
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from gridwatch._schemas import MeterMeta, Reading, Score
from gridwatch.models import _daily, _segment_codes
from gridwatch.models._alarms import cond, feedback, r3
from gridwatch.models._baseline import (
    _ALPHA_DT,
    _ALPHA_G,
    _ALPHA_TOW,
    _LEVEL,
    _MIN_DEV,
    _SHRINK,
    _SHRINK_TOW,
    learn,
)
from gridwatch.models._calendar import Calendar, calendar_for
from gridwatch.models._capacity import plan as capacity_plan
from gridwatch.models._config import ClassPolicy, DetectionSettings
from gridwatch.models._consumption import ETYPE as _CONSUMPTION
from gridwatch.models._consumption import policy
from gridwatch.models._quiet_codes import (
    ANOMALOUS,
    CLOSE_N,
    CLOSED,
    CONSTS,
    DONE,
    KINDS,
    NOT_QUIET,
    RUN_N,
    RUNS,
    SCORED,
    SET_NO_RUN,
    STUCK,
    STUCK_COUNT,
    TH_HOUR,
)
from gridwatch.models._record import (
    C_DAYS,
    C_LAST_FAIL,
    C_PEAK_DAYS,
    C_SILENT,
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
    I_FIELDS,
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
    NO_PEAK_RUN,
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
    X_BYTES,
    X_FIELDS,
    ZERO_FRAC,
    MeterRecord,
    N,
    new_theft_window,
)
from gridwatch.models._result import StepResult
from gridwatch.models._theft import window_quiet

__all__ = ["NO_PHASES", "close_buffer", "consts", "daily_runs", "day_before", "forecast_steps",
           "lane_entry", "lane_kernel", "phases", "quiet_done", "quiet_step"]

_S, _B = LOG_STEP, LOG_BIAS
_STUCK = "stuck_reading"
_THEFT = "possible_theft"
_LANE_ALARMS = (_THEFT, _CONSUMPTION)  #: the alarms a meter on the lane may have open
_TABLE = 4096
#: the band's weights by sample count, as _baseline.band computes them: (w, 1 - w) of a
#: day-type hour with ``n`` samples (below ``_TABLE``) and of a time-of-week slot
_W_D = tuple((n / (n + _SHRINK), 1 - n / (n + _SHRINK)) for n in range(_TABLE))
_W_S = tuple((n / (n + _SHRINK_TOW), 1 - n / (n + _SHRINK_TOW)) for n in range(256))
_f32_pack_into = struct.Struct("=f").pack_into
_f32_unpack_from = struct.Struct("=f").unpack_from
#: a float16 written straight into a cell of ``h`` (``h[i] = enc_f16(v)`` for |v| <= 65,504:
#: the same IEEE rounding, without the round trip through bytes)
_f16_pack_into = struct.Struct("=e").pack_into
_F16_MAX = 65_504.0
#: ``log`` code -> value (``code * LOG_STEP - LOG_BIAS``, as the record decodes it): one index
#: instead of two operations
_LV: tuple[float, ...] = tuple(code * _S - _B for code in range(65_536))


def _rates(alpha: float, prior: float) -> tuple[float, ...]:
    """_update's learning rate by sample count below 256 (beyond, ``alpha`` for both levels)."""
    out = []
    for n in range(256):
        a = 1.0 / (n + 1 + prior)
        if alpha > a:
            a = alpha
        out.append(a)
    return tuple(out)


_RATE_G, _RATE_D = _rates(_ALPHA_G, 0.0), _rates(_ALPHA_DT, _SHRINK)
if _ALPHA_G <= 1.0 / (256 + 1 + 0.0) or 1.0 / (256 + 1 + _SHRINK) >= _ALPHA_DT:
    raise ImportError("the quiet path's learning rates need a longer table")
#: the scalars of ``x`` the quiet path reads, in one call (the month's energy, its history and
#: the interval in use skipped as padding)
_READ = (STARTED, LAST_TS, LAST_KW, LAST_KWH, LAST_VMIN, FLOOR_KW, ZERO_FRAC, PEAK_TODAY, PEAK_MAX,
         RESID_EW, TREND_EW, DAY_MAX, DAY_MIN, GAP_S, GAP_RUN, INFERRED_S, N, DAY_NO)
_x_unpack = struct.Struct("=13d32x5d").unpack_from
if (*range(13), *range(17, 22)) != _READ or len(X_FIELDS) + len(I_FIELDS) < 22:
    raise ImportError("the quiet path expects the record's scalars in version 6's order")
# contiguous scalars of ``x``, written by one call each: the last reading's time, kW, energy
# register and lowest voltage; the interval, the gap, its run, the inferred interval, the count
_x_pack_last = struct.Struct("=4d").pack_into
_x_pack_counts = struct.Struct("=5d").pack_into
_AT_LAST, _AT_INTERVAL = 8 * LAST_TS, 8 * INTERVAL_S  # (bytes)
_LAST = (LAST_TS, LAST_KW, LAST_KWH, LAST_VMIN)
_COUNTS = (INTERVAL_S, GAP_S, GAP_RUN, INFERRED_S, N)
if tuple(range(LAST_TS, LAST_TS + 4)) != _LAST or tuple(range(INTERVAL_S, N + 1)) != _COUNTS:
    raise ImportError("the quiet path expects the record's scalars in version 6's order")
# cells of the meter-wide level (one index instead of an addition per reading)
_MU_G, _DEV_G, _KW_G, _N_G = LV_MU + GLOBAL, LV_DEV + GLOBAL, LV_KW + GLOBAL, LV_N + GLOBAL
_SCRATCH = array("f", b"\0\0\0\0")
_exp = math.exp
_log = math.log
_sqrt = math.sqrt
_isnan = math.isnan


#: (event time, interval, calendar) -> (the previous interval's level, the forecast's steps,
#: the steps flat in float64, that array's address): see ``_steps``
_Steps = tuple[int, tuple[tuple[int, float, float], ...], array, int]


class _Consts:
    """Per-settings constants of the quiet path (computed once per settings object)."""

    __slots__ = (
        "band_hi",
        "band_lo",
        "clear_s",
        "day_min_kwh",
        "drift_s",
        "hi1",
        "hi3",
        "hi_f1",
        "hi_f3",
        "i_unb",
        "infer",
        "interval_s",
        "jit",
        "jit_at",
        "last",
        "level_down",
        "level_limit",
        "levels",
        "lo1",
        "lo3",
        "lo_f1",
        "lo_f3",
        "min_days",
        "min_kw",
        "min_pf",
        "policy_rows",
        "pols",
        "relearn_s",
        "rev_kw",
        "sample",
        "settings",
        "severe_pf",
        "stuck_fire",
        "theft_corr",
        "theft_limit",
        "theft_n",
        "thin",
        "thin_widen",
        "two_min_kw",
        "v_unb",
        "warmup_s",
        "warn_fraction",
        "widen",
    )

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
        #: each kept policy's row for the lane's kernel (``policy_row``), by its identity
        self.policy_rows: dict[int, tuple[float, ...]] = {}
        #: (event time, interval, calendar) -> the level of the previous interval's slot, the
        #: capacity forecast's steps (the level of each step's slot, damping, decay), and for
        #: the compiled kernel the steps as float64 triples with their address
        self.levels: dict[tuple[float, int, Calendar], _Steps] = {}
        self.sample = s.score_sample_every
        self.stuck_fire = s.stuck_readings - 1
        #: the last event time looked up, its calendar and what the calendar said (a fleet's
        #: readings come by the hundred at one time); one tuple, replaced whole, so that worker
        #: threads sharing it never see a time with another time's answer
        self.last: tuple[float, Calendar | None, tuple[int, int, int]] = (
            math.nan, None, (0, 0, 0))
        #: the compiled kernel's constants (``_quiet_jit.CONSTS``), and their address
        self.warn_fraction = s.capacity_warn_fraction
        # the theft window's hours and ratio limit without verdicts (as _theft._assess)
        self.theft_n = max(2, min(24, round(s.theft_hours)))
        self.theft_limit = s.theft_ratio / (1.0 + s.feedback_strength * 0.0)
        self.thin_widen = s.thin_widen
        # a day's close (``_daily._judge_day`` of a meter without verdicts or alarms)
        self.min_days = s.daily_min_days
        self.day_min_kwh = 24 * s.min_kw
        self.level_limit = s.level_ratio * (1.0 + s.feedback_strength * 0.0)
        self.level_down = 1 / s.level_ratio
        self.theft_corr = s.theft_shape_corr
        # an abnormal-consumption episode (``_consumption.judge``, ``MeterState.step``)
        self.clear_s = s.clear_minutes * 60
        self.relearn_s = s.relearn_after_s
        self.jit = array("d", [float(getattr(self, name) or 0.0) for name in CONSTS])
        self.jit_at = self.jit.buffer_info()[0]


_CONSTS: list[_Consts] = []
#: [the compiled kernel or None, whether to load it on first use]
_JIT: list[Any] = [None, True]
#: the compiled lane's entry point, loaded with the kernel
_LANE: list[Any] = [None]
_PYTHON = object()  #: the compiled path's answer for a reading it leaves to Python


def consts(s: DetectionSettings) -> _Consts:
    """The constants of settings ``s`` (kept: an engine holds one settings object)."""
    for c in _CONSTS:
        if c.settings is s:
            return c
    return _new_consts(s)


def _new_consts(s: DetectionSettings) -> _Consts:
    """The constants of settings ``s``, kept (``quiet_step`` looks for them first)."""
    c = _Consts(s)
    _CONSTS.insert(0, c)
    del _CONSTS[4:]  # (settings are frozen and few: an engine holds one)
    return c


def quiet_step(rec: MeterRecord, r: Reading, meta: MeterMeta | None, s: DetectionSettings,
               cal: Calendar, t: float | None = None) -> StepResult | None:
    """``MeterState.step`` for a quiet reading, or ``None`` (nothing changed) if it is not:
    the compiled kernel where it is loaded (:func:`compiled_quiet_step`), else, and for the
    cases the kernel leaves to Python, :func:`python_quiet_step`. ``t``: the reading's event
    time in epoch seconds, when the caller has it already."""
    if _JIT[0] is not None:
        res = compiled_quiet_step(rec, r, meta, s, cal, t)
        if res is not _PYTHON:
            return res
    elif _JIT[1]:
        _load_kernel()
        return quiet_step(rec, r, meta, s, cal, t)
    return python_quiet_step(rec, r, meta, s, cal, t)


def _load_kernel() -> None:
    """Loads the compiled kernel, the compiled day's close and the segmenter's numbers (numba
    compiles them on a machine's first use and keeps them on disk), unless
    ``GRIDWATCH_JIT=0`` or numba cannot be imported (then the Python quiet path and numpy's
    close and segmenter alone, the same results, slower; said once in the log). The close
    reads the record's bytes in little-endian order: on another machine it stays numpy's."""
    _JIT[1] = False
    if os.environ.get("GRIDWATCH_JIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    try:
        from gridwatch.models import _daily_jit, _quiet_jit, _segment_jit
    except Exception as exc:  # (numba missing or broken: the Python path computes the same)
        logging.getLogger(__name__).warning(
            "the compiled quiet path is not available (%s: %s): detection runs the Python "
            "quiet path, the same results, slower", type(exc).__name__, exc)
        return
    _JIT[0] = _quiet_jit.direct(_quiet_jit.kernel)
    _LANE[0] = _quiet_jit.direct(_quiet_jit.lane)
    _segment_codes.COMPILED[0] = _segment_jit.entry_point()
    if sys.byteorder == "little":
        _daily.COMPILED[0] = _daily_jit.entry_points()


def use_compiled(on: bool = True) -> bool:
    """Turns the compiled quiet path on (loading it, unless ``GRIDWATCH_JIT=0``) or off;
    returns whether it was on. The dataflow loads it when it is built (else the first quiet
    reading would); equivalence tests and benchmarks turn it off and on."""
    was = _JIT[0] is not None or _JIT[1]  # (on, or to be loaded on first use)
    if on and _JIT[0] is None:
        _JIT[1] = True
        _load_kernel()
    elif not on:
        _JIT[0] = _LANE[0] = _daily.COMPILED[0] = _segment_codes.COMPILED[0] = None
        _JIT[1] = False
    return was


#: the phases of a reading without voltages (:func:`phases_of` of none)
NO_PHASES = (0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0)


def phases(r: Reading) -> tuple[int, float, float, float, int, float, float, float] | None:
    """A reading's voltages and currents as the kernel takes them: the voltages' count and
    three values, the currents' count (3, or 0: none, or not three, or no voltages) and three
    values; None for a count of voltages other than none, one or three (the Python quiet
    path's)."""
    return phases_of(r.voltage, r.current)


def phases_of(volts: tuple[float, ...] | None, cur: tuple[float, ...] | None
              ) -> tuple[int, float, float, float, int, float, float, float] | None:
    """:func:`phases` of a reading's voltages and currents."""
    if not volts:
        return NO_PHASES
    nv = len(volts)
    if nv == 1:
        v0 = volts[0]
        v1 = v2 = 0.0
    elif nv == 3:
        v0, v1, v2 = volts
    else:
        return None
    if cur and len(cur) == 3:
        return nv, v0, v1, v2, 3, cur[0], cur[1], cur[2]
    return nv, v0, v1, v2, 0, 0.0, 0.0, 0.0


def compiled_quiet_step(rec: MeterRecord, r: Reading, meta: MeterMeta | None,
                        s: DetectionSettings, cal: Calendar, t: float | None = None
                        ) -> StepResult | object | None:
    """The quiet path through the compiled kernel: the checks on Python objects here, the
    arithmetic there; ``_PYTHON`` (nothing changed) for what it leaves to
    :func:`python_quiet_step`."""
    h = rec.h  # (its flags and counts by cell: this runs on every quiet reading)
    if r.status or h[C_SILENT]:
        return None
    act = rec.act
    if act and (len(act) > 1 or _THEFT not in act):
        return None
    if rec.fb:
        return _PYTHON
    pending = rec.cnt  # (only a stuck-reading count may be pending)
    if pending:
        if len(pending) > 1 or _STUCK not in pending:
            return None
        stuck_cnt = pending[_STUCK]
    else:
        stuck_cnt = -1
    if rec.peak_run[1]:
        return None
    c = consts(s)
    if meta is None:
        pol = c.pols[None]
        has_export = three = 0
        stated = nominal = kva = 0.0
    else:
        kva = meta.contracted_kva or 0.0
        tz = meta.timezone
        if tz and tz != cal.tz.key:
            cal = calendar_for(tz, meta.holiday_country or cal.country)
        has_export = meta.has_export
        stated = meta.interval_s or 0.0
        nominal = meta.nominal_voltage_v or 0.0
        three = meta.phases == 3
        cls = meta.customer_class
        pol = c.pols.get(cls)
        if pol is None:
            pol = c.pols[cls] = policy(meta, s)
    ph = phases(r)
    if ph is None:
        return _PYTHON
    nv, v0, v1, v2, ncur, i0, i1, i2 = ph
    if nv == 3:
        three = 1
    if t is None:
        t = r.ts.timestamp()
    last = c.last
    if t == last[0] and cal is last[1]:
        info = last[2]
    else:
        info = cal._q.get(int(t // 900)) or cal.info(t)
        c.last = (t, cal, info)
    kwh = r.kwh
    pf = r.pf
    th = rec.th
    if kva:  # the forecast's steps at the interval the meter reads at (the kernel checks it)
        cap_iv = int(stated or r.interval_s or rec.inferred_s or c.interval_s)
        steps = forecast_steps(c, cal, t, cap_iv)
        dp, n_steps, sp = steps[0], len(steps[1]), steps[3]
    else:
        cap_iv = dp = sp = n_steps = 0
    hp = h.buffer_info()[0]
    closes = close_buffer(1)  # (its address kept: numpy's ``ctypes`` costs a microsecond)
    if info[2] != rec.day_no:  # (a new local day: what its close needs)
        before, day_runs = day_before(cal, info[2]), daily_runs(rec)
    else:
        before, day_runs = _NO_DAY_BEFORE, 0
    code, flags, expected, z, hour = _JIT[0](
        hp + X_BYTES, hp,
        0 if th is None else th.buffer_info()[0], c.jit_at,
        t, r.kw, 0.0 if kwh is None else kwh, kwh is not None,
        r.interval_s or 0.0, stated, has_export,
        nv, v0, v1, v2, nominal, three, ncur, i0, i1, i2,
        0.0 if pf is None else pf, pf is not None,
        info[1], info[2], pol.young_dev, pol.peak_factor, pol.theft_window,
        rec.th_hour, h[C_DAYS] >= s.daily_min_days, h[C_PEAK_DAYS], kva, cap_iv, dp, sp,
        n_steps, bool(act), stuck_cnt, bool(rec.hi[1] or rec.lo[1]), closes.at,
        *before, day_runs, 0, 0)  # (no row for runs: a reading beyond the band is not quiet)
    if code != DONE:
        return None if code == NOT_QUIET else _PYTHON
    return quiet_done(rec, r.ts, r.kw, meta, c, t, flags, expected, z, hour,
                      (cal, closes.rows[0]))


@lru_cache(maxsize=4096)
def day_before(cal: Calendar, day: int) -> tuple[int, int, float]:
    """The day before local day ``day`` as the kernel's close takes it: whether it is a day
    off, its month (``year * 12 + month``) and its day of the month."""
    start, _, off, _ = cal.day(day - 1)
    return int(off), start.year * 12 + start.month, float(start.day)


_NO_DAY_BEFORE = (0, 0, 0.0)  #: (a reading of the record's own day: nothing to close)


def daily_runs(rec: MeterRecord) -> int:
    """1 while a daily run (low, high or down days) is under way: a day's close is then
    Python's (its judgement goes on or ends the run)."""
    return 1 if rec.low_days[1] or rec.high_days[1] or rec.down_days[1] else 0


class _Closes:
    """One thread's close buffer (``_quiet_codes.CLOSE_N`` float64 a row): where the kernel
    leaves the profile of each day it closes, a row a reading of the call. Its rows are read
    before the thread's next call of the kernel or the lane, so one buffer serves the thread's
    cells and its per-reading path alike."""

    __slots__ = ("at", "rows")

    def __init__(self) -> None:
        self.rows = np.zeros((0, CLOSE_N), dtype=np.float64)
        self.at = self.rows.ctypes.data


_CLOSES = threading.local()


def close_buffer(n: int) -> _Closes:
    """This thread's close buffer (``rows``, at address ``at``) with at least ``n`` rows
    (grown, never shrunk: a lane's chunk bounds it)."""
    kept = _daily.per_thread(_CLOSES, _Closes)
    if len(kept.rows) < n:
        kept.rows = np.zeros((n, CLOSE_N), dtype=np.float64)
        kept.at = kept.rows.ctypes.data
    return kept


def quiet_done(rec: MeterRecord, ts: datetime, kw: float, meta: MeterMeta | None, c: _Consts,
               t: float, flags: int, expected: float, z: float, hour: int,
               closed: tuple[Calendar, np.ndarray], runs: np.ndarray | None = None
               ) -> StepResult:
    """What the Python side does after the kernel answered DONE with ``flags`` for a reading
    at ``ts`` (``t`` in epoch seconds) of ``kw``: the few
    Python-level fields they name, the stuck-reading count, the sampled score, and the
    profile of the day the kernel closed (``closed``: the calendar and the reading's row of
    the close buffer); with ``RUNS`` (the lane's), the runs beyond the band after the reading
    (``runs``: a row of the lane's runs, ``_quiet_codes.RUN_N`` values)."""
    if flags & SET_NO_RUN:
        rec.hi = rec.lo = NO_RUN
    if flags & RUNS:
        if runs is None:
            raise ValueError("the kernel changed the runs, and no row of them was given")
        rec.hi, rec.lo, rec.peak_run = runs_of(runs)
    if flags & TH_HOUR:
        rec.th_hour = hour
    rec.h[C_LAST_FAIL] = 0
    out = StepResult([])
    if flags & STUCK_COUNT:  # counted, or the count reset: never fires (the kernel checked)
        cond(rec, out.events, _STUCK, bool(flags & STUCK), t, meta, fire_after=c.stuck_fire)
    if flags & SCORED:
        out.score = Score(meter_id=rec.meter_id, ts=ts, kw=kw, expected_kw=r3(expected, 4),
                          score=r3(abs(z)), anomalous=bool(flags & ANOMALOUS))
    if flags & CLOSED:
        out.profile = _daily.closed_profile(rec.meter_id, meta, *closed)
    return out


def runs_of(row: np.ndarray) -> tuple[tuple[float, int, float, float, float],
                                        tuple[float, int, float, float, float],
                                        tuple[float, int, float]]:
    """``rec.hi``, ``rec.lo`` and ``rec.peak_run`` from a row of the lane's runs (the shared
    ``NO_RUN`` and ``NO_PEAK_RUN`` for those not open, as ``_consumption.judge`` sets them)."""
    v = row[:RUN_N].tolist()
    return ((v[0], int(v[1]), v[2], v[3], v[4]) if v[1] else NO_RUN,
            (v[5], int(v[6]), v[7], v[8], v[9]) if v[6] else NO_RUN,
            (v[10], int(v[11]), v[12]) if v[11] else NO_PEAK_RUN)


def run_row(rec: MeterRecord) -> tuple[float, ...] | None:
    """The record's runs beyond the band and its abnormal-consumption alarm (``KINDS``, onset)
    as a row of the lane's runs, or None when none is open."""
    hi, lo, peak = rec.hi, rec.lo, rec.peak_run
    onset = rec.act.get(_CONSUMPTION)
    if not (hi[1] or lo[1] or peak[1] or onset is not None):
        return None
    if onset is None:
        return (*hi, *lo, *peak, 0, 0.0)
    return (*hi, *lo, *peak, KINDS[rec.kind], onset)


def lane_kernel() -> Any:
    """The compiled lane (:func:`._quiet_jit.lane`) when the compiled quiet path is loaded,
    else None (the caller checks ``_meter.FAST_PATH``)."""
    return _LANE[0] if _JIT[0] is not None else None


def lane_entry(rec: MeterRecord, meta: MeterMeta | None, s: DetectionSettings, cal: Calendar
               ) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """A meter's row for the lane (``_quiet_jit.LANE_ADDRESSES``, then ``LANE_METER`` without
    the profile) and its profile (``LANE_PROFILE``), or None when its next reading cannot take
    the lane: what
    :func:`compiled_quiet_step` checks on the record and the registry before it calls the
    kernel (an alarm open but possible theft and abnormal consumption, which the lane's
    kernel judges on; a count pending but a stuck reading; verdicts on record; silence), and
    what the lane leaves to it (a time zone of the meter's
    own; the last reading a last gasp)."""
    h = rec.h
    if h[C_SILENT] or rec.fb or h[C_LAST_FAIL]:
        return None
    act = rec.act  # (possible theft and abnormal consumption: the kernel judges them on)
    if act and not (len(act) <= 2 and all(k in _LANE_ALARMS for k in act)
                    and (_CONSUMPTION not in act or rec.kind in KINDS)):
        return None
    pending = rec.cnt
    if pending and (len(pending) > 1 or _STUCK not in pending):
        return None
    c = consts(s)
    if meta is None:
        pol = c.pols[None]
        profile = (0.0, 0.0, 0.0, 0.0, pol.young_dev, pol.peak_factor, float(pol.theft_window),
                   0.0, *policy_row(c, pol))
    else:
        if meta.timezone and meta.timezone != cal.tz.key:
            return None
        cls = meta.customer_class
        pol = c.pols.get(cls)
        if pol is None:
            pol = c.pols[cls] = policy(meta, s)
        profile = (float(meta.interval_s or 0.0), float(meta.has_export),
                   float(meta.nominal_voltage_v or 0.0), float(meta.phases == 3),
                   pol.young_dev, pol.peak_factor, float(pol.theft_window),
                   float(meta.contracted_kva or 0.0), *policy_row(c, pol))
    th = rec.th
    if th is None and pol.theft_window:
        # the window the kernel opens at the meter's first judged hour (one not being filled,
        # as while its readings export, is none to the record's bytes: see
        # ``MeterRecord.to_bytes``)
        th = rec.th = new_theft_window()
    hp = h.buffer_info()[0]
    row = (hp + X_BYTES, hp,
           0 if th is None else th.buffer_info()[0], rec.th_hour,
           int(h[C_DAYS] >= s.daily_min_days), h[C_PEAK_DAYS], int(_THEFT in act),
           pending[_STUCK] if pending else -1,
           0,  # (the row of runs: the lane's own, which ``Lane.set`` gives from ``run_row``)
           daily_runs(rec))
    return row, profile


def policy_row(c: _Consts, pol: ClassPolicy) -> tuple[float, ...]:
    """What a class's policy gives the kernel's judgement of a run (``_quiet_codes.POLICY``):
    its minutes as seconds, as ``_consumption.judge`` compares them (kept in ``c`` by the
    policy's identity: the policies are those ``c.pols`` keeps)."""
    row = c.policy_rows.get(id(pol))
    if row is None:
        row = c.policy_rows[id(pol)] = (
            float(pol.peak_burst), float(pol.peak_min_minutes * 60),
            float(pol.high_min_minutes * 60), float(pol.high_energy_share),
            float(pol.high_min_kwh), float(pol.zero_min_minutes * 60),
            float(pol.low_min_minutes * 60), float(pol.low_energy_share))
    return row


def forecast_steps(c: _Consts, cal: Calendar, t: float, interval: int) -> _Steps:
    """The capacity forecast's steps from ``t`` at ``interval`` (kept in ``c.levels``): the
    level of the previous interval's slot, the steps, the steps flat in float64 and their
    address (keep the tuple while the address is used)."""
    key = (t, interval, cal)
    return c.levels.get(key) or _steps(c, key, cal, t, float(interval))


def python_quiet_step(rec: MeterRecord, r: Reading, meta: MeterMeta | None,
                      s: DetectionSettings, cal: Calendar, t: float | None = None
                      ) -> StepResult | None:
    """The quiet path in Python: ``MeterState.step`` for a quiet reading, or ``None``
    (nothing changed) if it is not."""
    # ---- preconditions: nothing below changes the record until the commit
    # (``max``/``min`` of two values are written as conditionals throughout: the same value,
    # NaN and signed zeros included, without the call)
    x = rec.x
    if not x[N] or r.status or rec.h[C_SILENT]:
        return None
    act = rec.act  # (only a possible-theft alarm may be open: judged on closing an hour or day)
    if act and (len(act) > 1 or _THEFT not in act):
        return None
    pending = rec.cnt  # (only a stuck-reading count may be pending: see below)
    if pending and (len(pending) > 1 or _STUCK not in pending):
        return None
    if rec.peak_run[1]:
        return None
    if t is None:
        t = r.ts.timestamp()
    # the record's scalars at once (one call instead of a subscript each)
    (started, last_ts, last_kw, last_kwh, _, fl_x, zf, peak_today, peak_max, resid_ew, trend_ew,
     day_max, day_min, gap_s, run, inferred, n_prev, day_no) = _x_unpack(x)
    if t <= last_ts:
        return None
    c = consts(s)
    kw = r.kw
    if meta is None:
        kva = stated = None
        has_export = exporting = False
        pol = c.pols[None]
    else:
        tz = meta.timezone
        if tz and tz != cal.tz.key:  # a meter of another region: its own calendar (cached)
            cal = calendar_for(tz, meta.holiday_country or cal.country)
        has_export = meta.has_export
        exporting = has_export and kw < 0  # (not judged as consumption)
        kva = meta.contracted_kva
        stated = meta.interval_s
        cls = meta.customer_class
        pol = c.pols.get(cls)
        if pol is None:
            pol = c.pols[cls] = policy(meta, s)
    # the interval (as MeterState._interval infers it, committed below)
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
        if kwh < last_kwh - 1e-6:
            return None
        if kwh == last_kwh and kw > min_kw and kw * interval / 3600 > 0.01:
            return None
    if kw < c.rev_kw and not has_export:
        return None
    # the same non-zero value again: counted as a stuck reading (raised by the full path)
    stuck = kw == last_kw and kw != 0.0
    if stuck and pending.get(_STUCK, 0) + 1 >= c.stuck_fire:
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
        if meta is None:
            three = nv == 3
            nominal = None
        else:
            three = meta.phases == 3 or nv == 3
            nominal = meta.nominal_voltage_v
        if nominal:
            lo, hi = ((nominal * c.lo_f3, nominal * c.hi_f3) if three
                      else (nominal * c.lo_f1, nominal * c.hi_f1))
        elif three:
            lo, hi = c.lo3, c.hi3
        else:
            lo, hi = c.lo1, c.hi1
        if nv == 1:
            v0 = volts[0]
            if (1.0 < v0 < lo) or v0 > hi:
                return None
            vmin_last = v0
        elif nv == 3 and volts[0] > 1.0 and volts[1] > 1.0 and volts[2] > 1.0:
            # three live phases (the common case, without the list of live ones; min, max and
            # sum of three as conditionals and additions: the same values)
            v0, v1, v2 = volts
            vmin_last = (v2 if v2 < v1 else v1) if v1 < v0 else (v2 if v2 < v0 else v0)
            if vmin_last < lo or v0 > hi or v1 > hi or v2 > hi:
                return None
            mean_v = (v0 + v1 + v2) / 3
            a0, a1, a2 = abs(v0 - mean_v), abs(v1 - mean_v), abs(v2 - mean_v)
            if a1 > a0:
                a0 = a1
            if a2 > a0:
                a0 = a2
            if a0 / mean_v * 100 > c.v_unb:
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
            i0, i1, i2 = cur
            mean_i = (i0 + i1 + i2) / 3
            if mean_i > 1.0:
                a0, a1, a2 = abs(i0 - mean_i), abs(i1 - mean_i), abs(i2 - mean_i)
                if a1 > a0:
                    a0 = a1
                if a2 > a0:
                    a0 = a2
                if a0 / mean_i * 100 > c.i_unb:
                    return None
    else:
        vmin_last = math.nan
    pf_r = r.pf
    if pf_r is not None:
        pf = abs(pf_r)
        if pf < c.min_pf and kw > min_kw:
            if pf < c.severe_pf:
                return None
            if kw >= (0.3 * kva if kva else F16[h[_KW_G]]):
                return None

    # the local day (and hour) the reading adds to
    last = c.last
    if t == last[0] and cal is last[1]:
        info = last[2]
    else:  # (the calendar's quarters, as ``info`` looks them up)
        info = cal._q.get(int(t // 900)) or cal.info(t)
        c.last = (t, cal, info)
    # a reading of a new local day closes the day before: below, after the judgements and
    # before the reading's own sums, as on the full path
    turns = info[2] != day_no
    slot = info[1]
    theft = pol.theft_window and not exporting
    if theft:
        th = rec.th
        th_hour = rec.th_hour
        hour = int(t // 3600)
        opens = th is None or not th_hour  # (a window not being filled: from zeros, below)
        closes = not opens and hour != th_hour
        if closes and hour != th_hour + 1:
            return None  # hours with no reading: the full path clears them

    new_start = not started and kw > min_kw
    if new_start:
        started = t
    g_n = h[_N_G]
    warm = started and t - started >= c.warmup_s and g_n >= 8
    if (rec.hi[1] or rec.lo[1]) and not (warm and not exporting):
        return None  # a run that is not judged: the full path learns the band's edge
    n_read = n_prev + 1.0  # (the count is an exact integer in ``x``: no int() needed)
    sample = c.sample
    scored = sample and n_read % sample == 0

    # the band (as _baseline.band computes it): its mean load, where the theft window or the
    # capacity forecast reads it, and the rest when judged
    d = _LEVEL[slot]
    n_d = h[LV_N + d] if g_n else 0
    mean_kw = kw
    if g_n and (theft or kva):
        mean_kw = (n_d * F16[h[LV_KW + d]] + _SHRINK * F16[h[_KW_G]]) / (n_d + _SHRINK)
    if g_n and (warm or scored):
        mu_g, dev_g = _LV[h[_MU_G]], _LV[h[_DEV_G]]
        if n_d < _TABLE:
            w_d, u_d = _W_D[n_d]
            thin = c.thin[n_d]
        else:
            w_d = n_d / (n_d + _SHRINK)
            u_d = 1 - w_d
            thin = 1.0 + s.thin_widen / _sqrt(1.0 + n_d)
        mu_l, dev_l = _LV[h[LV_MU + d]], _LV[h[LV_DEV + d]]
        mu_d = w_d * mu_l + u_d * mu_g
        dev_d = w_d * dev_l + u_d * dev_g
        cc = h[TOW_N + (slot >> 1)]
        w_s, u_s = _W_S[cc >> 8 if slot & 1 else cc & 255]
        mu = w_s * (_LV[h[TOW_MU + slot]]) + u_s * mu_d
        dev = dev_d if dev_d > _MIN_DEV else _MIN_DEV  # (max of three: all finite, > 0)
        young = pol.young_dev * u_d
        if young > dev:
            dev = young
        dev *= thin
        fl = fl_x or 0.01
        if warm and not exporting:  # consumption: inside the band, no run starts
            if kw > _exp(mu + c.band_hi * dev) - fl:
                return None
            lo_kw = _exp(mu - c.band_lo * dev) - fl
            if lo_kw < 0.0:
                lo_kw = 0.0
            if kw < lo_kw:
                usual = _exp(mu) - fl
                if usual < 0.0:
                    usual = 0.0
                if usual > c.two_min_kw:
                    return None
            # managers' verdicts on record widen the record's threshold (as _consumption.judge
            # computes it; the other thresholds they widen are never reached here: a run above
            # the band, a theft window, which judges its own, and a closing day)
            widen = c.widen if not rec.fb else 1.0 + s.feedback_strength * feedback(
                rec, _CONSUMPTION, "spike", t, s.feedback_half_life_days * 86_400)
            if rec.peak_days >= 7:
                ref = widen * (peak_max * pol.peak_factor)
            else:
                ref = widen * (2.0 * (peak_today if peak_today > peak_max else peak_max))
            if ref > 0 and kw > ref and kw > _exp(mu + c.band_hi * dev / 2) - fl:
                return None  # beyond the meter's record
    else:
        mu = dev = fl = 0.0

    # over-capacity (as _capacity.judge projects it)
    resid = trend = 0.0
    if kva:
        if pf_r is not None:
            pfc = abs(pf_r)
            if pfc < 0.5:
                pfc = 0.5
        else:
            pfc = 1.0
        resid = 0.7 * resid_ew + 0.3 * (kw - mean_kw) if warm else 0.0
        trend = trend_ew
        limit = float(kva) * s.capacity_warn_fraction
        if kw / pfc >= limit:
            return None
        if warm:
            # what depends on the time alone (the same for every meter reading at ``t``): the
            # previous interval's level and each forecast step's (level, damping, decay)
            steps = forecast_steps(c, cal, t, interval_i)
            g = _SHRINK * F16[h[_KW_G]]
            if not _isnan(last_kw):  # (mean_kw_at of the previous interval's slot)
                dp = steps[0]
                if dp == d and g_n:
                    prev = last_kw - mean_kw
                else:
                    nd = h[LV_N + dp]
                    prev = last_kw - (nd * F16[h[LV_KW + dp]] + g) / (nd + _SHRINK)
                trend = 0.7 * trend + 0.3 * ((kw - mean_kw) - prev)
            d_last = -1
            lv_mean = 0.0
            for dd, damp, p90 in steps[1]:
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
            if not _isnan(last_kw):
                trend = 0.7 * trend + 0.3 * ((kw - 0.0) - (last_kw - 0.0))
            for _off, damp, _p90 in capacity_plan(s.capacity_horizon_min, interval):
                if (kw + trend * damp) / pfc >= limit:
                    return None

    # the theft window's judgement of the hour this reading closes: nothing raised
    if (theft and closes and warm and rec.days >= s.daily_min_days
            and not window_quiet(rec, th, th_hour, t, s)):
        return None

    # ---- commit: the detectors' updates, in the full path's order
    out = StepResult([])  # (the list given: no default factory to call)
    # (the interval, its inference and the count: contiguous in ``x``, nothing below reads them)
    _x_pack_counts(x, _AT_INTERVAL, interval_i, gap_s, run, inferred, n_read)
    if stuck or pending:  # counted, or the count reset: never fires (checked above)
        cond(rec, out.events, _STUCK, stuck, t, meta, fire_after=c.stuck_fire)
    if new_start:
        x[STARTED] = t
    if warm and not exporting:
        rec.hi = rec.lo = NO_RUN
    kw0 = 0.0 if kw < 0.0 else kw  # max(kw, 0.0)
    if theft:
        if opens:  # (as ``_theft.judge`` opens a window)
            th = rec.th = new_theft_window()
            rec.th_hour = th_hour = hour
        elif closes:  # (the next hour starts from zero)
            i = hour % 24
            th[TH_OBS + i] = th[TH_EXP + i] = th[TH_CNT + i] = 0.0
            rec.th_hour = th_hour = hour
        i = th_hour % 24
        _SCRATCH[0] = kw0  # (f32, inlined)
        th[TH_OBS + i] = th[TH_OBS + i] + _SCRATCH[0]
        _SCRATCH[0] = mean_kw
        th[TH_EXP + i] = th[TH_EXP + i] + _SCRATCH[0]
        n_th = int(th[TH_CNT + i]) + 1
        th[TH_CNT + i] = n_th if n_th < 255 else 255
    if kva:
        x[RESID_EW] = resid
        if not _isnan(last_kw):
            x[TREND_EW] = trend
    if turns:  # (_daily.accumulate's close: the day's sums, extremes and peak start anew)
        out.profile = _daily.turn_day(rec, info[2], meta, s, cal, t, out.events)
        day_max, day_min, peak_today = x[DAY_MAX], x[DAY_MIN], x[PEAK_TODAY]
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
    if kw > day_max:
        x[DAY_MAX] = kw
    if kw < day_min:
        x[DAY_MIN] = kw
    if kw > peak_today:
        x[PEAK_TODAY] = kw
    if started:
        # the full path's learning (no band edge, nothing open): _baseline.learn, written out
        # once the meter-wide level is past the winsorising threshold
        if g_n >= 8:
            if g_n < 96 or not fl_x:  # (the log offset follows the meter's level: day one)
                fl_x = 0.05 * F16[h[_KW_G]]  # max(0.01, 0.05 * usual)
                fl_x = x[FLOOR_KW] = fl_x if fl_x > 0.01 else 0.01
            if not (warm or scored):  # (else the band decoded them: nothing has changed since)
                mu_g, dev_g = _LV[h[_MU_G]], _LV[h[_DEV_G]]
                mu_l, dev_l = _LV[h[LV_MU + d]], _LV[h[LV_DEV + d]]
            _learn_settled(h, d, slot, kw0, _log(kw0 + fl_x), g_n, mu_g, dev_g, mu_l, dev_l)
        else:
            learn(rec, slot, kw)
        a = 1.0 / n_prev  # (max(a, 0.002); N > 0 on this path)
        if a < 0.002:
            a = 0.002
        x[ZERO_FRAC] = zf + a * ((kw <= min_kw) - zf)
    if scored:
        if g_n:
            expected = _exp(mu) - fl
            if expected < 0.0:
                expected = 0.0
            z = (_log(kw0 + fl) - mu) / dev
        else:
            expected, z = kw, 0.0
        out.score = Score(meter_id=rec.meter_id, ts=r.ts, kw=kw, expected_kw=r3(expected, 4),
                          score=r3(abs(z)), anomalous=False)
    _x_pack_last(x, _AT_LAST, t, kw, last_kwh if kwh is None else kwh, vmin_last)
    rec.last_fail = False
    return out


def _steps(c: _Consts, key: tuple[float, int, Calendar], cal: Calendar, t: float,
           interval: float) -> _Steps:
    """The level of the slot one interval before ``t``, the capacity forecast's steps from
    ``t`` as (the level of the step's slot, damping, decay), the same flat in float64 and
    that array's address (for the kernel); kept in ``c.levels``."""
    levels = c.levels
    plan = capacity_plan(c.settings.capacity_horizon_min, interval)
    if len(levels) * (len(plan) + 1) >= 16_384:  # (bounded: a few hundred kB)
        levels.clear()
    known = cal._q.get
    t_prev = t - interval
    steps = tuple((_LEVEL[(known(int((t + off) // 900)) or cal.info(t + off))[1]], damp, p90)
                  for off, damp, p90 in plan)
    flat = array("d", [v for step in steps for v in step])
    out = levels[key] = (_LEVEL[(known(int(t_prev // 900)) or cal.info(t_prev))[1]], steps,
                         flat, flat.buffer_info()[0])
    return out


def _learn_settled(h: array, d: int, slot: int, kw: float, y: float, g_n: int, mu: float,
                   dev: float, mu_l: float, dev_l: float) -> None:
    """``_baseline.learn(rec, slot, kw)`` with no band edge, for a meter with ``g_n >= 8``
    readings behind its meter-wide level (winsorised), ``kw`` not below zero and
    ``y = log(kw + offset)`` (the offset already set): the same operations in the same order,
    with ``_update``, ``enc_log`` and ``enc_f16`` written out (``enc_f16``'s bytes go straight
    into the cell). ``mu``, ``dev``, ``mu_l`` and ``dev_l`` are the decoded means and
    dispersions of the meter-wide level and of level ``d``, as they stand (the band decoded
    them)."""
    # the meter-wide level: _update(h, GLOBAL, y, kw, _ALPHA_G, 0.0) (n >= 8: winsorised)
    _learn_level(h, _MU_G, _DEV_G, _KW_G, _RATE_G[g_n] if g_n < 256 else _ALPHA_G, mu, dev,
                 True, y, kw)
    if g_n < 65_535:
        h[_N_G] = g_n + 1
    # the day-type-hour level: _update(h, d, y, kw, _ALPHA_DT, _SHRINK)
    i_mu, i_dev, i_kw = LV_MU + d, LV_DEV + d, LV_KW + d
    n = h[LV_N + d]
    if n:
        mu, dev = mu_l, dev_l
    else:  # a new level starts from the meter-wide one (just learned), worth _SHRINK samples
        h[i_mu], h[i_dev] = h[_MU_G], h[_DEV_G]
        h[i_kw] = h[_KW_G]
        mu, dev = _LV[h[i_mu]], _LV[h[i_dev]]
    v_dev = _learn_level(h, i_mu, i_dev, i_kw, _RATE_D[n] if n < 256 else _ALPHA_DT, mu, dev,
                         n + _SHRINK >= 8, y, kw)
    if n < 65_535:
        h[LV_N + d] = n + 1
    # the time-of-week slot
    i = TOW_N + (slot >> 1)
    c = h[i]
    n = c >> 8 if slot & 1 else c & 255
    mu = _LV[h[TOW_MU + slot] if n else h[i_mu]]
    dev = _LV[v_dev]
    lim = 2.5 * (_MIN_DEV if dev < _MIN_DEV else dev)
    r = y - mu
    if r > lim:
        r = lim
    elif r < -lim:
        r = -lim
    v = (mu + _ALPHA_TOW * r + _B) * 2048.0 + 0.5
    h[TOW_MU + slot] = int(v) if 0.0 <= v < 65_535.0 else (65_535 if v >= 65_535.0 else 0)
    if n < 255:
        h[i] = c + 256 if slot & 1 else c + 1


def _learn_level(h: array, i_mu: int, i_dev: int, i_kw: int, a: float, mu: float, dev: float,
                 winsorise: bool, y: float, kw: float) -> int:
    """One level's step of ``_baseline._update`` at rate ``a`` from its decoded mean ``mu``
    and dispersion ``dev``, with ``enc_log`` and ``enc_f16`` written out (``enc_f16``'s bytes
    go straight into the cell); returns the new dispersion's code."""
    r = y - mu
    d_new = -r if r < 0.0 else r  # (abs: r is never -0.0, log gives +0.0)
    if winsorise:
        md = _MIN_DEV if dev < _MIN_DEV else dev
        lim = 2.5 * md
        if r > lim:
            r = lim
        elif r < -lim:
            r = -lim
        if 4 * md < d_new:
            d_new = 4 * md
    v = (mu + a * r + _B) * 2048.0 + 0.5  # (enc_log)
    h[i_mu] = int(v) if 0.0 <= v < 65_535.0 else (65_535 if v >= 65_535.0 else 0)
    v = (dev + a * (d_new - dev) + _B) * 2048.0 + 0.5
    h[i_dev] = v_dev = int(v) if 0.0 <= v < 65_535.0 else (65_535 if v >= 65_535.0 else 0)
    lv_kw = F16[h[i_kw]]
    v = lv_kw + a * (kw - lv_kw)
    if v > _F16_MAX:  # (enc_f16: saturating)
        v = _F16_MAX
    elif v < -_F16_MAX:
        v = -_F16_MAX
    _f16_pack_into(h, 2 * i_kw, v)
    return v_dev
