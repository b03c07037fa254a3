"""The MQTT collector: subscribe, decode, journal, then acknowledge.

paho's network thread only puts each message on a queue. A writer thread takes what has
arrived (up to ``ingest.fsync_every_messages`` messages, waiting at most
``ingest.fsync_every_ms`` for more), decodes it, appends the accepted items to the journal and
the rejections to the dead letters (one fsync each), and only then sends the PUBACKs. A crash
before the acknowledgement makes the broker deliver the message again (persistent session,
``clean_start=False``); the decoder, warmed up from the journal's tail at start-up, then rejects
the copies as duplicates, so each reading lands in the journal once.

An acknowledgement is only sent on the connection the message came in on: after a reconnect the
broker redelivers what was not acknowledged, and a packet id of the old connection could name
another message on the new one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import queue
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import CollectorRegistry

from gridwatch.ingest._deadletter import DeadLetter, DeadLetters
from gridwatch.ingest._decode import INTERNAL_ERROR, Decoder, DecodeResult, Rejection
from gridwatch.ingest._journal import Journal, encode_items
from gridwatch.ingest._metrics import IngestMetrics

if TYPE_CHECKING:
    from gridwatch._settings import Settings

__all__ = ["Collector", "CollectorError", "CollectorStats", "ConnectError", "mqtt_password"]

log = logging.getLogger("gridwatch.ingest.collector")

#: Dead letters published to the topic carry at most this much of the payload.
_PUBLISHED_PAYLOAD_MAX = 65_536

#: CONNACK reason codes that retrying cannot fix (MQTT v5 §3.2.2.2): client identifier not
#: valid, bad user name or password, not authorized, banned.
_FATAL_CONNACK = frozenset({133, 134, 135, 138})

#: Write errors that pass once an operator frees space: the writer waits and retries.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

#: Seconds between attempts to write while the disk is full.
_DISK_FULL_RETRY_S = 1.0


class _Abandoned(Exception):
    """The collector was stopped while the disk was full; nothing of the batch was acked."""


class CollectorError(RuntimeError):
    """The collector cannot go on (bad settings, an unwritable journal)."""


class ConnectError(CollectorError):
    """The broker cannot be reached or refused the connection; the message says why."""


@dataclass(frozen=True)
class CollectorStats:
    received: int = 0
    accepted: int = 0
    deadlettered: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    #: Messages not acknowledged because their connection was gone; the broker redelivers them.
    unacked_stale: int = 0
    connects: int = 0
    connected: bool = False
    journal_end_offset: int = 0
    last_error: str | None = None

    @property
    def deadlettered_total(self) -> int:
        return sum(self.deadlettered.values())


@dataclass(slots=True)
class _Msg:
    gen: int
    mid: int
    qos: int
    topic: str
    payload: bytes


def mqtt_password(settings: Settings) -> str | None:
    """The broker password: ``mqtt.password`` (set it with ``GRIDWATCH_MQTT__PASSWORD``), else
    the first line of ``mqtt.password_file``."""
    m = settings.mqtt
    if m.password is not None:
        return m.password.get_secret_value()
    if m.password_file is not None:
        try:
            text = Path(m.password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CollectorError(
                f"mqtt.password_file {m.password_file}: cannot read: {exc.strerror or exc}"
            ) from None
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            raise CollectorError(f"mqtt.password_file {m.password_file} is empty")
        return lines[0].strip()
    return None


def client_id_for(settings: Settings, partition: int) -> str:
    """``mqtt.client_id`` with ``{partition}`` filled in; without the placeholder, partitions
    other than 0 get ``-p<partition>`` appended. The id depends only on the settings and the
    partition, so a restarted collector finds its session again, and the collectors of a
    shared subscription never share an id."""
    cid = settings.mqtt.client_id
    if "{partition}" in cid:
        return cid.replace("{partition}", str(partition))
    return f"{cid}-p{partition}" if partition else cid


class Collector:
    """One MQTT collector writing one journal partition."""

    def __init__(
        self,
        settings: Settings,
        partition: int | None = None,
        *,
        metrics: IngestMetrics | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.partition = settings.ingest.partition if partition is None else partition
        self.client_id = client_id_for(settings, self.partition)
        self.metrics = metrics or IngestMetrics(registry)
        self._label = str(self.partition)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: queue.SimpleQueue[_Msg] = queue.SimpleQueue()
        self._gen = 0
        self._gen_lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._failed = threading.Event()
        self._stop_writer = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._received = 0
        self._accepted = 0
        self._acked = 0
        self._stale = 0
        self._connects = 0
        self._dead: Counter[str] = Counter()
        self._error: str | None = None
        self._fatal: str | None = None
        self._retention_checked = time.monotonic()
        self._client: mqtt.Client | None = None
        self._writer: threading.Thread | None = None
        self.journal: Journal | None = None
        self.deadletters: DeadLetters | None = None
        #: This collector's own topics (``topics.regions`` resolved for its partition).
        try:
            self.topics = settings.topics.for_process(self.partition)
        except ValueError as exc:
            raise CollectorError(str(exc)) from None
        self.decoder = Decoder(self.topics, settings.ingest)

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> Collector:
        """Open the journal, warm the duplicate memory, connect (in the background) and start
        the writer thread. Returns at once; see :meth:`wait_ready`."""
        ing = self.settings.ingest
        retention = ing.retention_hours * 3600
        client = self._make_client()  # bad TLS or password settings fail before any file opens
        if self.partition and not self.settings.mqtt.shared_group:
            log.warning("partition %d without mqtt.shared_group: this collector receives every "
                        "message, as the others do", self.partition)
        try:
            self.journal = Journal(
                ing.journal_dir, self.partition, segment_bytes=ing.segment_bytes,
                retention_bytes=ing.retention_bytes, retention=retention,
                segment_age=ing.segment_hours * 3600,
            )
            self.deadletters = DeadLetters(
                ing.deadletter_dir, self.partition, segment_bytes=ing.segment_bytes,
                retention_bytes=ing.retention_bytes, retention=retention,
                segment_age=ing.segment_hours * 3600,
            )
            self._warm_up()
        except BaseException:
            for store in (self.journal, self.deadletters):
                if store is not None:
                    store.close()
            raise
        self._update_journal_metrics()
        self._client = client
        self._writer = threading.Thread(
            target=self._write_loop, name=f"gridwatch-journal-writer-{self.partition}",
            daemon=True,
        )
        self._writer.start()
        m = self.settings.mqtt
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = m.session_expiry_s
        props.ReceiveMaximum = m.receive_maximum
        self._client.connect_async(m.host, m.port, keepalive=m.keepalive_s, clean_start=False,
                                   properties=props)
        self._client.loop_start()
        return self

    def _make_client(self) -> mqtt.Client:
        m = self.settings.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
            manual_ack=True, reconnect_on_failure=True,
        )
        client.reconnect_delay_set(m.reconnect_min_s, max(m.reconnect_min_s, m.reconnect_max_s))
        client.max_queued_messages_set(0)
        if m.username is not None:
            client.username_pw_set(m.username, mqtt_password(self.settings))
        elif m.password is not None or m.password_file is not None:
            raise CollectorError("a broker password is set but mqtt.username is not")
        if m.tls.enabled:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(m.tls, name)
                if path is not None and not Path(path).is_file():
                    raise CollectorError(f"mqtt.tls.{name}: no such file {path}")
            if (m.tls.cert_file is None) != (m.tls.key_file is None):
                raise CollectorError("mqtt.tls.cert_file and mqtt.tls.key_file go together")
            client.tls_set(
                ca_certs=str(m.tls.ca_file) if m.tls.ca_file else None,
                certfile=str(m.tls.cert_file) if m.tls.cert_file else None,
                keyfile=str(m.tls.key_file) if m.tls.key_file else None,
                cert_reqs=ssl.CERT_NONE if m.tls.insecure_skip_verify else ssl.CERT_REQUIRED,
            )
            if m.tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _warm_up(self) -> None:
        """Teach the decoder the last ``ingest.dedup_warm_records`` readings journaled, so
        redeliveries are duplicates. A record holds one reading, or a message's batch of
        them; the records that hold that many readings are found from the end back (their
        meter ids counted in the bytes, nothing parsed), then read in order."""
        assert self.journal is not None
        want = self.settings.ingest.dedup_warm_records
        start, end = self.journal.start_offset, self.journal.end_offset
        offset, have = end, 0
        while offset > start and have < want:
            back = max(start, offset - 8_192)
            got = self.journal.read(back, offset - back)
            if not got:
                break
            for off, data in reversed(got):
                offset = off
                have += data.count(b'"meter_id"')
                if have >= want:
                    break
        while offset < end:
            batch = self.journal.read(offset, 10_000)
            if not batch:
                break
            for off, data in batch:
                # Only the keys are needed: cheaper than validating the records again.
                with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                    doc = json.loads(data)
                    for one in doc if isinstance(doc, list) else (doc,):
                        if "meter_id" in one:
                            self.decoder.remember_key(one["meter_id"],
                                                      datetime.fromisoformat(one["ts"]))
                offset = off + 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until connected and subscribed; raise :class:`ConnectError` naming the cause
        when the broker refuses the connection or cannot be reached in ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._fatal:
                raise ConnectError(self._fatal)
            if self._subscribed.wait(0.05):
                return
        raise ConnectError(
            f"not connected to {self.settings.mqtt.host}:{self.settings.mqtt.port} after "
            f"{timeout:.0f}s: {self._error or 'no answer from the broker'}"
        )

    @property
    def failed(self) -> str | None:
        """Why the collector stopped on its own (refused credentials, journal write error)."""
        return self._fatal

    def stop(self, timeout: float = 10.0) -> None:
        """Journal and acknowledge what has arrived, then disconnect (the broker keeps the
        session) and close the journal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._failed.is_set():
            if self._queue.empty() and self._idle.is_set():
                break
            time.sleep(0.01)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.disconnect()
            self._client.loop_stop()
        self._stop_writer.set()
        if self._writer is not None:
            self._writer.join(timeout)
        if self.journal is not None:
            self.journal.close()
        if self.deadletters is not None:
            self.deadletters.close()
        self.metrics.connected.labels(self._label).set(0)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stats(self) -> CollectorStats:
        return CollectorStats(
            received=self._received, accepted=self._accepted, deadlettered=dict(self._dead),
            acked=self._acked, unacked_stale=self._stale, connects=self._connects,
            connected=self._connected.is_set(),
            journal_end_offset=self.journal.end_offset if self.journal else 0,
            last_error=self._fatal or self._error,
        )

    # -- paho callbacks (network thread: no slow work here) ---------------------------------
    def _subscriptions(self) -> list[tuple[str, SubscribeOptions]]:
        t = self.topics
        group = self.settings.mqtt.shared_group
        # Retained messages only on a new subscription: resubscribing after every reconnect
        # must not deliver them again.
        opts = SubscribeOptions(qos=self.settings.mqtt.qos,
                                retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        out = []
        for flt in dict.fromkeys((*t.reading_filters, *t.batch_filters, t.telemetry)):
            out.append((f"$share/{group}/{flt}" if group else flt, opts))
        return out

    def _on_connect(self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags,
                    reason: object, _props: object) -> None:
        code = getattr(reason, "value", 0)
        if getattr(reason, "is_failure", False):
            m = self.settings.mqtt
            why = f"broker {m.host}:{m.port} refused the connection: {reason}"
            if code in (134, 135):
                why += (f" (user {m.username!r}; check mqtt.username and the password from "
                        f"GRIDWATCH_MQTT__PASSWORD or mqtt.password_file)")
            self._error = why
            log.error(why)
            if code in _FATAL_CONNACK:
                self._fatal = why
                self._failed.set()
                client.disconnect()
            return
        with self._gen_lock:
            self._gen += 1
        self._connects += 1
        self._error = None
        self._connected.set()
        self.metrics.connects.labels(self._label).inc()
        self.metrics.connected.labels(self._label).set(1)
        log.info("connected as %s (session present: %s)", self.client_id, flags.session_present)
        client.subscribe(self._subscriptions())

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        exc = sys.exc_info()[1]
        m = self.settings.mqtt
        detail = f"{type(exc).__name__}: {exc}" if exc else "connection failed"
        self._error = f"cannot connect to {m.host}:{m.port}: {detail}"
        log.warning("%s; retrying", self._error)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                       reason: object, _props: object) -> None:
        with self._gen_lock:
            self._gen += 1
        self._connected.clear()
        self._subscribed.clear()
        self.metrics.connected.labels(self._label).set(0)
        if getattr(reason, "value", 0):
            self._error = f"disconnected: {reason}"
            log.warning("%s; reconnecting", self._error)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                      reasons: list[Any], _props: Any) -> None:
        bad = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if bad:
            self._error = f"subscription refused: {', '.join(bad)}"
            log.error(self._error)
            return
        log.info("subscribed to %s", ", ".join(t for t, _ in self._subscriptions()))
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = bytes(msg._topic).decode("utf-8", errors="replace")
        self._idle.clear()
        self._queue.put(_Msg(self._gen, msg.mid, msg.qos, topic, bytes(msg.payload)))

    # -- the writer thread -----------------------------------------------------------------
    def _take(self) -> list[_Msg]:
        ing = self.settings.ingest
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            self._idle.set()
            return []
        batch = [first]
        deadline = time.monotonic() + ing.fsync_every_ms / 1000
        while len(batch) < ing.fsync_every_messages:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(left, 0.005)))
            except queue.Empty:
                continue
        return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                if self._stop_writer.is_set():
                    return
                continue
            try:
                self._process(batch)
            except _Abandoned:
                log.warning("collector stopped while the journal could not be written; the "
                            "broker redelivers the %d unacknowledged messages", len(batch))
                return
            except Exception as exc:  # a journal that cannot be written: stop, do not ack
                self._fatal = f"journal write failed, collector stopped: {exc!r}"
                log.exception(self._fatal)
                self._failed.set()
                if self._client is not None:
                    with contextlib.suppress(Exception):
                        self._client.disconnect()
                return

    def _process(self, batch: list[_Msg]) -> None:
        assert self.journal is not None and self.deadletters is not None
        now = self._clock()
        records: list[bytes] = []
        # The items go to a reader of the journal in this process (the hand-over); with none
        # (the engine's collector process, a collector on its own) the decoder makes no
        # reading objects for the payloads whose records it keeps as sent.
        handing_over = self.journal.handing_over
        self.decoder.objects = handing_over
        items: list[Any] | None = [] if handing_over else None
        letters: list[DeadLetter] = []
        accepted = 0  # readings (a batch's record holds all of its readings)
        for m in batch:
            try:
                result = self.decoder.decode_message(m.topic, m.payload, now)
            except Exception as exc:  # a decoder bug must not wedge the stream on one message
                log.exception("decoding a message on %s failed", m.topic)
                result = DecodeResult(rejected=[Rejection(
                    INTERNAL_ERROR, f"decoder failed: {type(exc).__name__}: {exc}", m.payload)])
            records += result.records if result.records is not None \
                else encode_items(result.accepted)
            accepted += result.count
            if items is not None:
                items += result.accepted
            letters.extend(
                DeadLetter(r.reason, m.topic, r.payload, r.detail, now, r.index)
                for r in result.rejected
            )
        self._write_durably(records, letters, items)
        acked = stale = 0
        assert self._client is not None
        with self._gen_lock:
            for m in batch:
                if m.gen == self._gen and m.qos > 0:
                    self._client.ack(m.mid, m.qos)
                    acked += 1
                elif m.qos > 0:
                    stale += 1
        self._received += len(batch)
        self._accepted += accepted
        self._acked += acked
        self._stale += stale
        for d in letters:
            self._dead[d.reason] += 1
        lbl = self._label
        self.metrics.received.labels(lbl).inc(len(batch))
        self.metrics.accepted.labels(lbl).inc(accepted)
        self.metrics.acked.labels(lbl).inc(acked)
        for reason, n in Counter(d.reason for d in letters).items():
            self.metrics.deadlettered.labels(lbl, reason).inc(n)
        self._update_journal_metrics()
        if letters and self.settings.ingest.publish_deadletters:
            topic = self.settings.topics.deadletter
            for d in letters:
                if len(d.payload) > _PUBLISHED_PAYLOAD_MAX:
                    # The whole payload is on disk; the topic gets its beginning.
                    d = replace(d, payload=d.payload[:_PUBLISHED_PAYLOAD_MAX])
                    doc = d.to_json_dict() | {"truncated": True}
                else:
                    doc = d.to_json_dict()
                doc["partition"] = self.partition
                self._client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=1)
        if time.monotonic() - self._retention_checked > 60:
            self._retention_checked = time.monotonic()
            self.journal.enforce_retention()
            self.deadletters.journal.enforce_retention()

    def _write_durably(self, records: list[bytes], letters: list[DeadLetter],
                       items: list[Any] | None = None) -> None:
        """Append the batch to the journal and the dead letters. While the disk is full, wait
        and retry the same batch: nothing is acknowledged meanwhile, so the broker keeps the
        messages (persistent session, at most ``mqtt.receive_maximum`` in flight), and the
        decoder's duplicate memory stays true to what the journal will hold."""
        assert self.journal is not None and self.deadletters is not None
        journaled = False
        since: float | None = None
        last_log = 0.0
        lbl = self._label
        while True:
            try:
                if not journaled:
                    self.journal.append(records, items)
                    journaled = True
                self.deadletters.put_many(letters)
                break
            except OSError as exc:
                if exc.errno not in _DISK_FULL:
                    raise
                self.metrics.journal_write_errors.labels(lbl).inc()
                now = time.monotonic()
                where = self.journal.path if not journaled else self.deadletters.journal.path
                if since is None:
                    since = last_log = now
                    self.metrics.journal_blocked.labels(lbl).set(1)
                    self._error = f"journal cannot be written: {exc.strerror} ({where})"
                    log.error("journal cannot be written: %s (%s); %d records and %d dead "
                              "letters wait, unacknowledged: the broker keeps them and nothing "
                              "more is acknowledged until there is space again", exc.strerror,
                              where, len(records), len(letters))
                elif now - last_log >= 60:
                    last_log = now
                    log.error("journal still cannot be written after %.0fs: %s (%s)",
                              now - since, exc.strerror, where)
                if self._stop_writer.wait(_DISK_FULL_RETRY_S):
                    raise _Abandoned from exc
        if since is not None:
            self._error = None
            self.metrics.journal_blocked.labels(lbl).set(0)
            log.warning("journal writable again after %.1fs; acknowledging what waited",
                        time.monotonic() - since)

    def _update_journal_metrics(self) -> None:
        if self.journal is None:
            return
        self.metrics.journal_bytes.labels(self._label).set(self.journal.size_bytes)
        self.metrics.journal_end.labels(self._label).set(self.journal.end_offset)


