"""``make demo``: a simulated fleet through the whole engine on private servers, then a summary.

Starts a private mosquitto and InfluxDB 1.6.7 on free loopback ports under ``var/demo``,
writes a registry for the simulated fleet (its meters and, with a ``devices:`` section, its
devices), runs ``gridwatch run`` as its own process, publishes the fleet (and its devices'
telemetry) at full speed with ``gridwatch simulate``, waits until the engine has stored every
reading, and prints what happened: readings, points stored, anomalies injected and found, and
alerts delivered to each manager and customer (counted by an independent MQTT subscriber).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import yaml
from rich.console import Console
from rich.table import Table

from gridwatch import _services

ROOT = Path.cwd()
console = Console()


class AlertSubscriber:
    """An MQTT client of its own that counts what reaches managers and customers."""

    def __init__(self, host: str, port: int) -> None:
        self.by_recipient: Counter[str] = Counter()
        self.alerts_by_recipient: Counter[str] = Counter()
        self.kinds: dict[str, Counter[str]] = {}
        self.sample: dict[str, Any] | None = None
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-observer",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([("gridwatch/managers/+/alerts", 1), ("gridwatch/customers/+/notices", 1)])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        who = f"{parts[1][:-1]} {parts[2]}"
        try:
            note = json.loads(msg.payload)
        except ValueError:
            note = {}
        with self.lock:
            self.by_recipient[who] += 1
            self.alerts_by_recipient[who] += len(note.get("alerts") or ()) or 1
            self.kinds.setdefault(who, Counter())[str(note.get("kind", "?"))] += 1
            if self.sample is None and note.get("kind") == "alert" and parts[1] == "managers":
                self.sample = note

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def influx_query(url: str, db: str, q: str) -> list[list[Any]]:
    qs = urllib.parse.urlencode({"db": db, "q": q})
    with urllib.request.urlopen(f"{url}/query?{qs}", timeout=10) as resp:
        out = json.loads(resp.read())
    rows: list[list[Any]] = []
    for result in out.get("results", []):
        for series in result.get("series", []) or []:
            rows.extend([series["name"], *v] for v in series["values"])
    return rows


def main() -> int:
    from gridwatch.simulators import Fleet, write_registry

    work = ROOT / "var" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fleet_path = ROOT / "config" / "fleets" / "demo.yaml"
    fleet = Fleet.load(fleet_path)

    console.rule("[bold]gridwatch demo")
    console.print("starting private mosquitto and InfluxDB 1.6.7 on loopback ports ...")
    broker = _services.mosquitto(work / "mosquitto").start()
    influx = _services.influxdb(work / "influxdb").start()
    urllib.request.urlopen(f"{influx.url}/query", data=b"q=CREATE+DATABASE+gridwatch").read()
    engine: subprocess.Popen[bytes] | None = None
    observer: AlertSubscriber | None = None
    try:
        registry = work / "registry.json"  # JSON loads faster than YAML
        write_registry(fleet.meters(fleet.seed), registry, timezone=fleet.timezone,
                       holiday_country=fleet.country, devices=fleet_devices(fleet))
        settings = {
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": "demo-collector"},
            "ingest": {"journal_dir": str(work / "journal"),
                       "deadletter_dir": str(work / "deadletter")},
            "influx": {"api": "v1", "url": influx.url, "database": "gridwatch",
                       "spool_dir": str(work / "spool"), "batch_size": 5000},
            "alerts": {"registry": str(registry), "routes": str(ROOT / "config/routes.yaml"),
                       "templates": str(ROOT / "config/templates"),
                       "state_db": str(work / "alerts.sqlite"),
                       "jsonl_out": str(work / "alerts.jsonl"),
                       "group_wait_s": 1.0, "group_interval_s": 5.0},
            "engine": {"epoch_s": 1.0, "data_dir": str(work)},
            # the fleet's local time: days, "night" and holidays are the customers' own
            "detection": {"timezone": fleet.timezone, "holiday_country": fleet.country},
            "web": {"enabled": True, "host": "127.0.0.1", "port": _services.free_port()},
        }
        cfg = work / "gridwatch.yaml"
        cfg.write_text(yaml.safe_dump(settings, sort_keys=False))
        observer = AlertSubscriber(broker.host, broker.port)
        env = os.environ | {"GRIDWATCH_CONFIG": str(cfg)}
        if not import_samples(work, registry, fleet, env):
            return 1

        console.print("starting the engine (gridwatch run) ...")
        engine_log = open(work / "engine.log", "wb")  # noqa: SIM115 - closed below
        engine = subprocess.Popen([sys.executable, "-m", "gridwatch", "run"], env=env,
                                  stdout=engine_log, stderr=subprocess.STDOUT)
        if not wait_for_line(work / "engine.log", "subscribed to", engine, 60):
            console.print(f"[red]the engine did not start; see {work / 'engine.log'}[/]")
            return 1

        labels = work / "labels.jsonl"
        sim = subprocess.run(
            [sys.executable, "-m", "gridwatch", "simulate", "--fleet", str(fleet_path),
             "--target", "mqtt", "--speed", "max", "--labels", str(labels), "--batch-size", "50"],
            env=env, check=False,
        )
        if sim.returncode != 0:
            console.print("[red]the simulator failed[/]")
            return 1
        stored = wait_for_readings(influx.url, engine, timeout=600)
        time.sleep(5.0)  # group wait and delivery of the last alerts
        summary(work, influx.url, fleet.n_readings, stored, labels, observer)
        console.rule("[bold]customer tags (gridwatch tags stats)")
        subprocess.run([sys.executable, "-m", "gridwatch", "tags", "stats", "--top", "15"],
                       env=env, check=False)
        workspace(cfg, registry, engine)
        return 0
    finally:
        if observer is not None:
            observer.close()
        if engine is not None and engine.poll() is None:
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(15)
            except subprocess.TimeoutExpired:
                engine.kill()
        broker.stop()
        influx.stop()


def fleet_devices(fleet: Any) -> list[dict[str, Any]] | None:
    """The registry entries of the fleet's devices (the transformers ``gridwatch simulate``
    sends telemetry of), so the engine judges that telemetry; None without a ``devices:``
    section."""
    if fleet.devices is None:
        return None
    from gridwatch.simulators import Simulation
    from gridwatch.simulators._devices import DeviceSimulation

    return DeviceSimulation(Simulation(fleet, fleet.seed)).registry_devices()


def import_samples(work: Path, registry: Path, fleet: Any, env: dict[str, str]) -> bool:
    """Write the sample customer, CRM and billing files of the fleet's customers
    (``gridwatch.tags._sample``) and bring them in with ``gridwatch import``, as a utility
    brings in its own exports, so the demo's tags cover all four dimensions."""
    from gridwatch.tags._sample import write_sample_imports

    as_of = fleet.end.astimezone(ZoneInfo(fleet.timezone)).date()
    customers = json.loads(registry.read_text())["customers"]
    files = write_sample_imports(customers, as_of, work / "imports", seed=fleet.seed)
    console.print(f"importing sample customer, CRM and billing data ({work / 'imports'}) ...")
    for kind, path in files.items():
        done = subprocess.run([sys.executable, "-m", "gridwatch", "import", kind, str(path)],
                              env=env, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            console.print(f"[red]gridwatch import {kind} failed:[/] {done.stderr.strip()}")
            return False
        console.print(f"  {done.stdout.strip()}", highlight=False)
    return True


def workspace(cfg: Path, registry: Path, engine: subprocess.Popen[bytes]) -> None:
    """Print the workspace address and a one-time login for the first demo manager, and keep
    the engine (which serves it) running until Ctrl-C, unless GRIDWATCH_DEMO_EXIT is set."""
    from gridwatch._settings import load_settings
    from gridwatch.web import demo_login

    settings = load_settings(cfg)
    manager = json.loads(registry.read_text())["managers"][0]["id"]
    url = f"http://{settings.web.host}:{settings.web.port}"
    console.rule("[bold]the managers' workspace")
    console.print(f"workspace: {url}")
    link = demo_login(settings, manager, url)
    console.print(f"one-time login for demo manager {manager}: {link}")
    if os.environ.get("GRIDWATCH_DEMO_EXIT") or not sys.stdin.isatty():
        console.print("(not waiting: GRIDWATCH_DEMO_EXIT is set or there is no terminal)")
        return
    console.print("the engine keeps serving it; press Ctrl-C to stop the demo")
    try:
        while engine.poll() is None:
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping ...")


def wait_for_line(path: Path, line: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and line in path.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def wait_for_readings(url: str, engine: subprocess.Popen[bytes], timeout: float,
                      settle_s: float = 30.0) -> int:
    """Poll InfluxDB until the number of stored readings stops growing, showing progress."""
    deadline = time.monotonic() + timeout
    stored, last_change = -1, time.monotonic()
    with console.status("waiting for the engine to store every reading ...") as status:
        while time.monotonic() < deadline and engine.poll() is None:
            try:
                rows = influx_query(url, "gridwatch", "SELECT count(kw) FROM reading")
                now_stored = int(rows[0][2]) if rows else 0
            except OSError:
                now_stored = stored
            if now_stored != stored:
                stored, last_change = now_stored, time.monotonic()
            elif stored > 0 and time.monotonic() - last_change > settle_s:
                break
            status.update(f"readings stored in InfluxDB: {stored:,}")
            time.sleep(1.0)
    return max(stored, 0)


def summary(work: Path, url: str, published: int, stored: int, labels: Path,
            observer: AlertSubscriber) -> None:
    injected: Counter[str] = Counter()
    if labels.exists():
        for line in labels.read_text().splitlines():
            injected[json.loads(line)["type"]] += 1
    raised: Counter[str] = Counter()
    alerts_file = work / "alerts.jsonl"
    if alerts_file.exists():
        for line in alerts_file.read_text().splitlines():
            raised[json.loads(line)["type"]] += 1
    points: dict[str, int] = {}
    for row in influx_query(url, "gridwatch", "SHOW MEASUREMENTS"):
        name = row[1]
        cnt = influx_query(url, "gridwatch", f'SELECT count(*) FROM "{name}"')
        points[name] = max((int(v) for r in cnt for v in r[2:] if isinstance(v, int)), default=0)

    console.rule("[bold]summary")
    console.print(f"readings simulated: {published:,} (less those lost to injected outages)   "
                  f"stored in InfluxDB: {stored:,}")
    t = Table(title="points stored in InfluxDB by measurement")
    t.add_column("measurement")
    t.add_column("points", justify="right")
    for name, n in sorted(points.items()):
        t.add_row(name, f"{n:,}")
    console.print(t)
    t = Table(title="anomalies: injected (labels) and events raised")
    t.add_column("type")
    t.add_column("injected", justify="right")
    t.add_column("raised", justify="right")
    for k in sorted(set(injected) | set(raised)):
        t.add_row(k, str(injected.get(k, 0)), str(raised.get(k, 0)))
    console.print(t)
    t = Table(title="notifications delivered over MQTT (received by an independent subscriber)")
    t.add_column("recipient")
    t.add_column("messages", justify="right")
    t.add_column("alerts in them", justify="right")
    t.add_column("kinds")
    with observer.lock:
        for who in sorted(observer.by_recipient):
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(observer.kinds[who].items()))
            t.add_row(who, str(observer.by_recipient[who]),
                      str(observer.alerts_by_recipient[who]), kinds)
        sample = observer.sample
    console.print(t)
    if sample is not None:
        console.rule(f"one manager alert, as sent to {sample.get('recipient')}")
        console.print(sample.get("subject", ""), style="bold", highlight=False)
        console.print(sample.get("body", ""), highlight=False)
    console.print(f"engine log: {work / 'engine.log'}; alerts: {alerts_file}")


if __name__ == "__main__":
    sys.exit(main())
