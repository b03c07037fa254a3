"""What the quiet path's Python side and its compiled kernel (:mod:`._quiet_jit`) agree on:
the kernel's answers, the flags of a DONE answer, and the settings' constants it reads, by
position (a module of its own: the kernel is imported only when numba is there)."""

from __future__ import annotations

__all__ = ["ANOMALOUS", "CLOSED", "CLOSE_N", "CL_DAY", "CL_HAS_MOM", "CL_HAS_RATIO", "CL_KWH",
           "CL_MOM", "CL_OFF", "CL_PEAK", "CL_RATIO", "CL_VALLEY", "CONSTS", "DAY_TURNED",
           "DONE", "KINDS", "NOT_QUIET", "POLICY", "PYTHON", "RUNS", "RUN_HI", "RUN_KIND",
           "RUN_LO", "RUN_N", "RUN_ONSET", "RUN_PEAK", "SCORED", "SET_NO_RUN", "STUCK",
           "STUCK_COUNT", "TH_HOUR"]

#: the compiled kernel's answers: nothing changed and not quiet (the full path runs), done, or
#: nothing changed and left to :func:`python_quiet_step`
NOT_QUIET, DONE, PYTHON = 0, 1, 2
#: flags of a DONE answer: the runs above and below the band end (``rec.hi = rec.lo =
#: NO_RUN``), the theft window moved to the answer's hour (``rec.th_hour``), a sampled score,
#: the stuck-reading count to take (``_alarms.cond``), whether the value repeated, the reading
#: started a new local day (the lane's day counts of the meter change), and the day closed
#: made a profile (in the close buffer: :data:`CL_KWH` and the rest)
SET_NO_RUN, TH_HOUR, SCORED, STUCK_COUNT, STUCK, DAY_TURNED, CLOSED = 1, 2, 4, 8, 16, 32, 64
#: a flag of the lane's DONE answers: the reading started, went on with or ended a run beyond
#: the band (``rec.hi``, ``rec.lo``, ``rec.peak_run``); the runs after it follow the answer's
#: first four columns, as a row of the lane's runs (below)
RUNS = 128
#: a flag of the lane's DONE answers: the reading is part of an abnormal-consumption episode
#: (an alarm open): its score is anomalous (and given whether sampled or not)
ANOMALOUS = 256
#: a row of the lane's runs (float64): ``rec.hi`` (start, count, energy over the band, over
#: the usual, the usual's energy), ``rec.lo`` (start, count, deficit, highest kW, the usual's
#: energy), ``rec.peak_run`` (start, count, highest kW), from these positions (a count of 0 is
#: no run: ``NO_RUN``, ``NO_PEAK_RUN``); then the abnormal-consumption alarm open, as its kind's
#: number in :data:`KINDS` (0: none; only Python raises and resolves one) and its onset
RUN_HI, RUN_LO, RUN_PEAK, RUN_KIND, RUN_ONSET, RUN_N = 0, 5, 10, 13, 14, 15
#: the kinds of an open abnormal-consumption alarm, by the number the kernel knows them by: 1
#: above the band, 2 below it, 3 and 4 a daily level shift up and down
KINDS = {"spike": 1, "sustained_rise": 1, "sustained_drop": 2, "zero_consumption": 2,
         "level_shift_up": 3, "level_shift_down": 4}
#: what a customer class's policy (``ClassPolicy``) gives the kernel's judgement of a run, in
#: the lane's profile rows after ``_quiet_jit.LANE_PROFILE``'s first eight: the minutes as
#: seconds (``minutes * 60``, as ``_consumption.judge`` compares them)
POLICY = ("peak_burst", "peak_min_s", "high_min_s", "high_energy_share", "high_min_kwh",
          "zero_min_s", "low_min_s", "low_energy_share")
#: a row of the close buffer (float64, ``_quiet.close_buffer``), where the kernel leaves the
#: profile of a day it closed: the day's curve and the usual weekday and day-off curves,
#: each rounded to 4 decimals (72 values from 0), the day's kWh, its highest and lowest
#: reading, whether it was a day off, month-on-month growth (and whether there is one), the
#: energy against the meter's history (and whether there is one), the day's number; the
#: cells after it are the kernel's own (the record's new scalars, between planning the close
#: and writing it)
(CL_KWH, CL_PEAK, CL_VALLEY, CL_OFF, CL_MOM, CL_HAS_MOM, CL_RATIO, CL_HAS_RATIO,
 CL_DAY) = range(72, 81)
CLOSE_N = 144
#: the settings' constants the kernel reads (attributes of ``_Consts``), by position in the
#: float64 buffer passed to it by address
CONSTS = ("min_kw", "two_min_kw", "rev_kw", "drift_s", "infer", "interval_s", "warmup_s",
          "band_hi", "band_lo", "lo_f1", "hi_f1", "lo_f3", "hi_f3", "lo1", "hi1", "lo3", "hi3",
          "min_pf", "severe_pf", "widen", "thin_widen", "v_unb", "i_unb", "sample",
          "warn_fraction", "theft_n", "theft_limit", "stuck_fire", "min_days", "day_min_kwh",
          "level_limit", "level_down", "theft_corr", "clear_s", "relearn_s")
