"""Device telemetry from the simulator through the bytewax dataflow to events, and into a real
InfluxDB (the shared private server of tests/conftest.py)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from gridwatch._evaluate import evaluate_events
from gridwatch._schemas import DeviceTelemetry, Event
from gridwatch._settings import Settings
from gridwatch.alerts import Registry
from gridwatch.models._device import DeviceState, DeviceThresholds, KindModel
from gridwatch.simulators import Fleet, registry_dict
from gridwatch.simulators._device_spec import FAULT_EVENT
from gridwatch.simulators._devices import DeviceSimulation
from gridwatch.simulators._engine import Simulation
from gridwatch.storage import to_lines
from gridwatch.stream import run_replay
from gridwatch.stream._devices import DeviceKindLogic

FAULTS = {"overload": 2, "overheating": 2, "unbalance": 2, "sensor_stuck": 1, "sensor_drift": 1,
          "off_shift": 2, "inverter_trip": 2, "compressor_wear": 1}


@pytest.fixture(scope="module")
def simulated() -> tuple[DeviceSimulation, Registry]:
    fleet = Fleet.from_dict({
        "name": "dev-test", "seed": 3, "start": "2024-04-01T00:00:00Z", "duration": "6d",
        "timezone": "Europe/Berlin", "regions": [{"name": "a", "cells": 3}],
        "customers": {"residential": {"count": 40}, "industrial": {"count": 6}},
        "anomalies": {"rate_per_meter_day": 0},
        "devices": {"faults": FAULTS, "warmup": "3d", "pv_share": 0.8}})
    ds = DeviceSimulation(Simulation(fleet))
    reg = Registry.model_validate(registry_dict(ds.sim.meters)
                                  | {"devices": ds.registry_devices()})
    return ds, reg


def test_simulated_devices_follow_their_meters(simulated):
    ds, _ = simulated
    tx = next(d for d in ds.devices if d.kind == "transformer")
    blocks = ds.sim.blocks()
    ds._restart()
    for _ in range(40):
        block = next(blocks)
        t = next(x for x in ds.telemetry(block) if x.device_id == tx.device_id)
        metered = float(block.kw[list(tx.meters)].sum())
        assert t.metrics["kw"] == pytest.approx(metered * 1.02, abs=0.05)
        assert t.metrics["load_pct"] < 100  # sized with headroom: no overload without a fault
    # every fault shape was planned on a device of an eligible kind, inside the period
    shapes = Counter(lab.shape for lab in ds.labels)
    assert shapes == Counter(FAULTS)
    for lab in ds.labels:
        assert lab.type == FAULT_EVENT[lab.shape]
        assert ds.fleet.start + ds.spec.warmup <= lab.start < lab.end <= ds.fleet.end


def test_the_stream_is_in_event_time_order_and_valid(simulated):
    ds, _ = simulated
    last = None
    kinds = Counter()
    for k, item in enumerate(ds.stream()):
        kinds[type(item).__name__] += 1
        assert last is None or item.ts >= last
        last = item.ts
        if k % 997 == 0 and isinstance(item, DeviceTelemetry):
            DeviceTelemetry.model_validate(item.model_dump(), context={"now": item.ts})
    assert kinds["Reading"] > 0 and kinds["DeviceTelemetry"] == len(ds.devices) * 96 * 6


@pytest.mark.slow
def test_device_faults_are_found_by_the_dataflow(simulated):
    ds, reg = simulated
    res = run_replay(Settings(), ds.stream(), reg.meter_meta, devices=reg.device)
    device_events = [e for e in res.events if "device_id" in e.evidence]
    assert all(e.meter_id == e.evidence["device_id"] for e in device_events)
    for e in device_events:
        dev = reg.device(e.meter_id)
        assert dev is not None and e.grid_cell == dev.grid_cell and e.customer_id == dev.customer
    report = evaluate_events(device_events, ds.labels, len(ds.devices) * 6)["all"]
    assert report.labels == sum(FAULTS.values())
    assert report.recall is not None and report.recall >= 0.9
    assert report.precision is not None and report.precision >= 0.9


def _query(url: str, db: str, q: str) -> list[dict]:
    body = urllib.request.urlopen(f"{url}/query?" + urllib.parse.urlencode(
        {"db": db, "q": q}), timeout=10).read()
    out = []
    for result in json.loads(body)["results"]:
        for series in result.get("series", []):
            out.extend(dict(zip(series["columns"], row, strict=True))
                       for row in series["values"])
    return out


@pytest.mark.services
def test_device_telemetry_and_events_are_stored_in_influxdb(simulated, influxdb):
    ds, reg = simulated
    db = f"dev_{uuid.uuid4().hex[:10]}"
    urllib.request.urlopen(urllib.request.Request(
        f"{influxdb.url}/query", data=urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"})
        .encode(), method="POST"), timeout=10).read()
    models: dict[str, KindModel] = {}
    states: dict[str, DeviceState] = {}
    lines: list[str] = []
    events = []
    for t in ds.telemetry_only():
        dev = reg.device(t.device_id)
        assert dev is not None
        lines.extend(to_lines(t))
        found = states.setdefault(dev.id, DeviceState(dev.id)).step(
            t, dev, models.setdefault(dev.kind.value, KindModel(dev.kind.value)))
        events.extend(found)
        for e in found:
            lines.extend(to_lines(e))
    for i in range(0, len(lines), 5000):
        req = urllib.request.Request(f"{influxdb.url}/write?db={db}&precision=ns",
                                     data="\n".join(lines[i:i + 5000]).encode(), method="POST")
        assert urllib.request.urlopen(req, timeout=30).status == 204
    count = _query(influxdb.url, db, "SELECT count(kw) FROM telemetry")
    assert count[0]["count"] == len(ds.devices) * 96 * 6
    stored = _query(influxdb.url, db,
                    "SELECT * FROM event WHERE type = 'device_overload' AND state = 'firing'")
    expected = [e for e in events if e.type == "device_overload" and e.state == "firing"]
    assert expected and len(stored) == len(expected)
    assert {r["meter_id"] for r in stored} == {e.meter_id for e in expected}
    assert all(r["ev_device_kind"] == "transformer" for r in stored)
    tx = reg.device(expected[0].meter_id)
    assert tx is not None
    temps = _query(influxdb.url, db, f"SELECT max(oil_temp_c) FROM telemetry WHERE "
                                     f"device_id = '{tx.id}'")
    assert 0 < temps[0]["max"] < 150


def test_unknown_devices_are_counted_not_judged():
    logic = DeviceKindLogic(None, lambda _d: None, DeviceThresholds())
    t = DeviceTelemetry.model_construct(device_id="x-1", site="s", kind="motor",
                                        ts=datetime(2024, 4, 1, tzinfo=UTC),
                                        metrics={"kw": 1.0}, status=())
    assert logic.on_item(t)[0] == []
    again = DeviceKindLogic(logic.snapshot(), lambda _d: None, DeviceThresholds())
    assert again.unknown == 1


def test_an_industrial_customers_forecasts_are_scored_on_its_meters_summed_load():
    import pickle
    from datetime import timedelta

    from bytewax.testing import TestingSink, TestingSource, run_main

    from gridwatch._schemas import Forecast, MeterMeta, Reading
    from gridwatch.stream import Sinks, build_flow
    from gridwatch.stream._devices import CustomerLoad

    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    meta = {m: MeterMeta(meter_id=m, customer_id="C1", customer_class="industrial",
                         contracted_kva=kva, grid_cell="A")
            for m, kva in (("A", 40.0), ("B", 60.0))}
    readings, want = [], {}
    for i in range(4 * 24 * 3):  # three days of quarter hours
        ts = t0 + timedelta(minutes=15 * i)
        a, b = 3.0 + i % 5, (4.5 if i % 3 else -1.0)  # (exported power counts as none)
        readings += [Reading(meter_id="A", ts=ts, kw=a, interval_s=900),
                     Reading(meter_id="B", ts=ts, kw=b, interval_s=900)]
        want[ts] = a + max(b, 0.0)
    load = CustomerLoad.of(readings[1])
    assert pickle.loads(pickle.dumps(load)) == load == ("B", t0.timestamp(), -1.0, 900)
    out: list = []
    run_main(build_flow(Settings(), TestingSource(readings, batch_size=50),
                        Sinks(points=TestingSink(out)), meta, snapshots=False))
    scored = [f for f in out if isinstance(f, Forecast) and f.actual is not None]
    assert len(scored) > 50
    for f in scored:
        assert (f.target, f.target_kind, f.limit) == ("C1", "customer", 100.0)
        assert f.actual == pytest.approx(want[f.ts])


@pytest.mark.slow
def test_forecasts_of_transformers_and_industrial_customers_leave_the_dataflow(simulated):
    from bytewax.testing import TestingSink, TestingSource, run_main

    from gridwatch._schemas import Forecast
    from gridwatch.stream import Sinks, build_flow

    ds, reg = simulated
    out: list = []
    flow = build_flow(Settings(), TestingSource(list(ds.stream()), batch_size=2000),
                      Sinks(points=TestingSink(out)), reg.meter_meta, devices=reg.device)
    run_main(flow)
    forecasts = [x for x in out if isinstance(x, Forecast)]
    transformers = {d.device_id for d in ds.devices if d.kind == "transformer"}
    industrial = {m.customer_id for m in ds.sim.meters if m.customer_class.value == "industrial"}
    assert {f.target for f in forecasts if f.target_kind == "transformer"} == transformers
    assert {f.target for f in forecasts if f.target_kind == "customer"} == industrial
    scored = [f for f in forecasts if f.actual is not None and f.horizon == "1h"]
    assert scored
    ape = sum(abs(f.actual - f.value) / f.actual for f in scored if f.actual > 0) / len(scored)
    assert ape < 0.25
    for f in forecasts:
        if f.target_kind == "customer":
            assert f.customer_id == f.target and f.limit is not None and f.limit > 0
        else:
            assert f.limit == reg.device(f.target).ratings.kva


@pytest.mark.slow
def test_replay_cli_runs_simulated_device_telemetry_through_the_engine(simulated, tmp_path):
    """The simulator's files through ``gridwatch replay``: the engine finds the device faults
    with the registry's devices."""
    from typer.testing import CliRunner

    from gridwatch._evaluate import load_labels
    from gridwatch.cli import app

    ds, _ = simulated
    data, reg, labels = tmp_path / "sim.jsonl", tmp_path / "registry.yaml", tmp_path / "l.jsonl"
    n = ds.write_files(data, reg, labels)
    assert n == sum(1 for _ in data.open(encoding="utf-8"))
    cfg = tmp_path / "gridwatch.yaml"
    cfg.write_text(f"ingest:\n  deadletter_dir: {tmp_path / 'dl'}\n"
                   f"alerts:\n  registry: {reg}\n", encoding="utf-8")
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(app, ["replay", str(data), "--no-influx", "--alerts-out",
                                      str(out), "-c", str(cfg)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    from gridwatch._schemas import Event

    events = [Event.model_validate_json(line) for line in out.open(encoding="utf-8")]
    device_events = [e for e in events if "device_id" in e.evidence]
    report = evaluate_events(device_events, load_labels(labels), len(ds.devices) * 6)["all"]
    assert report.recall is not None and report.recall >= 0.9
    assert report.precision is not None and report.precision >= 0.9


def test_a_resumed_device_step_continues_exactly(simulated):
    """Snapshot and resume in the middle (as bytewax recovery does) give the same events and
    forecasts as one uninterrupted run."""
    ds, reg = simulated
    items = [t for t in ds.telemetry_only() if t.kind in ("transformer", "compressor")]
    half = len(items) // 2

    def run(logics, xs):
        out = []
        for t in xs:
            logic = logics[t.kind]
            out.extend(logic.on_item(t)[0])
        return out

    def fresh():
        return {k: DeviceKindLogic(None, reg.device, DeviceThresholds(), "Europe/Berlin", "DE")
                for k in ("transformer", "compressor")}

    whole = run(fresh(), items)
    first = fresh()
    part = run(first, items[:half])
    resumed = {k: DeviceKindLogic(v.snapshot(), reg.device, DeviceThresholds(),
                                  "Europe/Berlin", "DE") for k, v in first.items()}
    part += run(resumed, items[half:])
    assert [x.model_dump() for x in part] == [x.model_dump() for x in whole]
    assert any(isinstance(x, Event) for x in whole)
