"""Settings of the detectors and the load profiler."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gridwatch._config_base import Section


class DetectionSettings(Section):
    #: Expected reading interval when a meter does not state its own.
    interval_s: Annotated[int, Field(ge=60, le=86_400)] = 900
    #: Readings before a meter's own baseline is trusted.
    warmup_readings: Annotated[int, Field(ge=1)] = 96 * 7
    #: Robust z-score above which a reading is abnormal.
    z_threshold: Annotated[float, Field(gt=0)] = 6.0
    #: Expected intervals without a reading before a meter counts as silent.
    silence_intervals: Annotated[int, Field(ge=1)] = 4
    nominal_voltage_v: Annotated[float, Field(gt=0)] = 220.0
    voltage_high_pct: Annotated[float, Field(gt=0)] = 7.0
    voltage_low_pct: Annotated[float, Field(gt=0)] = 10.0
    min_power_factor: Annotated[float, Field(gt=0, le=1)] = 0.9
    #: Silent meters of one grid cell that make a probable feeder outage.
    feeder_outage_meters: Annotated[int, Field(ge=2)] = 5
