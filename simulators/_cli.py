"""``gridwatch simulate``: run a fleet (or replay recorded CSV) to MQTT or a file.

The command reads its options in groups (fleet, replay and fault injection, output, MQTT) and
hands each group to a helper: :func:`fleet_plan` or :func:`replay_plan` say what to send (the
data, its labels, the summary rows), :func:`mqtt_options` where, :func:`send` sends it with
progress, and :func:`summary_table` reports. Only typer and rich are imported at module level;
numpy, pandas and demandlib load when the command runs, so ``gridwatch --help`` stays fast.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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

__all__ = [
    "CommandError",
    "Plan",
    "Sent",
    "TargetKind",
    "fleet_plan",
    "mqtt_options",
    "replay_plan",
    "send",
    "simulate",
    "summary_table",
]

DEFAULT_FLEET = Path("config/fleets/small.yaml")

_FLEET = "Fleet"
_REPLAY = "Replay recorded data"
_INJECT = "Fault injection (replay)"
_OUTPUT = "Output"
_MQTT = "MQTT"


class TargetKind(StrEnum):
    MQTT = "mqtt"
    CSV = "csv"
    JSONL = "jsonl"


class CommandError(Exception):
    """The command cannot go on: ``str()`` says why; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Plan:
    """What a run sends: the data (chunks for a target), how many readings (None: unknown),
    the progress title, the summary rows, and the labels written."""

    chunks: Iterable[Any]
    total: int | None
    title: str
    summary: list[tuple[str, str]] = field(default_factory=list)
    by_shape: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    labels_path: Path | None = None
    #: Replay: rows skipped by reason.
    skipped: dict[str, int] = field(default_factory=dict)
    #: The registry file written for the fleet's meters (and devices).
    registry: Path | None = None
    #: The fleet has devices: their telemetry is sent too (counted in ``Sent.telemetry``).
    devices: int = 0
    #: At the pace asked, some readings would be stamped ahead of the wall clock.
    ahead_of_clock: bool = False

    def add_labels(self, labels: Iterable[Any], path: Path) -> None:
        from gridwatch.simulators._anomalies import write_labels

        labels = list(labels)
        write_labels(labels, path)
        self.labels_path = path
        self.by_type.update(lb.type for lb in labels)
        self.by_shape.update(lb.shape for lb in labels)


