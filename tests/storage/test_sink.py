"""The bytewax sink: batching, idempotence, dead letters, spooling through an outage."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import bytewax.operators as op
import pytest
from _storage_helpers import T0, create_database, influxql, reading, samples, vm_export
from _suite_helpers import wait_until
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from prometheus_client import CollectorRegistry

from gridwatch import _services
from gridwatch.ingest._assemble import reading_of_fields
from gridwatch.storage import InfluxReader, InfluxSink, StorageMetrics


def count(svc, db: str, measurement: str = "reading") -> int:
    rows = influxql(svc, db, f"SELECT COUNT(kw) FROM {measurement}")
    return int(rows[0]["count"]) if rows else 0


def test_mixed_objects_through_a_dataflow_read_back(v1_settings, influxdb):
    s = v1_settings(batch_size=7)
    objs = samples()
    readings = [reading("m-1", i) for i in range(40)]
    items = [*readings, *objs.values()]
    flow = Dataflow("storage_test")
    sink = InfluxSink(s)
    keyed = op.key_on("part", op.input("in", flow, TestingSource(items, batch_size=9)),
                      lambda _x: sink.part_key)
    op.output("influx", keyed, sink)
    run_main(flow)
    with InfluxReader(s) as reader:
        got = reader.readings("m-1", T0, T0 + (readings[-1].ts - T0) * 2)
        assert got == readings  # every value and type comes back as written
        assert reader.events("m-1") == [objs["event"].model_copy(
            update={"summary": "load twice the usual for an hour",
                    "evidence": {"expected_kw": 2.0, "observed_kw": 4.0, "holiday": False,
                                 "reason": "baseline"}})]
        assert reader.profiles(customer_id="c-1") == [objs["profile"]]
        assert reader.skipped == 0
    assert influxql(influxdb, s.database, "SELECT COUNT(score) FROM score")[0]["count"] == 1
    assert influxql(influxdb, s.database, "SELECT * FROM alert")[0]["by"] == "alice"
    # close() ran at the end of the flow: nothing left behind.
    assert not list((s.spool_dir / "influx" / "w0").glob("*.lp"))


def test_same_batch_twice_no_duplicates(v1_settings, influxdb):
    s = v1_settings()
    part = InfluxSink(s).build("s", 0, 1)
    batch = [reading(f"m-{i % 3}", i) for i in range(30)] + list(samples().values())
    part.write_batch(batch)
    part.write_batch(list(batch))
    part.write_batch([reading(f"m-{i % 3}", i) for i in range(30)])  # equal, new objects
    assert part.flush()
    assert count(influxdb, s.database) == 31
    for m in ("event", "profile", "alert", "score", "telemetry"):
        assert len(influxql(influxdb, s.database, f"SELECT * FROM {m}")) == 1, m
    assert part.written == 2 * len(batch) + 30
    # the points of the reading measurement among them (gridwatch_storage_readings_written)
    assert part.readings_written == 2 * 31 + 30


def test_rejected_point_goes_to_dead_letter_rest_is_stored(v1_settings, influxdb):
    s = v1_settings(batch_size=1000)
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    sink = InfluxSink(s, metrics=StorageMetrics(CollectorRegistry()), wall_clock=lambda: at)
    part = sink.build("s", 0, 1)
    part.write_batch([reading("m-1", 0)])  # kw is a float field from now on
    bad = 'reading,meter_id=m-bad kw="high" 1714521600000000000'
    batch: list = [reading("m-1", i) for i in range(1, 20)]
    batch.insert(7, bad)
    part.write_batch(batch)
    assert part.flush()
    assert count(influxdb, s.database) == 20
    assert part.rejected == 1
    [record] = [json.loads(x) for x in part.deadletter_path.read_text().splitlines()]
    assert record["line"] == bad and record["at"] == "2026-03-01T12:00:00Z"
    assert "field type conflict" in record["error"]
    assert part.deadletter_path.parent == s.spool_dir
    assert sink.metrics.registry.get_sample_value(
        "gridwatch_storage_points_rejected_total", {"worker": "0"}) == 1
    # the readings the server accepted, found by halving the batch: all but the refused one
    assert sink.metrics.registry.get_sample_value(
        "gridwatch_storage_readings_written_total", {"worker": "0"}) == 20


def test_v2_sink_on_victoria_metrics(v2_settings, victoria_metrics):
    meter = f"m-{uuid.uuid4().hex[:8]}"
    part = InfluxSink(v2_settings(batch_size=16)).build("s", 0, 1)
    readings = [reading(meter, i) for i in range(50)]
    part.write_batch(readings[:25])
    others = [o for k, o in samples(meter).items() if k != "reading"]
    part.write_batch([*readings[25:], *others])
    assert part.flush()
    [kw] = vm_export(victoria_metrics, f'reading_kw{{meter_id="{meter}"}}')
    assert kw["values"] == [r.kw for r in readings]
    assert kw["timestamps"] == [int(r.ts.timestamp() * 1000) for r in readings]
    [ev] = vm_export(victoria_metrics, f'event_score{{meter_id="{meter}"}}')
    assert ev["metric"]["severity"] == "warning" and ev["values"] == [5.25]
    [tc] = vm_export(victoria_metrics, f'telemetry_temp_c{{device_id="{meter}-inv"}}')
    assert tc["metric"]["site"] == "site-3" and tc["values"] == [41.5]


def test_time_batching_holds_small_batches_durably(v1_settings, influxdb):
    now = [1000.0]
    s = v1_settings(batch_size=100, flush_interval_ms=5000)
    part = InfluxSink(s, clock=lambda: now[0]).build("s", 0, 1)
    part.write_batch([reading("m-1", 0)])  # the first point goes out at once
    part.write_batch([reading("m-1", i) for i in range(1, 5)])
    assert count(influxdb, s.database) == 1
    assert part.spool.points == 4  # held on disk, not in memory
    now[0] += 6
    part.write_batch([reading("m-1", 5)])
    assert count(influxdb, s.database) == 6 and part.spool.points == 0
    part.write_batch([reading("m-1", i) for i in range(6, 206)])  # full batches go out
    assert count(influxdb, s.database) == 206


def test_spool_survives_a_crash_and_drains_on_restart(v1_settings, influxdb, tmp_path):
    port = _services.free_port()
    down = v1_settings(url=f"http://127.0.0.1:{port}")
    part = InfluxSink(down).build("s", 0, 1)
    part.write_batch([reading("m-1", i) for i in range(10)])
    assert part.spool.points == 10
    del part  # no close(): bytewax does not call it on a crash
    up = v1_settings(database=down.database)
    part = InfluxSink(up).build("s", 0, 1)
    part.write_batch([reading("m-1", 10)])
    assert part.flush()
    assert count(influxdb, up.database) == 11


@pytest.mark.slow
def test_full_spool_holds_the_dataflow_back_and_loses_nothing(v1_settings, caplog,
                                                               tmp_path: Path):
    svc = _services.influxdb(tmp_path / "private-influxdb").start()
    s = v1_settings(url=svc.url, spool_max_bytes=3000, batch_size=10, retry_initial_ms=100,
                    retry_max_ms=200)
    create_database(svc, s.database)
    svc.stop()
    sink = InfluxSink(s, metrics=StorageMetrics(CollectorRegistry()))
    part = sink.build("s", 0, 1)
    reg = sink.metrics.registry
    done = threading.Event()

    def produce() -> None:
        for i in range(0, 100, 10):
            part.write_batch([reading("m-1", j) for j in range(i, i + 10)])
        done.set()

    with caplog.at_level(logging.WARNING, logger="gridwatch.storage"):
        th = threading.Thread(target=produce)
        th.start()
        wait_until(lambda: reg.get_sample_value("gridwatch_storage_blocked", {"worker": "0"}),
                   10, "gridwatch_storage_blocked")
        # The spool is full and the server down: write_batch holds the dataflow back.
        assert reg.get_sample_value("gridwatch_storage_blocked", {"worker": "0"}) == 1
        assert not done.wait(1.0)
        assert part.spool.size_bytes <= 3000
        full = [r for r in caplog.records if "spool FULL" in r.getMessage()]
        assert len(full) == 1 and "spool_max_bytes=3000" in full[0].getMessage()
        svc.start()
        assert done.wait(30), "the sink did not resume when the server came back"
        th.join()
    assert part.flush()
    assert count(svc, s.database) == 100  # every point, once
    assert part.dropped == 0
    assert reg.get_sample_value("gridwatch_storage_blocked", {"worker": "0"}) == 0
    svc.stop()


def test_unsupported_items_are_counted(v1_settings, influxdb):
    s = v1_settings()
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([object(), reading("m-1", 0), ("m-1", reading("m-1", 1))])
    assert part.unsupported == 1
    assert part.flush() and count(influxdb, s.database) == 2


@pytest.mark.slow
def test_thirty_second_outage_every_point_exactly_once(v1_settings, tmp_path: Path):
    svc = _services.influxdb(tmp_path / "private-influxdb").start()
    try:
        s = v1_settings(svc, batch_size=50, retry_initial_ms=200, retry_max_ms=1000,
                        flush_interval_ms=200, timeout_ms=2000)
        part = InfluxSink(s).build("s", 0, 1)
        meters = [f"m-{k}" for k in range(5)]
        sent: list = []
        slowest = 0.0
        i = 0

        def stream(seconds: float) -> None:
            nonlocal i, slowest
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                batch = [reading(m, i) for m in meters]
                i += 1
                t = time.monotonic()
                part.write_batch(batch)
                slowest = max(slowest, time.monotonic() - t)
                sent.extend(batch)
                time.sleep(0.02)

        stream(2)
        before = count(svc, s.database)
        assert before > 0
        svc.stop()
        stream(30)
        assert part.spool.points > 0  # the outage was noticed and points kept
        svc.start()
        stream(3)
        wait_until(part.flush, 20, "the spool drained", every=0.2)
        assert part.spool.points == 0
        # The dataflow was never held up for long.
        assert slowest < 2.5
        rows = influxql(svc, s.database, "SELECT kw, meter_id FROM reading")
        got = sorted((r["meter_id"], r["time"]) for r in rows)
        want = sorted((r.meter_id, int(r.ts.timestamp()) * 10**9) for r in sent)
        assert len(got) == len(set(got)) == len(want)
        assert got == want
    finally:
        svc.stop()


def test_spool_of_a_vanished_worker_is_taken_over(v1_settings, influxdb):
    port = _services.free_port()
    down = v1_settings(url=f"http://127.0.0.1:{port}")
    part = InfluxSink(down).build("s", 1, 2)  # worker 1 of 2 spools, then the flow shrinks
    part.write_batch([reading("m-1", i) for i in range(12)])
    assert part.spool.points == 12
    up = v1_settings(database=down.database)
    part0 = InfluxSink(up).build("s", 0, 1)
    assert part0.flush()
    assert count(influxdb, up.database) == 12
    assert not list((up.spool_dir / "influx" / "w1").glob("*.lp"))


def test_a_batch_of_bad_points_is_dead_lettered_without_endless_halving(v1_settings, influxdb):
    s = v1_settings(batch_size=5000)
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([reading("m-1", 0)])
    bad = [f'reading,meter_id=m-{i} kw="x" 1714521600000000000' for i in range(2000)]
    t = time.monotonic()
    part.write_batch(bad)
    assert part.flush()
    assert time.monotonic() - t < 10
    assert part.rejected == 2000  # every one kept, each with the server's message
    lines = part.deadletter_path.read_text().splitlines()
    assert sorted(json.loads(x)["line"] for x in lines) == sorted(bad)
    assert all("field type conflict" in json.loads(x)["error"] for x in lines)
    assert count(influxdb, s.database) == 1


def test_pipelined_partition_stores_everything_handed_over_once(v1_settings, influxdb):
    """More batches than the writer's queue holds: the ones beyond it are spooled rather
    than waited for, and every point is stored exactly once."""
    s = v1_settings(batch_size=64)
    sink = InfluxSink(s, metrics=StorageMetrics(CollectorRegistry()))
    part = sink.build_part("s", sink.part_key, None)
    for i in range(0, 500, 25):  # 20 batches of 50 points, the queue holds 4 x 64
        part.write_batch([reading(f"m-{k}", j) for j in range(i, i + 25) for k in range(2)])
    part.wait()
    wait_until(lambda: part.core.spool.points == 0, 20, "the spool drained")
    assert count(influxdb, s.database) == 1000
    assert part.core.written == 1000
    part.close()


def _busy_writer(part, *, fail_first: bool = False):
    """Make the partition's writer hold its first request until the returned event is set
    (and then fail it, with ``fail_first``); the second event is set once it has begun."""
    from gridwatch.storage import RetryableWriteError

    gate, started = threading.Event(), threading.Event()
    real = part.core._writer.write
    calls: list[int] = []

    def write(lines):
        calls.append(len(lines))
        if len(calls) == 1:
            started.set()
            assert gate.wait(20)
            if fail_first:
                raise RetryableWriteError("the server is busy")
        return real(lines)

    part.core._writer.write = write
    return gate, started


def test_snapshot_spools_what_a_busy_database_has_not_taken_and_writes_nothing_twice(
        v1_settings, influxdb):
    """At an epoch's end the worker does not wait for a database that is busy: what the
    writer has not written is spooled (the batch in flight as a copy), every point is safe,
    and once the request in flight succeeds its copy is dropped, not written again."""
    s = v1_settings(batch_size=100, snapshot_wait_ms=50)
    metrics = StorageMetrics(CollectorRegistry())
    sink = InfluxSink(s, metrics=metrics)
    part = sink.build_part("s", sink.part_key, None)
    gate, started = _busy_writer(part)
    handed = [reading("m-1", i) for i in range(300)]
    for k in range(0, 300, 50):
        part.write_batch(handed[k:k + 50])
    assert started.wait(5)  # the first 100 points are in flight, and held there
    t = time.monotonic()
    part.snapshot()
    assert time.monotonic() - t < 5  # not the 20 s the request is held
    _, spooled = part.core.spool.take(10**6)
    assert sorted(spooled) == sorted(part.core.lines_of(handed))
    assert metrics.registry.get_sample_value(
        "gridwatch_storage_epoch_spooled_points_total", {"worker": "0"}) == 300
    gate.set()
    wait_until(lambda: part.core.spool.points == 0, 20, "the spool drained")
    assert count(influxdb, s.database) == 300
    assert part.core.written == 300  # the copy of the request in flight was dropped
    part.close()


def test_a_request_that_fails_after_a_spill_does_not_write_an_old_value_over_a_new_one(
        v1_settings, influxdb):
    """The batch in flight fails after the snapshot spooled a copy of it and a newer value of
    the same point: the copy stands in its place, ahead of the newer value, and the writer
    does not spool the old value again behind it."""
    s = v1_settings(batch_size=100, snapshot_wait_ms=0, flush_interval_ms=0)
    sink = InfluxSink(s, metrics=StorageMetrics(CollectorRegistry()))
    part = sink.build_part("s", sink.part_key, None)
    gate, started = _busy_writer(part, fail_first=True)
    part.write_batch([reading("m-1", 0, kw=1.0), reading("m-2", 0, kw=1.0)])
    assert started.wait(5)
    part.write_batch([reading("m-1", 0, kw=2.0)])  # the same point, a newer value
    part.snapshot()
    assert part.core.spool.points == 3
    gate.set()
    wait_until(lambda: part.core.spool.points == 0 and count(influxdb, s.database) == 2, 20,
               "the spool drained")
    rows = influxql(influxdb, s.database, "SELECT kw, meter_id FROM reading")
    assert {r["meter_id"]: r["kw"] for r in rows} == {"m-1": 2.0, "m-2": 1.0}
    part.close()


def test_pipelined_partition_keeps_the_dataflow_free_of_write_latency(v1_settings, influxdb):
    """write_batch only hands over: while the writer is slow, the worker goes on."""
    s = v1_settings(batch_size=10)
    sink = InfluxSink(s)
    part = sink.build_part("s", sink.part_key, None)
    gate = threading.Event()
    real = part.core._writer.write

    def slow_write(lines):
        gate.wait(10)
        return real(lines)

    part.core._writer.write = slow_write
    t = time.monotonic()
    part.write_batch([reading("m-1", i) for i in range(10)])
    assert time.monotonic() - t < 0.5
    assert count(influxdb, s.database) == 0
    gate.set()
    part.snapshot()
    assert count(influxdb, s.database) == 10
    part.close()


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_spool_drains_on_its_own_when_the_server_returns(api, v1_settings, v2_settings,
                                                         tmp_path: Path):
    """No new reading is needed: the writer's timer drains the spool once the server is back
    (issue 17), on InfluxDB 1.x and on VictoriaMetrics' v2 endpoint."""
    if api == "v1":
        svc = _services.influxdb(tmp_path / "private-influxdb").start()
        s = v1_settings(svc, batch_size=20, retry_initial_ms=100, retry_max_ms=300)
    else:
        svc = _services.victoria_metrics(tmp_path / "private-vm").start()
        s = v2_settings(url=svc.url, batch_size=20, retry_initial_ms=100, retry_max_ms=300)
    meter = f"m-{uuid.uuid4().hex[:8]}"

    def stored() -> int:
        if api == "v1":
            return count(svc, s.database)
        got = vm_export(svc, f'reading_kw{{meter_id="{meter}"}}')
        return len(got[0]["values"]) if got else 0

    try:
        svc.stop()
        sink = InfluxSink(s)
        part = sink.build_part("s", sink.part_key, None)
        part.write_batch([reading(meter, i) for i in range(50)])
        part.snapshot()  # returns: the points are spooled on disk
        assert part.core.spool.points == 50
        svc.start()
        wait_until(lambda: part.core.spool.points == 0, 20, "the spool drained")
        wait_until(lambda: stored() == 50, 10, "50 points stored", detail=stored)
        part.close()
    finally:
        svc.stop()


