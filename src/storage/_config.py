"""Settings of the InfluxDB writer and reader."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from gridwatch._config_base import Section, reject_placeholder


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback: ``localhost`` or
    an address of 127.0.0.0/8 or ``::1``."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InfluxSettings(Section):
    """Where and how readings, scores, events, profiles and alert changes are stored."""

    enabled: bool = True
    #: ``v2``: influxdb-client's /api/v2/write (InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics);
    #: ``v1``: /write with database and retention policy (InfluxDB 1.x).
    api: Literal["v1", "v2"] = "v2"
    url: str = "http://127.0.0.1:8086"
    org: str = "gridwatch"
    bucket: str = "gridwatch"
    token: SecretStr | None = None
    database: str = "gridwatch"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    #: 0 writes every batch as it comes. A positive value holds a batch smaller than
    #: ``batch_size`` in the on-disk spool until this much time has passed and more points
    #: arrive (fewer, larger writes; points wait longer when the stream is quiet).
    flush_interval_ms: Annotated[int, Field(ge=0)] = 0
    timeout_ms: Annotated[int, Field(ge=100)] = 10_000
    #: Requests in flight for one batch of the engine's storage: a batch of at least twice
    #: 500 points is cut into this many parts, each written over a connection of its own at
    #: the same time (InfluxDB 1.x takes one request on one core). 1: one request at a time.
    write_requests: Annotated[int, Field(ge=1, le=16)] = 2
    #: Compress request bodies. None (the default): compress unless the database is on this
    #: machine (a loopback host: ``localhost``, 127.0.0.0/8, ``::1``), where compressing costs
    #: the engine and the database CPU and saves nothing (docs/storage.md).
    gzip: bool | None = None
    spool_dir: Path = Path("spool")
    spool_max_bytes: Annotated[int, Field(ge=0)] = 1024 * 1024 * 1024
    #: fsync every spool segment (turn off only on throw-away test machines).
    spool_fsync: bool = True
    #: First wait after a failed write, doubled on each further failure up to ``retry_max_ms``;
    #: a server's Retry-After overrides it. Meanwhile points go to the spool (no sleep).
    retry_initial_ms: Annotated[int, Field(ge=0)] = 1000
    retry_max_ms: Annotated[int, Field(ge=0)] = 30_000
    #: At an epoch's end, how long the dataflow waits for the background writer to store
    #: what it was handed before it spools the rest (fsynced) and goes on; the spooled points
    #: are written soon after, oldest first. 0: never wait for the database.
    snapshot_wait_ms: Annotated[int, Field(ge=0)] = 100
    #: How long one ``write_batch`` may spend draining a spool backlog before it returns.
    drain_budget_ms: Annotated[int, Field(ge=1)] = 2000

    _no_placeholder = field_validator("token", "password")(reject_placeholder)

    @property
    def compress(self) -> bool:
        """Whether request bodies are compressed (``gzip``, or its default for the url)."""
        if self.gzip is not None:
            return self.gzip
        return not is_loopback(urlsplit(self.url).hostname or "")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"influx url {v!r} must start with http:// or https://")
        return v.rstrip("/")
