"""Event-level evaluation of detections against labelled anomalies, and the ``gridwatch
evaluate`` command body.

A label ``{"meter_id", "type", "start", "end"}`` is detected when an event of the same type about
the same meter (or naming it, as a feeder outage does) is raised between ``start`` and ``end``
plus a grace period, or has its onset inside the labelled span. An event that matches no label is
a false alarm. Reported per type: precision, recall, F1, median and 90th-percentile detection
delay (``raised_at - start``) and false alarms per 1,000 meter-days.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch._schemas import Event, Reading


@dataclass(frozen=True, slots=True)
class Label:
    meter_id: str
    type: str
    start: datetime
    end: datetime


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def load_labels(path: Path) -> list[Label]:
    """Labels from JSONL; a bad line raises ``ValueError`` naming the line."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(Label(str(d["meter_id"]), str(d["type"]), _parse_time(d["start"]),
                                 _parse_time(d.get("end") or d["start"])))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{no}: not a label ({exc})") from None
    return out


@dataclass
class TypeReport:
    type: str
    labels: int = 0
    detected: int = 0
    events: int = 0
    true_events: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    delay_median_min: float | None = None
    delay_p90_min: float | None = None
    false_alarms_per_1000_meter_days: float | None = None

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _matches(ev: Event, lab: Label, grace: timedelta) -> bool:
    if ev.type != lab.type:
        return False
    if lab.meter_id != ev.meter_id and lab.meter_id not in ev.meters:
        return False
    raised_in = lab.start <= ev.raised_at <= lab.end + grace
    onset_in = lab.start - grace <= ev.onset <= lab.end
    return raised_in or onset_in


def evaluate_events(events: Iterable[Event], labels: Iterable[Label], meter_days: float,
                    grace: timedelta = timedelta(hours=2)) -> dict[str, TypeReport]:
    """Per-type event precision/recall/F1, detection delays and false-alarm rate, plus
    ``"all"``."""
    firing = [e for e in events if e.state == "firing"]
    labs = list(labels)
    by_meter: dict[str, list[Label]] = defaultdict(list)
    for lab in labs:
        by_meter[lab.meter_id].append(lab)
    types = sorted({e.type for e in firing} | {lab.type for lab in labs})
    reports = {t: TypeReport(t) for t in [*types, "all"]}
    first_hit: dict[int, datetime] = {}
    for ev in firing:
        cands = [lab for m in (ev.meter_id, *ev.meters) for lab in by_meter.get(m, [])]
        hits = [lab for lab in cands if _matches(ev, lab, grace)]
        for rep in (reports[ev.type], reports["all"]):
            rep.events += 1
            rep.true_events += bool(hits)
        for lab in hits:
            k = id(lab)
            if k not in first_hit or ev.raised_at < first_hit[k]:
                first_hit[k] = ev.raised_at
    delays: dict[str, list[float]] = defaultdict(list)
    for lab in labs:
        for rep in (reports[lab.type], reports["all"]):
            rep.labels += 1
        if id(lab) in first_hit:
            d = max(0.0, (first_hit[id(lab)] - lab.start).total_seconds() / 60)
            for key in (lab.type, "all"):
                reports[key].detected += 1
                delays[key].append(d)
    for key, rep in reports.items():
        if rep.events:
            rep.precision = round(rep.true_events / rep.events, 3)
        if rep.labels:
            rep.recall = round(rep.detected / rep.labels, 3)
        if rep.precision is not None and rep.recall is not None:
            s = rep.precision + rep.recall
            rep.f1 = round(2 * rep.precision * rep.recall / s, 3) if s else 0.0
        if delays[key]:
            rep.delay_median_min = round(float(np.median(delays[key])), 1)
            rep.delay_p90_min = round(float(np.percentile(delays[key], 90)), 1)
        if meter_days > 0:
            rep.false_alarms_per_1000_meter_days = round(
                (rep.events - rep.true_events) / meter_days * 1000, 2)
    return reports


def meter_days(readings: Iterable[Reading]) -> float:
    """Observed meter-days: per meter, first to last reading."""
    span: dict[str, list[float]] = {}
    for r in readings:
        t = r.ts.timestamp()
        s = span.get(r.meter_id)
        if s is None:
            span[r.meter_id] = [t, t]
        else:
            s[0] = min(s[0], t)
            s[1] = max(s[1], t)
    return sum((b - a) for a, b in span.values()) / 86_400


