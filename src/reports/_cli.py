"""The ``gridwatch energy-report`` command (registered in gridwatch.cli)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["energy_report", "forecast_scores"]

T = TypeVar("T")

_Config = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or config/gridwatch.yaml).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as the command's error and give the exit to raise."""
    from gridwatch._cli_common import err

    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _period(region: str, month: str | None, week: str | None) -> tuple[Any, Any, Any, str]:
    """The tariff of ``region`` and the month's or week's bounds in its time zone:
    ``(tariff, start, end, label)``."""
    from gridwatch.reports._report import period_bounds
    from gridwatch.reports._tariff import TariffError, load_tariff

    try:
        tar = load_tariff(region)
        start, end, label = period_bounds(month, week, tar.timezone)
    except (TariffError, ValueError) as exc:
        raise _fail(str(exc)) from None
    return tar, start, end, label


def _from_influx(settings: Any, read: Callable[[Any], T]) -> T:
    """``read(reader)`` with an InfluxDB reader of the settings; a read error ends the
    command (exit 1)."""
    from gridwatch.storage import InfluxReader
    from gridwatch.storage._reader import ReadError

    try:
        with InfluxReader(settings.influx) as reader:
            return read(reader)
    except ReadError as exc:
        raise _fail(f"cannot read from InfluxDB: {exc}", 1) from None


def _ns(ts: Any) -> int:
    """An aware datetime as InfluxDB's nanoseconds since the epoch."""
    return int(ts.timestamp() * 1e9)


def _reading(meter_id: str, ts: Any, kw: float, pf: float | None, interval_s: int | None) -> Any:
    """A reading with only what the report uses (built without validation: the values come
    from the database, which holds only validated readings)."""
    from gridwatch._schemas import Reading

    return Reading.model_construct(
        meter_id=meter_id, ts=ts, kw=kw, kwh=None, export_kwh=None, voltage=None,
        current=None, pf=pf, freq=None, status=(), interval_s=interval_s)


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
    config: _Config = None,
) -> None:
    """Render an industrial customer's energy report (HTML and PDF) for a month or a week from
    InfluxDB: energy and cost by time-of-use period, maximum demand against the contracted
    capacity, load factor, power factor and its adjustment, anomalies and device events,
    advice. With --cell, the same report of a grid cell from its transformer."""

    from gridwatch._cli_common import err, settings_or_exit
    from gridwatch.alerts import Registry, RegistryError

    t0 = time.perf_counter()
    settings = settings_or_exit(config)
    try:
        reg = Registry.load(registry or settings.alerts.registry)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    if sum((customer is not None, cell is not None, every)) != 1:
        raise _fail("give either --customer, --all or --cell")
    if cell is not None:
        if send:
            raise _fail("--send mails customer reports; a cell report is for the workspace")
        _cell_report(reg, cell, month, week, out, tariff, png, settings, t0)
        return
    if customer is not None:
        cust = reg.customer(customer)
        if cust is None:
            raise _fail(f"customer {customer!r} is not in the registry")
        _customer_report(cust, month, week, out, tariff, png, send, to, settings, t0)
        return
    chosen = [c for c in reg.customers if c.customer_class.value == "industrial" and c.notices]
    failed = []
    for cust in chosen:
        try:
            _customer_report(cust, month, week, out, tariff, None, send, None, settings,
                             time.perf_counter())
        except typer.Exit:
            failed.append(cust.id)
    err.print(f"{len(chosen) - len(failed)} of {len(chosen)} reports written"
              + (f"; failed: {', '.join(failed)}" if failed else ""), highlight=False)
    if failed:
        raise typer.Exit(1)


def _customer_report(cust: Any, month: str | None, week: str | None, out: Path,
                     tariff: str | None, png: Path | None, send: bool, to: str | None,
                     settings: Any, t0: float) -> None:
    from gridwatch._cli_common import err
    from gridwatch.reports._report import build_report

    region = tariff or cust.tariff
    if not region:
        raise _fail(f"customer {cust.id!r} has no tariff in the registry: give --tariff")
    tar, start, end, label = _period(region, month, week)
    # readings are stamped at the end of their interval: the month's are (start, end]
    second = timedelta(seconds=1)
    readings, events = _from_influx(settings, lambda reader: (
        _load(reader, [m.id for m in cust.meters], start + second, end + second),
        reader.events(customer_id=cust.id, start=start, end=end)))
    if not readings:
        raise _fail(f"no readings of {cust.id!r} in {label}", 1)
    capacity = cust.contracted_kva or sum(m.contracted_kva or 0 for m in cust.meters) or None
    rep = build_report(cust.id, cust.name, readings, events, tar, start, end, label, capacity)
    files = _write(rep, out / f"{cust.id}-{label}", png, t0)
    if send:
        from gridwatch.reports._deliver import mail_report

        address = to or cust.contacts.email
        if not address:
            raise _fail(f"customer {cust.id!r} has no e-mail contact: give --to")
        result = mail_report(settings.alerts.smtp, address, rep.figures(), files)
        if not result.ok:
            raise _fail(f"the report of {cust.id} was not mailed: {result.detail}", 1)
        err.print(f"mailed to {address}", highlight=False)


