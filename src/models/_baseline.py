"""A meter's usual load, the way real load behaves: per-slot statistics of log-load.

Household load is heavy-tailed and bursty (a kettle or an oven multiplies it for one interval),
so the baseline works on ``log(kW + floor)`` — a burst is a ratio, not a number of standard
deviations — with winsorised exponentially weighted means (one burst cannot drag the usual level
up). Each reading learns into a hierarchy of slots:

``meter-wide`` → ``day-type hour`` (weekday / day off) → ``time-of-week``

and a cold slot borrows from the level above it, shrunk by its own sample count, so a meter is
judged from its first day; the band around the usual level widens while evidence is thin and
narrows as the meter learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import DT0, GLOBAL, MeterRecord

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SHRINK = 4.0  #: pseudo-samples of the level above that a slot's own estimate is shrunk towards
_SHRINK_TOW = 6.0
_ALPHA_DT, _ALPHA_G = 0.06, 0.004  #: slowest learning rate per level
_ALPHA_TOW = 0.15
_MIN_DEV = 0.08  #: log units: no band narrower than about ±8 %


def level(slot: int) -> int:
    """The day-type-hour level index of a time-of-week slot."""
    return DT0 + (24 if slot >= 120 else 0) + slot % 24


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
    hi_in: float  #: the inner band (half the width): where an episode counts as over
    lo_in: float
    z: float  #: the reading's distance from the usual level, in log-dispersions
    samples: int  #: readings behind the slot (time-of-week + day-type)
    source: str  #: which level the estimate leans on


def floor_kw(rec: MeterRecord) -> float:
    return rec.floor_kw or 0.01


def band(rec: MeterRecord, slot: int, kw: float, s: DetectionSettings,
         young_dev: float = 0.0) -> Band:
    """The band for ``slot`` from the hierarchy (pure: learns nothing)."""
    d = level(slot)
    n_g, n_d = float(rec.lv_n[GLOBAL]), float(rec.lv_n[d])
    if not n_g:
        return Band(kw, kw, math.inf, 0.0, math.inf, 0.0, 0.0, 0, "none")
    mu_g, dev_g = float(rec.lv_mu[GLOBAL]), float(rec.lv_dev[GLOBAL])
    w_d = n_d / (n_d + _SHRINK)
    mu_d = w_d * float(rec.lv_mu[d]) + (1 - w_d) * mu_g
    dev_d = w_d * float(rec.lv_dev[d]) + (1 - w_d) * dev_g
    n_s = float(rec.tow_n[slot])
    w_s = n_s / (n_s + _SHRINK_TOW)
    mu = w_s * float(rec.tow_mu[slot]) + (1 - w_s) * mu_d
    # thin evidence widens the band: a meter on its first day is judged, loosely
    dev = max(dev_d, _MIN_DEV, young_dev * (1 - w_d)) * (1.0 + s.thin_widen / math.sqrt(1.0 + n_d))
    f = floor_kw(rec)
    y = math.log(max(kw, 0.0) + f)
    source = ("time-of-week" if n_s >= _SHRINK_TOW else "day-type hour" if n_d >= _SHRINK
              else "meter-wide")
    return Band(
        expected_kw=max(math.exp(mu) - f, 0.0), mean_kw=mean_kw_at(rec, slot),
        hi_kw=math.exp(mu + s.band_hi * dev) - f,
        lo_kw=max(math.exp(mu - s.band_lo * dev) - f, 0.0),
        hi_in=math.exp(mu + s.band_hi * dev / 2) - f,
        lo_in=max(math.exp(mu - s.band_lo * dev / 2) - f, 0.0),
        z=(y - mu) / dev, samples=int(n_s + n_d), source=source,
    )


def learn(rec: MeterRecord, slot: int, kw: float, edge: tuple[float, float] | None = None
          ) -> None:
    """Learn one reading into every level of the hierarchy (winsorised EW statistics).

    ``edge`` is the slot's band (lo, hi kW) when the reading lies outside it: the slot levels
    then learn the band's edge, not the reading, so a fault cannot become its slot's usual in
    an hour, while a new habit that persists still moves the band day by day (the meter-wide
    level learns every reading, winsorised). A new slot starts
    from the meter-wide level, worth ``_SHRINK`` samples (as ``band`` reads it)."""
    kw = max(kw, 0.0)
    g_n = int(rec.lv_n[GLOBAL])
    # the log offset follows the meter's own level, so a 10 kW shop and a 0.3 kW flat are
    # judged alike; it settles after the first day
    usual = float(rec.lv_kw[GLOBAL]) if g_n else kw
    if g_n < 96 or not rec.floor_kw:
        rec.floor_kw = max(0.01, 0.05 * usual)
    f = rec.floor_kw
    y = math.log(kw + f)
    kw_slot = kw if edge is None else min(max(kw, edge[0]), edge[1])
    y_slot = math.log(kw_slot + f)
    _update(rec, GLOBAL, y, kw, _ALPHA_G, 0.0)  # the meter-wide level follows the seasons
    d = level(slot)
    if not rec.lv_n[d]:
        rec.lv_mu[d], rec.lv_dev[d] = rec.lv_mu[GLOBAL], rec.lv_dev[GLOBAL]
        rec.lv_kw[d] = rec.lv_kw[GLOBAL]
    _update(rec, d, y_slot, kw_slot, _ALPHA_DT, _SHRINK, edge is None)
    n = int(rec.tow_n[slot])
    mu = float(rec.tow_mu[slot]) if n else float(rec.lv_mu[d])
    a = max(1.0 / (n + 1 + _SHRINK_TOW), _ALPHA_TOW)
    lim = 2.5 * max(float(rec.lv_dev[d]), _MIN_DEV)
    rec.tow_mu[slot] = mu + a * max(-lim, min(lim, y_slot - mu))
    rec.tow_n[slot] = min(n + 1, 65_535)


def _update(rec: MeterRecord, idx: int, y: float, kw: float, alpha: float,
            prior: float, spread: bool = True) -> None:
    n = int(rec.lv_n[idx])
    if n == 0 and not prior:
        rec.lv_mu[idx] = y
        rec.lv_dev[idx] = 0.0
        rec.lv_kw[idx] = kw
    else:
        a = max(1.0 / (n + 1 + prior), alpha)
        mu = float(rec.lv_mu[idx])
        dev = float(rec.lv_dev[idx])
        r = y - mu
        if n + prior >= 8:  # winsorise: one burst moves the level by a bounded step
            lim = 2.5 * max(dev, _MIN_DEV)
            r = max(-lim, min(lim, r))
            d_new = min(abs(y - mu), 4 * max(dev, _MIN_DEV))
        else:
            d_new = abs(y - mu)
        rec.lv_mu[idx] = mu + a * r
        if spread:
            rec.lv_dev[idx] = dev + a * (d_new - dev)
        rec.lv_kw[idx] = float(rec.lv_kw[idx]) + a * (kw - float(rec.lv_kw[idx]))
    rec.lv_n[idx] = min(n + 1, 65_535)


def mean_kw_at(rec: MeterRecord, slot: int) -> float:
    """The mean load the meter usually draws in ``slot`` (kW; for forecasts)."""
    d = level(slot)
    n_d = float(rec.lv_n[d])
    return (n_d * float(rec.lv_kw[d]) + _SHRINK * float(rec.lv_kw[GLOBAL])) / (n_d + _SHRINK)
