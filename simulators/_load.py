"""Load shapes: BDEW standard load profiles, industrial shift patterns, temperature and PV.

The residential (H0), commercial (G0–G6) and agricultural (L0–L2) shapes are the BDEW
standard load profiles ("Standardlastprofile Strom", BDEW/VDEW 1999) as shipped and calendarised
by demandlib (``demandlib.bdew.ElecSlp``: 15-minute values in local time, winter / summer /
transition seasons, workday / Saturday / Sunday, public holidays treated as Sundays). They are
normalised here to a mean of 1 over each year, so ``profile × annual_kwh / 8760`` is in kW.
Industrial sites follow shift patterns (one, two or three shifts, weekends off or on).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from gridwatch.simulators._spec import BDEW_PROFILES, FleetSpec

SLOT = timedelta(minutes=15)
INDUSTRIAL_PATTERNS = tuple(f"ind{s}{w}" for s in (1, 2, 3) for w in ("", "w"))
PROFILE_NAMES = BDEW_PROFILES + INDUSTRIAL_PATTERNS
#: Shift hours (local time) of one-, two- and three-shift operation.
SHIFT_HOURS = {1: (6.0, 14.0), 2: (6.0, 22.0), 3: (0.0, 24.0)}


def _holidays(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    import holidays

    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year))


@functools.lru_cache(maxsize=16)
def bdew_year(year: int, country: str, subdivision: str | None) -> np.ndarray:
    """The eleven BDEW profiles of one year at 15-minute resolution, each with mean 1.

    Shape ``(len(BDEW_PROFILES), slots_in_year)``; slot 0 is local midnight of 1 January."""
    from demandlib import bdew

    # demandlib turns every warning into an error process-wide (warnings.simplefilter("error")
    # inside ElecSlp); keep that contained.
    with warnings.catch_warnings():
        slp = bdew.ElecSlp(year, holidays=_holidays(country, subdivision, year))
        frame = slp.get_profiles(*BDEW_PROFILES)
    values = frame.to_numpy(dtype=np.float64).T.copy()
    values *= values.shape[1]  # from "share of the annual energy per slot" to "× mean power"
    return values


@functools.lru_cache(maxsize=16)
def industrial_year(year: int, country: str, subdivision: str | None,
                    base_load: float = 0.25) -> np.ndarray:
    """Shift patterns for one year, 15-minute slots in local time, each with mean 1.

    Outside the shift hours, on days off and on public holidays the site draws ``base_load``
    of its working load; ramps take an hour, and there is a short dip at the shift break."""
    start = datetime(year, 1, 1)
    n = int((datetime(year + 1, 1, 1) - start) / SLOT)
    hours = (np.arange(n) % 96) / 4.0
    day_of_year = np.arange(n) // 96
    first = date(year, 1, 1)
    weekday = (first.weekday() + day_of_year) % 7
    hol = {(d - first).days for d in _holidays(country, subdivision, year)}
    holiday = np.isin(day_of_year, list(hol))
    out = []
    for name in INDUSTRIAL_PATTERNS:
        shifts, weekend_on = int(name[3]), name.endswith("w")
        lo, hi = SHIFT_HOURS[shifts]
        on = (hours >= lo) & (hours < hi)
        workday = ~holiday & ((weekday < 5) | weekend_on)
        if not weekend_on:
            workday &= weekday < 5
        level = np.where(on & workday, 1.0, base_load)
        level = np.where(on & workday & (np.abs(hours - 12.0) < 0.3), 0.85, level)
        kernel = np.ones(4) / 4.0  # one-hour ramps
        level = np.convolve(np.concatenate([level[-3:], level]), kernel, mode="valid")
        out.append(level / level.mean())
    return np.vstack(out)


@dataclass(frozen=True)
class ProfileTable:
    """All shapes over the local years a simulation touches, at 15-minute resolution."""

    origin: datetime  # naive local midnight, 1 January of the first year
    values: np.ndarray  # (len(PROFILE_NAMES), slots)

    @classmethod
    def for_fleet(cls, fleet: FleetSpec, base_load: float = 0.25) -> ProfileTable:
        tz = ZoneInfo(fleet.timezone)
        first = (fleet.start - timedelta(days=1)).astimezone(tz).year
        last = (fleet.end + timedelta(days=1)).astimezone(tz).year
        blocks = []
        for year in range(first, last + 1):
            blocks.append(np.vstack([
                bdew_year(year, fleet.country, fleet.subdivision),
                industrial_year(year, fleet.country, fleet.subdivision, base_load),
            ]))
        return cls(datetime(first, 1, 1), np.hstack(blocks))

    def mean_over(self, local_start: datetime, minutes: int) -> np.ndarray:
        """Mean of every profile over ``minutes`` from the naive local time ``local_start``."""
        s0 = int((local_start - self.origin) / SLOT)
        n = max(1, minutes // 15)
        s0 = min(max(s0, 0), self.values.shape[1] - n)
        return self.values[:, s0:s0 + n].mean(axis=1)

    def profile(self, name: str) -> np.ndarray:
        return self.values[PROFILE_NAMES.index(name)]


class Climate:
    """Outdoor temperature: seasonal and daily cycles plus day-to-day weather (AR(1)), and the
    daily sky clearness for PV; one value for the whole service area."""

    def __init__(self, fleet: FleetSpec, rng: np.random.Generator) -> None:
        spec = fleet.temperature
        self.spec = spec
        self.first_day = fleet.start.date() - timedelta(days=1)
        days = (fleet.end.date() - self.first_day).days + 2
        weather = np.zeros(days)
        for d in range(1, days):
            weather[d] = 0.7 * weather[d - 1] + math.sqrt(1 - 0.49) * rng.standard_normal()
        self.weather = weather * spec.weather_sigma_c
        self.clearness = rng.uniform(0.25, 1.0, size=days)
        self.latitude = fleet.latitude

    def normal_c(self, local: datetime) -> float:
        """The climatological temperature at this local time (no weather)."""
        s = self.spec
        doy = local.timetuple().tm_yday + local.hour / 24.0
        seasonal = -s.seasonal_amplitude_c * math.cos(2 * math.pi * (doy - 20) / 365.25)
        daily = -s.daily_amplitude_c * math.cos(2 * math.pi * (local.hour + local.minute / 60
                                                               - 3.0) / 24.0)
        return s.mean_c + seasonal + daily

    def temperature_c(self, local: datetime) -> tuple[float, float]:
        """(actual, normal) temperature at this local time."""
        normal = self.normal_c(local)
        d = (local.date() - self.first_day).days
        return normal + float(self.weather[min(max(d, 0), len(self.weather) - 1)]), normal

    def pv_per_kwp(self, solar: datetime) -> float:
        """AC output per kWp at this local solar (standard, not summer) time."""
        doy = solar.timetuple().tm_yday
        decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
        lat = math.radians(self.latitude)
        omega = math.radians(15.0 * (solar.hour + solar.minute / 60.0 - 12.0))
        sin_elev = (math.sin(lat) * math.sin(decl)
                    + math.cos(lat) * math.cos(decl) * math.cos(omega))
        if sin_elev <= 0:
            return 0.0
        d = (solar.date() - self.first_day).days
        clear = float(self.clearness[min(max(d, 0), len(self.clearness) - 1)])
        return 0.8 * clear * sin_elev ** 1.2


def temperature_factor(actual: float, normal: float, heating: np.ndarray,
                       cooling: np.ndarray) -> np.ndarray:
    """Relative load change when it is colder than normal (heating) or hot (cooling)."""
    hot = max(0.0, actual - 24.0) - max(0.0, normal - 24.0)
    return np.clip(1.0 + heating * (normal - actual) + cooling * hot, 0.5, 2.0)
