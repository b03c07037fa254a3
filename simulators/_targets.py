"""Where simulated or replayed readings go: MQTT, CSV or JSONL files; and how fast.

A target takes rows ``(region, concentrator_id, meter_id, reading)`` where the reading is the
wire form ``Reading.to_json_dict()`` as a dict or already as compact JSON text; the same rows in
the same order give the same bytes. A chunk may instead be a :class:`DeviceBatch` of device
telemetry ``(site, device_id, payload)``: the MQTT target publishes it on the collector's
telemetry topic, the JSONL target writes it as lines with ``device_id``, the CSV target (meter
columns only) leaves it out.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gridwatch.ingest._config import TlsSettings

Row = tuple[str, str, str, "str | dict[str, Any]"]
_SEP = (",", ":")

log = logging.getLogger("gridwatch.simulators")


def as_text(payload: str | dict[str, Any]) -> str:
    """Compact JSON of a reading (text passes through)."""
    return payload if isinstance(payload, str) else json.dumps(payload, separators=_SEP)


def as_dict(payload: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(payload) if isinstance(payload, str) else payload


class DeviceBatch(list[tuple[str, str, "str | dict[str, Any]"]]):
    """One interval's device telemetry as ``(site, device_id, payload)`` rows; the payload is
    the telemetry's wire form (with ``device_id`` and ``ts``) as a dict or compact JSON."""


class SimulateError(RuntimeError):
    """A target cannot take the readings (broker unreachable, file not writable, ...)."""


class SimulateRefusedError(SimulateError):
    """The broker refused the simulator's login: a configuration error (exit code 2)."""


