"""Abnormal consumption within the day: episodes judged by energy and duration, not one z.

A reading above the band of its slot starts (or extends) a *high run*, one below it a *low run*.
A run becomes an ``abnormal_consumption`` alarm only when it is news for the customer's class
(:class:`~gridwatch.models.ClassPolicy`): it has lasted ``*_min_minutes`` and the energy beyond
the band adds up to ``*_energy_share`` of the meter's usual daily energy. The alarm resolves when
the load has been back inside the band for ``clear_intervals`` readings; a different episode
(a drop after a rise, a daily level shift) supersedes an open one instead of hiding behind it.
"""

from __future__ import annotations

from gridwatch._schemas import Event, MeterMeta, Severity
from gridwatch.models._alarms import feedback, fire, r3, resolve
from gridwatch.models._baseline import Band, describe
from gridwatch.models._config import ClassPolicy, DetectionSettings
from gridwatch.models._record import (
    C_PEAK_DAYS,
    F16,
    GLOBAL,
    LV_KW,
    NO_PEAK_RUN,
    NO_RUN,
    PEAK_MAX,
    PEAK_TODAY,
    ZERO_FRAC,
    MeterRecord,
)

__all__ = ["DAILY_KINDS", "ETYPE", "HIGH_KINDS", "LOW_KINDS", "judge", "open_kind", "policy",
           "supersede", "usual_daily_kwh"]

ETYPE = "abnormal_consumption"
HIGH_KINDS = ("spike", "sustained_rise")
LOW_KINDS = ("sustained_drop", "zero_consumption")
DAILY_KINDS = ("level_shift_up", "level_shift_down")
_NO_RUN = NO_RUN


def policy(meta: MeterMeta | None, s: DetectionSettings) -> ClassPolicy:
    cls = str(meta.customer_class) if meta else "residential"
    return s.policy.get(cls) or s.policy.get("residential") or ClassPolicy()


def usual_daily_kwh(rec: MeterRecord, s: DetectionSettings) -> float:
    return max(24.0 * F16[rec.h[LV_KW + GLOBAL]], 24.0 * s.min_kw)


def open_kind(rec: MeterRecord) -> str:
    return rec.kind if ETYPE in rec.act else ""


def supersede(rec: MeterRecord, t: float, meta: MeterMeta | None, new_kind: str,
              out: list[Event]) -> None:
    """Close an open consumption alarm of another kind before a new episode is raised."""
    old = open_kind(rec)
    if old and old != new_kind:
        out.append(resolve(rec, ETYPE, t, meta, f"{old.replace('_', ' ')} ended: "
                           f"{new_kind.replace('_', ' ')} follows", {"kind": old,
                                                                     "followed_by": new_kind}))


