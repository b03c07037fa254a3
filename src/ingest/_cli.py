"""Command line of the ingest stage: ``gridwatch collect`` and ``gridwatch journal stats``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

journal_app = typer.Typer(help="Inspect the journal of accepted readings.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
                 "config/gridwatch.yaml)."),
]


def collect(
    config: ConfigOpt = None,
    partition: Annotated[int | None, typer.Option(
        "--partition", "-p", min=0,
        help="Journal partition to write (default: ingest.partition). Each collector of a "
             "shared subscription needs its own.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=0, max=65535,
        help="Serve Prometheus metrics on this port (default: ingest.metrics_port; 0 = off)."
    )] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No periodic stats lines.")] = False,
) -> None:
    """Run one MQTT collector: subscribe, journal (fsync), then acknowledge; bad payloads go to
    dead letters. Stops cleanly on SIGINT/SIGTERM; the broker keeps the session meanwhile."""
    from gridwatch._cli_common import log_to_stderr, settings_or_exit
    from gridwatch.ingest._collector import CollectorError, CollectorStats, run_collector
    from gridwatch.ingest._journal import JournalLockedError

    log_to_stderr()
    settings = settings_or_exit(config)  # logs which settings file and data directory
    out = Console(stderr=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def report(s: CollectorStats) -> None:
        if not quiet:
            dead = ", ".join(f"{k}={v}" for k, v in sorted(s.deadlettered.items())) or "none"
            out.print(f"received={s.received} accepted={s.accepted} acked={s.acked} "
                      f"journal_end={s.journal_end_offset} connected={s.connected} "
                      f"dead letters: {dead}", highlight=False)

    try:
        code = run_collector(settings, partition, stop, metrics_port, report)
    except (CollectorError, JournalLockedError) as exc:
        out.print(f"[bold red]collector error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        out.print(f"[bold red]collector error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@journal_app.command("stats")
def journal_stats(
    config: ConfigOpt = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Journal directory (default: ingest.journal_dir).")] = None,
) -> None:
    """Print each partition's segments, offsets and size."""
    from gridwatch._cli_common import settings_or_exit
    from gridwatch.ingest._journal import Journal, journal_partitions

    if directory is None:
        directory = settings_or_exit(config).ingest.journal_dir
    out = Console()
    parts = journal_partitions(directory)
    if not parts:
        out.print(f"no journal partitions under {directory}")
        return
    for p in parts:
        with Journal(directory, p, readonly=True) as j:
            s = j.stats()
        out.print(f"partition {p}: segments={s['segments']} offsets={s['start_offset']}.."
                  f"{s['end_offset']} bytes={s['bytes']}", highlight=False)


@journal_app.command("deadletters")
def journal_deadletters(
    config: ConfigOpt = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Dead-letter directory (default: ingest.deadletter_dir).")] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", "-r", help="Only this reason (e.g. invalid_json).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0,
                                       help="Show at most this many (0 = counts only).")] = 20,
) -> None:
    """Count the dead letters by reason and show the latest ones, with what was wrong."""
    from collections import Counter, deque

    from gridwatch._cli_common import settings_or_exit
    from gridwatch.ingest._deadletter import DeadLetter, read_deadletters

    if directory is None:
        directory = settings_or_exit(config).ingest.deadletter_dir
    out = Console()
    counts: Counter[str] = Counter()
    latest: deque[DeadLetter] = deque(maxlen=max(limit, 1))
    for d in read_deadletters(directory):
        counts[d.reason] += 1
        if reason is None or d.reason == reason:
            latest.append(d)
    if not counts:
        out.print(f"no dead letters under {directory}")
        return
    for name, n in counts.most_common():
        out.print(f"{name}: {n}", highlight=False)
    if limit:
        for d in latest:
            preview = d.payload[:120].decode("utf-8", errors="replace")
            where = f" item {d.index}" if d.index is not None else ""
            out.print(f"{d.received_at.isoformat()} {d.reason} {d.topic}{where}: {d.detail}\n"
                      f"    {preview!r}", highlight=False, markup=False)
