"""What the quiet path's Python side and its compiled kernel (:mod:`._quiet_jit`) agree on:
the kernel's answers, the flags of a DONE answer, and the settings' constants it reads, by
position (a module of its own: the kernel is imported only when numba is there)."""

from __future__ import annotations

__all__ = ["CONSTS", "DONE", "NOT_QUIET", "PYTHON", "SCORED", "SET_NO_RUN", "STUCK",
           "STUCK_COUNT", "TH_HOUR"]

#: the compiled kernel's answers: nothing changed and not quiet (the full path runs), done, or
#: nothing changed and left to :func:`python_quiet_step`
NOT_QUIET, DONE, PYTHON = 0, 1, 2
#: flags of a DONE answer: the runs above and below the band end (``rec.hi = rec.lo =
#: NO_RUN``), the theft window moved to the answer's hour (``rec.th_hour``), a sampled score,
#: the stuck-reading count to take (``_alarms.cond``), and whether the value repeated
SET_NO_RUN, TH_HOUR, SCORED, STUCK_COUNT, STUCK = 1, 2, 4, 8, 16
#: the settings' constants the kernel reads (attributes of ``_Consts``), by position in the
#: float64 buffer passed to it by address
CONSTS = ("min_kw", "two_min_kw", "rev_kw", "drift_s", "infer", "interval_s", "warmup_s",
          "band_hi", "band_lo", "lo_f1", "hi_f1", "lo_f3", "hi_f3", "lo1", "hi1", "lo3", "hi3",
          "min_pf", "severe_pf", "widen", "thin_widen", "v_unb", "i_unb", "sample",
          "warn_fraction", "theft_n", "theft_limit", "stuck_fire")
