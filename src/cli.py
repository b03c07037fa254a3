"""The ``gridwatch`` command line."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gridwatch._cli_common import ConfigOpt, err, log_to_stderr, settings_or_exit, tidy_help
from gridwatch._redact import mask_credentials, redact_logs

if TYPE_CHECKING:
    from gridwatch._settings import Settings

app = typer.Typer(
    name="gridwatch",
    help="Streaming monitoring of smart meters: collect, detect, store, alert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Streaming monitoring of smart meters: collect, detect, store, alert.

    Settings come from config/gridwatch.yaml (or --config) and GRIDWATCH_* variables.
    """


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the settings file and the environment; print the effective settings (secrets
    hidden), then the data directory and every file and directory of state as the engine will
    use them. Exits 2 with one line naming the bad field when something is wrong."""
    settings = settings_or_exit(config)
    out = Console()
    out.print_json(mask_credentials(settings.model_dump_json(indent=2)))
    out.print(f"data directory: {settings.engine.data_dir}", highlight=False, markup=False)
    out.print("state:", highlight=False, markup=False)
    rows = _state_paths(settings)
    width = max(len(name) for name, _, _ in rows)
    for name, path, note in rows:
        shown = "off" if path is None else str(path)
        out.print(f"  {name:<{width}}  {shown}{f' ({note})' if note else ''}",
                  highlight=False, markup=False, soft_wrap=True)
    out.print("[green]configuration is valid[/]")


def _state_paths(settings: Settings) -> list[tuple[str, Path | None, str]]:
    """Every file and directory of state the settings resolve to: (setting, path or None when
    off, a note on where a path comes from when it is not the setting itself)."""
    from gridwatch._settings import STATE_PATHS
    from gridwatch.tags._notes import tags_db_path

    data_dir = settings.engine.data_dir
    rows: list[tuple[str, Path | None, str]] = [
        (f"{section}.{name}", getattr(getattr(settings, section), name), "")
        for section, name in STATE_PATHS if section != "web"]  # the workspace's: below
    a, web = settings.alerts, settings.web
    rows.append(("alerts.tags_db", tags_db_path(a),
                 "" if a.tags_db else "default: beside alerts.state_db"))
    rows.append(("alert export position", a.state_db.with_suffix(".exported"),
                 "beside alerts.state_db"))
    rows.append(("web.db", web.db or a.state_db, "" if web.db else "alerts.state_db"))
    if web.secret_key is not None:
        rows.append(("web.secret_file", None, "web.secret_key is set"))
    else:
        secret = web.secret_file.expanduser().absolute()  # under data_dir unless absolute
        outside = data_dir is not None and not secret.is_relative_to(data_dir)
        rows.append(("web.secret_file", secret,
                     "not under the data directory" if outside else ""))
    return rows


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
    from gridwatch._engine import run_engine

    log_to_stderr()
    overrides: dict[str, object] = {}
    if recovery_dir is not None:
        overrides["engine"] = {"recovery_dir": str(recovery_dir.absolute())}
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
    processes: Annotated[int, typer.Option(
        "--processes", "-p", min=1,
        help="Local processes to replay with (a cluster on loopback addresses; each steps "
             "the meters of its own cells). Not with --route.")] = 1,
) -> None:
    """Run the same dataflow as `run` over a file, with no broker: for tuning, evaluation and
    re-processing of recorded data. Prints a summary at the end."""
    from rich.table import Table

    from gridwatch._engine import replay as do_replay

    if processes > 1 and route:
        err.print("[bold red]error:[/] --route needs one process: the alert router of a "
                  "replay is one database (leave out --processes, or --route)")
        raise typer.Exit(2)
    overrides: dict[str, object] = {}
    if registry is not None:
        overrides["alerts"] = {"registry": str(registry)}
    settings = settings_or_exit(config, **overrides)
    if not path.is_dir():
        from gridwatch.ingest import check_readings_file

        try:
            check_readings_file(path)
        except ValueError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
    if not no_influx:
        check_influx(settings)
    from gridwatch._filereplay import Progress, count_lines

    # A file's progress, by its lines (a journal's is not shown)
    progress = None if path.is_dir() else Progress(err, count_lines(path), unit="lines")
    if processes > 1:
        from gridwatch._replay_cluster import ReplayFailed, replay_cluster

        err.print(f"replay of {path} with {processes} processes, each the meters of its "
                  "own cells")
        try:
            stats = replay_cluster(settings, path, processes, influx=not no_influx,
                                   alerts_out=alerts_out, progress=progress,
                                   say=err.print)
        except ReplayFailed as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None
    else:
        with progress or nullcontext() as report:
            stats = do_replay(settings, path, influx=not no_influx, alerts_out=alerts_out,
                              route=route, entry_point=True, progress=report)
    out = Console()
    table = Table(title=f"replay of {path}", show_header=True)
    table.add_column("event type")
    table.add_column("firing", justify="right")
    table.add_column("resolved", justify="right")
    for etype in sorted(set(stats.events_by_type) | set(stats.resolutions_by_type)):
        table.add_row(etype, str(stats.events_by_type.get(etype, 0)),
                      str(stats.resolutions_by_type.get(etype, 0)))
    out.print(table)
    out.print(f"readings processed: {stats.readings}  rejected: {stats.rejected} "
              f"{dict(stats.rejected_by_reason) if stats.rejected else ''}")
    out.print(f"alarms raised (firing): {stats.events}  resolutions: {stats.resolutions}"
              + (f" (all written to {alerts_out})" if alerts_out else ""))


def _register_storage() -> None:
    from gridwatch.storage._cli import report

    app.command("report")(report)


_register_storage()


def _register_reports() -> None:
    from gridwatch.reports._cli import energy_report, forecast_scores

    app.command("energy-report")(energy_report)
    app.command("forecast-scores")(forecast_scores)


_register_reports()


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


def _register_web() -> None:
    from gridwatch.web._cli import digest, serve, users_app

    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
    app.command("digest")(digest)


_register_web()


def _register_tags() -> None:
    from gridwatch.tags._cli import import_command, tags_app

    app.add_typer(tags_app, name="tags")
    app.command("import")(import_command)


_register_tags()


@app.command("evaluate")
def evaluate(
    readings: Annotated[Path | None, typer.Option(
        "--readings", help="Labelled readings (CSV or JSONL) to replay through the dataflow.",
        exists=True)] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help='JSONL labels, one object per line with meter_id, type, start and end.',
        exists=True)] = None,
    nab: Annotated[Path | None, typer.Option(
        "--nab", help="Numenta Anomaly Benchmark directory (data/, labels/, config/).",
        exists=True)] = None,
    nab_results: Annotated[Path | None, typer.Option(
        "--nab-results", help="Write NAB-format result files under this directory.")] = None,
    no_baseline: Annotated[bool, typer.Option(
        "--no-baseline", help="Skip the River HalfSpaceTrees baseline on NAB.")] = False,
    nab_tune: Annotated[bool, typer.Option(
        "--nab-tune", help="Also choose the NAB detector's parameters from a small grid on the "
                           "tuning half of the corpus and report them on the held-out half.")]
        = False,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures as JSON to this file.")] = None,
    interval: Annotated[int | None, typer.Option(
        "--interval", min=60, max=86_400,
        help="Reading interval in seconds (default: inferred from --readings).")] = None,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Registry of the meters (customer, cell, capacity); default: "
                           "alerts.registry of the settings when it exists.")] = None,
    half: Annotated[str | None, typer.Option(
        "--half", help="Only the meters (and labels) of one half of --readings: 'tune' (CRC-32 "
                       "of the meter id even) or 'held' (odd).")] = None,
    grace_min: Annotated[float, typer.Option(
        "--grace-min", min=0, help="Matching window: an event raised up to this long after a "
                                   "label's end (or with its onset this long before its "
                                   "start) still matches it.")] = 120.0,
    verdicts: Annotated[bool, typer.Option(
        "--verdicts", help="Score detection against the verdicts managers gave in the "
                           "workspace (precision by type and cell) instead.")] = False,
    days: Annotated[float | None, typer.Option(
        "--days", help="With --verdicts: only verdicts of the last DAYS days.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Measure detection: event precision/recall/F1 (firing events scored, resolutions counted
    apart), recall and delay per injected shape, over-capacity lead time, false alarms per
    1,000 meter-days on a labelled data set; NAB scores (standard, reward-low-FP,
    reward-low-FN) beside the published scoreboard and a River HalfSpaceTrees baseline.

    A label is detected by a firing event of its type about its meter raised within
    [start, end + grace] or with its onset within [start - grace, end]."""
    if verdicts:
        from gridwatch.web._cli import verdicts_report

        raise typer.Exit(verdicts_report(config, days))
    from datetime import timedelta

    from gridwatch._evaluate import run_evaluate

    if half not in (None, "tune", "held"):
        err.print(f"[bold red]error:[/] --half {half!r}: use tune or held")
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    code = run_evaluate(settings, readings=readings, labels=labels, nab=nab,
                        nab_results=nab_results, baseline=not no_baseline, json_out=json_out,
                        interval=interval, registry=registry,
                        grace=timedelta(minutes=grace_min), nab_tune=nab_tune, half=half)
    raise typer.Exit(code)


