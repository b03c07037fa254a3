"""Time-of-use tariffs: a per-region schedule of tariff periods (``config/tariffs/<region>.yaml``)
and the power-factor adjustment. Anyone needing the tariff period of a moment uses
:func:`load_tariff` and :meth:`Tariff.period_of`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["Period", "Tariff", "TariffError", "load_tariff", "pf_adjustment"]

TARIFF_DIR = Path(__file__).resolve().parents[2] / "config" / "tariffs"
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class TariffError(ValueError):
    """The tariff file cannot be used; ``str()`` names the file and the problem."""


def _minutes(text: str) -> int:
    h, m = text.split(":")
    value = int(h) * 60 + int(m)
    if not 0 <= value <= 1440:
        raise ValueError(f"time {text!r} is not between 00:00 and 24:00")
    return value


class Period(BaseModel):
    """``name`` applies from ``start`` to ``end`` (local ``HH:MM``, end exclusive, ``24:00`` for
    midnight) in ``months`` (all months when empty). Later entries override earlier ones, so a
    sharp peak is listed after the peak it sits in."""

    model_config = _FROZEN
    name: Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,15}$")]
    start: str
    end: str
    months: tuple[Annotated[int, Field(ge=1, le=12)], ...] = ()

    @model_validator(mode="after")
    def _order(self) -> Period:
        if _minutes(self.end) <= _minutes(self.start):
            raise ValueError(f"period {self.name}: end {self.end} is not after start {self.start}")
        return self


class Tariff(BaseModel):
    model_config = _FROZEN
    region: str
    timezone: str = "UTC"
    currency: str = "CNY"
    flat_price_per_kwh: Annotated[float, Field(gt=0)]
    multipliers: dict[str, Annotated[float, Field(gt=0)]]
    periods: Annotated[tuple[Period, ...], Field(min_length=1)]
    power_factor_standard: Annotated[float, Field(gt=0, le=1)] = 0.9

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        ZoneInfo(v)
        return v

    @model_validator(mode="after")
    def _complete(self) -> Tariff:
        for p in self.periods:
            if p.name not in self.multipliers:
                raise ValueError(f"period {p.name!r} has no multiplier")
        for month in range(1, 13):
            covered = [False] * 1440
            for p in self.periods:
                if not p.months or month in p.months:
                    for minute in range(_minutes(p.start), _minutes(p.end)):
                        covered[minute] = True
            if not all(covered):
                gap = covered.index(False)
                raise ValueError(f"month {month}: {gap // 60:02d}:{gap % 60:02d} is in no period")
        return self

    def period_of(self, ts: datetime) -> str:
        """The tariff period of the interval starting at ``ts`` (aware)."""
        local = ts.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        name = ""
        for p in self.periods:
            if (not p.months or local.month in p.months) and \
                    _minutes(p.start) <= minute < _minutes(p.end):
                name = p.name
        return name

    def price(self, period: str) -> float:
        return self.flat_price_per_kwh * self.multipliers[period]


def load_tariff(region_or_path: str | Path) -> Tariff:
    """A region's tariff from ``config/tariffs/<region>.yaml``, or a tariff file by path."""
    path = Path(region_or_path)
    if not path.suffix:
        path = TARIFF_DIR / f"{region_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Tariff.model_validate(data)
    except OSError as exc:
        raise TariffError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, ValidationError, ValueError) as exc:
        raise TariffError(f"{path}: {exc}") from None


def pf_adjustment(pf: float, standard: float = 0.9) -> float:
    """The bill adjustment (share of the bill, + is a surcharge) for a month's power factor
    under the Chinese power-factor adjustment rules for a 0.90 standard: +0.5 % per 0.01 below
    the standard down to 0.70, +1 % per 0.01 from 0.69 to 0.65, +2 % per 0.01 below 0.65;
    -0.15 % per 0.01 above it, at most -0.75 %."""
    steps = round((standard - pf) * 100, 6)
    if steps <= 0:
        return -min(0.0075, 0.0015 * int(-steps + 1e-9))
    whole = int(steps + 1e-9)
    below70 = max(0, whole - round((standard - 0.70) * 100))
    below65 = max(0, whole - round((standard - 0.65) * 100))
    return 0.005 * (whole - below70) + 0.01 * (below70 - below65) + 0.02 * below65
