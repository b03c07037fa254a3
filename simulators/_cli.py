"""``gridwatch simulate``: run a fleet (or replay recorded CSV) to MQTT or a file.

Only typer and rich are imported at module level; numpy, pandas and demandlib load when the
command runs, so ``gridwatch --help`` stays fast.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

DEFAULT_FLEET = Path("config/fleets/small.yaml")


class TargetKind(StrEnum):
    MQTT = "mqtt"
    CSV = "csv"
    JSONL = "jsonl"


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(f"{speed:,.0f} readings/s" if speed else "– readings/s", style="cyan")


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _parse_start(value: str, interval_min: int) -> datetime:
    if value.strip().lower() == "now":
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        return now - timedelta(minutes=now.minute % interval_min)
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def simulate(
    fleet: Annotated[Path, typer.Option(
        "--fleet", "-f", help="Fleet file (config/fleets/*.yaml).")] = DEFAULT_FLEET,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Random seed (default: the fleet file's). Same seed, same bytes.")] = None,
    speed: Annotated[str, typer.Option(
        "--speed", help="realtime, xN (e.g. x60: an hour a minute) or max.")] = "max",
    target: Annotated[TargetKind, typer.Option(
        "--target", "-t", help="Where readings go.")] = TargetKind.MQTT,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output file for the csv and jsonl targets.")] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Ground-truth labels (JSONL); default beside --out or in var/sim/.")]
        = None,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Also write the alert router's registry YAML for this fleet; with "
                           "--replay --inject, read contracted capacities from it instead.")]
        = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=5000,
        help="MQTT: 1 = one reading per message on meters/{region}/{meter}/reading; more = "
             "JSON arrays per concentrator on meters/{region}/{concentrator}/batch.")] = 1,
    qos: Annotated[int | None, typer.Option(
        "--qos", min=0, max=1, help="MQTT QoS 0 or 1 (default: the mqtt section's, max 1).")]
        = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", min=0.001, help="MQTT: at most this many messages per second.")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="MQTT broker host (default: the mqtt section of the settings).")] = None,
    port: Annotated[int | None, typer.Option(
        "--port", help="MQTT broker port (default: the mqtt section of the settings).")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Override the fleet's start: ISO time or 'now' (for live demos).")]
        = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Override the fleet's duration, e.g. 6h or 3d.")] = None,
    replay: Annotated[list[Path] | None, typer.Option(
        "--replay", exists=True, dir_okay=False,
        help="Replay recorded CSV instead of simulating (repeat for several files).")] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="Replay column mapping, e.g. 'timestamp=timestamp,kw=value' (NAB) or "
                          "'meter_id=id,timestamp=time,kw=power,scale=0.001'. Default: "
                          "meter_id, timestamp and kw (or value) as the header names them.")]
        = None,
    inject: Annotated[str | None, typer.Option(
        "--inject", help="Replay: inject faults into the recorded data, e.g. "
                         "'spike=10,outage=5,theft=3' (counts) or 'spike=0.5/mm' (per "
                         "meter-month). Shapes: spike, drop (zero), level_shift_up, "
                         "level_shift_down, outage, comm_loss, stuck, theft, over_capacity. "
                         "Labels go to --labels; seeded by --seed (default 0).")] = None,
    inject_warmup: Annotated[str, typer.Option(
        "--inject-warmup", help="Replay: no fault in a meter's first this long (e.g. 14d, 0d)."
                                )] = "14d",
    inject_within: Annotated[str | None, typer.Option(
        "--inject-within", help="Replay: faults start at most this long after the warm-up "
                                "(e.g. --inject-warmup 0d --inject-within 1d: a new meter's "
                                "first day).")] = None,
    nab_windows: Annotated[Path | None, typer.Option(
        "--nab-windows", exists=True,
        help="Replay: NAB labels/combined_windows.json, written as labels of the files.")]
        = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Settings file (for the mqtt section).")] = None,
) -> None:
    """Simulate a meter fleet with labelled anomalies (or replay recorded CSV) to MQTT, CSV or
    JSONL, in real time, accelerated or as fast as possible; ends with a summary."""
    from gridwatch._cli_common import settings_or_exit
    from gridwatch.simulators._anomalies import write_labels
    from gridwatch.simulators._fleet import Fleet, FleetError
    from gridwatch.simulators._targets import Pacer, SimulateError, drain, open_target, parse_speed

    err = Console(stderr=True)
    out_console = Console()

    def fail(msg: str, code: int = 2) -> typer.Exit:
        err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
        return typer.Exit(code)

    try:
        pace = parse_speed(speed)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if target is not TargetKind.MQTT and out is None:
        raise fail(f"--target {target.value} needs --out FILE")

    mqtt_opts: dict[str, Any] = {}
    if target is TargetKind.MQTT:
        settings = settings_or_exit(config)
        m = settings.mqtt
        password = m.password.get_secret_value() if m.password else None
        if password is None and m.password_file:
            password = m.password_file.read_text().strip()
        mqtt_opts = dict(host=host or m.host, port=port or m.port,
                         qos=qos if qos is not None else min(m.qos, 1), batch_size=batch_size,
                         rate=rate, username=m.username, password=password, tls=m.tls,
                         client_id=f"gridwatch-simulator-{int(time.time()) % 100000}")

    summary: list[tuple[str, str]] = []
    by_shape: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    labels_path: Path | None = None
    if replay:
        from gridwatch.simulators._replay import ColumnMap, Replay, nab_labels

        try:
            mapping = (ColumnMap.parse(columns) if columns is not None
                       else ColumnMap.sniff(replay[0]))
            shift = _parse_start(start, 1) if start else None
        except ValueError as exc:
            raise fail(str(exc)) from None
        source = Replay(list(replay), mapping, shift_to=shift)
        chunks = source.chunks()
        total = None
        title = "replay"
        if inject:
            from gridwatch.simulators._device_spec import parse_duration
            from gridwatch.simulators._inject import Mix, load_series
            from gridwatch.simulators._inject import chunks as inject_chunks
            from gridwatch.simulators._inject import inject as do_inject

            try:
                mix = Mix.parse(inject)
                warm = parse_duration(inject_warmup)
                if not isinstance(warm, timedelta):
                    raise ValueError(f"--inject-warmup {inject_warmup!r}: use e.g. 14d or 36h")
                within = parse_duration(inject_within) if inject_within else None
                if inject_within and not isinstance(within, timedelta):
                    raise ValueError(f"--inject-within {inject_within!r}: use e.g. 1d or 36h")
            except ValueError as exc:
                raise fail(str(exc)) from None
            caps: dict[str, float] = {}
            if "over_capacity" in mix.shapes():
                if registry is None:
                    raise fail("--inject over_capacity needs the meters' contracted capacity: "
                               "give --registry REGISTRY (contracted_kva per customer)")
                from gridwatch.alerts import Registry

                try:
                    reg = Registry.load(registry)
                except (OSError, ValueError) as exc:
                    raise fail(f"--registry {registry}: {exc}") from None
                for m in reg.meter_ids():
                    meta = reg.meter_meta(m)
                    if meta is not None and meta.contracted_kva:
                        caps[m] = float(meta.contracted_kva)
            with err.status("reading the recorded data…"):
                series = load_series(source.readings())
            with err.status("injecting faults…"):
                injected = do_inject(series, mix, 0 if seed is None else seed, warmup=warm,
                                     within=within, capacity_kva=caps)
            labels_path = labels or (out.with_name(out.name.split(".")[0] + ".labels.jsonl")
                                     if out else Path("var/sim/replay.labels.jsonl"))
            write_labels(injected.labels, labels_path)
            by_type.update(lb.type for lb in injected.labels)
            by_shape.update(lb.shape for lb in injected.labels)
            total = sum(int(s.keep.sum()) for s in injected.series.values())
            chunks = inject_chunks(injected.series)
            summary += [("injected", f"seed {0 if seed is None else seed}, mix {inject}")]
            if injected.skipped:
                summary.append(("not placed", ", ".join(
                    f"{k} {v}" for k, v in sorted(injected.skipped.items()))
                    + " (no free stretch of data long enough)"))
        if nab_windows:
            found = nab_labels(nab_windows, replay, source.offset())
            labels_path = labels or (out.with_suffix(".labels.jsonl") if out
                                     else Path("var/sim/replay.labels.jsonl"))
            write_labels(found, labels_path)
            by_type.update(lb.type for lb in found)
            by_shape.update(lb.shape for lb in found)
    else:
        overrides: dict[str, Any] = {}
        if duration:
            overrides["duration"] = duration
        try:
            spec = Fleet.load(fleet)
            if start:
                overrides["start"] = _parse_start(start, spec.interval_min)
            if overrides:
                spec = Fleet.load(fleet, **overrides)
        except FleetError as exc:
            raise fail(str(exc)) from None
        except ValueError as exc:
            raise fail(f"--start {start!r}: {exc}") from None
        from gridwatch.simulators._engine import Simulation

        with err.status("drawing the fleet and planning anomalies…"):
            sim = Simulation(spec, seed)
        labels_path = labels or (out.with_suffix(".labels.jsonl") if out
                                 else Path(f"var/sim/{spec.name}-seed{sim.seed}.labels.jsonl"))
        write_labels(sim.labels, labels_path)
        by_type.update(lb.type for lb in sim.labels)
        by_shape.update(lb.shape for lb in sim.labels)
        if registry:
            from gridwatch.simulators._registry import write_registry

            write_registry(sim.meters, registry)
        last = spec.end - spec.step
        if pace is not None and last > (datetime.now(UTC) + (last - spec.start) / pace
                                        + timedelta(minutes=5)):
            err.print("[yellow]note:[/] some readings will be stamped ahead of the wall clock; "
                      "a collector rejects those (use --start with a past time, or realtime)")
        chunks = sim.chunks("dict" if target is TargetKind.CSV else "json")
        total = spec.n_readings
        title = spec.name
        summary += [("fleet", f"{fleet} (seed {sim.seed})"), ("meters", f"{len(sim.meters):,}"),
                    ("period", f"{_iso(spec.start)} to {_iso(spec.end)}, a reading every "
                               f"{spec.interval_min} min")]

    try:
        if replay and inject and target is TargetKind.CSV:
            from gridwatch.simulators._inject import StatusCsvTarget

            assert out is not None
            sink = StatusCsvTarget(out)
        else:
            sink = open_target(target.value, out=out, **mqtt_opts)
    except (SimulateError, ValueError, OSError) as exc:
        from gridwatch.simulators._targets import SimulateRefusedError

        raise fail(str(exc), 2 if isinstance(exc, SimulateRefusedError) else 1) from None
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
        TextColumn("sim {task.fields[sim]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=False)
    t0 = time.monotonic()
    readings = messages = 0
    interrupted = False
    with progress:
        task = progress.add_task(title, total=total, sim="")

        def tick(n: int, _msgs: int, ts: datetime) -> None:
            progress.update(task, advance=n, sim=ts.strftime("%Y-%m-%d %H:%M"))

        try:
            readings, messages = drain(chunks, sink, Pacer(pace), tick)
            sink.close()
            progress.update(task, total=readings)  # injected outages leave gaps
        except KeyboardInterrupt:
            interrupted = True
            sink.close()
        except (SimulateError, OSError, ValueError) as exc:
            raise fail(str(exc), 1) from None
    elapsed = time.monotonic() - t0
    if interrupted:
        readings = int(progress.tasks[0].completed)

    table = Table(title="simulation summary" if not replay else "replay summary",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in summary:
        table.add_row(key, value)
    table.add_row("readings sent", f"{readings:,}" + (" (interrupted)" if interrupted else ""))
    if target is TargetKind.MQTT:
        table.add_row("MQTT", f"{messages:,} messages, QoS {mqtt_opts['qos']}, to "
                              f"{mqtt_opts['host']}:{mqtt_opts['port']}")
        reconnects, resent = getattr(sink, "reconnects", 0), getattr(sink, "resent", 0)
        table.add_row("broker reconnects", f"{reconnects} ({resent:,} unacknowledged messages "
                                           "sent again)" if reconnects else "0")
    else:
        table.add_row("output", f"{out} ({target.value})")
    table.add_row("time", f"{elapsed:,.1f} s ({readings / max(elapsed, 1e-9):,.0f} readings/s)")
    if replay and source.skipped:
        table.add_row("rows skipped", ", ".join(f"{k}: {v}" for k, v in source.skipped.items()))
    anomalies = ", ".join(f"{s} {n}" for s, n in sorted(by_shape.items())) or "none"
    table.add_row("anomalies", f"{sum(by_shape.values())}: {anomalies}")
    table.add_row("by event type", ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))
                  or "none")
    table.add_row("labels", str(labels_path) if labels_path else "none")
    if registry and not replay:
        table.add_row("registry", str(registry))
    out_console.print(table)
    if interrupted:
        raise typer.Exit(130)