@dataclass
class Sent:
    """What :func:`send` did."""

    readings: int
    messages: int
    elapsed_s: float
    interrupted: bool
    #: Device telemetry messages among ``messages`` (lines of a JSONL file).
    telemetry: int = 0


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(f"{speed:,.0f} readings/s" if speed else "– readings/s", style="cyan")


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _parse_start(value: str, interval_min: int,
                 now: Callable[[], datetime] = _utc_now) -> datetime:
    """``--start``: an ISO time (UTC when it names no zone) or ``now``, rounded down to the
    interval."""
    if value.strip().lower() == "now":
        at = now().replace(second=0, microsecond=0)
        return at - timedelta(minutes=at.minute % interval_min)
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def simulate(
    fleet: Annotated[Path, typer.Option(
        "--fleet", "-f", help="Fleet file (config/fleets/*.yaml).",
        rich_help_panel=_FLEET)] = DEFAULT_FLEET,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Random seed (default: the fleet file's; with --inject, 0). Same seed, "
                       "same bytes.", rich_help_panel=_FLEET)] = None,
    start: Annotated[str | None, typer.Option(
        "--start", help="Override the fleet's start (or shift a replay to it): ISO time or "
                        "'now' (for live demos).", rich_help_panel=_FLEET)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Override the fleet's duration, e.g. 6h or 3d.",
        rich_help_panel=_FLEET)] = None,
    replay: Annotated[list[Path] | None, typer.Option(
        "--replay", exists=True, dir_okay=False,
        help="Replay recorded CSV instead of simulating (repeat for several files).",
        rich_help_panel=_REPLAY)] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="Replay column mapping, field=column pairs separated by commas, "
                          "e.g. 'timestamp=timestamp,kw=value' (NAB) or "
                          "'meter_id=id,kw=power,scale=0.001' (scale multiplies the power: "
                          "0.001 for W). Default: meter_id, timestamp and kw (or value) as the "
                          "header names them.",
        rich_help_panel=_REPLAY)] = None,
    nab_windows: Annotated[Path | None, typer.Option(
        "--nab-windows", exists=True,
        help="NAB labels/combined_windows.json, written as labels of the files.",
        rich_help_panel=_REPLAY)] = None,
    inject: Annotated[str | None, typer.Option(
        "--inject", help="Inject faults into the recorded data, e.g. "
                         "'spike=10,outage=5,theft=3' (counts) or 'spike=0.5/mm' (per "
                         "meter-month). Shapes: spike, drop (zero), level_shift_up, "
                         "level_shift_down, outage, comm_loss, stuck, theft, over_capacity. "
                         "Labels go to --labels; seeded by --seed.",
        rich_help_panel=_INJECT)] = None,
    inject_warmup: Annotated[str, typer.Option(
        "--inject-warmup", help="No fault in a meter's first this long (e.g. 14d, 0d).",
        rich_help_panel=_INJECT)] = "14d",
    inject_within: Annotated[str | None, typer.Option(
        "--inject-within", help="Faults start at most this long after the warm-up (e.g. "
                                "--inject-warmup 0d --inject-within 1d: a new meter's first "
                                "day).", rich_help_panel=_INJECT)] = None,
    speed: Annotated[str, typer.Option(
        "--speed", help="realtime, xN (e.g. x60: an hour a minute) or max.",
        rich_help_panel=_OUTPUT)] = "max",
    target: Annotated[TargetKind, typer.Option(
        "--target", "-t", help="Where readings go. A fleet with devices also sends their "
                               "telemetry: on MQTT to devices/SITE/DEVICE/telemetry, in JSONL "
                               "as lines with device_id; CSV leaves it out (meter columns).",
        rich_help_panel=_OUTPUT)] = TargetKind.MQTT,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output file for the csv and jsonl targets.",
        rich_help_panel=_OUTPUT)] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Ground-truth labels (JSONL); default beside --out or in var/sim/.",
        rich_help_panel=_OUTPUT)] = None,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Also write the alert router's registry YAML for this fleet; with "
                           "--replay --inject, read contracted capacities from it instead.",
        rich_help_panel=_OUTPUT)] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=5000,
        help="1 = one reading per message, on the meter's reading topic; more = JSON arrays "
             "per concentrator, on its batch topic (see Topics in docs/ingest.md).",
        rich_help_panel=_MQTT)] = 1,
    qos: Annotated[int | None, typer.Option(
        "--qos", min=0, max=1, help="QoS 0 or 1 (default: the mqtt section's, max 1).",
        rich_help_panel=_MQTT)] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", min=0.001, help="At most this many messages per second.",
        rich_help_panel=_MQTT)] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="Broker host (default: the mqtt section of the settings).",
        rich_help_panel=_MQTT)] = None,
    port: Annotated[int | None, typer.Option(
        "--port", help="Broker port (default: the mqtt section of the settings).",
        rich_help_panel=_MQTT)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Settings file (for the mqtt section).",
        rich_help_panel=_MQTT)] = None,
) -> None:
    """Simulate a meter fleet with labelled anomalies (or replay recorded CSV) to MQTT, CSV or
    JSONL, in real time, accelerated or as fast as possible; ends with a summary."""
    from gridwatch.simulators._targets import parse_speed

    err = Console(stderr=True)
    try:
        try:
            pace = parse_speed(speed)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if target is not TargetKind.MQTT and out is None:
            raise CommandError(f"--target {target.value} needs --out FILE")
        mqtt = (mqtt_options(config, host=host, port=port, qos=qos, batch_size=batch_size,
                             rate=rate) if target is TargetKind.MQTT else {})
        if replay:
            plan = replay_plan(replay, columns=columns, start=start, nab_windows=nab_windows,
                               inject=inject, inject_warmup=inject_warmup,
                               inject_within=inject_within, seed=seed, registry=registry,
                               labels=labels, out=out, status=err.status)
        else:
            plan = fleet_plan(fleet, seed=seed, start=start, duration=duration, labels=labels,
                              out=out, registry=registry, pace=pace,
                              csv=target is TargetKind.CSV, status=err.status)
            if plan.ahead_of_clock:
                err.print("[yellow]note:[/] some readings will be stamped ahead of the wall "
                          "clock; a collector rejects those (use --start with a past time, or "
                          "realtime)")
        sink = _open_sink(target, out, mqtt, csv_status=bool(replay and inject))
        sent = send(plan, sink, pace, err)
    except CommandError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.code) from None
    where = (f"{mqtt['host']}:{mqtt['port']}" if target is TargetKind.MQTT
             else f"{out} ({target.value})")
    Console().print(summary_table(plan, sent, sink, where=where, mqtt=mqtt,
                                  replay=bool(replay)))
    if sent.interrupted:
        raise typer.Exit(130)


