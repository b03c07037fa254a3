"""The stateful steps of the dataflow: thin bytewax adapters around the pure models.

* :class:`MeterLogic` — per meter: :class:`~gridwatch.models.MeterState`; snapshot is bytes.
* :class:`EventClockLogic` — one key: the event-time watermark; emits a :class:`Tick` to every
  watch key whenever the watermark crosses a tick boundary (and, when the input is idle in live
  mode, advances by wall time so silence is still seen when every meter stops).
* :class:`CellWatchLogic` — per grid cell: which meters are silent at the watermark; groups
  meters going silent together into one feeder-outage event, tells each meter it is silent.
* :class:`SegmenterLogic` / :class:`SegmentJudgeLogic` — the River models shared per customer
  class and per segment.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulLogic

from gridwatch._schemas import Event, LoadProfile, MeterMeta, MeterStatus, Reading, Severity
from gridwatch.models import (
    Calendar,
    DailyProfile,
    DetectionSettings,
    MeterState,
    Segmenter,
    SegmentJudge,
    is_candidate,
    load_profile,
)

MetaLookup = Callable[[str], MeterMeta | None]

_EMPTY: list[Any] = []


@dataclass(frozen=True, slots=True)
class Tick:
    """The event-time watermark reached ``now`` (epoch seconds)."""

    now: float


@dataclass(frozen=True, slots=True)
class Silence:
    """Meter ``meter_id`` has been silent at event time ``now``; ``quiet`` if a feeder-outage
    event already covers it."""

    meter_id: str
    now: float
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class SegmentSample:
    """A meter's finished day on its way to its segment's judge."""

    segment: str
    meter_id: str
    ratio: float | None
    theft: tuple[Event, ...]
    day: int = 0  # ordinal of the profiled day


@dataclass(frozen=True, slots=True)
class TheftCandidate:
    """A meter's possible-theft event on its way to its segment (with the meter's typical
    curves, from which the segmenter knows the segment)."""

    event: Event
    customer_class: str
    weekday_curve: tuple[float, ...]
    weekend_curve: tuple[float, ...]


class MeterLogic(StatefulLogic[Any, Any, bytes]):
    """Per-meter detection. The snapshot is the compact ``MeterState.to_bytes()``."""

    def __init__(self, resume: bytes | None, settings: DetectionSettings, calendar: Calendar,
                 meta: MetaLookup) -> None:
        self.state = MeterState.from_bytes(resume) if resume is not None else None
        self.settings = settings
        self.calendar = calendar
        self.meta = meta

    def on_item(self, value: Any) -> tuple[list[Any], bool]:
        if isinstance(value, Silence):
            if self.state is None:
                return _EMPTY, StatefulLogic.RETAIN
            meta = self.meta(value.meter_id)
            return (self.state.on_timer(value.now, meta, settings=self.settings,
                                        quiet=value.quiet), StatefulLogic.RETAIN)
        reading: Reading = value
        if self.state is None:
            self.state = MeterState(reading.meter_id)
        meta = self.meta(reading.meter_id)
        res = self.state.step(reading, meta, None, self.settings, self.calendar)
        out: list[Any] = []
        for ev in res.events:
            if is_candidate(ev):
                out.append(TheftCandidate(
                    ev, str(meta.customer_class) if meta else "residential",
                    tuple(float(x) for x in self.state.wd_curve),
                    tuple(float(x) for x in self.state.we_curve)))
            else:
                out.append(ev)
        if res.score is not None:
            out.append(res.score)
        if res.profile is not None:
            out.append(res.profile)
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return self.state.to_bytes() if self.state is not None else b""


def meter_builder(settings: DetectionSettings, calendar: Calendar,
                  meta: MetaLookup) -> Callable[[bytes | None], MeterLogic]:
    def build(resume: bytes | None) -> MeterLogic:
        return MeterLogic(resume or None, settings, calendar, meta)

    return build


class EventClockLogic(StatefulLogic[Reading, tuple[str, Any], bytes]):
    """Tracks the event-time watermark (max event time minus the allowed lateness) and passes
    every reading on to its watch key, followed by a ``Tick`` to every watch key seen whenever
    the watermark crosses a ``tick_s`` boundary. Because readings and ticks leave this one step
    in order, each cell watch sees them in event-time order (bytewax does not order items of
    separate streams within an epoch).

    ``notify_at`` is wall-clock in bytewax, so it is only used for the idle case: when nothing
    arrives for ``idle_s`` wall seconds the watermark advances by the wall time elapsed.
    """

    def __init__(self, resume: bytes | None, tick_s: float, lateness_s: float,
                 idle_s: float, key_of: Callable[[Reading], str]) -> None:
        self.tick_s = tick_s
        self.lateness_s = lateness_s
        self.idle_s = idle_s
        self.key_of = key_of
        self.wm = -math.inf
        self.next_tick = -math.inf
        self.keys: set[str] = set()
        if resume:
            self.wm, self.next_tick, keys = pickle.loads(resume)
            self.keys = set(keys)
        self.last_wall = datetime.now(UTC)

    def _ticks(self, out: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        if self.wm >= self.next_tick:
            self.next_tick = (self.wm // self.tick_s + 1) * self.tick_s
            tick = Tick(self.wm)
            out.extend((k, tick) for k in sorted(self.keys))
        return out

    def on_item(self, value: Reading) -> tuple[list[tuple[str, Any]], bool]:
        key = self.key_of(value)
        self.keys.add(key)
        self.last_wall = datetime.now(UTC)
        wm = value.ts.timestamp() - self.lateness_s
        if wm > self.wm:
            if self.next_tick == -math.inf:
                self.next_tick = (wm // self.tick_s + 1) * self.tick_s
            self.wm = wm
        return self._ticks([(key, value)]), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[tuple[str, Any]], bool]:
        now = datetime.now(UTC)
        if self.wm > -math.inf:
            self.wm += (now - self.last_wall).total_seconds()
        self.last_wall = now
        return self._ticks([]), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.idle_s <= 0 or self.wm == -math.inf:
            return None
        return self.last_wall + timedelta(seconds=self.idle_s)

    def snapshot(self) -> bytes:
        return pickle.dumps((self.wm, self.next_tick, sorted(self.keys)))


_OK, _PENDING, _ALERTED, _FEEDER = 0, 1, 2, 3


class CellWatchLogic(StatefulLogic[Any, Any, bytes]):
    """Silence watch of the meters of one grid cell (or one hash shard for meters without a
    cell). Passes readings on, in order, with ``Silence`` items for meters and ``Event`` items
    for feeder outages.

    Meters crossing the silence deadline are held ``hold`` intervals; if ``feeder_n`` or more of
    one cell are silent together they become one ``feeder_outage`` naming them, otherwise each
    meter raises its own outage or communication-loss event.
    """

    def __init__(self, resume: bytes | None, cell: str | None, settings: DetectionSettings,
                 meta: MetaLookup) -> None:
        self.cell = cell
        self.settings = settings
        self.meta = meta
        # meter -> (last_ts, interval_s, status, status_since)
        self.meters: dict[str, tuple[float, int, int, float]] = {}
        self.feeder_onset: float | None = None
        self.feeder_meters: tuple[str, ...] = ()
        if resume:
            self.cell, self.meters, self.feeder_onset, self.feeder_meters = pickle.loads(resume)

    def on_item(self, value: Any) -> tuple[list[Any], bool]:
        if isinstance(value, Tick):
            return self._tick(value.now), StatefulLogic.RETAIN
        r: Reading = value
        meta = self.meta(r.meter_id)
        if self.cell is None and meta is not None:
            self.cell = meta.grid_cell
        interval = (meta.interval_s if meta and meta.interval_s else None) or r.interval_s \
            or self.settings.interval_s
        t = r.ts.timestamp()
        prev = self.meters.get(r.meter_id)
        last = max(t, prev[0]) if prev else t
        if MeterStatus.POWER_FAIL in r.status:
            # last gasp: the meter is down now; held like a silent meter to group a feeder
            status = prev[2] if prev and prev[2] in (_PENDING, _FEEDER, _ALERTED) else _PENDING
            self.meters[r.meter_id] = (last, int(interval), status, t)
            return [r], StatefulLogic.RETAIN
        self.meters[r.meter_id] = (last, int(interval), _OK, t)
        out: list[Any] = [r]
        if prev and prev[2] == _FEEDER and self.feeder_onset is not None:
            back = sum(1 for m in self.feeder_meters if self.meters.get(m, (0, 0, _OK))[2]
                       != _FEEDER)
            if back >= 0.8 * len(self.feeder_meters):
                out.append(self._feeder_event(t, "resolved", back))
                self.feeder_onset = None
                self.feeder_meters = ()
                for m, (lt, iv, st, since) in list(self.meters.items()):
                    if st == _FEEDER:
                        self.meters[m] = (lt, iv, _ALERTED, since)
        return out, StatefulLogic.RETAIN

    def _feeder_event(self, t: float, state: str, back: int = 0) -> Event:
        assert self.feeder_onset is not None
        n = len(self.feeder_meters)
        cell = self.cell or "unknown"
        total = len(self.meters)
        if state == "firing":
            summary = (f"probable feeder outage in cell {cell}: {n} of {total} meters went "
                       f"silent together")
        else:
            summary = f"feeder outage in cell {cell} over: {back} of {n} meters report again"
        return Event(
            meter_id=f"cell:{cell}"[:64], type="feeder_outage",
            severity=Severity.CRITICAL if state == "firing" else Severity.INFO,
            score=float(n), onset=datetime.fromtimestamp(self.feeder_onset, UTC),
            raised_at=datetime.fromtimestamp(t, UTC), state=state, summary=summary,
            evidence={"silent_meters": n, "meters_in_cell": total,
                      "share_silent": round(n / max(total, 1), 3), "meters_back": back,
                      "lasted_min": round((t - self.feeder_onset) / 60, 1)},
            grid_cell=self.cell, meters=self.feeder_meters,
        )

    def _tick(self, now: float) -> list[Any]:
        s = self.settings
        out: list[Any] = []
        for m, (last, iv, st, _since) in list(self.meters.items()):
            if st == _OK and now - last >= s.silence_intervals * iv:
                self.meters[m] = (last, iv, _PENDING, now)
        pending = [m for m, v in self.meters.items() if v[2] == _PENDING]
        if not pending:
            return out
        if self.feeder_onset is not None or (
                self.cell is not None and len(pending) >= s.feeder_outage_meters):
            firing = self.feeder_onset is None
            if firing:
                self.feeder_onset = min(self.meters[m][0] + self.meters[m][1] for m in pending)
            self.feeder_meters = tuple(sorted(set(self.feeder_meters) | set(pending)))
            for m in pending:
                last, iv, _, _ = self.meters[m]
                self.meters[m] = (last, iv, _FEEDER, now)
                out.append(Silence(m, now, quiet=True))
            if firing:
                out.append(self._feeder_event(now, "firing"))
            return out
        for m in pending:
            last, iv, _, since = self.meters[m]
            if now - since >= s.feeder_hold_intervals * iv:
                self.meters[m] = (last, iv, _ALERTED, now)
                out.append(Silence(m, now, quiet=False))
        return out

    def snapshot(self) -> bytes:
        return pickle.dumps((self.cell, self.meters, self.feeder_onset, self.feeder_meters))


class SegmenterLogic(StatefulLogic[Any, Any, bytes]):
    """One customer class: River KMeans segmentation; emits a ``LoadProfile`` and a
    ``SegmentSample`` per finished meter-day, and sends theft candidates to their segment."""

    def __init__(self, resume: bytes | None, settings: DetectionSettings) -> None:
        self.settings = settings
        self.model: Segmenter | None = pickle.loads(resume) if resume else None

    def on_item(self, value: DailyProfile | TheftCandidate) -> tuple[list[Any], bool]:
        if self.model is None:
            self.model = Segmenter(value.customer_class, self.settings.segments_per_class,
                                   seed=self.settings.seed)
        if isinstance(value, TheftCandidate):
            segment = self.model.segment_of(value.weekday_curve, value.weekend_curve)
            return [SegmentSample(segment, value.event.meter_id, None, (value.event,))], \
                StatefulLogic.RETAIN
        segment, tags = self.model.assign(value)
        prof: LoadProfile = load_profile(value, segment, tags)
        return [prof, SegmentSample(segment, value.meter_id, value.ratio, (),
                                    value.day.toordinal())], \
            StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.model)


class SegmentJudgeLogic(StatefulLogic[SegmentSample, Event, bytes]):
    """One segment: River rolling median of members' energy ratios; confirms or suppresses
    possible-theft events."""

    def __init__(self, resume: bytes | None, settings: DetectionSettings) -> None:
        self.settings = settings
        self.judge: SegmentJudge | None = pickle.loads(resume) if resume else None

    def on_item(self, value: SegmentSample) -> tuple[list[Event], bool]:
        if self.judge is None:
            self.judge = SegmentJudge(value.segment, self.settings.theft_segment_ratio)
        out = []
        for ev in value.theft:
            verdict = self.judge.judge(ev)
            if verdict.event is not None:
                out.append(verdict.event)
        if value.ratio is not None:
            self.judge.learn(value.ratio, value.day)
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.judge)
