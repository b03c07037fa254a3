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
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from gridwatch._gc import tuned_gc
from gridwatch._schemas import Event, LoadProfile, MeterMeta
from gridwatch._settings import ConfigError, Settings
from gridwatch.ingest._config import TopicSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from gridwatch.ingest import FileShare

log = logging.getLogger("gridwatch.engine")


class _EventPartition(StatelessSinkPartition[Any]):
    def __init__(self, submit: Callable[[list[Event]], object] | None,
                 on_profile: Callable[[LoadProfile], None] | None,
                 jsonl: Path | None, counts: Counter[str], resolved: Counter[str]) -> None:
        self._submit = submit
        self._on_profile = on_profile
        self._counts = counts
        self._resolved = resolved
        self._file = None
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(jsonl, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write_batch(self, items: list[Any]) -> None:
        events = [item for item in items if isinstance(item, Event)]
        if self._on_profile is not None:
            for item in items:
                if isinstance(item, LoadProfile):
                    self._on_profile(item)
        if self._submit is not None and events:
            self._submit(events)  # one transaction for the batch, durable when it returns
        self._counts.update(e.type for e in events if e.state == "firing")
        self._resolved.update(e.type for e in events if e.state != "firing")
        lines = [json.dumps(e.to_json_dict(), ensure_ascii=False) for e in events]
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
    this sink, update the router's customer tags. ``counts`` holds the firing events seen, by
    type, over every worker of this process, and ``resolved`` the resolutions."""

    def __init__(self, submit: Callable[[list[Event]], object] | None = None, *,
                 on_profile: Callable[[LoadProfile], None] | None = None,
                 jsonl: Path | None = None) -> None:
        self._submit = submit
        self._on_profile = on_profile
        self._jsonl = jsonl
        self.counts: Counter[str] = Counter()
        self.resolved: Counter[str] = Counter()

    @staticmethod
    def worker_path(jsonl: Path, worker: int) -> Path:
        """The file worker ``worker`` of a dataflow of several workers writes for ``jsonl``."""
        return jsonl.with_name(f"{jsonl.stem}.w{worker}{jsonl.suffix}")

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _EventPartition:
        path = self._jsonl
        if path is not None and worker_count > 1:
            path = self.worker_path(path, worker_index)
        return _EventPartition(self._submit, self._on_profile, path, self.counts,
                               self.resolved)


@dataclass
class RunStats:
    """What a job did, for the summary at its end."""

    readings: int = 0
    #: firing events (alarms raised); resolutions are counted apart
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    resolutions: int = 0
    resolutions_by_type: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def meter_lookup(settings: Settings, router: Any = None
                 ) -> Callable[[str], MeterMeta | None] | None:
    """Meter facts for the dataflow. With a router, its registry answers (and follows its
    reloads): a second copy of a 10^6-meter registry would cost gigabytes and minutes."""
    if router is not None:
        # The table is built here, at start, rather than on the first reading; after a
        # reload, on the first lookup into the new registry.
        held: list[Any] = [router.registry, router.registry.meta_table().get]

        def lookup(meter_id: str) -> MeterMeta | None:
            registry = router.registry
            if registry is not held[0]:
                held[1] = registry.meta_table().get
                held[0] = registry
            return held[1](meter_id)

        return lookup
    return load_meta(settings)


def load_meta(settings: Settings) -> Callable[[str], MeterMeta | None] | None:
    """Meter facts from the registry (customer, grid cell, capacity), or none without one."""
    path = settings.alerts.registry
    if not path.exists():
        log.warning("no registry at %s: meters have no customer, cell or capacity", path)
        return None
    from gridwatch.alerts import Registry

    return Registry.load(path).meta_table().get


def recovery_config(settings: Settings, partitions: int, process_id: int = 0) -> Any:
    """bytewax recovery partitions under ``engine.recovery_dir``, created on first use.

    In a cluster each process creates only its own partition, ``part-<process id>``: bytewax
    looks for partitions in each process's local directory and needs the set over all
    processes complete, so with a directory per machine each holds one partition, and with
    one shared directory both are there. (A copy of every partition on every machine would
    leave stale copies beside the one being written.)"""
    import shutil
    import tempfile

    from bytewax.recovery import RecoveryConfig, init_db_dir

    rdir = settings.engine.recovery_dir
    if rdir is None:
        return None
    rdir.mkdir(parents=True, exist_ok=True)
    if partitions == 1:
        if not any(rdir.glob("part-*.sqlite3")):  # (placement.json may be there already)
            init_db_dir(rdir, 1)
    else:
        own = rdir / f"part-{process_id}.sqlite3"
        if not own.exists():
            with tempfile.TemporaryDirectory(dir=rdir) as tmp:
                init_db_dir(Path(tmp), partitions)
                shutil.move(Path(tmp) / own.name, own)
    return RecoveryConfig(rdir, timedelta(seconds=settings.engine.backup_interval_s))


def cluster_placement(settings: Settings, processes: int) -> Any:
    """The dataflow's :class:`~gridwatch.stream.Placement` from ``engine.placement`` for a
    cluster of ``processes`` processes, or None (no placement, or a single process, where
    nothing crosses anyway). A process id beyond the cluster is a configuration error."""
    from gridwatch.stream import Placement

    cells = settings.engine.placement
    if not cells or processes < 2:
        return None
    try:
        return Placement(cells, processes, settings.engine.workers,
                         exclusive=settings.engine.placement_exclusive)
    except ValueError as exc:
        raise ConfigError(f"engine.placement: {exc}") from None


#: The placement a recovery directory's cell keys were made with (beside its partitions).
PLACEMENT_FILE = "placement.json"


def check_placement_store(settings: Settings, placement: Any) -> None:
    """Refuse to resume a recovery store whose cells were keyed by another placement.

    A placed cell's key depends on the placement and on the number of workers; resumed under
    new keys, the cells' recovered state would stay behind under the old ones (their meters
    silent there for ever). The placement is written beside the recovery partitions on first
    use; a store from before (no file) was made without one."""
    rdir = settings.engine.recovery_dir
    if rdir is None:
        return
    now: dict[str, Any] = {} if placement is None else {
        "cells": {str(p): list(c) for p, c in sorted(settings.engine.placement.items())},
        "workers": placement.workers, "exclusive": placement.exclusive}
    path = rdir / PLACEMENT_FILE
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        before = {} if rdir.exists() and any(rdir.glob("*.sqlite3")) else None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the recovery store's placement: {exc}") from None
    if before is not None and before != now:
        raise ConfigError(
            f"engine.placement (with {now.get('workers', 'any')} workers) differs from the one "
            f"the recovery store in {rdir} was made with ({before or 'none'}): the cells' keys "
            "differ, so their recovered state would be lost. Restore that placement, or start "
            "with a fresh engine.recovery_dir")
    if before is None or not path.exists():
        rdir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(now, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


#: How far back a warm start reads a meter's stored readings: one week, a whole
#: time-of-week baseline.
WARM_START_DAYS = 7
#: Meters a warm start's query asks for (``InfluxReader.recent_fields``' groups).
WARM_START_GROUP = 200
#: The journal source's dead letters go to partitions from here on (``ingest.partition`` is
#: below it), in the collector's dead-letter directory.
SOURCE_DEADLETTER_BASE = 10_000


def influx_warm_start(settings: Settings, days: float = WARM_START_DAYS,
                      cell_meters: Callable[[str], Sequence[str]] | None = None,
                      meta: Callable[[str], MeterMeta | None] | None = None,
                      ) -> Callable[[list[str], float], Iterator[Any]]:
    """The dataflow's warm start from InfluxDB (``InfluxReader.recent_fields``, InfluxQL):
    the stored readings of the meters a cell asks for, within ``days`` before the time it
    gives, oldest first for each meter, each as its fields, streamed (a cell steps them as
    they come).

    With ``cell_meters`` (a grid cell's meter ids, from the registry) and ``meta``, a cell's
    first question is answered for every meter of the cells its meters are in, in one query
    a group of meters: a cell gets its readings in a few batches at start-up, and asking
    for each batch's new meters alone made thousands of small queries for a large fleet. A
    meter is asked for once in the life of the process; a later question about it is
    answered with nothing, without a query.

    A failed query (the database is down, or speaks no InfluxQL) is logged and counted, and
    the meters start cold: a warm start helps, it never holds the engine up. ``stats``
    counts the queries, the meters asked for, the readings given and the milliseconds from
    each question to its last reading (the cell steps them as they come: its steps are in
    them)."""
    from gridwatch.storage import InfluxReader, ReadError

    reader = InfluxReader(settings.influx)
    failures = Counter[str]()
    stats = Counter[str]()
    asked: set[str] = set()
    last_log = [time.monotonic()]

    def warm(meter_ids: list[str], until: float) -> Iterator[Any]:
        ids = list(meter_ids)
        if cell_meters is not None and meta is not None:
            cells = {entry.grid_cell for m in ids if (entry := meta(m)) is not None
                     and entry.grid_cell}
            ids += [m for cell in sorted(cells) for m in cell_meters(cell)]
        ids = [m for m in dict.fromkeys(ids) if m not in asked]
        if not ids:
            return
        asked.update(ids)
        stats["queries"] += -(-len(ids) // WARM_START_GROUP)
        end = datetime.fromtimestamp(until, UTC)
        began = time.monotonic()
        got = 0
        try:
            for fields in reader.recent_fields(end - timedelta(days=days), ids, until=end,
                                               group=WARM_START_GROUP):
                got += 1
                yield fields
        except (ReadError, OSError) as exc:
            failures["failed"] += 1
            if failures["failed"] == 1:
                log.warning("warm start: stored readings not available (%s); meters without "
                            "state start cold", exc)
        stats["meters"] += len(ids)
        stats["readings"] += got
        stats["ms"] += round((time.monotonic() - began) * 1000)
        if time.monotonic() - last_log[0] >= 10.0:
            last_log[0] = time.monotonic()
            log.info("warm start: %s meters asked for, %s stored readings stepped so far "
                     "(%.0f s)", f"{stats['meters']:,}", f"{stats['readings']:,}",
                     stats["ms"] / 1000)

    warm.failures = failures  # type: ignore[attr-defined]
    warm.stats = stats  # type: ignore[attr-defined]
    return warm


class WarmStartMetrics:
    """A warm start's counts on the engine's metrics endpoint, read at each scrape:
    ``gridwatch_warm_start_queries_total``, ``..._meters_total`` (asked for),
    ``..._readings_total`` (stored readings given to the cells) and ``..._failures_total``
    (queries that failed: those meters started cold)."""

    NAMES = (("queries", "Warm-start queries of stored readings."),
             ("meters", "Meters a warm start asked for."),
             ("readings", "Stored readings a warm start gave the cells."),
             ("failures", "Warm-start queries that failed (those meters started cold)."))

    def __init__(self, warm: Any, registry: CollectorRegistry) -> None:
        self.warm = warm
        registry.register(self)

    def describe(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        for name, doc in self.NAMES:
            yield CounterMetricFamily(f"gridwatch_warm_start_{name}", doc)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        counts = {**self.warm.stats, "failures": self.warm.failures["failed"]}
        for name, doc in self.NAMES:
            yield CounterMetricFamily(f"gridwatch_warm_start_{name}", doc,
                                      value=counts.get(name, 0))


def warm_start(settings: Settings, router: Any = None,
               registry: CollectorRegistry | None = None,
               meta: Callable[[str], MeterMeta | None] | None = None,
               ) -> Callable[[list[str], float], Iterator[Any]] | None:
    """The warm start of the dataflow's cells that have no recovery state
    (``engine.warm_start_days``), or None: turned off, no database, or a database that
    holds no readings to warm from (a fresh one) or cannot say (logged: the meters start
    cold). With ``registry`` its counts are exported there (:class:`WarmStartMetrics`);
    ``meta`` is the dataflow's meter lookup (made from the router when not given)."""
    days = settings.engine.warm_start_days
    if not settings.influx.enabled or days <= 0:
        return None
    stored = stored_readings(settings)
    if not stored:
        log.info("warm start: %s; meters start cold",
                 "no readings stored yet" if stored is False
                 else "the database cannot be asked for stored readings (InfluxQL /query)")
        return None
    log.info("warm start: meters without state are seeded from up to %g days of their "
             "stored readings, a cell's meters at once%s", days,
             "" if router is not None else " (no registry: each batch's new meters)")
    warm = (influx_warm_start(settings, days) if router is None else
            influx_warm_start(settings, days, cell_index(router),
                              meta or meter_lookup(settings, router)))
    if registry is not None:
        WarmStartMetrics(warm, registry)
    return warm


def stored_readings(settings: Settings) -> bool | None:
    """Whether the database holds any reading (its ``reading`` measurement exists): where it
    holds none there is nothing to warm meters from, and a warm start is not started. None
    when the database cannot say (down, or no InfluxQL)."""
    from gridwatch.storage import InfluxReader, ReadError

    try:
        with InfluxReader(settings.influx) as reader:
            return any(reader.series('SHOW MEASUREMENTS WITH MEASUREMENT = "reading"'))
    except ReadError as exc:
        return False if "database not found" in str(exc) else None
    except OSError:
        return None


def cell_index(router: Any) -> Callable[[str], Sequence[str]]:
    """A grid cell's meter ids in the router's registry (the registry in use at each call:
    a reload builds the index again at the next)."""
    held: list[Any] = [None, {}]

    def meters_of(cell: str) -> Sequence[str]:
        registry = router.registry
        if registry is not held[0]:
            index: dict[str, list[str]] = {}
            for meter_id, entry in registry.meta_table().items():
                if entry.grid_cell:
                    index.setdefault(entry.grid_cell, []).append(meter_id)
            held[:] = [registry, index]
        return held[1].get(cell, ())

    return meters_of


class TransitionExporter:
    """Copies alert state changes (firing, acknowledged, escalated, resolved, ...) from the
    router's audit trail to InfluxDB every few seconds. The position is kept in a file beside
    the router's database; points are idempotent, so re-sending after a crash is harmless."""

    def __init__(self, router: Any, settings: Settings, interval_s: float = 5.0) -> None:
        from gridwatch.storage import build_writer

        self.router = router
        self.writer = build_writer(settings.influx)
        self.interval_s = interval_s
        self.position_file = settings.alerts.state_db.with_suffix(".exported")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gridwatch-alert-export",
                                        daemon=True)

    def start(self) -> TransitionExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def export_once(self) -> int:
        from gridwatch.storage import to_lines

        try:
            after = int(self.position_file.read_text())
        except (OSError, ValueError):
            after = 0
        transitions, last = self.router.transitions(after)
        if transitions:
            self.writer.write([line for t in transitions for line in to_lines(t)])
        if last != after:
            tmp = self.position_file.with_suffix(".tmp")
            tmp.write_text(str(last))
            os.replace(tmp, self.position_file)
        return len(transitions)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.export_once()
            except Exception as exc:  # retried next round; the position did not move
                log.warning("alert transitions not exported yet: %s", exc)


