"""Meter faults, tamper and silence: the meter's own health, judged from what it reports.

* tamper — register going backwards, reverse flow without export, cover or magnetic flags;
* register frozen — the energy register stops while power flows;
* stuck reading — identical non-zero values for too long;
* clock drift — timestamps off the interval grid, or the meter's own clock flag;
* silence — outage (a last gasp or no voltage) or communication loss, from the event clock.
"""

from __future__ import annotations

import math
from datetime import datetime

from gridwatch._schemas import Event, MeterMeta, MeterStatus, Reading, Severity
from gridwatch.models._alarms import cond, fire, iso, r3, resolve
from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import LAST_KW, LAST_KWH, MeterRecord

__all__ = ["backwards", "judge", "silence"]


_FAIL = MeterStatus.POWER_FAIL
_REVERSE = MeterStatus.REVERSE_FLOW
_COVER = MeterStatus.COVER_OPEN
_MAGNETIC = MeterStatus.MAGNETIC_TAMPER
_CLOCK = MeterStatus.CLOCK_INVALID


def judge(rec: MeterRecord, r: Reading, t: float, interval: float, meta: MeterMeta | None,
            s: DetectionSettings, ev: list[Event]) -> bool:
    """Meter faults and tamper; True when the reading itself is suspect (register going
    backwards, reverse flow without export), so that it is neither judged nor learned as
    consumption."""
    st = r.status
    # An outage announced by the meter itself (last gasp) is raised by ``on_timer``, so that
    # the dataflow can group the meters of a feeder first; here only its restoration.
    if "outage" in rec.act and _FAIL not in st and not rec.silent:
        ev.append(resolve(rec, "outage", t, meta, "power restored"))

    # Tamper: register going backwards, reverse flow without export, tamper flags.
    kinds = []
    kw, kwh = r.kw, r.kwh
    x = rec.x
    last_kwh = x[LAST_KWH]
    if kwh is not None and kwh < last_kwh - 1e-6:  # (False while last_kwh is NaN)
        kinds.append("register_decrease")
    has_export = bool(meta and meta.has_export)
    if st:
        if not has_export and (kw < -max(s.min_kw, 0.01) or _REVERSE in st):
            kinds.append("reverse_flow")
        if _COVER in st:
            kinds.append("cover_open")
        if _MAGNETIC in st:
            kinds.append("magnetic_tamper")
    elif not has_export and kw < -max(s.min_kw, 0.01):
        kinds.append("reverse_flow")
    if kinds or "tamper" in rec.cnt or "tamper" in rec.act:
        cond(rec, ev, "tamper", bool(kinds), t, meta, clear_after=s.clear_intervals,
             sev=Severity.CRITICAL, summary="possible tampering: " + ", ".join(kinds),
             ev=lambda: {"kind": ",".join(kinds), "kw": r.kw, "kwh": r.kwh,
                         "previous_kwh": None if math.isnan(last_kwh) else last_kwh,
                         "has_export": has_export})

    # Frozen energy register while power flows (more than the register's resolution).
    frozen = (kwh is not None and kwh == last_kwh
              and kw > s.min_kw and kw * interval / 3600 > 0.01)
    if frozen or "register_frozen" in rec.cnt or "register_frozen" in rec.act:
        cond(rec, ev, "register_frozen", frozen, t, meta, fire_after=s.frozen_readings,
             summary="the energy register stopped while power is flowing",
             ev=lambda: {"kwh": r.kwh, "kw": r.kw,
                         "expected_increment_kwh": r3(r.kw * interval / 3600)})

    # Stuck: identical non-zero values for too long (a true zero load is not stuck).
    stuck = rec.n > 0 and kw == x[LAST_KW] and kw != 0.0
    if stuck or "stuck_reading" in rec.cnt or "stuck_reading" in rec.act:
        cond(rec, ev, "stuck_reading", stuck, t, meta, fire_after=s.stuck_readings - 1,
             summary=f"the same value {r.kw} kW repeated", ev=lambda: {
                 "kw": r.kw, "identical_readings": rec.cnt.get("stuck_reading", 0) + 1})

    # Clock drift: timestamps off the interval grid, or the meter says its clock is bad.
    off = t % interval
    off = min(off, interval - off)
    drift = off > s.clock_drift_s or (bool(st) and _CLOCK in st)
    if drift or "clock_drift" in rec.cnt or "clock_drift" in rec.act:
        cond(rec, ev, "clock_drift", drift, t, meta, fire_after=2, clear_after=2,
             summary=f"timestamps are {off:.0f} s off the {interval:.0f} s grid",
             ev=lambda: {"offset_s": r3(off, 1), "interval_s": interval,
                         "clock_invalid_flag": _CLOCK in st})
    return "register_decrease" in kinds or "reverse_flow" in kinds


def silence(rec: MeterRecord, now: datetime | float, meta: MeterMeta | None,
            s: DetectionSettings, quiet: bool = False) -> list[Event]:
    """Silence check at event time ``now``: outage (last reading said power failed, or no
    voltage) or communication loss after ``silence_intervals`` expected intervals without a
    reading. ``quiet`` marks the meter silent without an event (a feeder outage covers it).
    """
    t = now.timestamp() if isinstance(now, datetime) else float(now)
    if rec.n == 0 or rec.silent:
        return []
    interval = rec.interval_s or s.interval_s
    gap = t - rec.last_ts
    if gap < s.silence_intervals * interval and not (rec.last_fail and gap > 0):
        return []
    rec.silent = True
    if quiet:
        rec.quiet = True
        return []
    if "outage" in rec.act:
        return []
    power_lost = rec.last_fail or (not math.isnan(rec.last_vmin) and rec.last_vmin < 1.0)
    etype = "outage" if power_lost else "comm_loss"
    missed = int(gap // interval)
    onset = rec.last_ts if rec.last_fail else rec.last_ts + interval
    why = ("the last reading reported a power failure" if rec.last_fail else
           "the last reading had no voltage" if power_lost else
           "the meter stopped reporting; its last reading looked normal")
    return [fire(rec,
        etype, Severity.CRITICAL if etype == "outage" else Severity.WARNING, float(missed),
        onset, t, meta,
        f"no reading for {missed} intervals ({gap / 60:.0f} min): {why}",
        {"kind": "last_gasp" if rec.last_fail else "silence",
         "last_reading_at": iso(rec.last_ts), "expected_interval_s": interval,
         "missed_intervals": missed, "last_kw": r3(rec.last_kw), "reason": why},
    )]


def backwards(rec: MeterRecord, t: float, meta: MeterMeta | None, ev: list[Event]) -> None:
    """A reading older than the last one: the meter's clock went backwards."""
    last = rec.last_ts
    cond(rec, ev, "clock_drift", True, t, meta, summary="timestamps went backwards",
         ev=lambda: {"kind": "backwards", "timestamp": iso(t), "previous": iso(last)})
