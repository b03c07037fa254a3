"""``kill -9`` of the engine in the middle of a stream, and a restart with recovery: no reading
lost or stored twice, no notification sent twice, and detection state carried over the crash
(a stuck register and a silent meter whose conditions began before the kill are raised after
it, from readings the restarted engine alone sees)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _faults_helpers import (
    Fleet,
    Observer,
    Publisher,
    create_database,
    expected_keys,
    iso,
    journal_keys,
    reading_count,
    slot_times,
    stored_readings,
    trickle,
    write_config,
)
from _suite_helpers import holds, wait_until

REGULAR = [f"K-{i:03d}" for i in range(60)]
STUCK, SILENT, SAG = "K-STK", "K-SIL", "K-SAG"
SLOTS = 96
A_END, B1_END = 80, 83  # phase A: slots 0..79; B1 (the kill falls in it): 80..82; B2: 83..95


def fleet() -> Fleet:
    f = Fleet([*REGULAR, STUCK, SILENT, SAG], slot_times(SLOTS))
    # Sixteen identical readings in a row make a stuck reading: 8 before the kill, 3 while it
    # happens, 5 after the restart. A fresh meter state would count only those 5.
    for s in range(72, 88):
        f.override[(STUCK, s)] = {"kw": 1.234}
    # Silent from slot 80 on: comm_loss when the watermark is four intervals past its last
    # reading (slot 83) plus the feeder-grouping hold, i.e. after the restart.
    for s in range(A_END, SLOTS):
        f.override[(SILENT, s)] = None
    # A voltage sag that fires and resolves before the kill.
    for s in (60, 61, 62):
        f.override[(SAG, s)] = {"voltage": [180.0]}
    return f


@pytest.mark.services
@pytest.mark.slow
def test_kill9_mid_stream_loses_and_repeats_nothing(tmp_path: Path, fresh_mosquitto, influxdb,
                                                    engine_process) -> None:
    db = "faults_kill9"
    create_database(influxdb.url, db)
    meters = [*REGULAR, STUCK, SILENT, SAG]
    config = write_config(tmp_path, broker=fresh_mosquitto, influx_url=influxdb.url,
                          database=db, meters=meters)
    f = fleet()
    phase_a = [r for s in range(A_END) for r in f.slot(s)]
    phase_b1 = [r for s in range(A_END, B1_END) for r in f.slot(s)]
    phase_b2 = [r for s in range(B1_END, SLOTS) for r in f.slot(s)]
    everything = phase_a + phase_b1 + phase_b2

    observer = Observer(fresh_mosquitto)
    engine = engine_process(config, "--recovery-dir", str(tmp_path / "recovery"))

    def alive() -> None:
        assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]

    pub = Publisher(fresh_mosquitto)
    try:
        pub.readings(phase_a[: len(phase_a) // 2])
        pub.readings(phase_a[len(phase_a) // 2:], batch=63)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(phase_a), 90,
                   "phase A stored", alive)
        wait_until(lambda: (SAG, "voltage_sag") in {a[:2] for a in observer.alerts()}, 30,
                   "the sag alert", alive,
                   lambda: (observer.alerts(), (tmp_path / "alerts.jsonl").read_text()
                            if (tmp_path / "alerts.jsonl").exists() else None))
        before = observer.alerts()
        assert not {a for a in before if a[0] in (STUCK, SILENT)}, before

        # Phase B1 trickles in; the engine is killed while it does.
        thread, done = trickle(pub, phase_b1, per_s=60)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(phase_a) + 20 or done.is_set(),
                   30, "part of phase B1 stored", alive)
        mid_stream = not done.is_set()
        engine.kill()
        assert mid_stream, "the kill came after the stream had ended: slow the trickle down"
        thread.join(30)
        assert done.is_set()

        engine.start()
        pub.readings(phase_b2, batch=63)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(everything), 90,
                   "every reading stored", alive)
        wanted = {(STUCK, "stuck_reading"), (SILENT, "comm_loss")}
        wait_until(lambda: wanted <= {a[:2] for a in observer.alerts()}, 60,
                   "the stuck-reading and comm-loss alerts after the restart", alive,
                   lambda: observer.alerts())
        holds(lambda: max(observer.keys().values(), default=0) <= 1, 3,
              "each notice once", alive)  # room for a repeat to show up, if one were coming
    finally:
        pub.close()
        observer.close()

    # Every reading once in InfluxDB, and once in the journal.
    assert stored_readings(influxdb.url, db) == expected_keys(everything)
    assert journal_keys(tmp_path / "journal") == expected_keys(everything)
    # Every notification once (per idempotency key), and every alert raised once.
    keys = observer.keys()
    assert keys and max(keys.values()) == 1, {k: n for k, n in keys.items() if n > 1}
    raised = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    episodes = [(a["fingerprint"], a["episode"]) for a in raised]
    assert len(episodes) == len(set(episodes)), episodes
    assert {(a["meter_id"], a["type"]) for a in raised} == {
        (SAG, "voltage_sag"), (STUCK, "stuck_reading"), (SILENT, "comm_loss")}
    # The stuck reading's onset is from before the kill: the state was carried over.
    stuck = next(a for a in raised if a["type"] == "stuck_reading")
    assert stuck["onset"] == iso(f.times[73]), stuck
    assert stuck["raised_at"] == iso(f.times[87]), stuck
    silent = next(a for a in raised if a["type"] == "comm_loss")
    assert silent["evidence"]["last_reading_at"] == iso(f.times[A_END - 1]), silent
    log = engine.log()
    assert log.count("subscribed to") >= 2
    assert log.count("; the dataflow runs") >= 2  # each start says how long it took
