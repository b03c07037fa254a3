"""The stateful steps of the dataflow: thin bytewax adapters around the pure models.

* :class:`CellLogic` — per grid cell (or hash shard): the cell's silence watch
  (:class:`CellWatch`) and the :class:`~gridwatch.models.MeterState` of each of its meters,
  stepped over each batch of readings; its own event-time watermark from the readings it
  sees, advanced further by the fleet clock's ticks when its meters fall silent.
* :class:`CellWatch` — which meters of a cell are silent at the watermark; groups meters going
  silent together into one feeder-outage event, tells each meter it is silent.
* :class:`SegmenterLogic` / :class:`SegmentJudgeLogic` — the River models shared per customer
  class and per segment.
"""

from __future__ import annotations

import math
import pickle
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import numpy as np
from bytewax.operators import StatefulBatchLogic, StatefulLogic

from gridwatch._schemas import Event, LoadProfile, MeterMeta, MeterStatus, Reading, Severity
from gridwatch.ingest._assemble import reading_of_fields
from gridwatch.models import (
    Calendar,
    DailyProfile,
    DetectionSettings,
    MeterState,
    Segmenter,
    SegmentJudge,
    _meter,
    is_candidate,
)
from gridwatch.models._quiet import close_buffer, consts, lane_kernel, quiet_done
from gridwatch.models._quiet_codes import RUN_N, RUNS
from gridwatch.stream._lane import Lane, TimedFields, meter_ids_at
from gridwatch.stream._partition import ReadingBatch, Tick

MetaLookup = Callable[[str], MeterMeta | None]
#: Managers' verdicts for detection: the new ``(meter_id, event_type, kind, verdict, given)``
#: of one meter since the last call (see ``gridwatch.web.verdicts_for_detection``).
Verdicts = Callable[[str], list[tuple[str, str, str, str, datetime]]]
#: Warm start: the stored readings of ``meter_ids`` before ``until`` (epoch seconds), oldest
#: first for each meter, each as its given fields (as :class:`Reading` holds them).
WarmStart = Callable[[list[str], float], Iterable[dict[str, Any]]]

_EMPTY: list[Any] = []
_DAY_S = 86_400.0
#: A warm start's history cell's tick: never, within any history (no silence is judged there).
_NEVER_S = float(2 ** 52)
#: Stored readings a warm start steps at a time.
_WARM_BATCH = 4_096


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


def no_registry(_meter_id: str) -> None:
    """The lookup of a dataflow without a registry: no meter is known, now or later (what is
    kept of each meter needs no second look)."""
    return None


class RegistryProbe:
    """Tells when the registry behind ``lookup`` was reloaded: a reload makes new
    ``MeterMeta`` objects, so the probe keeps the first entry :meth:`look` found and
    :meth:`reloaded` looks its meter up again (one lookup, once per batch)."""

    __slots__ = ("lookup", "probe")

    def __init__(self, lookup: MetaLookup) -> None:
        self.lookup = lookup
        self.probe: tuple[str, MeterMeta] | None = None

    def look(self, meter_id: str) -> MeterMeta | None:
        """The registry's entry of ``meter_id`` (the first one found becomes the probe)."""
        m = self.lookup(meter_id)
        if m is not None and self.probe is None:
            self.probe = (meter_id, m)
        return m

    def reloaded(self) -> bool:
        """Whether the registry was reloaded since the probe was taken (a new one is taken at
        the next :meth:`look`)."""
        probe = self.probe
        if probe is not None and self.lookup(probe[0]) is not probe[1]:
            self.probe = None
            return True
        return False


class KeptMeta(RegistryProbe):
    """The registry's entries of meters, kept across batches: ``get`` looks a meter up once
    and keeps what the registry knows (a meter it does not know is looked up again each time:
    it may be added at any moment); :meth:`reloaded`, once per batch, drops every kept entry
    after a registry reload."""

    __slots__ = ("known",)

    def __init__(self, lookup: MetaLookup) -> None:
        super().__init__(lookup)
        self.known: dict[str, MeterMeta] = {}

    def reloaded(self) -> bool:
        if RegistryProbe.reloaded(self):
            self.known.clear()
            return True
        return False

    def get(self, meter_id: str) -> MeterMeta | None:
        m = self.known.get(meter_id)
        if m is None:
            m = self.look(meter_id)
            if m is not None:
                self.known[meter_id] = m
        return m


#: Readings put in rows at once (see ``CellLogic._lane_steps``)
LANE_CHUNK = 256
#: the columns of the lane's answers: flags, expected kW, z, hour, then a row of runs
_ANSWER_W = 4 + RUN_N


def _quiet_ticks(b: float, stop: float, tick_s: float) -> int:
    """How many boundaries ``b``, ``b + tick_s``, ... come before ``stop`` (at least one),
    when they can be counted at once: ``b`` and ``tick_s`` whole numbers of seconds, where a
    float's sums are exact (a cell whose watermark jumps days or years, a replayed year
    beside live meters, passes them in one step, not one at a time); else 1 (the caller
    steps one boundary at a time, as the additions would round)."""
    if not (tick_s > 0 and float(b).is_integer() and float(tick_s).is_integer()) \
            or stop - b <= tick_s:
        return 1
    if stop == math.inf:
        return 1  # (a watch with no meter: the caller's watermark bounds the steps)
    n = max(1, math.ceil((stop - b) / tick_s))
    while n > 1 and b + (n - 1) * tick_s >= stop:
        n -= 1
    while b + n * tick_s < stop and abs(b + n * tick_s) < 2.0 ** 52:
        n += 1
    return n


