"""The alert router under a storm: ``Router.submit_many`` over 1,000 / 4,000 / 12,000 events.

A feeder outage or a storm raises thousands of alerts at once, which is when a manager must hear
first. Each size runs on a fresh router with a realistic registry (``--cells`` grid cells, a
primary and a backup manager each, residential, commercial and industrial customers with one
to three meters), the shipped routing tree (``config/routes.yaml``: industrial notices, cell
managers, the feeder-outage inhibit rule), the real alert store (a SQLite file in a temporary
folder, WAL, ``synchronous=FULL``) and a real notifier: managers and customers are mailed
through ``EmailNotifier`` to a private SMTP server (aiosmtpd) on a loopback port.

The batch is a storm: one feeder outage in every tenth cell (submitted first, so the outage and
comm-loss alerts behind it are inhibited), new alerts of every type on distinct meters, and
about one event in ten a repeat of an earlier alert of the batch (deduplicated, sometimes with a
higher severity) or its resolve.

Printed per size: ``submit_many`` alerts/s beside the baseline measured in the same run: the
store's bare insert of the same alerts (one ``INSERT`` per alert into the same schema, one
transaction, same disk settings), which is the least any router that keeps its alerts on disk
does. The ratio to the baseline should stay flat as N grows (near-linear growth); ``growth`` is
the CPU time per alert relative to the smallest size (the wall clock also counts whatever else
runs on the machine). Then the time until every notification is in the SMTP server (one
``tick`` after the group wait, then ``deliver_pending`` until the outbox is empty), and one more
``tick`` with nothing due while every alert is still open ("idle tick": the service ticks every
second).

    .venv/bin/python benchmarks/router.py                     # 1,000 / 4,000 / 12,000
    .venv/bin/python benchmarks/router.py --sizes 1000 2000   # quicker
    .venv/bin/python benchmarks/router.py --sizes 12000 --profile   # where the time goes
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gridwatch import Event
from gridwatch._schemas import Severity
from gridwatch._services import free_port
from gridwatch.alerts import AlertSettings, Registry, Router, RouteTree, Templates
from gridwatch.alerts._channels import EmailNotifier
from gridwatch.alerts._store import connect, dumps, ts

REPO = Path(__file__).resolve().parents[1]
#: Monday 2026-05-04 10:00 in Shanghai: outside the customers' quiet hours.
T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
TYPES = ("abnormal_consumption", "over_capacity_risk", "outage", "comm_loss", "voltage_sag",
         "low_power_factor", "stuck_reading", "tamper")


def registry(cells: int, customers: int, rng: random.Random) -> tuple[dict[str, Any], list[str]]:
    """A fleet of ``customers`` customers in ``cells`` cells; returns it and its meter ids."""
    managers = [{"id": f"M{i:03d}", "name": f"Manager {i}", "channels": ["email"],
                 "email": f"m{i:03d}@grid.example.org", "language": "en" if i % 2 else "zh"}
                for i in range(max(2, cells // 2))]
    cell_rows = [{"id": f"CELL-{c:03d}", "primary": managers[c % len(managers)]["id"],
                  "backup": managers[(c + 1) % len(managers)]["id"]} for c in range(cells)]
    cust_rows, meters = [], []
    for i in range(customers):
        cls = rng.choices(("residential", "commercial", "industrial"), (85, 11, 4))[0]
        n_meters = 1 if cls == "residential" else rng.randint(1, 3)
        ids = [f"MTR-{i:06d}-{k}" for k in range(n_meters)]
        meters.extend(ids)
        row: dict[str, Any] = {"id": f"C{i:06d}", "name": f"Customer {i}", "class": cls,
                               "grid_cell": cell_rows[i % cells]["id"], "meters": ids,
                               "contracted_kva": 630 if cls == "industrial" else 12}
        if cls == "industrial":
            row |= {"notices": True, "channels": ["email"],
                    "contacts": {"email": f"energy{i}@site.example.com"}, "language": "zh"}
        cust_rows.append(row)
    return {"managers": managers, "cells": cell_rows, "customers": cust_rows}, meters


def storm(n: int, reg: Registry, meters: list[str], rng: random.Random) -> list[Event]:
    """``n`` events: feeder outages first, then new alerts, repeats and resolves."""
    cells = [c.id for c in reg.cells]
    events: list[Event] = []
    for c in cells[::10]:
        events.append(Event(meter_id=f"FEEDER-{c}", type="feeder_outage", severity="critical",
                            score=1.0, onset=T0 - timedelta(minutes=5), raised_at=T0,
                            grid_cell=c, summary=f"feeder of {c} is down"))
    picked = rng.sample(meters, n)
    opened: list[Event] = []
    while len(events) < n:
        roll = rng.random()
        if opened and roll < 0.07:  # the same condition again, sometimes worse
            e = rng.choice(opened)
            sev = Severity.CRITICAL if rng.random() < 0.3 else e.severity
            events.append(e.model_copy(update={"severity": sev, "score": e.score + 1,
                                               "raised_at": e.raised_at + timedelta(minutes=1)}))
        elif opened and roll < 0.10:  # over
            e = opened.pop(rng.randrange(len(opened)))
            events.append(e.model_copy(update={"state": "resolved",
                                               "raised_at": e.raised_at + timedelta(minutes=2)}))
        else:
            meter = picked[len(events)]
            type_ = rng.choice(TYPES)
            e = Event(meter_id=meter, type=type_, severity=rng.choice(("warning", "critical")),
                      score=round(rng.uniform(3, 20), 2), onset=T0 - timedelta(minutes=15),
                      raised_at=T0, summary=f"{type_} on {meter}",
                      evidence={"kw": round(rng.uniform(1, 400), 1), "expected_kw": 10.0})
            events.append(e)
            opened.append(e)
    return events


class SmtpSink:
    """A private SMTP server (aiosmtpd) on a loopback port that counts what it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.received = 0
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with sink._lock:
                    sink.received += 1
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()
        asyncio.set_event_loop(None)


