"""Per-meter detection: small detectors over one named state record.

``MeterState`` is what the dataflow keeps for each of 10^5–10^6 meters. It holds a
:class:`~gridwatch.models._record.MeterRecord` (a few small numeric arrays and scalars, well under
4 KB pickled) and passes each reading through one detector per concern:

==================  ==========================================================================
``_faults``         tamper, frozen register, stuck reading, clock drift; silence (outage,
                    communication loss) from the event clock
``_quality``        voltage sag/swell, phase imbalance, low power factor
``_consumption``    abnormal consumption within the day, by episode energy and duration
``_capacity``       over-capacity risk: demand forecast against the contracted capacity
``_theft``          possible theft within the day: the last hours scaled down, same shape
``_daily``          the daily profile; possible theft and level shifts judged on whole days
==================  ==========================================================================

Everything is pure: the clock comes in with the reading (event time) or as ``now``; nothing does
IO. Each reading is judged before it is learned, and readings inside an open consumption episode
are not learned as usual load (River's ``protect_anomaly_detector`` idea).

Most readings are *quiet*: in order, no status flag, nothing open or pending on the meter (but
a possible-theft alarm), no fault, inside the band, not closing a day (nor an hour whose theft
window would raise or resolve the alarm). For those every detector above only learns, and
``step`` takes :func:`~gridwatch.models._quiet.quiet_step` instead: the same updates in one
function, with the same floating-point operations in the same order, so state, events, scores
and profiles are bit-identical (``tests/models/test_quiet_path.py``); any other reading takes the
full path. ``FAST_PATH = False`` (module level) turns the quiet path off, for equivalence tests
and benchmarks only.
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime

from gridwatch._schemas import Event, MeterMeta, MeterStatus, Reading, Score
from gridwatch.models import _capacity, _consumption, _daily, _faults, _quality, _theft
from gridwatch.models._alarms import r3, resolve, verdict
from gridwatch.models._baseline import band, learn
from gridwatch.models._calendar import Calendar, calendar_for
from gridwatch.models._config import DetectionSettings
from gridwatch.models._daily import DailyProfile
from gridwatch.models._quiet import quiet_step
from gridwatch.models._record import (
    C_DAYS,
    C_LAST_FAIL,
    C_SILENT,
    GAP_RUN,
    GAP_S,
    GLOBAL,
    INFERRED_S,
    INTERVAL_S,
    LAST_KW,
    LAST_KWH,
    LAST_TS,
    LAST_VMIN,
    LV_N,
    PEAK_TODAY,
    STARTED,
    ZERO_FRAC,
    MeterRecord,
    N,
)
from gridwatch.models._result import StepResult

#: Every event type a detector may raise (stable names: alert routes match on them).
EVENT_TYPES = (
    "abnormal_consumption", "outage", "comm_loss", "register_frozen", "stuck_reading", "tamper",
    "clock_drift", "voltage_sag", "voltage_swell", "low_power_factor", "phase_imbalance",
    "over_capacity_risk", "feeder_outage", "possible_theft",
)

__all__ = ["EVENT_TYPES", "DailyProfile", "MeterState", "StepResult"]

#: Take the quiet path (:mod:`._quiet`) for the readings it covers; the full path when False.
#: Both give bit-identical states and results: the switch is for equivalence tests and
#: benchmarks only.
FAST_PATH = True

_FAIL = MeterStatus.POWER_FAIL
_SLOTS = tuple(f.name for f in fields(MeterRecord))


class MeterState(MeterRecord):
    """The whole detection state of one meter. ``step`` is pure; ``to_bytes`` is compact.

    Construct with the meter id; settings and the calendar are passed to each call (they are
    shared, not part of the state). The state *is* its :class:`MeterRecord` (no wrapper object
    per meter); ``rec`` names it for the detectors.
    """

    __slots__ = ()

    def __init__(self, meter_id: str, record: MeterRecord | None = None) -> None:
        MeterRecord.__init__(self, meter_id)
        if record is not None:
            for name in _SLOTS:
                setattr(self, name, getattr(record, name))

    @property
    def rec(self) -> MeterRecord:
        """The meter's record (the state itself)."""
        return self

    # ----------------------------------------------------------------- serialisation
    @classmethod
    def from_bytes(cls, data: bytes) -> MeterState:
        state = super().from_bytes(data)  # built as ``cls``
        assert isinstance(state, MeterState)
        return state

    def __getstate__(self) -> bytes:
        return self.to_bytes()

    def __setstate__(self, data: bytes) -> None:
        rec = MeterRecord.from_bytes(data)
        for name in _SLOTS:
            setattr(self, name, getattr(rec, name))

    # ----------------------------------------------------------------- read-only views
    @property
    def active(self) -> dict[str, float]:
        """Conditions currently firing: event type -> onset (epoch seconds)."""
        return dict(self.act)

    # ----------------------------------------------------------------- public API
    def update(self, reading: Reading, meta: MeterMeta | None = None,
               now: datetime | None = None, *, settings: DetectionSettings | None = None,
               calendar: Calendar | None = None) -> list[Event]:
        """Judge one reading, then learn from it (unless it is part of an abnormal episode).
        Returns the events raised or resolved. ``now`` defaults to the reading's event time."""
        s = settings or DetectionSettings()
        cal = calendar or Calendar(s.timezone, s.holiday_country)
        return self.step(reading, meta, now, s, cal).events

    def on_timer(self, now: datetime | float, meta: MeterMeta | None = None, *,
                 settings: DetectionSettings | None = None, quiet: bool = False) -> list[Event]:
        """Silence check at event time ``now``: outage (the last reading said power failed, or
        had no voltage) or communication loss after ``silence_intervals`` expected intervals
        without a reading. ``quiet`` marks the meter silent without an event (a feeder outage
        covers it)."""
        return _faults.silence(self, now, meta, settings or DetectionSettings(), quiet)

    def verdict(self, event_type: str, kind: str, outcome: str, at: datetime | float, *,
                settings: DetectionSettings | None = None,
                given: datetime | float | None = None) -> bool:
        """A manager's verdict on one of this meter's alarms (``confirmed``, ``false_alarm``,
        ``site_visit``), taken at event time ``at``: a false alarm widens the thresholds of that
        kind of alarm on this meter, fading over weeks; a confirmation clears that. ``given``
        (when the manager gave it) makes a replayed verdict a no-op. Returns whether it was
        taken."""
        s = settings or DetectionSettings()
        t = at.timestamp() if isinstance(at, datetime) else float(at)
        g = given.timestamp() if isinstance(given, datetime) else given
        return verdict(self, event_type, kind, outcome, t,
                       s.feedback_half_life_days * 86_400, g)

    # ----------------------------------------------------------------- the reading path
    def step(self, r: Reading, meta: MeterMeta | None, now: datetime | None,
             s: DetectionSettings, cal: Calendar, t: float | None = None,
             quiet: bool = True) -> StepResult:
        """One reading through every detector; returns events, a Score (anomalous or sampled)
        and a finished day's profile when the reading starts a new local day.

        A quiet reading (see :mod:`._quiet`) takes the quiet path: the same updates in one
        function, bit-identical; every other reading the full path below. ``t``: the
        reading's event time in epoch seconds (``r.ts.timestamp()``), when the caller has it.
        ``quiet=False``: the caller has found the reading is not quiet (a cell's lane left
        it), so the full path is taken without asking again (it gives the same either way)."""
        if FAST_PATH and quiet:
            quiet = quiet_step(self, r, meta, s, cal, t)
            if quiet is not None:
                return quiet
        rec = self
        x = rec.x
        if meta is not None and meta.timezone and meta.timezone != cal.tz.key:
            cal = calendar_for(meta.timezone, meta.holiday_country or cal.country)
        if t is None:
            t = r.ts.timestamp()
        out = StepResult()
        ev = out.events
        interval = float(self._interval(r, meta, s, t, x))
        last_ts = x[LAST_TS]
        if x[N] and t <= last_ts:
            if t < last_ts:
                _faults.backwards(rec, t, meta, ev)
            return out  # duplicate or out of order: never learned from
        fail = _FAIL in r.status

        h = rec.h  # (the flags and counts by cell: this runs on every reading)
        if h[C_SILENT]:  # back from silence
            gap_min = r3((t - last_ts) / 60, 1)
            for etype in ("outage", "comm_loss"):
                if etype in rec.act and not (etype == "outage" and fail):
                    ev.append(resolve(rec, etype, t, meta, "the meter reports again",
                                      {"silent_min": gap_min}))
            rec.silent = rec.quiet = False

        suspect = _faults.judge(rec, r, t, interval, meta, s, ev)
        _quality.judge(rec, r, t, meta, s, ev)
        kw = r.kw
        info = cal.info(t)
        slot = info[1]
        pol = _consumption.policy(meta, s)
        b = band(rec, slot, kw, s, pol.young_dev)
        exporting = meta is not None and meta.has_export and kw < 0
        started = x[STARTED]
        if not started and kw > s.min_kw:
            started = x[STARTED] = t  # a meter that has only ever read zero is not in service
        warm = (bool(started) and t - started >= s.warmup_h * 3600
                and h[LV_N + GLOBAL] >= 8)
        abnormal = False
        judged = not (fail or suspect or exporting)
        if judged and warm:
            # a last gasp or a tampered reading says nothing about the customer's load
            abnormal = _consumption.judge(rec, kw, t, slot, interval, b, meta, s, pol, ev)
        if pol.theft_window and judged:
            _theft.judge(rec, max(kw, 0.0), b.mean_kw, t, meta, s, ev,
                         warm and h[C_DAYS] >= s.daily_min_days)
        if meta is not None and meta.contracted_kva:
            _capacity.judge(rec, r, t, interval, meta, s, cal, ev, b.mean_kw, warm)
        out.profile = _daily.accumulate(rec, kw, t, interval, meta, s, cal, ev, info)
        if not rec.peak_run[1] and kw > x[PEAK_TODAY]:
            x[PEAK_TODAY] = kw

        persisted = abnormal and t - rec.act.get(_consumption.ETYPE, t) > s.relearn_after_s
        if started and not (fail or suspect) and (not abnormal or persisted):
            learn(rec, slot, kw, (b.lo_kw, b.hi_kw) if rec.hi[1] or rec.lo[1] else None)
            n = int(x[N])
            zf = x[ZERO_FRAC]
            x[ZERO_FRAC] = zf + max(1.0 / n if n else 1.0, 0.002) * ((kw <= s.min_kw) - zf)
        n_read = x[N] = int(x[N]) + 1
        if abnormal or (s.score_sample_every and n_read % s.score_sample_every == 0):
            out.score = Score(meter_id=rec.meter_id, ts=r.ts, kw=kw,
                              expected_kw=r3(b.expected_kw, 4), score=r3(abs(b.z)),
                              anomalous=abnormal)
        x[LAST_TS] = t
        x[LAST_KW] = kw
        if r.kwh is not None:
            x[LAST_KWH] = r.kwh
        volts = r.voltage
        x[LAST_VMIN] = (volts[0] if len(volts) == 1 else min(volts)) if volts else math.nan
        h[C_LAST_FAIL] = fail
        return out

    def _interval(self, r: Reading, meta: MeterMeta | None, s: DetectionSettings,
                  t: float, x: memoryview[float]) -> int:
        """The interval stated by the registry or the reading, else the one inferred from the
        meter's own gaps (the same gap three times in a row; a longer one only after a day of
        it), else the configured default. ``x``: the record's scalars (``self.x``)."""
        last_ts = x[LAST_TS]
        if s.infer_interval and x[N] and t > last_ts:
            gap = round(t - last_ts)
            if gap == x[GAP_S]:
                run = x[GAP_RUN] + 1
            else:
                x[GAP_S] = gap
                run = 1.0
            x[GAP_RUN] = run
            inferred = x[INFERRED_S]
            if gap >= 60 and (
                    (run >= 3 and (not inferred or gap < inferred))
                    or (run >= max(3, 86_400 // max(gap, 1)) and gap > inferred)):
                x[INFERRED_S] = gap
        stated = (meta.interval_s if meta is not None and meta.interval_s else None) \
            or r.interval_s
        interval = int(stated or x[INFERRED_S] or s.interval_s)
        x[INTERVAL_S] = interval
        return interval
