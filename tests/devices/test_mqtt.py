"""Simulated device telemetry over MQTT: published to the private mosquitto, received and
decoded by the collector's decoder into the same telemetry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from _suite_helpers import wait_until

from gridwatch._schemas import DeviceTelemetry
from gridwatch._settings import Settings
from gridwatch.ingest import decode
from gridwatch.simulators import Fleet
from gridwatch.simulators._devices import DeviceSimulation
from gridwatch.simulators._engine import Simulation


@pytest.fixture(scope="module")
def ds() -> DeviceSimulation:
    fleet = Fleet.from_dict({
        "name": "mqtt", "seed": 1, "start": "2024-04-01T00:00:00Z", "duration": "3h",
        "regions": [{"name": "a", "cells": 2}],
        "customers": {"residential": {"count": 10}, "industrial": {"count": 2}},
        "anomalies": {"rate_per_meter_day": 0}, "devices": {"pv_share": 1.0}})
    return DeviceSimulation(Simulation(fleet))


def test_the_messages_decode_to_the_simulated_telemetry(ds):
    settings = Settings()
    now = datetime(2024, 4, 2, tzinfo=UTC)
    expected = list(ds.telemetry_only())
    got: list[DeviceTelemetry] = []
    for _ts, msgs in ds.mqtt_messages():
        for topic, payload in msgs:
            items = decode(topic, payload, settings=settings, now=now)
            assert len(items) == 1 and isinstance(items[0], DeviceTelemetry)
            got.extend(items)  # type: ignore[arg-type]
    assert [(t.device_id, t.ts, t.metrics, t.status) for t in got] == \
        [(t.device_id, t.ts, t.metrics, t.status) for t in expected]


@pytest.mark.services
def test_device_telemetry_through_mosquitto(ds, mosquitto):
    received: list[tuple[str, bytes]] = []
    lock, ready = threading.Lock(), threading.Event()

    def on_message(_c, _u, msg):
        with lock:
            received.append((msg.topic, msg.payload))

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-sub",
                      protocol=mqtt.MQTTv5)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("devices/+/+/telemetry", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    sub.on_message = on_message
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-pub",
                      protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        assert ready.wait(10)
        sent = [m for _ts, msgs in ds.mqtt_messages() for m in msgs]
        for topic, payload in sent:
            pub.publish(topic, payload, qos=1).wait_for_publish(10)
        wait_until(lambda: len(received) >= len(sent), 20, f"{len(sent)} messages",
                   detail=lambda: f"{len(received)} arrived", every=0.05)
        with lock:
            assert sorted(received) == sorted(sent)
        settings, now = Settings(), datetime(2024, 4, 2, tzinfo=UTC)
        kinds = {decode(t, p, settings=settings, now=now)[0].kind for t, p in received}
        assert kinds == {"transformer", "motor", "compressor", "chiller", "furnace",
                         "pv_inverter"}
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
