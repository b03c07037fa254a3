"""``gridwatch replay --route`` computes the customers' tags as ``run`` does: day by day in the
replay's event time, into the tag store (history kept), and into the router's labels."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from _tags_helpers import CATALOGUE, TARIFF

from gridwatch._engine import replay
from gridwatch._settings import Settings
from gridwatch.tags._notes import TagNotes, tags_db_path, tags_row_id

T0 = datetime(2024, 4, 8, tzinfo=UTC)  # a Monday


def test_replay_with_the_router_tags_the_customers(tmp_path: Path) -> None:
    rows = ["meter_id,timestamp,kw"]
    for i in range(4 * 96 + 4):  # four days and the first hour of the fifth
        t = T0 + timedelta(minutes=15 * i)
        ts = t.isoformat().replace("+00:00", "Z")
        wobble = 0.02 * (i % 3)
        rows.append(f"N-1,{ts},{(2.0 if t.hour < 6 else 0.4) + wobble:.3f}")
        rows.append(f"E-1,{ts},{(1.5 if 17 <= t.hour < 22 else 0.3) + wobble:.3f}")
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({
        "managers": [{"id": "MG", "name": "M"}],
        "cells": [{"id": "C1", "name": "cell", "primary": "MG"}],
        "customers": [{"id": f"CU-{m}", "name": m, "class": "residential",
                       "contracted_kva": 8, "grid_cell": "C1", "meters": [m]}
                      for m in ("N-1", "E-1")],
    }))
    settings = Settings(
        ingest={"deadletter_dir": str(tmp_path / "dead")},
        influx={"enabled": False},
        alerts={"registry": str(tmp_path / "registry.yaml"),
                "state_db": str(tmp_path / "alerts.sqlite"), "jsonl_out": None,
                "tags_catalogue": str(CATALOGUE), "tariff": str(TARIFF)})
    stats = replay(settings, tmp_path / "r.csv", influx=False, route=True)
    assert stats.readings == len(rows) - 1

    notes = TagNotes(tags_db_path(settings.alerts))
    night = {n.tag: n for n in notes.current("CU-N-1")}
    assert "night-heavy" in night and "valley-shifter" in night
    assert night["night-heavy"].reason.startswith("tagged night-heavy: ")
    assert night["night-heavy"].since == date(2024, 4, 8)  # the first day replayed
    assert notes.as_of("CU-N-1") == date(2024, 4, 11)  # the last whole day
    assert "night-heavy" not in {n.tag for n in notes.current("CU-E-1")}
    assert notes.history("CU-N-1")[0].startswith("became ")

    db = sqlite3.connect(tmp_path / "alerts.sqlite")
    (tags,) = db.execute("SELECT tags FROM profiles WHERE meter_id=?",
                         (tags_row_id("CU-N-1"),)).fetchone()
    db.close()
    assert {"night-heavy", "valley-shifter"} <= set(json.loads(tags))
