"""A start without recovery state starts warm: ``gridwatch run`` (no ``-r``, or a recovery
directory with no state yet) against an InfluxDB 1.6.7 that holds a week of the meters'
readings seeds each cell's meters from them, so a meter whose load triples in the first hours
after the restart is alerted on, and a meter of the cell that fell silent an hour before the
restart (and sends nothing after it) is found silent; against a fresh database it says it
starts cold."""

from __future__ import annotations

import json
import math
import sqlite3
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from _suite_helpers import wait_until
from test_slice import Observer, engine_config, publish

from gridwatch import Reading, _services
from gridwatch.storage import build_writer
from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._points import reading_lines

INTERVAL = timedelta(minutes=15)
METERS = ["WS-001", "WS-002", "WS-003"]
SHIFTED = "WS-002"
#: a meter of the cell whose stored readings stop an hour before the restart: silent since
SILENT = "WS-004"


def registry() -> dict:
    return {
        "managers": [{"id": "MGR-WS", "name": "Test Manager", "channels": ["mqtt"],
                      "language": "en"}],
        "cells": [{"id": "CELL-WS", "name": "warm cell", "primary": "MGR-WS"}],
        "customers": [
            {"id": f"CUST-{m}", "name": f"customer {m}", "class": "residential",
             "grid_cell": "CELL-WS", "meters": [m]} for m in (*METERS, SILENT)],
    }


def load(i: int, m: int, t: datetime, peak: float) -> float:
    """A household's load: low at night, a daily peak at hour ``peak`` (UTC), a small wobble."""
    hour = t.hour + t.minute / 60
    apart = (hour - peak + 12) % 24 - 12  # (hours from the peak, across midnight too)
    return round(0.3 + 0.1 * m + 0.8 * math.exp(-(apart ** 2) / 4)
                 + 0.04 * math.sin(i * 0.9 + m), 3)


def peak_of(restart: datetime) -> float:
    """The households' daily peak an hour after the restart's hour of the day: the tripled
    load of the hours after the restart then meets it, whatever the time the test runs at (a
    night's load tripled for three hours is within what households do, and is not alerted
    on)."""
    return (restart.hour + restart.minute / 60 + 1.0) % 24


