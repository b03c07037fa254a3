"""The engine starts while the broker is down: the collector and the alert router's command and
notification connections retry in the background, the dataflow works through what the journal
already holds (an alert fires and clears), and once the broker is up the manager is told, the
collector subscribes and new readings flow."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults_helpers import (
    Fleet,
    Observer,
    Publisher,
    create_database,
    reading_count,
    slot_times,
    write_config,
)
from _suite_helpers import holds, wait_until

from gridwatch import Reading
from gridwatch.ingest import Journal, encode_item

METERS = [f"D-{i:02d}" for i in range(12)] + ["D-SAG"]
SLOTS = 40
JOURNALED = 30  # slots already in the journal when the engine starts


@pytest.mark.services
@pytest.mark.slow
def test_engine_starts_with_the_broker_down_and_delivers_once_it_is_up(
        tmp_path: Path, fresh_mosquitto, influxdb, engine_process) -> None:
    db = "faults_broker_down"
    create_database(influxdb.url, db)
    config = write_config(tmp_path, broker=fresh_mosquitto, influx_url=influxdb.url,
                          database=db, meters=METERS,
                          alerts={"retry": {"base_s": 0.5, "max_s": 2.0, "max_attempts": 1000}})
    f = Fleet(METERS, slot_times(SLOTS))
    for s in (20, 21, 22):
        f.override[("D-SAG", s)] = {"voltage": [180.0]}
    journaled = [r for s in range(JOURNALED) for r in f.slot(s)]
    later = [r for s in range(JOURNALED, SLOTS) for r in f.slot(s)]
    with Journal(tmp_path / "journal", 0) as journal:
        journal.append([encode_item(Reading.model_validate(r)) for r in journaled])

    # The observer's persistent session is made while the broker is up; the broker (with
    # persistence) keeps it across its downtime.
    observer = Observer(fresh_mosquitto)
    fresh_mosquitto.stop()
    engine = engine_process(config, ready_line="keeps retrying", timeout=60)

    def alive() -> None:
        assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]

    pub = None
    try:
        # Broker still down: the journal is worked through, the alert fires and clears.
        wait_until(lambda: reading_count(influxdb.url, db) >= len(journaled), 90,
                   "the journal stored with the broker down", alive)
        wait_until(lambda: "voltage_sag" in (tmp_path / "alerts.jsonl").read_text()
                   if (tmp_path / "alerts.jsonl").exists() else False, 30,
                   "the sag alert raised with the broker down", alive)
        holds(lambda: observer.alerts() == set(), 3,
              "no notice reaches the manager while the broker is down", alive)
        fresh_mosquitto.start()
        wait_until(lambda: ("D-SAG", "voltage_sag", "resolved") in observer.alerts(), 60,
                   "the manager told once the broker is back", alive, observer.alerts)
        wait_until(lambda: engine.log().count("subscribed to") >= 1, 30,
                   "the collector subscribed", alive)
        pub = Publisher(fresh_mosquitto)
        pub.readings(later, batch=13)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(journaled) + len(later), 60,
                   "the readings published after the broker came back stored", alive)
        holds(lambda: max(observer.keys().values(), default=0) <= 1, 2,
              "each notice once", alive)  # room for a repeat to show up, if one were coming
    finally:
        if pub is not None:
            pub.close()
        observer.close()
    log = engine.log()
    assert "Traceback" not in log, log[-3000:]
    assert "alert commands: connected" in log
    keys = observer.keys()
    assert keys and max(keys.values()) == 1, keys
