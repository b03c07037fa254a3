"""``kill -9`` of the engine right after a detector's firing and right after its resolve, with a
short and a long epoch: on restart the dataflow redoes the epoch since its last snapshot and
the same events reach the router again. A manager is told of each (alert, onset, transition)
exactly once, as counted on the manager's MQTT topic by an independent subscriber, and every
message gives the times of the meter's world (onset and end), not the wall clock."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _faults_helpers import (
    Fleet,
    Observer,
    Publisher,
    create_database,
    iso,
    reading_count,
    slot_times,
    write_config,
)
from _suite_helpers import wait_until

REGULAR = [f"N-{i:03d}" for i in range(20)]
SAG = "N-SAG"
SLOTS = 48
SAG_SLOTS = (30, 31, 32)
A_END = 36  # phase A (before the kill): slots 0..35; phase B after the restart: 36..47


def audit_seen(db: Path, action: str) -> bool:
    """Whether the router's database records ``action`` of the sag alert (read-only look)."""
    if not db.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute("SELECT 1 FROM audit WHERE fingerprint=? AND action=? LIMIT 1",
                              (f"{SAG}/voltage_sag", action)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return row is not None


def counter(db: Path, name: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("epoch_s", [0.5, 10.0], ids=["short-epoch", "long-epoch"])
@pytest.mark.parametrize("moment", ["firing", "resolved"])
def test_kill9_after_a_transition_tells_the_manager_once(
        tmp_path: Path, fresh_mosquitto, influxdb, engine_process, moment: str,
        epoch_s: float) -> None:
    db = f"faults_notify_{moment}_{int(epoch_s * 10)}"
    create_database(influxdb.url, db)
    meters = [*REGULAR, SAG]
    config = write_config(tmp_path, broker=fresh_mosquitto, influx_url=influxdb.url,
                          database=db, meters=meters, engine={"epoch_s": epoch_s})
    f = Fleet(meters, slot_times(SLOTS))
    for s in SAG_SLOTS:
        f.override[(SAG, s)] = {"voltage": [180.0]}
    phase_a = [r for s in range(A_END) for r in f.slot(s)]
    phase_b = [r for s in range(A_END, SLOTS) for r in f.slot(s)]
    state_db = tmp_path / "alerts.sqlite"

    observer = Observer(fresh_mosquitto)
    engine = engine_process(config, "--recovery-dir", str(tmp_path / "recovery"))

    def alive() -> None:
        assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]

    pub = Publisher(fresh_mosquitto)
    try:
        pub.readings(phase_a, batch=21)
        # Kill the moment the router has recorded the transition (well inside the epoch when
        # the epoch is long, so the restarted engine redoes it).
        wait_until(lambda: audit_seen(state_db, moment), 90, f"the {moment} of the sag alert",
                   alive, every=0.02)
        engine.kill()
        engine.start()
        pub.readings(phase_b, batch=21)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(phase_a) + len(phase_b), 120,
                   "every reading stored", alive)
        wait_until(lambda: (SAG, "voltage_sag", "resolved") in observer.alerts(), 60,
                   "the resolved notice", alive, observer.alerts)
        time.sleep(max(3.0, 2 * epoch_s))  # room for a second notice, if one were coming
        alive()
    finally:
        pub.close()
        observer.close()

    # As the manager receives them: each (alert, onset, transition) once, under one key.
    with observer.lock:
        messages = list(observer.messages)
    seen: dict[tuple[str, str, str], list[str]] = {}
    for m in messages:
        for a in m["alerts"]:
            seen.setdefault((a["fingerprint"], a["onset"], a["state_status"]), []).append(m["key"])
    assert seen, "no notification reached the manager"
    assert all(len(keys) == 1 for keys in seen.values()), seen
    onset = iso(f.times[SAG_SLOTS[0]])
    assert (f"{SAG}/voltage_sag", onset, "resolved") in seen, seen
    # One episode, in event time: the end is the reading that cleared it, not the wall clock.
    resolved = [a for m in messages for a in m["alerts"] if a["state_status"] == "resolved"]
    assert {a["episode"] for a in resolved} == {1}, resolved
    ends = datetime.fromisoformat(resolved[0]["ends_at"].replace("Z", "+00:00"))
    assert f.times[SAG_SLOTS[-1]] < ends <= f.times[A_END], resolved[0]
    assert ends < datetime.now(UTC).replace(second=0, microsecond=0), resolved[0]
    assert counter(state_db, "alerts_opened") == 1
    if epoch_s >= 5 and moment == "resolved":
        # The long epoch was redone: the router saw the replay and recognised it.
        assert counter(state_db, "events_replayed") >= 1
