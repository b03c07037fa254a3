"""``gridwatch simulate`` survives a broker restart: it reconnects, sends again what the broker
had not acknowledged (QoS 1), finishes with exit code 0, and says so in its summary. An
independent subscriber with a persistent session receives every reading of the fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from _suite_helpers import wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch import _services

FLEET = {
    "name": "restart", "seed": 7, "start": "2024-03-04T00:00:00Z", "duration": "6h",
    "interval_min": 15, "regions": [{"name": "east", "cells": 1}],
    "customers": {"residential": {"count": 40}},
}


class Counting:
    """A subscriber to ``meters/#`` with a persistent session, counting (meter, ts)."""

    def __init__(self, broker: _services.Service) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"count-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, *_: c.subscribe("meters/#", qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        rows = doc if isinstance(doc, list) else [doc]
        with self.lock:
            for r in rows:
                self.seen[(r["meter_id"], r["ts"])] += 1

    def total(self) -> int:
        with self.lock:
            return len(self.seen)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.services
@pytest.mark.slow
def test_simulate_survives_a_broker_restart(tmp_path: Path, fresh_mosquitto) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    # The same seed gives the same readings: the file run says what the MQTT run must deliver.
    subprocess.run([sys.executable, "-m", "gridwatch", "simulate", "--fleet", str(fleet),
                    "--target", "jsonl", "--out", str(tmp_path / "fleet.jsonl")],
                   env=env, check=True, capture_output=True, timeout=120)
    want = {(r["meter_id"], r["ts"]) for r in map(
        json.loads, (tmp_path / "fleet.jsonl").read_text().splitlines())}
    expected = len(want)
    assert expected > 500
    counting = Counting(fresh_mosquitto)
    # 60 messages a second: the run lasts long enough for the broker to go away mid-way.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridwatch", "simulate", "--fleet", str(fleet),
         "--host", fresh_mosquitto.host, "--port", str(fresh_mosquitto.port),
         "--rate", "60", "--labels", str(tmp_path / "labels.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def running() -> None:
            assert proc.poll() is None, proc.communicate()

        wait_until(lambda: counting.total() >= expected // 4, 30,
                   "a quarter of the readings sent", running, counting.total)
        fresh_mosquitto.stop()  # persistence on: the subscriber's session survives
        time.sleep(3)  # the outage: the broker is away for three seconds
        fresh_mosquitto.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert "broker reconnects" in out and "sent again" in out, out
    try:
        wait_until(lambda: counting.total() >= expected, 20, f"{expected} readings",
                   detail=counting.total, every=0.2)
    finally:
        counting.close()
    assert set(counting.seen) == want, (counting.total(), expected)
    # Duplicates only where an acknowledgement was lost in the restart: at most the in-flight
    # window of the client (100 messages).
    dupes = sum(n - 1 for n in counting.seen.values())
    assert dupes <= 100, dupes
