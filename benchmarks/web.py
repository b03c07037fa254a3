"""Server time of a manager's alert list with 10,000 open alerts in their cells.

Opens 10,000 alerts in one manager's cells (and 2,000 in a cell they do not manage) through the
alert router, logs the manager in, and times ``GET /alerts`` (the whole page: session check,
access rules, ranked query, filters, Jinja2 rendering of the first page of 100) through httpx's
ASGI transport, in process, so what is timed is the server's work. Beside it, measured in the
same run on the same database: the router's own listing of the same open alerts
(``Router.alerts(state="firing")``, what ``gridwatch alerts list`` reads) as the baseline.

    .venv/bin/python benchmarks/web.py                 # about a minute
    .venv/bin/python benchmarks/web.py --alerts 20000 --repeat 30
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from argon2 import PasswordHasher

from gridwatch._settings import Settings
from gridwatch.alerts._service import build_router
from gridwatch.alerts._store import ts
from gridwatch.web import _accounts as acc
from gridwatch.web._app import Workspace, create_app

ROUTES = "route:\n  receivers: [cell_manager]\n"
T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
TYPES = ("abnormal_consumption", "outage", "meter_fault", "over_capacity_risk")
SEVERITIES = ("info", "warning", "critical")


def registry(n_mine: int, n_other: int) -> dict:
    cells = [{"id": f"A{i}", "primary": "M1", "backup": "M2"} for i in range(4)]
    cells.append({"id": "B", "primary": "M2"})
    customers = []
    per = 100
    for c in range((n_mine + n_other) // per):
        cell = f"A{c % 4}" if c * per < n_mine else "B"
        customers.append({"id": f"C{c:05d}", "grid_cell": cell,
                          "class": "industrial" if c % 10 == 0 else "residential",
                          "meters": [f"m{c:05d}-{j:03d}" for j in range(per)]})
    return {"managers": [{"id": "M1"}, {"id": "M2"}], "cells": cells, "customers": customers}


def settings(tmp: Path, reg: dict) -> Settings:
    (tmp / "registry.yaml").write_text(yaml.safe_dump(reg))
    (tmp / "routes.yaml").write_text(ROUTES)
    repo = Path(__file__).resolve().parents[1]
    return Settings(
        alerts={"registry": str(tmp / "registry.yaml"), "routes": str(tmp / "routes.yaml"),
                "templates": str(repo / "config" / "templates"),
                "state_db": str(tmp / "alerts.sqlite"), "jsonl_out": None},
        web={"secret_file": str(tmp / "web.secret")}, influx={"enabled": False})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=10_000, help="open alerts in the cells")
    ap.add_argument("--repeat", type=int, default=20, help="timed requests per case")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        reg = registry(args.alerts, args.alerts // 5)
        s = settings(tmp, reg)
        router = build_router(s, notifiers={})
        rows = []
        for c in reg["customers"]:
            for k, m in enumerate(c["meters"]):
                at = T0 - timedelta(minutes=(k * 37 + int(c["id"][1:]) * 11) % 10_000)
                rows.append((f"{m}/{TYPES[k % 4]}", m, TYPES[k % 4], SEVERITIES[k % 3],
                             ts(at - timedelta(minutes=30)), ts(at), ts(T0), c["id"],
                             c["grid_cell"], ts(T0)))
        # Straight into the router's alerts table: submitting this many alerts to one group of
        # cells through Router.submit_many takes minutes (each new alert checks inhibition
        # against every open alert of its cell), which is not what is measured here.
        t = time.perf_counter()
        router.db.execute("BEGIN")
        router.db.executemany(
            "INSERT INTO alerts(fingerprint, episode, meter_id, type, severity, score, state, "
            "onset, raised_at, starts_at, customer_id, grid_cell, summary, updated_at) VALUES "
            "(?,1,?,?,?,7.0,'firing',?,?,?,?,?,'load far above usual',?)", rows)
        router.db.execute("COMMIT")
        print(f"stored {len(rows)} open alerts in {time.perf_counter() - t:.1f} s")
        ws = Workspace(s, clock=lambda: T0)
        acc._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        acc.add_user(ws.db, "m1", "manager", "M1", "benchmark password", T0)
        app = create_app(ws)

        async def run() -> dict[str, list[float]]:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://bench") as c:
                page = await c.get("/login")
                token = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert token
                await c.post("/login", data={"username": "m1", "password":
                                             "benchmark password", "csrf": token.group(1)})
                first = await c.get("/alerts?format=json")
                assert first.json()["total"] == args.alerts, first.text[:200]
                times: dict[str, list[float]] = {}
                for name, url in (("alert list, first page", "/alerts"),
                                  ("alert list, page 50", "/alerts?offset=4900"),
                                  ("alert list, type + class filter",
                                   "/alerts?type=outage&class=industrial"),
                                  ("htmx refresh of the rows", "/alerts")):
                    headers = {"HX-Request": "true"} if "htmx" in name else {}
                    times[name] = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        resp = await c.get(url, headers=headers)
                        times[name].append(time.perf_counter() - t0)
                        assert resp.status_code == 200
                return times

        times = asyncio.run(run())
        base = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            rows = router.alerts(state="firing")
            base.append(time.perf_counter() - t0)
        assert len(rows) == args.alerts + args.alerts // 5
        b = statistics.median(base) * 1000
        print(f"\nbaseline: Router.alerts(state='firing') of all {len(rows)} open alerts: "
              f"median {b:.1f} ms")
        print(f"{'case':36} {'median ms':>10} {'p95 ms':>8} {'ratio':>7}  target 300 ms")
        for name, took in times.items():
            med = statistics.median(took) * 1000
            p95 = sorted(took)[int(0.95 * (len(took) - 1))] * 1000
            ok = "ok" if p95 <= 300 else "OVER"
            print(f"{name:36} {med:10.1f} {p95:8.1f} {med / b:7.2f}  {ok}")
        ws.close()
        router.close()


if __name__ == "__main__":
    main()
