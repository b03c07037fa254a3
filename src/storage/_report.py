"""``gridwatch report``: one meter's readings, load profile and events over a period.

``summarize`` is pure (values in, a :class:`MeterReport` out); ``print_report`` renders it with
rich; ``run_report`` queries InfluxDB and does both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from rich.console import Console
from rich.table import Table

from gridwatch._schemas import Event, LoadProfile, Reading
from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._reader import InfluxReader

__all__ = ["MeterReport", "print_report", "run_report", "summarize"]


@dataclass(frozen=True)
class MeterReport:
    """What a customer manager reads about one meter over ``[start, end)``."""

    meter_id: str
    start: datetime
    end: datetime
    readings: int = 0
    first: datetime | None = None
    last: datetime | None = None
    kw_min: float | None = None
    kw_mean: float | None = None
    kw_max: float | None = None
    peak_at: datetime | None = None
    energy_kwh: float | None = None
    #: Readings missing against the meter's stated interval (None when it states none).
    missing: int | None = None
    status: dict[str, int] = field(default_factory=dict)
    customer_id: str | None = None
    grid_cell: str | None = None
    profiles: tuple[LoadProfile, ...] = ()
    events: tuple[Event, ...] = ()


def summarize(meter_id: str, start: datetime, end: datetime, readings: list[Reading],
              profiles: list[LoadProfile], events: list[Event]) -> MeterReport:
    """Figures of the report; ``readings`` oldest first."""
    customer = next((p.customer_id for p in reversed(profiles) if p.customer_id), None)
    customer = customer or next((e.customer_id for e in reversed(events) if e.customer_id), None)
    cell = next((e.grid_cell for e in reversed(events) if e.grid_cell), None)
    base = MeterReport(meter_id, start, end, customer_id=customer, grid_cell=cell,
                       profiles=tuple(profiles), events=tuple(events))
    if not readings:
        return base
    kws = [r.kw for r in readings]
    peak = max(readings, key=lambda r: r.kw)
    registers = [r.kwh for r in readings if r.kwh is not None]
    if len(registers) >= 2:
        energy: float | None = registers[-1] - registers[0]
    else:
        # Integrate average power over each reading's interval (the gap to the next one).
        energy = sum(a.kw * (b.ts - a.ts).total_seconds() / 3600
                     for a, b in pairwise(readings)) or None
    interval = readings[-1].interval_s
    missing = None
    if interval:
        expected = int((readings[-1].ts - readings[0].ts).total_seconds() // interval) + 1
        missing = max(0, expected - len(readings))
    status = Counter(s.value for r in readings for s in r.status)
    return MeterReport(
        meter_id, start, end, readings=len(readings), first=readings[0].ts,
        last=readings[-1].ts, kw_min=min(kws), kw_mean=sum(kws) / len(kws), kw_max=max(kws),
        peak_at=peak.ts, energy_kwh=energy, missing=missing, status=dict(status),
        customer_id=customer, grid_cell=cell, profiles=tuple(profiles), events=tuple(events),
    )


def _t(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else "-"


def _f(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def print_report(report: MeterReport, console: Console) -> None:
    """Render ``report`` as a few plain tables."""
    who = f"meter {report.meter_id}"
    if report.customer_id:
        who += f"  customer {report.customer_id}"
    if report.grid_cell:
        who += f"  grid cell {report.grid_cell}"
    console.print(f"[bold]{who}[/]  {_t(report.start)} → {_t(report.end)} UTC")
    if not report.readings:
        console.print("no readings in this period")
    else:
        t = Table(title="readings", show_header=False)
        t.add_row("readings", f"{report.readings} ({_t(report.first)} … {_t(report.last)})")
        if report.missing is not None:
            t.add_row("missing", str(report.missing))
        t.add_row("kW min / mean / max",
                  f"{_f(report.kw_min)} / {_f(report.kw_mean)} / {_f(report.kw_max)}")
        t.add_row("peak at", _t(report.peak_at))
        t.add_row("energy", _f(report.energy_kwh, " kWh", 1))
        if report.status:
            t.add_row("status flags", ", ".join(f"{k}×{n}" for k, n in
                                                 sorted(report.status.items())))
        console.print(t)
    if report.profiles:
        latest = report.profiles[-1]
        console.print(f"profile: segment [bold]{latest.segment}[/]"
                      + (f", tags {', '.join(latest.tags)}" if latest.tags else ""))
        t = Table(title="daily load profile")
        for col in ("day", "kWh", "peak kW", "valley kW", "load factor", "peak/valley"):
            t.add_column(col, justify="right" if col != "day" else "left")
        for p in report.profiles[-14:]:
            t.add_row(p.day.strftime("%Y-%m-%d"), _f(p.daily_kwh, "", 1), _f(p.peak_kw),
                      _f(p.valley_kw), _f(p.load_factor), _f(p.peak_valley_ratio, "", 1))
        console.print(t)
    else:
        console.print("no load profile in this period")
    if report.events:
        t = Table(title=f"events ({len(report.events)})")
        for col in ("raised", "type", "severity", "state", "score", "summary"):
            t.add_column(col)
        for e in report.events:
            t.add_row(_t(e.raised_at), e.type, e.severity.value, e.state, _f(e.score),
                      e.summary)
        console.print(t)
    else:
        console.print("no events in this period")


def run_report(settings: InfluxSettings, meter_id: str, start: datetime,
               end: datetime | None, console: Console) -> MeterReport:
    """Query InfluxDB and print the report; raises ``ReadError`` when the server fails."""
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end or datetime.now(UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if end <= start:
        raise ValueError(f"--to {end.isoformat()} is not after --from {start.isoformat()}")
    with InfluxReader(settings) as reader:
        readings = reader.readings(meter_id, start, end)
        # A profile is stamped at midnight of its day: include the day --from falls in.
        day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
        profiles = reader.profiles(meter_id, day0, end + timedelta(microseconds=1))
        events = reader.events(meter_id, start, end)
    report = summarize(meter_id, start, end, readings, profiles, events)
    print_report(report, console)
    return report
