"""Tags of a simulated fleet: the fleet's readings through the per-meter models (the same
``MeterState`` the dataflow keeps), its daily profiles and events into the tag profiler, and
the segments as the segment model names them from their centroids. ``gridwatch tags profile``
runs it; it is how the tags-per-customer figure of the demo fleet is measured."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from gridwatch._registry import Registry
from gridwatch.tags._engine import TagHit
from gridwatch.tags._profiler import TagProfiler, all_have_reasons, median_tags
from gridwatch.tags._store import TagStore

__all__ = ["FleetTags", "profile_fleet"]


@dataclass
class FleetTags:
    customers: int
    meters: int
    readings: int
    profiles: int
    events: int
    day: date
    median_tags: float
    min_tags: int
    max_tags: int
    all_reasons: bool
    distinct_tags: int
    by_dimension: dict[str, float]
    hits: dict[str, list[TagHit]] = field(repr=False, default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    registry: Registry | None = field(repr=False, default=None)


def profile_fleet(fleet_path: str | Path, *, days: int | None, catalogue: str | Path,
                  tariff: str | Path, store: TagStore | None = None,
                  seed: int | None = None) -> FleetTags:
    from gridwatch.models._calendar import Calendar
    from gridwatch.models._config import DetectionSettings
    from gridwatch.models._meter import MeterState
    from gridwatch.models._segment import Segmenter
    from gridwatch.simulators._fleet import Fleet
    from gridwatch.simulators._registry import registry_dict

    overrides: dict[str, Any] = {"duration": f"{days}d"} if days else {}
    fleet = Fleet.load(fleet_path, **overrides)
    meters = fleet.meters(seed)
    registry = Registry.model_validate(registry_dict(meters))
    settings = DetectionSettings(timezone=fleet.timezone, holiday_country=fleet.country)
    cal = Calendar(settings.timezone, settings.holiday_country)
    prof = TagProfiler.from_config(catalogue, tariff, registry=registry, store=store,
                                   tz=cal.tz)
    metas = {m.meter_id: m.meta() for m in meters}
    states = {m.meter_id: MeterState(m.meter_id) for m in meters}
    segmenters: dict[str, Segmenter] = {}
    seg_of: dict[str, str] = {}
    by_day: dict[Any, list[Any]] = defaultdict(list)
    events: list[Any] = []
    readings, _labels = fleet.generate(seed)
    n = 0
    for r in readings:
        n += 1
        res = states[r.meter_id].step(r, metas.get(r.meter_id), None, settings, cal)
        events.extend(res.events)
        p = res.profile
        if p is not None:
            by_day[p.day].append(p)
            cls = p.customer_class
            seg = segmenters.setdefault(cls, Segmenter(cls))
            label, _ = seg.assign(p)
            seg_of[p.customer_id or p.meter_id] = label
    # the segment model names each segment from its centroid (``segment_name``)
    prof.segments.update(seg_of)
    # day by day, as the engine would: the day's profiles and alerts, then the day's tags
    # (so the history says when each tag appeared and left)
    events.sort(key=lambda e: e.onset)
    hits: dict[str, list[TagHit]] = {}
    today = fleet.start.astimezone(cal.tz).date()
    k = 0
    for day in sorted(by_day):
        today = day.astimezone(cal.tz).date()
        prof.observe(by_day[day])
        upto = k
        while upto < len(events) and events[upto].onset.astimezone(cal.tz).date() <= today:
            upto += 1
        prof.observe_events(events[k:upto])
        k = upto
        hits = prof.commit(today)
    prof.observe_events(events[k:])
    counts = [len(v) for v in hits.values()]
    dims: dict[str, list[int]] = defaultdict(list)
    for v in hits.values():
        per: dict[str, int] = defaultdict(int)
        for h in v:
            per[h.dimension] += 1
        for d in ("basic", "usage", "value", "needs"):
            dims[d].append(per[d])
    import statistics

    return FleetTags(
        customers=len(hits), meters=len(meters), readings=n,
        profiles=sum(len(v) for v in by_day.values()), events=len(events), day=today,
        median_tags=median_tags(hits), min_tags=min(counts, default=0),
        max_tags=max(counts, default=0), all_reasons=all_have_reasons(hits),
        distinct_tags=len({h.tag for v in hits.values() for h in v}),
        by_dimension={d: float(statistics.median(x)) for d, x in dims.items()},
        hits=hits, segments=dict(prof.segments), registry=registry)