# -- the option groups ---------------------------------------------------------------------

def mqtt_options(config: Path | None, *, host: str | None, port: int | None, qos: int | None,
                 batch_size: int, rate: float | None) -> dict[str, Any]:
    """The MQTT target's options: the flags, else the settings file's mqtt section."""
    from gridwatch._cli_common import settings_or_exit

    m = settings_or_exit(config).mqtt
    password = m.password.get_secret_value() if m.password else None
    if password is None and m.password_file:
        password = m.password_file.read_text().strip()
    return dict(host=host or m.host, port=port or m.port,
                qos=qos if qos is not None else min(m.qos, 1), batch_size=batch_size,
                rate=rate, username=m.username, password=password, tls=m.tls,
                client_id=f"gridwatch-simulator-{int(time.time()) % 100000}")


def _status(_message: str) -> Any:
    import contextlib

    return contextlib.nullcontext()


def fleet_plan(fleet: Path, *, seed: int | None = None, start: str | None = None,
               duration: str | None = None, labels: Path | None = None,
               out: Path | None = None, registry: Path | None = None,
               pace: float | None = None, csv: bool = False,
               status: Callable[[str], Any] = _status,
               now: Callable[[], datetime] = _utc_now) -> Plan:
    """Simulate ``fleet``: writes its labels (and ``registry``) and plans its readings, noting
    whether at ``pace`` some would be stamped more than five minutes ahead of the wall clock
    (``now``)."""
    from gridwatch.simulators._engine import Simulation
    from gridwatch.simulators._fleet import Fleet, FleetError

    overrides: dict[str, Any] = {}
    if duration:
        overrides["duration"] = duration
    try:
        spec = Fleet.load(fleet)
        if start:
            overrides["start"] = _parse_start(start, spec.interval_min, now)
        if overrides:
            spec = Fleet.load(fleet, **overrides)
    except FleetError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:
        raise CommandError(f"--start {start!r}: {exc}") from None
    with status("drawing the fleet and planning anomalies…"):
        sim = Simulation(spec, seed)
        devices = None
        if spec.devices is not None:
            from gridwatch.simulators._devices import DeviceSimulation

            devices = DeviceSimulation(sim)
    form = "dict" if csv else "json"
    plan = Plan(chunks=devices.chunks(form) if devices else sim.chunks(form),
                total=spec.n_readings, title=spec.name)
    all_labels = sorted(sim.labels + devices.labels, key=lambda lb: (lb.start, lb.meter_id)) \
        if devices else sim.labels
    plan.add_labels(all_labels, labels or (
        out.with_suffix(".labels.jsonl") if out
        else Path(f"var/sim/{spec.name}-seed{sim.seed}.labels.jsonl")))
    if registry:
        from gridwatch.simulators._registry import write_registry

        try:
            write_registry(sim.meters, registry,
                           devices=devices.registry_devices() if devices else None)
        except ValueError as exc:
            raise CommandError(f"--registry {exc}") from None
        plan.registry = registry
    plan.summary += [("fleet", f"{fleet} (seed {sim.seed})"), ("meters", f"{len(sim.meters):,}"),
                     ("period", f"{_iso(spec.start)} to {_iso(spec.end)}, a reading every "
                                f"{spec.interval_min} min")]
    if devices:
        plan.devices = len(devices.devices)
        kinds = Counter(d.kind for d in devices.devices)
        plan.summary.append(("devices", f"{len(devices.devices):,}: " + ", ".join(
            f"{k} {n}" for k, n in sorted(kinds.items()))))
    last = spec.end - spec.step
    plan.ahead_of_clock = pace is not None and last > (
        now() + (last - spec.start) / pace + timedelta(minutes=5))
    return plan


