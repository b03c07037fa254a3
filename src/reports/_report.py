"""The customer's energy report: built from its readings and events (pure), rendered as HTML
(charts inline, nothing fetched at render time) and as a PDF whose first page is the summary
(matplotlib, Agg backend)."""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gridwatch._schemas import Event, Reading
from gridwatch.reports._energy import EnergySummary, energy_summary
from gridwatch.reports._tariff import Tariff

__all__ = ["CustomerReport", "build_report", "combine_meters", "period_bounds", "render"]

_PERIOD_ORDER = ("sharp", "peak", "flat", "valley")
_PERIOD_COLOR = {"sharp": "#b2182b", "peak": "#ef8a62", "flat": "#bababa", "valley": "#67a9cf"}


def period_bounds(month: str | None, week: str | None, tz: str) -> tuple[datetime, datetime,
                                                                         str]:
    """``[start, end)`` in UTC of a local month (``2024-04``) or ISO week (``2024-W15``) and
    its label."""
    zone = ZoneInfo(tz)
    if week:
        year, wk = week.split("-W")
        first = date.fromisocalendar(int(year), int(wk), 1)
        start = datetime(first.year, first.month, first.day, tzinfo=zone)
        return start.astimezone(UTC), (start + timedelta(days=7)).astimezone(UTC), week
    if not month:
        raise ValueError("give --month YYYY-MM or --week YYYY-Www")
    y, m = (int(x) for x in month.split("-"))
    start = datetime(y, m, 1, tzinfo=zone)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC), month


def combine_meters(customer_id: str, readings: Iterable[Reading]) -> list[Reading]:
    """One series for the customer: the sum of its meters' power per timestamp, with the
    power factor of the sum (P / √(P² + Q²))."""
    import math

    by_ts: dict[datetime, list[Reading]] = {}
    for r in readings:
        by_ts.setdefault(r.ts, []).append(r)
    out = []
    for ts in sorted(by_ts):
        rs = by_ts[ts]
        p = sum(max(r.kw, 0.0) for r in rs)
        q = sum(max(r.kw, 0.0) * math.tan(math.acos(abs(r.pf))) for r in rs if r.pf)
        pf = p / math.hypot(p, q) if p > 0 and any(r.pf for r in rs) else None
        out.append(Reading.model_construct(
            meter_id=customer_id, ts=ts, kw=p, kwh=None, export_kwh=None, voltage=None,
            current=None, pf=pf, freq=None, status=(), interval_s=rs[0].interval_s))
    return out


@dataclass
class CustomerReport:
    customer_id: str
    customer_name: str
    label: str
    start: datetime
    end: datetime
    tariff: Tariff
    summary: EnergySummary
    series: list[Reading]
    events: list[Event]
    daily_max: list[tuple[date, float]] = field(default_factory=list)
    profile_by_hour: list[float] = field(default_factory=list)

    @property
    def event_counts(self) -> Counter[str]:
        return Counter(e.type for e in self.events if e.state == "firing")

    def figures(self) -> dict[str, Any]:
        """The report's numbers as plain data (what the HTML shows and a JSON export gives)."""
        s = self.summary
        return {
            "customer_id": self.customer_id, "period": self.label, "kwh": round(s.kwh, 1),
            "kwh_by_period": {k: round(v, 1) for k, v in s.kwh_by_period.items()},
            "cost_by_period": {k: round(v, 2) for k, v in s.cost_by_period.items()},
            "energy_cost": round(s.energy_cost, 2), "currency": self.tariff.currency,
            "max_demand_kw": round(s.max_demand_kw, 1), "contracted_kva": s.contracted_kva,
            "demand_of_contracted": None if s.demand_of_contracted is None
            else round(s.demand_of_contracted, 3),
            "load_factor": None if s.load_factor is None else round(s.load_factor, 3),
            "power_factor": None if s.power_factor is None else round(s.power_factor, 3),
            "pf_adjustment_share": round(s.pf_adjustment_share, 4),
            "pf_adjustment_cost": round(s.pf_adjustment_cost, 2),
            "shift_kwh": round(s.shift_kwh, 1), "shift_saving": round(s.shift_saving, 2),
            "advice": list(s.advice), "events": dict(self.event_counts),
        }


def build_report(customer_id: str, customer_name: str, readings: Iterable[Reading],
                 events: Sequence[Event], tariff: Tariff, start: datetime, end: datetime,
                 label: str, contracted_kva: float | None) -> CustomerReport:
    series = combine_meters(customer_id, readings)
    hours = (end - start).total_seconds() / 3600
    summary = energy_summary(series, tariff, contracted_kva=contracted_kva, hours=hours)
    zone = ZoneInfo(tariff.timezone)
    daily: dict[date, float] = {}
    by_hour = [0.0] * 24
    n_hour = [0] * 24
    for r in series:
        local = (r.ts - timedelta(seconds=r.interval_s or 900)).astimezone(zone)
        daily[local.date()] = max(daily.get(local.date(), 0.0), r.kw)
        by_hour[local.hour] += r.kw
        n_hour[local.hour] += 1
    return CustomerReport(
        customer_id, customer_name, label, start, end, tariff, summary, series,
        sorted(events, key=lambda e: e.raised_at), sorted(daily.items()),
        [by_hour[h] / n_hour[h] if n_hour[h] else 0.0 for h in range(24)])


