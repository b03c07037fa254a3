"""Readings per second into the journal, beside raw paho + mosquitto receive, as a ratio.

For each payload shape (one reading per message; 100-reading batches) the same messages are
queued at a private mosquitto for a persistent QoS 1 session, then received:

* baseline: a bare paho MQTT v5 client that only counts messages (auto-acknowledged);
* collector: :class:`gridwatch.ingest.Collector`: decode, validate, duplicate check, journal
  append + fsync per batch of messages, then the manual acknowledgement.

Usage: ``python benchmarks/ingest.py`` (about a minute) or ``--full`` (10x the readings).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry

from gridwatch import _services
from gridwatch._settings import Settings
from gridwatch.ingest import Collector
from gridwatch.ingest._config import IngestSettings, MqttSettings

BASE = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
METERS = 5000


def _doc(i: int) -> dict:
    ts = BASE + (i // METERS) * timedelta(minutes=1)
    return {"meter_id": f"m{i % METERS}", "ts": ts.isoformat().replace("+00:00", "Z"),
            "kw": round((i % 977) * 0.25, 2), "kwh": 1000.0 + i, "voltage": 230.1, "pf": 0.97}


def messages(n_readings: int, per_msg: int) -> list[tuple[str, bytes]]:
    out = []
    for start in range(0, n_readings, per_msg):
        docs = [_doc(i) for i in range(start, start + per_msg)]
        if per_msg == 1:
            out.append((f"meters/north/{docs[0]['meter_id']}/reading", json.dumps(docs[0])
                        .encode()))
        else:
            out.append((f"meters/north/c{start % 13}/batch", json.dumps(docs).encode()))
    return out


def publish(port: int, msgs: list[tuple[str, bytes]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1) for t, p in msgs]
    for info in infos:
        info.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()


def _session_client(port: int, cid: str) -> tuple[mqtt.Client, Properties]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = MqttSettings().receive_maximum  # as the collector's
    return c, props


def raw_receive(port: int, msgs: list[tuple[str, bytes]], cid: str) -> float:
    """Seconds for a bare paho client to receive ``msgs`` queued for its session."""
    subscribed = threading.Event()
    c, props = _session_client(port, cid)
    c.on_connect = lambda cl, *_: cl.subscribe([("meters/+/+/reading", 1),
                                                ("meters/+/+/batch", 1)])
    c.on_subscribe = lambda *_: subscribed.set()
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    publish(port, msgs)
    done = threading.Event()
    count = [0]

    def on_message(_c: object, _u: object, _m: object) -> None:
        count[0] += 1
        if count[0] >= len(msgs):
            done.set()

    c, props = _session_client(port, cid)
    c.on_message = on_message
    t0 = time.perf_counter()
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"raw client received {count[0]} of {len(msgs)}")
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return elapsed


def collector_receive(port: int, msgs: list[tuple[str, bytes]], n_readings: int,
                      work: Path, cid: str) -> float:
    """Seconds for a collector to journal every reading of ``msgs`` queued for its session."""
    settings = Settings(
        mqtt=MqttSettings(port=port, client_id=cid),
        ingest=IngestSettings(journal_dir=work / "journal", deadletter_dir=work / "dead"),
    )
    first = Collector(settings, registry=CollectorRegistry()).start()
    first.wait_ready(10)  # creates the persistent session and its subscriptions
    first.stop()
    publish(port, msgs)
    c = Collector(settings, registry=CollectorRegistry())
    t0 = time.perf_counter()
    c.start()
    deadline = t0 + 600
    while c.stats.accepted + c.stats.deadlettered_total < n_readings:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"collector journaled {c.stats.accepted} of {n_readings}")
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    stats = c.stats
    c.stop()
    if stats.accepted != n_readings:
        raise RuntimeError(f"expected {n_readings} accepted, got {stats}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="10x the readings")
    args = ap.parse_args()
    scale = 10 if args.full else 1
    shapes = [("single reading / message", 20_000 * scale, 1),
              ("100-reading batch / message", 200_000 * scale, 100)]
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-") as tmp:
        work = Path(tmp)
        broker = _services.mosquitto(work / "mosquitto").start()
        try:
            print(f"{'payload':<30}{'readings':>10}{'raw paho r/s':>16}"
                  f"{'collector r/s':>16}{'ratio':>8}")
            for k, (label, n, per_msg) in enumerate(shapes):
                msgs = messages(n, per_msg)
                raw_s = raw_receive(broker.port, msgs, f"bench-raw-{k}")
                col_s = collector_receive(broker.port, msgs, n, work / f"run{k}",
                                          f"bench-col-{k}")
                raw_rate, col_rate = n / raw_s, n / col_s
                print(f"{label:<30}{n:>10,}{raw_rate:>16,.0f}{col_rate:>16,.0f}"
                      f"{col_rate / raw_rate:>8.2f}")
        finally:
            broker.stop()
    print("collector = decode + validate + duplicate check + journal append with fsync per "
          "batch of messages + manual PUBACK; raw = paho receive and count only")


if __name__ == "__main__":
    main()
