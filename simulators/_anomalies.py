"""Injected anomalies: the plan (what, where, when) and its ground-truth labels.

A label covers the half-open interval ``[start, end)`` of nominal reading times; readings outside
it are untouched. ``type`` is the detector event type the anomaly should raise (spike, drop and
level shift are all ``abnormal_consumption``), ``shape`` what was injected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from gridwatch.simulators._spec import ANOMALY_SHAPES, FleetSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gridwatch.simulators._spec import SimMeter

#: Shape → detector event type.
EVENT_TYPE = dict(zip(ANOMALY_SHAPES, ANOMALY_SHAPES, strict=True)) | {
    "spike": "abnormal_consumption",
    "drop": "abnormal_consumption",
    "level_shift": "abnormal_consumption",
}

#: Shape → (shortest, longest) duration in minutes; at least one reading interval.
DURATION_MIN = {
    "spike": (1, 30),
    "drop": (120, 360),
    "level_shift": (720, 2880),
    "outage": (30, 240),
    "feeder_outage": (30, 180),
    "comm_loss": (60, 360),
    "register_frozen": (360, 1440),
    "tamper": (360, 1440),
    "possible_theft": (1440, 4320),
    "voltage_sag": (15, 60),
    "voltage_swell": (15, 60),
    "low_power_factor": (240, 720),
    "over_capacity_risk": (360, 1440),
    "clock_drift": (360, 1440),
}


def _params(shape: str, rng: np.random.Generator) -> dict[str, Any]:
    u = lambda lo, hi: round(float(rng.uniform(lo, hi)), 3)  # noqa: E731
    match shape:
        case "spike":
            return {"factor": u(3.0, 6.0)}
        case "drop":
            return {"factor": u(0.05, 0.3)}
        case "level_shift":
            return {"factor": u(1.8, 3.0)}
        case "possible_theft":
            return {"factor": u(0.3, 0.6)}
        case "voltage_sag":
            return {"factor": u(0.8, 0.88)}
        case "voltage_swell":
            return {"factor": u(1.11, 1.16)}
        case "low_power_factor":
            return {"pf": u(0.55, 0.72)}
        case "over_capacity_risk":
            return {"peak_of_contracted": u(0.95, 1.15)}
        case "clock_drift":
            return {"lag_s_per_hour": int(rng.integers(20, 121))}
        case "tamper":
            return {"status_flag": bool(rng.random() < 0.5)}
    return {}


@dataclass(frozen=True)
class Label:
    """Ground truth of one injected anomaly (one JSONL line)."""

    meter_id: str
    type: str
    shape: str
    start: datetime
    end: datetime
    customer_id: str | None = None
    grid_cell: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    meters: tuple[str, ...] = ()

    @property
    def event_type(self) -> str:
        return self.type

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "meter_id": self.meter_id,
            "type": self.type,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "end": self.end.isoformat().replace("+00:00", "Z"),
            "shape": self.shape,
            "event_type": self.type,
        }
        if self.customer_id:
            out["customer_id"] = self.customer_id
        if self.grid_cell:
            out["grid_cell"] = self.grid_cell
        if self.meters:
            out["meters"] = list(self.meters)
        return out | self.params

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> Label:
        known = {"meter_id", "type", "start", "end", "shape", "event_type", "customer_id",
                 "grid_cell", "meters"}
        return cls(
            meter_id=d["meter_id"], type=d["type"], shape=d.get("shape", d["type"]),
            start=datetime.fromisoformat(d["start"]), end=datetime.fromisoformat(d["end"]),
            customer_id=d.get("customer_id"), grid_cell=d.get("grid_cell"),
            meters=tuple(d.get("meters", ())),
            params={k: v for k, v in d.items() if k not in known})


def write_labels(labels: Iterable[Label], out: Path | IO[str]) -> int:
    """Write labels as JSONL; returns how many were written."""
    n = 0
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            return write_labels(labels, fh)
    for label in labels:
        out.write(json.dumps(label.to_json_dict(), separators=(",", ":")) + "\n")
        n += 1
    return n


def read_labels(path: Path) -> list[Label]:
    with path.open(encoding="utf-8") as fh:
        return [Label.from_json_dict(json.loads(line)) for line in fh if line.strip()]


@dataclass(frozen=True)
class Injection:
    """A planned anomaly in interval indices: meters ``idx`` over intervals ``[k0, k1)``."""

    shape: str
    idx: np.ndarray
    k0: int
    k1: int
    params: dict[str, Any]


def _counts(fleet: FleetSpec, rng: np.random.Generator) -> dict[str, int]:
    spec = fleet.anomalies
    days = fleet.duration.total_seconds() / 86400
    weights = {s: w for s, w in spec.mix.items() if w > 0 and s not in spec.counts}
    total_w = sum(spec.mix.get(s, 0) for s in ANOMALY_SHAPES) or 1.0
    out = {}
    for shape in ANOMALY_SHAPES:
        if shape in spec.counts:
            out[shape] = spec.counts[shape]
        elif shape in weights:
            expected = spec.rate_per_meter_day * fleet.n_meters * days * weights[shape] / total_w
            out[shape] = int(expected) + int(rng.random() < expected - int(expected))
        else:
            out[shape] = 0
    return out


def plan_anomalies(fleet: FleetSpec, meters: list[SimMeter],
                   seed: int) -> tuple[list[Label], list[Injection]]:
    """Choose meters, times and parameters of the injected anomalies. A meter carries at most
    one anomaly at a time (with a gap of two intervals between them), so every label describes
    the data exactly."""
    rng = np.random.default_rng([seed, 2])
    step_min = fleet.interval_min
    n_int = fleet.n_intervals
    k_min = int(fleet.anomalies.warmup / fleet.step)
    if k_min >= n_int:
        return [], []
    busy: dict[int, list[tuple[int, int]]] = {}
    by_cell: dict[str, list[int]] = {}
    for m in meters:
        by_cell.setdefault(m.grid_cell, []).append(m.index)
    cells = sorted(by_cell)

    def free(idx: list[int], k0: int, k1: int) -> bool:
        return all(not (k0 < b1 + 2 and b0 < k1 + 2) for i in idx for b0, b1 in busy.get(i, ()))

    labels: list[Label] = []
    plan: list[Injection] = []
    for shape, count in _counts(fleet, rng).items():
        lo, hi = DURATION_MIN[shape]
        for _ in range(count):
            for _attempt in range(50):
                dur = max(1, round(float(rng.uniform(lo, hi)) / step_min))
                k0 = int(rng.integers(k_min, n_int))
                k1 = min(k0 + dur, n_int)
                if shape == "feeder_outage":
                    cell = cells[int(rng.integers(len(cells)))]
                    idx = by_cell[cell]
                else:
                    m = meters[int(rng.integers(len(meters)))]
                    if shape == "tamper" and m.has_export:
                        continue
                    idx = [m.index]
                if free(idx, k0, k1):
                    break
            else:
                continue  # the fleet is too busy for another one; skip it
            for i in idx:
                busy.setdefault(i, []).append((k0, k1))
            params = _params(shape, rng)
            first = meters[idx[0]]
            if shape == "over_capacity_risk":
                params["contracted_kva"] = first.contracted_kva
            labels.append(Label(
                meter_id=first.meter_id, type=EVENT_TYPE[shape], shape=shape,
                start=fleet.start + k0 * fleet.step, end=fleet.start + k1 * fleet.step,
                customer_id=None if shape == "feeder_outage" else first.customer_id,
                grid_cell=first.grid_cell, params=params,
                meters=tuple(meters[i].meter_id for i in idx) if shape == "feeder_outage"
                else ()))
            plan.append(Injection(shape, np.array(idx, dtype=np.int64), k0, k1, params))
    order = sorted(range(len(labels)), key=lambda j: (labels[j].start, labels[j].meter_id,
                                                      labels[j].shape))
    return [labels[j] for j in order], [plan[j] for j in order]
