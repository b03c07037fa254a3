"""Helpers of the fault-survival tests: a fleet of meters, an engine configuration, an
independent MQTT observer of the alert topics, restartable SMTP and webhook receivers, InfluxDB
queries and a small tmpfs for disk-full faults. Every server is real and private."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from gridwatch import _services

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = timedelta(minutes=15)
ALERT_TOPIC = "gridwatch/managers/+/alerts"


# -- the fleet --------------------------------------------------------------------------------
def slot_times(n: int, now: datetime | None = None) -> list[datetime]:
    """``n`` 15-minute slots ending no later than ``now`` (on the quarter hour)."""
    now = now or datetime.now(UTC)
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 15)
    return [end - (n - 1 - i) * INTERVAL for i in range(n)]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass
class Fleet:
    """Ordinary meters with a daily curve and a little noise (nothing any detector flags),
    plus special meters whose readings a test shapes with ``override``."""

    meters: list[str]
    times: list[datetime]
    kwh: dict[str, float] = field(default_factory=dict)
    #: (meter, slot) -> fields replacing the ordinary ones; None drops the reading.
    override: dict[tuple[str, int], dict[str, Any] | None] = field(default_factory=dict)

    def reading(self, meter: str, slot: int) -> dict[str, Any] | None:
        if (meter, slot) in self.override and self.override[(meter, slot)] is None:
            return None
        t = self.times[slot]
        i = self.meters.index(meter)
        wobble = 0.05 * math.sin(slot * 0.7 + i) + 0.013 * ((slot * 7 + i * 3) % 5)
        kw = round(0.4 + 0.01 * (i % 40) + 0.6 * (18 <= t.hour <= 22) + wobble, 3)
        row: dict[str, Any] = {"meter_id": meter, "ts": iso(t), "kw": kw,
                               "voltage": [221.5], "pf": 0.97}
        row.update(self.override.get((meter, slot)) or {})
        self.kwh[meter] = self.kwh.get(meter, 1000.0) + row["kw"] * 0.25
        row["kwh"] = round(self.kwh[meter], 3)
        return row

    def slot(self, slot: int) -> list[dict[str, Any]]:
        return [r for m in self.meters if (r := self.reading(m, slot)) is not None]


def registry(meters: list[str], *, channels: list[str] | None = None,
             email: str | None = None, webhook: str | None = None) -> dict[str, Any]:
    """One grid cell with a primary and a backup manager; one customer per meter."""
    mgr: dict[str, Any] = {"id": "MGR-F", "name": "Fault Manager",
                           "channels": channels or ["mqtt"], "language": "en"}
    if email:
        mgr["email"] = email
    if webhook:
        mgr["webhook"] = webhook
    return {
        "managers": [mgr, {"id": "MGR-B", "name": "Backup", "channels": ["mqtt"],
                           "language": "en"}],
        "cells": [{"id": "CELL-F", "name": "fault cell", "primary": "MGR-F",
                   "backup": "MGR-B"}],
        "customers": [{"id": f"C-{m}", "name": f"customer {m}", "class": "residential",
                       "contracted_kva": 10, "grid_cell": "CELL-F", "meters": [m]}
                      for m in meters],
    }


def cell_registry(cells: dict[str, list[str]]) -> dict[str, Any]:
    """Grid cells (id -> meters) with the same two managers; one residential customer per
    meter."""
    mgrs = [{"id": "MGR-F", "name": "Fault Manager", "channels": ["mqtt"], "language": "en"},
            {"id": "MGR-B", "name": "Backup", "channels": ["mqtt"], "language": "en"}]
    rows = [{"id": c, "name": c.lower(), "primary": "MGR-F", "backup": "MGR-B"} for c in cells]
    customers = [{"id": f"C-{m}", "name": f"customer {m}", "class": "residential",
                  "contracted_kva": 10, "grid_cell": cell, "meters": [m]}
                 for cell, meters in cells.items() for m in meters]
    return {"managers": mgrs, "cells": rows, "customers": customers}


def raised(machine: Path) -> list[dict[str, Any]]:
    """Alerts raised by the router of one machine (``alerts.jsonl``, ``alerts.p1.jsonl``)."""
    return [json.loads(line) for path in sorted(machine.glob("alerts*.jsonl"))
            for line in path.read_text().splitlines()]


def write_config(tmp_path: Path, *, broker: _services.Service, influx_url: str,
                 database: str, meters: list[str], data_dir: Path | None = None,
                 **sections: dict[str, Any]) -> Path:
    """An engine configuration under ``tmp_path`` (files under ``data_dir``); ``sections``
    are merged over the defaults section by section."""
    data = data_dir or tmp_path
    reg_extra = sections.pop("registry", {})
    (tmp_path / "registry.yaml").write_text(
        yaml.safe_dump(registry(meters, **reg_extra), allow_unicode=True))
    cfg: dict[str, Any] = {
        "mqtt": {"host": broker.host, "port": broker.port,
                 "client_id": f"faults-{uuid.uuid4().hex[:8]}", "reconnect_max_s": 2},
        "ingest": {"journal_dir": str(data / "journal"),
                   "deadletter_dir": str(data / "deadletter")},
        "influx": {"api": "v1", "url": influx_url, "database": database,
                   "spool_dir": str(data / "spool"), "retry_initial_ms": 500,
                   "retry_max_ms": 2000, "timeout_ms": 3000},
        "alerts": {"registry": str(tmp_path / "registry.yaml"),
                   "routes": str(ROOT / "config" / "routes.yaml"),
                   "templates": str(ROOT / "config" / "templates"),
                   "state_db": str(tmp_path / "alerts.sqlite"),
                   "jsonl_out": str(tmp_path / "alerts.jsonl"),
                   "mqtt_client_id": f"faults-alerts-{uuid.uuid4().hex[:6]}",
                   "group_wait_s": 0.5, "group_interval_s": 1.0,
                   "escalate_after_s": 0, "repeat_interval_s": 0,
                   "quiet_hours": {"enabled": False},
                   "service_interval_s": 0.5},
        "engine": {"epoch_s": 0.5},
    }
    for name, values in sections.items():
        cfg[name] = cfg.get(name, {}) | values
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# -- MQTT -------------------------------------------------------------------------------------
class Publisher:
    """One MQTT v5 client publishing with QoS 1 and waiting for every PUBACK."""

    def __init__(self, broker: _services.Service) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def readings(self, rows: list[dict[str, Any]], *, batch: int = 0,
                 region_of: dict[str, str] | None = None, compact: bool = False) -> None:
        """Single-reading messages, or concentrator batches of ``batch`` readings; each on
        its meter's region's topics (``region_of``; ``east`` and concentrator ``DC-01``
        without it: batches then of one region each, a concentrator per region).
        ``compact``: JSON without whitespace, as concentrators and the simulator send it."""
        dumps = (lambda doc: json.dumps(doc, separators=(",", ":"))) if compact else json.dumps
        infos = []
        if batch:
            by_region: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                region = region_of[r["meter_id"]] if region_of else "east"
                by_region.setdefault(region, []).append(r)
            for region, part in by_region.items():
                topic = f"meters/{region}/{f'DC-{region}' if region_of else 'DC-01'}/batch"
                for i in range(0, len(part), batch):
                    infos.append(self.client.publish(topic, dumps(part[i:i + batch]), qos=1))
        else:
            for r in rows:
                region = region_of[r["meter_id"]] if region_of else "east"
                infos.append(self.client.publish(f"meters/{region}/{r['meter_id']}/reading",
                                                 dumps(r), qos=1))
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published(), "the broker did not acknowledge a publish"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Observer:
    """An independent subscriber to every manager's alert topic, with a persistent session
    (it reconnects and resubscribes after a broker restart and gets what was queued)."""

    def __init__(self, broker: _services.Service) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"observer-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, *_: c.subscribe(ALERT_TOPIC, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.ready.wait(10), "the observer could not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(json.loads(msg.payload))

    def keys(self) -> Counter[str]:
        """Notifications received, counted by idempotency key."""
        with self.lock:
            return Counter(m["key"] for m in self.messages)

    def alerts(self) -> set[tuple[str, str, str]]:
        """(meter, type, status) of every alert in the notifications received."""
        with self.lock:
            return {(a["meter_id"], a["type"], a.get("state_status") or m["status"])
                    for m in self.messages for a in m["alerts"]}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- InfluxDB ---------------------------------------------------------------------------------
def influx_query(url: str, database: str, q: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL query as dicts."""
    qs = urllib.parse.urlencode({"db": database, "q": q})
    out = json.loads(urllib.request.urlopen(f"{url}/query?{qs}", timeout=5).read())
    series = out["results"][0].get("series") or []
    return [dict(zip(s["columns"], v, strict=True)) | s.get("tags", {})
            for s in series for v in s["values"]]