def watch_interval(meta: MeterMeta | None, given_s: int | None, default_s: int) -> int:
    """The interval the silence watch expects of a meter (s): its registry entry's, else its
    reading's, else the configured one (the lane's kernel takes the same, ``_quiet_jit``)."""
    return int((meta.interval_s if meta is not None else None) or given_s or default_s)


class _Entry:
    """A registry lookup that answers one entry already looked up."""

    __slots__ = ("meta",)

    def __init__(self, meta: MeterMeta | None) -> None:
        self.meta = meta

    def __call__(self, meter_id: str) -> MeterMeta | None:
        return self.meta


_OK, _PENDING, _ALERTED, _FEEDER = 0, 1, 2, 3
#: below a silence deadline by more than any rounding of ``now - last`` against ``last + k * iv``
_SLACK = 1e-3


#: numpy's dtypes of ``CellWatch.lane_columns``, made once (a type given as a dtype is
#: converted at each call)
_LANE_DTYPES = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.uint8))


class CellWatch:
    """Silence watch of the meters of one grid cell (or one hash shard for meters without a
    cell): told of each reading, and ticked with the event-time watermark, it answers with
    ``Silence`` items for meters and ``Event`` items for feeder outages. Pure: no bytewax.

    Meters crossing the silence deadline are held ``hold`` intervals; if ``feeder_n`` or more of
    one cell are silent together they become one ``feeder_outage`` naming them, otherwise each
    meter raises its own outage or communication-loss event.

    A tick that can find nothing costs one comparison: the watch keeps ``due``, a time before
    which no reporting meter can cross its silence deadline (the earliest deadline, lowered by
    each reading that sets an earlier one, exact again after each full look), and none when a
    meter is already held (``-inf``: every tick looks).

    What it knows of each meter (the newest event time, the interval, the status and since
    when) is held in columns, one slot a meter (``slot``), 25 bytes a meter instead of a tuple
    and a float object (about 110 bytes); :attr:`meters` gives the tuples, and the snapshot
    keeps them, as before.
    """

    def __init__(self, resume: tuple[Any, ...] | None, cell: str | None,
                 settings: DetectionSettings) -> None:
        self.cell = cell
        self.settings = settings
        self._k = settings.silence_intervals
        #: meter -> its slot in the columns
        self.slot: dict[str, int] = {}
        self._last = array("d")  #: newest event time seen
        self._iv = array("q")  #: the meter's interval (s)
        self._st = bytearray()  #: _OK, _PENDING, _ALERTED or _FEEDER
        self._since = array("d")  #: when the status was set (not kept while it is _OK)
        self.feeder_onset: float | None = None
        self.feeder_meters: tuple[str, ...] = ()
        #: of ``feeder_meters``, those whose status is no longer _FEEDER (back, or silent
        #: again): kept as they change, so a reading back from an outage costs no look at
        #: every meter of it (a 5,000-meter cell's recovery took 1.0 s that way)
        self._feeder_back = 0
        #: no tick before this event time can find anything to do (see the class docstring)
        self.due = -math.inf
        if resume:
            self.cell, meters, self.feeder_onset, self.feeder_meters = resume
            for m, (last, iv, st, since) in meters.items():
                self._add(m, last, iv, st, since)
            self._feeder_back = self._count_back()

    def _add(self, meter_id: str, last: float, iv: int, st: int, since: float) -> None:
        self.slot[meter_id] = len(self._st)
        self._last.append(last)
        self._iv.append(iv)
        self._st.append(st)
        self._since.append(since)

    def learn(self, meter_id: str, last: float, interval: int, status: int, since: float,
              start: float) -> bool:
        """Take what another watch noted of a meter this one does not know (a warm start's
        history): its newest event time, interval, status and since when, so that a meter
        whose stored readings stop before the start is judged silent from its last one.

        A meter whose silence this watch would have decided before ``start`` (its deadline
        and its hold passed) is taken as decided: alerted, so that it is not grouped with
        the meters that fall silent together later (meters that fell silent one by one, days
        apart, are no feeder outage); True says so, and the caller raises its silence on its
        own. A meter this watch knows already is left as it is (False)."""
        if meter_id in self.slot:
            return False
        hold = self.settings.feeder_hold_intervals * interval
        decided = (start - last >= self._k * interval + hold if status == _OK
                   else status == _PENDING and start - since >= hold)
        if decided:
            self._add(meter_id, last, interval, _ALERTED, start)
            return True
        self._add(meter_id, last, interval, status, since)
        due = last + self._k * interval - _SLACK if status == _OK else -math.inf
        if due < self.due:
            self.due = due
        return False

    def lane_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The columns the lane's kernel reads and writes (newest event time, interval,
        status) as numpy arrays over their memory. While one is held no meter can be added
        (the columns cannot grow under it): let them go first."""
        last_t, iv_t, st_t = _LANE_DTYPES
        return (np.frombuffer(self._last, last_t), np.frombuffer(self._iv, iv_t),
                np.frombuffer(self._st, st_t))

    @property
    def meters(self) -> dict[str, tuple[float, int, int, float]]:
        """meter -> (newest event time, interval, status, since): a copy of the columns."""
        last, iv, st, since = self._last, self._iv, self._st, self._since
        return {m: (last[i], iv[i], st[i], since[i]) for m, i in self.slot.items()}

    def on_reading(self, r: Reading, meta: MeterMeta | None) -> list[Event]:
        """Note a reading; a feeder-outage ``resolved`` event when its cell is back."""
        if self.cell is None and meta is not None:
            self.cell = meta.grid_cell
        status = r.status
        return self.seen(r.meter_id, r.ts.timestamp(),
                         watch_interval(meta, r.interval_s, self.settings.interval_s),
                         bool(status) and MeterStatus.POWER_FAIL in status)

    def seen(self, meter_id: str, t: float, interval: int, power_fail: bool) -> list[Event]:
        """:meth:`on_reading` with the reading's event time, the meter's interval and its last
        gasp already known (the cell's hot path; the cell is set by the caller)."""
        i = self.slot.get(meter_id)
        if i is None:
            self._add(meter_id, t, interval, _PENDING if power_fail else _OK, t)
            prev = -1
            last = t
        else:
            sts = self._st
            prev = sts[i]
            lasts = self._last
            last = lasts[i]
            if t > last:
                lasts[i] = last = t
            self._iv[i] = interval
            if power_fail:
                # last gasp: the meter is down now; held like a silent meter to group a feeder
                self._since[i] = t
                if prev == _OK:
                    sts[i] = _PENDING
            elif prev:
                sts[i] = _OK
        if power_fail:
            self.due = -math.inf
            return _EMPTY
        due = last + self._k * interval - _SLACK
        if due < self.due:
            self.due = due
        if prev != _FEEDER or self.feeder_onset is None:
            return _EMPTY
        self._feeder_back += 1  # (a meter of the outage back: _FEEDER to _OK above)
        out: list[Event] = []
        back = self._feeder_back
        if back >= 0.8 * len(self.feeder_meters):
            out.append(self._feeder_event(t, "resolved", back))
            self.feeder_onset = None
            self.feeder_meters = ()
            self._feeder_back = 0
            st = self._st
            for j, status in enumerate(st):
                if status == _FEEDER:
                    st[j] = _ALERTED
        return out

    def _count_back(self) -> int:
        """The meters of the feeder outage no longer in it, counted (``_feeder_back``)."""
        slot, st = self.slot, self._st
        return sum(1 for m in self.feeder_meters if m not in slot or st[slot[m]] != _FEEDER)

    def _feeder_event(self, t: float, state: str, back: int = 0) -> Event:
        assert self.feeder_onset is not None
        n = len(self.feeder_meters)
        cell = self.cell or "unknown"
        total = len(self.slot)
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

    def tick(self, now: float) -> list[Any]:
        if now < self.due:
            return _EMPTY
        s = self.settings
        k = self._k
        lasts, ivs, sts, sinces = self._last, self._iv, self._st, self._since
        out: list[Any] = []
        pending: list[str] = []
        due = math.inf
        for m, i in self.slot.items():
            st = sts[i]
            if st == _OK:
                last = lasts[i]
                window = k * ivs[i]
                if now - last >= window:
                    sts[i] = _PENDING
                    sinces[i] = now
                    pending.append(m)
                elif last + window - _SLACK < due:
                    due = last + window - _SLACK
            elif st == _PENDING:
                pending.append(m)
        if not pending:
            self.due = due
            return out
        self.due = -math.inf  # held meters: look again at the next tick
        slot = self.slot
        if self.feeder_onset is not None or (
                self.cell is not None and len(pending) >= s.feeder_outage_meters):
            firing = self.feeder_onset is None
            if firing:
                self.feeder_onset = min(lasts[slot[m]] + ivs[slot[m]] for m in pending)
            held = set(self.feeder_meters)
            # (a meter of the outage back and now silent again was counted as back)
            self._feeder_back -= sum(1 for m in pending if m in held)
            self.feeder_meters = tuple(sorted(held | set(pending)))
            for m in pending:
                i = slot[m]
                sts[i] = _FEEDER
                sinces[i] = now
                out.append(Silence(m, now, quiet=True))
            if firing:
                out.append(self._feeder_event(now, "firing"))
            return out
        for m in pending:
            i = slot[m]
            if now - sinces[i] >= s.feeder_hold_intervals * ivs[i]:
                sts[i] = _ALERTED
                sinces[i] = now
                out.append(Silence(m, now, quiet=False))
        return out

    def state(self) -> tuple[Any, ...]:
        return (self.cell, self.meters, self.feeder_onset, self.feeder_meters)


class CellLogic(StatefulBatchLogic[Any, Any, bytes]):
    """One grid cell (or hash shard): its silence watch and the state of each of its meters.

    Items are :class:`ReadingBatch` es of the cell's readings and :class:`Tick` s from the fleet
    clock. Each reading goes to the watch, then to its meter's ``MeterState.step``; then the
    cell's own watermark advances: the newest reading the cell has from each source partition
    that feeds it, the slowest of them, minus ``lateness_s``. Each ``tick_s`` boundary it
    passes, the watch looks for silent meters, whose ``on_timer`` runs at once (boundaries
    passed before a reading are ticked before it). A clock tick only counts when it is ahead of
    the cell's own watermark: it is what moves a cell whose meters have all gone quiet, or one
    whose slowest partition has stopped.

    **Several partitions feed a cell** in a cluster whose collectors share one MQTT
    subscription: a meter's readings land in whichever collector's journal the broker chose,
    so two partitions, read at their own pace, would hand the cell a meter's readings out of
    order (seen as a clock going backwards, gaps as silences). So once a cell is fed by more
    than one partition (or is told the cluster's ``partitions`` up front), it *holds* the
    readings and steps them in event-time order only up to the slowest partition's newest
    reading — every partition has then delivered what it has up to there. A partition that
    sends the cell nothing does not hold it for long: the fleet clock's tick (which knows the
    partitions that are caught up, and in a cluster ticks at every release, see
    ``ClockLogic``) releases the readings up to the tick as well, and the end of a finite
    input releases everything.

    The snapshot is the watch's state, the held readings and every meter's ``to_bytes()``;
    with ``snapshots``
    off (no recovery configured: bytewax takes snapshots at every epoch all the same, and
    drops them) it is empty and costs nothing.

    ``warm`` (warm start): in a cell that was not resumed from a snapshot (a start without
    recovery state), meters that have no state yet are first stepped over their stored
    readings before the batch (events raised on the way are history, not news, and are
    dropped), so the detectors do not start blind. One call per batch with new meters, and
    only until the cell's second interval tick: by then every meter that reports each
    interval has been seen, and later newcomers are new meters. The call may give readings
    of more of the cell's meters (the engine's asks for a cell's registry meters at once);
    a meter that already has a state is never stepped over them. The watch learns each warm
    meter's last stored reading, so a meter that fell silent before the start (and sends
    nothing after it) is still found silent.
    """

    def __init__(self, resume: bytes | None, settings: DetectionSettings, calendar: Calendar,
                 meta: MetaLookup, tick_s: float, lateness_s: float,
                 snapshots: bool = True, warm: WarmStart | None = None,
                 verdicts: Verdicts | None = None, partitions: Sequence[str] = ()) -> None:
        self.settings = settings
        #: every source partition of the cluster, when known up front
        self.partitions = tuple(partitions)
        #: (a cell resumed from a snapshot has its meters' state: it asks for none)
        self.warm = warm if not resume else None
        #: meter -> the event time of the newest stored reading the warm start stepped it
        #: over (until its first reading past it), and the newest of them all
        self._learned: dict[str, float] = {}
        self._learned_until = -math.inf
        #: readings not stepped: their meter's warm start had stepped it over them already
        self.warm_skipped = 0
        self.verdicts = verdicts
        self._ticks_seen = 0
        self.calendar = calendar
        self.meta = meta
        self.tick_s = tick_s
        self.lateness_s = lateness_s
        self.snapshots = snapshots
        self.wm = -math.inf
        self.next_tick = -math.inf
        self.meters: dict[str, MeterState] = {}
        #: newest event time from each source partition that feeds this cell
        self.parts: dict[str, float] = {}
        #: readings waiting for the slower partitions: (event time, reading), oldest first
        #: (arrival order among equal times); a reading read as its fields is held as them
        self.held: list[tuple[float, Reading | dict[str, Any]]] = []
        #: the quiet readings' compiled lane (built at the first batch that can take it)
        self.lane: Lane | None = None
        #: the registry's entries of the cell's meters, checked once per batch
        self._kept = KeptMeta(meta)
        #: each reading's registry entry (none to look up without a registry)
        self._meta_of: MetaLookup = no_registry if meta is no_registry else self._kept.get
        watch = None
        if resume:
            state = pickle.loads(resume)
            watch, self.wm, self.next_tick, self.parts, states = state[:5]
            if len(state) > 5:
                self.held = state[5]
                # (in time order from here on; a snapshot of an earlier version may hold
                # them in arrival order: a stable sort keeps arrival order among equal times)
                self.held.sort(key=itemgetter(0))
            if len(state) > 6:
                self._learned, self._learned_until = state[6]
            self.meters = {m: MeterState.from_bytes(b) for m, b in states.items()}
        self.watch = CellWatch(watch, None, settings)

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        out: list[Any] = []
        for value in values:
            if isinstance(value, ReadingBatch):
                if self.warm is not None and self._ticks_seen < 2:
                    self._warm_start(value, out)
                parts = self.parts
                if self.held or self.partitions or (
                        parts and value.part not in parts) or len(parts) > 1:
                    self._hold(value, out)
                else:
                    # one partition feeds the cell: its readings step in arrival order
                    timed, times = self._timed(value)
                    if times:
                        newest = max(times)
                        if newest > parts.get(value.part, -math.inf):
                            parts[value.part] = newest
                    self._steps(timed, out)
            elif isinstance(value, Tick):
                if self.held:
                    self._release(value.now + self.lateness_s, out)
                self._advance(value.now, out)
            else:  # a lone reading (a caller that does not batch)
                self._reading(value, "", out)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Any], bool]:
        out: list[Any] = []
        self._release(math.inf, out)
        return out, StatefulBatchLogic.RETAIN

    @staticmethod
    def _timed(batch: ReadingBatch
               ) -> tuple[Sequence[tuple[float, Reading]], list[float]]:
        """The batch's readings with their event times, and the times: readings given as
        their fields stay so (:class:`TimedFields`), made only where the lane leaves them."""
        given = batch.given
        if given is not None:
            # (a batch's readings share a few times: each computed once for a run of them)
            times: list[float] = []
            add = times.append
            last: Any = None
            t = 0.0
            for f in given:
                ts = f["ts"]
                if ts != last:
                    last = ts
                    t = ts.timestamp()
                add(t)
            return TimedFields(given, times), times
        readings = batch.readings
        times = [r.ts.timestamp() for r in readings]
        return list(zip(times, readings, strict=True)), times

    def _hold(self, batch: ReadingBatch, out: list[Any]) -> None:
        """Hold a batch's readings; step those every partition has delivered. ``held`` stays
        in time order: a batch later than everything held (the usual case: a partition reads
        in time order) is only appended, so holding costs nothing a reading held before."""
        timed, _times = self._timed(batch)
        items: list[tuple[float, Reading | dict[str, Any]]] = \
            list(timed.pairs()) if isinstance(timed, TimedFields) else list(timed)
        if not items:
            return
        items.sort(key=itemgetter(0))  # stable: arrival order among equal times
        held = self.held
        later = not held or items[0][0] >= held[-1][0]
        held.extend(items)
        if not later:
            held.sort(key=itemgetter(0))  # (the held ones arrived first: they stay first)
        newest = items[-1][0]
        parts = self.parts
        if newest > parts.get(batch.part, -math.inf):
            parts[batch.part] = newest
        upto = min(parts.values())
        for p in self.partitions:
            upto = min(upto, parts.get(p, -math.inf))
        self._release(upto, out)

    def _release(self, upto: float, out: list[Any]) -> None:
        """Step the held readings up to event time ``upto``, oldest first."""
        held = self.held
        if not held or upto == -math.inf:
            return
        n = bisect_right(held, upto, key=itemgetter(0))
        if n == 0:
            return
        ready = held[:n]
        del held[:n]
        if all(type(x) is dict for _t, x in ready):  # (read as fields: they stay so)
            self._steps(TimedFields([x for _t, x in ready], [t for t, _x in ready]), out)
        else:
            self._steps([(t, x if type(x) is not dict else reading_of_fields(x))
                         for t, x in ready], out)
        lateness = self.lateness_s
        if upto < math.inf and upto - lateness > self.wm:
            self._advance(upto - lateness, out)

    def _warm_start(self, batch: ReadingBatch, out: list[Any]) -> None:
        """The batch's meters that have no state, stepped over their stored readings before
        its first reading (the warm start may give readings of more of the cell's meters:
        they are stepped too, and are not new when their own readings come). The batch's
        readings are read as their fields: no reading object is made. The watch learns each
        one's last stored reading; one whose silence was decided before the batch (see
        :meth:`CellWatch.learn`) raises it now, on its own, with the onset it had."""
        assert self.warm is not None
        meters = self.meters
        ids = batch.meter_ids()
        new = sorted({m for m in ids if m not in meters})
        if not new:
            return
        until = min(d["ts"] for d in batch.fields()).timestamp()
        history: CellLogic | None = None
        made: set[str] = set()  # (a meter that had a state before is never stepped here)
        chunk: list[dict[str, Any]] = []
        for r in self.warm(new, until):
            meter_id = r["meter_id"]
            if meter_id not in made:
                if meter_id in meters:
                    continue
                made.add(meter_id)
            chunk.append(r)
            if len(chunk) >= _WARM_BATCH:
                history = self._step_history(history, chunk)
                chunk = []
        if chunk:
            history = self._step_history(history, chunk)
        if history is not None:
            seen = history.watch.meters
            learn = self.watch.learn
            for meter_id in sorted(made):
                state = meters[meter_id] = history.meters[meter_id]
                self._learned[meter_id] = state.last_ts
                noted = seen.get(meter_id)
                # (silent since its last stored reading: judged so)
                if noted is not None and learn(meter_id, *noted, until):
                    out.extend(state.on_timer(until, self.meta(meter_id),
                                              settings=self.settings))
            self._learned_until = max(self._learned.values())
        for m in new:  # a meter with no history is not asked about again
            if m not in meters:
                meters[m] = MeterState(m)

    def _step_history(self, history: CellLogic | None,
                      chunk: list[dict[str, Any]]) -> CellLogic:
        """Stored readings through ``history``, a cell of their own made at the first chunk:
        it never ticks (no silence is judged in a history), its quiet readings take the
        compiled lane, and its events are history, dropped; its meters' states are then
        this cell's."""
        if history is None:
            history = CellLogic(None, self.settings, self.calendar, self.meta, _NEVER_S, 0.0,
                                snapshots=False)
        history.on_batch([ReadingBatch.of_fields("", chunk)])
        return history

    def _unlearned(self, timed: Sequence[tuple[float, Reading]]
                   ) -> Sequence[tuple[float, Reading]]:
        """``timed`` without the readings the warm start has stepped their meters past: one
        at or before the newest stored reading its meter was stepped over is that reading as
        stored, or older still, which would read as the meter's clock going backwards (a
        meter of the cell the warm start answered for before its own readings came, from a
        concentrator that sends late). A meter is checked until its first reading past that
        point; every meter once the cell's event time is a day past the newest of them."""
        learned = self._learned
        if self.wm > self._learned_until + _DAY_S:
            learned.clear()
            return timed
        keep: list[int] = []
        for i, meter_id in enumerate(meter_ids_at(timed, range(len(timed)))):
            horizon = learned.get(meter_id)
            if horizon is not None:
                if timed[i][0] <= horizon:
                    self.warm_skipped += 1
                    continue
                del learned[meter_id]
            keep.append(i)
        return timed if len(keep) == len(timed) else Lane.subset(timed, keep)

    def _reading(self, r: Reading, part: str, out: list[Any]) -> None:
        t = r.ts.timestamp()
        parts = self.parts
        if t > parts.get(part, -math.inf):
            parts[part] = t
        # a lone reading beside batches of other partitions: the slowest one's watermark
        self._steps([(t, r)], out,
                    None if len(parts) == 1 else min(parts.values()) - self.lateness_s)

    def _verdicts(self) -> Verdicts | None:
        """The verdict feed for one batch, or None when it says that nothing waits (a feed
        with an ``any_pending()`` is asked once per batch rather than once per reading)."""
        feed = self.verdicts
        if feed is None:
            return None
        any_pending = getattr(feed, "any_pending", None)
        if any_pending is not None and not any_pending():
            return None
        return feed

    def _steps(self, timed: Sequence[tuple[float, Reading]], out: list[Any],
               at: float | None = None) -> None:
        """Readings with their event times, each through the watch and its meter, the cell's
        watermark at each one's time minus ``lateness_s`` (at ``at`` for all, when given): the
        quiet ones through the lane (:mod:`._lane`) when the compiled quiet path is on and no
        verdict waits, however few (a call of the lane for one reading costs about what the
        per-reading path does, and a meter stepped that way leaves the lane until its row is
        set again, which costs its next reading the per-reading path as well), the others
        one by one (:meth:`_steps_each`)."""
        if self._learned:
            timed = self._unlearned(timed)
        if not timed:
            return
        self._kept.reloaded()  # (once per batch, either path)
        verdicts = self._verdicts()
        if verdicts is None and at is None and _meter.FAST_PATH:
            run = lane_kernel()
            if run is not None:
                self._lane_steps(timed, out, run)
                return
        # a meter stepped here is off the lane until a reading of it through the lane's
        # driver sets its row again
        self._steps_each(timed, out, at, self._meta_of, verdicts, self.lane)

    def _lane_steps(self, timed: Sequence[tuple[float, Reading]], out: list[Any],
                    run: Any) -> None:
        """The batch through the lane, ``LANE_CHUNK`` readings at a time: a chunk's rows are
        made when it starts, so a meter new to the cell (or a registry entry reloaded) within
        a long batch costs Python only until the next chunk."""
        if self.lane is None:
            self.lane = Lane(self.settings, self.calendar)
        whole = len(timed) <= LANE_CHUNK  # (one chunk: the batch as it is, no copy of it)
        for k in range(0, len(timed), LANE_CHUNK):
            self._lane_chunk(timed if whole else timed[k:k + LANE_CHUNK], out, run, self.lane)

    def _lane_chunk(self, timed: Sequence[tuple[float, Reading]], out: list[Any], run: Any,
                    lane: Lane) -> None:
        kept = self._kept
        watch = self.watch
        slot = watch.slot
        c = consts(self.settings)
        meters = self.meters
        rows, any_lane, steps_kept, entries = lane.rows(
            timed, slot, kept.known, self._meta_of, watch.cell is not None, meters, c)
        n = len(timed)
        times = timed.times if isinstance(timed, TimedFields) else None
        # the later readings of each meter the cell had no slot for when the rows were made
        # (a meter new to the cell): once its first reading has set its row, theirs are made
        # again, so that they may take the lane (found at the first such meter)
        unslotted: dict[str, list[int]] | None = None
        answers = np.zeros((n, _ANSWER_W)) if any_lane else None
        closes = close_buffer(n).rows  # (the thread's: read in _lane_done, before the next call)
        # the watch's columns as arrays (they stay valid until a meter is added to the watch,
        # which only the per-reading path does: they are let go before it runs)
        columns: tuple[np.ndarray, ...] | None = None
        k, iv = float(watch._k), float(self.settings.interval_s)
        i = 0
        while i < n:
            if answers is not None and rows[i, 0] >= 0:
                lane.fit(len(slot))
                lane.spare(8)
                if columns is None:
                    columns = watch.lane_columns()
                stop, self.wm, self.next_tick, watch.due, ticks, tick, flagged = run(
                    rows, i, lane.addrs, lane.meters, lane.ready, lane.profiles, *columns,
                    c.jit_at, self.lateness_s, self.wm, self.next_tick, self.tick_s, watch.due,
                    k, _SLACK, iv, answers, closes, lane.runs, lane.free)
                self._ticks_seen += ticks
                if flagged:
                    self._lane_done(timed, entries, answers, closes, i, stop, c, out)
                if tick == 2:  # the last one's watermark is a tick that finds a meter
                    self._tick_at(self.wm, out)
                elif tick == 1:  # the reading's watermark passes one: the cell's, first
                    self._catch_up(timed[stop][0] - self.lateness_s, out)
                i = stop
                if tick or i == n:
                    continue
            # a reading of a meter the lane has no row for (new to the cell, or resumed from
            # a snapshot): the ticks before it, as the per-reading path starts it, then first
            # sight from it on, up to the next tick, so that it and the new meters after it
            # take the lane from their first reading (each tick the chunk passes, as at
            # start-up, starts another)
            if rows[i, 0] < 0 and self._unseen(meter_ids_at(timed, (i,))[0], lane):
                columns = None  # (the watch grows)
                wm = (times[i] if times is not None else timed[i][0]) - self.lateness_s
                if wm > self.next_tick:
                    self._catch_up(wm, out)
                left = (np.flatnonzero(rows[i:, 0] < 0) + i).tolist()
                fresh = self._first_sight(timed, left, entries, lane)
                if fresh:
                    unslotted = None
                    if self._rows_again(timed, fresh, rows, entries, steps_kept, lane, c) \
                            and answers is None:
                        answers = np.zeros((n, _ANSWER_W))
                    if answers is not None and rows[i, 0] >= 0:
                        continue
            # the reading the lane left: through Python, then its meter's row again
            columns = None
            r = timed[i][1]
            meta = entries[i]
            # a reading of a meter ready for the lane was left by its kernel: not quiet, so
            # the meter need not try its quiet path again, unless the kernel left it to the
            # Python quiet path (-1: the first reading of a local day, the cell's first tick,
            # and a few rare cases); any other tries it (a meter off the lane may still have
            # quiet readings)
            row = int(rows[i, 0])
            tried = answers is not None and row >= 0 and bool(lane.ready[row]) \
                and answers[i, 0] >= 0
            self._steps_each(timed[i:i + 1], out, None, _Entry(meta),
                             quiet=not tried)  # (its row: below)
            j = slot.get(r.meter_id)
            state = meters.get(r.meter_id)
            if j is not None and state is not None:
                lane.set(j, state, meta)
                if row < 0 and lane.ready[j] and i + 1 < n:
                    if unslotted is None:
                        unslotted = lane.unslotted(timed, rows, i + 1)
                    again = unslotted.pop(r.meter_id, None)
                    if again and self._rows_again(timed, again, rows, entries, steps_kept,
                                                  lane, c) and answers is None:
                        answers = np.zeros((n, _ANSWER_W))
            i += 1

    def _rows_again(self, timed: Sequence[tuple[float, Reading]], ks: list[int],
                    rows: np.ndarray, entries: list[MeterMeta | None], kept: list[Any],
                    lane: Lane, c: Any) -> bool:
        """The rows of readings ``ks`` made again (their meters have rows now), with the
        registry entries found when the chunk's rows were made (a meter the registry does not
        know is not looked up again), the forecast's steps they point to kept with the
        chunk's; whether any may take the lane."""
        found = dict(zip(meter_ids_at(timed, ks), (entries[k] for k in ks), strict=True))
        made, any_made, made_kept, made_entries = lane.rows(
            lane.subset(timed, ks), self.watch.slot, found, found.get,
            self.watch.cell is not None, self.meters, c)
        rows[ks] = made
        for at, e in zip(ks, made_entries, strict=True):
            entries[at] = e
        kept.extend(made_kept)
        return any_made

    def _unseen(self, meter_id: str, lane: Lane) -> bool:
        """Whether the lane has never set a row for the meter (new to the cell, or resumed)."""
        j = self.watch.slot.get(meter_id)
        return j is None or lane.never_set(j)

    def _first_sight(self, timed: Sequence[tuple[float, Reading]], left: list[int],
                     entries: list[MeterMeta | None], lane: Lane) -> list[int]:
        """Rows for the meters of readings ``left`` (those the rows leave to Python) that the
        lane has never set a row for: a meter new to the cell, or one the cell resumed from a
        snapshot. Its row is what ``Lane.set`` makes of its record after a reading through
        Python, and its record at rest is just as good a start: the lane then takes its first
        reading too (a new meter's first reading in a cell: 10.1 us against 23.6 through
        Python, ``benchmarks/records.py --only first``).

        A meter new to the watch is given its slot first, with what ``CellWatch.seen`` notes
        of that reading (which the lane then notes again, to the same values), and its record;
        only up to the first reading from ``left``'s first on (the one the cell reached) whose
        watermark may tick (``>=`` the next tick), and before the first new meter whose reading
        carries a status, so that every tick and every slot and record comes in the order of
        the per-reading path (the cell calls it again at the first new meter's reading past
        either). The indices of ``left`` whose meter now has a row, to make their rows
        again."""
        watch = self.watch
        slot = watch.slot
        meters = self.meters
        given: list[dict[str, Any]] | None = None
        times: list[float] = []  # (the readings' event times, taken at the first new meter)
        if isinstance(timed, TimedFields):
            given, times = timed.fields, timed.times
        limit = -1  # (new meters up to here: found at the first one)
        default_iv = self.settings.interval_s
        rowed: set[str] = set()
        again: list[int] = []
        for i in left:
            d = given[i] if given is not None else timed[i][1].__dict__
            meter_id = d["meter_id"]
            j = slot.get(meter_id)
            if j is None:
                if limit < 0:
                    times = times or [t for t, _r in timed]
                    start = left[0]  # (the reading the cell reached: none before it)
                    limit = start + self._untick_prefix(times[start:])
                if i >= limit:
                    continue
                if d.get("status"):
                    limit = i
                    continue
                meta = entries[i]
                if meta is not None and watch.cell is None:
                    watch.cell = meta.grid_cell
                watch.seen(meter_id, times[i],
                           watch_interval(meta, d.get("interval_s"), default_iv), False)
                j = slot[meter_id]
                state = meters.get(meter_id)
                if state is None:
                    state = meters[meter_id] = MeterState(meter_id)
            elif meter_id in rowed:
                again.append(i)
                continue
            elif not lane.never_set(j) or (state := meters.get(meter_id)) is None:
                continue
            lane.set(j, state, entries[i])
            rowed.add(meter_id)
            again.append(i)
        return again

    def _untick_prefix(self, times: list[float]) -> int:
        """How many of the readings at ``times`` come before any tick of the cell's watermark
        can: the readings before the first whose watermark passes the next tick, and that one
        too if it reaches it just so (its tick comes after it). Before the cell's first
        reading, the tick it will set."""
        tick_s = self.tick_s
        if tick_s <= 0 or not times:
            return 0
        lateness = self.lateness_s
        bound = self.next_tick
        if bound == -math.inf:
            bound = ((times[0] - lateness) // tick_s + 1) * tick_s
        for k, t in enumerate(times):
            wm = t - lateness
            if wm >= bound:
                return k + 1 if wm == bound else k
        return len(times)

    def _lane_done(self, timed: Sequence[tuple[float, Reading]],
                   entries: Sequence[MeterMeta | None], answers: np.ndarray,
                   closes: np.ndarray, start: int, stop: int, c: Any,
                   out: list[Any]) -> None:
        """The Python side of the lane's readings ``start..stop-1`` that carry flags (see
        ``_quiet.quiet_done``): a sampled or anomalous score, the theft window's hour, a
        stuck-reading count (the lane has counted it in the meter's row too), the runs beyond
        the band, the profile of a day closed (its row of ``closes``)."""
        calendar = self.calendar
        flags_of = answers[start:stop, 0]
        meters = self.meters
        # (readings given as their fields are read from them: no reading object is made)
        given = timed if isinstance(timed, TimedFields) else None
        for k in np.flatnonzero(flags_of).tolist():
            i = start + k
            if given is not None:
                d = given.fields[i]
                meter_id, ts, kw, t = d["meter_id"], d["ts"], d["kw"], given.times[i]
            else:
                t, r = timed[i]
                meter_id, ts, kw = r.meter_id, r.ts, r.kw
            state = meters[meter_id]
            meta = entries[i]
            flags = int(answers[i, 0])
            res = quiet_done(state, ts, kw, meta, c, t, flags, float(answers[i, 1]),
                             float(answers[i, 2]), int(answers[i, 3]), (calendar, closes[i]),
                             answers[i, 4:] if flags & RUNS else None)
            if res.events:
                self._events(res.events, state, meta, out)
            if res.score is not None:
                out.append(res.score)
            if res.profile is not None:
                out.append(res.profile)

    def _steps_each(self, timed: Sequence[tuple[float, Reading]], out: list[Any],
                    at: float | None, meta_of: MetaLookup, verdicts: Verdicts | None = None,
                    lane: Lane | None = None, quiet: bool = True) -> None:
        """The per-reading path: each reading through the watch and its meter, with what does
        not change within the batch looked up once (the caller has looked at a reload and
        the verdicts): ``meta_of`` gives each reading's registry entry; each meter stepped is
        taken off ``lane``, when given. ``quiet=False``: the lane left these readings, so
        no meter tries its quiet path first (``MeterState.step``)."""
        lateness = self.lateness_s
        settings = self.settings
        calendar = self.calendar
        default_iv = settings.interval_s
        meters = self.meters
        watch = self.watch
        seen = watch.seen
        power_fail = MeterStatus.POWER_FAIL
        append = out.append
        slot = watch.slot
        for t, r in timed:
            wm = t - lateness if at is None else at
            if wm > self.next_tick:
                self._catch_up(wm, out)
            meter_id = r.meter_id
            meta = meta_of(meter_id)
            # the watch's on_reading, with what the cell already knows
            if meta is not None and watch.cell is None:
                watch.cell = meta.grid_cell
            status = r.status
            feeder = seen(meter_id, t, watch_interval(meta, r.interval_s, default_iv),
                          bool(status) and power_fail in status)
            if feeder:
                out.extend(feeder)
            state = meters.get(meter_id)
            if state is None:
                state = meters[meter_id] = MeterState(meter_id)
            if verdicts is not None:  # the closed loop: managers' verdicts reach the meter
                for _, etype, kind, outcome, given in verdicts(meter_id):
                    state.verdict(etype, kind, outcome, t, settings=settings, given=given)
            # (a meter new to the cell takes the compiled quiet path too: its first reading,
            # quiet but for being its first, sets up its record and day there)
            res = state.step(r, meta, None, settings, calendar, t, quiet)
            if lane is not None:
                lane.drop(slot.get(meter_id))
            if res.events:
                self._events(res.events, state, meta, out)
            if res.score is not None:
                append(res.score)
            if res.profile is not None:
                append(res.profile)
            if wm > self.wm:
                if wm < self.next_tick:
                    self.wm = wm  # no boundary passed: nothing to tick
                else:
                    self._advance(wm, out)

    def _events(self, events: list[Event], state: MeterState, meta: MeterMeta | None,
                out: list[Any]) -> None:
        for ev in events:
            if is_candidate(ev):
                out.append(TheftCandidate(
                    ev, str(meta.customer_class) if meta else "residential",
                    tuple(float(x) for x in state.wd_curve),
                    tuple(float(x) for x in state.we_curve)))
            else:
                out.append(ev)

    def _catch_up(self, wm: float, out: list[Any]) -> None:
        """Tick every boundary the watermark passed before ``wm``, each at its own time: the
        silence checks that readings of other cells would have driven one by one."""
        if self.next_tick == -math.inf:
            return
        watch = self.watch
        tick_s = self.tick_s
        while self.next_tick < wm:
            b = self.next_tick
            if b < watch.due:  # no meter can have fallen silent yet
                n = _quiet_ticks(b, min(wm, watch.due), tick_s)
                b += (n - 1) * tick_s
                self._ticks_seen += n
            else:
                n = 0
            self.wm = max(self.wm, b)
            self.next_tick = b + tick_s
            if not n:
                self._tick(b, out)

    def _advance(self, wm: float, out: list[Any]) -> None:
        if wm <= self.wm:
            return
        if self.next_tick == -math.inf:
            self.next_tick = (wm // self.tick_s + 1) * self.tick_s
        self._catch_up(wm, out)
        self.wm = wm
        if wm >= self.next_tick:
            self._tick_at(wm, out)

    def _tick_at(self, wm: float, out: list[Any]) -> None:
        """The tick at the watermark ``wm`` itself, a boundary: the next one is set after it."""
        self.next_tick = (wm // self.tick_s + 1) * self.tick_s
        self._tick(wm, out)

    def _tick(self, now: float, out: list[Any]) -> None:
        self._ticks_seen += 1
        if now < self.watch.due:
            return  # no meter can have fallen silent yet
        for item in self.watch.tick(now):
            if isinstance(item, Silence):
                state = self.meters.get(item.meter_id)
                if state is not None:
                    out.extend(state.on_timer(item.now, self.meta(item.meter_id),
                                              settings=self.settings, quiet=item.quiet))
            else:
                out.append(item)

    def snapshot(self) -> bytes:
        if not self.snapshots:
            return b""
        state: tuple[Any, ...] = (self.watch.state(), self.wm, self.next_tick, self.parts,
                                  {m: s.to_bytes() for m, s in self.meters.items()}, self.held)
        if self._learned:  # (a warm start's horizons, while any is kept)
            state += ((self._learned, self._learned_until),)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def cell_builder(settings: DetectionSettings, calendar: Calendar, meta: MetaLookup,
                 tick_s: float, lateness_s: float, snapshots: bool = True,
                 warm: WarmStart | None = None, verdicts: Verdicts | None = None,
                 partitions: Sequence[str] = ()) -> Callable[[bytes | None], CellLogic]:
    def build(resume: bytes | None) -> CellLogic:
        return CellLogic(resume or None, settings, calendar, meta, tick_s, lateness_s,
                         snapshots, warm, verdicts, partitions)

    return build


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
        prof: LoadProfile = self.model.profile(value)
        segment = prof.segment
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