# -- rendering ---------------------------------------------------------------------------------
def _figure(rep: CustomerReport) -> Any:
    """The summary page: key figures, three charts, advice and events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, cur = rep.summary, rep.tariff.currency
    fig = plt.figure(figsize=(8.27, 11.69))  # A4
    fig.text(0.06, 0.965, f"Energy report — {rep.customer_name or rep.customer_id}",
             fontsize=16, weight="bold")
    fig.text(0.06, 0.945, f"customer {rep.customer_id} · {rep.label} · tariff "
             f"{rep.tariff.region} ({rep.tariff.timezone})", fontsize=9, color="#444")
    rows = [
        ("Energy", f"{s.kwh:,.0f} kWh"),
        ("Energy cost", f"{s.energy_cost:,.0f} {cur}"),
        ("Maximum demand", f"{s.max_demand_kw:,.0f} kW"
         + (f" = {s.demand_of_contracted:.0%} of {s.contracted_kva:,.0f} kVA contracted"
            if s.demand_of_contracted is not None else "")),
        ("Load factor", "-" if s.load_factor is None else f"{s.load_factor:.2f}"),
        ("Power factor", "-" if s.power_factor is None else
         f"{s.power_factor:.2f} (standard {rep.tariff.power_factor_standard}): "
         f"{s.pf_adjustment_share:+.2%} = {s.pf_adjustment_cost:+,.0f} {cur}"),
    ]
    for i, (k, v) in enumerate(rows):
        fig.text(0.06, 0.91 - i * 0.022, k, fontsize=10, weight="bold")
        fig.text(0.27, 0.91 - i * 0.022, v, fontsize=10)
    periods = [p for p in _PERIOD_ORDER if p in s.kwh_by_period] + sorted(
        set(s.kwh_by_period) - set(_PERIOD_ORDER))
    ax1 = fig.add_axes((0.08, 0.58, 0.38, 0.2))
    ax1.bar(periods, [s.kwh_by_period[p] for p in periods],
            color=[_PERIOD_COLOR.get(p, "#999") for p in periods])
    ax1.set_title("Energy by tariff period (kWh)", fontsize=10)
    for i, p in enumerate(periods):
        ax1.text(i, s.kwh_by_period[p], f"{s.cost_by_period[p]:,.0f} {cur}", ha="center",
                 va="bottom", fontsize=7)
    ax2 = fig.add_axes((0.56, 0.58, 0.38, 0.2))
    hours = list(range(24))
    mid = rep.start + (rep.end - rep.start) / 2
    colors = [_PERIOD_COLOR.get(rep.tariff.period_of(
        datetime(mid.year, mid.month, mid.day, h, tzinfo=ZoneInfo(rep.tariff.timezone))),
        "#999") for h in hours]
    ax2.bar(hours, rep.profile_by_hour, color=colors, width=0.9)
    ax2.set_title("Average load by local hour (kW), by tariff period", fontsize=10)
    ax2.set_xticks(range(0, 24, 3))
    ax3 = fig.add_axes((0.08, 0.33, 0.86, 0.18))
    if rep.daily_max:
        import matplotlib.dates as mdates

        ax3.plot(mdates.date2num([d for d, _ in rep.daily_max]),
                 [v for _, v in rep.daily_max], marker="o",
                 ms=3, color="#2166ac", label="daily maximum demand (kW)")
    if s.contracted_kva:
        ax3.axhline(s.contracted_kva, color="#b2182b", ls="--", lw=1,
                    label="contracted capacity (kVA)")
    ax3.set_title("Maximum demand per day against the contracted capacity", fontsize=10)
    ax3.xaxis_date()
    ax3.set_ylim(0, 1.1 * max(s.contracted_kva or 0.0, s.max_demand_kw, 1.0))
    ax3.legend(fontsize=7, loc="lower right")
    ax3.tick_params(axis="x", labelsize=7, rotation=30)
    y = 0.255
    fig.text(0.06, y, "Advice", fontsize=11, weight="bold")
    for line in s.advice or ["Nothing to change this period."]:
        y -= 0.018
        text = "• " + _wrap(line)
        fig.text(0.07, y, text, fontsize=8.5, va="top")
        y -= 0.013 * text.count("\n")
    y -= 0.035
    counts = rep.event_counts
    fig.text(0.06, y, f"Anomalies and device events: {sum(counts.values())}", fontsize=11,
             weight="bold")
    listed = [e for e in rep.events if e.state == "firing"][:8]
    for e in listed:
        y -= 0.017
        when = e.raised_at.astimezone(ZoneInfo(rep.tariff.timezone)).strftime("%m-%d %H:%M")
        fig.text(0.07, y, f"{when}  {e.type}  {e.meter_id}: {e.summary[:80]}", fontsize=7.5)
    if len([e for e in rep.events if e.state == "firing"]) > len(listed):
        fig.text(0.07, y - 0.017, "… more on the next page", fontsize=7.5, color="#444")
    return fig


def _wrap(text: str, width: int = 110) -> str:
    import textwrap

    return "\n  ".join(textwrap.wrap(text, width))


def _details(rep: CustomerReport) -> Any:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.06, 0.965, f"Details — {rep.customer_id} · {rep.label}", fontsize=13,
             weight="bold")
    y = 0.93
    for etype, n in sorted(rep.event_counts.items()):
        fig.text(0.07, y, f"{etype}: {n}", fontsize=9)
        y -= 0.018
    y -= 0.01
    for e in [e for e in rep.events if e.state == "firing"][:60]:
        when = e.raised_at.astimezone(ZoneInfo(rep.tariff.timezone)).strftime("%m-%d %H:%M")
        fig.text(0.07, y, f"{when}  {e.severity.value:<8} {e.type:<22} {e.meter_id}: "
                 f"{e.summary[:70]}", fontsize=7, family="monospace")
        y -= 0.0135
        if y < 0.04:
            break
    return fig


def render(rep: CustomerReport, stem: Path, png: Path | None = None) -> tuple[Path, Path]:
    """The PDF (the summary page, and a page of event details when there are events) and the
    HTML page (the same summary with the summary page inline as PNG, every event), from one
    drawing of the summary figure. Returns (html, pdf)."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf_path, html_path = stem.with_suffix(".pdf"), stem.with_suffix(".html")
    fig = _figure(rep)
    with PdfPages(pdf_path, metadata={"Title": f"Energy report {rep.customer_id} {rep.label}",
                                      "Creator": "gridwatch"}) as pdf:
        pdf.savefig(fig)
        if rep.events:
            det = _details(rep)
            pdf.savefig(det)
            plt.close(det)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=64)
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=80)
    plt.close(fig)
    _html(rep, html_path, buf.getvalue())
    return html_path, pdf_path


