"""Chaos soak: a simulated fleet flows through the whole engine while a seeded schedule of faults
kills the engine (and with it its collector), restarts the broker, stops InfluxDB and takes the
manager's webhook receiver away; at the end it counts what was lost and what came twice.

Everything runs on private servers on loopback: mosquitto (persistence on), InfluxDB 1.6.7,
``gridwatch run -r`` as a subprocess, an HTTP webhook receiver and an independent MQTT
subscriber with a persistent session on the managers' alert topic. The fleet is ``--meters``
ordinary meters sending one reading every 15 simulated minutes, a slot every ``--slot-s`` real
seconds (timestamps in the past, so nothing is ahead of the clock); one meter in five gets a
three-slot voltage sag every forty slots, each an alert episode that fires and clears.

Counted at the end, after every service is back and the engine has caught up:

* readings lost and stored twice: InfluxDB's ``reading`` points against what was published;
* notifications lost: sag episodes whose resolved notice never reached the MQTT subscriber or
  the webhook receiver; delivered twice: an (alert, onset, transition) received more than once
  on one channel;
* time to recover: after each fault ends, until InfluxDB holds every reading published before
  it ended; printed beside the same lag measured before the first fault (the baseline).

Readings that reached the journal but not InfluxDB at the end are counted apart (``waiting``):
the storage sink writes its last small batch when the next readings arrive or on its timer.

Not in CI. Usage: ``python benchmarks/chaos.py`` (20 minutes), ``--minutes 5``, ``--seed N``.
Figures go to the terminal and to ``var/bench/chaos.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from _faults_helpers import (  # noqa: E402
    Fleet,
    Observer,
    WebhookReceiver,
    create_database,
    journal_keys,
    reading_count,
    stored_readings,
    write_config,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gridwatch import _services  # noqa: E402
from gridwatch.simulators._targets import MqttTarget  # noqa: E402

console = Console()
SAG_EVERY, SAG_LEN = 40, 3
FAULTS = ("kill_engine", "restart_broker", "stop_influxdb", "stop_webhook")


@dataclass
class Fault:
    kind: str
    at: float  # seconds after the stream started
    down_s: float
    ended_at: float | None = None
    published_at_end: int = 0
    recovered_s: float | None = None


@dataclass
class Engine:
    config: Path
    log: Path
    recovery: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridwatch", "run", "-r", str(self.recovery)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=os.environ | {"GRIDWATCH_CONFIG": str(self.config)})
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Stream:
    """Publishes the fleet slot by slot through the simulator's MQTT target (which reconnects
    and resends what the broker had not acknowledged)."""

    fleet: Fleet
    target: MqttTarget
    slot_s: float
    published: int = 0
    sags: list[tuple[str, str]] = field(default_factory=list)  # (meter, onset)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        t0 = time.monotonic()
        for s in range(len(self.fleet.times)):
            if self.stop.is_set():
                break
            rows = self.fleet.slot(s)
            self.target.write([("east", "DC-01", r["meter_id"], r) for r in rows])
            with self.lock:
                self.published += len(rows)
            delay = t0 + (s + 1) * self.slot_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.done.set()


def build_fleet(meters: int, slots: int) -> tuple[Fleet, list[tuple[str, str]]]:
    names = [f"X-{i:04d}" for i in range(meters)]
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    end -= timedelta(minutes=end.minute % 15)
    times = [end - (slots - 1 - i) * timedelta(minutes=15) for i in range(slots)]
    f = Fleet(names, times)
    sags: list[tuple[str, str]] = []
    for i, m in enumerate(names):
        if i % 5:
            continue
        for start in range(20 + (i * 7) % SAG_EVERY, slots - SAG_LEN - 8, SAG_EVERY):
            for k in range(SAG_LEN):
                f.override[(m, start + k)] = {"voltage": [180.0]}
            sags.append((m, times[start].isoformat().replace("+00:00", "Z")))
    return f, sags


def schedule(rng: random.Random, seconds: float) -> list[Fault]:
    """Faults every 15-40 s after a quiet first minute (the baseline), down 1-25 s each, the
    four kinds in turn first, then drawn at random."""
    out: list[Fault] = []
    t = 60.0
    while t < seconds - 30:
        kind = FAULTS[len(out) % len(FAULTS)] if len(out) < len(FAULTS) else rng.choice(FAULTS)
        down = {"kill_engine": rng.uniform(1, 5), "restart_broker": rng.uniform(2, 10),
                "stop_influxdb": rng.uniform(5, 25), "stop_webhook": rng.uniform(5, 20)}[kind]
        out.append(Fault(kind, t, down))
        t += down + rng.uniform(15, 40)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--slot-s", type=float, default=0.5)
    ap.add_argument("--keep", action="store_true", help="Keep the working directory.")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seconds = args.minutes * 60
    slots = int(seconds / args.slot_s)
    work = Path(tempfile.mkdtemp(prefix="gridwatch-chaos-"))
    broker = _services.mosquitto(work / "mosquitto").start()
    influx = _services.influxdb(work / "influxdb").start()
    hook = WebhookReceiver().start()
    db = "chaos"
    create_database(influx.url, db)
    fleet, sags = build_fleet(args.meters, slots)
    config = write_config(
        work, broker=broker, influx_url=influx.url, database=db, meters=fleet.meters,
        registry={"channels": ["mqtt", "webhook"], "webhook": hook.url},
        alerts={"retry": {"base_s": 0.5, "max_s": 5.0, "max_attempts": 1000}},
        engine={"epoch_s": 2.0})
    engine = Engine(config, work / "engine.log", work / "recovery")
    observer = Observer(broker)
    engine.start()
    # The collector's persistent session must exist before the fleet publishes.
    deadline = time.monotonic() + 60
    while "subscribed to" not in engine.log.read_text(errors="replace"):
        if time.monotonic() > deadline or not engine.alive():
            raise SystemExit(f"the engine did not subscribe:\n{engine.log.read_text()[-2000:]}")
        time.sleep(0.2)
    target = MqttTarget(broker.host, broker.port, batch_size=50, client_id="chaos-fleet",
                        max_pending=200)
    stream = Stream(fleet, target, args.slot_s)
    faults = schedule(rng, seconds)
    console.print(f"[bold]chaos soak[/]: {args.minutes:g} min, {args.meters} meters, "
                  f"{slots} slots, {len(sags)} sag episodes, {len(faults)} faults "
                  f"(seed {args.seed}); work dir {work}")
    lags: list[tuple[float, int, int]] = []  # (t, published, stored)
    t0 = time.monotonic()
    threading.Thread(target=stream.run, daemon=True).start()

    def monitor_once() -> None:
        with stream.lock:
            pub = stream.published
        lags.append((time.monotonic() - t0, pub, reading_count(influx.url, db)))

    pending = list(faults)
    active: list[Fault] = []
    try:
        while not stream.done.is_set() or active:
            now = time.monotonic() - t0
            if pending and now >= pending[0].at:
                f = pending.pop(0)
                console.print(f"  {now:6.0f}s  {f.kind} for {f.down_s:.1f}s")
                {"kill_engine": engine.kill, "restart_broker": broker.stop,
                 "stop_influxdb": influx.stop, "stop_webhook": hook.stop}[f.kind]()
                active.append(f)
            for f in list(active):
                if now >= f.at + f.down_s:
                    {"kill_engine": engine.start, "restart_broker": broker.start,
                     "stop_influxdb": influx.start, "stop_webhook": hook.start}[f.kind]()
                    f.ended_at = time.monotonic() - t0
                    with stream.lock:
                        f.published_at_end = stream.published
                    active.remove(f)
            if not engine.alive() and not any(a.kind == "kill_engine" for a in active):
                console.print("[red]the engine died on its own; restarting it[/]")
                engine.start()
            monitor_once()
            time.sleep(1.0)
        target.close()
        # Catch up: every reading stored, then notifications settle.
        total = stream.published
        deadline = time.monotonic() + 300
        still_since, last_stored = time.monotonic(), -1
        while time.monotonic() < deadline and time.monotonic() - still_since < 60:
            stored_n = reading_count(influx.url, db)
            if stored_n >= total:
                break
            if stored_n != last_stored:
                still_since, last_stored = time.monotonic(), stored_n
            monitor_once()
            time.sleep(1.0)
        monitor_once()
        quiet_since, last = time.monotonic(), -1
        while time.monotonic() - quiet_since < 20 and time.monotonic() < deadline + 300:
            n = len(observer.messages) + len(hook.bodies)
            if n != last:
                last, quiet_since = n, time.monotonic()
            time.sleep(1.0)
    finally:
        stream.stop.set()
        engine.stop()
        observer.close()

    # Readings.
    expected: Counter[tuple[str, str]] = Counter()
    for s in range(len(fleet.times)):
        for r in fleet.slot(s):
            expected[(r["meter_id"], r["ts"])] += 1
    stored = stored_readings(influx.url, db)
    journaled = journal_keys(work / "journal")
    lost = sum(1 for k in expected if k not in stored and k not in journaled)
    waiting = sum(1 for k in expected if k not in stored and k in journaled)
    twice = sum(n - 1 for n in stored.values() if n > 1)
    # Notifications: by channel, (alert, onset, transition).
    mqtt_seen: Counter[tuple[str, str, str]] = Counter()
    with observer.lock:
        for m in observer.messages:
            for a in m["alerts"]:
                mqtt_seen[(a["fingerprint"], a["onset"], a["state_status"])] += 1
    hook_seen: Counter[tuple[str, str, str]] = Counter()
    with hook.lock:
        for b in hook.bodies:
            for a in b["alerts"]:
                hook_seen[(a["fingerprint"], a["annotations"]["onset"], a["status"])] += 1
    published_sags = [(m, o) for m, o in sags if o <= max(t for _, t in expected)]
    resolved_wanted = {(f"{m}/voltage_sag", o, "resolved") for m, o in published_sags}
    lost_mqtt = len(resolved_wanted - set(mqtt_seen))
    lost_hook = len(resolved_wanted - set(hook_seen))
    twice_mqtt = sum(n - 1 for n in mqtt_seen.values() if n > 1)
    twice_hook = sum(n - 1 for n in hook_seen.values() if n > 1)
    # Recovery.
    for f in faults:
        if f.ended_at is None:
            continue
        for t, _pub, st in lags:
            if t >= f.ended_at and st >= f.published_at_end:
                f.recovered_s = t - f.ended_at
                break
    baseline = [t for t, pub, st in lags if t < 60]
    base_lag = 0.0
    if baseline:
        # Lag before the first fault: how long a published reading takes to be counted.
        delays = []
        for t, pub, _ in lags:
            if t >= 50:
                break
            hit = next((t2 for t2, _p, st2 in lags if st2 >= pub and t2 >= t), None)
            if hit is not None:
                delays.append(hit - t)
        base_lag = max(delays) if delays else 0.0
    recovered = [f.recovered_s for f in faults if f.recovered_s is not None]
    worst = max(recovered) if recovered else None

    table = Table(title=f"chaos soak, {args.minutes:g} min, seed {args.seed}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    kinds = Counter(f.kind for f in faults if f.ended_at is not None)
    table.add_row("faults", f"{sum(kinds.values())} ("
                  + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
    table.add_row("readings published", f"{total:,}")
    table.add_row("readings lost", str(lost))
    table.add_row("readings journaled, not yet in InfluxDB at the end", str(waiting))
    table.add_row("readings stored twice", str(twice))
    table.add_row("alert episodes (sags)", str(len(published_sags)))
    table.add_row("notifications lost (MQTT / webhook)", f"{lost_mqtt} / {lost_hook}")
    table.add_row("notifications delivered twice (MQTT / webhook)", f"{twice_mqtt} / {twice_hook}")
    table.add_row("longest time to recover", f"{worst:.1f} s" if worst is not None else "-")
    table.add_row("median time to recover",
                  f"{statistics.median(recovered):.1f} s" if recovered else "-")
    table.add_row("baseline lag before any fault (same run)", f"{base_lag:.1f} s")
    if worst is not None and base_lag:
        table.add_row("longest recovery / baseline lag", f"{worst / base_lag:.1f}x")
    table.add_row("engine starts", str(engine.starts))
    console.print(table)
    by_fault = Table(title="recovery by fault")
    for col in ("at s", "fault", "down s", "recovered in s"):
        by_fault.add_column(col, justify="right")
    for f in faults:
        by_fault.add_row(f"{f.at:.0f}", f.kind, f"{f.down_s:.1f}",
                         f"{f.recovered_s:.1f}" if f.recovered_s is not None else "-")
    console.print(by_fault)
    out = ROOT / "var" / "bench" / "chaos.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "minutes": args.minutes, "seed": args.seed, "meters": args.meters,
        "faults": [f.__dict__ for f in faults], "readings_published": total,
        "readings_lost": lost, "readings_waiting": waiting, "readings_twice": twice,
        "episodes": len(published_sags),
        "notifications_lost": {"mqtt": lost_mqtt, "webhook": lost_hook},
        "notifications_twice": {"mqtt": twice_mqtt, "webhook": twice_hook},
        "longest_recovery_s": worst, "baseline_lag_s": base_lag,
    }, indent=2, default=str))
    hook.stop()
    influx.stop()
    broker.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    bad = lost or twice or lost_mqtt or lost_hook or twice_mqtt or twice_hook
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
