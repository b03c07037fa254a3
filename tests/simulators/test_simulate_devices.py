"""``gridwatch simulate`` with a fleet that has devices: the targets get the device telemetry
interleaved with the meters' readings, the labels file has the device faults, the registry the
devices (what the engine judges telemetry by); without a ``devices:`` section nothing changes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from _suite_helpers import wait_until
from typer.testing import CliRunner

from gridwatch._schemas import DeviceTelemetry, Reading
from gridwatch._settings import Settings
from gridwatch.alerts import Registry
from gridwatch.cli import app
from gridwatch.ingest import decode
from gridwatch.simulators import CapturedMqtt, Fleet, Simulation, read_labels
from gridwatch.simulators._cli import CommandError, fleet_plan
from gridwatch.simulators._devices import DeviceSimulation
from gridwatch.simulators._targets import DeviceBatch, Pacer, drain

#: Two cells of 12 customers (two industrial sites), 12 h at 15 minutes, one overload.
FLEET: dict[str, Any] = {
    "name": "devsim", "seed": 3, "start": "2024-04-01T00:00:00Z", "duration": "12h",
    "regions": [{"name": "a", "cells": 2}],
    "customers": {"residential": {"count": 10}, "industrial": {"count": 2}},
    "anomalies": {"rate_per_meter_day": 0},
    "devices": {"pv_share": 1.0, "equipment_per_site": 2, "warmup": "1h",
                "faults": {"overload": 1}},
}


def _fleet_file(tmp_path: Path, data: dict[str, Any] = FLEET) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


N_INT = 48  # intervals


def _devices() -> DeviceSimulation:
    return DeviceSimulation(Simulation(Fleet.from_dict(FLEET)))


def test_device_telemetry_follows_each_interval_of_readings(tmp_path: Path) -> None:
    plan = fleet_plan(_fleet_file(tmp_path), labels=tmp_path / "l.jsonl",
                      registry=tmp_path / "reg.yaml")
    chunks = list(plan.chunks)
    ds = _devices()
    n_dev = len(ds.devices)
    assert plan.devices == n_dev > 2  # two transformers, equipment, inverters
    assert len(chunks) == 2 * N_INT  # per interval: readings, then the interval's telemetry
    for (ts_m, meters), (ts_d, devices) in zip(chunks[::2], chunks[1::2], strict=True):
        assert not isinstance(meters, DeviceBatch) and isinstance(devices, DeviceBatch)
        assert ts_m == ts_d and len(devices) == n_dev and len(meters) > 0
    times = [ts for ts, _ in chunks]
    assert times == sorted(times)
    sent = [(site, dev, json.loads(p)) for _, rows in chunks[1::2] for site, dev, p in rows]
    expected = list(ds.telemetry_only())
    assert [(s, d, m["ts"], m["metrics"]) for s, d, m in sent] == [
        (t.site, t.device_id, t.ts.isoformat().replace("+00:00", "Z"), t.metrics)
        for t in expected]
    # the device fault is labelled among the meters' (none here) with the detector's type
    labels = read_labels(tmp_path / "l.jsonl")
    assert [(lb.type, lb.shape, lb.meter_id) for lb in labels] == [
        (lb.type, lb.shape, lb.meter_id) for lb in ds.labels]
    assert [lb.type for lb in labels] == ["device_overload"]
    assert plan.by_type == {"device_overload": 1}
    # the registry lists the devices the way the engine looks them up
    reg = Registry.load(tmp_path / "reg.yaml")
    for dev in ds.devices:
        found = reg.device(dev.device_id)
        assert found is not None and found.kind.value == dev.kind


def test_batches_carry_readings_and_telemetry_goes_one_message_per_device() -> None:
    ds = _devices()
    target = CapturedMqtt(batch_size=20)
    readings, messages = drain(ds.chunks(), target, Pacer(None))
    assert readings == ds.fleet.n_readings  # telemetry is not counted among the readings
    assert messages == len(target.captured)
    tele = [(t, p) for t, p in target.captured if t.endswith("/telemetry")]
    batches = [(t, p) for t, p in target.captured if t.endswith("/batch")]
    assert len(tele) + len(batches) == messages
    assert len(tele) == len(ds.devices) * N_INT
    assert sum(len(json.loads(p)) for _, p in batches) == readings
    settings, now = Settings(), datetime(2024, 4, 2, tzinfo=UTC)
    got = [decode(t, p.encode(), settings=settings, now=now)[0] for t, p in tele]
    assert [(t.device_id, t.ts, t.metrics) for t in got] == [
        (t.device_id, t.ts, t.metrics) for t in ds.telemetry_only()]


def test_without_devices_nothing_changes(tmp_path: Path) -> None:
    plain = {k: v for k, v in FLEET.items() if k != "devices"}
    plan = fleet_plan(_fleet_file(tmp_path, plain), labels=tmp_path / "l.jsonl",
                      registry=tmp_path / "reg.yaml")
    chunks = list(plan.chunks)
    assert plan.devices == 0 and len(chunks) == N_INT
    assert not any(isinstance(rows, DeviceBatch) for _, rows in chunks)
    assert chunks == list(Simulation(Fleet.from_dict(plain)).chunks())
    assert "devices" not in yaml.safe_load((tmp_path / "reg.yaml").read_text())


def test_a_csv_registry_cannot_hold_devices(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="CSV registry has no devices"):
        fleet_plan(_fleet_file(tmp_path), labels=tmp_path / "l.jsonl",
                   registry=tmp_path / "reg" / "customers.csv")


def test_jsonl_has_the_telemetry_and_csv_leaves_it_out(tmp_path: Path) -> None:
    fleet = _fleet_file(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", "--fleet", str(fleet), "--target", "jsonl",
                              "--out", str(tmp_path / "out.jsonl"), "--speed", "max"])
    assert res.exit_code == 0, res.output
    ds = _devices()
    n_dev = len(ds.devices) * N_INT
    n_meters = ds.fleet.n_readings
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    device_lines = [d for d in lines if "device_id" in d]
    assert len(device_lines) == n_dev and len(lines) - n_dev == n_meters
    assert f"{n_dev:,} messages from {len(ds.devices)} devices" in " ".join(res.output.split())
    assert "device_overload 1" in res.output
    res = runner.invoke(app, ["simulate", "--fleet", str(fleet), "--target", "csv",
                              "--out", str(tmp_path / "out.csv"), "--speed", "max"])
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert len(rows) == 1 + n_meters  # header and the meters' readings only
    assert "not written" in res.output


@pytest.mark.services
def test_simulate_publishes_meters_and_devices_to_mosquitto(
        tmp_path: Path, mosquitto: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_MQTT__HOST", mosquitto.host)
    monkeypatch.setenv("GRIDWATCH_MQTT__PORT", str(mosquitto.port))
    received: list[tuple[str, bytes]] = []
    lock, ready = threading.Lock(), threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        with lock:
            received.append((msg.topic, msg.payload))

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="devsim-sub",
                      protocol=mqtt.MQTTv5)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [("meters/#", 1), ("devices/+/+/telemetry", 1)])
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    sub.on_message = on_message
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    ds = _devices()
    expected = list(ds.telemetry_only())
    n_meters = ds.fleet.n_readings
    try:
        assert ready.wait(10)
        res = CliRunner().invoke(app, [
            "simulate", "--fleet", str(_fleet_file(tmp_path)), "--qos", "1",
            "--labels", str(tmp_path / "labels.jsonl"), "--registry", str(tmp_path / "r.yaml"),
            "--speed", "max"])
        assert res.exit_code == 0, res.output
        wait_until(lambda: len(received) >= n_meters + len(expected), 30,
                   f"{n_meters + len(expected)} messages",
                   detail=lambda: f"{len(received)} arrived", every=0.05)
    finally:
        sub.disconnect()
        sub.loop_stop()
    settings, now = Settings(), datetime(2024, 4, 2, tzinfo=UTC)
    with lock:
        items = [x for t, p in received for x in decode(t, p, settings=settings, now=now)]
    readings = [x for x in items if isinstance(x, Reading)]
    telemetry = [x for x in items if isinstance(x, DeviceTelemetry)]
    assert len(readings) == n_meters and len(telemetry) == len(expected)
    key = lambda t: (t.ts, t.device_id)  # noqa: E731
    assert [(t.device_id, t.site, t.ts, t.kind, t.metrics, t.status)
            for t in sorted(telemetry, key=key)] == [
        (t.device_id, t.site, t.ts, t.kind, t.metrics, t.status)
        for t in sorted(expected, key=key)]
    assert "device_overload" in {lb.type for lb in read_labels(tmp_path / "labels.jsonl")}
    assert len(Registry.load(tmp_path / "r.yaml").devices) == len(ds.devices)


def test_evaluate_scores_the_device_labels_with_the_registrys_devices(tmp_path: Path) -> None:
    """``gridwatch evaluate`` replays the file's device telemetry through the device steps
    when the registry lists the devices, so their faults are scored like the meters'."""
    fleet = _fleet_file(tmp_path)
    runner = CliRunner()
    out, labels, reg = tmp_path / "out.jsonl", tmp_path / "labels.jsonl", tmp_path / "reg.yaml"
    res = runner.invoke(app, ["simulate", "--fleet", str(fleet), "--target", "jsonl",
                              "--out", str(out), "--speed", "max", "--labels", str(labels),
                              "--registry", str(reg)])
    assert res.exit_code == 0, res.output
    assert any(lab.type == "device_overload" for lab in read_labels(labels))
    scored = tmp_path / "scored.json"
    res = runner.invoke(app, ["evaluate", "--readings", str(out), "--labels", str(labels),
                              "--registry", str(reg), "--json", str(scored)],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "engine never raises" not in res.output  # device types are the engine's too
    summary = json.loads(scored.read_text())
    overload = summary["labels"]["device_overload"]
    assert overload["labels"] == 1 and overload["recall"] == 1.0, overload
    # the devices' rates are per device-day: the replayed devices' telemetry span
    assert 0 < summary["device_days"] < summary["meter_days"], summary
    assert "device-days" in res.output
    # Without the devices the telemetry is skipped, said so, and the fault can only be missed.
    bare = tmp_path / "bare.yaml"
    doc = yaml.safe_load(reg.read_text())
    doc.pop("devices")
    bare.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["evaluate", "--readings", str(out), "--labels", str(labels),
                              "--registry", str(bare), "--json", str(scored)],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output
    assert json.loads(scored.read_text())["labels"]["device_overload"]["recall"] == 0.0
