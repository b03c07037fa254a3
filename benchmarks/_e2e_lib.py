"""Building blocks of ``benchmarks/e2e.py``: private servers, engine processes, load, probes.

Everything runs on loopback: a private mosquitto and a private database from
``gridwatch._services`` (InfluxDB 1.6.7 through the v1 API, or VictoriaMetrics through
influxdb-client's v2 write API with ``store="victoria"``), and ``gridwatch run`` as one or
more child processes with a settings file written here. Load comes from
``gridwatch.simulators`` (the 100,000-meter utility fleet, or the same fleet ten times
larger) and is published with a bare paho client, so that the publisher costs the same in
the end-to-end run and in its raw baseline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from gridwatch import _services

ROOT = Path(__file__).resolve().parents[1]
FLEET_100K = ROOT / "config" / "fleets" / "utility-100k.yaml"
console = Console(width=120)

Message = tuple[str, bytes, int]  # topic, payload, readings in it


# -- memory -----------------------------------------------------------------------------------
def rss_bytes(pid: int | None = None) -> int:
    """Resident set size (VmRSS) of a process, from /proc."""
    path = f"/proc/{pid or 'self'}/status"
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def family(pid: int) -> list[int]:
    """``pid`` and every process descended from it (an engine's collector process,
    ``engine.collector_process``), from ``/proc/<pid>/task/*/children``."""
    out = [pid]
    for p in out:
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:  # ended meanwhile
            continue
        for task in tasks:
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def _each_alive(pids: list[int], measure: Callable[[int], Any]) -> list[Any]:
    """``measure`` of each process still there."""
    got = []
    for pid in pids:
        try:
            got.append(measure(pid))
        except OSError:  # ended meanwhile
            continue
    return got


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_seconds(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of every thread of a
    process so far, from ``/proc/<pid>/task/*/schedstat`` (nanoseconds). The second is
    what the machine's other jobs cost it: time it had work and no core."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:  # a thread that ended meanwhile
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run / 1e9, wait / 1e9


