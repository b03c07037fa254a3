"""The ``gridwatch report`` command (registered in gridwatch.cli)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]


def report(
    meter: Annotated[str, typer.Option("--meter", "-m", help="Meter id.")],
    start: Annotated[datetime, typer.Option(
        "--from", formats=_FORMATS, help="Start of the period (UTC unless an offset is given).")],
    end: Annotated[datetime | None, typer.Option(
        "--to", formats=_FORMATS, help="End of the period, exclusive (default: now).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
        "config/gridwatch.yaml).")] = None,
) -> None:
    """Print one meter's readings summary, daily load profile and events over a period, read
    from InfluxDB with InfluxQL (InfluxDB 1.x, 2.x's v1 API, 3.x)."""
    from rich.console import Console

    from gridwatch._cli_common import err, settings_or_exit
    from gridwatch.storage._reader import ReadError
    from gridwatch.storage._report import run_report

    settings = settings_or_exit(config)
    try:
        run_report(settings.influx, meter, start, end, Console())
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except ReadError as exc:
        err.print(f"[bold red]cannot read from InfluxDB:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
