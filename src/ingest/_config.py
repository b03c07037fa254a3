"""Settings of the MQTT connection and the collectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

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


#: A region's name as it appears in a topic level: one level, no wildcard.
Region = Annotated[str, Field(pattern=r"^[^/+#\x00]{1,128}$")]


def check_filter(topic_filter: str) -> str:
    """``topic_filter`` when it is a valid MQTT subscription filter (MQTT 5 §4.7: ``+`` and
    ``#`` fill a whole level, ``#`` only the last), else :class:`ValueError` saying why."""
    if not topic_filter:
        raise ValueError("an empty topic filter")
    if "\x00" in topic_filter or len(topic_filter.encode()) > 65_535:
        raise ValueError(f"{topic_filter!r:.80}: a NUL character or more than 65,535 bytes")
    if topic_filter.startswith("$share/"):
        raise ValueError(f"{topic_filter!r}: set mqtt.shared_group instead of a $share/ filter")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{topic_filter!r}: '#' must be a whole level, the last one")
        if "+" in level and level != "+":
            raise ValueError(f"{topic_filter!r}: '+' must be a whole level")
    return topic_filter


def _filters(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


class TopicSettings(Section):
    #: Subscription filters of single readings and of concentrator batches: one filter or a
    #: list (``["meters/north/+/reading", "meters/east/+/reading"]``; from the environment,
    #: ``GRIDWATCH_TOPICS__READING='["...", "..."]'``).
    reading: str | list[str] = "meters/+/+/reading"
    batch: str | list[str] = "meters/+/+/batch"
    telemetry: str = "devices/+/+/telemetry"
    deadletter: str = "gridwatch/deadletter"
    alerts_prefix: str = "gridwatch"
    #: Zero-based topic level holding the meter id (reading topics) or the concentrator id
    #: (batch topics): ``meters/{region}/{meter_id}/reading`` has it at level 2.
    meter_id_level: Annotated[int, Field(ge=0, le=16)] = 2
    #: Levels of the site and of the device id in ``devices/{site}/{device_id}/telemetry``.
    site_level: Annotated[int, Field(ge=0, le=16)] = 1
    device_id_level: Annotated[int, Field(ge=0, le=16)] = 2
    #: Per-process subscriptions of a cluster: process id (``gridwatch run -i``, or
    #: ``gridwatch collect --partition``) -> the regions whose readings and batches that
    #: process's collector hears. Each ``reading`` and ``batch`` filter is subscribed once per
    #: region, the region in place of its region level (the first ``+`` before
    #: ``meter_id_level``: ``meters/+/+/reading`` -> ``meters/north/+/reading``). Empty: every
    #: process subscribes to ``reading`` and ``batch`` as they are. Telemetry stays shared.
    regions: dict[Annotated[int, Field(ge=0)], list[Region]] = Field(default_factory=dict)

    @field_validator("reading", "batch")
    @classmethod
    def _valid_filters(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list of topic filters (the collector would hear "
                                 "nothing)")
            value = list(dict.fromkeys(value))
        for flt in _filters(value):
            check_filter(flt)
        return value

    @field_validator("telemetry")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        return check_filter(value)

    @field_validator("regions")
    @classmethod
    def _regions_listed(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        for pid, regions in value.items():
            if not regions:
                raise ValueError(f"process {pid} has no region (its collector would hear no "
                                 "reading)")
        return value

    @model_validator(mode="after")
    def _regions_have_a_level(self) -> TopicSettings:
        if self.regions:
            for flt in self.reading_filters + self.batch_filters:
                self.region_level(flt)
        return self

    @property
    def reading_filters(self) -> tuple[str, ...]:
        """The filters of single readings (``reading`` as a tuple)."""
        return _filters(self.reading)

    @property
    def batch_filters(self) -> tuple[str, ...]:
        """The filters of concentrator batches (``batch`` as a tuple)."""
        return _filters(self.batch)

    def region_level(self, topic_filter: str) -> int:
        """The level of ``topic_filter`` that holds the region: its first ``+`` before
        ``meter_id_level``; :class:`ValueError` when there is none."""
        for i, part in enumerate(topic_filter.split("/")[: self.meter_id_level]):
            if part == "+":
                return i
        raise ValueError(f"topic filter {topic_filter!r} has no region level (a '+' before "
                         f"the meter id's level {self.meter_id_level}) for topics.regions")

    @staticmethod
    def with_level(topic_filter: str, level: int, value: str) -> str:
        """``topic_filter`` with ``value`` at ``level`` (a region, a meter id);
        :class:`ValueError` when the filter has no such level."""
        parts = topic_filter.split("/")
        if level >= len(parts):
            raise ValueError(f"topic {topic_filter!r} has no level {level}")
        parts[level] = value
        return "/".join(parts)

    def claims(self) -> dict[str, list[int]]:
        """Region -> the processes of ``regions`` that list it, in id order."""
        out: dict[str, list[int]] = {}
        for pid in sorted(self.regions):
            for region in self.regions[pid]:
                out.setdefault(region, []).append(pid)
        return out

    def shared_regions(self) -> dict[str, list[int]]:
        """The regions of ``regions`` listed for more than one process, with those processes."""
        return {region: pids for region, pids in self.claims().items() if len(pids) > 1}

    def for_process(self, process_id: int) -> TopicSettings:
        """The topics of process ``process_id``'s collector: ``reading`` and ``batch`` with its
        own regions in place (``regions`` then empty), or these settings when ``regions`` is
        empty. :class:`ValueError` when ``regions`` names other processes but not this one:
        its collector would otherwise hear their regions as well."""
        if not self.regions:
            return self
        own = self.regions.get(process_id)
        if own is None:
            named = ", ".join(str(p) for p in sorted(self.regions))
            raise ValueError(f"topics.regions names process(es) {named} but not process "
                             f"{process_id}: give it its regions too")

        def placed(filters: tuple[str, ...]) -> list[str]:
            return list(dict.fromkeys(self.with_level(f, self.region_level(f), r)
                                      for f in filters for r in own))

        return self.model_copy(update={"reading": placed(self.reading_filters),
                                       "batch": placed(self.batch_filters), "regions": {}})


class IngestSettings(Section):
    journal_dir: Path = Path("journal")
    deadletter_dir: Path = Path("deadletter")
    partition: Annotated[int, Field(ge=0, lt=10_000)] = 0
    max_payload_bytes: Annotated[int, Field(ge=256)] = 1_048_576
    #: How far ahead of the receiving clock a reading's time may be (seconds); at most 8e13
    #: (Python's widest time difference is about 8.64e13 s: any wider cannot be held).
    max_future_s: Annotated[float, Field(ge=0, le=8e13)] = 300.0
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
    #: rebuilds them at start-up from the journal records that hold the last
    #: ``dedup_warm_records`` readings (a record holds one, or a message's batch).
    dedup_per_meter: Annotated[int, Field(ge=1, le=10_000)] = 32
    dedup_warm_records: Annotated[int, Field(ge=0)] = 500_000
    #: Publish each dead letter to ``topics.deadletter`` as well as writing it to disk.
    publish_deadletters: bool = True
    #: The hand-over of ``gridwatch run`` with its collector a thread of the engine: the
    #: readings the collector appended last, kept in memory (per journal partition) for the
    #: dataflow in the same process (none with ``engine.collector_process``), which then takes
    #: them instead of decoding their records again. A reader further behind than this many
    #: items decodes from the journal as before. A reading still there after 65,536 newer
    #: ones is kept compact, about 0.56 KB of resident memory (the newest as they came, about
    #: 1.8 KB; docs/ingest.md, "The hand-over"); 0 turns the hand-over off.
    handover_items: Annotated[int, Field(ge=0, le=16_777_216)] = 131_072
