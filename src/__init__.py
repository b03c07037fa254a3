"""gridwatch: a streaming IoT monitoring engine for electric utilities.

MQTT collectors read smart-meter and device telemetry into a durable journal; a Bytewax dataflow
learns each customer's normal load and raises early warnings; results go to InfluxDB; an alert
router tells the customer manager who owns the grid cell, and industrial customers about their
own sites.
"""

from gridwatch._schemas import (
    AlertTransition,
    Batch,
    CustomerClass,
    DeviceTelemetry,
    Event,
    LoadProfile,
    MeterMeta,
    MeterStatus,
    Reading,
    Score,
    Severity,
)
from gridwatch._settings import ConfigError, Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "AlertTransition",
    "Batch",
    "ConfigError",
    "CustomerClass",
    "DeviceTelemetry",
    "Event",
    "LoadProfile",
    "MeterMeta",
    "MeterStatus",
    "Reading",
    "Score",
    "Settings",
    "Severity",
    "__version__",
    "load_settings",
]