def verdict_feed(settings: Settings) -> Any:
    """The workspace's verdicts for the detectors (the closed loop), when the workspace is on or
    its database exists; None otherwise."""
    db = settings.web.db or settings.alerts.state_db
    if not (settings.web.enabled or Path(db).exists()):
        return None
    from gridwatch.web import VerdictFeed

    return VerdictFeed(db, clock=lambda: datetime.now(UTC))


def placement_topics_warning(settings: Settings, processes: int) -> str | None:
    """What ``gridwatch run`` warns about when exclusive placement and the topics disagree, or
    None: with ``engine.placement_exclusive`` each placed cell's readings must reach its own
    process only, so each process needs its own regions (``topics.regions``); collectors all
    on the same ``reading``/``batch`` filters hear every cell. (A region listed for two
    processes is refused by the settings themselves.)"""
    e, t = settings.engine, settings.topics
    if processes < 2 or not e.placement or not e.placement_exclusive or t.regions:
        return None
    default = TopicSettings()
    if set(t.reading_filters + t.batch_filters) & set(
            default.reading_filters + default.batch_filters):
        return ("engine.placement_exclusive with the default topics: every process's "
                "collector hears every cell, so a placed cell's first batch may be stepped "
                "before the other process's older readings; give each process its own "
                "regions (topics.regions: {0: [north], 1: [south]}, next to engine.placement)")
    return None


