"""The dataflow, top to bottom.

```
input (per source partition: readings grouped by watch key + one watermark per batch)
  ├─ telemetry ──────────────────────────────────────────────────────────► points
  ├─ reading batches ─┬─────────────────────────────────────────────────► points
  │                   └─ key: cell ─┐
  └─ watermarks ─ key: clock ─ clock ─ ticks ─ key: cell ─┤
                                            cells (CellWatch + MeterState per meter)
                                             ├─ events (meters, feeder outages) ─► events + points
                                             ├─ scores ─► points
                                             └─ days ─┬─────────────────────────► days (tags)
                                                      └─ key: class ─ segmenter
                                                             ├─ profiles ─► points + events
                                                             └─ key: segment ─ judge
                                                                        └─ theft ─► events
```
A reading crosses between workers once, inside its cell's batch, to the worker of its cell
(not at all when a ``placement`` keys its cell to the worker that reads it, see
:mod:`gridwatch.stream._place`); the one ``clock`` key sees one small summary per source
batch (see :mod:`gridwatch.stream._partition`), never a reading. Each cell keeps its own event-time
watermark from its readings, so readings and the silence checks they drive stay in event-time
order within the cell; the clock's ticks move cells whose meters have all gone quiet (a feeder
outage). The trade-off: a cell whose readings trail the fleet's newest by more than
``detection.lateness_s`` may be ticked ahead of them by the clock, as with one global clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import FixedPartitionedSink, Sink

from gridwatch._schemas import (
    DeviceTelemetry,
    Event,
    LoadProfile,
    MeterMeta,
    Reading,
    Score,
)
from gridwatch._settings import Settings
from gridwatch.models import Calendar, DailyProfile, DetectionSettings, use_compiled
from gridwatch.stream._devices import DeviceLookup, device_events
from gridwatch.stream._logic import (
    MetaLookup,
    RegistryProbe,
    SegmenterLogic,
    SegmentJudgeLogic,
    TheftCandidate,
    Verdicts,
    WarmStart,
    cell_builder,
    no_registry,
)
from gridwatch.stream._partition import ClockLogic, ReadingBatch, Watermark, summarized
from gridwatch.stream._place import Placement

#: Meters without a grid cell are watched in this many hash shards (no feeder grouping).
SHARDS = 256


@dataclass
class Sinks:
    """Where the dataflow's results go; either may be left out.

    ``points`` receives ``Reading``, ``DeviceTelemetry``, ``Score``, ``LoadProfile`` and ``Event``
    objects for storage; ``events`` receives ``Event`` objects (and the daily ``LoadProfile``,
    whose tags the alert router matches on).
    """

    points: Sink[Any] | None = None
    events: Sink[Any] | None = None
    #: receives each finished meter-day (``DailyProfile``), for the customers' tags
    days: Sink[Any] | None = None
    extra: dict[str, Sink[Any]] = field(default_factory=dict)


def meta_lookup(meta: Mapping[str, MeterMeta] | MetaLookup | None) -> MetaLookup:
    """One call shape for the three ways meter metadata may be given."""
    if meta is None:
        return no_registry
    if callable(meta):
        return meta
    table = dict(meta)
    return table.get


def watch_key(meter_id: str, meta: MeterMeta | None, placement: Placement | None = None
              ) -> str:
    """The silence-watch key of a meter: its grid cell (the placed key of the cell when a
    placement names it), else a hash shard."""
    if meta is not None and meta.grid_cell:
        if placement is not None:
            return placement.key(meta.grid_cell)
        return f"cell:{meta.grid_cell}"
    return f"shard:{zlib.crc32(meter_id.encode()) % SHARDS:02d}"


class MeterFacts:
    """What the flow needs of each meter per reading, looked up once and kept: its watch key
    (:func:`watch_key`, the grouping's ``key_of``) and whether it is an industrial customer's
    (the readings :meth:`industrial` sends to the load forecasts).

    Kept per meter known to the registry: its facts, a tuple shared by every meter of its cell
    with the same flag (a dict entry a meter). A meter the registry does not know is looked up
    again at each reading (it may become known), and only its hash-shard key, a function of
    its id alone, is kept; without a registry (:func:`no_registry`) none can become known,
    and its facts are kept as a known meter's. :meth:`check`, once per batch, drops every
    kept fact when the registry was reloaded (:class:`RegistryProbe`). ``industrial_ids``
    holds the known meters of industrial customers: a batch of known meters none of which is
    one has no industrial readings, found without a look at each reading's facts.
    """

    def __init__(self, lookup: MetaLookup, placement: Placement | None = None) -> None:
        self.registry = RegistryProbe(lookup)
        #: no registry: a meter stays unknown, its facts are kept like a known meter's
        self._never = lookup is no_registry
        self.placement = placement
        #: meter id → (its watch key, an industrial customer's), for meters the registry knows
        self.known: dict[str, tuple[str, bool]] = {}
        #: the facts tuples, one per watch key and flag
        self._shared: dict[tuple[str, bool], tuple[str, bool]] = {}
        self.industrial_ids: set[str] = set()
        #: meter id → its hash-shard key, for meters the registry did not know when asked
        self.shards: dict[str, str] = {}

    def check(self) -> None:
        """Drop every kept fact if the registry was reloaded. Once per batch."""
        if self.registry.reloaded():
            self.known.clear()
            self.industrial_ids.clear()
            self._shared.clear()

    def _facts(self, meter_id: str) -> tuple[str, bool]:
        m = self.registry.look(meter_id)
        if m is None:
            key = self.shards.get(meter_id)
            if key is None:
                if self._never:
                    facts = (watch_key(meter_id, None), False)
                    facts = self.known[meter_id] = self._shared.setdefault(facts, facts)
                    return facts
                key = self.shards[meter_id] = watch_key(meter_id, None)
            return key, False
        key = watch_key(meter_id, m, self.placement)
        ind = bool(m.customer_id) and m.customer_class == "industrial"
        facts = (key, ind)
        facts = self._shared.setdefault(facts, facts)
        self.known[meter_id] = facts
        if ind:
            self.industrial_ids.add(meter_id)
        return facts

    def __call__(self, r: Reading) -> str:
        """The watch key of ``r``'s meter."""
        return self.of_meter(r.meter_id)

    def of_meter(self, meter_id: str) -> str:
        """The watch key of a meter."""
        kept = self.known.get(meter_id)
        return kept[0] if kept is not None else self._facts(meter_id)[0]

    def industrial_of(self, batches: list[ReadingBatch]) -> list[Reading]:
        """The readings of industrial customers in ``batches``, in order (one call for all the
        reading batches bytewax hands over at once)."""
        out: list[Reading] = []
        for b in batches:
            found = self.industrial(b)
            if found:
                out.extend(found)
        return out

    def industrial(self, b: ReadingBatch) -> list[Reading]:
        """The readings of industrial customers in ``b``, in order. Without a registry no
        meter is known to be an industrial customer's: none, at once; nor in a batch the
        grouping found plain (every meter known, none industrial: ``ReadingBatch.plain``)."""
        if self._never or b.plain:
            return []
        meter_ids = b.meter_ids()
        if not meter_ids:
            return []
        self.check()
        ids = set(meter_ids)
        if self.industrial_ids.isdisjoint(ids) and self.known.keys() >= ids:
            return []
        out = []
        known = self.known
        for i, meter_id in enumerate(meter_ids):
            kept = known.get(meter_id)
            if kept is None:
                kept = self._facts(meter_id)
            if kept[1]:
                out.append(b.reading(i))
        return out


def build_flow(settings: Settings, source: Source[Any], sinks: Sinks,
               meta: Mapping[str, MeterMeta] | MetaLookup | None = None,
               flow_id: str = "gridwatch", *, snapshots: bool = True,
               warm: WarmStart | None = None, devices: DeviceLookup | None = None,
               verdicts: Verdicts | None = None, partitions: Sequence[str] = (),
               placement: Placement | None = None,
               days_out: Sink[Any] | None = None) -> Dataflow:
    """Wire the detection dataflow: readings in, events/scores/profiles out.

    ``snapshots=False`` when the flow runs without recovery: the cells then skip serialising
    their meters at each epoch (bytewax asks for snapshots all the same, and drops them).
    ``warm``: where meters without state get their history at start (see ``CellLogic``).
    ``verdicts``: the managers' verdicts, handed to each meter's detectors (the closed loop).
    ``partitions``: every source partition of the cluster, when processes list only their own
    (a cell then holds a reading until each partition has delivered up to its time, see
    ``CellLogic``).
    ``placement``: which worker watches which grid cell (a cell it names is keyed so that
    bytewax sends it to that worker: the one reading the partition its meters arrive on).
    ``days_out``: the meters' finished days and theft candidates go to this sink instead of
    the segment stage, which then runs elsewhere over them (:func:`build_segment_flow`: a
    parallel replay's processes run apart and hand it their days)."""
    det = settings.detection
    lookup = meta_lookup(meta)
    calendar = Calendar(det.timezone, det.holiday_country)
    use_compiled(True)  # (loaded now, not on the first reading; GRIDWATCH_JIT=0 keeps it off)

    flow = Dataflow(flow_id)

    facts = MeterFacts(lookup, placement)
    inp = op.input("input", flow, summarized(source, facts))
    kinds = op.branch("is_batch", inp, lambda x: isinstance(x, ReadingBatch))
    batches = kinds.trues
    rest = op.branch("is_watermark", kinds.falses, lambda x: isinstance(x, Watermark))
    watermarks = rest.trues
    telemetry = rest.falses

    # Event time: the partitions' summaries meet at one small clock; its ticks and the reading
    # batches meet at their cell, where the watch and the meters run over them in order.
    clock = op.stateful(
        "event_clock", op.key_on("key_clock", watermarks, lambda _w: "clock"),
        lambda resume: ClockLogic(resume, float(det.interval_s), float(det.lateness_s),
                                  det.idle_advance_s, release_ticks=bool(partitions)))
    ticks = op.map("ticks", clock, lambda kv: kv[1])
    by_cell = op.merge("to_cells", op.key_on("key_cell", batches, lambda b: b.key), ticks)
    def cells_told(parts: Sequence[str]) -> Any:
        return cell_builder(det, calendar, lookup, float(det.interval_s), float(det.lateness_s),
                            snapshots, warm, verdicts, parts)

    if placement is not None and placement.exclusive and partitions:
        # Placed cells hear from their own process's partition only: they step readings as
        # they come; the other cells wait for every partition, as without a placement.
        placed = op.branch("placed_cells", by_cell, lambda kv: placement.is_placed(kv[0]))
        cells = op.merge(
            "cells_all",
            op.stateful_batch("cells", cast(Any, placed.falses), cells_told(partitions)),
            op.stateful_batch("cells_placed", cast(Any, placed.trues), cells_told(())))
    else:
        cells = op.stateful_batch("cells", by_cell, cells_told(partitions))
    results = op.map("cells_v", cells, lambda kv: kv[1])
    split = op.branch("to_segments", results,
                      lambda x: isinstance(x, DailyProfile | TheftCandidate))
    days = split.trues
    per_reading = split.falses
    events_here = op.filter("is_event", per_reading, lambda x: isinstance(x, Event))
    scores = op.filter("is_score", per_reading, lambda x: isinstance(x, Score))

    # Segment models: segmentation per customer class, theft judged per segment.
    # (with ``days_out``, neither load profiles nor judged events are made here)
    made: list[Stream[Any]] = []  # load profiles
    judged: list[Stream[Any]] = []  # the events the segment judges let through
    if days_out is None:
        profiles, theft = _segment_stage(days, det)
        made, judged = [profiles], [theft]
    else:
        op.output("days_out", days, days_out)

    # Devices (rules, River models per kind) and load forecasts of transformers and industrial
    # customers (gridwatch.stream._devices); only industrial customers' readings leave their
    # batches for it.
    # The meters' facts (watch key, industrial or not) are kept across batches by ``facts``,
    # checked against the registry once per batch; a batch of meters all known to be
    # something other than industrial customers is passed over without a look at each reading.
    dev = op.branch("is_device_event", device_events(
        telemetry, devices, det,
        readings=op.flat_map_batch("industrial_readings", batches, facts.industrial_of),
        meta=lookup), lambda x: isinstance(x, Event))
    events = op.merge("events", events_here, *judged, dev.trues)
    if sinks.events is not None:
        op.output("to_router", op.merge("for_router", events, *made), sinks.events)
    if sinks.points is not None:
        # A sink that says it takes batches gets the reading batches whole.
        readings = batches if getattr(sinks.points, "takes_batches", False) else \
            op.flat_map("readings", batches, lambda b: b.readings)
        _store(sinks.points, op.merge("points", readings, telemetry, scores, *made, events,
                                      dev.falses))
    if sinks.days is not None:
        op.output("to_tags", op.filter("is_day", days, lambda x: isinstance(x, DailyProfile)),
                  sinks.days)
    for name, sink in sinks.extra.items():
        op.output(f"extra_{name}", op.merge(f"all_{name}", events, *made, scores), sink)
    return flow


def _segment_stage(days: Stream[Any], det: DetectionSettings) -> tuple[Stream[Any], Stream[Any]]:
    """The segment models over the meters' finished days and theft candidates: segmentation
    per customer class, candidates judged per segment. Returns (load profiles, the events
    the judges let through)."""
    seg = op.stateful("segmenter", op.key_on("key_class", days, lambda p: p.customer_class),
                      lambda resume: SegmenterLogic(resume, det))
    seg_v = op.map("segmenter_v", seg, lambda kv: kv[1])
    seg_split = op.branch("is_profile", seg_v, lambda x: isinstance(x, LoadProfile))
    samples = op.key_on("key_segment", seg_split.falses, lambda s: s.segment)
    judged = op.stateful("segment_judge", samples, lambda resume: SegmentJudgeLogic(resume, det))
    return seg_split.trues, op.map("judge_v", judged, lambda kv: kv[1])


def _store(points: Any, stored: Stream[Any]) -> None:
    """``stored`` to the storage sink; a partitioned sink's items keyed with the partition of
    this process, so that they stay where they were made."""
    if isinstance(points, FixedPartitionedSink):
        part_key = str(getattr(points, "part_key", "p0000"))
        stored = op.key_on("storage_part", stored, lambda _x: part_key)
    op.output("to_storage", stored, points)


def build_segment_flow(settings: Settings, source: Source[Any], sinks: Sinks,
                       flow_id: str = "gridwatch-segments") -> Dataflow:
    """The segment stage alone, over the finished days and theft candidates ``source``
    gives (what :func:`build_flow` with ``days_out`` hands on): the events its judges let
    through go to ``sinks.events`` and, with the load profiles, to ``sinks.points``."""
    flow = Dataflow(flow_id)
    profiles, theft = _segment_stage(op.input("days", flow, source), settings.detection)
    if sinks.events is not None:
        op.output("to_router", op.merge("for_router", theft, profiles), sinks.events)
    if sinks.points is not None:
        _store(sinks.points, op.merge("points", profiles, theft))
    for name, sink in sinks.extra.items():
        op.output(f"extra_{name}", op.merge(f"all_{name}", theft, profiles), sink)
    return flow


@dataclass
class ReplayResult:
    """What a replay produced, in output order."""

    events: list[Event]
    profiles: list[LoadProfile]
    scores: list[Score]
    readings: int

    def firing(self, etype: str | None = None) -> list[Event]:
        return [e for e in self.events
                if e.state == "firing" and (etype is None or e.type == etype)]


def run_replay(settings: Settings, readings: Iterable[Reading | DeviceTelemetry],
               meta: Mapping[str, MeterMeta] | MetaLookup | None = None,
               *, batch_size: int = 1000, devices: DeviceLookup | None = None) -> ReplayResult:
    """Run the same flow over readings with bytewax's ``TestingSource`` and ``run_main``, and
    return what it raised. Readings should be in event-time order (as a recorded file is)."""
    from bytewax.testing import TestingSink, TestingSource, run_main

    items = list(readings)
    out: list[Any] = []
    flow = build_flow(settings, TestingSource(items, batch_size=batch_size),
                      Sinks(extra={"replay": TestingSink(out)}), meta, snapshots=False,
                      devices=devices)
    run_main(flow)
    return ReplayResult(
        events=[x for x in out if isinstance(x, Event)],
        profiles=[x for x in out if isinstance(x, LoadProfile)],
        scores=[x for x in out if isinstance(x, Score)],
        readings=sum(1 for x in items if isinstance(x, Reading)),
    )