def replay_plan(files: list[Path], *, columns: str | None = None, start: str | None = None,
                nab_windows: Path | None = None, inject: str | None = None,
                inject_warmup: str = "14d", inject_within: str | None = None,
                seed: int | None = None, registry: Path | None = None,
                labels: Path | None = None, out: Path | None = None,
                status: Callable[[str], Any] = _status) -> Plan:
    """Replay recorded CSV ``files``, with faults injected (``inject``) and NAB windows as
    labels when asked."""
    from gridwatch.simulators._replay import ColumnMap, Replay, nab_labels

    try:
        mapping = ColumnMap.parse(columns) if columns is not None else ColumnMap.sniff(files[0])
        shift = _parse_start(start, 1) if start else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    source = Replay(list(files), mapping, shift_to=shift)
    plan = Plan(chunks=source.chunks(), total=None, title="replay")
    if inject:
        _inject_into(plan, source, inject, warmup=inject_warmup, within=inject_within,
                     seed=0 if seed is None else seed, registry=registry,
                     labels=labels or (out.with_name(out.name.split(".")[0] + ".labels.jsonl")
                                       if out else Path("var/sim/replay.labels.jsonl")),
                     status=status)
    if nab_windows:
        plan.add_labels(nab_labels(nab_windows, files, source.offset()), labels or (
            out.with_suffix(".labels.jsonl") if out else Path("var/sim/replay.labels.jsonl")))
    plan.skipped = source.skipped
    return plan


def _inject_into(plan: Plan, source: Any, inject: str, *, warmup: str, within: str | None,
                 seed: int, registry: Path | None, labels: Path,
                 status: Callable[[str], Any]) -> None:
    from gridwatch.simulators._device_spec import parse_duration
    from gridwatch.simulators._inject import Mix, load_series
    from gridwatch.simulators._inject import chunks as inject_chunks
    from gridwatch.simulators._inject import inject as do_inject

    try:
        mix = Mix.parse(inject)
        warm = parse_duration(warmup)
        if not isinstance(warm, timedelta):
            raise ValueError(f"--inject-warmup {warmup!r}: use e.g. 14d or 36h")
        late = parse_duration(within) if within else None
        if within and not isinstance(late, timedelta):
            raise ValueError(f"--inject-within {within!r}: use e.g. 1d or 36h")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    caps = _capacities(registry) if "over_capacity" in mix.shapes() else {}
    with status("reading the recorded data…"):
        series = load_series(source.readings())
    with status("injecting faults…"):
        injected = do_inject(series, mix, seed, warmup=warm, within=late, capacity_kva=caps)
    plan.add_labels(injected.labels, labels)
    plan.total = sum(int(s.keep.sum()) for s in injected.series.values())
    plan.chunks = inject_chunks(injected.series)
    plan.summary.append(("injected", f"seed {seed}, mix {inject}"))
    if injected.skipped:
        plan.summary.append(("not placed", ", ".join(
            f"{k} {v}" for k, v in sorted(injected.skipped.items()))
            + " (no free stretch of data long enough)"))


def _capacities(registry: Path | None) -> dict[str, float]:
    """Contracted capacity (kVA) by meter, from the alert router's registry."""
    if registry is None:
        raise CommandError("--inject over_capacity needs the meters' contracted capacity: "
                           "give --registry REGISTRY (contracted_kva per customer)")
    from gridwatch._registry import Registry

    try:
        reg = Registry.load(registry)
    except (OSError, ValueError) as exc:
        raise CommandError(f"--registry {registry}: {exc}") from None
    caps: dict[str, float] = {}
    for m in reg.meter_ids():
        meta = reg.meter_meta(m)
        if meta is not None and meta.contracted_kva:
            caps[m] = float(meta.contracted_kva)
    return caps