@app.command("falsealarms")
def falsealarms(
    path: Annotated[Path, typer.Argument(
        help="Readings with no known faults (CSV or JSONL, optionally .gz), in time order.",
        exists=True, dir_okay=False)],
    interval: Annotated[int | None, typer.Option(
        "--interval", min=60, max=86_400,
        help="Reading interval in seconds (default: inferred from the file).")] = None,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Registry of the meters (customer, cell, capacity); default: "
                           "alerts.registry of the settings when it exists.")] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="How many worst meters to list.")]
        = 10,
    half: Annotated[str | None, typer.Option(
        "--half", help="Only the meters of one half: 'tune' (CRC-32 of the id even) or 'held' "
                       "(odd); tune on one, report on the other.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures as JSON to this file ('-': the JSON on stdout, "
                         "the tables on stderr).")]
        = None,
    config: ConfigOpt = None,
) -> None:
    """False alarms on real load: replay a file taken to hold no faults through the engine and
    report every alarm per 1,000 meter-days by type and kind (firing and resolutions apart),
    communication-loss alarms checked against the file's own gaps, and the worst meters."""
    from gridwatch._falsealarms import run_falsealarms

    if half not in (None, "tune", "held"):
        err.print(f"[bold red]error:[/] --half {half!r}: use tune or held")
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    raise typer.Exit(run_falsealarms(settings, path, interval=interval, registry=registry,
                                     top=top, json_out=json_out, half=half))



def configuration_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the configuration or the credentials are wrong": every command ends
    on them with one line and exit code 2, never a traceback."""
    from gridwatch._settings import ConfigError
    from gridwatch.alerts import RegistryError, RoutesError, TemplateError
    from gridwatch.ingest import CollectorError
    from gridwatch.storage._writer import InfluxAuthError

    return (ConfigError, CollectorError, InfluxAuthError, RegistryError, RoutesError,
            TemplateError)


tidy_help(app)


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