def machine() -> dict[str, Any]:
    """The machine the figures come from: CPU count and model, memory, OS, Python."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as fh:
        mem_kb = int(fh.readline().split()[1])
    os_name = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kb / 2**20, 1),
            "os": os_name, "python": sys.version.split()[0]}


# -- load ---------------------------------------------------------------------------------------
def load_fleet(scale: int = 1, **overrides: Any) -> Any:
    """The utility fleet (100,000 meters), or ``scale`` times as many customers."""
    from gridwatch.simulators import Fleet

    data = yaml.safe_load(FLEET_100K.read_text())
    if scale != 1:
        for spec in data["customers"].values():
            spec["count"] *= scale
        for region in data["regions"]:
            region["cells"] *= scale
    data.update(overrides)
    return Fleet.from_dict(data, source=str(FLEET_100K))


def messages_for(rows: Sequence[tuple[str, str, str, Any]], batch: int,
                 prefix: str = "meters") -> list[Message]:
    """MQTT messages as the simulator's target sends them: one reading per message on
    ``{prefix}/{region}/{meter}/reading``, or JSON arrays of up to ``batch`` readings of one
    concentrator on ``{prefix}/{region}/{concentrator}/batch``."""
    out: list[Message] = []
    if batch == 1:
        for region, _c, meter, text in rows:
            out.append((f"{prefix}/{region}/{meter}/reading", text.encode(), 1))
        return out
    groups: dict[tuple[str, str], list[str]] = {}
    for region, conc, _m, text in rows:
        groups.setdefault((region, conc), []).append(text)
    for (region, conc), items in groups.items():
        for j in range(0, len(items), batch):
            part = items[j:j + batch]
            out.append((f"{prefix}/{region}/{conc}/batch",
                        ("[" + ",".join(part) + "]").encode(), len(part)))
    return out


def renamed(msgs: Sequence[Message], prefix: str) -> list[Message]:
    """The same payloads under another first topic level of the same length (baseline runs:
    the engine's collector does not see them)."""
    return [(prefix + t[t.index("/"):], p, n) for t, p, n in msgs]


# -- MQTT ---------------------------------------------------------------------------------------
class Publisher:
    """A bare paho MQTT v5 client publishing QoS 1 with at most ``window`` unacknowledged
    messages; ``publish`` blocks while the window is full, so memory stays bounded."""

    def __init__(self, port: int, client_id: str, window: int = 1000) -> None:
        self.window = window
        self.sent = 0
        self.acked = 0
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(window)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("publisher: no CONNACK from the private broker")

    def _on_publish(self, *_: Any) -> None:
        with self._cond:
            self.acked += 1
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        with self._cond:
            while self.sent - self.acked >= self.window:
                self._cond.wait(1.0)
        self.client.publish(topic, payload, qos=1)
        self.sent += 1

    def flush(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent and time.monotonic() < deadline:
                self._cond.wait(0.5)

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


class Subscriber:
    """A bare paho MQTT v5 client that counts messages (and readings, from a callback) on some
    topic filters, and hands each message to ``on_message`` when given."""

    def __init__(self, port: int, client_id: str, filters: list[str],
                 on_message: Callable[[str, bytes, float], None] | None = None) -> None:
        self.messages = 0
        self.last_at = 0.0
        self.lock = threading.Lock()
        self._callback = on_message
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError(f"subscriber {client_id}: no SUBACK")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        with self.lock:
            self.messages += 1
            self.last_at = now
        if self._callback is not None:
            self._callback(msg.topic, bytes(msg.payload), now)

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.messages >= n:
                    return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- InfluxDB -----------------------------------------------------------------------------------
def influx_query(url: str, q: str, db: str = "gridwatch", timeout: float = 60.0) -> Any:
    qs = urllib.parse.urlencode({"db": db, "q": q})
    with urllib.request.urlopen(f"{url}/query?{qs}", timeout=timeout) as resp:
        return json.loads(resp.read())


def stored_readings(url: str, since: datetime | None = None) -> int:
    """Readings stored in InfluxDB (``count(kw)`` of the ``reading`` measurement)."""
    where = f" WHERE time >= '{since.isoformat().replace('+00:00', 'Z')}'" if since else ""
    out = influx_query(url, f"SELECT count(kw) FROM reading{where}")
    total = 0
    for result in out.get("results", []):
        for series in result.get("series", []) or []:
            for row in series["values"]:
                total += int(row[1] or 0)
    return total


def vm_query(url: str, query: str, at: float, timeout: float = 60.0) -> Any:
    """A PromQL/MetricsQL instant query on VictoriaMetrics at time ``at`` (epoch seconds)."""
    qs = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}", "nocache": "1"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{qs}", timeout=timeout) as resp:
        return json.loads(resp.read())


#: Where VictoriaMetrics' count of every reading starts: before any fleet the benchmarks
#: replay (the utility fleet starts in 2024).
_VM_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def vm_stored_readings(url: str, since: datetime | None = None) -> int:
    """Readings stored in VictoriaMetrics (samples of ``reading_kw``, as VictoriaMetrics names
    the ``kw`` field of the ``reading`` measurement), with event time from ``since`` on."""
    at = time.time() + 86_400.0  # (the window is open on the left, closed on the right)
    start = (since or _VM_EPOCH).timestamp() - 1.0
    out = vm_query(url, f"sum(count_over_time(reading_kw[{int(at - start)}s]))", at)
    result = out.get("data", {}).get("result") or []
    return int(float(result[0]["value"][1])) if result else 0


#: VictoriaMetrics' samples that count what InfluxDB's ``SHOW STATS FOR 'httpd'`` calls
#: ``writeReq``, ``pointsWrittenOK`` and ``queryReq``: (sample, label, its value) -> name
_VM_HTTP = {("vm_http_requests_total", "path", "/influx/write"): "writeReq",  # (v2 write too)
            ("vm_protoparser_rows_read_total", "type", "influx"): "pointsWrittenOK",  # lines
            ("vm_http_requests_total", "path", "/api/v1/query"): "queryReq"}


def scrape(url: str, names: Sequence[str] = ()) -> list[Any]:
    """The samples a server exposes at ``url/metrics`` (Prometheus text format, parsed by
    prometheus-client): each with ``name``, ``labels`` and ``value``. ``names``: only the
    samples of these names (``?name[]=``, which prometheus-client's server answers by
    collecting only their metrics: a poll many times a second then costs the engine it
    measures next to nothing)."""
    query = urllib.parse.urlencode([("name[]", n) for n in names])
    with urllib.request.urlopen(f"{url}/metrics" + (f"?{query}" if query else ""),
                                timeout=10) as resp:
        text = resp.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def vm_http_stats(url: str) -> dict[str, float]:
    """VictoriaMetrics' own counters so far, named as InfluxDB's ``SHOW STATS FOR 'httpd'``
    names the same figures: write requests and points (rows) written."""
    out: dict[str, float] = {}
    for s in scrape(url):
        for (name, label, value), stat in _VM_HTTP.items():
            if s.name == name and s.labels.get(label) == value:
                out[stat] = out.get(stat, 0.0) + s.value
    return out


