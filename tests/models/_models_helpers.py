"""Helpers of the detection tests: a synthetic household, readings, series, a run of one meter,
a slice of the demo fleet, a slice of real household load.
Imported by name (``from _models_helpers import reading``): the folder is on the import path
(``pythonpath``); the fixtures are in ``conftest.py``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch import Event, MeterMeta, Reading
from gridwatch.models import Calendar, DetectionSettings, MeterState, _quiet

DEMO = Path(__file__).resolve().parents[2] / "config" / "fleets" / "demo.yaml"
SGSC45 = Path("/work/shared/datasets/sgsc45/readings.csv.gz")
if not SGSC45.exists():
    SGSC45 = Path(__file__).resolve().parents[3] / "shared/datasets/sgsc45/readings.csv.gz"
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
FAR = datetime(2035, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
WEEK = 96 * 7


def residential(i: int, ts: datetime, rng: np.random.Generator) -> float:
    h = ts.hour + ts.minute / 60
    return 1.0 + 0.8 * math.exp(-(((h - 19) / 2) ** 2)) + rng.normal(0, 0.05)


def reading(meter: str, ts: datetime, kw: float, **kw_extra: Any) -> Reading:
    return Reading.model_validate({"meter_id": meter, "ts": ts, "kw": kw, **kw_extra},
                                  context={"now": FAR})


def series(n: int, kw: Callable[[int, datetime, np.random.Generator], float] = residential,
           *, meter: str = "m1", start: datetime = T0, step: timedelta = STEP, seed: int = 7,
           extra: Callable[[int, datetime], dict[str, Any]] | None = None) -> list[Reading]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ts = start + i * step
        fields = extra(i, ts) if extra else {}
        out.append(reading(meter, ts, round(kw(i, ts, rng), 4), **fields))
    return out


def run(readings: Iterable[Reading], meta: MeterMeta | None = None,
        settings: DetectionSettings | None = None,
        state: MeterState | None = None) -> tuple[MeterState, list[Event]]:
    s = settings or DetectionSettings()
    cal = Calendar(s.timezone, s.holiday_country)
    events: list[Event] = []
    st = state
    for r in readings:
        if st is None:
            st = MeterState(r.meter_id)
        events.extend(st.update(r, meta, settings=s, calendar=cal))
    assert st is not None
    return st, events


def of_type(events: list[Event], etype: str, state: str = "firing") -> list[Event]:
    return [e for e in events if e.type == etype and e.state == state]


def demo_slice(warmup: str) -> tuple[Any, dict[str, MeterMeta], list[Reading], list[Any]]:
    """Four days of 56 of the demo fleet's customers (every class, three-phase meters, export,
    contracted capacities), anomalies injected after ``warmup`` (0.4 a meter-day): the fleet,
    its meters' registry entries, its readings in time order and its labels."""
    from gridwatch.simulators import Fleet

    fleet = Fleet.load(DEMO, duration="4d",
                       customers={"residential": {"count": 40}, "commercial": {"count": 10},
                                  "industrial": {"count": 2}, "agricultural": {"count": 4}},
                       anomalies={"warmup": warmup, "rate_per_meter_day": 0.4})
    metas = {m.meter_id: m.meta() for m in fleet.meters(fleet.seed)}
    readings, labels = fleet.generate(fleet.seed)
    return fleet, metas, sorted(readings, key=lambda r: r.ts), list(labels)


@contextmanager
def compiled(on: bool) -> Iterator[None]:
    """The compiled detection path (quiet kernel, close, segmenter) on or off within the block,
    as it was after."""
    was = _quiet.use_compiled(on)
    try:
        yield
    finally:
        _quiet.use_compiled(was)


def sgsc45_slice(households: int, limit: int) -> list[Reading]:
    """The first ``limit`` readings of the first ``households`` households of the real set
    (``sgsc45``, in time order), read as ``gridwatch replay`` reads it."""
    from gridwatch.ingest import iter_readings_file

    assert SGSC45.exists(), f"the sgsc45 set is missing: {SGSC45} (the shared datasets)"
    out: list[Reading] = []
    chosen: set[str] = set()
    for r in iter_readings_file(SGSC45):
        if not isinstance(r, Reading):
            continue
        if r.meter_id not in chosen:
            if len(chosen) == households:
                continue
            chosen.add(r.meter_id)
        out.append(r)
        if len(out) == limit:
            break
    return out
