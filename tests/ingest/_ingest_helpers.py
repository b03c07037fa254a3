"""Helpers of the ingest tests: settings for a private broker, a QoS 1 publisher, readings with
known identities, and reading everything back from a journal."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch import MeterStatus
from gridwatch._settings import Settings
from gridwatch.ingest import Journal, decode_record, journal_partitions
from gridwatch.ingest._config import IngestSettings, MqttSettings, TopicSettings

INTERVAL = timedelta(minutes=15)


def make_settings(port: int, tmp: Path, *, client_id: str = "gw-test", mqtt_extra: Any = None,
                  **ingest: Any) -> Settings:
    mqtt_kw: dict[str, Any] = {"host": "127.0.0.1", "port": port, "client_id": client_id,
                               "reconnect_min_s": 1, "reconnect_max_s": 2}
    mqtt_kw.update(mqtt_extra or {})
    ing: dict[str, Any] = {"journal_dir": tmp / "journal", "deadletter_dir": tmp / "dead",
                           "fsync_every_ms": 5}
    ing.update(ingest)
    return Settings(mqtt=MqttSettings(**mqtt_kw), topics=TopicSettings(),
                    ingest=IngestSettings(**ing))


def reading_doc(i: int, *, meters: int = 1000, base: datetime | None = None) -> dict[str, Any]:
    """The i-th test reading: meter ``m<i % meters>``, timestamps increasing per meter."""
    base = base or BASE
    return {"meter_id": f"m{i % meters}", "ts": (base + (i // meters) * INTERVAL)
            .isoformat().replace("+00:00", "Z"), "kw": round((i % 977) * 0.25, 2)}


# Two days back: recent enough for every check, and the newest of 100,000 readings over 1,000
# meters (25 h later) still lies in the past.
BASE = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


def mixed_messages(start: int, n_single: int, n_batches: int, batch_size: int = 100,
                   meters: int = 1000) -> Iterator[tuple[str, bytes, list[tuple[str, str]]]]:
    """Single-reading and batch messages interleaved, covering readings ``start`` ... onwards
    in order; yields ``(topic, payload, keys)`` with the (meter_id, ts) keys each carries."""
    i = start
    singles_left, batches_left = n_single, n_batches
    every = max(1, n_single // max(1, n_batches))
    k = 0
    while singles_left or batches_left:
        if batches_left and (k % (every + 1) == every or not singles_left):
            docs = [reading_doc(j, meters=meters) for j in range(i, i + batch_size)]
            i += batch_size
            batches_left -= 1
            yield (f"meters/north/c{k % 7}/batch", json.dumps(docs).encode(),
                   [(d["meter_id"], d["ts"]) for d in docs])
        else:
            d = reading_doc(i, meters=meters)
            i += 1
            singles_left -= 1
            yield (f"meters/north/{d['meter_id']}/reading", json.dumps(d).encode(),
                   [(d["meter_id"], d["ts"])])
        k += 1


class Publisher:
    """A QoS 1 MQTT v5 publisher that reconnects by itself and can wait for every PUBACK."""

    def __init__(self, port: int, client_id: str = "test-publisher", *,
                 username: str | None = None, password: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=qos))

    def publish_all(self, msgs: Iterable[tuple[str, bytes, Any]], pause_every: int = 0,
                    pause: float = 0.0) -> None:
        for n, (topic, payload, _keys) in enumerate(msgs, 1):
            self.publish(topic, payload)
            if pause_every and n % pause_every == 0:
                time.sleep(pause)

    def wait_all(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            # Not is_published(): it raises for a message published while the broker was away,
            # which paho keeps and sends on reconnect; _published is set by its PUBACK.
            while not info._published:
                assert time.monotonic() < deadline, "broker did not acknowledge every publish"
                time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def journal_keys(journal_dir: Path) -> list[tuple[str, str]]:
    """(meter_id, ts) of every reading in every partition of a journal, in journal order."""
    out: list[tuple[str, str]] = []
    for part in journal_partitions(journal_dir):
        with Journal(journal_dir, part, readonly=True) as j:
            off = j.start_offset
            while batch := j.read(off, 20_000):
                for o, data in batch:
                    for item in decode_record(data):
                        out.append((item.meter_id, item.ts.isoformat().replace("+00:00", "Z")))
                    off = o + 1
    return out


def journal_end(journal_dir: Path) -> int:
    total = 0
    for part in journal_partitions(journal_dir):
        with Journal(journal_dir, part, readonly=True) as j:
            total += j.end_offset
    return total


class Listener:
    """Subscribes to a topic and keeps what arrives (for the dead-letter topic)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{time.time()}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "listener did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(msg.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- readings in the compact JSON form, at and beyond every bound (property tests) ---------
edge_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-100_000.0, 100_000.0, -100_000.00000001, 1e12, 1e12 + 1e-3, 0.0, -0.0, 500_000.0,
     1.0, -1.0, 40.0, 70.0, 5e-324])
compact_stamps = st.builds(
    lambda d, digits, z: d.strftime("%Y-%m-%dT%H:%M:%S")
    + (f".{d.microsecond:06d}"[:digits + 1] if digits else "") + z,
    st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2026, 3, 1)),
    st.integers(0, 6), st.sampled_from(["Z", "+00:00", "-00:00", "+05:45", "-01:00", "+14:00"]))
lone_or_phases = (st.none() | edge_floats | st.integers(-1, 600)
                   | st.lists(edge_floats | st.integers(0, 500), min_size=1, max_size=3))
compact_docs = st.fixed_dictionaries(
    {"meter_id": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,8}\Z"), "ts": compact_stamps,
     "kw": edge_floats | st.integers(-200_000, 200_000)},
    optional={"kwh": st.none() | edge_floats, "export_kwh": st.none() | edge_floats,
              "voltage": lone_or_phases, "current": lone_or_phases,
              "pf": st.none() | edge_floats, "freq": st.none() | edge_floats,
              "status": st.lists(st.sampled_from([s.value for s in MeterStatus]), max_size=3),
              "interval_s": st.none() | st.integers(-5, 90_000)})