def parse_speed(value: str | float | None) -> float | None:
    """``realtime`` → 1, ``x60``/``60x``/``60`` → 60, ``max`` → None (as fast as possible)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        speed = float(value)
    else:
        text = value.strip().lower()
        if text in ("max", "fast", "asap"):
            return None
        if text in ("realtime", "real-time", "real", "1x", "x1"):
            return 1.0
        try:
            speed = float(text.strip("x"))
        except ValueError:
            raise ValueError(
                f"speed {value!r}: use realtime, xN (for example x60) or max") from None
    if not speed > 0:
        raise ValueError(f"speed {value!r} must be positive")
    return speed


class Pacer:
    """Holds simulated time to wall time: real time (speed 1), accelerated (speed N), or not
    at all (speed None). The clock and sleep are parameters so tests can drive them."""

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._origin: tuple[datetime, float] | None = None

    def wait(self, sim_ts: datetime) -> float:
        """Sleep until ``sim_ts`` is due; returns the seconds slept."""
        if self.speed is None:
            return 0.0
        if self._origin is None:
            self._origin = (sim_ts, self.clock())
            return 0.0
        t0, w0 = self._origin
        due = w0 + (sim_ts - t0).total_seconds() / self.speed
        delay = due - self.clock()
        if delay > 0:
            self.sleep(delay)
            return delay
        return 0.0


class RateLimit:
    """At most ``rate`` events per second (None: no limit)."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0

    def take(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self._next > now:
            self.sleep(self._next - now)
            now = self._next
        self._next = max(self._next, now) + self.interval


class Target(Protocol):
    """Somewhere readings go."""

    def write(self, rows: Sequence[Row]) -> int:
        """Send or store the rows; returns the number of messages (lines, MQTT messages)."""
        ...

    def close(self) -> None: ...


@dataclass
class MemoryTarget:
    """Keeps nothing but counts; the ``to memory`` case of the benchmark."""

    readings: int = 0
    keep: bool = False
    rows: list[Row] = field(default_factory=list)
    #: Device telemetry messages seen.
    telemetry: int = 0

    def write(self, rows: Sequence[Row]) -> int:
        if isinstance(rows, DeviceBatch):
            self.telemetry += len(rows)
            return len(rows)
        self.readings += len(rows)
        if self.keep:
            self.rows.extend(rows)
        return len(rows)

    def close(self) -> None:
        pass


class _FileTarget:
    """A text file the target opens (a ``Path``: created, closed at the end) or a stream it is
    handed (flushed at the end, left open)."""

    _newline = "\n"

    def __init__(self, out: Path | IO[str]) -> None:
        if isinstance(out, Path):
            out.parent.mkdir(parents=True, exist_ok=True)
            # ``.gz``: gzip-compressed text (``readings.csv.gz``), same bytes for the same rows
            self._fh: IO[str] = (
                io.TextIOWrapper(gzip.GzipFile(out, "wb", mtime=0), encoding="utf-8",
                                 newline=self._newline)
                if out.suffix.lower() == ".gz"
                else out.open("w", encoding="utf-8", newline=self._newline))
            self._own = True
        else:
            self._fh, self._own = out, False

    def close(self) -> None:
        if self._own:
            self._fh.close()
        else:
            self._fh.flush()


class JsonlTarget(_FileTarget):
    """One reading per line, in the wire form (``Reading.to_json_dict()``)."""

    def write(self, rows: Sequence[Row]) -> int:
        if isinstance(rows, DeviceBatch):
            self._fh.write("".join(as_text(d) + "\n" for _, _, d in rows))
            return len(rows)
        self._fh.write("".join(as_text(d) + "\n" for _, _, _, d in rows))
        return len(rows)


CSV_COLUMNS = ("meter_id", "timestamp", "kw", "kwh", "voltage", "pf")


class CsvTarget(_FileTarget):
    """``meter_id,timestamp,kw,kwh,voltage,pf``; voltage is the mean over the meter's phases."""

    _newline = ""  # the csv module writes the line ends

    def __init__(self, out: Path | IO[str]) -> None:
        super().__init__(out)
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._csv.writerow(CSV_COLUMNS)

    def write(self, rows: Sequence[Row]) -> int:
        if isinstance(rows, DeviceBatch):
            return 0  # meter columns only: device telemetry has no place here
        out = []
        for *_, payload in rows:
            d = as_dict(payload)
            v = d.get("voltage")
            out.append((d["meter_id"], d["ts"], d["kw"], d.get("kwh", ""),
                        round(sum(v) / len(v), 1) if v else "", d.get("pf", "")))
        self._csv.writerows(out)
        return len(rows)


def _use_tls(client: Any, tls: TlsSettings) -> None:
    """TLS as the ``mqtt.tls`` settings say (the same rules as the collector's)."""
    import ssl

    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None and not Path(path).is_file():
            raise SimulateError(f"mqtt.tls.{name}: no such file {path}")
    if (tls.cert_file is None) != (tls.key_file is None):
        raise SimulateError("mqtt.tls.cert_file and mqtt.tls.key_file go together")
    client.tls_set(
        ca_certs=str(tls.ca_file) if tls.ca_file else None,
        certfile=str(tls.cert_file) if tls.cert_file else None,
        keyfile=str(tls.key_file) if tls.key_file else None,
        cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED)
    if tls.insecure_skip_verify:
        client.tls_insecure_set(True)


class MqttTarget:
    """Publishes with paho-mqtt 2.x over MQTT v5.

    ``batch_size`` 1 sends each reading to ``meters/{region}/{meter_id}/reading``; larger sends
    JSON arrays of up to ``batch_size`` readings per concentrator to
    ``meters/{region}/{concentrator_id}/batch``; device telemetry (a :class:`DeviceBatch`) goes
    one message per device to ``devices/{site}/{device_id}/telemetry``. ``rate`` caps messages
    per second. At most ``max_pending`` messages wait for the broker (QoS 1: its PUBACK) before
    ``write`` blocks, so memory stays bounded however fast the generator is. ``tls`` is the
    ``mqtt.tls`` settings section (CA, client certificate, or no verification).

    A broker restart does not end the run: the client reconnects in the background (1 s, then
    up to ``reconnect_max_s`` between attempts) and sends again, with the DUP flag, every QoS 1
    message the broker had not acknowledged, so nothing is lost and nothing is sent twice
    beyond what a lost acknowledgement makes the broker see twice. ``reconnects`` and
    ``resent`` say what happened; a broker down for longer than ``give_up_s`` (or refusing the
    login) ends the run with :class:`SimulateError`. ``clock`` (steady seconds, the real one by
    default) times the outage and ``flush``'s wait.
    """

    def __init__(self, host: str, port: int, *, qos: int = 1, batch_size: int = 1,
                 rate: float | None = None, client_id: str = "gridwatch-simulator",
                 username: str | None = None, password: str | None = None,
                 topic_prefix: str = "meters", device_prefix: str = "devices",
                 max_pending: int = 100,
                 connect_timeout: float = 10.0, tls: TlsSettings | None = None,
                 reconnect_max_s: float = 5.0, give_up_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import paho.mqtt.client as mqtt

        if qos not in (0, 1):
            raise ValueError(f"qos {qos}: the simulator publishes with QoS 0 or 1")
        if batch_size < 1:
            raise ValueError(f"batch size {batch_size} must be at least 1")
        self.qos, self.batch_size, self.prefix = qos, batch_size, topic_prefix
        self.device_prefix = device_prefix
        self.limit = RateLimit(rate)
        self.max_pending = max_pending
        self.messages = 0
        self._acked = 0
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._error: str | None = None
        self.where = f"{host}:{port}"
        #: Times the connection came back after it was lost, and messages sent again then.
        self.reconnects = 0
        self.resent = 0
        self._connects = 0
        self._down_since: float | None = None
        self.give_up_s = give_up_s
        self.clock = clock
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        if username:
            client.username_pw_set(username, password)
        if tls is not None and tls.enabled:
            _use_tls(client, tls)
        client.max_inflight_messages_set(max(20, min(max_pending, 1000)))
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, max(1, int(reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.client = client
        try:
            client.connect(host, port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise SimulateError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None
        client.loop_start()
        if not self._connected.wait(connect_timeout) or self._error:
            client.loop_stop()
            if self._error:
                raise SimulateRefusedError(f"MQTT: {self._error}")
            raise SimulateError(f"MQTT broker at {host}:{port}: no CONNACK in time")

    @property
    def down_since(self) -> float | None:
        """When the broker was lost, by ``clock``; None while connected."""
        return self._down_since

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._error = f"broker at {self.where} refused the connection: {reason}"
            with self._cond:
                self._cond.notify_all()
        else:
            self._connects += 1
            if self._connects > 1:
                self.reconnects += 1
                with self._cond:
                    self.resent += self.messages - self._acked
                log.warning("MQTT: reconnected to %s; %d unacknowledged message(s) sent again",
                            self.where, self.messages - self._acked)
            self._down_since = None
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if reason.is_failure:
            # The network thread reconnects by itself; messages wait in the client meanwhile.
            if self._down_since is None:
                self._down_since = self.clock()
                log.warning("MQTT: lost the broker at %s (%s); reconnecting", self.where,
                            reason)
            with self._cond:
                self._cond.notify_all()

    def _check_down(self) -> None:
        """Give up when the broker has been gone for longer than ``give_up_s``."""
        since = self._down_since
        if since is not None and self.clock() - since > self.give_up_s:
            self._error = (f"the broker at {self.where} has been unreachable for "
                           f"{self.give_up_s:.0f}s")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    def _publish(self, topic: str, payload: str) -> None:
        self.limit.take()
        with self._cond:
            while self.messages - self._acked >= self.max_pending and not self._error:
                self._cond.wait(1.0)
                self._check_down()
        if self._error:
            raise SimulateError(f"MQTT: {self._error}")
        import paho.mqtt.client as mqtt

        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc and not (info.rc == mqtt.MQTT_ERR_NO_CONN and self.qos > 0):
            # While disconnected a QoS 1 message waits in the client and goes out on reconnect.
            raise SimulateError(f"MQTT publish to {topic} failed with code {info.rc}")
        with self._cond:
            self.messages += 1

    def write(self, rows: Sequence[Row]) -> int:
        before = self.messages
        if isinstance(rows, DeviceBatch):
            for site, device_id, d in rows:
                self._publish(f"{self.device_prefix}/{site}/{device_id}/telemetry", as_text(d))
            return self.messages - before
        if self.batch_size == 1:
            for region, _, meter_id, d in rows:
                self._publish(f"{self.prefix}/{region}/{meter_id}/reading", as_text(d))
            return self.messages - before
        groups: dict[tuple[str, str], list[str]] = {}
        for region, conc, _, d in rows:
            groups.setdefault((region, conc), []).append(as_text(d))
        for (region, conc), items in groups.items():
            for j in range(0, len(items), self.batch_size):
                self._publish(f"{self.prefix}/{region}/{conc}/batch",
                              "[" + ",".join(items[j:j + self.batch_size]) + "]")
        return self.messages - before

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the broker has every message (QoS 1: acknowledged); by default as long
        as a broker outage is waited out, and a minute more."""
        deadline = self.clock() + (timeout if timeout is not None else self.give_up_s + 60)
        with self._cond:
            while self._acked < self.messages and not self._error:
                self._check_down()
                if self._error:
                    break  # given up on the broker: that, not the wait, is the error
                left = deadline - self.clock()
                if left <= 0:
                    raise SimulateError(
                        f"MQTT: {self.messages - self._acked} message(s) not acknowledged "
                        f"after {timeout}s")
                self._cond.wait(min(left, 1.0))
        if self._error:
            raise SimulateError(f"MQTT: {self._error}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


class CapturedMqtt(MqttTarget):
    """The MQTT target's topics and payloads, collected instead of published (no broker): for
    checking what would be sent and for timing payload building on its own."""

    def __init__(self, batch_size: int = 1, prefix: str = "meters",
                 device_prefix: str = "devices") -> None:
        self.batch_size, self.prefix, self.messages = batch_size, prefix, 0
        self.device_prefix = device_prefix
        self.captured: list[tuple[str, str]] = []

    def _publish(self, topic: str, payload: str) -> None:
        self.captured.append((topic, payload))
        self.messages += 1

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def open_target(kind: str, *, out: Path | None = None, host: str = "127.0.0.1",
                port: int = 1883, **mqtt_options: Any) -> Target:
    """A target by name: ``mqtt``, ``csv``, ``jsonl`` or ``memory``."""
    if kind == "mqtt":
        return MqttTarget(host, port, **mqtt_options)
    if kind in ("csv", "jsonl"):
        if out is None:
            raise ValueError(f"target {kind} needs an output file (--out)")
        return CsvTarget(out) if kind == "csv" else JsonlTarget(out)
    if kind == "memory":
        return MemoryTarget()
    raise ValueError(f"unknown target {kind!r} (choose mqtt, csv, jsonl or memory)")


def drain(chunks: Iterable[tuple[datetime, Sequence[Row]]], target: Target, pacer: Pacer,
          on_progress: Callable[[int, int, datetime], None] | None = None) -> tuple[int, int]:
    """Send time-ordered chunks to a target at the pacer's speed; returns (readings,
    messages). ``on_progress(readings, messages, sim_ts)`` is called after every chunk. Device
    telemetry (a :class:`DeviceBatch` chunk) is sent but not counted among the readings."""
    readings = messages = 0
    for ts, rows in chunks:
        pacer.wait(ts)
        messages += target.write(rows)
        n = 0 if isinstance(rows, DeviceBatch) else len(rows)
        readings += n
        if on_progress:
            on_progress(n, messages, ts)
    return readings, messages
