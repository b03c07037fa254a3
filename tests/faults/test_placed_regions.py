"""A placed cluster configured end to end, live: two ``gridwatch run -i/-a`` processes on two
"machines" (data directories apart), the same settings file on each with
``engine.placement`` (one cell per process, exclusive) and ``topics.regions`` (that cell's
region per process). Each collector subscribes to its own region's topics only, so every
reading is journaled once, on the machine its cell is placed on; everything is stored once and
each machine raises its own cell's alert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from _faults_helpers import (
    Fleet,
    Observer,
    create_database,
    expected_keys,
    journal_keys,
    reading_count,
    slot_times,
    stored_readings,
    write_config,
)
from _suite_helpers import wait_until

from gridwatch import _services
from gridwatch.ingest import read_deadletters

REGION = {"CELL-N": "north", "CELL-S": "south"}
CELLS = {"CELL-N": [f"N-{i:03d}" for i in range(20)] + ["N-STK"],
         "CELL-S": [f"S-{i:03d}" for i in range(20)] + ["S-STK"]}
SLOTS = 40
#: The two lines of a placed cluster.
PLACEMENT = {0: ["CELL-N"], 1: ["CELL-S"]}
REGIONS = {0: ["north"], 1: ["south"]}


def registry() -> dict[str, Any]:
    mgrs = [{"id": "MGR-F", "name": "Fault Manager", "channels": ["mqtt"], "language": "en"},
            {"id": "MGR-B", "name": "Backup", "channels": ["mqtt"], "language": "en"}]
    cells = [{"id": c, "name": c.lower(), "primary": "MGR-F", "backup": "MGR-B"} for c in CELLS]
    customers = [{"id": f"C-{m}", "name": f"customer {m}", "class": "residential",
                  "contracted_kva": 10, "grid_cell": cell, "meters": [m]}
                 for cell, meters in CELLS.items() for m in meters]
    return {"managers": mgrs, "cells": cells, "customers": customers}


def raised(machine: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(machine.glob("alerts*.jsonl"))
            for line in path.read_text().splitlines()]


def publish(broker: _services.Service, rows: list[dict[str, Any]], region_of: dict[str, str],
            *, batch: bool) -> None:
    """Each reading on its region's topics: single readings, or one batch per region's
    concentrator and slot."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="placed-pub",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        if batch:
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for r in rows:
                groups.setdefault((region_of[r["meter_id"]], r["ts"]), []).append(r)
            for (region, _ts), items in groups.items():
                infos.append(client.publish(f"meters/{region}/DC-{region}/batch",
                                            json.dumps(items), qos=1))
        else:
            for r in rows:
                infos.append(client.publish(
                    f"meters/{region_of[r['meter_id']]}/{r['meter_id']}/reading",
                    json.dumps(r), qos=1))
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.services
@pytest.mark.slow
def test_placed_cluster_with_own_regions_journals_each_reading_on_its_cells_machine(
        tmp_path: Path, fresh_mosquitto, influxdb, engine_process) -> None:
    db = "faults_placed_regions"
    create_database(influxdb.url, db)
    meters = [m for ms in CELLS.values() for m in ms]
    region_of = {m: REGION[cell] for cell, ms in CELLS.items() for m in ms}
    machines = [tmp_path / "host-a", tmp_path / "host-b"]
    configs = []
    for m in machines:
        m.mkdir()
        configs.append(write_config(m, broker=fresh_mosquitto, influx_url=influxdb.url,
                                    database=db, meters=meters,
                                    engine={"placement": PLACEMENT,
                                            "placement_exclusive": True},
                                    topics={"regions": REGIONS}))
        (m / "registry.yaml").write_text(yaml.safe_dump(registry()))
    addresses = [f"127.0.0.1:{_services.free_port()}" for _ in machines]
    cluster_args = [a for addr in addresses for a in ("-a", addr)]
    f = Fleet(meters, slot_times(SLOTS))
    for stuck in ("N-STK", "S-STK"):
        for s in range(16, SLOTS):  # 24 identical readings in a row: a stuck register
            f.override[(stuck, s)] = {"kw": 1.234}
    rows = [r for s in range(SLOTS) for r in f.slot(s)]

    observer = Observer(fresh_mosquitto)
    engines = [engine_process(configs[i], "-i", str(i), *cluster_args,
                              log_name=f"engine-{i}.log") for i in (0, 1)]

    def alive() -> None:
        for e in engines:
            assert e.proc is not None and e.proc.poll() is None, e.log()[-3000:]

    try:
        for i, e in enumerate(engines):
            own = REGIONS[i][0]
            assert (f"subscribes to its own regions: meters/{own}/+/reading, "
                    f"meters/{own}/+/batch") in e.log()
        half = len(rows) // 2
        publish(fresh_mosquitto, rows[:half], region_of, batch=False)
        publish(fresh_mosquitto, rows[half:], region_of, batch=True)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(rows), 120,
                   "every reading stored", alive)
        wanted = {("N-STK", "stuck_reading"), ("S-STK", "stuck_reading")}
        wait_until(lambda: wanted <= {a[:2] for a in observer.alerts()}, 90,
                   "both cells' stuck-reading alerts", alive, lambda: observer.alerts())
    finally:
        observer.close()
        for e in engines:
            e.stop()

    assert stored_readings(influxdb.url, db) == expected_keys(rows)
    # Every reading journaled once, on the machine its cell is placed on, nothing dead.
    journals = [journal_keys(m / "journal") for m in machines]
    assert journals[0] + journals[1] == expected_keys(rows)
    assert {k[0][0] for k in journals[0]} == {"N"}
    assert {k[0][0] for k in journals[1]} == {"S"}
    for m in machines:
        assert not list(read_deadletters(m / "deadletter"))
    # Each machine raised its own cell's alert, once.
    for i, m in enumerate(machines):
        alerts = raised(m)
        assert [(a["meter_id"], a["type"]) for a in alerts] == [
            (("N-STK", "S-STK")[i], "stuck_reading")], alerts
