"""gridwatch.storage: the documented InfluxDB schema, batched idempotent writes through the v1
or v2 write API, a durable spool for outages, and InfluxQL reads for reports and warm starts.

Names load on first use: the settings root imports ``gridwatch.storage._config`` on every start,
and influxdb-client alone takes a fifth of a second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

if TYPE_CHECKING:
    from gridwatch.storage._config import InfluxSettings
    from gridwatch.storage._points import (
        MEASUREMENTS,
        UnsupportedObjectError,
        reading_lines,
        to_lines,
    )
    from gridwatch.storage._reader import InfluxReader, ReadError
    from gridwatch.storage._sink import (
        InfluxSink,
        InfluxSinkPartition,
        PipelinedPartition,
        StorageMetrics,
        StorageWriterError,
    )
    from gridwatch.storage._spool import Spool
    from gridwatch.storage._writer import (
        ParallelWriter,
        PointWriter,
        RejectedPointsError,
        RetryableWriteError,
        V1Writer,
        V2Writer,
        WriteError,
        build_writer,
        to_line_protocol,
        to_points,
    )

_LAZY = {
    "InfluxSettings": "_config",
    "MEASUREMENTS": "_points",
    "UnsupportedObjectError": "_points",
    "to_line_protocol": "_writer",
    "reading_lines": "_points",
    "to_lines": "_points",
    "to_points": "_writer",
    "InfluxReader": "_reader",
    "ReadError": "_reader",
    "InfluxSink": "_sink",
    "InfluxSinkPartition": "_sink",
    "PipelinedPartition": "_sink",
    "StorageMetrics": "_sink",
    "StorageWriterError": "_sink",
    "Spool": "_spool",
    "ParallelWriter": "_writer",
    "PointWriter": "_writer",
    "RejectedPointsError": "_writer",
    "RetryableWriteError": "_writer",
    "V1Writer": "_writer",
    "V2Writer": "_writer",
    "WriteError": "_writer",
    "build_writer": "_writer",
}

__all__ = [
    "MEASUREMENTS",
    "InfluxReader",
    "InfluxSettings",
    "InfluxSink",
    "InfluxSinkPartition",
    "ParallelWriter",
    "PipelinedPartition",
    "PointWriter",
    "ReadError",
    "RejectedPointsError",
    "RetryableWriteError",
    "Spool",
    "StorageMetrics",
    "StorageWriterError",
    "UnsupportedObjectError",
    "V1Writer",
    "V2Writer",
    "WriteError",
    "build_writer",
    "reading_lines",
    "to_line_protocol",
    "to_lines",
    "to_points",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