def readings(start: datetime, end: datetime, shift: bool,
             meters: tuple[str, ...] = tuple(METERS), *, peak: float) -> list[dict]:
    out, t, i = [], start, 0
    while t < end:
        for m, meter in enumerate(meters):
            kw = load(i, m, t, peak) * (3.0 if shift and meter == SHIFTED else 1.0)
            out.append({"meter_id": meter, "ts": t.isoformat().replace("+00:00", "Z"),
                        "kw": kw, "voltage": [230.0], "pf": 0.97})
        t += INTERVAL
        i += 1
    return out


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("recovery", [False, True], ids=["no-recovery", "fresh-recovery-dir"])
def test_a_start_without_state_starts_warm(recovery, tmp_path, mosquitto, influxdb,
                                           engine_process):
    """Without recovery, or with a recovery directory that holds no state yet (lost, or made
    new for a new placement), the cells seed their meters from the stored week."""
    database = f"warm_{uuid.uuid4().hex[:8]}"
    urllib.request.urlopen(f"{influxdb.url}/query",
                           data=f"q=CREATE+DATABASE+{database}".encode()).read()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    now -= timedelta(minutes=now.minute % 15)
    restart = now - timedelta(hours=3)
    peak = peak_of(restart)
    # the week before the restart, stored as the engine stored it before
    week = [Reading.model_validate(r)
            for r in readings(restart - timedelta(days=8), restart, shift=False, peak=peak)
            + readings(restart - timedelta(days=8), restart - timedelta(hours=1), shift=False,
                       meters=(SILENT,), peak=peak)]
    writer = build_writer(InfluxSettings(api="v1", url=influxdb.url, database=database))
    lines = reading_lines(week)
    for i in range(0, len(lines), 5000):
        writer.write(lines[i:i + 5000])

    observer = Observer(mosquitto.host, mosquitto.port)
    port = _services.free_port()
    config = engine_config(tmp_path, mosquitto, registry(), api="v1", url=influxdb.url,
                           database=database, metrics_port=port)
    engine = engine_process(config, *(("-r", str(tmp_path / "recovery")) if recovery else ()))
    try:
        seeded = "warm start: meters without state are seeded from up to 7 days"
        wait_until(lambda: seeded in engine.log(), 30, "the engine to say it starts warm")
        live = readings(restart, now - timedelta(minutes=30), shift=True, peak=peak)
        publish(mosquitto.host, mosquitto.port, live)

        def alerts() -> list[dict]:
            path = tmp_path / "alerts.jsonl"
            return [json.loads(x) for x in path.read_text().splitlines()] \
                if path.exists() else []

        wait_until(lambda: any(a["meter_id"] == SHIFTED and a["type"] == "abnormal_consumption"
                               for a in alerts()), 90,
                   "the abnormal-consumption alert of the meter whose load tripled")
        wait_until(lambda: any(a["meter_id"] == SILENT and a["type"] == "comm_loss"
                               for a in alerts()), 30,
                   "the communication-loss alert of the meter silent since before the restart")
        assert {a["meter_id"] for a in alerts()} == {SHIFTED, SILENT}
        # the cell's first batch asked for its four meters in one query: their week (the
        # silent one's up to its last reading, an hour before the restart)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        counts = {line.split()[0]: float(line.split()[1]) for line in text.decode().splitlines()
                  if line.startswith("gridwatch_warm_start_")}
        assert counts == {"gridwatch_warm_start_queries_total": 1.0,
                          "gridwatch_warm_start_meters_total": 4.0,
                          "gridwatch_warm_start_readings_total": 3 * 7 * 96.0 + 7 * 96 - 4,
                          "gridwatch_warm_start_failures_total": 0.0}

        # restarted without state once more (the database holds the live hours too): the
        # silent meter is found silent again, with the same onset, and the router, whose
        # alert of it is still open, refreshes it and tells nobody again
        def alert_of_silent() -> tuple[int, str]:
            with sqlite3.connect(tmp_path / "alerts.sqlite") as db:
                return db.execute("SELECT episode, updated_at FROM alerts WHERE meter_id = ? "
                                  "AND type = 'comm_loss'", (SILENT,)).fetchone()

        told, (episode, updated) = len(alerts()), alert_of_silent()
        engine.stop()
        engine = engine_process(config, *(("-r", str(tmp_path / "recovery-2"))
                                          if recovery else ()), log_name="engine-2.log")
        wait_until(lambda: seeded in engine.log(), 30, "the engine to say it starts warm")
        publish(mosquitto.host, mosquitto.port,
                readings(now - timedelta(minutes=30), now, shift=True, peak=peak))
        wait_until(lambda: alert_of_silent() != (episode, updated), 60,
                   "the silent meter's silence raised again", detail=alert_of_silent)
        assert alert_of_silent()[0] == episode  # (the same episode, refreshed)
        assert len(alerts()) == told
    finally:
        observer.close()
        engine.stop()


@pytest.mark.services
@pytest.mark.slow
def test_a_fresh_database_starts_cold_and_says_so(tmp_path, mosquitto, influxdb,
                                                  engine_process):
    database = f"cold_{uuid.uuid4().hex[:8]}"
    engine = engine_process(engine_config(tmp_path, mosquitto, registry(), api="v1",
                                          url=influxdb.url, database=database))
    try:
        cold = "warm start: no readings stored yet; meters start cold"
        wait_until(lambda: cold in engine.log(), 30, "the engine to say it starts cold")
        assert "seeded" not in engine.log()
    finally:
        engine.stop()