def judge(rec: MeterRecord, kw: float, t: float, slot: int, interval: float, b: Band,
          meta: MeterMeta | None, s: DetectionSettings, pol: ClassPolicy,
          out: list[Event]) -> bool:
    """One judged reading; returns True while the meter is in an abnormal-consumption episode
    (so that it is not learned as usual load)."""
    h = interval / 3600.0
    daily = usual_daily_kwh(rec, s)
    if kw > b.hi_kw:
        start, n, over, excess, usual = rec.hi if rec.hi[1] else (t, 0, 0.0, 0.0, 0.0)
        rec.hi = (start, n + 1, over + (kw - b.hi_kw) * h, excess + (kw - b.expected_kw) * h,
                  usual + b.expected_kw * h)
    else:
        rec.hi = _NO_RUN
    if kw < b.lo_kw and b.expected_kw > 2 * s.min_kw:
        start, n, deficit, kmax, usual = rec.lo if rec.lo[1] else (t, 0, 0.0, 0.0, 0.0)
        rec.lo = (start, n + 1, deficit + (b.expected_kw - kw) * h, max(kmax, kw),
                  usual + b.expected_kw * h)
    else:
        rec.lo = _NO_RUN
    # zero on a meter that (almost) never reads zero: a supply or meter fault, news whatever
    # the energy (many homes do read zero at times: for them it is not news)
    x = rec.x
    zero = kw <= s.min_kw and x[ZERO_FRAC] < 0.01

    # beyond the meter's own record: above ``peak_factor`` times the highest usual reading of
    # the last 28 days (on its first day: twice today's so far)
    days, history = rec.h[C_PEAK_DAYS], x[PEAK_MAX]
    half_life = s.feedback_half_life_days * 86_400
    # managers who called this meter's spikes false alarms widen its thresholds, for a while
    widen = 1.0 + s.feedback_strength * (feedback(rec, ETYPE, "spike", t, half_life)
                                         if rec.fb else 0.0)
    ref = widen * (history * pol.peak_factor if days >= 7
                   else 2.0 * max(history, x[PEAK_TODAY]))  # a young record: twice over it
    if ref > 0 and kw > ref and kw > b.hi_in:
        p_start, p_n, p_max = rec.peak_run if rec.peak_run[1] else (t, 0, 0.0)
        rec.peak_run = (p_start, p_n + 1, max(p_max, kw))
    elif rec.peak_run[1]:
        rec.peak_today = max(rec.peak_today, rec.peak_run[2])
        rec.peak_run = NO_PEAK_RUN

    kind = open_kind(rec)
    p_start, p_n, _ = rec.peak_run
    burst = days >= 7 and kw > pol.peak_burst * widen * history  # far beyond: news at once
    if (p_n and (p_n * interval >= pol.peak_min_minutes * 60 or burst)
            and kind not in HIGH_KINDS
            and kind != "level_shift_up"):
        supersede(rec, t, meta, "spike", out)
        start, n, over, excess, usual = rec.hi if rec.hi[1] else (p_start, p_n, 0.0, 0.0, 0.0)
        ev = _fire(rec, "spike", Severity.WARNING, b, kw, slot, p_start, t, p_n, interval,
                   excess, daily, meta, s, 1 + excess / max(usual, 1e-9))
        record = history if days >= 7 else max(history, rec.peak_today)
        out.append(ev.model_copy(update={
            "summary": (f"spike: {kw:.2f} kW for {p_n * interval / 60:.0f} min, beyond the "
                        f"meter's own record of {record:.2f} kW (last 28 days); "
                        f"{b.expected_kw:.2f} kW is usual for {describe(slot)}"),
            "evidence": {**ev.evidence, "record_kw": r3(record),
                         "record_factor": pol.peak_factor if days >= 7 else 2.0,
                         "record_days": days}}))
        return True
    start, n, over, excess, usual = rec.hi
    if (n and n * interval >= pol.high_min_minutes * 60
            and over >= max(pol.high_energy_share * daily, pol.high_min_kwh) * (
                1.0 + s.feedback_strength * feedback(rec, ETYPE, "sustained_rise", t, half_life))
            and kind not in HIGH_KINDS and kind != "level_shift_up"):
        new = "sustained_rise"
        supersede(rec, t, meta, new, out)
        sev = Severity.CRITICAL if excess >= daily else Severity.WARNING
        out.append(_fire(rec, new, sev, b, kw, slot, start, t, n, interval, excess, daily,
                         meta, s, 1 + excess / max(usual, 1e-9)))
        return True
    start, n, deficit, kmax, _ = rec.lo
    all_zero = n and kmax <= s.min_kw and zero
    if n and kind not in LOW_KINDS and kind != "level_shift_down" and (
            "possible_theft" not in rec.act) and (
            (all_zero and n * interval >= pol.zero_min_minutes * 60)
            or (n * interval >= pol.low_min_minutes * 60
                and deficit >= pol.low_energy_share * daily)):
        new = "zero_consumption" if all_zero else "sustained_drop"
        supersede(rec, t, meta, new, out)
        out.append(_fire(rec, new, Severity.WARNING, b, kw, slot, start, t, n, interval,
                         -deficit, daily, meta, s))
        return True

    if kind in HIGH_KINDS or kind in LOW_KINDS:
        # hysteresis: back well inside the band (its inner half), for ``clear_minutes``
        inside = kw <= b.hi_in if kind in HIGH_KINDS else (
            kw >= b.lo_in or b.expected_kw <= 2 * s.min_kw)
        rec.calm = rec.calm + 1 if inside else 0
        if rec.calm * interval >= s.clear_minutes * 60:
            rec.calm = 0
            rec.kind = ""
            out.append(resolve(rec, ETYPE, t, meta, "consumption is back inside its usual band",
                               {"kind": kind, "observed_kw": r3(kw),
                                "expected_kw": r3(b.expected_kw),
                                "band_kw": f"{b.lo_in:.2f}–{b.hi_in:.2f}"}))
            return False
        return True
    return bool(kind)


def _fire(rec: MeterRecord, kind: str, sev: Severity, b: Band, kw: float, slot: int,
          start: float, t: float, n: int, interval: float, energy: float, daily: float,
          meta: MeterMeta | None, s: DetectionSettings, ratio: float | None = None) -> Event:
    rec.kind = kind
    rec.calm = 0
    hours = n * interval / 3600
    slot_text = describe(slot)
    direction = "above" if energy > 0 else "below"
    summary = (f"{kind.replace('_', ' ')}: {kw:.2f} kW where {b.expected_kw:.2f} kW is usual "
               f"for {slot_text}; {abs(energy):.1f} kWh {direction} usual over {hours:.1f} h")
    return fire(rec, ETYPE, sev, abs(energy) / max(daily, 1e-9), start, t, meta, summary, {
        "kind": kind, "observed_kw": r3(kw), "expected_kw": r3(b.expected_kw),
        "band_kw": f"{b.lo_kw:.2f}–{b.hi_kw:.2f}",
        "energy_kwh": r3(energy, 2), "usual_daily_kwh": r3(daily, 2),
        "ratio": None if ratio is None else r3(ratio, 2),
        "energy_share": r3(abs(energy) / max(daily, 1e-9)),
        "lasted_min": r3((t - start) / 60 + interval / 60, 1), "readings": n,
        "baseline": f"{b.source} baseline for {slot_text} ({b.samples} samples)",
        "z": r3(b.z, 2),
    })