def test_clean_close_drains_what_the_writer_holds(v1_settings, influxdb):
    s = v1_settings(batch_size=1000, flush_interval_ms=60_000)  # small batches are held
    sink = InfluxSink(s)
    part = sink.build_part("s", sink.part_key, None)
    part.write_batch([reading("m-1", 0)])
    part.write_batch([reading("m-1", i) for i in range(1, 8)])
    part.snapshot()
    part.close()
    assert count(influxdb, s.database) == 8
    assert part.core.spool.points == 0


def test_writer_failure_stops_the_dataflow_instead_of_losing_points(v1_settings, influxdb):
    from gridwatch.storage import StorageWriterError

    s = v1_settings()
    sink = InfluxSink(s)
    part = sink.build_part("s", sink.part_key, None)

    def broken(lines):
        raise MemoryError("no memory")

    part.core._writer.write = broken
    part.write_batch([reading("m-1", 0)])
    with pytest.raises(StorageWriterError):
        part.snapshot()


def test_warm_start_reads_each_meters_stored_readings_before_the_restart(v1_settings,
                                                                         influxdb):
    from gridwatch import Settings
    from gridwatch._engine import influx_warm_start

    s = v1_settings()
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([reading(m, i) for i in range(20) for m in ("m-1", "m-2", "m-3")])
    assert part.flush()
    warm = influx_warm_start(Settings(influx=s.model_dump()), days=365 * 30)
    until = reading("m-1", 12).ts.timestamp()
    got = [reading_of_fields(f) for f in warm(["m-1", "m-2"], until)]  # (each as its fields)
    for m in ("m-1", "m-2"):  # oldest first for each meter, and only before `until`
        assert [r.ts for r in got if r.meter_id == m] == [reading(m, i).ts for i in range(12)]
    assert {r.meter_id for r in got} == {"m-1", "m-2"}
    assert got[0] == reading("m-1", 0)
    assert dict(warm.stats) | {"ms": 0} == {"queries": 1, "meters": 2, "readings": 24, "ms": 0}
    # a meter is asked for once: the second question gets nothing, and makes no query
    assert list(warm(["m-2", "m-1"], until)) == [] and warm.stats["meters"] == 2
    assert [f["meter_id"] for f in warm(["m-1", "m-3"], until)] == ["m-3"] * 12
    # a database that cannot answer: logged, counted, the meters start cold
    down = influx_warm_start(Settings(influx=v1_settings(
        url=f"http://127.0.0.1:{_services.free_port()}").model_dump()))
    assert list(down(["m-1"], until)) == [] and down.failures["failed"] == 1


