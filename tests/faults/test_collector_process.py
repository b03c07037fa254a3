"""``engine.collector_process``: the MQTT collector in a process of its own beside the
dataflow. What it journals is stored once; it stops with the engine, also when the engine is
killed with ``kill -9``, and a restarted engine loses and repeats nothing; if it dies itself,
the engine starts it again."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from _faults_helpers import (
    Fleet,
    Publisher,
    create_database,
    expected_keys,
    journal_keys,
    reading_count,
    scrape,
    slot_times,
    stored_readings,
    write_config,
)
from _suite_helpers import wait_until

from gridwatch._services import free_port

METERS = [f"P-{i:03d}" for i in range(40)]


def _children(log: str) -> list[int]:
    """The collector processes the engine's log says it started, in order."""
    return [int(pid) for pid in re.findall(r"collector of journal partition \d+ runs in "
                                           r"process (\d+)", log)]


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie, ended but not yet waited for, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _halves(slots: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The fleet's readings of ``slots`` intervals, the first half and the second."""
    f = Fleet(METERS, slot_times(slots))
    return ([r for s in range(slots // 2) for r in f.slot(s)],
            [r for s in range(slots // 2, slots) for r in f.slot(s)])


def _engine(tmp_path: Path, broker: Any, influx_url: str, db: str, start: Any, *args: str,
            ingest: dict[str, Any] | None = None, **engine: Any) -> tuple[Any, int]:
    """An engine on database ``db`` with its collector in a process of its own (``engine``
    and ``ingest`` more settings), started with ``args``; and that process's id."""
    create_database(influx_url, db)
    config = write_config(tmp_path, broker=broker, influx_url=influx_url, database=db,
                          meters=METERS, ingest=ingest or {},
                          engine={"epoch_s": 0.5, "collector_process": True, **engine})
    eng = start(config, *args)
    [child] = _children(eng.log())
    return eng, child


@pytest.mark.services
@pytest.mark.slow
def test_collector_process_journals_what_is_stored_and_stops_with_the_engine(
        tmp_path: Path, fresh_mosquitto, influxdb, engine_process) -> None:
    db = "faults_collector_process"
    metrics, engine_metrics = free_port(), free_port()
    engine, child = _engine(tmp_path, fresh_mosquitto, influxdb.url, db, engine_process,
                            "--recovery-dir", str(tmp_path / "recovery"),
                            ingest={"metrics_port": engine_metrics},
                            collector_metrics_port=metrics)
    rows = [r for half in _halves(24) for r in half]
    assert engine.proc is not None and _parent(child) == engine.proc.pid
    wait_until(lambda: "started in" in engine.log(), 30, "the engine to start")
    assert "keeps retrying" not in engine.log()  # (the process told it it was subscribed)
    pub = Publisher(fresh_mosquitto)
    try:
        pub.readings(rows[: len(rows) // 2], batch=50, compact=True)  # journaled as sent
        pub.readings(rows[len(rows) // 2:])  # single readings, with whitespace
        wait_until(lambda: reading_count(influxdb.url, db) >= len(rows), 90, "every reading")
    finally:
        pub.close()
    assert stored_readings(influxdb.url, db) == expected_keys(rows)
    assert journal_keys(tmp_path / "journal") == expected_keys(rows)
    # the collector's own metrics come from its process, on its port and on the engine's,
    # beside the engine's own figures of the same family (the dataflow's lag)
    accepted = 'gridwatch_ingest_items_accepted_total{partition="0"}'
    wait_until(lambda: scrape(metrics).get(accepted) == len(rows), 10,
               "the count (after the journal write and the acks)")
    got = scrape(engine_metrics)
    assert got[accepted] == len(rows)
    assert got['gridwatch_ingest_messages_acked_total{partition="0"}'] > 0
    wait_until(lambda: scrape(engine_metrics)['gridwatch_ingest_consumer_lag{partition="0"}']
               == 0, 30, "the dataflow's lag, on the engine's endpoint")
    log = engine.log()
    engine.stop()  # SIGTERM: the engine ends, and so does its collector, asked to
    wait_until(lambda: not _alive(child), 20, "the collector process to end")
    assert "the engine (process" not in engine.log()[len(log):]  # (not found gone)
    assert "leaked semaphore" not in engine.log()


@pytest.mark.services
@pytest.mark.slow
def test_kill9_of_the_engine_ends_its_collector_and_a_restart_loses_nothing(
        tmp_path: Path, fresh_mosquitto, influxdb, engine_process) -> None:
    db = "faults_collector_process_kill9"
    engine, child = _engine(tmp_path, fresh_mosquitto, influxdb.url, db, engine_process,
                            "--recovery-dir", str(tmp_path / "recovery"))
    first, second = _halves(32)
    pub = Publisher(fresh_mosquitto)
    try:
        pub.readings(first, batch=50, compact=True)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(first), 90, "the first half")
        engine.kill()  # kill -9 of the engine alone: its collector sees it gone and stops
        wait_until(lambda: not _alive(child), 10, "the orphaned collector to stop")
        pub.readings(second, batch=50, compact=True)  # the broker keeps them meanwhile
        engine.start()
        [_, again] = _children(engine.log())
        assert again != child and _alive(again)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(first) + len(second), 90,
                   "the second half, after the restart")
    finally:
        pub.close()
    assert stored_readings(influxdb.url, db) == expected_keys(first + second)
    assert journal_keys(tmp_path / "journal") == expected_keys(first + second)
    assert "the engine (process" in engine.log()


@pytest.mark.services
@pytest.mark.slow
def test_a_collector_process_that_dies_is_started_again(
        tmp_path: Path, fresh_mosquitto, influxdb, engine_process) -> None:
    db = "faults_collector_process_dies"
    port = free_port()
    engine, child = _engine(tmp_path, fresh_mosquitto, influxdb.url, db, engine_process,
                            ingest={"metrics_port": port})
    first, second = _halves(16)
    pub = Publisher(fresh_mosquitto)
    try:
        pub.readings(first, batch=50, compact=True)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(first), 90, "the first half")
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: len(_children(engine.log())) == 2, 30, "a new collector process")
        assert "ended with exit code -9" in engine.log()
        pub.readings(second, batch=50, compact=True)
        wait_until(lambda: reading_count(influxdb.url, db) >= len(first) + len(second), 90,
                   "the second half, through the new process")
        assert engine.proc is not None and engine.proc.poll() is None
        # the engine counts the restart; the new process's counters start again (the
        # broker may hand it a message of the first half the old one had not acknowledged)
        accepted = 'gridwatch_ingest_items_accepted_total{partition="0"}'
        wait_until(lambda: scrape(port).get(accepted, 0) >= len(second), 10,
                   "the new process's count (counted after the journal write and the acks)")
        got = scrape(port)
        assert got['gridwatch_engine_collector_restarts_total{partition="0"}'] == 1
        assert got[accepted] < len(first) + len(second)
    finally:
        pub.close()
    assert stored_readings(influxdb.url, db) == expected_keys(first + second)


@pytest.mark.services
def test_the_collector_process_tells_where_its_journal_ends(tmp_path: Path,
                                                           fresh_mosquitto) -> None:
    """What the dataflow's lag gauge follows in this layout: the end the process publishes is
    the journal's own, once what was published is journaled; and only for its partition."""
    from gridwatch import load_settings
    from gridwatch._collector_process import CollectorProcess
    from gridwatch.ingest import Journal, decode_record

    settings = load_settings(write_config(tmp_path, broker=fresh_mosquitto,
                                          influx_url="http://127.0.0.1:9", database="unused",
                                          meters=METERS))
    rows = [r for half in _halves(8) for r in half]
    proc = CollectorProcess(settings, 0).start()
    pub = Publisher(fresh_mosquitto)
    try:
        proc.wait_ready(timeout=30)
        wait_until(lambda: proc.journal_end(0) is not None, 10, "the first end told")
        assert proc.journal_end(0) == 0 and proc.journal_end(1) is None
        pub.readings(rows, batch=40, compact=True)

        def journaled() -> int | None:
            """The journal's end once it holds every reading."""
            with Journal(tmp_path / "journal", 0, readonly=True) as j:
                held = sum(len(decode_record(d)) for _, d in j.read(0, 1_000_000))
                return j.end_offset if held == len(rows) else None

        end = wait_until(journaled, 30, "every reading journaled")
        # one record a message: the process has no reader of its journal to hand items to
        assert end == -(-len(rows) // 40)
        wait_until(lambda: proc.journal_end(0) == end, 30, "the end of every reading",
                   detail=lambda: proc.journal_end(0))
    finally:
        pub.close()
        proc.stop()