def cluster_topics(settings: Settings, processes: int, process_id: int) -> Settings:
    """The settings with ``topics.regions`` checked against a cluster of ``processes``: a
    single process ignores it (it hears every region, as it watches every cell); a cluster
    must list every process (ids ``0 .. processes-1``) and no other, else
    :class:`ConfigError`."""
    procs, pid = processes, process_id
    if procs == 1 and settings.topics.regions:
        # One process hears every region, as it watches every cell.
        log.info("a single process: topics.regions is ignored, the collector hears every "
                 "region")
        return settings.model_copy(update={
            "topics": settings.topics.model_copy(update={"regions": {}})})
    if procs > 1 and settings.topics.regions:
        # Checked for the whole cluster here, so each process fails alike and at start.
        missing = sorted(set(range(procs)) - set(settings.topics.regions))
        extra = sorted(set(settings.topics.regions) - set(range(procs)))
        if missing or extra:
            raise ConfigError(
                "topics.regions must list the regions of every process of the cluster "
                f"(ids 0..{procs - 1}) and no other: "
                + "; ".join(([f"missing {missing}"] if missing else [])
                            + ([f"not in the cluster {extra}"] if extra else [])))
        for region, pids in settings.topics.shared_regions().items():
            # (refused by the settings with placement_exclusive)
            log.warning("topics.regions: region %r is listed for processes %s: the shared "
                        "subscription splits its messages between them, so its cells' "
                        "readings cross between processes", region,
                        ", ".join(map(str, pids)))
        own = settings.topics.for_process(pid)
        log.info("process %d subscribes to its own regions: %s", pid,
                 ", ".join(own.reading_filters + own.batch_filters))
    return settings


