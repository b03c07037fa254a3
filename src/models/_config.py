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
    #: IANA time zone of the service area: time-of-week slots and days are local.
    timezone: str = "UTC"
    #: Country code for public holidays (``holidays`` package); a holiday is scored as a Sunday.
    holiday_country: str | None = None
    #: Nominal voltage of three-phase meters (phase-to-neutral); limits are ±``three_phase_pct``.
    three_phase_nominal_v: Annotated[float, Field(gt=0)] = 230.0
    three_phase_pct: Annotated[float, Field(gt=0)] = 7.0
    #: Voltage unbalance (max deviation from the mean, % of mean) that counts as phase imbalance.
    voltage_unbalance_pct: Annotated[float, Field(gt=0)] = 2.0
    #: Current unbalance (% of mean) that counts as phase imbalance, above ``min_kw`` load.
    current_unbalance_pct: Annotated[float, Field(gt=0)] = 40.0
    #: Load (kW) under which power factor and current unbalance are not judged.
    min_kw: Annotated[float, Field(ge=0)] = 0.05
    #: A power factor below this is low at any load (above ``min_kw``); between it and
    #: ``min_power_factor`` only at a real load (light load lowers the power factor by nature).
    severe_power_factor: Annotated[float, Field(gt=0, le=1)] = 0.75
    #: Readings in a row below ``min_power_factor`` (at a real load) before it is raised.
    pf_readings: Annotated[int, Field(ge=1)] = 4
    #: Sustained drop/rise of consumption: this many readings in a row below ``drop_ratio`` or
    #: above ``rise_ratio`` times the expected kW (complements CUSUM for skewed loads).
    ratio_readings: Annotated[int, Field(ge=2)] = 8
    drop_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.35
    rise_ratio: Annotated[float, Field(gt=1)] = 2.5
    #: CUSUM decision interval (in robust z units) for a sustained level shift.
    cusum_h: Annotated[float, Field(gt=0)] = 12.0
    cusum_k: Annotated[float, Field(ge=0)] = 1.5
    #: Readings under the threshold before an abnormal-consumption event resolves.
    resolve_readings: Annotated[int, Field(ge=1)] = 4
    #: A flagged level that persists this long is accepted as the new normal (learning resumes).
    relearn_after_s: Annotated[int, Field(ge=0)] = 7 * 86_400
    #: Identical kW values in a row (non-zero) that make a stuck reading.
    stuck_readings: Annotated[int, Field(ge=2)] = 16
    #: Readings with kW above ``min_kw`` and an unchanged energy register that make it frozen.
    frozen_readings: Annotated[int, Field(ge=2)] = 4
    #: Offset of timestamps from the interval grid (s) that counts as clock drift.
    clock_drift_s: Annotated[float, Field(gt=0)] = 60.0
    #: Over-capacity forecast horizon (minutes) and the fraction of contracted kVA that warns.
    capacity_horizon_min: Annotated[int, Field(ge=15, le=240)] = 60
    capacity_warn_fraction: Annotated[float, Field(gt=0, le=2)] = 1.0
    #: Possible theft: energy below this fraction of what the meter's own baseline expects ...
    theft_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.6
    #: ... over a run of at least this many hours, after ``theft_min_days`` days of history ...
    theft_hours: Annotated[float, Field(gt=0)] = 12.0
    theft_min_days: Annotated[int, Field(ge=1)] = 7
    #: ... while the segment's median ratio stays above this (else the whole segment changed).
    theft_segment_ratio: Annotated[float, Field(gt=0, le=1)] = 0.7
    #: Customer segments per customer class (``river.cluster.KMeans``).
    segments_per_class: Annotated[int, Field(ge=1, le=32)] = 4
    #: Emit a Score point for every n-th reading of a meter (0: only for anomalous readings).
    score_sample_every: Annotated[int, Field(ge=0)] = 0
    #: Event-time lateness allowed before a silence timer fires (s).
    lateness_s: Annotated[int, Field(ge=0)] = 0
    #: Wall-clock seconds without any input after which the event clock advances by wall time
    #: (live mode: silence is still detected when every meter stops). 0 disables.
    idle_advance_s: Annotated[float, Field(ge=0)] = 0.0
    #: Silent meters of a cell are held this many intervals to be grouped into a feeder outage.
    feeder_hold_intervals: Annotated[int, Field(ge=0)] = 1
    #: Seed of the segment models.
    seed: int = 42
