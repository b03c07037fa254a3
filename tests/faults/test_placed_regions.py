"""A placed cluster configured end to end, live: two ``gridwatch run -i/-a`` processes on two
"machines" (data directories apart), the same settings file on each with
``engine.placement`` (one cell per process, exclusive) and ``topics.regions`` (that cell's
region per process). Each collector subscribes to its own region's topics only, so every
reading is journaled once, on the machine its cell is placed on; everything is stored once and
each machine raises its own cell's alert."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _faults_helpers import (
    Fleet,
    Observer,
    Publisher,
    cell_registry,
    create_database,
    expected_keys,
    journal_keys,
    raised,
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
        (m / "registry.yaml").write_text(yaml.safe_dump(cell_registry(CELLS)))
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
        pub = Publisher(fresh_mosquitto)
        try:
            pub.readings(rows[:half], region_of=region_of)
            # one batch per region's concentrator and slot
            for s in range(SLOTS // 2, SLOTS):
                pub.readings(f.slot(s), batch=len(rows), region_of=region_of)
        finally:
            pub.close()
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