def collector_in_process(choice: bool | str, addresses: list[str] | None, process_id: int,
                         cores: int | None = None) -> tuple[bool, str]:
    """Whether ``gridwatch run``'s collector runs in a process of its own
    (``engine.collector_process``), and why. ``auto``: when this machine has two cores or
    more (``cores``; those this process may run on when None) for each engine process on it,
    the processes of ``addresses`` whose host is this one's (by name: ``localhost`` and
    ``127.0.0.1`` count as two machines)."""
    if choice != "auto":
        return bool(choice), f"engine.collector_process is {str(bool(choice)).lower()}"
    if cores is None:
        cores = len(os.sched_getaffinity(0))
    local = 1
    if addresses:
        host = addresses[process_id].rpartition(":")[0]
        local = sum(1 for a in addresses if a.rpartition(":")[0] == host)
    own = cores >= 2 * local
    return own, (f"{cores} cores for {local} engine process{'es' if local > 1 else ''} on "
                 f"this machine: {'a process of its own' if own else 'a thread'} "
                 f"(engine.collector_process: auto)")


def run_engine(settings: Settings, *, process_id: int | None = None,
               addresses: list[str] | None = None) -> None:
    """Collector + dataflow + alert router in one process (the embedded default).

    With ``addresses`` (bytewax ``-a``) and ``process_id`` (``-i``) this process is one of a
    cluster: its collector joins the MQTT shared subscription and writes journal partition
    ``process_id``, which only this process reads (its journal, spool and recovery directories
    may be on its own machine); readings cross to their cell's process inside the dataflow.
    """
    procs = len(addresses) if addresses else 1
    pid = process_id or 0
    partition = settings.ingest.partition if addresses is None else pid
    # Which process watches which grid cell: checked before anything starts.
    placement = cluster_placement(settings, procs)
    check_placement_store(settings, placement)
    if placement is not None:
        log.info("placement: the grid cells of engine.placement are watched on their own "
                 "process (%d workers in all)", placement.workers)
        topic_warning = placement_topics_warning(settings, procs)
        if topic_warning:
            log.warning("%s", topic_warning)
    settings = cluster_topics(settings, procs, pid)
    if procs > 1 and not settings.mqtt.shared_group:
        # Without a shared subscription every collector would receive every message.
        mqtt = settings.mqtt.model_copy(update={"shared_group": "gridwatch"})
        settings = settings.model_copy(update={"mqtt": mqtt})
        log.info("cluster of %d processes: collectors share the subscription as "
                 "$share/gridwatch/...", procs)
    if procs > 1 and pid > 0:
        # Each process routes the events of its own workers. Two routers on one database
        # would both deliver its outbox, and two MQTT clients with one id disconnect each
        # other: processes other than 0 get their own, suffixed with -p<id>.
        a = settings.alerts

        def own(path: Path) -> Path:
            return path.with_name(f"{path.stem}.p{pid}{path.suffix}")

        alerts = a.model_copy(update={
            "state_db": own(a.state_db),
            "jsonl_out": own(a.jsonl_out) if a.jsonl_out is not None else None,
            "mqtt_client_id": f"{a.mqtt_client_id[:60]}-p{pid}",
        })
        settings = settings.model_copy(update={"alerts": alerts})

    # One Prometheus registry for the collector and the storage sink, served on
    # ingest.metrics_port (+ process id in a cluster) when that is set. The cycle collector
    # is tuned from here on: loading a 10^5-meter registry with Python's settings takes
    # twice as long (the collector scans the growing registry again and again).
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    with tuned_gc(settings.engine.gc_threshold, registry) as settled:
        _start_and_run(settings, procs=procs, pid=pid, partition=partition,
                       placement=placement, process_id=process_id, addresses=addresses,
                       registry=registry, settled=settled)


