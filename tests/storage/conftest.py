"""Fixtures of the storage tests; the helpers they share are in ``_storage_helpers.py``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _storage_helpers import create_database

from gridwatch import _services
from gridwatch.storage import InfluxSettings


@pytest.fixture
def v1_settings(influxdb: _services.Service, tmp_path: Path) -> Callable[..., InfluxSettings]:
    """Settings for a fresh database on the shared InfluxDB 1.6.7 (``.database`` names it)."""

    def make(svc: _services.Service | None = None, **overrides: Any) -> InfluxSettings:
        svc = svc or influxdb
        db = overrides.pop("database", f"t_{uuid.uuid4().hex[:12]}")
        create_database(svc, db)
        base: dict[str, Any] = dict(api="v1", url=svc.url, database=db, gzip=True,
                                    spool_dir=tmp_path / "spool", spool_fsync=False,
                                    flush_interval_ms=1, retry_initial_ms=100,
                                    retry_max_ms=1000, timeout_ms=5000)
        return InfluxSettings(**(base | overrides))

    return make


@pytest.fixture
def v2_settings(victoria_metrics: _services.Service,
                tmp_path: Path) -> Callable[..., InfluxSettings]:
    """Settings for influxdb-client's v2 write API on the shared VictoriaMetrics."""

    def make(**overrides: Any) -> InfluxSettings:
        base: dict[str, Any] = dict(api="v2", url=victoria_metrics.url, org="gridwatch",
                                    bucket="gridwatch", gzip=True,
                                    spool_dir=tmp_path / "spool", spool_fsync=False,
                                    flush_interval_ms=1, retry_initial_ms=100,
                                    retry_max_ms=1000, timeout_ms=5000)
        return InfluxSettings(**(base | overrides))

    return make