def _load(reader: Any, meters: list[str], start: Any, end: Any) -> list[Any]:
    """The meters' power, power factor and interval in ``[start, end)``: one query for the
    fields the report uses (the full readings, validated again, take twice as long)."""
    from datetime import UTC, datetime

    from gridwatch.storage._reader import quote

    if not meters:
        return []
    who = " OR ".join(f"meter_id = {quote(m)}" for m in meters)
    # the reader's retention-policy prefix, as its own queries use it
    q = (f'SELECT kw, pf, interval_s FROM {reader._prefix}"reading" WHERE ({who}) AND '
         f"time >= {_ns(start)} AND time < {_ns(end)} GROUP BY meter_id")
    out = []
    for row in reader.rows(q):
        kw = row.get("kw")
        if kw is None:
            reader.skipped += 1
            continue
        interval = row.get("interval_s")
        out.append(_reading(
            row.get("meter_id", ""), datetime.fromtimestamp(int(row["time"]) / 1e9, UTC),
            float(kw), None if row.get("pf") is None else float(row["pf"]),
            None if interval is None else int(interval)))
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
                 tariff: str | None, png: Path | None, settings: Any, t0: float) -> None:
    """A grid cell's report: its transformer's load (telemetry) against its rating, energy
    by tariff period, every event of the cell."""
    from gridwatch.reports._report import build_report
    from gridwatch.storage._reader import quote

    if reg.cell(cell) is None:
        raise _fail(f"grid cell {cell!r} is not in the registry")
    tx = next((d for d in reg.devices if d.kind.value == "transformer"
               and d.grid_cell == cell), None)
    if tx is None:
        raise _fail(f"grid cell {cell!r} has no transformer in the registry's devices")
    region = tariff or next((c.tariff for c in reg.customers
                             if c.grid_cell == cell and c.tariff), None)
    if not region:
        raise _fail(f"no tariff for grid cell {cell!r}: give --tariff")
    tar, start, end, label = _period(region, month, week)
    second = timedelta(seconds=1)
    where = (f"WHERE device_id = {quote(tx.id)} AND time >= {_ns(start + second)} "
             f"AND time < {_ns(end + second)}")
    rows, events = _from_influx(settings, lambda reader: (
        list(reader.rows(f'SELECT kw, kva FROM {reader._prefix}"telemetry" {where}')),
        reader.events(grid_cell=cell, start=start, end=end)))
    from datetime import UTC, datetime
    from itertools import pairwise

    readings = []
    times = [datetime.fromtimestamp(int(r["time"]) / 1e9, UTC) for r in rows]  # epoch=ns
    step = min((b - a for a, b in pairwise(times)), default=timedelta(minutes=15))
    for r, ts in zip(rows, times, strict=True):
        kw, kva = float(r.get("kw", 0.0)), float(r.get("kva") or 0.0)
        pf = min(abs(kw) / kva, 1.0) if kva > 0 else None
        readings.append(_reading(tx.id, ts, kw, pf, int(step.total_seconds())))
    if not readings:
        raise _fail(f"no telemetry of transformer {tx.id!r} in {label}", 1)
    rep = build_report(cell, f"Grid cell {cell} (transformer {tx.id})", readings, events, tar,
                       start, end, label, tx.ratings.kva)
    _write(rep, out / f"cell-{cell}-{label}", png, t0)


def forecast_scores(
    start: Annotated[str, typer.Option("--from", help="Start, ISO date or time (UTC).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive, ISO date or time (UTC).")],
    target: Annotated[str | None, typer.Option(
        "--target", help="Only this transformer or customer.")] = None,
    config: _Config = None,
) -> None:
    """Score the stored load forecasts that have come true in a period (the ``forecast``
    measurement): MAPE and pinball loss per target kind and horizon."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from gridwatch._cli_common import err, settings_or_exit
    from gridwatch.models._forecast import score_stored
    from gridwatch.storage._reader import quote

    settings = settings_or_exit(config)
    try:
        t0, t1 = (datetime.fromisoformat(x) for x in (start, end))
        t0, t1 = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (t0, t1))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    where = f" AND target = {quote(target)}" if target else ""
    q = f"WHERE time >= {_ns(t0)} AND time < {_ns(t1)}{where}"
    scores = _from_influx(settings, lambda reader: score_stored(
        reader.rows(f'SELECT * FROM {reader._prefix}"forecast" {q}')))
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
