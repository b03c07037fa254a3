"""The ``devices:`` section of a fleet file: which devices the simulated fleet has and which
faults to inject into their telemetry (see ``_devices``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEVICE_FAULTS", "FAULT_EVENT", "DeviceSpec", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """``"36h"``, ``"2d"``, ``"90m"``, ``"1w"`` or a number of seconds → timedelta; anything
    else unchanged (for pydantic to judge)."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    return value

#: Fault shapes the device simulator injects, and the detector event type each should raise.
FAULT_EVENT = {
    "overload": "device_overload",
    "load_growth": "device_overload",
    "overheating": "device_overheating",
    "unbalance": "phase_unbalance",
    "sensor_stuck": "sensor_fault",
    "sensor_drift": "sensor_fault",
    "off_shift": "off_shift_running",
    "inverter_trip": "inverter_trip",
    "compressor_wear": "compressor_wear",
}
DEVICE_FAULTS = tuple(FAULT_EVENT)


class DeviceSpec(BaseModel):
    """Devices of a simulated fleet: one distribution transformer per grid cell (feeding every
    meter of the cell) and, per industrial site, ``equipment_per_site`` machines (motors,
    compressors, chillers, furnaces) plus a PV inverter on ``pv_share`` of the sites.
    ``faults`` gives the exact number of each fault shape; none starts before ``warmup``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transformers: bool = True
    equipment_per_site: Annotated[int, Field(ge=0, le=20)] = 4
    pv_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    faults: dict[str, Annotated[int, Field(ge=0, le=100_000)]] = Field(default_factory=dict)
    warmup: Annotated[timedelta, Field(ge=timedelta(0))] = timedelta(days=2)

    @field_validator("warmup", mode="before")
    @classmethod
    def _duration(cls, v: object) -> object:
        return parse_duration(v)

    @field_validator("faults")
    @classmethod
    def _known(cls, v: dict[str, int]) -> dict[str, int]:
        for name in v:
            if name not in FAULT_EVENT:
                raise ValueError(f"unknown device fault {name!r} "
                                 f"(choose from {', '.join(DEVICE_FAULTS)})")
        return v