def create_database(url: str, database: str) -> None:
    body = urllib.parse.urlencode({"q": f"CREATE DATABASE {database}"}).encode()
    urllib.request.urlopen(f"{url}/query", data=body, timeout=5).read()


def stored_readings(url: str, database: str) -> Counter[tuple[str, str]]:
    """(meter, time) of every stored reading, counted."""
    try:
        rows = influx_query(url, database, "SELECT kw, meter_id FROM reading")
    except OSError:
        return Counter()
    return Counter((r["meter_id"], r["time"]) for r in rows)


def reading_count(url: str, database: str) -> int:
    try:
        rows = influx_query(url, database, "SELECT count(kw) FROM reading")
    except OSError:
        return -1
    return int(rows[0]["count"]) if rows else 0


def expected_keys(rows: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """What :func:`stored_readings` must return for ``rows`` (InfluxDB answers in RFC 3339)."""
    return Counter((r["meter_id"], r["ts"]) for r in rows)


def journal_keys(journal_dir: Path) -> Counter[tuple[str, str]]:
    """(meter, ts) of every reading (device id for telemetry) in every journal partition,
    counted."""
    from gridwatch.ingest import Journal, journal_partitions

    out: Counter[tuple[str, str]] = Counter()
    for part in journal_partitions(journal_dir):
        with Journal(journal_dir, part, readonly=True) as j:
            offset = j.start_offset
            while batch := j.read(offset, 10_000):
                for off, data in batch:
                    doc = json.loads(data)  # a reading, telemetry, or a message's batch
                    for one in doc if isinstance(doc, list) else [doc]:
                        ts = datetime.fromisoformat(one["ts"]).astimezone(UTC)
                        out[(one.get("meter_id") or one["device_id"], iso(ts))] += 1
                    offset = off + 1
    return out


def scrape(port: int) -> dict[str, float]:
    """Prometheus text of ``http://127.0.0.1:port/metrics`` as {'name{labels}': value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# -- receivers that can be taken down and brought back on the same port -----------------------
@dataclass
class WebhookReceiver:
    """A tiny HTTP server counting POSTs by their ``Idempotency-Key``."""

    port: int = field(default_factory=_services.free_port)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.keys[self.headers.get("Idempotency-Key", "")] += 1
                    receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class SmtpReceiver:
    """An aiosmtpd server counting messages by their ``X-Idempotency-Key``."""

    port: int = field(default_factory=_services.free_port)
    keys: Counter[str] = field(default_factory=Counter)
    subjects: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Any = None

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.original_content or envelope.content)
                with receiver.lock:
                    receiver.keys[str(msg["X-Idempotency-Key"])] += 1
                    receiver.subjects.append(str(msg["Subject"]))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
            asyncio.set_event_loop(None)


# -- a small filesystem -----------------------------------------------------------------------
@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only); unmounted afterwards. Fails, never
    skips, when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"cannot mount a tmpfs at {path}: {done.stderr.strip()}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` with one file until ENOSPC; return the file."""
    import os

    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def trickle(pub: Any, rows: list[dict[str, Any]], per_s: float) -> tuple[threading.Thread,
                                                                       threading.Event]:
    """Publish ``rows`` one by one at ``per_s`` a second on a thread of its own (so a test can
    kill the engine while they arrive); the event is set once the last one is out."""
    done = threading.Event()

    def run() -> None:
        for r in rows:
            pub.readings([r])
            time.sleep(1 / per_s)  # the pace of the stream is the point
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done
