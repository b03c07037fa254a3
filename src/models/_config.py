"""Settings of the detectors and the load profiler."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gridwatch._config_base import Section


class ClassPolicy(Section):
    """What counts as news for one customer class: how long and how much energy a consumption
    episode needs before a manager hears of it. A one-interval kettle burst in a household is not
    news; on an industrial feeder a quarter of an hour may be."""

    #: A high-load episode is raised once it has lasted this long ...
    high_min_minutes: Annotated[float, Field(ge=0)] = 240.0
    #: ... and its energy above the band is at least this share of the meter's usual daily energy
    high_energy_share: Annotated[float, Field(ge=0)] = 2.0
    #: A load beyond the meter's own record (``peak_factor`` times the highest usual reading of
    #: the last 28 days) for ``peak_min_minutes`` is news in any class.
    peak_factor: Annotated[float, Field(gt=0)] = 1.2
    peak_min_minutes: Annotated[float, Field(ge=0)] = 60.0
    #: ... or for one reading at ``peak_burst`` times the record.
    peak_burst: Annotated[float, Field(gt=1)] = 2.0
    #: ... and at least this much energy (kWh), so a tiny load's bursts are not news either.
    high_min_kwh: Annotated[float, Field(ge=0)] = 1.0
    #: A sustained drop likewise (energy below the band, as a share of the usual daily energy).
    low_min_minutes: Annotated[float, Field(ge=0)] = 720.0
    low_energy_share: Annotated[float, Field(ge=0)] = 0.6
    #: Zero consumption where the meter's band says it never reads zero, for this long.
    zero_min_minutes: Annotated[float, Field(ge=0)] = 120.0
    #: Log-dispersion assumed for a slot the meter has not shown yet (a shop's first morning
    #: is its opening, not a surge): 0 judges new slots by the meter's own spread only.
    young_dev: Annotated[float, Field(ge=0)] = 0.0
    #: Judge possible theft within the day (the last ``theft_hours`` hours) as well as on whole
    #: days. Off for households, whose bursty hours make 12-hour windows too noisy.
    theft_window: bool = False
    #: Raise daily level drops that do not keep the load's shape (an empty house, a plant
    #: shut down); a drop that keeps the shape is judged as possible theft in every class.
    level_down: bool = False


def _policies() -> dict[str, ClassPolicy]:
    return {
        "residential": ClassPolicy(),
        "commercial": ClassPolicy(high_min_minutes=30, high_energy_share=0.08, high_min_kwh=2,
                                  peak_min_minutes=30,
                                  low_min_minutes=120, low_energy_share=0.1, zero_min_minutes=60,
                                  young_dev=0.7, theft_window=True, level_down=True),
        "industrial": ClassPolicy(high_min_minutes=15, high_energy_share=0.03, high_min_kwh=5,
                                  peak_min_minutes=15,
                                  low_min_minutes=60, low_energy_share=0.05, zero_min_minutes=30,
                                  young_dev=0.7, theft_window=True, level_down=True),
        "agricultural": ClassPolicy(high_min_minutes=30, high_energy_share=0.08, high_min_kwh=2,
                                    low_min_minutes=120, low_energy_share=0.1,
                                    zero_min_minutes=120, young_dev=0.7,
                                    theft_window=True),
    }


class DetectionSettings(Section):
    #: Reading interval assumed until a meter states its own or it is inferred from the data.
    interval_s: Annotated[int, Field(ge=60, le=86_400)] = 900
    #: Infer each meter's interval from the gaps between its readings (a stated interval in the
    #: registry or the reading always wins).
    infer_interval: bool = True
    #: Hours of a meter's load before anything is judged (the first day is judged, loosely).
    warmup_h: Annotated[float, Field(ge=0)] = 6.0
    #: Band around the usual log-load, in log-dispersions above and below the usual level.
    band_hi: Annotated[float, Field(gt=0)] = 4.0
    band_lo: Annotated[float, Field(gt=0)] = 3.0
    #: How much wider the band is while a slot has little evidence (shrinks as 1/sqrt(samples)).
    thin_widen: Annotated[float, Field(ge=0)] = 2.0
    #: Readings in a row back inside the band before a fault or quality alarm resolves.
    clear_intervals: Annotated[int, Field(ge=1)] = 2
    #: Minutes back well inside the band (its inner half) before a consumption alarm resolves.
    clear_minutes: Annotated[float, Field(ge=0)] = 60.0
    #: Per customer class: how long and how much energy makes a consumption episode news.
    policy: dict[str, ClassPolicy] = Field(default_factory=_policies)
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
    #: Daily energy at this ratio of the usual (or beyond its inverse) for ``level_days``
    #: days in a row is a level shift.
    level_ratio: Annotated[float, Field(gt=1)] = 2.0
    level_days: Annotated[int, Field(ge=1)] = 2
    #: Days of a meter's own history before daily levels are judged.
    daily_min_days: Annotated[int, Field(ge=1)] = 5
    #: Possible theft: daily energy below this fraction of the meter's usual ...
    theft_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.6
    #: ... for this many days in a row, while the day keeps the usual shape (correlation of the
    #: hourly curve with the usual one at least ``theft_shape_corr``: a bypass scales the load
    #: down, an empty house flattens it) ...
    theft_days: Annotated[int, Field(ge=1)] = 2
    #: ... or, within the day, the last ``theft_hours`` hours at that fraction of the usual
    #: energy of those hours, with the usual hourly shape ...
    theft_hours: Annotated[float, Field(ge=2, le=24)] = 12.0
    #: Correlation of those hours with the usual ones that counts as the usual shape (12 hourly
    #: points correlate at random far more than 24 do: a stricter bar than ``theft_shape_corr``).
    theft_window_corr: Annotated[float, Field(ge=-1, le=1)] = 0.6
    theft_shape_corr: Annotated[float, Field(ge=-1, le=1)] = 0.3
    #: ... and the segment does not veto it (its median ratio stays above this), unless the
    #: meter's own evidence is strong (ratio below ``theft_strong_ratio``).
    theft_segment_ratio: Annotated[float, Field(gt=0, le=1)] = 0.7
    theft_strong_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    #: A manager's "false alarm" verdict widens that meter's thresholds for that kind of alarm
    #: (by ``feedback_strength`` per verdict), fading with this half-life; "confirmed" resets it.
    feedback_half_life_days: Annotated[float, Field(gt=0)] = 42.0
    feedback_strength: Annotated[float, Field(ge=0)] = 0.5
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
