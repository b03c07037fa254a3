"""`gridwatch replay FILE --no-influx --alerts-out F` runs the dataflow over a CSV with no broker
and no database, writes one JSON line per event and keeps rejected rows as dead letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from gridwatch.ingest import read_deadletters

T0 = datetime(2024, 4, 8, tzinfo=UTC)


def test_replay_csv_without_broker_or_database(tmp_path: Path) -> None:
    rows = ["meter_id,timestamp,kw,kwh,voltage,pf"]
    kwh = {"R-1": 100.0, "R-2": 200.0}
    for i in range(96):
        ts = (T0 + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z")
        for m in kwh:
            kw = 0.5 + 0.05 * ((i * 7 + len(m)) % 5)
            kwh[m] += kw / 4
            sag = m == "R-2" and 60 <= i < 72  # three hours at 180 V on a 220 V supply
            rows.append(f"{m},{ts},{kw:.3f},{kwh[m]:.3f},{180.0 if sag else 221.0},0.97")
    rows.insert(40, "R-1,not-a-time,1.0,,,")  # a bad row: kept, not fatal
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({
        "managers": [{"id": "MG", "name": "M", "channels": ["mqtt"]}],
        "cells": [{"id": "C1", "name": "cell", "primary": "MG"}],
        "customers": [{"id": f"CU-{m}", "name": m, "class": "residential",
                       "contracted_kva": 8, "grid_cell": "C1", "meters": [m]} for m in kwh],
    }))
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump({
        "ingest": {"deadletter_dir": str(tmp_path / "dead")},
        "influx": {"url": "http://127.0.0.1:9"},  # nothing listens: must not be contacted
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", "replay", str(tmp_path / "r.csv"), "--no-influx",
         "--alerts-out", str(tmp_path / "alerts.jsonl"),
         "--registry", str(tmp_path / "registry.yaml")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=os.environ | {"GRIDWATCH_CONFIG": str(tmp_path / "gw.yaml")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "readings processed: 192" in proc.stdout
    assert "rejected: 1" in proc.stdout
    n_fire = sum(e["state"] == "firing" for e in (
        json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()))
    n_res = sum(1 for x in (tmp_path / "alerts.jsonl").read_text().splitlines()) - n_fire
    assert f"alarms raised (firing): {n_fire}  resolutions: {n_res}" in proc.stdout
    events = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    firing = [e for e in events if e["state"] == "firing"]
    assert [(e["meter_id"], e["type"]) for e in firing] == [("R-2", "voltage_sag")]
    sag = firing[0]
    for key in ("meter_id", "type", "severity", "onset", "raised_at", "score"):
        assert key in sag
    assert sag["onset"].startswith("2024-04-08T15:00")
    dead = list(read_deadletters(tmp_path / "dead" / "replay"))
    assert len(dead) == 1 and dead[0].reason == "schema"


def test_replay_of_a_two_partition_journal_keeps_each_meters_readings_in_order(
        tmp_path: Path) -> None:
    """A cluster's journal: two collectors on one shared subscription each got every other
    interval of the same meters. Replayed, the cells step them in event-time order (no clock
    going backwards, no false silence) and raise what the one-partition journal raises."""
    from gridwatch import Reading, Settings
    from gridwatch._engine import replay
    from gridwatch.ingest import Journal
    from gridwatch.ingest._journal import encode_item

    readings = []
    for i in range(96):
        for m in ("R-1", "R-2", "R-3"):
            sag = m == "R-2" and 60 <= i < 72
            readings.append(Reading(meter_id=m, ts=T0 + timedelta(minutes=15 * i),
                                    kw=0.5 + 0.05 * ((i * 7 + len(m)) % 5),
                                    voltage=(180.0 if sag else 221.0,)))

    def run(name: str, split: bool) -> list[tuple[str, str, str]]:
        journal = tmp_path / name
        parts = [Journal(journal, p) for p in ((0, 1) if split else (0,))]
        for k, r in enumerate(readings):
            parts[(k // 3) % len(parts)].append([encode_item(r)])
        for j in parts:
            j.close()
        settings = Settings.model_validate({"ingest": {"deadletter_dir": str(tmp_path / "dl")}})
        out = tmp_path / f"{name}.jsonl"
        stats = replay(settings, journal, influx=False, alerts_out=out)
        assert stats.readings == len(readings)
        return sorted((e["meter_id"], e["type"], e["state"])
                      for e in map(json.loads, out.read_text().splitlines()))

    one = run("one", split=False)
    assert ("R-2", "voltage_sag", "firing") in one
    assert not [e for e in one if e[1] in ("clock_drift", "comm_loss")]
    assert run("two", split=True) == one
