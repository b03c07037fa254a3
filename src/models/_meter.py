"""Per-meter detection state: a few small arrays and scalars, updated one reading at a time.

``MeterState`` is what the dataflow keeps for each of 10^5–10^6 meters, so it holds no River
forest and no history window: a time-of-week baseline (168 hourly slots of EW mean and EW
absolute deviation), CUSUM sums, the last values, and load-profile accumulators. Everything is
pure: the clock comes in with the reading (event time) or as ``now``; nothing does IO.

Scoring is Gaussian on residuals against the meter's own time-of-week slot, with a dispersion that
adapts per slot (so a noisy evening is judged against a noisy evening), a warm-up before anything
is judged, and no learning from flagged points (River's ``protect_anomaly_detector`` idea).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gridwatch._schemas import (
    Event,
    MeterMeta,
    MeterStatus,
    Reading,
    Score,
    Severity,
)
from gridwatch.models._calendar import SLOTS, Calendar
from gridwatch.models._config import DetectionSettings

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_ALPHA_SLOT = 0.1  # per-slot learning rate once a slot has 10 samples
_ALPHA_GLOBAL = 0.01
_ALPHA_CURVE = 0.125  # daily curves: about eight days of memory
_FLOOR_KW = 0.01
_SHRINK = 10.0  # pseudo-samples of the meter-wide dispersion in each slot's
_STATE_VERSION = 3
_BASE = SLOTS + 48
_BLEND = 8.0  # samples at which a time-of-week slot and its day-type slot weigh the same

#: Every event type a detector may raise (stable names: alert routes match on them).
EVENT_TYPES = (
    "abnormal_consumption", "outage", "comm_loss", "register_frozen", "stuck_reading", "tamper",
    "clock_drift", "voltage_sag", "voltage_swell", "low_power_factor", "phase_imbalance",
    "over_capacity_risk", "feeder_outage", "possible_theft",
)


def _day_slot(slot: int) -> int:
    """The day-type slot of a time-of-week slot: weekday hours 0..23, day-off hours 24..47."""
    return SLOTS + (24 if slot >= 120 else 0) + slot % 24


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


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


@dataclass(slots=True)
class StepResult:
    """What one reading produced: events, an optional Score point, an optional finished day."""

    events: list[Event] = field(default_factory=list)
    score: Score | None = None
    profile: DailyProfile | None = None


class MeterState:
    """The whole detection state of one meter. ``update`` is pure; ``to_bytes`` is compact.

    Construct with the meter id; settings and the calendar are passed to each call (they are
    shared, not part of the state). Pickled size stays under 4 KB (tests measure it).
    """

    __slots__ = (
        "_act", "_clr", "_cnt", "_since", "base_dev", "base_mu", "base_n", "cus_neg",
        "cus_neg_t", "cus_pos", "cus_pos_t", "day_cnt", "day_max", "day_min", "day_no",
        "day_sum", "days", "glob_dev", "hist_kwh", "interval_s", "last_fail", "last_kw",
        "last_kwh", "last_ts", "last_vmin", "meter_id", "month_kwh", "month_no",
        "n", "prev_month_kwh", "quiet", "resid_ew", "silent", "th", "trend_ew", "wd_curve",
        "wd_days", "we_curve", "we_days",
    )

    def __init__(self, meter_id: str) -> None:
        self.meter_id = meter_id
        self.interval_s = 0
        self.n = 0
        self.last_ts = 0.0
        self.last_kw = math.nan
        self.last_kwh = math.nan
        self.last_vmin = math.nan
        self.last_fail = False
        self.silent = False
        self.quiet = False
        # 168 time-of-week slots, then 48 day-type slots (weekday hours, day-off hours) that
        # the time-of-week slots are blended with while they have few samples
        self.base_mu = np.zeros(_BASE, np.float32)
        self.base_dev = np.zeros(_BASE, np.float32)
        self.base_n = np.zeros(_BASE, np.uint16)
        self.glob_dev = 0.0
        self.cus_pos = self.cus_neg = 0.0
        self.cus_pos_t = self.cus_neg_t = 0.0
        self.resid_ew = 0.0
        self.trend_ew = 0.0
        self.wd_curve = np.zeros(24, np.float32)
        self.we_curve = np.zeros(24, np.float32)
        self.wd_days = self.we_days = 0
        self.day_no = 0
        self.day_sum = np.zeros(24, np.float32)
        self.day_cnt = np.zeros(24, np.uint8)
        self.day_max = -math.inf
        self.day_min = math.inf
        self.month_no = 0
        self.month_kwh = 0.0
        self.prev_month_kwh = math.nan
        self.days = 0
        self.hist_kwh = 0.0
        #: possible theft: observed and expected kW summed over the current low run, its
        #: start, and an EW mean of observed/expected
        self.th = (0.0, 0.0, 0.0, 1.0)
        #: active conditions: type -> onset (epoch s); counters of consecutive bad/good readings
        self._act: dict[str, float] = {}
        self._cnt: dict[str, int] = {}
        self._clr: dict[str, int] = {}
        self._since: dict[str, float] = {}

    # ----------------------------------------------------------------- serialisation
    def __getstate__(self) -> tuple[Any, ...]:
        return (
            _STATE_VERSION, self.meter_id, self.interval_s, self.n, self.last_ts, self.last_kw,
            self.last_kwh, self.last_vmin, self.last_fail, self.silent, self.quiet,
            self.base_mu.tobytes(), self.base_dev.tobytes(), self.base_n.tobytes(),
            self.glob_dev, self.cus_pos, self.cus_neg, self.cus_pos_t, self.cus_neg_t,
            self.resid_ew, self.trend_ew, self.wd_curve.tobytes(), self.we_curve.tobytes(),
            self.wd_days, self.we_days, self.day_no, self.day_sum.tobytes(),
            self.day_cnt.tobytes(), self.day_max, self.day_min, self.month_no, self.month_kwh,
            self.prev_month_kwh, self.days, self.hist_kwh, self.th,
            self._act, self._cnt, self._clr, self._since,
        )

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        if s[0] != _STATE_VERSION:
            raise ValueError(f"meter state version {s[0]} is not {_STATE_VERSION}")
        (_, self.meter_id, self.interval_s, self.n, self.last_ts, self.last_kw, self.last_kwh,
         self.last_vmin, self.last_fail, self.silent, self.quiet, mu, dev, bn, self.glob_dev,
         self.cus_pos, self.cus_neg, self.cus_pos_t, self.cus_neg_t, self.resid_ew,
         self.trend_ew, wdc, wec, self.wd_days, self.we_days, self.day_no, dsum, dcnt,
         self.day_max, self.day_min, self.month_no, self.month_kwh, self.prev_month_kwh,
         self.days, self.hist_kwh, self.th, self._act, self._cnt, self._clr,
         self._since) = s
        self.base_mu = np.frombuffer(mu, np.float32).copy()
        self.base_dev = np.frombuffer(dev, np.float32).copy()
        self.base_n = np.frombuffer(bn, np.uint16).copy()
        self.wd_curve = np.frombuffer(wdc, np.float32).copy()
        self.we_curve = np.frombuffer(wec, np.float32).copy()
        self.day_sum = np.frombuffer(dsum, np.float32).copy()
        self.day_cnt = np.frombuffer(dcnt, np.uint8).copy()

    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @classmethod
    def from_bytes(cls, data: bytes) -> MeterState:
        obj = pickle.loads(data)
        if not isinstance(obj, cls):
            raise TypeError(f"not a MeterState: {type(obj).__name__}")
        return obj

    # ----------------------------------------------------------------- event helpers
    @property
    def active(self) -> dict[str, float]:
        """Conditions currently firing: event type -> onset (epoch seconds)."""
        return dict(self._act)

    def _event(self, etype: str, sev: Severity, score: float, onset: float, t: float,
               meta: MeterMeta | None, summary: str, ev: dict[str, Any],
               state: str = "firing") -> Event:
        return Event(
            meter_id=self.meter_id, type=etype, severity=sev, score=_r(score),
            onset=_dt(onset), raised_at=_dt(t), state=state, summary=summary,
            evidence={k: v for k, v in ev.items() if v is not None},
            customer_id=meta.customer_id if meta else None,
            grid_cell=meta.grid_cell if meta else None,
        )

    def _fire(self, etype: str, sev: Severity, score: float, onset: float, t: float,
              meta: MeterMeta | None, summary: str, ev: dict[str, Any]) -> Event:
        self._act[etype] = onset
        return self._event(etype, sev, score, onset, t, meta, summary, ev)

    def _resolve(self, etype: str, t: float, meta: MeterMeta | None, summary: str,
                 ev: dict[str, Any] | None = None) -> Event:
        onset = self._act.pop(etype)
        ev = dict(ev or {})
        ev["lasted_min"] = _r((t - onset) / 60, 1)
        return self._event(etype, Severity.INFO, 0.0, onset, t, meta, summary, ev, "resolved")

    def _cond(self, out: list[Event], etype: str, bad: bool, t: float, meta: MeterMeta | None,
              *, fire_after: int = 1, clear_after: int = 1, sev: Severity = Severity.WARNING,
              score: float = 1.0, summary: str = "", ev: Any = None) -> None:
        """Fire ``etype`` after ``fire_after`` bad readings in a row, resolve after
        ``clear_after`` good ones. ``ev`` is a callable building the evidence (only when bad)."""
        if not bad and etype not in self._cnt and etype not in self._act:
            return  # the common case: nothing wrong, nothing pending
        if bad:
            self._clr.pop(etype, None)
            n = self._cnt.get(etype, 0) + 1
            self._cnt[etype] = n
            if n == 1:
                self._since[etype] = t
            if etype not in self._act and n >= fire_after:
                evidence = ev() if callable(ev) else dict(ev or {})
                evidence.setdefault("readings", n)
                out.append(self._fire(etype, sev, score, self._since[etype], t, meta, summary,
                                      evidence))
            return
        self._cnt.pop(etype, None)
        self._since.pop(etype, None)
        if etype in self._act:
            c = self._clr.get(etype, 0) + 1
            if c >= clear_after:
                self._clr.pop(etype, None)
                out.append(self._resolve(etype, t, meta, f"{etype.replace('_', ' ')} cleared"))
            else:
                self._clr[etype] = c

    # ----------------------------------------------------------------- public API
    def update(self, reading: Reading, meta: MeterMeta | None = None,
               now: datetime | None = None, *, settings: DetectionSettings | None = None,
               calendar: Calendar | None = None) -> list[Event]:
        """Judge one reading, then learn from it (unless flagged). Returns the events raised or
        resolved. ``now`` defaults to the reading's event time."""
        s = settings or DetectionSettings()
        cal = calendar or Calendar(s.timezone, s.holiday_country)
        return self.step(reading, meta, now, s, cal).events

    def on_timer(self, now: datetime | float, meta: MeterMeta | None = None, *,
                 settings: DetectionSettings | None = None, quiet: bool = False) -> list[Event]:
        """Silence check at event time ``now``: outage (last reading said power failed, or no
        voltage) or communication loss after ``silence_intervals`` expected intervals without a
        reading. ``quiet`` marks the meter silent without an event (a feeder outage covers it).
        """
        s = settings or DetectionSettings()
        t = now.timestamp() if isinstance(now, datetime) else float(now)
        if self.n == 0 or self.silent:
            return []
        interval = self.interval_s or s.interval_s
        gap = t - self.last_ts
        if gap < s.silence_intervals * interval and not (self.last_fail and gap > 0):
            return []
        self.silent = True
        if quiet:
            self.quiet = True
            return []
        if "outage" in self._act:
            return []
        power_lost = self.last_fail or (not math.isnan(self.last_vmin) and self.last_vmin < 1.0)
        etype = "outage" if power_lost else "comm_loss"
        missed = int(gap // interval)
        onset = self.last_ts if self.last_fail else self.last_ts + interval
        why = ("the last reading reported a power failure" if self.last_fail else
               "the last reading had no voltage" if power_lost else
               "the meter stopped reporting; its last reading looked normal")
        return [self._fire(
            etype, Severity.CRITICAL if etype == "outage" else Severity.WARNING, float(missed),
            onset, t, meta,
            f"no reading for {missed} intervals ({gap / 60:.0f} min): {why}",
            {"kind": "last_gasp" if self.last_fail else "silence",
             "last_reading_at": _iso(self.last_ts), "expected_interval_s": interval,
             "missed_intervals": missed, "last_kw": _r(self.last_kw), "reason": why},
        )]

    # ----------------------------------------------------------------- the reading path
    def step(self, r: Reading, meta: MeterMeta | None, now: datetime | None,
             s: DetectionSettings, cal: Calendar) -> StepResult:
        """One reading through every detector; returns events, a Score (anomalous or sampled)
        and a finished day's profile when the reading starts a new local day."""
        t = r.ts.timestamp()
        out = StepResult()
        ev = out.events
        interval = (meta.interval_s if meta and meta.interval_s else None) or r.interval_s \
            or self.interval_s or s.interval_s
        self.interval_s = int(interval)
        if self.n and t <= self.last_ts:
            if t < self.last_ts:
                self._cond(ev, "clock_drift", True, t, meta, summary=(
                    "timestamps went backwards"), ev=lambda: {
                    "kind": "backwards", "timestamp": _iso(t), "previous": _iso(self.last_ts)})
            return out  # duplicate or out of order: never learned from

        # --- back from silence
        if self.silent:
            gap_min = _r((t - self.last_ts) / 60, 1)
            for etype in ("outage", "comm_loss"):
                if etype in self._act and not (etype == "outage" and MeterStatus.POWER_FAIL
                                               in r.status):
                    ev.append(self._resolve(etype, t, meta, "the meter reports again",
                                            {"silent_min": gap_min}))
            self.silent = self.quiet = False

        suspect = self._faults(r, t, interval, meta, s, ev)
        self._power_quality(r, t, meta, s, ev)
        if MeterStatus.POWER_FAIL in r.status or suspect:
            # a last gasp or a tampered reading says nothing about the customer's load
            z, expected, flagged, warm = 0.0, self.last_kw, False, False
        else:
            z, expected, flagged, warm = self._consumption(r, t, meta, s, cal, ev)
            if warm:
                self._theft(r.kw, expected, t, interval, meta, s, ev)
            elif self.th[1]:
                self.th = (0.0, 0.0, 0.0, self.th[3])  # a run is only judged while warm
        if meta is not None and meta.contracted_kva:
            self._capacity(r, t, interval, meta, s, cal, ev, expected, warm)
        out.profile = self._profile(r, t, interval, meta, s, cal, ev)

        self.n += 1
        if (flagged or "abnormal_consumption" in self._act or (
                s.score_sample_every and self.n % s.score_sample_every == 0)):
            out.score = Score(meter_id=self.meter_id, ts=r.ts, kw=r.kw,
                              expected_kw=_r(expected, 4), score=_r(abs(z)),
                              anomalous=flagged or "abnormal_consumption" in self._act)
        self.last_ts = t
        self.last_kw = r.kw
        if r.kwh is not None:
            self.last_kwh = r.kwh
        self.last_vmin = min(r.voltage) if r.voltage else math.nan
        self.last_fail = MeterStatus.POWER_FAIL in r.status
        return out

    def _faults(self, r: Reading, t: float, interval: float, meta: MeterMeta | None,
                s: DetectionSettings, ev: list[Event]) -> bool:
        """Meter faults and tamper; True when the reading itself is suspect (register going
        backwards, reverse flow without export), so that it is neither judged nor learned as
        consumption."""
        st = r.status
        # An outage announced by the meter itself (last gasp) is raised by ``on_timer``, so that
        # the dataflow can group the meters of a feeder first; here only its restoration.
        if MeterStatus.POWER_FAIL not in st and "outage" in self._act and not self.silent:
            ev.append(self._resolve("outage", t, meta, "power restored"))

        # Tamper: register going backwards, reverse flow without export, tamper flags.
        kinds = []
        if not math.isnan(self.last_kwh) and r.kwh is not None and r.kwh < self.last_kwh - 1e-6:
            kinds.append("register_decrease")
        has_export = bool(meta and meta.has_export)
        if not has_export and (r.kw < -max(s.min_kw, 0.01) or MeterStatus.REVERSE_FLOW in st):
            kinds.append("reverse_flow")
        if MeterStatus.COVER_OPEN in st:
            kinds.append("cover_open")
        if MeterStatus.MAGNETIC_TAMPER in st:
            kinds.append("magnetic_tamper")
        last_kwh = self.last_kwh
        self._cond(ev, "tamper", bool(kinds), t, meta, clear_after=s.resolve_readings,
                   sev=Severity.CRITICAL, summary="possible tampering: " + ", ".join(kinds),
                   ev=lambda: {"kind": ",".join(kinds), "kw": r.kw, "kwh": r.kwh,
                               "previous_kwh": None if math.isnan(last_kwh) else last_kwh,
                               "has_export": has_export})

        # Frozen energy register while power flows (more than the register's resolution).
        frozen = (r.kwh is not None and not math.isnan(last_kwh) and r.kwh == last_kwh
                  and r.kw > s.min_kw and r.kw * interval / 3600 > 0.01)
        self._cond(ev, "register_frozen", frozen, t, meta, fire_after=s.frozen_readings,
                   summary="the energy register stopped while power is flowing",
                   ev=lambda: {"kwh": r.kwh, "kw": r.kw,
                               "expected_increment_kwh": _r(r.kw * interval / 3600)})

        # Stuck: identical non-zero values for too long (a true zero load is not stuck).
        stuck = self.n > 0 and r.kw == self.last_kw and r.kw != 0.0
        self._cond(ev, "stuck_reading", stuck, t, meta, fire_after=s.stuck_readings - 1,
                   summary=f"the same value {r.kw} kW repeated", ev=lambda: {
                       "kw": r.kw, "identical_readings": self._cnt.get("stuck_reading", 0) + 1})

        # Clock drift: timestamps off the interval grid, or the meter says its clock is bad.
        off = t % interval
        off = min(off, interval - off)
        drift = off > s.clock_drift_s or MeterStatus.CLOCK_INVALID in st
        self._cond(ev, "clock_drift", drift, t, meta, fire_after=2, clear_after=2,
                   summary=f"timestamps are {off:.0f} s off the {interval:.0f} s grid",
                   ev=lambda: {"offset_s": _r(off, 1), "interval_s": interval,
                               "clock_invalid_flag": MeterStatus.CLOCK_INVALID in st})
        return "register_decrease" in kinds or "reverse_flow" in kinds

    def _power_quality(self, r: Reading, t: float, meta: MeterMeta | None,
                       s: DetectionSettings, ev: list[Event]) -> None:
        if r.voltage:
            phases = meta.phases if meta else len(r.voltage)
            three = phases == 3 or len(r.voltage) == 3
            nominal = (meta.nominal_voltage_v if meta and meta.nominal_voltage_v else
                       s.three_phase_nominal_v if three else s.nominal_voltage_v)
            lo_pct = s.three_phase_pct if three else s.voltage_low_pct
            hi_pct = s.three_phase_pct if three else s.voltage_high_pct
            lo, hi = nominal * (1 - lo_pct / 100), nominal * (1 + hi_pct / 100)
            live = [v for v in r.voltage if v > 1.0]
            vmin = min(live) if live else 0.0
            vmax = max(r.voltage)
            self._cond(ev, "voltage_sag", bool(live) and vmin < lo, t, meta,
                       summary=f"voltage {vmin:.1f} V below the {lo:.1f} V limit",
                       score=(lo - vmin) / nominal * 100, ev=lambda: {
                           "observed_v": _r(vmin, 1), "limit_v": _r(lo, 1),
                           "nominal_v": nominal, "limit_pct": -lo_pct})
            self._cond(ev, "voltage_swell", vmax > hi, t, meta,
                       summary=f"voltage {vmax:.1f} V above the {hi:.1f} V limit",
                       score=(vmax - hi) / nominal * 100, ev=lambda: {
                           "observed_v": _r(vmax, 1), "limit_v": _r(hi, 1),
                           "nominal_v": nominal, "limit_pct": hi_pct})
            unb = None
            kind = ""
            if len(live) == 3:
                mean_v = sum(live) / 3
                v_unb = max(abs(v - mean_v) for v in live) / mean_v * 100
                if v_unb > s.voltage_unbalance_pct:
                    unb, kind = v_unb, "voltage"
            if unb is None and r.current and len(r.current) == 3 and r.kw > s.min_kw:
                mean_i = sum(r.current) / 3
                if mean_i > 1.0:
                    i_unb = max(abs(i - mean_i) for i in r.current) / mean_i * 100
                    if i_unb > s.current_unbalance_pct:
                        unb, kind = i_unb, "current"
            self._cond(ev, "phase_imbalance", unb is not None, t, meta, fire_after=2,
                       clear_after=2, summary=f"{kind} unbalance {unb or 0:.1f}% between phases",
                       ev=lambda: {"kind": kind, "unbalance_pct": _r(unb or 0, 2),
                                   "voltage": str(r.voltage), "current": str(r.current)})
        if r.pf is not None:
            low = abs(r.pf) < s.min_power_factor and r.kw > s.min_kw
            if low and abs(r.pf) >= s.severe_power_factor:
                # Power factor falls at light load by nature: a mildly low one is judged at a
                # real load only (30% of the contracted capacity, else the meter's own average
                # load); a severely low one at any load.
                kva = meta.contracted_kva if meta and meta.contracted_kva else None
                learned = self.base_n[:SLOTS] > 0
                typical = float(self.base_mu[:SLOTS][learned].mean()) if learned.any() else 0.0
                low = r.kw >= (0.3 * kva if kva else typical)
            # hysteresis: while raised, a reading just above the limit (or at light load)
            # neither clears it nor counts against it
            hold = (not low and "low_power_factor" in self._act
                    and (abs(r.pf) < s.min_power_factor + 0.02 or r.kw <= s.min_kw))
            if not hold:
                pf = abs(r.pf)
                self._cond(ev, "low_power_factor", low, t, meta, fire_after=s.pf_readings,
                           clear_after=s.pf_readings,
                           summary=f"power factor {pf:.2f} below {s.min_power_factor}",
                           score=s.min_power_factor - pf, ev=lambda: {
                               "observed_pf": r.pf, "limit_pf": s.min_power_factor,
                               "kw": r.kw})

    def _consumption(self, r: Reading, t: float, meta: MeterMeta | None, s: DetectionSettings,
                     cal: Calendar, ev: list[Event]) -> tuple[float, float, bool, bool]:
        slot = cal.slot(t)
        dslot = _day_slot(slot)
        kw = r.kw
        n_s = int(self.base_n[slot])
        n_d = int(self.base_n[dslot])
        mu_s = float(self.base_mu[slot])
        mu_d = float(self.base_mu[dslot])
        mu, dev = self._blend(slot, dslot)
        warm = self.n >= s.warmup_readings and n_s >= 2 and n_d >= 2 * _BLEND
        if meta is not None and meta.has_export and (mu < 0 or kw < 0):
            # While a prosumer exports, its net load follows the weather, not its consumption:
            # learn it, but do not judge it.
            warm = False
        z = 0.0
        if warm:
            # Shrink the dispersion towards the meter-wide one while the slots have few
            # samples: a lucky quiet slot must not make ordinary noise look abnormal.
            n_eff = n_s + n_d
            dev = (n_eff * dev + _SHRINK * self.glob_dev) / (n_eff + _SHRINK)
            scale = max(1.25 * dev, 0.5 * self.glob_dev, 0.05 * abs(mu), _FLOOR_KW)
            z = (kw - mu) / scale
            zc = max(-10.0, min(10.0, z))
            if self.cus_pos == 0.0:
                self.cus_pos_t = t
            if self.cus_neg == 0.0:
                self.cus_neg_t = t
            self.cus_pos = min(2 * s.cusum_h, max(0.0, self.cus_pos + zc - s.cusum_k))
            self.cus_neg = min(2 * s.cusum_h, max(0.0, self.cus_neg - zc - s.cusum_k))
        flagged = warm and abs(z) >= s.z_threshold
        active = "abnormal_consumption" in self._act
        if warm and not active:
            kind = onset = None
            lo = self._run("_lo", mu > 2 * s.min_kw and kw < s.drop_ratio * mu, t)
            hi = self._run("_hi", mu > s.min_kw and kw > s.rise_ratio * mu and z > 3, t)
            if flagged:
                kind, onset = ("spike" if z > 0 else "drop"), t
            elif lo >= s.ratio_readings:
                kind, onset = "sustained_drop", self._since["_lo"]
            elif hi >= s.ratio_readings:
                kind, onset = "sustained_rise", self._since["_hi"]
            elif self.cus_pos > s.cusum_h:
                kind, onset = "level_shift_up", self.cus_pos_t
            elif self.cus_neg > s.cusum_h:
                kind, onset = "level_shift_down", self.cus_neg_t
            if kind is not None and onset is not None:
                wd, hr = divmod(slot, 24)
                sev = Severity.CRITICAL if abs(z) >= 2 * s.z_threshold else Severity.WARNING
                ev.append(self._fire(
                    "abnormal_consumption", sev, abs(z), onset, t, meta,
                    f"{kind.replace('_', ' ')}: {kw:.2f} kW where {mu:.2f} kW is usual "
                    f"for {_DAYS[wd]} {hr:02d}:00",
                    {"kind": kind, "observed_kw": _r(kw), "expected_kw": _r(mu),
                     "baseline": f"time-of-week {_DAYS[wd]} {hr:02d}:00 ({n_s} samples), "
                                 f"blended with {'day-off' if wd >= 5 else 'weekday'} "
                                 f"{hr:02d}:00 ({n_d} samples)",
                     "z": _r(z, 2), "threshold_z": s.z_threshold,
                     "lasted_min": _r((t - onset) / 60, 1)}))
                active = True
        elif active:
            calm = abs(z) < s.z_threshold / 2 and max(self.cus_pos, self.cus_neg) < s.cusum_h / 2
            if calm or not warm:
                c = self._clr.get("abnormal_consumption", 0) + 1
                if c >= s.resolve_readings:
                    self._clr.pop("abnormal_consumption", None)
                    ev.append(self._resolve("abnormal_consumption", t, meta,
                                            "consumption is back to its usual level",
                                            {"observed_kw": _r(kw), "expected_kw": _r(mu)}))
                    active = False
                else:
                    self._clr["abnormal_consumption"] = c
            else:
                self._clr.pop("abnormal_consumption", None)
        # Learn, but not from flagged points, unless a level has persisted long enough to be
        # accepted as the new normal.
        persisted = active and t - self._act.get("abnormal_consumption", t) > s.relearn_after_s
        if (not flagged and not active) or persisted or not warm:
            for sl, n_old, m_old in ((slot, n_s, mu_s), (dslot, n_d, mu_d)):
                n_new = min(n_old + 1, 65_535)
                a = max(1.0 / n_new, _ALPHA_SLOT)
                resid = kw - m_old
                self.base_n[sl] = n_new
                self.base_mu[sl] = m_old + a * resid
                if n_old:
                    self.base_dev[sl] += a * (abs(resid) - float(self.base_dev[sl]))
            if n_s or n_d:
                ag = max(1.0 / (self.n + 1), _ALPHA_GLOBAL)
                self.glob_dev += ag * (abs(kw - mu) - self.glob_dev)
        expected = mu if (n_s or n_d) else kw
        return z, expected, flagged, warm

    def _theft(self, kw: float, mu: float, t: float, interval: float, meta: MeterMeta | None,
               s: DetectionSettings, ev: list[Event]) -> None:
        """Possible theft: energy over a run of at least ``theft_hours`` stays below
        ``theft_ratio`` of what the meter's own baseline expects. The dataflow asks the meter's
        segment before it is raised (a drop the whole segment shares is not theft)."""
        if mu <= 2 * s.min_kw:
            return
        obs, exp, since, ew = self.th
        ew = 0.9 * ew + 0.1 * min(kw / mu, 3.0)
        if "possible_theft" in self._act:
            if ew > (1 + s.theft_ratio) / 2:
                ev.append(self._resolve("possible_theft", t, meta,
                                        "consumption is back near its usual level",
                                        {"recent_ratio": _r(ew)}))
            self.th = (0.0, 0.0, 0.0, ew)
            return
        if exp == 0.0:
            since = t
        obs += kw
        exp += mu
        if obs > s.theft_ratio * exp:
            obs = exp = 0.0  # not low: the next run starts with the next reading
        elif (t - since >= s.theft_hours * 3600 and self.days >= s.theft_min_days
              and ew < s.theft_ratio):  # and still low now, not only on average
            ratio = obs / exp
            hours = (t - since) / 3600 + interval / 3600
            ev.append(self._fire(
                "possible_theft", Severity.WARNING, 1 - ratio, since, t, meta,
                f"{hours:.0f} h at {ratio:.0%} of the energy the meter's own history expects",
                {"observed_kwh": _r(obs * interval / 3600, 2),
                 "expected_kwh": _r(exp * interval / 3600, 2), "ratio": _r(ratio),
                 "hours_low": _r(hours, 1), "threshold_ratio": s.theft_ratio,
                 "baseline": "time-of-week baseline of this meter"}))
            obs = exp = 0.0
        self.th = (obs, exp, since, ew)

    def _run(self, key: str, cond: bool, t: float) -> int:
        """Length of the current run of readings meeting ``cond`` (kept in the counters)."""
        if not cond:
            if key in self._cnt:
                del self._cnt[key]
                self._since.pop(key, None)
            return 0
        n = self._cnt.get(key, 0) + 1
        self._cnt[key] = n
        if n == 1:
            self._since[key] = t
        return n

    def _capacity(self, r: Reading, t: float, interval: float, meta: MeterMeta,
                  s: DetectionSettings, cal: Calendar, ev: list[Event], expected: float,
                  warm: bool) -> None:
        kva = float(meta.contracted_kva or 0.0)
        pf = max(abs(r.pf), 0.5) if r.pf is not None else 1.0
        self.resid_ew = 0.7 * self.resid_ew + 0.3 * (r.kw - expected) if warm else 0.0
        if not math.isnan(self.last_kw):
            # With a warm baseline the daily ramp is in the baseline: trend the residual only.
            prev = self.last_kw - (self._prev_expected(t, interval, cal) if warm else 0.0)
            cur = r.kw - (expected if warm else 0.0)
            self.trend_ew = 0.7 * self.trend_ew + 0.3 * (cur - prev)
        limit = kva * s.capacity_warn_fraction
        steps = max(1, int(s.capacity_horizon_min * 60 // interval))
        cross_t = cross_kva = None
        peak = r.kw / pf
        damp = 0.0
        for h in range(1, steps + 1):
            th = t + h * interval
            damp += 0.85 ** h
            sl = cal.slot(th)
            base = self._blend(sl, _day_slot(sl))[0] if warm else r.kw
            f = (base + self.resid_ew * 0.9 ** h + self.trend_ew * damp) / pf
            peak = max(peak, f)
            if f >= limit and cross_t is None:
                cross_t, cross_kva = th, f
        now_kva = r.kw / pf
        if now_kva >= limit and cross_t is None:
            cross_t, cross_kva = t, now_kva
        bad = cross_t is not None
        clear = peak < 0.9 * limit
        n_bad = self._cnt.get("over_capacity_risk", 0) + 1 if bad else 0
        if n_bad:
            self._cnt["over_capacity_risk"] = n_bad
        else:
            self._cnt.pop("over_capacity_risk", None)
        if bad and n_bad >= 2 and "over_capacity_risk" not in self._act:
            assert cross_t is not None and cross_kva is not None
            lead = (cross_t - t) / 60
            sev = Severity.CRITICAL if now_kva >= kva else Severity.WARNING
            ev.append(self._fire(
                "over_capacity_risk", sev, cross_kva / kva, t, t, meta,
                f"demand projected to reach {cross_kva:.1f} kVA of the contracted {kva:.0f} kVA "
                f"in {lead:.0f} min", {
                    "contracted_kva": kva, "current_kva": _r(now_kva, 2),
                    "projected_kva": _r(cross_kva, 2), "projected_crossing": _iso(cross_t),
                    "lead_min": _r(lead, 1), "trend_kw_per_interval": _r(self.trend_ew),
                    "horizon_min": s.capacity_horizon_min}))
        elif "over_capacity_risk" in self._act and clear:
            ev.append(self._resolve("over_capacity_risk", t, meta,
                                    "demand is back well below the contracted capacity",
                                    {"projected_peak_kva": _r(peak, 2), "contracted_kva": kva}))

    def _prev_expected(self, t: float, interval: float, cal: Calendar) -> float:
        sl = cal.slot(t - interval)
        mu = self._blend(sl, _day_slot(sl))[0]
        return mu if self.base_n[sl] or self.base_n[_day_slot(sl)] else self.last_kw

    def _blend(self, slot: int, dslot: int) -> tuple[float, float]:
        """Expected kW and dispersion: the time-of-week slot, blended with its day-type slot
        while it has few samples."""
        n_s = float(self.base_n[slot])
        n_d = float(self.base_n[dslot])
        if n_d == 0:
            return float(self.base_mu[slot]), float(self.base_dev[slot])
        w = n_s / (n_s + _BLEND)
        return (w * float(self.base_mu[slot]) + (1 - w) * float(self.base_mu[dslot]),
                w * float(self.base_dev[slot]) + (1 - w) * float(self.base_dev[dslot]))

    def _profile(self, r: Reading, t: float, interval: float, meta: MeterMeta | None,
                 s: DetectionSettings, cal: Calendar, ev: list[Event]) -> DailyProfile | None:
        day = cal.day_number(t)
        done = None
        if self.day_no and day != self.day_no:
            done = self._close_day(interval, meta, s, cal, t)
        if day != self.day_no:
            self.day_no = day
            self.day_sum[:] = 0
            self.day_cnt[:] = 0
            self.day_max, self.day_min = -math.inf, math.inf
        h = cal.hour(t)
        self.day_sum[h] += r.kw
        self.day_cnt[h] = min(int(self.day_cnt[h]) + 1, 255)
        self.day_max = max(self.day_max, r.kw)
        self.day_min = min(self.day_min, r.kw)
        return done

    def _close_day(self, interval: float, meta: MeterMeta | None, s: DetectionSettings,
                   cal: Calendar, t: float) -> DailyProfile | None:
        cnt = self.day_cnt.astype(np.float32)
        covered = int((cnt > 0).sum())
        if covered < 20:  # too little of the day seen to profile it
            return None
        day_start = datetime.fromordinal(self.day_no).replace(tzinfo=cal.tz)
        day_t = day_start.timestamp()
        curve = np.where(cnt > 0, self.day_sum / np.maximum(cnt, 1), np.nan)
        fill = self.we_curve if cal.is_day_off(day_t + 43_200) else self.wd_curve
        curve = np.where(np.isnan(curve), fill, curve).astype(np.float32)
        daily_kwh = float(curve.sum())  # 24 hourly means in kW = kWh of the day
        off = cal.is_day_off(day_t + 43_200)
        if off:
            self.we_days += 1
            a = max(1.0 / self.we_days, _ALPHA_CURVE)
            self.we_curve += a * (curve - self.we_curve)
        else:
            self.wd_days += 1
            a = max(1.0 / self.wd_days, _ALPHA_CURVE)
            self.wd_curve += a * (curve - self.wd_curve)
        # month-on-month growth
        month = day_start.year * 12 + day_start.month
        mom = None
        if self.month_no and month != self.month_no:
            if not math.isnan(self.prev_month_kwh) and self.prev_month_kwh > 0:
                mom = self.month_kwh / self.prev_month_kwh - 1
            self.prev_month_kwh = self.month_kwh
            self.month_kwh = 0.0
        self.month_no = month
        self.month_kwh += daily_kwh
        if mom is None and not math.isnan(self.prev_month_kwh) and self.prev_month_kwh > 0:
            days_in = day_start.day
            mom = self.month_kwh / days_in * 30.4 / self.prev_month_kwh - 1
        # today's energy against the meter's own history: what the segment judge compares
        ratio = None
        self.days += 1
        if self.days > s.theft_min_days and self.hist_kwh > 0:
            ratio = daily_kwh / self.hist_kwh
        if "possible_theft" not in self._act and "abnormal_consumption" not in self._act:
            a = max(1.0 / self.days, 1.0 / 28)
            self.hist_kwh += a * (daily_kwh - self.hist_kwh)
        return DailyProfile(
            meter_id=self.meter_id, day=day_start.astimezone(UTC),
            customer_id=meta.customer_id if meta else None,
            customer_class=str(meta.customer_class) if meta else "residential",
            daily_kwh=daily_kwh, peak_kw=float(self.day_max), valley_kw=float(self.day_min),
            day_curve=tuple(round(float(x), 4) for x in curve),
            weekday_curve=tuple(round(float(x), 4) for x in self.wd_curve),
            weekend_curve=tuple(round(float(x), 4) for x in self.we_curve),
            is_day_off=off, mom_growth=None if mom is None else round(mom, 4),
            ratio=None if ratio is None else round(ratio, 4))