def run_collector(settings: Settings, partition: int | None, stop: threading.Event,
                  metrics_port: int | None = None,
                  report: Callable[[CollectorStats], None] | None = None,
                  report_every_s: float = 10.0,
                  metrics: IngestMetrics | None = None,
                  started: Callable[[Collector], None] | None = None) -> int:
    """Run one collector until ``stop`` is set; the exit code for the command line.
    ``metrics``: where it counts (new ones when None), served on ``metrics_port``;
    ``started`` is called with the collector once it is started."""
    from gridwatch.ingest._metrics import start_metrics_server

    metrics = metrics if metrics is not None else IngestMetrics()
    port = settings.ingest.metrics_port if metrics_port is None else metrics_port
    server = (start_metrics_server(port, metrics.registry, settings.ingest.metrics_addr)
              if port else None)
    collector = Collector(settings, partition, metrics=metrics)
    try:
        collector.start()
    except BaseException:  # (a journal partition held by another writer, say)
        if server is not None:
            server.shutdown()
            server.server_close()  # (the port free for another try)
        raise
    if started is not None:
        started(collector)
    last = time.monotonic()
    try:
        while not stop.wait(0.2):
            if collector.failed:
                break
            if report and time.monotonic() - last >= report_every_s:
                report(collector.stats)
                last = time.monotonic()
    finally:
        collector.stop()
        if server is not None:
            server.shutdown()
    if report:
        report(collector.stats)
    if collector.failed:
        log.error(collector.failed)
        return 2
    return 0