def read_readings(path: Path) -> Iterator[Reading]:
    """Readings of a CSV or JSONL file (through the ingest reader; rejected rows are skipped)."""
    from gridwatch.ingest import iter_readings_file

    for item in iter_readings_file(Path(path)):
        if isinstance(item, Reading):
            yield item


def run_evaluate(settings: Any, *, readings: Path | None = None, labels: Path | None = None,
                 nab: Path | None = None, nab_results: Path | None = None,
                 baseline: bool = True, json_out: Path | None = None) -> int:
    """Body of ``gridwatch evaluate``: prints the tables and returns the exit code."""
    from rich.console import Console
    from rich.table import Table

    out = Console()
    err = Console(stderr=True)
    summary: dict[str, Any] = {}
    if readings is None and nab is None:
        err.print("[bold red]error:[/] give --readings FILE --labels LABELS.jsonl and/or --nab DIR")
        return 2
    if readings is not None:
        if labels is None:
            err.print("[bold red]error:[/] --readings needs --labels")
            return 2
        from gridwatch.stream import run_replay

        try:
            labs = load_labels(labels)
        except (OSError, ValueError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            return 2
        rs = sorted(read_readings(readings), key=lambda r: r.ts)
        try:
            from gridwatch._engine import load_meta

            meta = load_meta(settings)
        except Exception:  # evaluation works without a registry
            meta = {}
        res = run_replay(settings, rs, meta)
        reports = evaluate_events(res.events, labs, meter_days(rs))
        table = Table(title=f"evaluation of {readings} against {labels}")
        for col in ("type", "labels", "events", "precision", "recall", "F1", "delay p50 min",
                    "delay p90 min", "false alarms /1000 meter-days"):
            table.add_column(col, justify="left" if col == "type" else "right")

        def fmt(v: Any) -> str:
            return "-" if v is None else str(v)

        for key, rep in reports.items():
            table.add_row(key, str(rep.labels), str(rep.events), fmt(rep.precision),
                          fmt(rep.recall), fmt(rep.f1), fmt(rep.delay_median_min),
                          fmt(rep.delay_p90_min), fmt(rep.false_alarms_per_1000_meter_days),
                          style="bold" if key == "all" else None)
        out.print(table)
        out.print(f"readings: {len(rs)}  meters: {len({r.meter_id for r in rs})}  "
                  f"meter-days: {meter_days(rs):.1f}  events raised: {len(res.firing())}")
        summary["labels"] = {k: r.row() for k, r in reports.items()}
    if nab is not None:
        from gridwatch.models._nab import SCOREBOARD, NabDetector, hst_scores, run_nab

        detectors = {"gridwatch": lambda v: NabDetector().run(v)}
        if baseline:
            detectors["river_hst"] = hst_scores
        results = run_nab(nab, detectors, nab_results)
        table = Table(title=f"NAB scores ({nab})")
        table.add_column("detector")
        for col in ("standard", "reward low FP", "reward low FN", "records/s"):
            table.add_column(col, justify="right")
        names = {"gridwatch": "gridwatch (this run)",
                 "river_hst": "River HalfSpaceTrees (this run)"}
        for r in results:
            rate = f"{r.records / r.seconds:,.0f}" if r.seconds else "-"
            table.add_row(names.get(r.detector, r.detector),
                          *(f"{r.scores[p]:.1f}" for p in ("standard", "reward_low_FP_rate",
                                                            "reward_low_FN_rate")),
                          rate, style="bold")
        for name, (a, b, c) in SCOREBOARD.items():
            table.add_row(f"{name} (published)", f"{a:.1f}", f"{b:.1f}", f"{c:.1f}", "")
        out.print(table)
        for r in results:
            out.print(f"{names.get(r.detector, r.detector)}: thresholds {r.thresholds}, "
                      f"{r.records} records in {r.seconds} s")
        if nab_results is not None:
            out.print(f"NAB-format result files written under {nab_results}")
        summary["nab"] = {r.detector: {"scores": r.scores, "thresholds": r.thresholds}
                          for r in results}
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2, default=str))
    return 0
