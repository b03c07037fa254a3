"""Settings of the MQTT connection and the collectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from gridwatch._config_base import Section, reject_placeholder


class TlsSettings(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


class MqttSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "gridwatch-collector-0"
    username: str | None = None
    #: From the environment (GRIDWATCH_MQTT__PASSWORD) or ``password_file``, never the YAML.
    password: SecretStr | None = None
    password_file: Path | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600
    qos: Literal[0, 1, 2] = 1
    tls: TlsSettings = TlsSettings()
    #: When set, subscriptions use ``$share/<group>/<filter>`` so several collectors split load.
    shared_group: Annotated[str, Field(pattern=r"^[^/+#$]{1,64}$")] | None = None
    #: Reconnect backoff: first wait and upper bound, seconds (doubling in between).
    reconnect_min_s: Annotated[int, Field(ge=1, le=3600)] = 1
    reconnect_max_s: Annotated[int, Field(ge=1, le=3600)] = 30
    #: MQTT v5 Receive Maximum: unacknowledged QoS 1 messages the broker may have in flight.
    #: Messages are acknowledged after the journal fsync, so this also bounds what a collector
    #: holds in memory.
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 10_000

    _no_placeholder = field_validator("password")(reject_placeholder)


class TopicSettings(Section):
    reading: str = "meters/+/+/reading"
    batch: str = "meters/+/+/batch"
    telemetry: str = "devices/+/+/telemetry"
    deadletter: str = "gridwatch/deadletter"
    alerts_prefix: str = "gridwatch"
    #: Zero-based topic level holding the meter id (reading topics) or the concentrator id
    #: (batch topics): ``meters/{region}/{meter_id}/reading`` has it at level 2.
    meter_id_level: Annotated[int, Field(ge=0, le=16)] = 2
    #: Levels of the site and of the device id in ``devices/{site}/{device_id}/telemetry``.
    site_level: Annotated[int, Field(ge=0, le=16)] = 1
    device_id_level: Annotated[int, Field(ge=0, le=16)] = 2


class IngestSettings(Section):
    journal_dir: Path = Path("journal")
    deadletter_dir: Path = Path("deadletter")
    partition: Annotated[int, Field(ge=0, lt=10_000)] = 0
    max_payload_bytes: Annotated[int, Field(ge=256)] = 1_048_576
    max_future_s: Annotated[float, Field(ge=0)] = 300.0
    #: A reading older than the meter's last accepted one by more than this is dead-lettered.
    max_backwards_s: Annotated[float, Field(ge=0)] = 86_400.0
    segment_bytes: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    #: A segment is also closed after this many hours open, so age retention works at low
    #: traffic (0 = by size only).
    segment_hours: Annotated[float, Field(ge=0)] = 24.0
    retention_bytes: Annotated[int, Field(ge=0)] = 0
    retention_hours: Annotated[float, Field(ge=0)] = 0.0
    fsync_every_messages: Annotated[int, Field(ge=1)] = 500
    fsync_every_ms: Annotated[int, Field(ge=1)] = 50
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    #: Address the metrics endpoint listens on.
    metrics_addr: str = "0.0.0.0"
    #: Accepted (meter, timestamp) keys remembered per meter to reject duplicates; the collector
    #: rebuilds them from the last ``dedup_warm_records`` journal records at start-up.
    dedup_per_meter: Annotated[int, Field(ge=1, le=10_000)] = 32
    dedup_warm_records: Annotated[int, Field(ge=0)] = 500_000
    #: Publish each dead letter to ``topics.deadletter`` as well as writing it to disk.
    publish_deadletters: bool = True
