"""A two-process cluster on two "machines" that share no filesystem (each process has its own
journal, recovery, spool, dead-letter and alert directories), each fed by its own collector on
the MQTT shared subscription; ``kill -9`` of one process in the middle of the stream, a restart
of the cluster with recovery, and nothing lost or doubled: every accepted reading stored once
in InfluxDB and journaled once on one machine, every alert raised and notified once, the
detection state of the killed process carried over the crash. Run twice: cells where bytewax's
hash sends them, and placed (``engine.placement``: one cell on each process)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

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
    trickle,
    write_config,
)
from _suite_helpers import holds, wait_until

from gridwatch import _services

CELLS = {"CELL-A": [f"A-{i:03d}" for i in range(30)], "CELL-B": [f"B-{i:03d}" for i in range(30)]}
# One special meter of each kind in each cell, so that whichever process owns a cell, both
# processes carry state over the crash.
SPECIAL = {"CELL-A": ("A-STK", "A-SIL"), "CELL-B": ("B-STK", "B-SIL")}
SLOTS = 96
A_END, B1_END = 80, 83  # phase A: slots 0..79; B1 (the kill falls in it): 80..82; B2: 83..95


def meters() -> list[str]:
    return [m for cell in CELLS for m in (*CELLS[cell], *SPECIAL[cell])]


def fleet() -> Fleet:
    f = Fleet(meters(), slot_times(SLOTS))
    for stuck, silent in SPECIAL.values():
        # Sixteen identical readings in a row make a stuck reading: 8 before the kill, 3 while
        # it happens, 5 after the restart.
        for s in range(72, 88):
            f.override[(stuck, s)] = {"kw": 1.234}
        # Silent from slot 80 on: comm_loss only after the restart.
        for s in range(A_END, SLOTS):
            f.override[(silent, s)] = None
    return f


#: One cell on each process (the readings still reach both collectors: the shared
#: subscription splits every cell's messages).
PLACEMENT = {0: ["CELL-A"], 1: ["CELL-B"]}


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("placed", [False, True], ids=["hashed", "placed"])
def test_cluster_without_shared_filesystem_survives_kill9(tmp_path: Path, fresh_mosquitto,
                                                          influxdb, engine_process,
                                                          placed: bool) -> None:
    db = f"faults_cluster_{'placed' if placed else 'hashed'}"
    create_database(influxdb.url, db)
    machines = [tmp_path / "host-a", tmp_path / "host-b"]
    configs = []
    for m in machines:
        m.mkdir()
        configs.append(write_config(m, broker=fresh_mosquitto, influx_url=influxdb.url,
                                    database=db, meters=meters(),
                                    **({"engine": {"placement": PLACEMENT}} if placed else {})))
        (m / "registry.yaml").write_text(yaml.safe_dump(cell_registry(
            {c: [*CELLS[c], *SPECIAL[c]] for c in CELLS})))
    addresses = [f"127.0.0.1:{_services.free_port()}" for _ in machines]
    cluster_args = [a for addr in addresses for a in ("-a", addr)]

    def start(i: int) -> Any:
        return engine_process(configs[i], "-i", str(i), *cluster_args, "--recovery-dir",
                              str(machines[i] / "recovery"), log_name=f"engine-{i}.log")

    f = fleet()
    phase_a = [r for s in range(A_END) for r in f.slot(s)]
    phase_b1 = [r for s in range(A_END, B1_END) for r in f.slot(s)]
    phase_b2 = [r for s in range(B1_END, SLOTS) for r in f.slot(s)]
    everything = phase_a + phase_b1 + phase_b2

    observer = Observer(fresh_mosquitto)
    engines = [start(0), start(1)]

    def alive() -> None:
        for e in engines:
            assert e.proc is not None and e.proc.poll() is None, e.log()[-3000:]

    pub = Publisher(fresh_mosquitto)
    try:
        # Single readings and concentrator batches; the shared subscription splits them
        # between the two collectors, so both journals hold a part of the stream.
        pub.readings(phase_a[: len(phase_a) // 2])
        pub.readings(phase_a[len(phase_a) // 2:], batch=31)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(phase_a), 120,
                   "phase A stored", alive)
        assert not raised(machines[0]) + raised(machines[1])

        thread, done = trickle(pub, phase_b1, per_s=40)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(phase_a) + 20 or done.is_set(),
                   30, "part of phase B1 stored", alive)
        mid_stream = not done.is_set()
        engines[1].kill()  # host-b dies
        assert mid_stream, "the kill came after the stream had ended: slow the trickle down"
        thread.join(30)
        assert done.is_set()
        # The survivor loses its peer: it stops (bytewax has no membership change); whatever
        # it does, it is restarted, as an operator (or systemd) would.
        survivor = engines[0].proc
        assert survivor is not None
        try:
            survivor.wait(30)
        except Exception:  # still up: stop it the hard way as well
            engines[0].kill()
        engines[0].proc = None

        engines = [start(0), start(1)]
        pub.readings(phase_b2, batch=31)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(everything), 120,
                   "every reading stored", alive)
        wanted = {(m, t) for stuck, silent in SPECIAL.values()
                  for m, t in ((stuck, "stuck_reading"), (silent, "comm_loss"))}
        wait_until(lambda: wanted <= {a[:2] for a in observer.alerts()}, 90,
                   "the stuck-reading and comm-loss alerts after the restart", alive,
                   lambda: observer.alerts())
        holds(lambda: max(observer.keys().values(), default=0) <= 1, 3,
              "no notification delivered twice", alive)
    finally:
        pub.close()
        observer.close()

    # Every reading once in InfluxDB, and once in the journal of one machine.
    assert stored_readings(influxdb.url, db) == expected_keys(everything)
    journals = [journal_keys(m / "journal") for m in machines]
    assert all(journals), "both collectors journaled a part of the stream"
    assert not set(journals[0]) & set(journals[1])
    assert journals[0] + journals[1] == expected_keys(everything)
    # Every notification once, every alert raised once, on one machine or the other.
    keys = observer.keys()
    assert keys and max(keys.values()) == 1, {k: n for k, n in keys.items() if n > 1}
    alerts = raised(machines[0]) + raised(machines[1])
    episodes = Counter((a["fingerprint"], a["episode"]) for a in alerts)
    assert max(episodes.values()) == 1, episodes
    assert {(a["meter_id"], a["type"]) for a in alerts} == wanted
    # The killed process held cells (bytewax routes both cells' keys to process 1; placed,
    # CELL-B is there), and the stuck readings' onsets are from before the kill: its state was
    # carried over.
    assert raised(machines[1]), "the killed process owned no cell: the test proves less"
    for a in alerts:
        if a["type"] == "stuck_reading":
            assert a["onset"] == f.times[73].isoformat().replace("+00:00", "Z"), a
    if placed:  # each process raised the alerts of its own cell
        for i, m in enumerate(machines):
            assert {a["meter_id"][0] for a in raised(m)} == {"AB"[i]}, raised(m)
    # Each machine kept its own recovery partition (and the placement its keys were made with).
    for i, m in enumerate(machines):
        assert sorted(p.name for p in (m / "recovery").iterdir()
                      if p.suffix == ".sqlite3") == [f"part-{i}.sqlite3"]
        made_with = {"cells": {"0": ["CELL-A"], "1": ["CELL-B"]}, "workers": 2,
                     "exclusive": False}
        assert json.loads((m / "recovery" / "placement.json").read_text()) == (
            made_with if placed else {})
