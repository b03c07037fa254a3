"""gridwatch: a streaming IoT monitoring engine for electric utilities.

MQTT collectors read smart-meter and device telemetry into a durable journal; a Bytewax dataflow
learns each customer's normal load and raises early warnings; results go to InfluxDB; an alert
router tells the customer manager who owns the grid cell, and industrial customers about their
own sites.

Names are imported on first use (PEP 562): ``import gridwatch`` and the command line's help load
neither pydantic nor the settings; each stage's libraries come with the stage.
"""

import typing

from gridwatch import _lazy

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AlertTransition": "_schemas",
    "Batch": "_schemas",
    "CustomerClass": "_schemas",
    "DeviceTelemetry": "_schemas",
    "Event": "_schemas",
    "LoadProfile": "_schemas",
    "MeterMeta": "_schemas",
    "MeterStatus": "_schemas",
    "Reading": "_schemas",
    "Score": "_schemas",
    "Severity": "_schemas",
    "ConfigError": "_settings",
    "Settings": "_settings",
    "load_settings": "_settings",
}

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

__getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS, globals())

if typing.TYPE_CHECKING:
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
