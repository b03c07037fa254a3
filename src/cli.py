"""The ``gridwatch`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridwatch._settings import (
    ConfigError,
    Settings,
    load_settings,
    mask_credentials,
    redact_logs,
)

app = typer.Typer(
    name="gridwatch",
    help="Streaming monitoring of smart meters: collect, detect, store, alert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
                 "config/gridwatch.yaml). GRIDWATCH_<SECTION>__<KEY> variables override it."),
]


@app.callback()
def _root() -> None:
    """Streaming monitoring of smart meters: collect, detect, store, alert.

    Settings come from config/gridwatch.yaml (or --config) and GRIDWATCH_* variables.
    """


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Load settings, or print one line naming the bad field and exit with code 2."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the settings file and the environment; print the effective settings (secrets
    hidden). Exits 2 with one line naming the bad field when something is wrong."""
    settings = settings_or_exit(config)
    out = Console()
    out.print_json(mask_credentials(settings.model_dump_json(indent=2)))
    out.print("[green]configuration is valid[/]")


@app.command("run")
def run(
    config: ConfigOpt = None,
    process_id: Annotated[int | None, typer.Option(
        "--process-id", "-i", help="This process's index in a bytewax cluster.")] = None,
    addresses: Annotated[list[str] | None, typer.Option(
        "--addresses", "-a", help="host:port of every cluster process, in order (repeat).")] = None,
    recovery_dir: Annotated[Path | None, typer.Option(
        "--recovery-dir", "-r", help="bytewax recovery partitions (enables recovery).")] = None,
) -> None:
    """Run the engine: MQTT collector, dataflow and alert router in one process.

    Readings are journalled before they are acknowledged to the broker; with --recovery-dir a
    restart (even after kill -9) resumes from the last snapshot and loses nothing. Several
    processes form a cluster with -i/-a; their collectors share the MQTT subscription.
    """
    import logging

    from gridwatch._engine import run_engine

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, object] = {}
    if recovery_dir is not None:
        overrides["engine"] = {"recovery_dir": str(recovery_dir)}
    settings = settings_or_exit(config, **overrides)
    if addresses and process_id is None:
        err.print("[bold red]error:[/] --addresses needs --process-id")
        raise typer.Exit(2)
    check_influx(settings)
    run_engine(settings, process_id=process_id, addresses=addresses)


def check_influx(settings: Settings) -> None:
    """Refused InfluxDB credentials stop a command at start (one line, exit code 2 from
    :func:`main`); an InfluxDB that cannot be reached does not (the spool covers outages)."""
    if settings.influx.enabled:
        from gridwatch.storage._writer import check_credentials

        check_credentials(settings.influx)


@app.command("replay")
def replay(
    path: Annotated[Path, typer.Argument(
        help="Readings: CSV (meter_id,timestamp,kw[,kwh,voltage,pf]), JSONL (one reading per "
             "line) or a journal directory.", exists=True)],
    config: ConfigOpt = None,
    no_influx: Annotated[bool, typer.Option(
        "--no-influx", help="Do not write to InfluxDB (no database needed).")] = False,
    alerts_out: Annotated[Path | None, typer.Option(
        "--alerts-out", help="Write every event raised as one JSON line to this file.")] = None,
    route: Annotated[bool, typer.Option(
        "--route", help="Also send the events through the alert router and its channels.")] = False,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Registry of the meters replayed (customer, grid cell, capacity, "
                           "nominal voltage); default: alerts.registry of the settings.")] = None,
) -> None:
    """Run the same dataflow as `run` over a file, with no broker: for tuning, evaluation and
    re-processing of recorded data. Prints a summary at the end."""
    from rich.table import Table

    from gridwatch._engine import replay as do_replay

    overrides: dict[str, object] = {}
    if registry is not None:
        overrides["alerts"] = {"registry": str(registry)}
    settings = settings_or_exit(config, **overrides)
    if not no_influx:
        check_influx(settings)
    stats = do_replay(settings, path, influx=not no_influx, alerts_out=alerts_out, route=route)
    out = Console()
    table = Table(title=f"replay of {path}", show_header=True)
    table.add_column("event type")
    table.add_column("count", justify="right")
    for etype, n in sorted(stats.events_by_type.items()):
        table.add_row(etype, str(n))
    out.print(table)
    out.print(f"readings processed: {stats.readings}  rejected: {stats.rejected} "
              f"{dict(stats.rejected_by_reason) if stats.rejected else ''}")
    out.print(f"events raised: {stats.events}"
              + (f" (written to {alerts_out})" if alerts_out else ""))


def _register_storage() -> None:
    from gridwatch.storage._cli import report

    app.command("report")(report)


_register_storage()


def _register_ingest() -> None:
    from gridwatch.ingest._cli import collect, journal_app

    app.command("collect")(collect)
    app.add_typer(journal_app, name="journal")


_register_ingest()


def _register_alerts() -> None:
    from gridwatch.alerts._cli import acl_command, alerts_app

    app.add_typer(alerts_app, name="alerts")
    app.command("acl")(acl_command)


_register_alerts()


def _register_simulate() -> None:
    from gridwatch.simulators._cli import simulate

    app.command("simulate")(simulate)


_register_simulate()


@app.command("evaluate")
def evaluate(
    readings: Annotated[Path | None, typer.Option(
        "--readings", help="Labelled readings (CSV or JSONL) to replay through the dataflow.",
        exists=True)] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help='JSONL labels: {"meter_id","type","start","end"} per line.',
        exists=True)] = None,
    nab: Annotated[Path | None, typer.Option(
        "--nab", help="Numenta Anomaly Benchmark directory (data/, labels/, config/).",
        exists=True)] = None,
    nab_results: Annotated[Path | None, typer.Option(
        "--nab-results", help="Write NAB-format result files under this directory.")] = None,
    no_baseline: Annotated[bool, typer.Option(
        "--no-baseline", help="Skip the River HalfSpaceTrees baseline on NAB.")] = False,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures as JSON to this file.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Measure detection: event precision/recall/F1, detection delay and false alarms per
    1,000 meter-days on a labelled data set; NAB scores (standard, reward-low-FP,
    reward-low-FN) beside the published scoreboard and a River HalfSpaceTrees baseline."""
    from gridwatch.models._evaluate import run_evaluate

    settings = settings_or_exit(config)
    code = run_evaluate(settings, readings=readings, labels=labels, nab=nab,
                        nab_results=nab_results, baseline=not no_baseline, json_out=json_out)
    raise typer.Exit(code)


def configuration_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the configuration or the credentials are wrong": every command ends
    on them with one line and exit code 2, never a traceback."""
    from gridwatch.alerts import RegistryError, RoutesError, TemplateError
    from gridwatch.ingest import CollectorError
    from gridwatch.storage._writer import InfluxAuthError

    return (ConfigError, CollectorError, InfluxAuthError, RegistryError, RoutesError,
            TemplateError)


def main() -> None:
    redact_logs()
    try:
        app()
    except Exception as exc:
        if not isinstance(exc, configuration_errors()):
            raise
        text = mask_credentials(" ".join(str(exc).split()))
        err.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
