"""False alarms on real load: every alarm the engine raises on a readings file with no faults in
it, per 1,000 meter-days, by type and by kind, with the worst meters and why.

Communication-loss and outage alarms are checked against the file itself: one raised where the
file has a gap of at least ``silence_intervals`` intervals after the meter's last reading (or where
the meter's data ends) is right, and is reported apart from the alarms under judgement.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch._filereplay import (
    Progress,
    ReplayRun,
    count_lines,
    half_of,
    infer_interval,
    meter_meta_from,
    replay_file,
    warn_late,
    with_interval,
)
from gridwatch._schemas import Event

__all__ = ["FalseAlarmReport", "MeterReason", "analyse", "run_falsealarms", "silence_verdict"]

#: Event types about a meter going silent; checked against the file's own gaps.
SILENCE_TYPES = ("comm_loss", "outage")


@dataclass
class MeterReason:
    meter_id: str
    alarms: int
    per_1000_meter_days: float
    meter_days: float
    counts: dict[str, int]
    typical: str

    def line(self) -> str:
        """``N alarms (spike 1210, sustained_drop 66, possible_theft 3); typical: ...``"""
        def short(key: str) -> str:
            t, _, kind = key.partition("/")
            return kind if t == "abnormal_consumption" and kind else t

        top = ", ".join(f"{short(k)} {v}" for k, v in list(self.counts.items())[:3])
        return f"{self.alarms} alarms ({top}); typical: {self.typical}"


@dataclass
class FalseAlarmReport:
    """Alarm rates on a file taken to hold no faults (see the module docstring)."""

    readings: int
    meters: int
    meter_days: float
    interval_s: float
    #: firing alarms under judgement (all but silence alarms confirmed by the file)
    alarms: int
    firing_by_type: dict[str, int] = field(default_factory=dict)
    resolved_by_type: dict[str, int] = field(default_factory=dict)
    firing_by_kind: dict[str, int] = field(default_factory=dict)
    resolved_by_kind: dict[str, int] = field(default_factory=dict)
    #: silence alarms: on a gap of the file, after the meter's last reading, or with no gap
    silence: dict[str, int] = field(default_factory=dict)
    worst: list[MeterReason] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    def per_1000(self, n: float) -> float:
        return round(n / self.meter_days * 1000, 2) if self.meter_days > 0 else 0.0

    def to_json_dict(self) -> dict[str, Any]:
        def rates(d: dict[str, int]) -> dict[str, dict[str, float]]:
            return {k: {"count": v, "per_1000_meter_days": self.per_1000(v)}
                    for k, v in d.items()}

        return {
            "readings": self.readings, "meters": self.meters,
            "meter_days": round(self.meter_days, 2), "interval_s": self.interval_s,
            "alarms": self.alarms, "alarms_per_1000_meter_days": self.per_1000(self.alarms),
            "firing_by_type": rates(self.firing_by_type),
            "resolved_by_type": rates(self.resolved_by_type),
            "firing_by_kind": rates(self.firing_by_kind),
            "resolved_by_kind": rates(self.resolved_by_kind),
            "silence_alarms": self.silence,
            "worst_meters": [
                {"meter_id": w.meter_id, "alarms": w.alarms,
                 "per_1000_meter_days": w.per_1000_meter_days, "meter_days": w.meter_days,
                 "counts": w.counts, "typical": w.typical, "reason": w.line()}
                for w in self.worst],
            "rejected_rows": self.rejected,
        }


def _kind_key(ev: Event) -> str:
    kind = ev.evidence.get("kind")
    return f"{ev.type}/{kind}" if kind else ev.type


def silence_verdict(ev: Event, times: np.ndarray, gap_s: float) -> str:
    """``on_gap`` when the file has no reading of the meter for at least ``gap_s`` after the
    last reading the alarm names; ``after_end`` when the meter's data ends there; else
    ``no_gap`` (the alarm is not explained by the file)."""
    last_text = ev.evidence.get("last_reading_at")
    if isinstance(last_text, str):
        last = datetime.fromisoformat(last_text.replace("Z", "+00:00")).timestamp()
    else:
        last = ev.onset.timestamp()
    i = int(np.searchsorted(times, last + 1e-6, side="left"))
    if i >= len(times):
        return "after_end"
    return "on_gap" if times[i] - last >= gap_s - 1e-6 else "no_gap"


def analyse(run: ReplayRun, interval_s: float, silence_intervals: int,
            top: int = 10) -> FalseAlarmReport:
    """Rates, silence checks and the worst meters of a replay."""
    span = {m: run.meter_days([m]) for m in run.times}
    rep = FalseAlarmReport(readings=run.readings, meters=len(run.times),
                           meter_days=sum(span.values()), interval_s=interval_s, alarms=0,
                           rejected=dict(run.rejected))
    f_type: Counter[str] = Counter()
    r_type: Counter[str] = Counter()
    f_kind: Counter[str] = Counter()
    r_kind: Counter[str] = Counter()
    silence: Counter[str] = Counter()
    judged: dict[str, list[Event]] = defaultdict(list)
    for ev in run.events:
        if ev.state != "firing":
            r_type[ev.type] += 1
            r_kind[_kind_key(ev)] += 1
            continue
        f_type[ev.type] += 1
        f_kind[_kind_key(ev)] += 1
        if ev.type in SILENCE_TYPES:
            verdict = silence_verdict(ev, run.times.get(ev.meter_id, np.empty(0)),
                                      silence_intervals * interval_s)
            silence[f"{ev.type}/{verdict}"] += 1
            if verdict != "no_gap":
                continue
        judged[ev.meter_id].append(ev)
    rep.alarms = sum(len(v) for v in judged.values())
    rep.firing_by_type = dict(f_type.most_common())
    rep.resolved_by_type = dict(r_type.most_common())
    rep.firing_by_kind = dict(f_kind.most_common())
    rep.resolved_by_kind = dict(r_kind.most_common())
    rep.silence = dict(sorted(silence.items()))
    worst = sorted(judged.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    for meter, evs in worst:
        counts = Counter(_kind_key(e) for e in evs)
        main_kind = counts.most_common(1)[0][0]
        of_kind = sorted((e for e in evs if _kind_key(e) == main_kind), key=lambda e: e.score)
        typical = of_kind[len(of_kind) // 2]
        days = span.get(meter, 0.0)
        rep.worst.append(MeterReason(
            meter_id=meter, alarms=len(evs),
            per_1000_meter_days=round(len(evs) / days * 1000, 1) if days else 0.0,
            meter_days=round(days, 1), counts=dict(counts.most_common()),
            typical=typical.summary or main_kind))
    return rep


def run_falsealarms(settings: Any, path: Path, *, interval: int | None = None,
                    registry: Path | None = None, top: int = 10,
                    json_out: Path | None = None, half: str | None = None) -> int:
    """Body of ``gridwatch falsealarms``: prints the report, returns the exit code."""
    import json
    import sys
    import time

    from rich.console import Console
    from rich.table import Table

    err = Console(stderr=True)
    to_stdout = json_out is not None and str(json_out) == "-"
    out = Console(stderr=to_stdout)
    path = Path(path)
    try:
        step = interval or infer_interval(path)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return 2
    if step is None:
        err.print(f"[bold red]error:[/] {path}: no two readings of one meter to infer the "
                  "interval from; give --interval")
        return 2
    settings = with_interval(settings, step)
    err.print(f"interval: {step} s ({'given' if interval else 'inferred from the file'})")
    try:
        meta = meter_meta_from(settings, registry)
    except (OSError, ValueError) as exc:
        err.print(f"[bold red]error:[/] registry: {exc}")
        return 2
    total = count_lines(path)
    t0 = time.monotonic()
    with Progress(err, total) as progress:
        run = replay_file(settings, path, meta, on_progress=progress,
                          keep=None if half is None else (lambda m: half_of(m) == half))
    elapsed = time.monotonic() - t0
    warn_late(err, run, path)
    rep = analyse(run, float(step), settings.detection.silence_intervals, top)

    table = Table(title=f"alarms on {path} per 1,000 meter-days")
    for col in ("type / kind", "firing", "per 1,000 md", "resolved", "per 1,000 md"):
        table.add_column(col, justify="left" if col == "type / kind" else "right")
    for t in sorted(set(rep.firing_by_type) | set(rep.resolved_by_type),
                    key=lambda t: -rep.firing_by_type.get(t, 0)):
        n = rep.firing_by_type.get(t, 0)
        r = rep.resolved_by_type.get(t, 0)
        table.add_row(t, str(n), f"{rep.per_1000(n):.2f}", str(r), f"{rep.per_1000(r):.2f}",
                      style="bold")
        # a resolution names its kind only when the detector put one in its evidence
        kinds_resolved = any(k.startswith(t + "/") for k in rep.resolved_by_kind)
        for k, kn in rep.firing_by_kind.items():
            if k.startswith(t + "/"):
                kr = rep.resolved_by_kind.get(k, 0)
                table.add_row("  " + k.split("/", 1)[1], str(kn), f"{rep.per_1000(kn):.2f}",
                              str(kr) if kinds_resolved else "-",
                              f"{rep.per_1000(kr):.2f}" if kinds_resolved else "-")
    out.print(table)
    if rep.silence:
        words = {"on_gap": "on a gap of the file", "after_end": "after the meter's data ends",
                 "no_gap": "with no gap in the file (judged)"}
        out.print("silence alarms checked against the file: " + ", ".join(
            f"{k.split('/')[0]} {words[k.split('/')[1]]} {v}" for k, v in rep.silence.items()))
    if half is not None:
        out.print(f"households of the {'tuning' if half == 'tune' else 'held-out'} half only "
                  f"(CRC-32 of the meter id {'even' if half == 'tune' else 'odd'}): "
                  + " ".join(sorted(run.times)))
    out.print(f"readings: {rep.readings:,}  meters: {rep.meters}  meter-days: "
              f"{rep.meter_days:,.1f}  interval: {step} s  time: {elapsed:,.0f} s"
              + (f"  rows rejected: {rep.rejected}" if rep.rejected else ""))
    out.print(f"[bold]alarms under judgement (all firing but silence alarms the file "
              f"explains): {rep.alarms:,} = {rep.per_1000(rep.alarms):.2f} per 1,000 "
              f"meter-days[/]")
    if rep.worst:
        wt = Table(title=f"the {len(rep.worst)} meters with the most alarms")
        for col in ("meter", "alarms", "per 1,000 md", "reason"):
            wt.add_column(col, justify="right" if col in ("alarms", "per 1,000 md") else "left")
        for w in rep.worst:
            wt.add_row(w.meter_id, str(w.alarms), f"{w.per_1000_meter_days:.1f}", w.line())
        out.print(wt)
    if json_out is not None:
        text = json.dumps(rep.to_json_dict(), indent=2)
        if to_stdout:
            sys.stdout.write(text + "\n")
        else:
            json_out.write_text(text + "\n")
    return 0
