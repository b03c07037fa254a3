"""The ``gridwatch energy-report`` command (registered in gridwatch.cli)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["energy_report"]


def energy_report(
    customer: Annotated[str, typer.Option("--customer", help="Customer id (registry).")],
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
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
        "config/gridwatch.yaml).")] = None,
) -> None:
    """Render an industrial customer's energy report (HTML and PDF) for a month or a week from
    InfluxDB: energy and cost by time-of-use period, maximum demand against the contracted
    capacity, load factor, power factor and its adjustment, anomalies and device events,
    advice."""
    from rich.console import Console

    from gridwatch.alerts import Registry, RegistryError
    from gridwatch.cli import err, settings_or_exit
    from gridwatch.reports._report import build_report, period_bounds, render
    from gridwatch.reports._tariff import TariffError, load_tariff
    from gridwatch.storage import InfluxReader
    from gridwatch.storage._reader import ReadError

    t0 = time.perf_counter()
    settings = settings_or_exit(config)

    def fail(message: str, code: int = 2) -> typer.Exit:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return typer.Exit(code)

    try:
        reg = Registry.load(registry or settings.alerts.registry)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    cust = reg.customer(customer)
    if cust is None:
        raise fail(f"customer {customer!r} is not in the registry")
    region = tariff or cust.tariff
    if not region:
        raise fail(f"customer {customer!r} has no tariff in the registry: give --tariff")
    try:
        tar = load_tariff(region)
        start, end, label = period_bounds(month, week, tar.timezone)
    except (TariffError, ValueError) as exc:
        raise fail(str(exc)) from None
    # readings are stamped at the end of their interval: the month's are (start, end]
    second = timedelta(seconds=1)
    try:
        with InfluxReader(settings.influx) as reader:
            readings = [r for m in cust.meters
                        for r in reader.readings(m.id, start + second, end + second)]
            events = reader.events(customer_id=cust.id, start=start, end=end)
    except ReadError as exc:
        raise fail(f"cannot read from InfluxDB: {exc}", 1) from None
    if not readings:
        raise fail(f"no readings of {customer!r} in {label}", 1)
    capacity = cust.contracted_kva or sum(m.contracted_kva or 0 for m in cust.meters) or None
    rep = build_report(cust.id, cust.name, readings, events, tar, start, end, label, capacity)
    stem = out / f"{cust.id}-{label}"
    html, pdf = render(rep, stem, png)
    figures = rep.figures()
    stem.with_suffix(".json").write_text(json.dumps(figures, indent=1, ensure_ascii=False),
                                         encoding="utf-8")
    con = Console()
    con.print(f"{cust.id} {label}: {figures['kwh']:,.0f} kWh, {figures['energy_cost']:,.0f} "
              f"{tar.currency}, max demand {figures['max_demand_kw']:,.0f} kW, "
              f"{sum(figures['events'].values())} events")
    con.print(f"wrote {html} and {pdf} in {time.perf_counter() - t0:.2f} s")