def has_reading(url: str, meter_id: str, ts: str) -> bool:
    """Whether one reading (meter, timestamp) is stored."""
    out = influx_query(url, f"SELECT kw FROM reading WHERE meter_id = '{meter_id}' "
                            f"AND time = '{ts}'", timeout=10)
    return any(r.get("series") for r in out.get("results", []))


# -- servers and the engine -------------------------------------------------------------------
#: The stores a benchmark can write to: InfluxDB 1.6.7 (v1 API), VictoriaMetrics (v2 API).
STORES = ("influxdb", "victoria")
#: InfluxDB's ``cache-snapshot-memory-size`` in the stacks started from now on (None:
#: InfluxDB's own default, 25 MB); ``benchmarks/e2e.py --influx-cache-snapshot`` sets it.
influx_cache_snapshot: str | None = _services.INFLUX_CACHE_SNAPSHOT


@dataclass
class Stack:
    """Private mosquitto and a database (``store``: InfluxDB 1.6.7, or VictoriaMetrics through
    the v2 write API), a registry, a settings file and engine processes."""

    work: Path
    store: str = "influxdb"
    broker: Any = None
    db: Any = None
    engines: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    #: when the last :meth:`wait_stored` saw the engine's written count reach its target,
    #: and when its count query found every reading
    written_at: float | None = None
    counted_at: float | None = None

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ValueError(f"store {self.store!r}: one of {', '.join(STORES)}")

    def start_servers(self) -> Stack:
        self.work.mkdir(parents=True, exist_ok=True)
        self.broker = _services.mosquitto(self.work / "mosquitto").start()
        if self.store == "victoria":
            self.db = _services.victoria_metrics(self.work / "victoria-metrics").start()
        else:
            self.db = _services.influxdb(self.work / "influxdb",
                                         cache_snapshot=influx_cache_snapshot).start()
            urllib.request.urlopen(f"{self.db.url}/query",
                                   data=b"q=CREATE+DATABASE+gridwatch", timeout=30).read()
        return self

    @property
    def db_name(self) -> str:
        """The database's name in figures and messages."""
        return "VictoriaMetrics" if self.store == "victoria" else "InfluxDB"

    def stored(self, since: datetime | None = None) -> int:
        """Readings stored so far (with event time from ``since`` on)."""
        if self.store == "victoria":
            return vm_stored_readings(self.db.url, since)
        return stored_readings(self.db.url, since)

    def has_reading(self, meter_id: str, ts: str) -> bool:
        """Whether one reading (meter, timestamp) is stored."""
        if self.store == "victoria":
            at = datetime.fromisoformat(ts).timestamp()
            out = vm_query(self.db.url, f'count_over_time(reading_kw{{meter_id="{meter_id}"}}'
                                        f'[1s])', at, timeout=10)
            return bool(out.get("data", {}).get("result"))
        return has_reading(self.db.url, meter_id, ts)

    def wait_stored(self, target: int, timeout: float, poll_s: float = 1.0, label: str = "",
                    since: datetime | None = None, written: Callable[[], float] | None = None,
                    written_target: float = 0.0, on_written: Callable[[], None] | None = None,
                    until_written: bool = False) -> tuple[float | None, int]:
        """Poll :meth:`stored` until ``target`` readings are stored (or an engine exits);
        returns (perf_counter when seen or None on timeout, last count). The count query
        itself costs the database work (on 2 cores, CPU taken from the engine it measures), so
        the poll interval is at least four times the last query's duration; and with
        ``written`` (the engine's count of points the server accepted, from its metrics), the
        count is asked only once that has reached ``written_target``: no reading can be
        counted before the engine has written at least as many points. When it has, its
        ``perf_counter`` is kept in :attr:`written_at` and ``on_written`` is called, before
        the first count query. ``until_written`` (``written`` counts the readings the server
        accepted): the time returned is that one, the count query then only confirms them
        (its own seconds are the benchmark's, not the path's); the query's time is kept in
        :attr:`counted_at`."""
        deadline = time.monotonic() + timeout
        n = 0
        self.written_at = self.counted_at = None
        with console.status(f"{label}: waiting for {target:,} readings in "
                            f"{self.db_name}") as status:
            while written is not None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if written() >= written_target:
                        self.written_at = time.perf_counter()
                        if on_written is not None:
                            on_written()
                        break
                if not self.engines_alive():
                    return None, n
                time.sleep(0.05)
            while time.monotonic() < deadline:
                q0 = time.perf_counter()
                with contextlib.suppress(OSError):
                    n = self.stored(since)
                q_s = time.perf_counter() - q0
                if n >= target:
                    self.counted_at = time.perf_counter()
                    if until_written and self.written_at is not None:
                        return self.written_at, n
                    return self.counted_at, n
                if not self.engines_alive():
                    return None, n
                status.update(f"{label}: {n:,} of {target:,} readings stored "
                              f"(count query {q_s:.2f} s)")
                time.sleep(max(poll_s, 4 * q_s))
        return None, n

    def write_config(self, registry: Path, metrics_port: int = 0,
                     sections: dict[str, dict[str, Any]] | None = None, **alerts: Any) -> Path:
        """The engine's settings file; ``sections`` are merged over it section by section
        (``{"engine": {"placement": ...}, "topics": {"regions": ...}}``)."""
        w = self.work
        settings = {
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port,
                     "client_id": "bench-collector"},
            "ingest": {"journal_dir": str(w / "journal"), "deadletter_dir": str(w / "dead"),
                       "metrics_port": metrics_port, "metrics_addr": "127.0.0.1"},
            "influx": ({"api": "v1", "url": self.db.url, "database": "gridwatch"}
                       if self.store == "influxdb" else
                       {"api": "v2", "url": self.db.url, "org": "gridwatch",
                        "bucket": "gridwatch"})
            | {"spool_dir": str(w / "spool"), "batch_size": 5000},
            "alerts": {"registry": str(registry), "routes": str(ROOT / "config/routes.yaml"),
                       "templates": str(ROOT / "config/templates"),
                       "state_db": str(w / "alerts.sqlite"),
                       "jsonl_out": str(w / "alerts.jsonl"), **alerts},
            "engine": {"epoch_s": 1.0},
        }
        for name, values in (sections or {}).items():
            settings[name] = settings.get(name, {}) | values
        cfg = w / "gridwatch.yaml"
        cfg.write_text(yaml.safe_dump(settings, sort_keys=False))
        return cfg

    def start_engine(self, cfg: Path, processes: int = 1, timeout: float = 300.0) -> None:
        """``gridwatch run`` once, or as a cluster of ``processes`` (``-i``/``-a``); returns
        when every collector has subscribed."""
        addresses = [f"127.0.0.1:{_services.free_port()}" for _ in range(processes)]
        for i in range(processes):
            env = os.environ | {"GRIDWATCH_CONFIG": str(cfg)}
            argv = [sys.executable, "-m", "gridwatch", "run"]
            if processes > 1:
                argv += ["-i", str(i)]
                for a in addresses:
                    argv += ["-a", a]
            log = self.work / f"engine.{i}.log"
            self.logs.append(log)
            with open(log, "wb") as fh:
                self.engines.append(subprocess.Popen(argv, env=env, stdout=fh,
                                                     stderr=subprocess.STDOUT,
                                                     start_new_session=True))
        deadline = time.monotonic() + timeout
        for proc, log in zip(self.engines, self.logs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the engine exited at start; see {log}:\n"
                                       + tail(log))
                if "subscribed to" in log.read_text(errors="replace"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the engine did not subscribe in {timeout}s; see {log}")
                time.sleep(0.2)

    def wait_ready(self, timeout: float = 900.0, at: datetime | None = None) -> float:
        """Publish one probe reading (its own meter, outside the fleet) and wait until it is
        stored: the engine has loaded its registry and every stage runs. Returns seconds.

        ``at``: the probe's event time (default: an hour ago, for a fleet that reads in real
        time). A fleet replayed from another time needs one before its own: the probe's
        partition is the cluster's newest while the fleet's are idle (between a benchmark's
        intervals), and a probe of today would move the watermark of every cell of a fleet
        of 2024 to today, every meter silent, a feeder outage in every cell."""
        t0 = time.perf_counter()
        ts = at or (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0,
                                                                    microsecond=0)
        doc = {"meter_id": "probe01", "ts": ts.isoformat().replace("+00:00", "Z"),
               "kw": 1.0, "kwh": 1.0, "voltage": [230.0]}
        before = self.stored()
        pub = Publisher(self.broker.port, "bench-probe")
        pub.publish("meters/probe/probe01/reading", json.dumps(doc).encode())
        pub.close()
        done, _ = self.wait_stored(before + 1, timeout, label="engine start")
        if done is None:
            raise RuntimeError(f"the engine stored no probe reading in {timeout}s; see "
                               f"{self.logs[0]}")
        return done - t0

    def engines_alive(self) -> bool:
        return all(p.poll() is None for p in self.engines)

    def _family(self) -> list[int]:
        """The engine processes still running, and their children (a collector process)."""
        return [pid for p in self.engines if p.poll() is None for pid in family(p.pid)]

    def engine_cpu(self) -> float:
        """CPU-seconds the engine processes (their collector processes included) have used
        so far."""
        return sum(_each_alive(self._family(), cpu_seconds))

    def services_cpu(self) -> dict[str, float]:
        """CPU-seconds the broker and the database have used so far."""
        out: dict[str, float] = {}
        for name, svc in (("mosquitto", self.broker), (self.store, self.db)):
            if svc is not None and svc.running:
                out[name] = cpu_seconds(svc.proc.pid)
        return out

    def db_http_stats(self) -> dict[str, float]:
        """The database's HTTP counters so far, as InfluxDB names them (``SHOW STATS FOR
        'httpd'``): write and query requests, points written and, from InfluxDB, the time
        spent on each kind."""
        if self.store == "victoria":
            return vm_http_stats(self.db.url)
        doc = influx_query(self.db.url, "SHOW STATS FOR 'httpd'", timeout=10)
        series = doc["results"][0].get("series") or []
        if not series:
            return {}
        return {k: float(v) for k, v in zip(series[0]["columns"], series[0]["values"][0],
                                            strict=True)}

    def engine_sched(self) -> tuple[float, float]:
        """(CPU seconds, seconds waiting for a CPU) of the engine processes so far."""
        both = _each_alive(self._family(), sched_seconds)
        return sum(b[0] for b in both), sum(b[1] for b in both)

    def engine_rss(self) -> int:
        return sum(_each_alive(self._family(), rss_bytes))

    def stop_engines(self) -> None:
        for p in self.engines:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.engines:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        self.engines.clear()

    def close(self) -> None:
        """Stop the engines, then the services, even when an engine would not stop (a
        broker or database left running would share its directory with the next run's)."""
        try:
            self.stop_engines()
        finally:
            for svc in (self.broker, self.db):
                if svc is not None:
                    svc.stop()


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def engine_metrics(port: int, names: Sequence[str] = ()) -> dict[str, float]:
    """The engine's Prometheus metrics (``ingest.metrics_port``; ``names``: only those),
    summed over labels."""
    out: dict[str, float] = {}
    for s in scrape(f"http://127.0.0.1:{port}", names):
        out[s.name] = out.get(s.name, 0.0) + s.value
    return out


#: How far :func:`journal_readings` has counted each partition: (offset, readings before it).
_COUNTED: dict[tuple[Path, int], tuple[int, int]] = {}


def journal_readings(journal_dir: Path) -> int:
    """Readings in every partition of a journal (those the collectors accepted). A record
    holds one reading, or a message's batch of them: each record's meter ids are counted in
    its bytes (nothing parsed), from where the last call got to."""
    from gridwatch.ingest import Journal
    from gridwatch.ingest._journal import journal_partitions

    total = 0
    for p in journal_partitions(journal_dir):
        offset, readings = _COUNTED.get((journal_dir, p), (0, 0))
        j = Journal(journal_dir, p, readonly=True)
        try:
            while records := j.read(offset, 10_000):
                readings += sum(data.count(b'"meter_id"') for _, data in records)
                offset = records[-1][0] + 1
        finally:
            j.close()
        _COUNTED[(journal_dir, p)] = (offset, readings)
        total += readings
    return total


METER_RE = re.compile(r"\bm\d{5,8}\b")
