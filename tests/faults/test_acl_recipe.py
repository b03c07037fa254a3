"""The mosquitto recipe end to end, with the broker enforcing the ACL that ``gridwatch acl``
writes: the engine's collector and router log in with their generated passwords, a region's
concentrator login publishes readings that are stored, a manager's login receives its alerts;
a concentrator cannot publish for another region and a meter cannot publish for another meter.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from _faults_helpers import (
    ALERT_TOPIC,
    Fleet,
    create_database,
    reading_count,
    slot_times,
    stored_readings,
    write_config,
)
from _suite_helpers import holds, wait_until

from gridwatch import _services

METERS = [f"A-{i:02d}" for i in range(10)] + ["A-SAG"]


class Login:
    """An MQTT v5 client logged in as ``user`` (QoS 1)."""

    def __init__(self, broker: _services.Service, user: str, password: str,
                 subscribe: str | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.rc: Any = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"{user}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.rc = rc
            if subscribe and not rc.is_failure:
                c.subscribe(subscribe, qos=1)
            else:
                self.ready.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.ready.wait(10), user
        assert not self.rc.is_failure, f"{user}: {self.rc}"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(json.loads(msg.payload))

    def publish(self, topic: str, doc: Any) -> None:
        info = self.client.publish(topic, json.dumps(doc), qos=1)
        info.wait_for_publish(10)

    def publish_denied(self, topic: str, doc: Any) -> None:
        """A publish the ACL forbids: mosquitto may answer by closing the connection."""
        info = self.client.publish(topic, json.dumps(doc), qos=1)
        with contextlib.suppress(RuntimeError):
            info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.services
@pytest.mark.slow
def test_generated_acl_runs_the_whole_deployment(tmp_path: Path, influxdb, engine_process,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = "faults_acl"
    create_database(influxdb.url, db)
    acl_dir = tmp_path / "acl"
    broker = _services.mosquitto(
        tmp_path / "broker", anonymous=False,
        extra_conf=f"password_file {acl_dir / 'passwd'}\nacl_file {acl_dir / 'acl'}\n")
    config = write_config(tmp_path, broker=broker, influx_url=influxdb.url, database=db,
                          meters=METERS, mqtt={"username": "gw-collector"},
                          alerts={"mqtt_username": "gw-alerts"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "gridwatch", "acl", "--out", str(acl_dir), "--region", "east",
         "--meter-logins", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    with (acl_dir / "credentials.csv").open() as fh:
        creds = {r["user"]: r["password"] for r in csv.DictReader(fh)}
    assert {"gw-collector", "gw-alerts", "region-east", "MGR-F", "MGR-B", *METERS} <= set(creds)
    acl = (acl_dir / "acl").read_text()
    assert "user gw-collector\ntopic read meters/+/+/reading\n" in acl
    assert "user region-east\ntopic write meters/east/+/reading\n" in acl

    broker.start()
    monkeypatch.setenv("GRIDWATCH_MQTT__PASSWORD", creds["gw-collector"])
    monkeypatch.setenv("GRIDWATCH_ALERTS__MQTT_PASSWORD", creds["gw-alerts"])
    f = Fleet(METERS, slot_times(32))
    for s in (20, 21, 22):
        f.override[("A-SAG", s)] = {"voltage": [180.0]}
    rows = [r for s in range(32) for r in f.slot(s)]
    manager = Login(broker, "MGR-F", creds["MGR-F"], subscribe=ALERT_TOPIC)
    engine = engine_process(config)
    region = Login(broker, "region-east", creds["region-east"])
    meter = Login(broker, "A-00", creds["A-00"])

    def alive() -> None:
        assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]

    try:
        for i in range(0, len(rows), 22):
            region.publish("meters/east/DC-01/batch", rows[i:i + 22])
        meter.publish("meters/east/A-00/reading",
                      {"meter_id": "A-00", "ts": rows[0]["ts"].replace(":00Z", ":05Z"),
                       "kw": 0.5})
        # Not allowed: another region's topic, another meter's topic.
        stray = {"meter_id": "A-01", "ts": rows[0]["ts"].replace(":00Z", ":07Z"), "kw": 9.9}
        region.publish_denied("meters/west/DC-02/batch", [stray])
        meter.publish_denied("meters/east/A-01/reading", stray)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(rows) + 1, 90,
                   "the readings stored", alive)
        wait_until(lambda: any(a["meter_id"] == "A-SAG" for m in manager.messages
                               for a in m["alerts"]), 60,
                   "the manager's alert, through the ACL", alive)
        holds(lambda: ("A-01", stray["ts"]) not in stored_readings(influxdb.url, db), 2,
              "the denied reading never stored", alive, every=0.5)  # room for it to arrive
    finally:
        for c in (manager, region, meter):
            c.close()
        engine.stop()
        broker.stop()
    stored = stored_readings(influxdb.url, db)
    assert ("A-01", stray["ts"]) not in stored
    assert sum(stored.values()) == len(rows) + 1
    log = engine.log()
    assert "refused" not in log.lower() and "not authori" not in log.lower(), log[-2000:]
