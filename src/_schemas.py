"""Value objects that cross stage boundaries: readings, device telemetry, batches and events.

They validate on construction and say which value was wrong. Timestamps are always
timezone-aware UTC; NaN and infinity are rejected everywhere (pydantic's ``allow_inf_nan=False``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Identifiers end up in MQTT topics, InfluxDB tags and file names: keep them to a safe alphabet.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

#: How far a timestamp may lie ahead of the receiving clock before it is rejected. Override per
#: validation with ``model_validate(data, context={"now": ..., "max_future": ...})``.
DEFAULT_MAX_FUTURE = timedelta(minutes=5)

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)


def _check_timestamp(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (for example 2024-05-01T00:15:00Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-01:00: past the last representable instant
        raise ValueError(f"timestamp {value.isoformat()} is out of range") from None
    ctx = info.context or {}
    max_future: timedelta = ctx.get("max_future", DEFAULT_MAX_FUTURE)
    if max_future != timedelta.max:  # (a file or the journal: no clock to read)
        now: datetime = ctx.get("now") or datetime.now(UTC)
        if value - now > max_future:
            raise ValueError(
                f"timestamp {value.isoformat()} is {value - now} ahead of the receiving clock "
                f"(tolerance {max_future})"
            )
    if value.year < 2000:
        raise ValueError(f"timestamp {value.isoformat()} is before 2000: the meter clock is unset")
    return value


class MeterStatus(StrEnum):
    """Status flags a meter may raise alongside a reading (a subset of DLMS/COSEM alarm bits)."""

    POWER_FAIL = "power_fail"
    POWER_RESTORED = "power_restored"
    CLOCK_INVALID = "clock_invalid"
    COVER_OPEN = "cover_open"
    MAGNETIC_TAMPER = "magnetic_tamper"
    REVERSE_FLOW = "reverse_flow"
    RELAY_OPEN = "relay_open"
    BATTERY_LOW = "battery_low"
    ESTIMATED = "estimated"


class Reading(BaseModel):
    """One interval reading of one smart meter.

    ``kw`` is the average active power over the interval (positive = import from the grid,
    negative = export); ``kwh`` the cumulative import register at ``ts``.
    """

    model_config = _STRICT

    meter_id: Identifier
    ts: datetime
    kw: Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
    kwh: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] | None = None
    export_kwh: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] | None = None
    voltage: Annotated[
        tuple[Annotated[float, Field(ge=0, le=500_000, allow_inf_nan=False)], ...],
        Field(min_length=1, max_length=3),
    ] | None = None
    current: Annotated[
        tuple[Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)], ...],
        Field(min_length=1, max_length=3),
    ] | None = None
    pf: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = None
    freq: Annotated[float, Field(ge=40, le=70, allow_inf_nan=False)] | None = None
    status: tuple[MeterStatus, ...] = ()
    #: Nominal reading interval in seconds, when the meter states it.
    interval_s: Annotated[int, Field(ge=1, le=86_400)] | None = None

    _ts = field_validator("ts")(_check_timestamp)

    @field_validator("voltage", "current", mode="before")
    @classmethod
    def _scalar_to_tuple(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (v,)
        return v

    @model_validator(mode="after")
    def _phases_agree(self) -> Reading:
        if self.voltage and self.current and len(self.voltage) != len(self.current):
            raise ValueError(
                f"voltage has {len(self.voltage)} phases but current has {len(self.current)}"
            )
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The wire form: what a meter sends and what the journal keeps."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
            "meter_id": self.meter_id,
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "kw": self.kw,
        }


class DeviceTelemetry(BaseModel):
    """Telemetry of a customer or grid device (transformer monitor, inverter, breaker, ...)."""

    model_config = _STRICT

    device_id: Identifier
    site: Identifier
    ts: datetime
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "device"
    metrics: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")], Finite],
                       Field(min_length=1, max_length=256)]
    status: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], ...] = ()

    _ts = field_validator("ts")(_check_timestamp)


class Batch(BaseModel):
    """Many readings in one message, as data concentrators and head-end systems send them."""

    model_config = _STRICT

    concentrator_id: Identifier | None = None
    sent_at: datetime | None = None
    readings: Annotated[list[Reading], Field(min_length=1, max_length=100_000)]


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


EvidenceValue = str | int | float | bool | None


class Event(BaseModel):
    """Something a detector found: what, about whom, since when, and the numbers behind it.

    ``onset`` is the best estimate of when the abnormal behaviour started; ``raised_at`` the event
    time of the reading (or timer) that raised it. ``state`` is ``firing`` while the condition
    holds and ``resolved`` once it clears; the alert fingerprint is ``meter_id`` + ``type``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    meter_id: Identifier
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    severity: Severity
    score: Annotated[float, Field(allow_inf_nan=False)]
    onset: datetime
    raised_at: datetime
    state: Annotated[str, Field(pattern=r"^(firing|resolved)$")] = "firing"
    summary: str = ""
    evidence: dict[str, EvidenceValue] = Field(default_factory=dict)
    customer_id: Identifier | None = None
    grid_cell: Identifier | None = None
    #: Other meters the event is about (a feeder outage names every silent meter).
    meters: tuple[str, ...] = ()

    @field_validator("onset", "raised_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        return v.astimezone(UTC)

    @field_validator("evidence")
    @classmethod
    def _finite_evidence(cls, v: dict[str, EvidenceValue]) -> dict[str, EvidenceValue]:
        for key, val in v.items():
            if isinstance(val, float) and not math.isfinite(val):
                raise ValueError(f"evidence {key!r} is not finite ({val})")
        return v

    @property
    def fingerprint(self) -> str:
        return f"{self.meter_id}/{self.type}"

    @property
    def episode_id(self) -> str:
        """The stable identity of the episode this event belongs to: the fingerprint and the
        onset (event time). A detector replaying an epoch after a crash emits the same onset,
        so a replayed event names the same episode."""
        return f"{self.fingerprint}@{self.onset.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"

    @property
    def identity(self) -> tuple[str, str, datetime, str]:
        """(meter, type, onset, transition): equal for an event and its replay."""
        return (self.meter_id, self.type, self.onset, self.state)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Score(BaseModel):
    """The detector's view of one reading: what was expected, and how unusual it was."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    meter_id: Identifier
    ts: datetime
    kw: float
    expected_kw: float
    score: float
    anomalous: bool = False
    segment: str | None = None


class Forecast(BaseModel):
    """A load forecast for one interval of a transformer (kVA) or an industrial customer (kW),
    made ``horizon`` ahead; ``actual`` is filled in once the interval has come (the same point
    in storage, so the score sits beside the forecast)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    target: Identifier
    target_kind: Annotated[str, Field(pattern=r"^(transformer|customer)$")]
    horizon: Annotated[str, Field(pattern=r"^(1h|1d)$")]
    ts: datetime
    made_at: datetime
    value: float
    p10: float
    p90: float
    limit: float | None = None
    actual: float | None = None
    grid_cell: Identifier | None = None
    customer_id: Identifier | None = None


class LoadProfile(BaseModel):
    """One meter's load profile for one day, with the segment and tags that describe it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    meter_id: Identifier
    day: datetime  # midnight UTC of the profiled day
    customer_id: Identifier | None = None
    segment: str = "unknown"
    tags: tuple[str, ...] = ()
    daily_kwh: float
    peak_kw: float
    valley_kw: float
    peak_valley_ratio: float | None = None
    load_factor: float | None = None
    night_day_ratio: float | None = None
    mom_growth: float | None = None
    #: Typical hourly curve (24 values, kW) learned so far, weekday or weekend as the day is.
    curve: tuple[float, ...] = ()


class AlertTransition(BaseModel):
    """A change of an alert's state (firing, acknowledged, escalated, resolved, ...), for audit
    and for storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str
    meter_id: Identifier
    type: str
    severity: Severity
    state: str
    at: datetime
    by: str = "gridwatch"
    grid_cell: str | None = None
    customer_id: str | None = None
    recipient: str | None = None
    #: Why it changed, when someone said (the reason given when resolving by hand).
    reason: str = ""


class CustomerClass(StrEnum):
    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"
    AGRICULTURAL = "agricultural"


class MeterMeta(BaseModel):
    """What the engine knows about a meter from the registry: whose it is, where it hangs on the
    grid, and the limits its readings are judged against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meter_id: Identifier
    customer_id: Identifier | None = None
    customer_class: CustomerClass = CustomerClass.RESIDENTIAL
    grid_cell: Identifier | None = None
    contracted_kva: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    has_export: bool = False
    phases: Annotated[int, Field(ge=1, le=3)] = 1
    nominal_voltage_v: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    interval_s: Annotated[int, Field(ge=60, le=86_400)] | None = None
    #: Local time zone and holiday country of the meter's grid cell (None: the settings').
    timezone: str | None = None
    holiday_country: str | None = None
