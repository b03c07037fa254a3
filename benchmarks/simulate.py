"""Readings generated per second for the 100,000-meter fleet, to memory and to MQTT, each beside
a baseline measured in the same run, as a ratio.

* memory, baseline: raw numpy: per interval, draw and round arrays of the same size as the
  simulator produces (power, three voltages, three currents, power factor, register) and
  nothing else: the floor of any vectorised generator.
* memory, simulator arrays: ``Simulation.blocks()``: load profiles, temperature, PV, noise,
  anomalies, voltage, power factor, current and registers, vectorised per interval.
* memory, simulator JSON: ``Simulation.chunks()``: the above plus the wire JSON of every reading
  (what the targets send); beside ``json.dumps`` of the same readings as prepared dicts.
* memory, Reading objects: ``Fleet.generate()`` (``Reading.model_construct`` per reading).
* MQTT (a private mosquitto, QoS 1): the simulator's MQTT target, beside a bare paho client
  publishing the same pre-built payloads on the same topics with the same in-flight window.

Usage: ``python benchmarks/simulate.py`` (about a minute: two simulated hours, 800,000
readings) or ``--hours 24`` for a full day (9.6 million readings).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from gridwatch import _services
from gridwatch.simulators import CapturedMqtt, Fleet, MqttTarget, Simulation
from gridwatch.simulators._targets import MemoryTarget, Pacer, drain

FLEET = Path(__file__).resolve().parents[1] / "config" / "fleets" / "utility-100k.yaml"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def raw_numpy(n_meters: int, n_intervals: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    register = np.zeros(n_meters)
    total = 0
    for _ in range(n_intervals):
        kw = np.round(rng.gamma(2.0, 0.3, n_meters), 3)
        volt = np.round(230.0 * (1 + 0.01 * rng.standard_normal((n_meters, 3))), 1)
        pf = np.round(rng.uniform(0.85, 0.99, n_meters), 3)
        cur = np.round(kw[:, None] * 1000 / 3 / (volt * pf[:, None]), 2)
        register += kw * 0.25
        total += len(np.round(register, 3)) + 0 * int(cur[0, 0])
    return total


def paho_publish(port: int, messages: list[tuple[str, str]], inflight: int) -> float:
    """Seconds for a bare paho client to publish ``messages`` with QoS 1, all acknowledged."""
    done = threading.Condition()
    acked = [0]

    def on_publish(client, userdata, mid, reason, properties) -> None:
        with done:
            acked[0] += 1
            done.notify_all()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(inflight)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    sent = 0
    for topic, payload in messages:
        with done:  # the same bounded window as the simulator's target
            while sent - acked[0] >= inflight:
                done.wait(1.0)
        c.publish(topic, payload, qos=1)
        sent += 1
    with done:
        while acked[0] < sent:
            done.wait(1.0)
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours (default 2)")
    ap.add_argument("--batch-size", type=int, default=100, help="readings per MQTT batch")
    ap.add_argument("--single-intervals", type=int, default=1,
                    help="intervals published one reading per message (slow; default 1)")
    args = ap.parse_args()

    fleet = Fleet.load(FLEET, duration=f"{args.hours}h")
    t0 = time.perf_counter()
    sim = Simulation(fleet)
    setup = time.perf_counter() - t0
    n_int = fleet.n_intervals
    print(f"fleet {fleet.name}: {fleet.n_meters:,} meters, {n_int} intervals of "
          f"{fleet.interval_min} min, {fleet.n_readings:,} readings; set-up {setup:.1f} s "
          f"(meters, anomaly plan, BDEW profiles)")
    rows: list[tuple[str, float, float | None]] = []

    t0 = time.perf_counter()
    n = raw_numpy(fleet.n_meters, n_int)
    base_np = rate(n, time.perf_counter() - t0)
    rows.append(("memory: raw numpy arrays (baseline)", base_np, None))

    t0 = time.perf_counter()
    n = sum(len(b) for b in sim.blocks())
    r = rate(n, time.perf_counter() - t0)
    rows.append(("memory: simulator arrays (blocks)", r, r / base_np))

    sink = MemoryTarget()
    t0 = time.perf_counter()
    drain(sim.chunks(), sink, Pacer(None))
    r_json = rate(sink.readings, time.perf_counter() - t0)
    rows.append(("memory: simulator JSON (chunks)", r_json, r_json / base_np))

    dicts = [d for _, chunk in sim.chunks("dict") for *_, d in chunk]
    t0 = time.perf_counter()
    for d in dicts:
        json.dumps(d, separators=(",", ":"))
    base_dumps = rate(len(dicts), time.perf_counter() - t0)
    rows.append(("memory: json.dumps of ready dicts (baseline)", base_dumps, None))
    rows.append(("  simulator JSON ÷ json.dumps alone", r_json, r_json / base_dumps))
    del dicts

    readings, _ = fleet.generate()
    t0 = time.perf_counter()
    n = sum(1 for _ in readings)
    r = rate(n, time.perf_counter() - t0)
    rows.append(("memory: Reading objects (generate)", r, r / base_np))

    with tempfile.TemporaryDirectory() as tmp:
        broker = _services.mosquitto(Path(tmp) / "mosquitto").start()
        try:
            for batch, intervals in ((args.batch_size, n_int),
                                     (1, min(args.single_intervals, n_int))):
                part = Fleet.load(FLEET, duration=f"{intervals * fleet.interval_min}min")
                psim = Simulation(part, meters=sim.meters)
                cap = CapturedMqtt(batch)
                for _, chunk in psim.chunks():
                    cap.write(chunk)
                inflight = 100
                base = rate(part.n_readings,
                            paho_publish(broker.port, cap.captured, inflight))
                del cap
                target = MqttTarget("127.0.0.1", broker.port, qos=1, batch_size=batch,
                                    max_pending=inflight, client_id="bench-sim")
                t0 = time.perf_counter()
                n, msgs = drain(psim.chunks(), target, Pacer(None))
                target.close()
                r = rate(n, time.perf_counter() - t0)
                shape = "single readings" if batch == 1 else f"batches of {batch}"
                rows.append((f"MQTT QoS 1, {shape}: bare paho, same payloads (baseline)",
                             base, None))
                rows.append((f"MQTT QoS 1, {shape}: simulator ({msgs:,} messages)", r,
                             r / base))
        finally:
            broker.stop()

    width = max(len(name) for name, _, _ in rows)
    print(f"\n{'':{width}}  {'readings/s':>12}  {'ratio':>6}")
    for name, value, ratio in rows:
        shown = f"{ratio:6.2f}" if ratio is not None else "     –"
        print(f"{name:{width}}  {value:12,.0f}  {shown}")


if __name__ == "__main__":
    main()
