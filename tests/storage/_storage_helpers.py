"""Helpers of the storage tests: sample value objects, per-test databases, raw read-back.
Imported by name (``from _storage_helpers import reading``): the folder is on the import path
(``pythonpath``); the fixtures are in ``conftest.py``.

Read-back goes through the servers' own HTTP APIs (InfluxQL ``/query``, VictoriaMetrics
``/api/v1/export``), not through the code under test.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from gridwatch import _services
from gridwatch._schemas import (
    AlertTransition,
    DeviceTelemetry,
    Event,
    LoadProfile,
    MeterStatus,
    Reading,
    Score,
    Severity,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def reading(meter: str, i: int, *, kw: float | None = None) -> Reading:
    """The i-th 15-minute reading of ``meter`` since T0, with deterministic values."""
    return Reading(
        meter_id=meter, ts=T0 + timedelta(minutes=15 * i),
        kw=kw if kw is not None else round(1.5 + (i % 7) * 0.25, 3),
        kwh=100.0 + i, voltage=(230.0 + i % 3, 231.5, 229.0), current=(5.0, 5.5, 4.5),
        pf=0.97, freq=50.0, status=(MeterStatus.ESTIMATED,) if i % 5 == 0 else (),
        interval_s=900,
    )


def samples(meter: str = "m-1") -> dict[str, Any]:
    """One object of each stored kind."""
    return {
        "reading": reading(meter, 3),
        "score": Score(meter_id=meter, ts=T0, kw=4.0, expected_kw=2.0, score=3.5,
                       anomalous=True, segment="residential"),
        "event": Event(meter_id=meter, type="abnormal_consumption", severity=Severity.WARNING,
                       score=5.25, onset=T0, raised_at=T0 + timedelta(hours=1),
                       summary="load twice the usual\nfor an hour",
                       evidence={"expected_kw": 2.0, "observed_kw": 4, "holiday": False,
                                 "reason": "baseline", "missing": None},
                       customer_id="c-1", grid_cell="cell-7", meters=("m-1", "m-2")),
        "profile": LoadProfile(meter_id=meter, day=T0, customer_id="c-1", segment="residential",
                               tags=("night_owl", "ev"), daily_kwh=12.5, peak_kw=3.0,
                               valley_kw=0.25, peak_valley_ratio=12.0, load_factor=0.4,
                               curve=tuple(float(h) / 4 for h in range(24))),
        "telemetry": DeviceTelemetry(device_id=f"{meter}-inv", site="site-3", ts=T0,
                                     kind="inverter", metrics={"ac_kw": 12.0, "temp_c": 41.5},
                                     status=("derated",)),
        "alert": AlertTransition(fingerprint=f"{meter}/outage", meter_id=meter, type="outage",
                                 severity=Severity.CRITICAL, state="acknowledged",
                                 at=T0 + timedelta(hours=2), by="alice", grid_cell="cell-7",
                                 customer_id="c-1", recipient="alice@example.org"),
    }


def http(url: str, data: bytes | None = None) -> bytes:
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


def create_database(svc: _services.Service, name: str) -> None:
    http(f"{svc.url}/query", urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode())


def influxql(svc: _services.Service, db: str, q: str) -> list[dict[str, Any]]:
    """Rows of ``q`` (column → value, tags included; times in ns)."""
    doc = json.loads(http(f"{svc.url}/query?" + urllib.parse.urlencode(
        {"db": db, "q": q, "epoch": "ns"})))
    result = doc["results"][0]
    assert "error" not in result, result
    rows = []
    for s in result.get("series", []):
        for values in s["values"]:
            row = dict(s.get("tags") or {})
            row.update({c: v for c, v in zip(s["columns"], values, strict=True) if v is not None})
            rows.append(row)
    return rows


def vm_export(svc: _services.Service, selector: str) -> list[dict[str, Any]]:
    """VictoriaMetrics series matching ``selector`` after a forced flush."""
    http(f"{svc.url}/internal/force_flush")
    body = http(f"{svc.url}/api/v1/export?" + urllib.parse.urlencode({"match[]": selector}))
    return [json.loads(line) for line in body.splitlines() if line.strip()]
