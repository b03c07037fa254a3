"""Assembly of the stages into runnable jobs: ``gridwatch run`` and ``gridwatch replay``.

Each stage lives in its own package; this module only wires them: collector → journal →
dataflow → (InfluxDB, alert router / JSONL). Nothing here holds logic of its own beyond the
event sinks, which are thin adapters from the dataflow to the router and to a JSONL file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from gridwatch._schemas import Event, LoadProfile, MeterMeta
from gridwatch._settings import Settings

log = logging.getLogger("gridwatch.engine")


class _EventPartition(StatelessSinkPartition[Any]):
    def __init__(self, submit: Callable[[Event], None] | None,
                 on_profile: Callable[[LoadProfile], None] | None,
                 jsonl: Path | None) -> None:
        self._submit = submit
        self._on_profile = on_profile
        self._file = None
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(jsonl, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write_batch(self, items: list[Any]) -> None:
        lines = []
        for item in items:
            if isinstance(item, LoadProfile):
                if self._on_profile is not None:
                    self._on_profile(item)
                continue
            if not isinstance(item, Event):
                continue
            if self._submit is not None:
                self._submit(item)
            if self._file is not None:
                lines.append(json.dumps(item.to_json_dict(), ensure_ascii=False))
        if self._file is not None and lines:
            # Written synchronously: bytewax does not call close() on a crash.
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class EventSink(DynamicSink[Any]):
    """Hands each event to the alert router (durable in its SQLite outbox when ``submit``
    returns) and/or appends it as one JSON line to ``jsonl``. Load profiles, when they reach
    this sink, update the router's customer tags."""

    def __init__(self, submit: Callable[[Event], None] | None = None, *,
                 on_profile: Callable[[LoadProfile], None] | None = None,
                 jsonl: Path | None = None) -> None:
        self._submit = submit
        self._on_profile = on_profile
        self._jsonl = jsonl

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _EventPartition:
        path = self._jsonl
        if path is not None and worker_count > 1:
            path = path.with_name(f"{path.stem}.w{worker_index}{path.suffix}")
        return _EventPartition(self._submit, self._on_profile, path)


@dataclass
class RunStats:
    """What a job did, for the summary at its end."""

    readings: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def load_meta(settings: Settings) -> Callable[[str], MeterMeta | None] | None:
    """Meter facts from the registry (customer, grid cell, capacity), or none without one."""
    path = settings.alerts.registry
    if not path.exists():
        log.warning("no registry at %s: meters have no customer, cell or capacity", path)
        return None
    from gridwatch.alerts import Registry

    return Registry.load(path).meter_meta


def recovery_config(settings: Settings, partitions: int) -> Any:
    """bytewax recovery partitions under ``engine.recovery_dir``, created on first use."""
    from bytewax.recovery import RecoveryConfig, init_db_dir

    rdir = settings.engine.recovery_dir
    if rdir is None:
        return None
    if not rdir.exists() or not any(rdir.iterdir()):
        rdir.mkdir(parents=True, exist_ok=True)
        init_db_dir(rdir, partitions)
    return RecoveryConfig(rdir, timedelta(seconds=settings.engine.backup_interval_s))


def run_engine(settings: Settings, *, process_id: int | None = None,
               addresses: list[str] | None = None, stop: threading.Event | None = None) -> None:
    """Collector + dataflow + alert router in one process (the embedded default).

    With ``addresses`` (bytewax ``-a``) and ``process_id`` (``-i``) this process is one of a
    cluster: its collector joins the MQTT shared subscription and writes journal partition
    ``process_id``; the dataflow reads every partition.
    """
    from bytewax.run import cli_main

    from gridwatch import ingest, storage, stream
    from gridwatch.alerts import RouterService, build_router

    procs = len(addresses) if addresses else 1
    pid = process_id or 0
    partition = settings.ingest.partition if addresses is None else pid

    collector = ingest.Collector(settings, partition=partition)
    collector.start()
    try:
        collector.wait_ready(timeout=15.0)
    except ingest.ConnectError as exc:
        if collector.failed:
            collector.stop()
            raise
        # The broker may come later: the collector keeps retrying with backoff while the
        # dataflow works through what the journal already holds.
        log.warning("%s; the collector keeps retrying", exc)
    router = build_router(settings) if settings.alerts.enabled else None
    service = RouterService(router) if router is not None else None
    if service is not None:
        service.start()
    try:
        source = ingest.JournalSource(settings.ingest.journal_dir,
                                      partitions=list(range(procs)), follow=True)
        sinks = stream.Sinks(
            points=storage.InfluxSink(settings.influx) if settings.influx.enabled else None,
            # The router keeps its own JSONL record of alerts (alerts.jsonl_out).
            events=EventSink(router.submit if router else None,
                             on_profile=router.update_profile if router else None,
                             jsonl=None if router else settings.alerts.jsonl_out),
        )
        flow = stream.build_flow(settings, source, sinks, load_meta(settings))
        cli_main(
            flow,
            workers_per_process=settings.engine.workers,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=timedelta(seconds=settings.engine.epoch_s),
            recovery_config=recovery_config(settings, procs),
        )
    finally:
        collector.stop()
        if service is not None:
            service.stop()


def replay(settings: Settings, path: Path, *, influx: bool = True,
           alerts_out: Path | None = None, route: bool = False) -> RunStats:
    """Run the live dataflow over a readings file (CSV or JSONL) or a journal directory, with no
    broker. Events go to ``alerts_out`` (one JSON line each) and, with ``route``, through the
    alert router; readings, scores and profiles go to InfluxDB unless ``influx`` is off."""
    from bytewax.testing import run_main

    from gridwatch import ingest, storage, stream

    router = None
    if route:
        from gridwatch.alerts import build_router

        router = build_router(settings)
    if path.is_dir():
        source: Any = ingest.JournalSource(path, follow=False)
    else:
        source = ingest.FileSource(path)
    if alerts_out is not None and alerts_out.exists():
        alerts_out.unlink()
    sinks = stream.Sinks(
        points=storage.InfluxSink(settings.influx) if influx else None,
        events=EventSink(router.submit if router else None,
                         on_profile=router.update_profile if router else None,
                         jsonl=alerts_out),
    )
    flow = stream.build_flow(settings, source, sinks, load_meta(settings))
    run_main(flow, epoch_interval=timedelta(seconds=settings.engine.epoch_s))
    stats = RunStats()
    stats.readings = getattr(source, "accepted", 0)
    stats.rejected_by_reason = dict(getattr(source, "rejected_by_reason", {}))
    stats.rejected = sum(stats.rejected_by_reason.values())
    if alerts_out is not None and alerts_out.exists():
        with alerts_out.open(encoding="utf-8") as fh:
            for line in fh:
                etype = json.loads(line)["type"]
                stats.events += 1
                stats.events_by_type[etype] = stats.events_by_type.get(etype, 0) + 1
    if router is not None:
        from datetime import UTC, datetime

        router.tick(datetime.now(UTC))
        router.deliver_pending(datetime.now(UTC))
    return stats