def _html(rep: CustomerReport, path: Path, png: bytes) -> Path:
    import html

    img = base64.b64encode(png).decode()
    f = rep.figures()
    cur = f["currency"]
    rows = "".join(f"<tr><td>{html.escape(p)}</td><td>{f['kwh_by_period'][p]:,.1f}</td>"
                   f"<td>{f['cost_by_period'][p]:,.2f}</td></tr>" for p in f["kwh_by_period"])
    events = "".join(
        f"<tr><td>{e.raised_at.isoformat()}</td><td>{html.escape(e.type)}</td>"
        f"<td>{html.escape(e.meter_id)}</td><td>{html.escape(e.summary)}</td></tr>"
        for e in rep.events if e.state == "firing")
    advice = "".join(f"<li>{html.escape(a)}</li>" for a in f["advice"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Energy report {html.escape(rep.customer_id)} {html.escape(rep.label)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
td,th{{padding:.2em .6em;text-align:left}} img{{max-width:100%}}</style></head><body>
<h1>Energy report — {html.escape(rep.customer_name or rep.customer_id)}</h1>
<p>Customer {html.escape(rep.customer_id)} · {html.escape(rep.label)} · tariff
{html.escape(rep.tariff.region)}</p>
<table id="figures">
<tr><th>Energy</th><td id="kwh">{f['kwh']:,.1f} kWh</td></tr>
<tr><th>Energy cost</th><td id="cost">{f['energy_cost']:,.2f} {cur}</td></tr>
<tr><th>Maximum demand</th><td id="max-demand">{f['max_demand_kw']:,.1f} kW</td></tr>
<tr><th>Load factor</th><td id="load-factor">{f['load_factor']}</td></tr>
<tr><th>Power factor</th><td id="pf">{f['power_factor']}
 ({f['pf_adjustment_share']:+.2%}, {f['pf_adjustment_cost']:+,.2f} {cur})</td></tr>
</table>
<h2>Energy by tariff period</h2>
<table id="periods"><tr><th>period</th><th>kWh</th><th>cost ({cur})</th></tr>{rows}</table>
<h2>Advice</h2><ul id="advice">{advice}</ul>
<h2>Charts</h2><img alt="summary page" src="data:image/png;base64,{img}">
<h2>Anomalies and device events</h2>
<table id="events"><tr><th>raised</th><th>type</th><th>about</th><th>summary</th></tr>
{events}</table>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
