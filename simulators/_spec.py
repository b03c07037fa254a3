"""The fleet definition (``config/fleets/*.yaml``) as validated settings, and the simulated meter.

A fleet file says how many customers of each class there are, where they hang on the grid
(regions cut into grid cells), how big they are (annual energy, contracted capacity), how often
their meters report, over which period, and which anomalies to inject at which rate. Everything
random is drawn from ``numpy.random.default_rng`` seeded by the fleet seed, so the same file and
seed always give the same meters, data and labels.

The bottom of the simulator's one-way chain: :class:`FleetSpec` is what the file says; the
modules above it draw the meters (``_population``), plan anomalies (``_anomalies``), shape the
load (``_load``), generate the data (``_engine``), and ``_fleet.Fleet`` adds ``meters()`` and
``generate()`` to the spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridwatch._schemas import CustomerClass, MeterMeta
from gridwatch._settings import describe_validation_error
from gridwatch.simulators._device_spec import DeviceSpec, parse_duration

__all__ = [
    "ANOMALY_SHAPES",
    "BDEW_PROFILES",
    "CLASS_DEFAULTS",
    "AnomalySpec",
    "ClassSpec",
    "FleetError",
    "FleetSpec",
    "LogNormal",
    "PowerFactorSpec",
    "Region",
    "SimMeter",
    "TemperatureSpec",
    "VoltageSpec",
    "parse_duration",
]

#: The BDEW standard load profiles shipped by demandlib (``demandlib.bdew.ElecSlp``).
BDEW_PROFILES = ("h0", "g0", "g1", "g2", "g3", "g4", "g5", "g6", "l0", "l1", "l2")

#: Anomaly shapes the simulator can inject (the keys of ``anomalies.mix``).
ANOMALY_SHAPES = (
    "spike", "drop", "level_shift", "outage", "feeder_outage", "comm_loss", "register_frozen",
    "tamper", "possible_theft", "voltage_sag", "voltage_swell", "low_power_factor",
    "over_capacity_risk", "clock_drift",
)

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class FleetError(ValueError):
    """The fleet file cannot be used; ``str()`` names the file, the field and the bad value."""


Duration = Annotated[timedelta, Field(ge=timedelta(0))]


def _default_shifts() -> dict[Literal[1, 2, 3], float]:
    return {1: 0.3, 2: 0.4, 3: 0.3}


class LogNormal(BaseModel):
    """A positive quantity spread log-normally around ``median``."""

    model_config = _FROZEN
    median: Annotated[float, Field(gt=0)]
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.4


class ClassSpec(BaseModel):
    """One customer class of the fleet. Unset fields take the class defaults below."""

    model_config = _FROZEN

    #: Number of customers of this class (each has ``meters_per_customer`` meters).
    count: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    meters_per_customer: Annotated[int, Field(ge=1, le=100)] = 1
    #: BDEW profile mix (weights), for example ``{g0: 0.5, g1: 0.3, g4: 0.2}``; not used by the
    #: industrial class, which follows shift patterns.
    profiles: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    #: Annual energy per meter, kWh.
    annual_kwh: LogNormal = LogNormal(median=3500)
    #: Contracted capacities to choose from, kVA: each meter gets the smallest one that covers
    #: its expected peak (profile peak, noise and weather margins) times ``capacity_headroom``;
    #: annual energy is capped so that the largest one still does.
    contracted_kva: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] = [13.8]
    capacity_headroom: Annotated[float, Field(ge=1.0, le=10)] = 1.1
    three_phase_share: Annotated[float, Field(ge=0, le=1)] = 0.3
    #: Share of meters with rooftop PV (they export at midday; ``has_export``).
    pv_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    pv_kwp: LogNormal = LogNormal(median=6.0, sigma=0.3)
    nominal_voltage_v: Annotated[float, Field(gt=0, le=500_000)] = 230.0
    #: Relative standard deviation of the per-interval noise, and of the day-to-day level.
    noise: Annotated[float, Field(ge=0, le=2)] = 0.15
    daily_noise: Annotated[float, Field(ge=0, le=2)] = 0.08
    #: Typical power factor at full load (drawn uniformly per meter); lower at light load.
    pf: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]] = (
        0.95, 0.99)
    #: Relative load change per °C colder than normal (heating) and per °C above 24 °C.
    heating_per_c: Annotated[float, Field(ge=0, le=0.2)] = 0.01
    cooling_per_c: Annotated[float, Field(ge=0, le=0.2)] = 0.01
    #: Industrial only: share of sites running 1, 2 or 3 shifts, and share working weekends.
    shifts: dict[Literal[1, 2, 3], Annotated[float, Field(ge=0)]] = Field(
        default_factory=_default_shifts)
    weekend_share: Annotated[float, Field(ge=0, le=1)] = 0.3
    #: Industrial only: load outside the shifts relative to load inside them.
    base_load: Annotated[float, Field(ge=0, le=1)] = 0.25

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            if name.lower() not in BDEW_PROFILES:
                raise ValueError(
                    f"unknown BDEW profile {name!r} (choose from {', '.join(BDEW_PROFILES)})")
        if v and sum(v.values()) <= 0:
            raise ValueError("the profile weights must not all be zero")
        return {k.lower(): w for k, w in v.items()}

    @field_validator("contracted_kva")
    @classmethod
    def _sorted(cls, v: list[float]) -> list[float]:
        return sorted(v)

    @model_validator(mode="after")
    def _pf_order(self) -> ClassSpec:
        if self.pf[0] > self.pf[1]:
            raise ValueError(f"pf range {list(self.pf)} must be [low, high]")
        return self


#: Class defaults (sizes from typical German/European distribution grids; BDEW profile names
#: from demandlib). A fleet file overrides any of these per class.
CLASS_DEFAULTS: dict[CustomerClass, dict[str, Any]] = {
    CustomerClass.RESIDENTIAL: dict(
        profiles={"h0": 1.0}, annual_kwh={"median": 3200, "sigma": 0.45},
        contracted_kva=[6.9, 13.8, 20.7, 27.7, 43.6], three_phase_share=0.4, pv_share=0.12,
        noise=0.25, daily_noise=0.12, pf=(0.95, 0.99), heating_per_c=0.012, cooling_per_c=0.01),
    CustomerClass.COMMERCIAL: dict(
        profiles={"g0": 0.3, "g1": 0.25, "g2": 0.1, "g3": 0.1, "g4": 0.15, "g5": 0.05,
                  "g6": 0.05},
        annual_kwh={"median": 30000, "sigma": 0.8},
        contracted_kva=[27.7, 43.6, 69.3, 110, 173, 277, 400], three_phase_share=0.95,
        pv_share=0.05, pv_kwp={"median": 30, "sigma": 0.5}, noise=0.08, daily_noise=0.06,
        pf=(0.9, 0.97), heating_per_c=0.008, cooling_per_c=0.015),
    CustomerClass.INDUSTRIAL: dict(
        annual_kwh={"median": 2_000_000, "sigma": 0.9},
        contracted_kva=[250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000],
        meters_per_customer=2, three_phase_share=1.0, noise=0.04, daily_noise=0.04,
        pf=(0.86, 0.95), heating_per_c=0.002, cooling_per_c=0.004, base_load=0.25),
    CustomerClass.AGRICULTURAL: dict(
        profiles={"l0": 0.4, "l1": 0.35, "l2": 0.25},
        annual_kwh={"median": 25000, "sigma": 0.7},
        contracted_kva=[27.7, 43.6, 69.3, 110, 173], three_phase_share=1.0, pv_share=0.2,
        pv_kwp={"median": 40, "sigma": 0.5}, noise=0.1, daily_noise=0.06, pf=(0.88, 0.96),
        heating_per_c=0.005, cooling_per_c=0.005),
}


class Region(BaseModel):
    """A region of the service area, cut into ``cells`` grid cells of about equal size."""

    model_config = _FROZEN
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    cells: Annotated[int, Field(ge=1, le=100_000)] = 4
    #: Relative share of the customers living in this region.
    weight: Annotated[float, Field(gt=0)] = 1.0


class VoltageSpec(BaseModel):
    """Supply voltage around each meter's nominal, as fractions of nominal (EN 50160: ±10 %).

    Outside injected sags and swells every phase voltage stays inside ``band``."""

    model_config = _FROZEN
    band: tuple[float, float] = (0.95, 1.05)
    #: Per-cell offset spread, relative drop at full load, per-reading noise (fractions).
    cell_spread: Annotated[float, Field(ge=0, le=0.1)] = 0.015
    load_drop: Annotated[float, Field(ge=0, le=0.1)] = 0.02
    noise: Annotated[float, Field(ge=0, le=0.05)] = 0.003

    @model_validator(mode="after")
    def _order(self) -> VoltageSpec:
        lo, hi = self.band
        if not 0.5 <= lo < 1.0 < hi <= 1.5:
            raise ValueError(f"voltage band {list(self.band)} must be [low < 1 < high] "
                             "as fractions of nominal, e.g. [0.95, 1.05]")
        return self


class PowerFactorSpec(BaseModel):
    """Outside injected low-power-factor episodes the power factor stays inside ``band``."""

    model_config = _FROZEN
    band: tuple[float, float] = (0.8, 1.0)
    #: How much lower the power factor is at very light load than at full load.
    light_load_drop: Annotated[float, Field(ge=0, le=0.5)] = 0.06

    @model_validator(mode="after")
    def _order(self) -> PowerFactorSpec:
        lo, hi = self.band
        if not 0 < lo < hi <= 1:
            raise ValueError(f"power factor band {list(self.band)} must be 0 < low < high <= 1")
        return self


class TemperatureSpec(BaseModel):
    """A synthetic outdoor temperature: seasonal and daily cycles plus day-to-day weather."""

    model_config = _FROZEN
    mean_c: float = 9.5
    seasonal_amplitude_c: Annotated[float, Field(ge=0)] = 9.0
    daily_amplitude_c: Annotated[float, Field(ge=0)] = 4.0
    weather_sigma_c: Annotated[float, Field(ge=0)] = 3.0


class AnomalySpec(BaseModel):
    """Which anomalies to inject: ``rate_per_meter_day`` × meters × days events in all, split by
    the ``mix`` weights; ``counts`` fixes the number of a shape exactly. No anomaly starts
    before ``warmup`` has passed (detectors need a baseline); a fleet whose duration is not
    longer than the warm-up gets no anomalies."""

    model_config = _FROZEN
    rate_per_meter_day: Annotated[float, Field(ge=0, le=10)] = 0.01
    mix: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict.fromkeys(ANOMALY_SHAPES, 1.0))
    counts: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    warmup: Duration = timedelta(0)

    _dur = field_validator("warmup", mode="before")(parse_duration)

    @field_validator("mix", "counts")
    @classmethod
    def _known(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if name not in ANOMALY_SHAPES:
                raise ValueError(
                    f"unknown anomaly {name!r} (choose from {', '.join(ANOMALY_SHAPES)})")
        return v


@dataclass(frozen=True, slots=True)
class SimMeter:
    """One simulated meter with the facts the registry needs."""

    index: int
    meter_id: str
    customer_id: str
    customer_name: str
    customer_class: CustomerClass
    region: str
    grid_cell: str
    concentrator_id: str
    contracted_kva: float
    phases: int
    nominal_voltage_v: float
    has_export: bool
    profile: str
    annual_kwh: float
    interval_s: int
    #: Simulation parameters (not registry facts): rooftop PV peak and full-load power factor.
    pv_kwp: float = 0.0
    pf_full: float = 0.97

    def meta(self) -> MeterMeta:
        """The registry view of this meter."""
        return MeterMeta(
            meter_id=self.meter_id, customer_id=self.customer_id,
            customer_class=self.customer_class, grid_cell=self.grid_cell,
            contracted_kva=self.contracted_kva, has_export=self.has_export, phases=self.phases,
            nominal_voltage_v=self.nominal_voltage_v, interval_s=self.interval_s)


class FleetSpec(BaseModel):
    """A simulated meter fleet, as read from ``config/fleets/<name>.yaml``: the settings only
    (``_fleet.Fleet`` adds the meters and the data)."""

    model_config = _FROZEN

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "fleet"
    seed: int = 0
    start: datetime = datetime(2024, 3, 4, tzinfo=UTC)
    duration: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=1)
    interval_min: Literal[1, 15, 30, 60] = 15
    #: Public holidays (``holidays.country_holidays``) and the local time of the load profiles.
    country: Annotated[str, Field(min_length=2, max_length=3)] = "DE"
    subdivision: str | None = None
    timezone: str = "Europe/Berlin"
    #: Latitude of the service area, degrees north (PV output follows the sun's elevation).
    latitude: Annotated[float, Field(ge=-66, le=66)] = 51.0
    regions: Annotated[list[Region], Field(min_length=1)] = Field(
        default_factory=lambda: [Region(name="central", cells=4)])
    customers: dict[CustomerClass, ClassSpec] = Field(default_factory=dict)
    voltage: VoltageSpec = VoltageSpec()
    power_factor: PowerFactorSpec = PowerFactorSpec()
    temperature: TemperatureSpec = TemperatureSpec()
    anomalies: AnomalySpec = AnomalySpec()
    #: Transformers and industrial equipment with device telemetry (``_devices``); none if unset.
    devices: DeviceSpec | None = None
    #: Meters per data concentrator (batched MQTT payloads go per concentrator).
    meters_per_concentrator: Annotated[int, Field(ge=1, le=100_000)] = 200

    _dur = field_validator("duration", mode="before")(parse_duration)

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError(f"start {v.isoformat()} needs a time zone, e.g. 2024-03-04T00:00Z")
        if v.year < 2000:
            raise ValueError(f"start {v.isoformat()} is before 2000")
        return v.astimezone(UTC)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name)") from None
        return v

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        import holidays

        if v.upper() not in holidays.list_supported_countries():
            raise ValueError(f"the holidays package does not know country {v!r}")
        return v.upper()

    @field_validator("customers", mode="before")
    @classmethod
    def _class_defaults(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[Any, Any] = {}
        for key, spec in v.items():
            try:
                klass = CustomerClass(key)
            except ValueError:
                out[key] = spec  # pydantic reports the unknown class
                continue
            if isinstance(spec, int):
                spec = {"count": spec}
            if isinstance(spec, dict):
                spec = CLASS_DEFAULTS[klass] | spec
            out[key] = spec
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        step = timedelta(minutes=self.interval_min)
        if self.start.timestamp() % step.total_seconds():
            raise ValueError(f"start {self.start.isoformat()} is not on a "
                             f"{self.interval_min}-minute boundary")
        if self.duration < step:
            raise ValueError(f"duration {self.duration} is shorter than one interval")
        names = [r.name for r in self.regions]
        if len(set(names)) != len(names):
            raise ValueError(f"region names repeat: {names}")
        if self.n_meters == 0:
            raise ValueError("the fleet has no customers: set customers.<class>.count")
        return self

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> Self:
        """Read and validate a fleet file; ``overrides`` replace top-level keys.

        Raises :class:`FleetError` naming the file, the field and the bad value."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FleetError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise FleetError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise FleetError(f"{path}: the top level must be a mapping")
        return cls.from_dict(data | overrides, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "fleet") -> Self:
        """Validate a fleet given as a mapping (as in the YAML file)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise FleetError(describe_validation_error(exc, source)) from None

    # -- derived facts -----------------------------------------------------------------------

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.interval_min)

    @property
    def n_intervals(self) -> int:
        return int(self.duration / self.step)

    @property
    def end(self) -> datetime:
        """The first instant after the simulated period."""
        return self.start + self.n_intervals * self.step

    @property
    def n_meters(self) -> int:
        return sum(s.count * s.meters_per_customer for s in self.customers.values())

    @property
    def n_readings(self) -> int:
        """Readings the fleet would send without injected gaps."""
        return self.n_meters * self.n_intervals

    def timestamps(self) -> Iterator[datetime]:
        for k in range(self.n_intervals):
            yield self.start + k * self.step
