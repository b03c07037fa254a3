"""Prometheus metrics of the ingest stage, on an injectable registry so tests do not collide."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ["IngestMetrics", "start_metrics_server"]


class IngestMetrics:
    """Counters and gauges of collectors, dead letters, the journal and its consumers."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "gridwatch_ingest_messages_received", "MQTT messages received by the collector.",
            ["partition"], registry=r)
        self.accepted = Counter(
            "gridwatch_ingest_items_accepted", "Readings and telemetry appended to the journal.",
            ["partition"], registry=r)
        self.deadlettered = Counter(
            "gridwatch_ingest_deadletters", "Rejected payloads or batch items, by reason.",
            ["partition", "reason"], registry=r)
        self.acked = Counter(
            "gridwatch_ingest_messages_acked", "MQTT messages acknowledged after the fsync.",
            ["partition"], registry=r)
        self.connects = Counter(
            "gridwatch_ingest_connects", "Successful connections to the broker.",
            ["partition"], registry=r)
        self.connected = Gauge(
            "gridwatch_ingest_connected", "1 while the collector is connected to the broker.",
            ["partition"], registry=r)
        self.journal_bytes = Gauge(
            "gridwatch_ingest_journal_bytes", "Bytes in the journal partition's segments.",
            ["partition"], registry=r)
        self.journal_end = Gauge(
            "gridwatch_ingest_journal_end_offset", "Next offset of the journal partition.",
            ["partition"], registry=r)
        self.consumer_lag = Gauge(
            "gridwatch_ingest_consumer_lag",
            "Journal records (a reading, or a message's batch of readings) not yet read by the "
            "dataflow.",
            ["partition"], registry=r)
        self.handover_hits = Counter(
            "gridwatch_ingest_handover_hits",
            "Journal records the dataflow took as the items the collector in the same process "
            "validated (ingest.handover_items), without decoding them.", ["partition"], registry=r)
        self.handover_misses = Counter(
            "gridwatch_ingest_handover_misses",
            "Journal records the dataflow of a live engine had to decode: no longer held in the "
            "hand-over (read too late), written before it started, or by another process.",
            ["partition"], registry=r)
        self.handover_compacted = Counter(
            "gridwatch_ingest_handover_compacted",
            "Readings the hand-over made compact while they waited for a dataflow more than "
            "its loose window behind (each costs time to compact and to put together again).",
            ["partition"], registry=r)
        self.journal_blocked = Gauge(
            "gridwatch_ingest_journal_blocked",
            "1 while the journal or the dead letters cannot be written (disk full); nothing is "
            "acknowledged meanwhile and the broker keeps the messages.", ["partition"], registry=r)
        self.journal_write_errors = Counter(
            "gridwatch_ingest_journal_write_errors",
            "Journal or dead-letter appends that failed for want of disk space (retried).",
            ["partition"], registry=r)
        self.file_rejected = Counter(
            "gridwatch_ingest_file_rows_rejected", "Rows of replayed files rejected, by reason.",
            ["reason"], registry=r)


def start_metrics_server(port: int, registry: CollectorRegistry | None = None,
                         addr: str = "0.0.0.0") -> Any:
    """Serve ``registry`` (the default global one when None) in the Prometheus text format on
    ``http://addr:port/metrics`` from a daemon thread; returns the server (``.shutdown()``)."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
