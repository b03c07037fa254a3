"""Possible theft within the day: the last ``theft_hours`` hours at a fraction of the usual
energy, keeping the usual shape.

A bypass takes a share of the load at every hour, so the hourly curve stays the usual curve,
scaled down; an empty home drops to its base load and loses the shape. Every closed hour the
last ``theft_hours`` hours are judged: their energy below ``theft_ratio`` of the usual mean load
of those hours, and the hourly observed curve correlated with the usual one (at least
``theft_window_corr``). The whole-day rule of :mod:`._daily` is the second way in; both raise the
one ``possible_theft`` alarm, which the segment's judge confirms.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from gridwatch._schemas import Event, MeterMeta, Severity
from gridwatch.models._alarms import feedback, fire, r3, resolve
from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import (
    NO_DAYS,
    TH_CNT,
    TH_EXP,
    TH_OBS,
    MeterRecord,
    f32,
    new_theft_window,
)

__all__ = ["ETYPE", "judge", "window_quiet"]

ETYPE = "possible_theft"


def judge(rec: MeterRecord, kw: float, usual_kw: float, t: float, meta: MeterMeta | None,
          s: DetectionSettings, out: list[Event], judged: bool) -> None:
    """Add one reading to its hour; when an hour closes, judge the last ``theft_hours``."""
    hour = int(t // 3600)
    last = rec.th_hour
    th = rec.th
    if th is None or not last:
        th = rec.th = new_theft_window()  # a window not being filled starts from zeros
    elif hour != last:
        for h in range(last + 1, min(hour, last + 25)):  # hours with no reading
            i = h % 24
            th[TH_OBS + i] = th[TH_EXP + i] = th[TH_CNT + i] = 0.0
        if judged:
            _judge_window(rec, th, last, t, meta, s, out)
        i = hour % 24
        th[TH_OBS + i] = th[TH_EXP + i] = th[TH_CNT + i] = 0.0
    rec.th_hour = hour
    i = hour % 24
    # float32 sums, rounded as the float32 arrays of version 4 rounded them
    th[TH_OBS + i] = th[TH_OBS + i] + f32(kw)
    th[TH_EXP + i] = th[TH_EXP + i] + f32(usual_kw)
    th[TH_CNT + i] = min(int(th[TH_CNT + i]) + 1, 255)


def window_quiet(rec: MeterRecord, th: array, last: int, t: float,
                 s: DetectionSettings) -> bool:
    """Whether judging the window that closed with hour ``last`` at event time ``t`` raises
    and resolves nothing (it changes nothing either way: for the quiet path)."""
    return _assess(rec, th, last, t, s) is None


def _judge_window(rec: MeterRecord, th: array, last: int, t: float,
                  meta: MeterMeta | None, s: DetectionSettings, out: list[Event]) -> None:
    a = _assess(rec, th, last, t, s)
    if a is None:
        return
    n, ratio, total, obs, corr, swing = a
    if ETYPE in rec.act:
        rec.low_days = NO_DAYS  # the whole-day rule starts again too: one episode
        out.append(resolve(rec, ETYPE, t, meta, "consumption is back near its usual level",
                           {"window_ratio": r3(ratio), "window_hours": n}))
        return
    onset = (last - n + 1) * 3600.0
    out.append(fire(
        rec, ETYPE, Severity.WARNING, 1 - ratio, onset, t, meta,
        f"{n} h at {ratio:.0%} of the energy the meter usually draws in those hours, with the "
        "usual shape (a bypass scales the load down; an empty home flattens it)",
        {"window_ratio": r3(ratio), "window_hours": n, "shape_corr": r3(corr),
         "swing_ratio": r3(swing),
         "observed_kwh": r3(float(obs.sum()), 2), "expected_kwh": r3(total, 2),
         "threshold_ratio": s.theft_ratio, "strong": False,
         "baseline": "the meter's usual mean load of each hour"}))


_Assessed = tuple[int, float, float, "np.ndarray[Any, Any]", float, float]


def _assess(rec: MeterRecord, th: array, last: int, t: float, s: DetectionSettings
            ) -> _Assessed | None:
    """The window's judgement, without changing anything: ``None`` when it neither fires nor
    (with the alarm open) resolves; else (hours, ratio, expected kWh, observed curve,
    correlation, swing ratio)."""
    n = max(2, min(24, round(s.theft_hours)))
    idx = [(last - k) % 24 for k in range(n)]
    if any(not th[TH_CNT + i] for i in idx):
        return None  # a gap in the window: not judged
    win = np.frombuffer(th, np.float32)
    cnt = win[TH_CNT:TH_CNT + 24][idx].astype(np.float64)
    obs = win[TH_OBS:TH_OBS + 24][idx] / cnt
    exp = win[TH_EXP:TH_EXP + 24][idx] / cnt
    total = float(exp.sum())
    if total <= n * 2 * s.min_kw:
        return None
    ratio = float(obs.sum()) / total
    if ETYPE in rec.act:
        if ratio >= (1 + s.theft_ratio) / 2:
            return n, ratio, total, obs, 0.0, 0.0
        return None
    half_life = s.feedback_half_life_days * 86_400
    limit = s.theft_ratio / (1.0 + s.feedback_strength * feedback(rec, ETYPE, "", t, half_life))
    # every hour low (a window still holding normal hours is not a sustained theft yet), and a
    # usual curve with a shape to compare with
    if (ratio >= limit or float((obs / np.maximum(exp, 1e-9)).max()) >= (1 + limit) / 2
            or exp.std() < 0.1 * exp.mean() or obs.std() < 1e-9):
        return None
    corr = float(np.corrcoef(obs, exp)[0, 1])
    # scaling keeps the load's relative swing (its coefficient of variation); an empty home's
    # base load is flat
    swing = (float(obs.std()) / max(float(obs.mean()), 1e-9)) / (
        float(exp.std()) / max(float(exp.mean()), 1e-9))
    if corr < s.theft_window_corr or swing < 0.5:
        return None
    return n, ratio, total, obs, corr, swing