def _stop_on_sigterm(collector: Any) -> None:
    """On ``SIGTERM`` the engine ends at once, as it always has (every step it took is
    durable); before that it asks its collector process to stop, which then journals and
    acknowledges what it holds and ends on its own instead of finding its engine gone."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return  # (only the main thread may set a handler: the process's watch stops it)

    def on_term(signum: int, frame: Any) -> None:
        collector.stop_soon()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)


def _start_and_run(settings: Settings, *, procs: int, pid: int, partition: int,
                   placement: Any, process_id: int | None, addresses: list[str] | None,
                   registry: CollectorRegistry, settled: Callable[[], None]) -> None:
    """:func:`run_engine` from its metrics endpoint on: start the collector, the router and
    the rest, build the dataflow, call ``settled`` and run it until it stops."""
    from bytewax.run import cli_main

    from gridwatch import ingest, storage, stream
    from gridwatch.alerts import RouterService
    from gridwatch.models import Calendar
    from gridwatch.stream._devices import registry_devices
    from gridwatch.tags._live import DaySink, live_tags
    from gridwatch.tags._notes import TagNotes, tags_db_path

    began = time.monotonic()
    metrics_server = None
    if settings.ingest.metrics_port:
        port = settings.ingest.metrics_port + pid
        metrics_server = ingest.start_metrics_server(port, registry,
                                                     settings.ingest.metrics_addr)
        log.info("metrics on http://%s:%d/metrics", settings.ingest.metrics_addr, port)
    collector: Any
    own_process, why = collector_in_process(settings.engine.collector_process, addresses, pid)
    log.info("the MQTT collector: %s", why)
    if own_process:
        from gridwatch._collector_process import CollectorProcess

        port = settings.engine.collector_metrics_port
        # The dataflow's own ingest figures (lag, hand-over) and the process's, served as
        # one set on the engine's endpoint.
        source_metrics = ingest.IngestMetrics()
        collector = CollectorProcess(settings, partition, port + pid if port else 0,
                                     settings.engine.gc_threshold,
                                     registry=registry if metrics_server is not None else None,
                                     own_metrics=source_metrics.registry).start()
        _stop_on_sigterm(collector)
        handover = 0  # (nothing to hand over between processes: every record is decoded)
    else:
        collector = ingest.Collector(settings, partition=partition, registry=registry)
        collector.start()
        source_metrics, handover = collector.metrics, settings.ingest.handover_items
    try:
        collector.wait_ready(timeout=15.0)
    except ingest.ConnectError as exc:
        if collector.failed:
            collector.stop()
            raise
        # The broker may come later: the collector keeps retrying with backoff while the
        # dataflow works through what the journal already holds.
        log.warning("%s; the collector keeps retrying", exc)
    service = RouterService.from_settings(settings).start() if settings.alerts.enabled else None
    router = service.router if service is not None else None
    exporter = None
    if router is not None and settings.influx.enabled:
        # Each process routes its own workers' events in its own database, so each exports
        # its own transitions (the position file sits beside that database).
        exporter = TransitionExporter(router, settings).start()
    # Customer tags, evaluated as each day closes (gridwatch.tags._live).
    tags = live_tags(settings, router, Calendar(settings.detection.timezone,
                                                settings.detection.holiday_country).tz, pid)
    if tags is not None:
        tags.start()
        if router is not None:  # messages show the tags with their reasons
            router.tag_notes = TagNotes(tags_db_path(settings.alerts, pid)).for_message
    web = None
    if settings.web.enabled and pid == 0:
        from gridwatch.web import WebServer

        web = WebServer(settings).start()
        log.info("workspace on %s", web.url)
    try:
        # Each process lists only its own collector's journal partition (bytewax builds a
        # partition where it is listed), so processes need no shared filesystem.
        source = ingest.JournalSource(settings.ingest.journal_dir,
                                      partitions=[partition], follow=True,
                                      metrics=source_metrics,
                                      # a record that is not a reading is kept, beside the
                                      # collector's dead letters but never in its partition
                                      deadletter_dir=settings.ingest.deadletter_dir,
                                      deadletter_partition_base=SOURCE_DEADLETTER_BASE,
                                      handover_items=handover,
                                      # (the collector process tells where its journal ends)
                                      journal_end=collector.journal_end
                                      if own_process else None)
        submit = router.submit_many if router else None
        on_profile = router.update_profile if router else None
        if tags is not None:  # the customers' tags follow the events and profiles
            submit, on_profile = tags.submit_wrapper(submit), tags.profile_wrapper(on_profile)
        sinks = stream.Sinks(
            points=(storage.InfluxSink(settings.influx,
                                       metrics=storage.StorageMetrics(registry),
                                       process_id=pid, processes=procs)
                    if settings.influx.enabled else None),
            # The router keeps its own JSONL record of alerts (alerts.jsonl_out).
            events=EventSink(submit, on_profile=on_profile,
                             jsonl=None if router else settings.alerts.jsonl_out),
            days=DaySink(tags) if tags is not None else None,
        )
        recovery = recovery_config(settings, procs, pid)
        # A cell without recovery state (no recovery, or none for it yet) would start its
        # meters blind: they are seeded from storage. A resumed cell asks for nothing.
        lookup = meter_lookup(settings, router)
        warm = warm_start(settings, router, registry, lookup)
        flow = stream.build_flow(settings, source, sinks, lookup,
                                 snapshots=recovery is not None, warm=warm,
                                 devices=registry_devices(settings, router),
                                 verdicts=verdict_feed(settings),
                                 # every process's journal partition: a cell steps a reading
                                 # once each of them has delivered up to its time
                                 partitions=ingest.JournalSource(
                                     settings.ingest.journal_dir,
                                     partitions=list(range(procs))).list_parts()
                                 if procs > 1 else (),
                                 placement=placement)
        settled()  # what start-up built is never scanned again
        log.info("started in %.1f s (%s); the dataflow runs", time.monotonic() - began,
                 f"a registry of {len(router.registry.meta_table()):,} meters"
                 if router is not None else "no alert router")
        cli_main(
            flow,
            workers_per_process=settings.engine.workers,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=timedelta(seconds=settings.engine.epoch_s),
            recovery_config=recovery,
        )
    finally:
        collector.stop()
        if tags is not None:
            tags.stop()
        if exporter is not None:
            exporter.stop()
        if web is not None:
            web.stop()
        if service is not None:
            service.stop(close=True)
        if metrics_server is not None:
            metrics_server.shutdown()


def _replay_share(index: int, processes: int, workers: int,
                  lookup: Callable[[str], MeterMeta | None] | None) -> FileShare:
    """Process ``index``'s share of a file in a parallel replay: a meter's lines go to the
    process whose worker bytewax sends the meter's watch key to (its grid cell, else its hash
    shard), so its readings never cross between processes."""
    from gridwatch.ingest import FileShare
    from gridwatch.stream import meta_lookup
    from gridwatch.stream._flow import watch_key
    from gridwatch.stream._place import route

    meta = meta_lookup(lookup)

    def owner(meter_id: str) -> int:
        return route(watch_key(meter_id, meta(meter_id)), processes * workers) // workers

    return FileShare(index, processes, owner)


def replay(settings: Settings, path: Path, *, influx: bool = True,
           alerts_out: Path | None = None, route: bool = False,
           entry_point: bool = False,
           cluster: tuple[int, Sequence[str]] | None = None,
           progress: Callable[[int, datetime], None] | None = None,
           share: tuple[int, int] | None = None, days_out: Any = None) -> RunStats:
    """Run the live dataflow over a readings file (CSV or JSONL) or a journal directory, with no
    broker. Events go to ``alerts_out`` (one JSON line each) and, with ``route``, through the
    alert router, which then also computes the customers' tags (as ``run`` does); readings,
    scores and profiles go to InfluxDB unless ``influx`` is off. ``entry_point``: the process
    runs the replay and nothing else (``gridwatch replay``): its collector is tuned as
    ``engine.gc_threshold`` says (process-wide, so not for a caller that goes on).

    ``cluster``: ``(index, addresses)`` of this process in a parallel replay (see
    :mod:`gridwatch._replay_cluster`, which starts the processes and merges what they write):
    it reads its share of the file (the meters whose cells its workers watch, so no reading
    crosses between the processes) or of a journal's partitions, and writes its events to
    ``alerts_out`` with its workers' suffix (``.w<worker>``), as any cluster does.
    ``progress(line, event time)``: called as a file is read (the file's lines consumed).
    ``share``: ``(index, count)`` of a parallel replay whose processes run apart (not a
    cluster): this one reads share ``index`` of ``count`` of the file, as in a cluster, and
    ``days_out`` (a bytewax sink) takes its finished days and theft candidates, for the one
    segment stage the parent runs over every process's (see :mod:`gridwatch._replay_cluster`).
    """
    from bytewax.testing import cluster_main, run_main

    from gridwatch import ingest, storage, stream
    from gridwatch.models import Calendar
    from gridwatch.stream._devices import registry_devices
    from gridwatch.tags._live import DaySink, live_tags
    from gridwatch.tags._notes import TagNotes, tags_db_path

    index, addresses = cluster if cluster is not None else (0, ())
    procs = max(len(addresses), 1)
    if share is not None:
        if cluster is not None:
            raise ValueError("a replay process runs either in a cluster or apart, not both")
        index, procs = share
    if route and procs > 1:
        raise ValueError("a parallel replay cannot route its events (one router a replay)")
    router = None
    if route:
        from gridwatch.alerts import build_router

        router = build_router(settings)
    lookup = meter_lookup(settings, router)
    # Rejected rows of a file are kept as dead letters beside the live ones, with the reason.
    source: Any = ingest.replay_source(
        path, deadletter_dir=settings.ingest.deadletter_dir / "replay",
        share=(_replay_share(index, procs, settings.engine.workers, lookup)
               if procs > 1 else None), progress=progress)
    # A journal of several partitions (a cluster's collectors) spreads a meter's readings
    # over them: the cells put them back in event-time order from the first batch on.
    parts = (ingest.JournalSource(path, follow=False).list_parts()
             if isinstance(source, ingest.JournalSource) else [])
    if alerts_out is not None and alerts_out.exists():
        alerts_out.unlink()
    submit = router.submit_many if router else None
    on_profile = router.update_profile if router else None
    # With the router, the customers' tags too (handled in the dataflow's thread: no tag
    # thread in a replay), evaluated day by day in the replay's event time.
    tags = live_tags(settings, router, Calendar(settings.detection.timezone,
                                                settings.detection.holiday_country).tz) \
        if router is not None else None
    if tags is not None:
        submit, on_profile = tags.submit_wrapper(submit), tags.profile_wrapper(on_profile)
        assert router is not None
        router.tag_notes = TagNotes(tags_db_path(settings.alerts)).for_message
    event_sink = EventSink(submit, on_profile=on_profile, jsonl=alerts_out)
    sinks = stream.Sinks(
        points=storage.InfluxSink(settings.influx, process_id=index, processes=procs)
        if influx else None, events=event_sink,
        days=DaySink(tags) if tags is not None else None)
    flow = stream.build_flow(settings, source, sinks, lookup,
                             snapshots=False,  # a replay runs without recovery
                             devices=registry_devices(settings, router),
                             partitions=parts if len(parts) > 1 else (), days_out=days_out)
    epoch = timedelta(seconds=settings.engine.epoch_s)
    with tuned_gc(settings.engine.gc_threshold if entry_point else 0):
        if len(addresses) > 1:
            cluster_main(flow, list(addresses), index, epoch_interval=epoch,
                         worker_count_per_proc=settings.engine.workers)
        else:
            run_main(flow, epoch_interval=epoch)
    if tags is not None:
        tags.settle(force=True)  # the last day whose profiles arrived
    stats = RunStats()
    stats.readings = getattr(source, "accepted", 0)
    stats.rejected_by_reason = dict(getattr(source, "rejected_by_reason", {}))
    stats.rejected = sum(stats.rejected_by_reason.values())
    stats.events_by_type = dict(event_sink.counts)
    stats.events = sum(event_sink.counts.values())
    stats.resolutions_by_type = dict(event_sink.resolved)
    stats.resolutions = sum(event_sink.resolved.values())
    if router is not None:
        router.tick(datetime.now(UTC))
        router.deliver_pending(datetime.now(UTC))
    return stats
