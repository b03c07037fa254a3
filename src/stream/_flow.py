"""The dataflow, top to bottom.

```
input ─┬─ telemetry ───────────────────────────────────────────────► points
       └─ readings ─┬──────────────────────────────────────────────► points
                    │               ┌ key: meter ┐
                    │               └─ meter (MeterState) ─┬─ events ─► events + points
                    │   silences ───┘                      ├─ scores ─► points
                    │                                      └─ days ─ key: class ─ segmenter
                    │                                              ├─ profiles ─► points + events
                    │                                              └─ key: segment ─ judge
                    │                                                         └─ theft ─► events
                    └─ key: clock ─ event clock (readings + ticks) ─ key: cell ─ cell watch
                          (readings + silences ─► key: meter above; feeder outages ─► events)
```
bytewax has no cycles, so the silence watch runs before the meter step and tells it, through
``Silence`` items, that it has gone quiet at the event-time watermark. Readings pass through the
clock and the cell watch so that readings, ticks and silences reach each step in event-time
order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from gridwatch._schemas import (
    DeviceTelemetry,
    Event,
    LoadProfile,
    MeterMeta,
    Reading,
    Score,
)
from gridwatch._settings import Settings
from gridwatch.models import Calendar, DailyProfile
from gridwatch.stream._devices import DeviceLookup, device_events
from gridwatch.stream._logic import (
    CellWatchLogic,
    EventClockLogic,
    MetaLookup,
    SegmenterLogic,
    SegmentJudgeLogic,
    TheftCandidate,
    meter_builder,
)

#: Meters without a grid cell are watched in this many hash shards (no feeder grouping).
SHARDS = 64


@dataclass
class Sinks:
    """Where the dataflow's results go; either may be left out.

    ``points`` receives ``Reading``, ``DeviceTelemetry``, ``Score``, ``LoadProfile`` and ``Event``
    objects for storage; ``events`` receives ``Event`` objects (and the daily ``LoadProfile``,
    whose tags the alert router matches on).
    """

    points: Sink[Any] | None = None
    events: Sink[Any] | None = None
    extra: dict[str, Sink[Any]] = field(default_factory=dict)


def meta_lookup(meta: Mapping[str, MeterMeta] | MetaLookup | None) -> MetaLookup:
    """One call shape for the three ways meter metadata may be given."""
    if meta is None:
        return lambda _m: None
    if callable(meta):
        return meta
    table = dict(meta)
    return table.get


def watch_key(meter_id: str, meta: MeterMeta | None) -> str:
    """The silence-watch key of a meter: its grid cell, else a hash shard."""
    if meta is not None and meta.grid_cell:
        return f"cell:{meta.grid_cell}"
    return f"shard:{zlib.crc32(meter_id.encode()) % SHARDS:02d}"


def build_flow(settings: Settings, source: Source[Any], sinks: Sinks,
               meta: Mapping[str, MeterMeta] | MetaLookup | None = None,
               flow_id: str = "gridwatch", devices: DeviceLookup | None = None) -> Dataflow:
    """Wire the detection dataflow: readings in, events/scores/profiles out."""
    det = settings.detection
    lookup = meta_lookup(meta)
    calendar = Calendar(det.timezone, det.holiday_country)

    flow = Dataflow(flow_id)
    inp = op.input("input", flow, source)
    kinds = op.branch("is_reading", inp, lambda x: isinstance(x, Reading))
    readings = kinds.trues
    telemetry = kinds.falses

    # Event time: one clock step passes readings on in order, with watermark ticks; the
    # per-cell watch passes them on with Silence items; the meter step sees both in order.
    def key_of(r: Reading) -> str:
        return watch_key(r.meter_id, lookup(r.meter_id))

    clock = op.stateful(
        "event_clock", op.key_on("key_clock", readings, lambda _r: "clock"),
        lambda resume: EventClockLogic(resume, float(det.interval_s), float(det.lateness_s),
                                       det.idle_advance_s, key_of))
    by_cell = op.map("by_cell", clock, lambda kv: kv[1])

    def cell_builder(resume: bytes | None) -> CellWatchLogic:
        return CellWatchLogic(resume, None, det, lookup)

    watch = op.map("watch_v", op.stateful("cell_watch", by_cell, cell_builder), lambda kv: kv[1])
    watch_out = op.branch("is_feeder_event", watch, lambda x: isinstance(x, Event))
    feeder_events = watch_out.trues

    # Per-meter detection.
    by_meter = op.key_on("key_meter", watch_out.falses, lambda x: x.meter_id)
    meter_out = op.stateful("meter", by_meter, meter_builder(det, calendar, lookup))
    results = op.map("meter_v", meter_out, lambda kv: kv[1])
    split = op.branch("to_segments", results,
                      lambda x: isinstance(x, DailyProfile | TheftCandidate))
    days = split.trues
    per_reading = split.falses
    meter_events = op.filter("is_event", per_reading, lambda x: isinstance(x, Event))
    scores = op.filter("is_score", per_reading, lambda x: isinstance(x, Score))

    # Segment models: segmentation per customer class, theft judged per segment.
    seg = op.stateful("segmenter", op.key_on("key_class", days, lambda p: p.customer_class),
                      lambda resume: SegmenterLogic(resume, det))
    seg_v = op.map("segmenter_v", seg, lambda kv: kv[1])
    seg_split = op.branch("is_profile", seg_v, lambda x: isinstance(x, LoadProfile))
    profiles = seg_split.trues
    samples = op.key_on("key_segment", seg_split.falses, lambda s: s.segment)
    judged = op.stateful("segment_judge", samples, lambda resume: SegmentJudgeLogic(resume, det))
    theft = op.map("judge_v", judged, lambda kv: kv[1])

    # Devices (rules, River models per kind) and load forecasts (gridwatch.stream._devices).
    dev = op.branch("is_device_event", device_events(telemetry, devices, det, readings=readings,
                                                     meta=lookup), lambda x: isinstance(x, Event))
    events = op.merge("events", meter_events, feeder_events, theft, dev.trues)
    if sinks.events is not None:
        op.output("to_router", op.merge("for_router", events, profiles), sinks.events)
    if sinks.points is not None:
        stored = op.merge("points", readings, telemetry, scores, profiles, events, dev.falses)
        op.output("to_storage", stored, sinks.points)
    for name, sink in sinks.extra.items():
        op.output(f"extra_{name}", op.merge(f"all_{name}", events, profiles, scores), sink)
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
                      Sinks(extra={"replay": TestingSink(out)}), meta, devices=devices)
    run_main(flow)
    return ReplayResult(
        events=[x for x in out if isinstance(x, Event)],
        profiles=[x for x in out if isinstance(x, LoadProfile)],
        scores=[x for x in out if isinstance(x, Score)],
        readings=sum(1 for x in items if isinstance(x, Reading)),
    )
