"""A meter's usual load, the way real load behaves: per-slot statistics of log-load.

Household load is heavy-tailed and bursty (a kettle or an oven multiplies it for one interval),
so the baseline works on ``log(kW + floor)`` — a burst is a ratio, not a number of standard
deviations — with winsorised exponentially weighted means (one burst cannot drag the usual level
up). Each reading learns into a hierarchy of slots:

``meter-wide`` → ``hour of day`` → ``day-type hour`` (weekday / day off) → ``time-of-week``

and a cold slot borrows from the level above it, shrunk by its own sample count, so a meter is
judged from its first day; the band around the usual level widens while evidence is thin and
narrows as the meter learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import DT0, GLOBAL, HR0, MeterRecord

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SHRINK = 4.0  #: pseudo-samples of the level above that a slot's own estimate is shrunk towards
_SHRINK_TOW = 6.0
_ALPHA_DT, _ALPHA_HR, _ALPHA_G = 0.06, 0.03, 0.004  #: slowest learning rate per level
_ALPHA_TOW = 0.15
_MIN_DEV = 0.08  #: log units: no band narrower than about ±8 %


def levels(slot: int) -> tuple[int, int]:
    """The day-type-hour and hour-of-day level indices of a time-of-week slot."""
    hour = slot % 24
    return DT0 + (24 if slot >= 120 else 0) + hour, HR0 + hour


def describe(slot: int) -> str:
    wd, hr = divmod(slot, 24)
    return f"{_DAYS[wd]} {hr:02d}:00"


@dataclass(slots=True)
class Band:
    """The usual load of one slot and the band around it (kW), with the evidence behind it."""

    expected_kw: float  #: the usual (typical) load
    mean_kw: float  #: the mean load (what energy forecasts add up)
    hi_kw: float
    lo_kw: float
    z: float  #: the reading's distance from the usual level, in log-dispersions
    samples: int  #: readings behind the slot (time-of-week + day-type)
    source: str  #: which level the estimate leans on


def floor_kw(rec: MeterRecord) -> float:
    return rec.floor_kw or 0.01


def band(rec: MeterRecord, slot: int, kw: float, s: DetectionSettings) -> Band:
    """The band for ``slot`` from the hierarchy (pure: learns nothing)."""
    d, h = levels(slot)
    n_g, n_h, n_d = float(rec.lv_n[GLOBAL]), float(rec.lv_n[h]), float(rec.lv_n[d])
    mu_g, dev_g = float(rec.lv_mu[GLOBAL]), float(rec.lv_dev[GLOBAL])
    w_h = n_h / (n_h + _SHRINK)
    mu_h = w_h * float(rec.lv_mu[h]) + (1 - w_h) * mu_g
    dev_h = w_h * float(rec.lv_dev[h]) + (1 - w_h) * dev_g
    w_d = n_d / (n_d + _SHRINK)
    mu_d = w_d * float(rec.lv_mu[d]) + (1 - w_d) * mu_h
    dev_d = w_d * float(rec.lv_dev[d]) + (1 - w_d) * dev_h
    n_s = float(rec.tow_n[slot])
    w_s = n_s / (n_s + _SHRINK_TOW)
    mu = w_s * float(rec.tow_mu[slot]) + (1 - w_s) * mu_d
    # thin evidence widens the band: a meter on its first day is judged, loosely
    dev = max(dev_d, _MIN_DEV) * (1.0 + s.thin_widen / math.sqrt(1.0 + n_d + 0.25 * n_h))
    f = floor_kw(rec)
    kw_g = float(rec.lv_kw[GLOBAL])
    mean_h = (n_h * float(rec.lv_kw[h]) + _SHRINK * kw_g) / (n_h + _SHRINK)
    mean_kw = (n_d * float(rec.lv_kw[d]) + _SHRINK * mean_h) / (n_d + _SHRINK)
    y = math.log(max(kw, 0.0) + f)
    source = ("time-of-week" if n_s >= _SHRINK_TOW else "day-type hour" if n_d >= _SHRINK
              else "hour of day" if n_h >= _SHRINK else "meter-wide")
    return Band(
        expected_kw=max(math.exp(mu) - f, 0.0), mean_kw=mean_kw,
        hi_kw=math.exp(mu + s.band_hi * dev) - f,
        lo_kw=max(math.exp(mu - s.band_lo * dev) - f, 0.0),
        z=(y - mu) / dev, samples=int(n_s + n_d), source=source,
    ) if n_g else Band(kw, kw, math.inf, 0.0, 0.0, 0, "none")


def learn(rec: MeterRecord, slot: int, kw: float) -> None:
    """Learn one reading into every level of the hierarchy (winsorised EW statistics)."""
    kw = max(kw, 0.0)
    g_n = int(rec.lv_n[GLOBAL])
    # the log offset follows the meter's own level, so a 10 kW shop and a 0.3 kW flat are
    # judged alike; it settles after the first day
    level = float(rec.lv_kw[GLOBAL]) if g_n else kw
    if g_n < 96 or not rec.floor_kw:
        rec.floor_kw = max(0.01, 0.05 * level)
    y = math.log(kw + rec.floor_kw)
    d, h = levels(slot)
    for idx, alpha in ((d, _ALPHA_DT), (h, _ALPHA_HR), (GLOBAL, _ALPHA_G)):
        n = int(rec.lv_n[idx])
        if n == 0:
            rec.lv_mu[idx] = y
            rec.lv_dev[idx] = 0.0
            rec.lv_kw[idx] = kw
        else:
            a = max(1.0 / (n + 1), alpha)
            mu = float(rec.lv_mu[idx])
            dev = float(rec.lv_dev[idx])
            r = y - mu
            if n >= 8:  # winsorise: one burst moves the level by a bounded step
                lim = 2.5 * max(dev, _MIN_DEV)
                r = max(-lim, min(lim, r))
            rec.lv_mu[idx] = mu + a * r
            rec.lv_dev[idx] = dev + a * (min(abs(y - mu), 4 * max(dev, _MIN_DEV)) - dev
                                         if n >= 8 else abs(y - mu) - dev)
            rec.lv_kw[idx] = float(rec.lv_kw[idx]) + a * (kw - float(rec.lv_kw[idx]))
        rec.lv_n[idx] = min(n + 1, 65_535)
    n = int(rec.tow_n[slot])
    if n == 0:
        rec.tow_mu[slot] = y
    else:
        a = max(1.0 / (n + 1), _ALPHA_TOW)
        mu = float(rec.tow_mu[slot])
        lim = 2.5 * max(float(rec.lv_dev[d]), _MIN_DEV)
        rec.tow_mu[slot] = mu + a * max(-lim, min(lim, y - mu))
    rec.tow_n[slot] = min(n + 1, 65_535)


def mean_kw_at(rec: MeterRecord, slot: int) -> float:
    """The mean load the meter usually draws in ``slot`` (kW; for forecasts)."""
    d, h = levels(slot)
    n_h, n_d = float(rec.lv_n[h]), float(rec.lv_n[d])
    kw_g = float(rec.lv_kw[GLOBAL])
    mean_h = (n_h * float(rec.lv_kw[h]) + _SHRINK * kw_g) / (n_h + _SHRINK)
    return (n_d * float(rec.lv_kw[d]) + _SHRINK * mean_h) / (n_d + _SHRINK)
