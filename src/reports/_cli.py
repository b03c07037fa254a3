"""The ``gridwatch energy-report`` command (registered in gridwatch.cli)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["energy_report", "forecast_scores"]


def energy_report(
    customer: Annotated[str | None, typer.Option(
        "--customer", help="Customer id (registry).")] = None,
    every: Annotated[bool, typer.Option(
        "--all", help="Every industrial customer who agreed to notices (the monthly run); "
                      "exits 1 if any report fails, after trying them all.")] = False,
    cell: Annotated[str | None, typer.Option(
        "--cell", help="Instead of a customer: a grid cell, from its transformer's telemetry "
                       "(the cell manager's report).")] = None,
    month: Annotated[str | None, typer.Option(
        "--month", help="Local calendar month, YYYY-MM.")] = None,
    week: Annotated[str | None, typer.Option(
        "--week", help="ISO week instead of a month, YYYY-Www (e.g. 2024-W15).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Directory for the HTML, PDF and JSON files.")] = Path("var/reports"),
    tariff: Annotated[str | None, typer.Option(
        "--tariff", help="Tariff region (config/tariffs/<region>.yaml) or file; default: the "
                         "customer's tariff in the registry.")] = None,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Registry file (default: alerts.registry of the settings).")] = None,
    png: Annotated[Path | None, typer.Option(
        "--png", help="Also write the summary page as a PNG image here.")] = None,
    send: Annotated[bool, typer.Option(
        "--send", help="Mail the PDF and HTML to the customer's e-mail contact (alerts.smtp "
                       "settings); exits 1 when the mail does not go.")] = False,
    to: Annotated[str | None, typer.Option(
        "--to", help="With --send: this address instead of the registry's contact.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
        "config/gridwatch.yaml).")] = None,
) -> None:
    """Render an industrial customer's energy report (HTML and PDF) for a month or a week from
    InfluxDB: energy and cost by time-of-use period, maximum demand against the contracted
    capacity, load factor, power factor and its adjustment, anomalies and device events,
    advice. With --cell, the same report of a grid cell from its transformer."""

    from gridwatch._cli_common import err, settings_or_exit
    from gridwatch.alerts import Registry, RegistryError

    t0 = time.perf_counter()
    settings = settings_or_exit(config)

    def fail(message: str, code: int = 2) -> typer.Exit:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return typer.Exit(code)

    try:
        reg = Registry.load(registry or settings.alerts.registry)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    if sum((customer is not None, cell is not None, every)) != 1:
        raise fail("give either --customer, --all or --cell")
    if cell is not None:
        if send:
            raise fail("--send mails customer reports; a cell report is for the workspace")
        _cell_report(reg, cell, month, week, out, tariff, png, settings, fail, t0)
        return
    if customer is not None:
        cust = reg.customer(customer)
        if cust is None:
            raise fail(f"customer {customer!r} is not in the registry")
        _customer_report(cust, month, week, out, tariff, png, send, to, settings, fail, t0)
        return
    chosen = [c for c in reg.customers if c.customer_class.value == "industrial" and c.notices]
    failed = []
    for cust in chosen:
        try:
            _customer_report(cust, month, week, out, tariff, None, send, None, settings, fail,
                             time.perf_counter())
        except typer.Exit:
            failed.append(cust.id)
    err.print(f"{len(chosen) - len(failed)} of {len(chosen)} reports written"
              + (f"; failed: {', '.join(failed)}" if failed else ""), highlight=False)
    if failed:
        raise typer.Exit(1)


def _customer_report(cust: Any, month: str | None, week: str | None, out: Path,
                     tariff: str | None, png: Path | None, send: bool, to: str | None,
                     settings: Any, fail: Any, t0: float) -> None:
    from gridwatch._cli_common import err
    from gridwatch.reports._report import build_report, period_bounds
    from gridwatch.reports._tariff import TariffError, load_tariff
    from gridwatch.storage import InfluxReader
    from gridwatch.storage._reader import ReadError

    region = tariff or cust.tariff
    if not region:
        raise fail(f"customer {cust.id!r} has no tariff in the registry: give --tariff")
    try:
        tar = load_tariff(region)
        start, end, label = period_bounds(month, week, tar.timezone)
    except (TariffError, ValueError) as exc:
        raise fail(str(exc)) from None
    # readings are stamped at the end of their interval: the month's are (start, end]
    second = timedelta(seconds=1)
    try:
        with InfluxReader(settings.influx) as reader:
            readings = _load(reader, [m.id for m in cust.meters], start + second,
                             end + second)
            events = reader.events(customer_id=cust.id, start=start, end=end)
    except ReadError as exc:
        raise fail(f"cannot read from InfluxDB: {exc}", 1) from None
    if not readings:
        raise fail(f"no readings of {cust.id!r} in {label}", 1)
    capacity = cust.contracted_kva or sum(m.contracted_kva or 0 for m in cust.meters) or None
    rep = build_report(cust.id, cust.name, readings, events, tar, start, end, label, capacity)
    files = _write(rep, out / f"{cust.id}-{label}", png, t0)
    if send:
        from gridwatch.reports._deliver import mail_report

        address = to or cust.contacts.email
        if not address:
            raise fail(f"customer {cust.id!r} has no e-mail contact: give --to")
        result = mail_report(settings.alerts.smtp, address, rep.figures(), files)
        if not result.ok:
            raise fail(f"the report of {cust.id} was not mailed: {result.detail}", 1)
        err.print(f"mailed to {address}", highlight=False)


def _load(reader: Any, meters: list[str], start: Any, end: Any) -> list[Any]:
    """The meters' power, power factor and interval in ``[start, end)``: one query for the
    fields the report uses (the full readings, validated again, take twice as long)."""
    from datetime import UTC, datetime

    from gridwatch._schemas import Reading
    from gridwatch.storage._reader import quote

    if not meters:
        return []
    who = " OR ".join(f"meter_id = {quote(m)}" for m in meters)
    # the reader's retention-policy prefix, as its own queries use it
    q = (f'SELECT kw, pf, interval_s FROM {reader._prefix}"reading" WHERE ({who}) AND '
         f"time >= {int(start.timestamp() * 1e9)} AND time < {int(end.timestamp() * 1e9)} "
         f"GROUP BY meter_id")
    out = []
    for row in reader.rows(q):
        kw = row.get("kw")
        if kw is None:
            reader.skipped += 1
            continue
        interval = row.get("interval_s")
        out.append(Reading.model_construct(
            meter_id=row.get("meter_id", ""), ts=datetime.fromtimestamp(int(row["time"]) / 1e9,
                                                                        UTC),
            kw=float(kw), kwh=None, export_kwh=None, voltage=None, current=None,
            pf=None if row.get("pf") is None else float(row["pf"]), freq=None, status=(),
            interval_s=None if interval is None else int(interval)))
    return out


def _write(rep: Any, stem: Path, png: Path | None, t0: float) -> list[Path]:
    from rich.console import Console

    from gridwatch.reports._report import render

    html, pdf = render(rep, stem, png)
    figures = rep.figures()
    stem.with_suffix(".json").write_text(json.dumps(figures, indent=1, ensure_ascii=False),
                                         encoding="utf-8")
    con = Console()
    con.print(f"{rep.customer_id} {rep.label}: {figures['kwh']:,.0f} kWh, "
              f"{figures['energy_cost']:,.0f} {figures['currency']}, max demand "
              f"{figures['max_demand_kw']:,.0f} kW, {sum(figures['events'].values())} events")
    con.print(f"wrote {html} and {pdf} in {time.perf_counter() - t0:.2f} s")
    return [pdf, html]


def _cell_report(reg: Any, cell: str, month: str | None, week: str | None, out: Path,
                 tariff: str | None, png: Path | None, settings: Any, fail: Any,
                 t0: float) -> None:
    """A grid cell's report: its transformer's load (telemetry) against its rating, energy
    by tariff period, every event of the cell."""
    from gridwatch._schemas import Reading
    from gridwatch.reports._report import build_report, period_bounds
    from gridwatch.reports._tariff import TariffError, load_tariff
    from gridwatch.storage import InfluxReader
    from gridwatch.storage._reader import ReadError, quote

    if reg.cell(cell) is None:
        raise fail(f"grid cell {cell!r} is not in the registry")
    tx = next((d for d in reg.devices if d.kind.value == "transformer"
               and d.grid_cell == cell), None)
    if tx is None:
        raise fail(f"grid cell {cell!r} has no transformer in the registry's devices")
    region = tariff or next((c.tariff for c in reg.customers
                             if c.grid_cell == cell and c.tariff), None)
    if not region:
        raise fail(f"no tariff for grid cell {cell!r}: give --tariff")
    try:
        tar = load_tariff(region)
        start, end, label = period_bounds(month, week, tar.timezone)
    except (TariffError, ValueError) as exc:
        raise fail(str(exc)) from None
    second = timedelta(seconds=1)
    where = (f"WHERE device_id = {quote(tx.id)} "
             f"AND time >= {int((start + second).timestamp() * 1e9)} "
             f"AND time < {int((end + second).timestamp() * 1e9)}")
    try:
        with InfluxReader(settings.influx) as reader:
            rows = list(reader.rows(f'SELECT kw, kva FROM {reader._prefix}"telemetry" {where}'))
            events = reader.events(grid_cell=cell, start=start, end=end)
    except ReadError as exc:
        raise fail(f"cannot read from InfluxDB: {exc}", 1) from None
    from datetime import UTC, datetime
    from itertools import pairwise

    readings = []
    times = [datetime.fromtimestamp(int(r["time"]) / 1e9, UTC) for r in rows]  # epoch=ns
    step = min((b - a for a, b in pairwise(times)), default=timedelta(minutes=15))
    for r, ts in zip(rows, times, strict=True):
        kw, kva = float(r.get("kw", 0.0)), float(r.get("kva") or 0.0)
        pf = min(abs(kw) / kva, 1.0) if kva > 0 else None
        readings.append(Reading.model_construct(
            meter_id=tx.id, ts=ts, kw=kw, kwh=None, export_kwh=None, voltage=None,
            current=None, pf=pf, freq=None, status=(), interval_s=int(step.total_seconds())))
    if not readings:
        raise fail(f"no telemetry of transformer {tx.id!r} in {label}", 1)
    rep = build_report(cell, f"Grid cell {cell} (transformer {tx.id})", readings, events, tar,
                       start, end, label, tx.ratings.kva)
    _write(rep, out / f"cell-{cell}-{label}", png, t0)


def forecast_scores(
    start: Annotated[str, typer.Option("--from", help="Start, ISO date or time (UTC).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive, ISO date or time (UTC).")],
    target: Annotated[str | None, typer.Option(
        "--target", help="Only this transformer or customer.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
        "config/gridwatch.yaml).")] = None,
) -> None:
    """Score the stored load forecasts that have come true in a period (the ``forecast``
    measurement): MAPE and pinball loss per target kind and horizon."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from gridwatch._cli_common import err, settings_or_exit
    from gridwatch.models._forecast import score_stored
    from gridwatch.storage import InfluxReader
    from gridwatch.storage._reader import ReadError, quote

    settings = settings_or_exit(config)
    try:
        t0, t1 = (datetime.fromisoformat(x) for x in (start, end))
        t0, t1 = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (t0, t1))
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    where = f" AND target = {quote(target)}" if target else ""
    q = (f"WHERE time >= {int(t0.timestamp() * 1e9)} AND "
         f"time < {int(t1.timestamp() * 1e9)}{where}")
    try:
        with InfluxReader(settings.influx) as reader:
            scores = score_stored(reader.rows(f'SELECT * FROM {reader._prefix}"forecast" {q}'))
    except ReadError as exc:
        err.print(f"[bold red]cannot read from InfluxDB:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    table = Table(title=f"forecasts come true, {start} to {end}")
    for col in ("target kind", "horizon", "scored", "MAPE %", "pinball / mean load"):
        table.add_column(col, justify="right" if col != "target kind" else "left")
    for (kind, horizon), sc in sorted(scores.items()):
        table.add_row(kind, horizon, str(sc.n),
                      "-" if sc.mape is None else f"{100 * sc.mape:.2f}",
                      "-" if sc.scaled_pinball is None else f"{sc.scaled_pinball:.4f}")
    Console().print(table)
    if not scores:
        err.print("no forecast has come true in that period")
        raise typer.Exit(1)
