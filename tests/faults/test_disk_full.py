"""A full disk under the journal or under the storage spool (a small tmpfs filled up while the
engine runs): a clear error in the log and a metric, nothing acknowledged that is not on disk,
the engine keeps running, and once there is space again everything arrives, once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _faults_helpers import (
    Fleet,
    Publisher,
    create_database,
    expected_keys,
    fill,
    journal_keys,
    reading_count,
    scrape,
    slot_times,
    stored_readings,
    tmpfs,
    write_config,
)
from _suite_helpers import holds, wait_until

from gridwatch import _services
from gridwatch.ingest import read_deadletters

METERS = [f"D-{i:03d}" for i in range(20)]
SLOTS = 60


def _metric(port: int, name: str) -> float | None:
    try:
        values = scrape(port)
    except OSError:
        return None
    hits = [v for k, v in values.items() if k.split("{")[0] == name]
    return hits[0] if hits else None


@pytest.mark.services
@pytest.mark.slow
def test_journal_disk_full(tmp_path: Path, fresh_mosquitto, influxdb, engine_process) -> None:
    db = "faults_journal_full"
    create_database(influxdb.url, db)
    port = _services.free_port()
    with tmpfs(tmp_path / "jfs", "2m") as disk:
        config = write_config(
            tmp_path, broker=fresh_mosquitto, influx_url=influxdb.url, database=db,
            meters=METERS, data_dir=disk,
            ingest={"journal_dir": str(disk / "journal"),
                    "deadletter_dir": str(disk / "deadletter"),
                    "metrics_port": port, "metrics_addr": "127.0.0.1"},
            influx={"spool_dir": str(tmp_path / "spool")})
        f = Fleet(METERS, slot_times(SLOTS))
        engine = engine_process(config)

        def alive() -> None:
            assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]

        pub = Publisher(fresh_mosquitto)
        try:
            before = [r for s in range(20) for r in f.slot(s)]
            pub.readings(before, batch=20)
            wait_until(lambda: reading_count(influxdb.url, db) >= len(before), 60,
                       "the first readings stored", alive)

            filler = fill(disk)
            during = [r for s in range(20, 40) for r in f.slot(s)]
            pub.readings(during)  # single readings: one message, one acknowledgement each
            bad = [b"{not json", b'{"meter_id": "D-000", "kw": "x"}']
            for payload in bad:
                pub.client.publish("meters/east/D-000/reading", payload, qos=1).wait_for_publish(5)
            wait_until(lambda: "journal cannot be written" in engine.log(), 30,
                       "the disk-full error in the log", alive)
            wait_until(lambda: _metric(port, "gridwatch_ingest_journal_blocked") == 1, 10,
                       "gridwatch_ingest_journal_blocked = 1", alive)
            time.sleep(3)  # the engine holds on, and acknowledges nothing it could not write
            alive()
            acked = _metric(port, "gridwatch_ingest_messages_acked_total")
            journaled = sum(journal_keys(disk / "journal").values())
            dead = len(list(read_deadletters(disk / "deadletter")))
            # Acknowledged: the 20-reading batches before, and since then one message per
            # journaled reading or dead letter. Nothing else.
            assert acked == len(before) // 20 + (journaled - len(before)) + dead, \
                (acked, journaled, dead)
            assert journaled < len(before) + len(during), "the disk never filled up"
            assert _metric(port, "gridwatch_ingest_journal_write_errors_total")

            filler.unlink()
            wait_until(lambda: _metric(port, "gridwatch_ingest_journal_blocked") == 0, 30,
                       "the journal writable again", alive)
            after = [r for s in range(40, SLOTS) for r in f.slot(s)]
            pub.readings(after, batch=20)
            everything = before + during + after
            wait_until(lambda: reading_count(influxdb.url, db) >= len(everything), 60,
                       "every reading stored", alive)
            alive()
        finally:
            pub.close()
            engine.stop()
        assert stored_readings(influxdb.url, db) == expected_keys(everything)
        assert journal_keys(disk / "journal") == expected_keys(everything)
        letters = list(read_deadletters(disk / "deadletter"))
        assert sorted(d.payload for d in letters) == sorted(bad)
        assert {d.reason for d in letters} == {"invalid_json", "schema"}
        assert "journal writable again" in engine.log()


@pytest.mark.services
@pytest.mark.slow
def test_spool_disk_full(tmp_path: Path, fresh_mosquitto, engine_process) -> None:
    influx = _services.influxdb(tmp_path / "influxdb").start()
    db = "faults_spool_full"
    create_database(influx.url, db)
    port = _services.free_port()
    pub = None
    try:
        with tmpfs(tmp_path / "sfs", "1m") as disk:
            config = write_config(
                tmp_path, broker=fresh_mosquitto, influx_url=influx.url, database=db,
                meters=METERS, ingest={"metrics_port": port, "metrics_addr": "127.0.0.1"},
                influx={"spool_dir": str(disk / "spool")})
            f = Fleet(METERS, slot_times(SLOTS))
            engine = engine_process(config)

            def alive() -> None:
                assert engine.proc is not None and engine.proc.poll() is None, \
                    engine.log()[-3000:]

            pub = Publisher(fresh_mosquitto)
            before = [r for s in range(20) for r in f.slot(s)]
            pub.readings(before, batch=20)
            wait_until(lambda: reading_count(influx.url, db) >= len(before), 60,
                       "the first readings stored", alive)

            influx.stop()
            filler = fill(disk)
            during = [r for s in range(20, 40) for r in f.slot(s)]
            pub.readings(during, batch=20)
            wait_until(lambda: "spool cannot be written" in engine.log(), 30,
                       "the disk-full error in the log", alive)
            wait_until(lambda: _metric(port, "gridwatch_storage_blocked") == 1, 10,
                       "gridwatch_storage_blocked = 1", alive)
            # The collector goes on journalling what arrives while the dataflow is held.
            wait_until(lambda: sum(journal_keys(tmp_path / "journal").values())
                       >= len(before) + len(during), 30, "the readings journalled", alive)
            holds(lambda: _metric(port, "gridwatch_storage_blocked") == 1, 2,
                  "the sink holding the dataflow back while the disk is full", alive)

            filler.unlink()
            wait_until(lambda: _metric(port, "gridwatch_storage_blocked") == 0, 30,
                       "the spool writable again", alive)
            influx.start()
            after = [f.slot(s) for s in range(40, SLOTS)]
            for rows in after:  # a live stream: a slot at a time
                pub.readings(rows, batch=20)
                time.sleep(0.2)
            everything = before + during + [r for rows in after for r in rows]
            wait_until(lambda: reading_count(influx.url, db) >= len(everything), 60,
                       "every reading stored", alive,
                       lambda: reading_count(influx.url, db))
            alive()
            assert stored_readings(influx.url, db) == expected_keys(everything)
            dead = disk / "spool" / "influx-deadletter.jsonl"
            assert not dead.exists(), dead.read_text()[:500]
            assert "spool has room again" in engine.log()
    finally:
        if pub is not None:
            pub.close()
        influx.stop()