def test_a_cells_first_question_is_answered_for_all_of_its_meters(v1_settings, influxdb):
    """With the registry's cells, a question about one meter gets the history of every
    meter of its cell, in one query; its other meters are then not asked about again."""
    from gridwatch import Settings
    from gridwatch._engine import influx_warm_start
    from gridwatch._schemas import MeterMeta

    s = v1_settings()
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([reading(m, i) for i in range(6) for m in ("a-1", "a-2", "b-1", "x")])
    assert part.flush()
    cells = {"A": ["a-1", "a-2"], "B": ["b-1"]}
    metas = {m: MeterMeta(meter_id=m, grid_cell=c) for c, ms in cells.items() for m in ms}
    warm = influx_warm_start(Settings(influx=s.model_dump()), 365 * 30,
                             lambda c: cells.get(c, ()), metas.get)
    until = reading("a-1", 6).ts.timestamp()
    got = list(warm(["a-1", "x"], until))
    assert sorted({f["meter_id"] for f in got}) == ["a-1", "a-2", "x"]  # not B's meter
    assert len(got) == 18 and warm.stats["meters"] == 3 and warm.stats["queries"] == 1
    assert list(warm(["a-2"], until)) == [] and warm.stats["queries"] == 1  # no query
    assert {f["meter_id"] for f in warm(["a-2", "b-1"], until)} == {"b-1"}