def bare_insert(path: Path, events: list[Event]) -> float:
    """Seconds for the store's bare insert of the events (the baseline)."""
    db = connect(path)
    t = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    for e in events:
        db.execute(
            "INSERT OR REPLACE INTO alerts(fingerprint, episode, meter_id, type, severity, "
            "score, state, onset, raised_at, starts_at, customer_id, grid_cell, summary, "
            "evidence, meters, updated_at) VALUES (?,?,?,?,?,?,'firing',?,?,?,?,?,?,?,?,?)",
            (e.fingerprint, 1, e.meter_id, e.type, e.severity.value, e.score, ts(e.onset),
             ts(e.raised_at), ts(T0), e.customer_id, e.grid_cell, e.summary, dumps(e.evidence),
             dumps(list(e.meters)), ts(T0)))
    db.execute("COMMIT")
    elapsed = time.perf_counter() - t
    db.close()
    return elapsed


def run(n: int, args: argparse.Namespace, smtp: SmtpSink, folder: Path) -> dict[str, Any]:
    rng = random.Random(n)
    raw, meters = registry(args.cells, max(args.customers, n), rng)
    reg = Registry.model_validate(raw)
    events = storm(n, reg, meters, rng)
    base = bare_insert(folder / f"bare-{n}.sqlite", events)
    settings = AlertSettings.model_validate({
        "group_wait_s": 30, "group_interval_s": 300,
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "sender": "gridwatch@grid.example.org"}})
    routes = RouteTree.load(REPO / "config" / "routes.yaml")
    clock = [T0]
    router = Router(reg, routes, db=folder / f"router-{n}.sqlite",
                    templates=Templates(REPO / "config" / "templates"),
                    notifiers={"email": EmailNotifier(settings.smtp)}, settings=settings,
                    clock=lambda: clock[0], inhibit_rules=routes.inhibit)
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    t, c = time.perf_counter(), time.process_time()
    opened = router.submit_many(events, T0)
    submit_s, submit_cpu = time.perf_counter() - t, time.process_time() - c
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    before = smtp.received
    if prof:
        prof = cProfile.Profile()
        prof.enable()
    t = time.perf_counter()
    made = router.tick(T0 + timedelta(seconds=31))
    tick_s = time.perf_counter() - t
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    sent = 0
    while True:
        d = router.deliver_pending(T0 + timedelta(seconds=31), limit=500)
        sent += d
        if not router.outbox("pending") or d == 0:
            break
    notify_s = time.perf_counter() - t
    # A tick with nothing due while every alert is still open (the service ticks every second).
    t = time.perf_counter()
    router.tick(T0 + timedelta(seconds=60))
    idle_s = time.perf_counter() - t
    counters = router.counters()
    router.close()
    assert smtp.received - before == sent, "every delivered message reached the SMTP server"
    return {"n": n, "opened": opened, "inhibited": counters.get("alerts_inhibited", 0),
            "submit_s": submit_s, "submit_cpu": submit_cpu, "base_s": base,
            "notifications": made, "mailed": sent, "tick_s": tick_s, "notify_s": notify_s,
            "idle_s": idle_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 12000])
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true", help="print where submit_many spends")
    args = ap.parse_args()
    smtp = SmtpSink()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="gridwatch-router-bench-") as tmp:
            for n in args.sizes:
                rows.append(run(n, args, smtp, Path(tmp)))
    finally:
        smtp.close()
    print(f"registry: {args.cells} cells, {max(args.cells // 2, 2)} managers, "
          f"{args.customers}+ customers; routes: config/routes.yaml; store: SQLite file (WAL, "
          f"synchronous=FULL); notifier: EmailNotifier to aiosmtpd on 127.0.0.1")
    print(f"{'events':>7} {'opened':>7} {'inhib':>6} {'submit_many':>12} {'cpu':>7} "
          f"{'alerts/s':>9} {'baseline/s':>11} {'ratio':>6} {'growth':>7} {'notices':>8} "
          f"{'tick':>7} {'mailed':>7} {'tick+deliver':>13} {'idle tick':>10}")
    first = rows[0]["submit_cpu"] / rows[0]["n"]
    for r in rows:
        rate, base_rate = r["n"] / r["submit_s"], r["n"] / r["base_s"]
        growth = (r["submit_cpu"] / r["n"]) / first
        print(f"{r['n']:>7} {r['opened']:>7} {r['inhibited']:>6} {r['submit_s']:>10.2f} s "
              f"{r['submit_cpu']:>5.2f} s "
              f"{rate:>9.0f} {base_rate:>11.0f} {base_rate / rate:>5.1f}x {growth:>6.2f}x "
              f"{r['notifications']:>8} {r['tick_s']:>5.2f} s {r['mailed']:>7} "
              f"{r['notify_s']:>11.2f} s {r['idle_s'] * 1e3:>7.0f} ms")
    print("ratio: baseline rate / submit_many rate (the store's bare insert of the same alerts, "
          "same run); growth: submit_many's CPU time per alert relative to the first size "
          "(1.00 = linear; the wall clock also counts other work on a shared machine)")


if __name__ == "__main__":
    main()
