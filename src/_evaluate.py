"""Event-level evaluation of detections against labelled anomalies, and the ``gridwatch
evaluate`` command body.

Matching window: a label ``{"meter_id", "type", "start", "end"}`` is detected when a *firing*
event of the same type about the same meter (or naming it, as a feeder outage does) is raised
within ``[start, end + grace]``, or has its onset within ``[start - grace, end]`` (``grace`` is
2 hours unless given). A firing event that matches no label is a false alarm; resolutions are
counted apart and never scored. Reported per type and per injected shape: precision, recall, F1,
median and 90th-percentile detection delay (first matching ``raised_at`` minus ``start``) and
false alarms per 1,000 observed days (meter-days; device-days for the devices' types).
Over-capacity labels also get the lead time of their first warning: minutes from ``raised_at``
to the first reading of the span whose apparent power (kW over its power factor) reached the
contracted capacity (positive: the warning came first).
Label types the engine never raises are warned about (they can only be missed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch._schemas import Event, Reading

__all__ = [
    "GRACE",
    "Label",
    "ShapeReport",
    "TypeReport",
    "capacity_leads",
    "evaluate_events",
    "evaluate_shapes",
    "load_labels",
    "meter_days",
    "run_evaluate",
    "unknown_types",
]

#: How long after a label's end an event still counts as its detection (see the docstring).
GRACE = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class Label:
    meter_id: str
    type: str
    start: datetime
    end: datetime
    shape: str = ""
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_LABEL_KEYS = {"meter_id", "type", "start", "end", "shape", "event_type"}


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
                                 _parse_time(d.get("end") or d["start"]),
                                 str(d.get("shape") or d["type"]),
                                 {k: v for k, v in d.items() if k not in _LABEL_KEYS}))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{no}: not a label ({exc})") from None
    return out


def unknown_types(labels: Iterable[Label]) -> dict[str, int]:
    """Label types that are not event types of the engine, with how many labels have each."""
    from gridwatch.models import EVENT_TYPES
    from gridwatch.models._device import DEVICE_EVENT_TYPES

    known = set(EVENT_TYPES) | set(DEVICE_EVENT_TYPES)
    out: dict[str, int] = {}
    for lab in labels:
        if lab.type not in known:
            out[lab.type] = out.get(lab.type, 0) + 1
    return out


@dataclass
class TypeReport:
    type: str
    labels: int = 0
    detected: int = 0
    #: firing events (resolutions are counted apart)
    events: int = 0
    true_events: int = 0
    resolutions: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    delay_median_min: float | None = None
    delay_p90_min: float | None = None
    false_alarms_per_1000_meter_days: float | None = None

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ShapeReport:
    """Recall and delay of the labels of one injected shape."""

    shape: str
    type: str
    labels: int = 0
    detected: int = 0
    recall: float | None = None
    delay_median_min: float | None = None
    delay_p90_min: float | None = None
    #: firing alarms of the label's type matching a detected fault, on average (1 is ideal)
    alarms_per_fault: float | None = None
    delays_min: list[float] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "delays_min"}


def _matches(ev: Event, lab: Label, grace: timedelta) -> bool:
    if ev.type != lab.type:
        return False
    if lab.meter_id != ev.meter_id and lab.meter_id not in ev.meters:
        return False
    raised_in = lab.start <= ev.raised_at <= lab.end + grace
    onset_in = lab.start - grace <= ev.onset <= lab.end
    return raised_in or onset_in


def _scan(events: Iterable[Event], labels: list[Label], grace: timedelta
          ) -> tuple[dict[int, Event], list[tuple[Event, bool]], dict[int, int]]:
    by_meter: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        by_meter[lab.meter_id].append(i)
    hit: dict[int, Event] = {}
    count: dict[int, int] = defaultdict(int)
    judged: list[tuple[Event, bool]] = []
    for ev in events:
        if ev.state != "firing":
            continue
        cands = [i for m in (ev.meter_id, *ev.meters) for i in by_meter.get(m, [])]
        hits = [i for i in cands if _matches(ev, labels[i], grace)]
        judged.append((ev, bool(hits)))
        for i in hits:
            count[i] += 1
            if i not in hit or ev.raised_at < hit[i].raised_at:
                hit[i] = ev
    return hit, judged, count


def first_hits(events: Iterable[Event], labels: list[Label], grace: timedelta = GRACE
               ) -> tuple[dict[int, Event], list[tuple[Event, bool]]]:
    """For each label (by index), its earliest matching firing event; and every firing event
    with whether it matched some label."""
    hit, judged, _ = _scan(events, labels, grace)
    return hit, judged


def evaluate_events(events: Iterable[Event], labels: Iterable[Label], meter_days: float,
                    grace: timedelta = GRACE, device_days: float = 0.0
                    ) -> dict[str, TypeReport]:
    """Per-type event precision/recall/F1, detection delays and false-alarm rate, plus
    ``"all"``. Only firing events are scored; resolutions are counted in ``resolutions``.

    The false-alarm rate is per 1,000 observed days of what the type watches: meter-days for
    the meters' types, ``device_days`` for the devices' (``DEVICE_EVENT_TYPES``), both for
    ``"all"``."""
    from gridwatch.models._device import DEVICE_EVENT_TYPES

    evs = list(events)
    labs = list(labels)
    hit, judged = first_hits(evs, labs, grace)
    types = sorted({e.type for e in evs} | {lab.type for lab in labs})
    reports = {t: TypeReport(t) for t in [*types, "all"]}
    for ev in evs:
        if ev.state != "firing":
            reports[ev.type].resolutions += 1
            reports["all"].resolutions += 1
    for ev, ok in judged:
        for rep in (reports[ev.type], reports["all"]):
            rep.events += 1
            rep.true_events += ok
    delays: dict[str, list[float]] = defaultdict(list)
    for i, lab in enumerate(labs):
        for rep in (reports[lab.type], reports["all"]):
            rep.labels += 1
        if i in hit:
            d = max(0.0, (hit[i].raised_at - lab.start).total_seconds() / 60)
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
        days = (device_days if key in DEVICE_EVENT_TYPES else
                meter_days + device_days if key == "all" else meter_days)
        if days > 0:
            rep.false_alarms_per_1000_meter_days = round(
                (rep.events - rep.true_events) / days * 1000, 2)
    return reports


def evaluate_shapes(events: Iterable[Event], labels: list[Label], grace: timedelta = GRACE
                    ) -> dict[str, ShapeReport]:
    """Recall and delay per injected shape (``Label.shape``), plus ``"all"``; and how many
    firing alarms each detected fault drew (one fault should be one alarm episode)."""
    hit, _, count = _scan(events, labels, grace)
    out: dict[str, ShapeReport] = {}
    alarms: dict[str, int] = defaultdict(int)
    for i, lab in enumerate(labels):
        for key in (lab.shape or lab.type, "all"):
            rep = out.setdefault(key, ShapeReport(key, lab.type if key != "all" else "*"))
            rep.labels += 1
            if i in hit:
                rep.detected += 1
                alarms[key] += count[i]
                rep.delays_min.append(
                    max(0.0, (hit[i].raised_at - lab.start).total_seconds() / 60))
    for key, rep in out.items():
        rep.recall = round(rep.detected / rep.labels, 3) if rep.labels else None
        if rep.detected:
            rep.alarms_per_fault = round(alarms[key] / rep.detected, 2)
        if rep.delays_min:
            rep.delay_median_min = round(float(np.median(rep.delays_min)), 1)
            rep.delay_p90_min = round(float(np.percentile(rep.delays_min, 90)), 1)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def capacity_leads(events: Iterable[Event], labels: list[Label],
                   times: Mapping[str, np.ndarray], kva: Mapping[str, np.ndarray],
                   grace: timedelta = GRACE) -> list[dict[str, Any]]:
    """For each ``over_capacity_risk`` label: when its apparent power (``kva``, per meter in the
    order of ``times``) first reached the contracted capacity (``contracted_kva`` of the label)
    and the lead of the first matching warning in minutes (positive: before the crossing);
    ``None`` where the load never crossed or nothing was raised."""
    hit, _ = first_hits(events, labels, grace)
    out = []
    for i, lab in enumerate(labels):
        if lab.type != "over_capacity_risk":
            continue
        cap = lab.params.get("contracted_kva")
        crossing: datetime | None = None
        ts, kws = times.get(lab.meter_id), kva.get(lab.meter_id)
        if cap and ts is not None and kws is not None:
            lo, hi = lab.start.timestamp(), lab.end.timestamp()
            sel = np.flatnonzero((ts >= lo) & (ts < hi) & (kws >= float(cap)))
            if len(sel):
                crossing = datetime.fromtimestamp(float(ts[sel[0]]), lab.start.tzinfo)
        ev = hit.get(i)
        lead = (round((crossing - ev.raised_at).total_seconds() / 60, 1)
                if ev is not None and crossing is not None else None)
        out.append({"meter_id": lab.meter_id, "start": lab.start.isoformat(),
                    "crossing": crossing.isoformat() if crossing else None,
                    "raised_at": ev.raised_at.isoformat() if ev else None, "lead_min": lead})
    return out


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


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def run_evaluate(settings: Any, *, readings: Path | None = None, labels: Path | None = None,
                 nab: Path | None = None, nab_results: Path | None = None,
                 baseline: bool = True, json_out: Path | None = None,
                 interval: int | None = None, registry: Path | None = None,
                 grace: timedelta = GRACE, nab_tune: bool = False,
                 half: str | None = None) -> int:
    """Body of ``gridwatch evaluate``: prints the tables and returns the exit code."""
    import time

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
        from gridwatch._filereplay import (
            Progress,
            count_lines,
            half_of,
            infer_interval,
            registry_lookups,
            replay_file,
    warn_late,
            with_interval,
        )

        try:
            labs = load_labels(labels)
            step = interval or infer_interval(readings)
        except (OSError, ValueError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            return 2
        for t, n in unknown_types(labs).items():
            err.print(f"[yellow]warning:[/] {n} label(s) of type {t!r}, which the engine never "
                      "raises: they can only be missed")
        if step is not None:
            settings = with_interval(settings, step)
        try:
            meta, devices = registry_lookups(settings, registry)
        except (OSError, ValueError) as exc:
            err.print(f"[bold red]error:[/] registry: {exc}")
            return 2
        t0 = time.monotonic()
        with Progress(err, count_lines(readings)) as progress:
            run = replay_file(settings, readings, meta, on_progress=progress,
                              keep=None if half is None else (lambda m: half_of(m) == half),
                              devices=devices)
        if run.telemetry and devices is None:
            err.print(f"[yellow]warning:[/] {run.telemetry:,} device telemetry record(s) "
                      "skipped: give --registry with the devices (gridwatch simulate "
                      "--registry writes them) to score the device labels")
        if half is not None:
            labs = [lab for lab in labs if half_of(lab.meter_id) == half]
            out.print(f"meters of the {'tuning' if half == 'tune' else 'held-out'} half only: "
                      + " ".join(sorted(run.times)))
        elapsed = time.monotonic() - t0
        warn_late(err, run, readings)
        md = run.meter_days()
        dd = run.device_days()
        reports = evaluate_events(run.events, labs, md, grace, dd)
        shapes = evaluate_shapes(run.events, labs, grace)
        leads = capacity_leads(run.events, labs, run.times, run.kva, grace)
        table = Table(title=f"evaluation of {readings} against {labels}")
        for col in ("type", "labels", "firing", "resolved", "precision", "recall", "F1",
                    "delay p50 min", "delay p90 min",
                    "false alarms /1000 meter-days" + (" (devices: device-days)" if dd
                                                       else "")):
            table.add_column(col, justify="left" if col == "type" else "right")
        for key, rep in reports.items():
            table.add_row(key, str(rep.labels), str(rep.events), str(rep.resolutions),
                          _fmt(rep.precision), _fmt(rep.recall), _fmt(rep.f1),
                          _fmt(rep.delay_median_min), _fmt(rep.delay_p90_min),
                          _fmt(rep.false_alarms_per_1000_meter_days),
                          style="bold" if key == "all" else None)
        out.print(table)
        if any(s.shape != s.type for s in shapes.values() if s.shape != "all"):
            st = Table(title="recall by injected shape")
            for col in ("shape", "event type", "labels", "detected", "recall",
                        "delay p50 min", "delay p90 min", "alarms per fault"):
                st.add_column(col, justify="left" if col in ("shape", "event type")
                              else "right")
            for key, s in shapes.items():
                st.add_row(key, s.type, str(s.labels), str(s.detected), _fmt(s.recall),
                           _fmt(s.delay_median_min), _fmt(s.delay_p90_min),
                           _fmt(s.alarms_per_fault),
                           style="bold" if key == "all" else None)
            out.print(st)
        if leads:
            crossed = [x["lead_min"] for x in leads if x["lead_min"] is not None]
            early = sum(1 for x in crossed if x >= 15)
            n_cross = sum(1 for x in leads if x["crossing"])
            out.print(f"over-capacity: {len(leads)} labels, "
                      f"{sum(1 for x in leads if x['raised_at'])} warned, {n_cross} whose "
                      f"apparent power reached the contracted capacity; lead before the "
                      f"crossing (warned and crossed): "
                      + (f"median {np.median(crossed):.0f} min, min {min(crossed):.0f} min, "
                         f"max {max(crossed):.0f} min, {early} of {len(crossed)} at least "
                         "15 min ahead (negative: raised after the crossing)" if crossed
                         else "none measured"))
        out.print(f"readings: {run.readings:,}  device telemetry: {run.telemetry:,}"
                  f"{'' if devices is not None or not run.telemetry else ' (skipped)'}  "
                  f"meters: {len(run.times)}  meter-days: "
                  f"{md:,.1f}" + (f"  device-days: {dd:,.1f}" if dd else "")
                  + f"  interval: {step} s  firing events: "
                  f"{reports['all'].events:,}  resolutions: {reports['all'].resolutions:,}  "
                  f"time: {elapsed:,.0f} s")
        out.print(f"matching window: same type and meter, raised within [start, end + "
                  f"{grace.total_seconds() / 3600:g} h] or onset within [start - "
                  f"{grace.total_seconds() / 3600:g} h, end]")
        summary["labels"] = {k: r.row() for k, r in reports.items()}
        summary["shapes"] = {k: s.row() for k, s in shapes.items()}
        summary["over_capacity_leads"] = leads
        summary["unknown_label_types"] = unknown_types(labs)
        summary["meter_days"] = round(md, 2)
        summary["device_days"] = round(dd, 2)
        summary["interval_s"] = step
    if nab is not None:
        from gridwatch._nab import SCOREBOARD, NabDetector, hst_scores, run_nab

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
        splits = [r.split for r in results if r.split is not None]
        if nab_tune:
            from gridwatch._nab import load_corpus, load_profiles, tune_detector

            err.print("choosing the NAB detector's parameters on the tuning half ...")
            splits.append(tune_detector(load_corpus(nab), load_profiles(nab)))
        if splits:
            st = Table(title="NAB with thresholds fixed on the tuning half "
                             "(standard / reward low FP / reward low FN)")
            for col in ("detector", "held-out half", "all files", "tuning half",
                        "swept on all (NAB's rule)"):
                st.add_column(col, justify="left" if col == "detector" else "right")
            keys = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
            for sp in splits:
                st.add_row(names.get(sp.detector, sp.detector),
                           *(" / ".join(f"{d[k]:.1f}" for k in keys)
                             for d in (sp.on_held, sp.on_all, sp.on_tune, sp.swept_on_all)))
            out.print(st)
            first = splits[0]
            out.print(f"split by CRC-32 of the file name: tuning half {len(first.tune)} files, "
                      f"held-out half {len(first.held)} files: {', '.join(first.held)}")
            for sp in splits:
                if sp.params:
                    out.print(f"parameters chosen on the tuning half: {sp.params}")
        summary["nab"] = {r.detector: {"scores": r.scores, "thresholds": r.thresholds}
                          for r in results}
        summary["nab_split"] = [
            {"detector": sp.detector, "tune": sp.tune, "held": sp.held,
             "thresholds": sp.thresholds, "on_held": sp.on_held, "on_all": sp.on_all,
             "on_tune": sp.on_tune, "swept_on_all": sp.swept_on_all, "params": sp.params}
            for sp in splits]
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2, default=str))
    return 0