def _open_sink(target: TargetKind, out: Path | None, mqtt: dict[str, Any], *,
               csv_status: bool) -> Any:
    from gridwatch.simulators._targets import SimulateError, SimulateRefusedError, open_target

    try:
        if csv_status and target is TargetKind.CSV:
            from gridwatch.simulators._inject import StatusCsvTarget

            assert out is not None
            return StatusCsvTarget(out)
        return open_target(target.value, out=out, **mqtt)
    except (SimulateError, ValueError, OSError) as exc:
        raise CommandError(str(exc), 2 if isinstance(exc, SimulateRefusedError) else 1) from None


# -- sending and the summary -------------------------------------------------------------

def send(plan: Plan, sink: Any, pace: float | None, console: Console) -> Sent:
    """Send ``plan`` to ``sink`` at ``pace`` with a progress bar on ``console``; Ctrl-C stops
    it cleanly (``Sent.interrupted``)."""
    from gridwatch.simulators._targets import Pacer, SimulateError, drain

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
        TextColumn("sim {task.fields[sim]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False)
    from gridwatch.simulators._targets import DeviceBatch

    t0 = time.monotonic()
    readings = messages = telemetry = 0
    interrupted = False

    last: list[Any] = [None, 0]  # the chunk being sent, messages before it

    def noted(chunks: Iterable[Any]) -> Iterable[Any]:
        for ts, rows in chunks:
            last[0] = rows
            yield ts, rows

    with progress:
        task = progress.add_task(plan.title, total=plan.total, sim="")

        def tick(n: int, msgs: int, ts: datetime) -> None:
            nonlocal telemetry
            if isinstance(last[0], DeviceBatch):
                telemetry += msgs - last[1]  # what the target sent of it
            last[1] = msgs
            progress.update(task, advance=n, sim=ts.strftime("%Y-%m-%d %H:%M"))

        try:
            readings, messages = drain(noted(plan.chunks), sink, Pacer(pace), tick)
            sink.close()
            progress.update(task, total=readings)  # injected outages leave gaps
        except KeyboardInterrupt:
            interrupted = True
            sink.close()
            readings = int(progress.tasks[0].completed)
        except (SimulateError, OSError, ValueError) as exc:
            raise CommandError(str(exc), 1) from None
    return Sent(readings, messages, time.monotonic() - t0, interrupted, telemetry)


def summary_table(plan: Plan, sent: Sent, sink: Any, *, where: str, mqtt: dict[str, Any],
                  replay: bool) -> Table:
    """The table the command ends with."""
    table = Table(title="replay summary" if replay else "simulation summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in plan.summary:
        table.add_row(key, value)
    table.add_row("readings sent",
                  f"{sent.readings:,}" + (" (interrupted)" if sent.interrupted else ""))
    if plan.devices:
        table.add_row("device telemetry", f"{sent.telemetry:,} messages from {plan.devices:,} "
                      "devices" if sent.telemetry or mqtt or sent.interrupted
                      else "not written (the CSV columns are the meters')")
    if mqtt:
        table.add_row("MQTT", f"{sent.messages:,} messages, QoS {mqtt['qos']}, to {where}")
        reconnects, resent = getattr(sink, "reconnects", 0), getattr(sink, "resent", 0)
        table.add_row("broker reconnects", f"{reconnects} ({resent:,} unacknowledged messages "
                                           "sent again)" if reconnects else "0")
    else:
        table.add_row("output", where)
    rate = sent.readings / max(sent.elapsed_s, 1e-9)
    table.add_row("time", f"{sent.elapsed_s:,.1f} s ({rate:,.0f} readings/s)")
    if plan.skipped:
        table.add_row("rows skipped", ", ".join(f"{k}: {v}" for k, v in plan.skipped.items()))
    anomalies = ", ".join(f"{s} {n}" for s, n in sorted(plan.by_shape.items())) or "none"
    table.add_row("anomalies", f"{sum(plan.by_shape.values())}: {anomalies}")
    table.add_row("by event type", ", ".join(
        f"{t} {n}" for t, n in sorted(plan.by_type.items())) or "none")
    table.add_row("labels", str(plan.labels_path) if plan.labels_path else "none")
    if plan.registry:
        table.add_row("registry", str(plan.registry))
    return table
