"""Devices of the registry: distribution transformers of a grid cell and an industrial site's
equipment, each with a kind, an owner and its ratings.

A ``devices:`` section of the registry lists them::

    devices:
      - {id: tx-c01, kind: transformer, grid_cell: c01, meters: [m1, m2],
         ratings: {kva: 630, temp_limit_c: 105, hot_temp_limit_c: 120}}
      - {id: cmp-7, kind: compressor, customer: ind-3,
         ratings: {rated_kw: 75, rated_current_a: 135},
         shift: {start_h: 6, end_h: 22, weekends: false, timezone: Asia/Shanghai}}

A transformer belongs to a grid cell; equipment belongs to a customer (its grid cell is the
customer's, filled in when the registry is cross-checked).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridwatch._schemas import ID_PATTERN

__all__ = ["Device", "DeviceKind", "Ratings", "Shift", "check_devices"]

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_FROZEN = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DeviceKind(StrEnum):
    TRANSFORMER = "transformer"
    MOTOR = "motor"
    COMPRESSOR = "compressor"
    CHILLER = "chiller"
    FURNACE = "furnace"
    PV_INVERTER = "pv_inverter"


class Ratings(BaseModel):
    """Nameplate ratings. ``temp_limit_c`` is the limit of the main temperature (a
    transformer's top oil, a motor's winding); ``hot_temp_limit_c`` that of the second sensor
    (a transformer's winding hot spot, a motor's bearing)."""

    model_config = _FROZEN

    kva: Positive | None = None
    rated_kw: Positive | None = None
    rated_current_a: Positive | None = None
    voltage_v: Positive | None = None
    temp_limit_c: Annotated[float, Field(gt=-50, lt=2000)] | None = None
    hot_temp_limit_c: Annotated[float, Field(gt=-50, lt=2000)] | None = None
    #: Rated output of a compressor (m³/min of air) or a chiller (kW of cooling).
    rated_output: Positive | None = None

    @property
    def power_kw(self) -> float | None:
        """Rated active power: ``rated_kw``, else ``kva`` at unity power factor."""
        return self.rated_kw or self.kva


class Shift(BaseModel):
    """When a site's equipment is meant to run: local hours ``[start_h, end_h)`` on workdays
    (and on weekends when ``weekends``)."""

    model_config = _FROZEN

    start_h: Annotated[float, Field(ge=0, lt=24)] = 6.0
    end_h: Annotated[float, Field(gt=0, le=24)] = 22.0
    weekends: bool = False
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name)") from None
        return v

    @model_validator(mode="after")
    def _order(self) -> Shift:
        if self.end_h <= self.start_h:
            raise ValueError(f"shift end {self.end_h} h is not after its start {self.start_h} h")
        return self

    def hours_outside(self, ts: datetime, tolerance_h: float = 1.0) -> float:
        """How far (hours) ``ts`` lies outside the shift; 0 inside it or within the tolerance of
        its edges (working days before and after count, so a night shift ending after midnight is
        not outside); 24 when no working day is near."""
        local = ts.astimezone(ZoneInfo(self.timezone))
        h = local.hour + local.minute / 60.0
        best = math.inf
        for off in (-1, 0, 1):
            day = local.date() + timedelta(days=off)
            if day.weekday() >= 5 and not self.weekends:
                continue
            lo, hi = self.start_h + 24 * off, self.end_h + 24 * off
            if lo <= h < hi:
                return 0.0
            best = min(best, lo - h if h < lo else h - hi)
        return 24.0 if best == math.inf else max(0.0, best - tolerance_h)


#: What each kind must state in its ratings for the physical rules to apply.
_NEEDS: dict[DeviceKind, tuple[str, ...]] = {
    DeviceKind.TRANSFORMER: ("kva",),
    DeviceKind.MOTOR: ("rated_kw", "rated_current_a"),
    DeviceKind.COMPRESSOR: ("rated_kw", "rated_current_a", "rated_output"),
    DeviceKind.CHILLER: ("rated_kw", "rated_output"),
    DeviceKind.FURNACE: ("rated_kw",),
    DeviceKind.PV_INVERTER: ("rated_kw",),
}


class Device(BaseModel):
    """One device of the registry."""

    model_config = _FROZEN

    id: Ident
    kind: DeviceKind
    name: str = ""
    customer: Ident | None = None
    grid_cell: Ident | None = None
    #: Meters a transformer feeds (its load is theirs), or a site's meters the equipment is on.
    meters: tuple[Ident, ...] = ()
    ratings: Ratings = Ratings()
    shift: Shift | None = None

    @model_validator(mode="after")
    def _owner(self) -> Device:
        if self.kind is DeviceKind.TRANSFORMER and not self.grid_cell:
            raise ValueError(f"transformer {self.id!r} needs a grid_cell")
        if self.kind is not DeviceKind.TRANSFORMER and not self.customer:
            raise ValueError(f"{self.kind.value} {self.id!r} needs a customer (its owner)")
        missing = [r for r in _NEEDS[self.kind] if getattr(self.ratings, r) is None]
        if missing:
            raise ValueError(f"{self.kind.value} {self.id!r}: ratings need "
                             f"{', '.join(missing)}")
        return self


def check_devices(devices: tuple[Device, ...], customers: dict[str, Any],
                  cells: dict[str, Any], meter_owner: dict[str, Any]
                  ) -> tuple[Device, ...]:
    """Cross-check devices against the registry (unique ids, owners and meters that exist) and
    fill in each customer device's grid cell. Raises ``ValueError`` naming the entry."""
    seen: set[str] = set()
    out: list[Device] = []
    for i, dev in enumerate(devices):
        where = f"devices[{i}] (id {dev.id!r})"
        if dev.id in seen:
            raise ValueError(f"devices[{i}]: duplicate id {dev.id!r}")
        seen.add(dev.id)
        if dev.customer is not None:
            cust = customers.get(dev.customer)
            if cust is None:
                raise ValueError(f"{where}: customer {dev.customer!r} is not in customers")
            if dev.grid_cell is None:
                dev = dev.model_copy(update={"grid_cell": cust.grid_cell})
        if dev.grid_cell not in cells:
            raise ValueError(f"{where}: grid_cell {dev.grid_cell!r} is not in cells")
        for m in dev.meters:
            if m not in meter_owner:
                raise ValueError(f"{where}: meter {m!r} is not a meter of any customer")
        out.append(dev)
    return tuple(out)
