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
from array import array

from gridwatch.models._config import DetectionSettings
from gridwatch.models._record import (
    F16,
    FLOOR_KW,
    GLOBAL,
    LOG_BIAS,
    LOG_STEP,
    LV_DEV,
    LV_KW,
    LV_MU,
    LV_N,
    TOW_MU,
    TOW_N,
    MeterRecord,
    enc_f16,
    enc_log,
)

__all__ = ["Band", "band", "describe", "floor_kw", "learn", "level", "mean_kw_at"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SHRINK = 4.0  #: pseudo-samples of the level above that a slot's own estimate is shrunk towards
_SHRINK_TOW = 6.0
_ALPHA_DT, _ALPHA_G = 0.06, 0.004  #: slowest learning rate per level
_ALPHA_TOW = 0.15
_MIN_DEV = 0.08  #: log units: no band narrower than about ±8 %
_INF = math.inf
_exp = math.exp
_log = math.log
_sqrt = math.sqrt
#: the day-type-hour level of each time-of-week slot (weekday hours, then day-off hours)
_LEVEL = tuple((24 if slot >= 120 else 0) + slot % 24 for slot in range(168))
# the record's encodings (see _record): log-load statistics in fixed point, mean kW in float16
_S, _B = LOG_STEP, LOG_BIAS


def level(slot: int) -> int:
    """The day-type-hour level index of a time-of-week slot."""
    return _LEVEL[slot]


def describe(slot: int) -> str:
    wd, hr = divmod(slot, 24)
    return f"{_DAYS[wd]} {hr:02d}:00"


class Band:
    """The usual load of one slot and the band around it (kW), with the evidence behind it.
    The inner band, the reading's distance and the evidence are computed when asked for."""

    __slots__ = ("_f", "_kw", "_mu", "_n_d", "_n_s", "_tail", "band_hi", "band_lo", "dev",
                 "expected_kw", "hi_kw", "lo_kw", "mean_kw")

    def __init__(self, expected_kw: float, mean_kw: float, hi_kw: float, lo_kw: float,
                 mu: float, dev: float, band_hi: float, band_lo: float, f: float, kw: float,
                 n_s: int, n_d: int, tail: bool = True) -> None:
        self.expected_kw = expected_kw  #: the usual (typical) load
        self.mean_kw = mean_kw  #: the mean load (what energy forecasts add up)
        self.hi_kw = hi_kw
        self.lo_kw = lo_kw
        self._mu, self.dev, self.band_hi, self.band_lo = mu, dev, band_hi, band_lo
        self._f, self._kw, self._n_s, self._n_d, self._tail = f, kw, n_s, n_d, tail

    @property
    def hi_in(self) -> float:
        """The inner band's top (half the width): where an episode counts as over."""
        if not self._tail:
            return _INF
        return _exp(self._mu + self.band_hi * self.dev / 2) - self._f

    @property
    def lo_in(self) -> float:
        if not self._tail:
            return 0.0
        return max(_exp(self._mu - self.band_lo * self.dev / 2) - self._f, 0.0)

    @property
    def z(self) -> float:
        """The reading's distance from the usual level, in log-dispersions."""
        if not self._tail:
            return 0.0
        return (_log(max(self._kw, 0.0) + self._f) - self._mu) / self.dev

    @property
    def samples(self) -> int:
        """Readings behind the slot (time-of-week + day-type)."""
        return int(self._n_s + self._n_d)

    @property
    def source(self) -> str:
        """Which level the estimate leans on."""
        if not self._tail:
            return "none"
        return ("time-of-week" if self._n_s >= _SHRINK_TOW else "day-type hour"
                if self._n_d >= _SHRINK else "meter-wide")


def floor_kw(rec: MeterRecord) -> float:
    return rec.floor_kw or 0.01


def band(rec: MeterRecord, slot: int, kw: float, s: DetectionSettings,
         young_dev: float = 0.0) -> Band:
    """The band for ``slot`` from the hierarchy (pure: learns nothing)."""
    h = rec.h
    if not h[LV_N + GLOBAL]:
        return Band(kw, kw, _INF, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, kw, 0, 0, False)
    d = _LEVEL[slot]
    n_d = h[LV_N + d]
    mu_g, dev_g = h[LV_MU + GLOBAL] * _S - _B, h[LV_DEV + GLOBAL] * _S - _B
    w_d = n_d / (n_d + _SHRINK)
    mu_d = w_d * (h[LV_MU + d] * _S - _B) + (1 - w_d) * mu_g
    dev_d = w_d * (h[LV_DEV + d] * _S - _B) + (1 - w_d) * dev_g
    c = h[TOW_N + (slot >> 1)]  # (two saturating 8-bit counts to a cell, see _record)
    n_s = c >> 8 if slot & 1 else c & 255
    w_s = n_s / (n_s + _SHRINK_TOW)
    mu = w_s * (h[TOW_MU + slot] * _S - _B) + (1 - w_s) * mu_d
    # thin evidence widens the band: a meter on its first day is judged, loosely
    dev = max(dev_d, _MIN_DEV, young_dev * (1 - w_d)) * (1.0 + s.thin_widen / _sqrt(1.0 + n_d))
    fl = rec.x[FLOOR_KW] or 0.01
    band_hi, band_lo = s.band_hi, s.band_lo
    return Band(max(_exp(mu) - fl, 0.0),
                (n_d * F16[h[LV_KW + d]] + _SHRINK * F16[h[LV_KW + GLOBAL]]) / (n_d + _SHRINK),
                _exp(mu + band_hi * dev) - fl, max(_exp(mu - band_lo * dev) - fl, 0.0),
                mu, dev, band_hi, band_lo, fl, kw, n_s, n_d)


def learn(rec: MeterRecord, slot: int, kw: float, edge: tuple[float, float] | None = None
          ) -> None:
    """Learn one reading into every level of the hierarchy (winsorised EW statistics).

    ``edge`` is the slot's band (lo, hi kW) when the reading lies outside it: the slot levels
    then learn the band's edge, not the reading, so a fault cannot become its slot's usual in
    an hour, while a new habit that persists still moves the band day by day (the meter-wide
    level learns every reading, winsorised). A new slot starts
    from the meter-wide level, worth ``_SHRINK`` samples (as ``band`` reads it)."""
    h = rec.h
    kw = max(kw, 0.0)
    g_n = h[LV_N + GLOBAL]
    # the log offset follows the meter's own level, so a 10 kW shop and a 0.3 kW flat are
    # judged alike; it settles after the first day
    usual = F16[h[LV_KW + GLOBAL]] if g_n else kw
    x = rec.x
    fl = x[FLOOR_KW]
    if g_n < 96 or not fl:
        fl = x[FLOOR_KW] = max(0.01, 0.05 * usual)
    y = _log(kw + fl)
    if edge is None:
        kw_slot, y_slot = kw, y
    else:
        kw_slot = min(max(kw, edge[0]), edge[1])
        y_slot = _log(kw_slot + fl)
    _update(h, GLOBAL, y, kw, _ALPHA_G, 0.0)  # the meter-wide level follows the seasons
    d = _LEVEL[slot]
    if not h[LV_N + d]:
        h[LV_MU + d], h[LV_DEV + d] = h[LV_MU + GLOBAL], h[LV_DEV + GLOBAL]
        h[LV_KW + d] = h[LV_KW + GLOBAL]
    _update(h, d, y_slot, kw_slot, _ALPHA_DT, _SHRINK, edge is None)
    i = TOW_N + (slot >> 1)
    c = h[i]
    n = c >> 8 if slot & 1 else c & 255
    mu = (h[TOW_MU + slot] if n else h[LV_MU + d]) * _S - _B
    # the rate is max(1 / (n + 1 + _SHRINK_TOW), _ALPHA_TOW): always _ALPHA_TOW (1/7 < 0.15)
    dev = h[LV_DEV + d] * _S - _B
    lim = 2.5 * (_MIN_DEV if dev < _MIN_DEV else dev)
    r = y_slot - mu  # winsorised: max(-lim, min(lim, r)), as conditionals
    if r > lim:
        r = lim
    elif r < -lim:
        r = -lim
    h[TOW_MU + slot] = enc_log(mu + _ALPHA_TOW * r)
    if n < 255:
        h[i] = c + 256 if slot & 1 else c + 1


def _update(h: array, idx: int, y: float, kw: float, alpha: float,
            prior: float, spread: bool = True) -> None:
    # (max and min written as conditionals: same results, without the calls)
    n = h[LV_N + idx]
    if n == 0 and not prior:
        h[LV_MU + idx] = enc_log(y)
        h[LV_DEV + idx] = enc_log(0.0)
        h[LV_KW + idx] = enc_f16(kw)
    else:
        a = 1.0 / (n + 1 + prior)
        if alpha > a:
            a = alpha
        mu = h[LV_MU + idx] * _S - _B
        dev = h[LV_DEV + idx] * _S - _B
        r = y - mu
        d_new = abs(r)
        if n + prior >= 8:  # winsorise: one burst moves the level by a bounded step
            md = _MIN_DEV if dev < _MIN_DEV else dev
            lim = 2.5 * md
            if r > lim:
                r = lim
            elif r < -lim:
                r = -lim
            if 4 * md < d_new:
                d_new = 4 * md
        h[LV_MU + idx] = enc_log(mu + a * r)
        if spread:
            h[LV_DEV + idx] = enc_log(dev + a * (d_new - dev))
        lv_kw = F16[h[LV_KW + idx]]
        h[LV_KW + idx] = enc_f16(lv_kw + a * (kw - lv_kw))
    if n < 65_535:
        h[LV_N + idx] = n + 1


def mean_kw_at(rec: MeterRecord, slot: int) -> float:
    """The mean load the meter usually draws in ``slot`` (kW; for forecasts)."""
    h = rec.h
    d = _LEVEL[slot]
    n_d = h[LV_N + d]
    return (n_d * F16[h[LV_KW + d]] + _SHRINK * F16[h[LV_KW + GLOBAL]]) / (n_d + _SHRINK)
