"""gridwatch.storage: the documented InfluxDB schema, batched idempotent writes through the v1
or v2 write API, a durable spool for outages, and InfluxQL reads for reports and warm starts."""

from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._points import (
    MEASUREMENTS,
    UnsupportedObjectError,
    to_line_protocol,
    to_points,
)
from gridwatch.storage._reader import InfluxReader, ReadError
from gridwatch.storage._sink import InfluxSink, InfluxSinkPartition, StorageMetrics
from gridwatch.storage._spool import Spool
from gridwatch.storage._writer import (
    PointWriter,
    RejectedPointsError,
    RetryableWriteError,
    V1Writer,
    V2Writer,
    WriteError,
    build_writer,
)

__all__ = [
    "MEASUREMENTS",
    "InfluxReader",
    "InfluxSettings",
    "InfluxSink",
    "InfluxSinkPartition",
    "PointWriter",
    "ReadError",
    "RejectedPointsError",
    "RetryableWriteError",
    "Spool",
    "StorageMetrics",
    "UnsupportedObjectError",
    "V1Writer",
    "V2Writer",
    "WriteError",
    "build_writer",
    "to_line_protocol",
    "to_points",
]
