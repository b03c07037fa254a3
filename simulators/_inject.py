"""Faults injected into recorded meter data, with ground-truth labels.

The field's faults, written into real load so that detection is measured on real backgrounds:
a spike (several times the usual load for one or two hours), an outage (a last-gasp reading with
the ``power_fail`` status, then no reading for hours), a communication loss (no reading), a drop
to about zero, a stuck register (one value repeated), a level shift up or down, a sustained
theft-like reduction (30–50 % of the recorded load for days) and an over-capacity ramp where the
contracted capacity is known.

Everything is seeded: the same readings, mix and seed give the same rows and labels. Each label
covers the half-open interval ``[start, end)`` of reading times it changed; every row outside
every label is left as recorded. A meter carries at most one injected fault at a time, with at
least ``gap`` of untouched data between two, so a detector can settle in between.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np

from gridwatch.simulators._anomalies import Label

__all__ = [
    "INJECT_SHAPES",
    "InjectResult",
    "Mix",
    "Series",
    "StatusCsvTarget",
    "chunks",
    "inject",
    "load_series",
    "rows",
    "write_series",
]


@dataclass(frozen=True)
class _Shape:
    type: str  # the engine's event type
    kind: str | None  # evidence kind the engine reports (abnormal_consumption)
    minutes: tuple[float, float]  # shortest, longest duration


#: The injectable shapes: event type, kind and duration range (minutes).
INJECT_SHAPES: dict[str, _Shape] = {
    "spike": _Shape("abnormal_consumption", "spike", (60, 120)),
    "drop": _Shape("abnormal_consumption", "drop", (120, 360)),
    "level_shift_up": _Shape("abnormal_consumption", "level_shift_up", (720, 2880)),
    "level_shift_down": _Shape("abnormal_consumption", "level_shift_down", (720, 2880)),
    "outage": _Shape("outage", None, (120, 480)),
    "comm_loss": _Shape("comm_loss", None, (120, 480)),
    "stuck": _Shape("stuck_reading", None, (360, 1440)),
    "theft": _Shape("possible_theft", None, (2 * 1440, 6 * 1440)),
    "over_capacity": _Shape("over_capacity_risk", None, (120, 360)),
}
_ALIASES = {
    "zero": "drop", "level_shift": "level_shift_up", "level_up": "level_shift_up",
    "level_down": "level_shift_down", "possible_theft": "theft", "stuck_reading": "stuck",
    "over_capacity_risk": "over_capacity",
}
_METER_MONTH_S = 30 * 86_400


@dataclass(frozen=True)
class Mix:
    """How many faults of each shape: a count over the whole file (``spike=10``) or a rate per
    meter-month (``spike=0.5/mm``)."""

    counts: Mapping[str, int] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Mix:
        counts: dict[str, int] = {}
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = _ALIASES.get(name.strip(), name.strip())
            if not sep or name not in INJECT_SHAPES:
                raise ValueError(f"inject mix {part!r}: use shape=N or shape=R/mm with shape one "
                                 f"of {', '.join(INJECT_SHAPES)}")
            value = value.strip()
            try:
                if value.endswith("/mm"):
                    rates[name] = float(value[:-3])
                    if not (rates[name] >= 0 and math.isfinite(rates[name])):
                        raise ValueError
                else:
                    counts[name] = int(value)
                    if counts[name] < 0:
                        raise ValueError
            except ValueError:
                raise ValueError(f"inject mix {part!r}: {value!r} is not a count >= 0 or a "
                                 "rate per meter-month like 0.5/mm") from None
        return cls(counts, rates)

    def shapes(self) -> list[str]:
        return [s for s in INJECT_SHAPES if s in self.counts or s in self.rates]


@dataclass
class Series:
    """One meter's readings in time order: epoch seconds, kW and status flags (``;``-joined,
    empty for none). ``keep`` is False for rows an injection removed."""

    meter_id: str
    ts: np.ndarray
    kw: np.ndarray
    status: list[str] = field(default_factory=list)
    keep: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))

    def __post_init__(self) -> None:
        self.ts = np.asarray(self.ts, dtype=np.float64)
        self.kw = np.asarray(self.kw, dtype=np.float64)
        if not self.status:
            self.status = [""] * len(self.ts)
        if len(self.keep) != len(self.ts):
            self.keep = np.ones(len(self.ts), dtype=bool)

    def copy(self) -> Series:
        return Series(self.meter_id, self.ts.copy(), self.kw.copy(), list(self.status),
                      self.keep.copy())

    @property
    def interval_s(self) -> float:
        """The most common step between readings (0 with fewer than two)."""
        d = np.diff(self.ts)
        d = d[d > 0]
        if not len(d):
            return 0.0
        vals, n = np.unique(d, return_counts=True)
        return float(vals[int(np.argmax(n))])


@dataclass
class InjectResult:
    series: dict[str, Series]
    labels: list[Label]
    #: Faults asked for but not placed (no free stretch of data long enough), by shape.
    skipped: dict[str, int]


def _params(shape: str, rng: np.random.Generator) -> dict[str, Any]:
    u = lambda lo, hi: round(float(rng.uniform(lo, hi)), 3)  # noqa: E731
    match shape:
        case "spike":
            return {"factor": u(4.0, 6.0)}
        case "drop":
            return {"factor": u(0.0, 0.1)}
        case "level_shift_up":
            return {"factor": u(1.8, 3.0)}
        case "level_shift_down":
            return {"factor": u(0.2, 0.45)}
        case "theft":
            return {"factor": u(0.3, 0.5)}
        case "over_capacity":
            return {"peak_of_contracted": u(0.95, 1.15)}
    return {}


def _apply(s: Series, shape: str, k0: int, k1: int, p: dict[str, Any], typical: float,
           capacity_kva: float | None) -> None:
    kw = s.kw
    match shape:
        case "spike":
            kw[k0:k1] = np.round(np.maximum(kw[k0:k1], typical) * p["factor"], 3)
        case "drop" | "level_shift_up" | "level_shift_down" | "theft":
            kw[k0:k1] = np.round(kw[k0:k1] * p["factor"], 3)
        case "stuck":
            value = kw[k0] if kw[k0] > 0.01 else typical
            p["value"] = round(float(value), 3)
            kw[k0:k1] = p["value"]
        case "outage":
            kw[k0] = 0.0
            s.status[k0] = "power_fail"
            s.keep[k0 + 1:k1] = False
        case "comm_loss":
            s.keep[k0:k1] = False
        case "over_capacity":
            assert capacity_kva is not None
            target = p["peak_of_contracted"] * capacity_kva
            frac = (np.arange(k0, k1) - k0 + 1) / (k1 - k0)
            kw[k0:k1] = np.round(np.maximum(kw[k0:k1], kw[k0:k1] + frac * (target - kw[k0:k1])),
                                 3)
        case _:
            raise ValueError(f"unknown shape {shape!r}")


def _iso(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def inject(series: Mapping[str, Series], mix: Mix, seed: int, *,
           warmup: timedelta = timedelta(days=14), gap: timedelta = timedelta(days=2),
           within: timedelta | None = None,
           capacity_kva: Mapping[str, float] | None = None) -> InjectResult:
    """Inject ``mix`` into copies of ``series`` (the input is not changed).

    A fault starts at least ``warmup`` after the meter's first reading (and, with ``within``, at
    most ``warmup + within`` after it: faults of a new meter) and lies on a stretch of
    evenly spaced readings (no gap in the recorded data). Meters are drawn in proportion to their
    readings, so rates are per meter-month of data. ``over_capacity`` needs ``capacity_kva``
    (contracted capacity in kVA; the ramp is written in kW at unit power factor) for the
    meters it may use; others are not chosen for it.
    """
    out = {m: s.copy() for m, s in sorted(series.items())}
    caps = dict(capacity_kva or {})
    meters = sorted(out)
    # interval, typical kW, first and last row a fault may start at
    info: dict[str, tuple[float, float, int, int]] = {}
    for m in meters:
        s = out[m]
        step = s.interval_s
        if step <= 0:
            continue
        pos = s.kw[s.kw > 0]
        typical = float(np.median(pos)) if len(pos) else 0.1
        first = int(np.searchsorted(s.ts, s.ts[0] + warmup.total_seconds()))
        last = len(s.ts) if within is None else int(np.searchsorted(
            s.ts, s.ts[0] + (warmup + within).total_seconds(), side="right"))
        info[m] = (step, max(typical, 0.05), max(first, 1), last)
    data_s = sum(out[m].ts[-1] - out[m].ts[0] for m in info)
    busy: dict[str, list[tuple[float, float]]] = {}
    labels: list[Label] = []
    skipped: dict[str, int] = {}
    for si, shape in enumerate(mix.shapes()):
        spec = INJECT_SHAPES[shape]
        rng = np.random.default_rng([seed, 11, si])
        n = mix.counts.get(shape, 0)
        if shape in mix.rates:
            expected = mix.rates[shape] * data_s / _METER_MONTH_S
            n += int(expected) + int(rng.random() < expected - int(expected))
        pool = [m for m in info if shape != "over_capacity" or m in caps]
        weights = np.array([max(min(info[m][3], len(out[m].ts)) - info[m][2], 0) for m in pool],
                           dtype=float)
        for _ in range(n):
            placed = False
            for _attempt in range(100 if weights.sum() > 0 else 0):
                m = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
                s = out[m]
                step, typical, first, last = info[m]
                dur = max(1, round(float(rng.uniform(*spec.minutes)) * 60 / step))
                end = min(last, len(s.ts) - dur - 1)
                if first >= end:
                    continue
                k0 = int(rng.integers(first, end))
                k1 = k0 + dur
                t0, t1 = s.ts[k0], s.ts[k0] + dur * step
                # evenly spaced, nothing missing, one reading after the window
                if not (np.allclose(np.diff(s.ts[k0 - 1:k1 + 1]), step)):
                    continue
                g = gap.total_seconds()
                if any(t0 < b1 + g and b0 < t1 + g for b0, b1 in busy.get(m, ())):
                    continue
                params = _params(shape, rng)
                if spec.kind:
                    params["kind"] = spec.kind
                if shape == "over_capacity":
                    params["contracted_kva"] = caps[m]
                _apply(s, shape, k0, k1, params, typical, caps.get(m))
                busy.setdefault(m, []).append((t0, t1))
                labels.append(Label(meter_id=m, type=spec.type, shape=shape, start=_iso(t0),
                                    end=_iso(t1), params=params))
                placed = True
                break
            if not placed:
                skipped[shape] = skipped.get(shape, 0) + 1
    labels.sort(key=lambda lb: (lb.start, lb.meter_id, lb.shape))
    return InjectResult(out, labels, skipped)


def load_series(readings: Iterable[Any]) -> dict[str, Series]:
    """Per-meter series from readings (objects with ``meter_id``, ``ts``, ``kw``, ``status``),
    sorted by time per meter (stable: repeated timestamps keep their order)."""
    ts: dict[str, list[float]] = {}
    kw: dict[str, list[float]] = {}
    st: dict[str, list[str]] = {}
    for r in readings:
        m = r.meter_id
        if m not in ts:
            ts[m], kw[m], st[m] = [], [], []
        ts[m].append(r.ts.timestamp())
        kw[m].append(r.kw)
        st[m].append(";".join(getattr(r, "status", ()) or ()))
    out = {}
    for m in ts:
        t = np.asarray(ts[m], dtype=np.float64)
        order = np.argsort(t, kind="stable")
        out[m] = Series(m, t[order], np.asarray(kw[m], dtype=np.float64)[order],
                        [st[m][i] for i in order])
    return out


def rows(series: Mapping[str, Series]) -> Iterator[tuple[float, str, float, str]]:
    """``(epoch s, meter, kW, status)`` of every kept row, in time order (then meter)."""
    ts_parts, idx_parts, row_parts = [], [], []
    names = sorted(series)
    for i, m in enumerate(names):
        s = series[m]
        keep = np.flatnonzero(s.keep)
        ts_parts.append(s.ts[keep])
        idx_parts.append(np.full(len(keep), i, dtype=np.int64))
        row_parts.append(keep)
    if not ts_parts:
        return
    ts = np.concatenate(ts_parts)
    idx = np.concatenate(idx_parts)
    row = np.concatenate(row_parts)
    for j in np.lexsort((row, idx, ts)):
        s = series[names[idx[j]]]
        k = int(row[j])
        yield float(ts[j]), s.meter_id, float(s.kw[k]), s.status[k]


def _ts_text(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _open_out(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8",
                                newline="")
    return path.open("w", encoding="utf-8", newline="")


def write_series(series: Mapping[str, Series], path: Path) -> int:
    """Write ``meter_id,timestamp,kw,status`` CSV (gzip-compressed for ``.gz``; the same rows
    give the same bytes); returns the rows written."""
    n = 0
    with _open_out(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("meter_id", "timestamp", "kw", "status"))
        for t, m, kw, status in rows(series):
            w.writerow((m, _ts_text(t), repr(round(kw, 4)), status))
            n += 1
    return n


class StatusCsvTarget:
    """The simulator's CSV target for injected data: ``meter_id,timestamp,kw,status``
    (gzip-compressed for ``.gz``)."""

    def __init__(self, out: Path) -> None:
        self._fh = _open_out(out)
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._csv.writerow(("meter_id", "timestamp", "kw", "status"))

    def write(self, rows: Sequence[tuple[str, str, str, dict[str, Any]]]) -> int:
        self._csv.writerows((d["meter_id"], d["ts"], d["kw"], ";".join(d.get("status", ())))
                            for *_, d in rows)
        return len(rows)

    def close(self) -> None:
        self._fh.close()


def chunks(series: Mapping[str, Series], region: str = "replay", size: int = 1000
           ) -> Iterator[tuple[datetime, list[tuple[str, str, str, dict[str, Any]]]]]:
    """Rows for the simulator's targets (MQTT, JSONL), grouped by timestamp."""
    chunk: list[tuple[str, str, str, dict[str, Any]]] = []
    last: float | None = None
    for t, m, kw, status in rows(series):
        if chunk and (t != last or len(chunk) >= size):
            assert last is not None
            yield _iso(last), chunk
            chunk = []
        last = t
        d: dict[str, Any] = {"meter_id": m, "ts": _ts_text(t), "kw": round(kw, 4)}
        if status:
            d["status"] = status.split(";")
        chunk.append((region, region, m, d))
    if chunk and last is not None:
        yield _iso(last), chunk


def describe(labels: Sequence[Label]) -> dict[str, int]:
    out: dict[str, int] = {}
    for lb in labels:
        out[lb.shape] = out.get(lb.shape, 0) + 1
    return out
