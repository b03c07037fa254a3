"""gridwatch.ingest: lossless MQTT collection into a durable journal, and the dataflow inputs.

MQTT collectors decode and validate what meters and devices send, append it to a checksummed,
segmented journal (fsync), and only then acknowledge it to the broker; bad input goes to dead
letters with its reason. Bytewax reads the journal (or a CSV/JSONL readings file) through
sources whose snapshot is the read position.

Names are imported on first use (PEP 562), so loading the settings, which imports this package
for its settings sections, does not pull in paho or bytewax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Collector": "_collector",
    "CollectorError": "_collector",
    "CollectorStats": "_collector",
    "ConnectError": "_collector",
    "mqtt_password": "_collector",
    "IngestSettings": "_config",
    "MqttSettings": "_config",
    "TlsSettings": "_config",
    "TopicSettings": "_config",
    "DeadLetter": "_deadletter",
    "DeadLetters": "_deadletter",
    "read_deadletters": "_deadletter",
    "REASONS": "_decode",
    "DecodeError": "_decode",
    "DecodeResult": "_decode",
    "Decoder": "_decode",
    "Rejection": "_decode",
    "decode": "_decode",
    "Journal": "_journal",
    "JournalCorruptError": "_journal",
    "JournalLockedError": "_journal",
    "decode_item": "_journal",
    "decode_record": "_journal",
    "encode_item": "_journal",
    "journal_partitions": "_journal",
    "IngestMetrics": "_metrics",
    "start_metrics_server": "_metrics",
    "FileShare": "_source",
    "FileSource": "_source",
    "JournalSource": "_source",
    "Rejected": "_source",
    "iter_readings_file": "_source",
    "replay_source": "_source",
    "check_readings_file": "_source",
}

__all__ = [
    "REASONS",
    "Collector",
    "CollectorError",
    "CollectorStats",
    "ConnectError",
    "DeadLetter",
    "DeadLetters",
    "DecodeError",
    "DecodeResult",
    "Decoder",
    "FileShare",
    "FileSource",
    "IngestMetrics",
    "IngestSettings",
    "Journal",
    "JournalCorruptError",
    "JournalLockedError",
    "JournalSource",
    "MqttSettings",
    "Rejected",
    "Rejection",
    "TlsSettings",
    "TopicSettings",
    "check_readings_file",
    "decode",
    "decode_item",
    "decode_record",
    "encode_item",
    "iter_readings_file",
    "journal_partitions",
    "mqtt_password",
    "read_deadletters",
    "replay_source",
    "start_metrics_server",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from gridwatch.ingest._collector import (
        Collector,
        CollectorError,
        CollectorStats,
        ConnectError,
        mqtt_password,
    )
    from gridwatch.ingest._config import (
        IngestSettings,
        MqttSettings,
        TlsSettings,
        TopicSettings,
    )
    from gridwatch.ingest._deadletter import DeadLetter, DeadLetters, read_deadletters
    from gridwatch.ingest._decode import (
        REASONS,
        DecodeError,
        Decoder,
        DecodeResult,
        Rejection,
        decode,
    )
    from gridwatch.ingest._journal import (
        Journal,
        JournalCorruptError,
        JournalLockedError,
        decode_item,
        decode_record,
        encode_item,
        journal_partitions,
    )
    from gridwatch.ingest._metrics import IngestMetrics, start_metrics_server
    from gridwatch.ingest._source import (
        FileShare,
        FileSource,
        JournalSource,
        Rejected,
        check_readings_file,
        iter_readings_file,
        replay_source,
    )
