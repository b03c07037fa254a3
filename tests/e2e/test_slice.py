"""The whole path against real private servers: MQTT publish → ``gridwatch run`` (collector,
journal, dataflow, router) → points in InfluxDB 1.6.7 (v1 API) or VictoriaMetrics (v2 API), and
an alert received by an independent MQTT subscriber."""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from _suite_helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = timedelta(minutes=15)
METERS = ["E2E-001", "E2E-002", "E2E-003", "E2E-004"]
SAG_METER = "E2E-003"


def registry() -> dict:
    return {
        "managers": [{"id": "MGR-E2E", "name": "Test Manager", "channels": ["mqtt"],
                      "language": "en"},
                     {"id": "MGR-BKP", "name": "Backup Manager", "channels": ["mqtt"],
                      "language": "en"}],
        "cells": [{"id": "CELL-E2E", "name": "test cell", "primary": "MGR-E2E",
                   "backup": "MGR-BKP"}],
        "customers": [
            {"id": f"CUST-{m}", "name": f"customer {m}", "class": "residential",
             "contracted_kva": 10, "grid_cell": "CELL-E2E", "meters": [m]}
            for m in METERS
        ],
    }


def readings(now: datetime) -> list[dict]:
    """A day of 15-minute readings per meter, ending now; the last two hours of SAG_METER
    show a deep voltage sag (180 V on a 220 V supply, beyond the -10 % limit)."""
    start = (now - timedelta(days=1)).replace(second=0, microsecond=0)
    start -= timedelta(minutes=start.minute % 15)
    out = []
    kwh = dict.fromkeys(METERS, 1000.0)
    t = start
    step = 0
    while t <= now - INTERVAL:
        step += 1
        for i, m in enumerate(METERS):
            wobble = 0.05 * math.sin(step * 0.7 + i) + 0.01 * ((step * 7 + i * 3) % 5)
            kw = 0.4 + 0.1 * i + 0.6 * (18 <= t.hour <= 22) + wobble
            kwh[m] += kw * 0.25
            sag = m == SAG_METER and now - t <= timedelta(hours=2)
            out.append({"meter_id": m, "ts": t.isoformat().replace("+00:00", "Z"),
                        "kw": round(kw, 3), "kwh": round(kwh[m], 3),
                        "voltage": [180.0 if sag else 221.5], "pf": 0.97})
        t += INTERVAL
    return out


class Observer:
    """An independent MQTT subscriber to every manager's alert topic."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"observer-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe("gridwatch/managers/+/alerts", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.ready.wait(10), "observer could not subscribe"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish(host: str, port: int, rows: list[dict]) -> None:
    """Half the readings as single messages, half as 50-reading concentrator batches."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    infos = []
    half = len(rows) // 2
    for r in rows[:half]:
        infos.append(client.publish(f"meters/east/{r['meter_id']}/reading",
                                    json.dumps(r), qos=1))
    rest = rows[half:]
    for i in range(0, len(rest), 50):
        infos.append(client.publish("meters/east/DC-01/batch", json.dumps(rest[i:i + 50]), qos=1))
    for info in infos:
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def engine_config(tmp_path: Path, mosquitto, registry_doc: dict, *, api: str, url: str,
                  database: str, metrics_port: int = 0) -> Path:
    """``gridwatch run``'s settings file for a test: the private broker, the registry, a
    database at ``url``, the routes and templates of ``config/``, alerts recorded in
    ``alerts.jsonl``, short group and epoch times, and metrics on ``metrics_port`` (none at
    0); everything else under ``tmp_path``."""
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry_doc, allow_unicode=True))
    cfg = {
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"e2e-{api}-{uuid.uuid4().hex[:6]}"},
        "ingest": {"journal_dir": str(tmp_path / "journal"),
                   "deadletter_dir": str(tmp_path / "deadletter"),
                   "metrics_port": metrics_port},
        "influx": {"api": api, "url": url, "database": database,
                   "spool_dir": str(tmp_path / "spool")},
        "alerts": {"registry": str(tmp_path / "registry.yaml"),
                   "routes": str(ROOT / "config" / "routes.yaml"),
                   "templates": str(ROOT / "config" / "templates"),
                   "state_db": str(tmp_path / "alerts.sqlite"),
                   "jsonl_out": str(tmp_path / "alerts.jsonl"),
                   "group_wait_s": 0.5, "group_interval_s": 1.0},
        "engine": {"epoch_s": 0.5},
    }
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def count_v1(url: str) -> int:
    q = urllib.parse.urlencode({"db": "gridwatch", "q": "SELECT count(kw) FROM reading"})
    out = json.loads(urllib.request.urlopen(f"{url}/query?{q}", timeout=5).read())
    series = out["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def count_v2(url: str) -> int:
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=5).read()
    # Only this test's meters: the VictoriaMetrics of the session is shared with other tests.
    q = urllib.parse.urlencode({"match[]": '{__name__="reading_kw",meter_id=~"E2E-.*"}'})
    body = urllib.request.urlopen(f"{url}/api/v1/export?{q}", timeout=5).read()
    return sum(len(json.loads(line)["values"]) for line in body.splitlines() if line.strip())


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_meter_to_influx_and_manager(api, request, tmp_path, mosquitto, engine_process):
    db = request.getfixturevalue("influxdb" if api == "v1" else "victoria_metrics")
    if api == "v1":
        urllib.request.urlopen(f"{db.url}/query",
                               data=b"q=CREATE+DATABASE+gridwatch").read()
    cfg = engine_config(tmp_path, mosquitto, registry(), api=api, url=db.url,
                        database="gridwatch")
    observer = Observer(mosquitto.host, mosquitto.port)
    engine = engine_process(cfg)
    try:
        rows = readings(datetime.now(UTC))
        publish(mosquitto.host, mosquitto.port, rows)

        count = count_v1 if api == "v1" else count_v2
        wait_until(lambda: count(db.url) >= len(rows), 90, f"{len(rows)} readings in InfluxDB")
        assert count(db.url) == len(rows)  # every reading once, none twice

        def sag_alert() -> bool:
            return any(SAG_METER.encode() in p and b"voltage_sag" in p
                       for _t, p in observer.messages)

        wait_until(sag_alert, 60, "the voltage-sag alert on the manager's topic")
        topics = {t for t, p in observer.messages if SAG_METER.encode() in p}
        assert topics == {"gridwatch/managers/MGR-E2E/alerts"}
        # No other meter had anything wrong with it.
        others = [p for _t, p in observer.messages if SAG_METER.encode() not in p]
        assert others == []
        alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        assert {(a["meter_id"], a["type"]) for a in alerts} == {(SAG_METER, "voltage_sag")}
        if api == "v1":
            # The event itself and the alert's state change are stored too.
            def stored(measurement: str) -> list:
                q = urllib.parse.urlencode({"db": "gridwatch", "q": (
                    f"SELECT * FROM {measurement} WHERE meter_id = '{SAG_METER}'")})
                out = json.loads(urllib.request.urlopen(f"{db.url}/query?{q}").read())
                series = out["results"][0].get("series") or []
                return [dict(zip(sr["columns"], v, strict=True))
                        for sr in series for v in sr["values"]]

            wait_until(lambda: stored("alert"), 30, "the alert transition in InfluxDB")
            assert {r["type"] for r in stored("event")} == {"voltage_sag"}
            assert {(r["type"], r["state"]) for r in stored("alert")} >= {("voltage_sag", "firing")}
    finally:
        observer.close()
        engine.stop()