def test_a_warm_start_begins_only_where_readings_are_stored(v1_settings, influxdb):
    """A fresh database (or none yet) holds nothing to warm from: no warm start, and no
    query for each cell; one that holds readings gets one; one that cannot be asked none."""
    from gridwatch import Settings
    from gridwatch._engine import stored_readings, warm_start

    s = v1_settings()
    settings = Settings(influx=s.model_dump())
    assert stored_readings(settings) is False and warm_start(settings) is None
    missing = Settings(influx=s.model_copy(update={"database": "never_made"}).model_dump())
    assert stored_readings(missing) is False
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([samples("m-1")["event"]])  # another measurement only
    assert part.flush()
    assert stored_readings(settings) is False
    part.write_batch([reading("m-1", 0)])
    assert part.flush()
    assert stored_readings(settings) is True and warm_start(settings) is not None
    off = Settings(influx=s.model_dump(), engine={"warm_start_days": 0})
    assert warm_start(off) is None
    down = Settings(influx=v1_settings(url=f"http://127.0.0.1:{_services.free_port()}"
                                       ).model_dump())
    assert stored_readings(down) is None and warm_start(down) is None


def test_the_engines_warm_start_asks_for_the_registrys_cells(v1_settings, influxdb):
    """``warm_start`` with a router: a cell's question is answered for the meters of its
    grid cell in the registry in use (a reloaded registry's cells after a reload)."""
    from types import SimpleNamespace

    from gridwatch import Settings
    from gridwatch._engine import cell_index, warm_start
    from gridwatch._registry import Registry

    def registry(cells: dict[str, list[str]]) -> Registry:
        return Registry.model_validate({
            "managers": [{"id": "M1", "name": "Alice", "channels": ["mqtt"]}],
            "cells": [{"id": c, "primary": "M1"} for c in cells],
            "customers": [{"id": f"C-{c}", "name": c, "grid_cell": c, "meters": ms}
                          for c, ms in cells.items()]})

    holder = SimpleNamespace(registry=registry({"A": ["a-1", "a-2"], "B": ["b-1"]}))
    meters_of = cell_index(holder)
    assert list(meters_of("A")) == ["a-1", "a-2"] and list(meters_of("Z")) == []
    holder.registry = registry({"A": ["a-1"], "B": ["b-1", "a-2"]})  # a reload
    assert list(meters_of("A")) == ["a-1"] and list(meters_of("B")) == ["b-1", "a-2"]
    s = v1_settings()
    part = InfluxSink(s).build("s", 0, 1)
    part.write_batch([reading(m, i) for i in range(4) for m in ("a-1", "a-2", "b-1")])
    assert part.flush()
    warm = warm_start(Settings(influx=s.model_dump(), engine={"warm_start_days": 365 * 30}),
                      holder)
    assert warm is not None
    got = list(warm(["b-1"], reading("a-1", 3).ts.timestamp()))
    assert sorted({f["meter_id"] for f in got}) == ["a-2", "b-1"] and len(got) == 6
