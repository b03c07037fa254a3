"""Per-customer features behind the tags, kept online from the daily profiles.

A customer's whole feature state is one float32 vector of fixed layout (1,824 bytes), so a
table of many customers is one 2-D array and every update and every window is a numpy operation
over all of them at once:

* a ring of the last 7 days and a ring of the last 14 calendar months, each bucket holding the
  same 18 sums: energy by tariff period (sharp, peak, flat, valley, from the time-of-use
  schedule), by time of day (night 0-6 h, daytime 8-18 h, evening 18-23 h), exported energy,
  daily peak and base kW, the squared daily energy (for volatility), weekday energy and days;
* alerts by event type, and verdicts on them (acknowledged, closed by hand), in a ring of
  the last 3 months;
* a few scalars from the typical curves (weekday peak hour, hours near the peak, weekend level).

Windows: ``avg(f, Nd)`` with N <= 7 reads the daily ring exactly; a longer window reads whole
calendar months, round(N / 30.4) of them counting the current one, plus one more when the current
month has fewer than 15 days (so ``90d`` on 10 May reads February to May). A customer with several
meters adds them up: its daily peak is the sum of the meters' peaks (not the coincident peak).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from gridwatch.tags._tariff import TouSchedule

__all__ = [
    "ALERT_TYPES",
    "SCALAR_FEATURES",
    "VERDICTS",
    "WINDOW_FEATURES",
    "CustomerFeatures",
    "FeatureTable",
    "ProfileBatch",
]

# ---------------------------------------------------------------------------- layout
(KWH, SHARP, PEAK, FLAT, VALLEY, NIGHT, DAYTIME, EVENING, EXPORT, MAXKW_SUM, MAXKW_MAX,
 MINKW_SUM, KWH2, DAYS, WD_KWH, WD_DAYS, PEAK_H, VALLEY_H) = range(18)
S = 18
D = 7  # daily ring
M = 14  # monthly ring: the current month and the 13 before it (year on year)
A = 3  # alert ring (months)
ALERT_TYPES = (
    "abnormal_consumption", "outage", "comm_loss", "register_frozen", "stuck_reading", "tamper",
    "clock_drift", "voltage_sag", "voltage_swell", "low_power_factor", "phase_imbalance",
    "over_capacity_risk", "feeder_outage", "possible_theft",
)
#: Verdicts on a customer's alerts, counted beside the alert types: acknowledged by a manager,
#: and resolved by a person rather than by the detector (often a dismissed false alarm).
VERDICTS = ("acknowledged", "closed_by_hand")
E = len(ALERT_TYPES) + len(VERDICTS)
_DAILY = 0
_MONTHLY = _DAILY + D * S
_DAY_IDS = _MONTHLY + M * S
_MONTH_IDS = _DAY_IDS + D
_ALERTS = _MONTH_IDS + M
_ALERT_IDS = _ALERTS + A * E
LAST_DAY, FIRST_DAY, DAYS_SEEN, WD_PEAK_HOUR, WD_HIGH_HOURS, WE_LEVEL = range(
    _ALERT_IDS + A, _ALERT_IDS + A + 6)
L = WE_LEVEL + 1

_HOUR = np.arange(24)
_NIGHT = ((_HOUR >= 0) & (_HOUR < 6)).astype(np.float32)
_DAYTIME = ((_HOUR >= 8) & (_HOUR < 18)).astype(np.float32)
_EVENING = ((_HOUR >= 18) & (_HOUR < 23)).astype(np.float32)


def month_no(d: date) -> int:
    """Months since year 0: consecutive months differ by one."""
    return d.year * 12 + d.month - 1


# ---------------------------------------------------------------------------- features
def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.divide(a, b)
    return np.where(np.isfinite(out) & (b != 0), out, np.nan)


def _f(agg: np.ndarray, i: int) -> np.ndarray:
    return np.asarray(agg[..., i], dtype=np.float64)


def _days(a: np.ndarray) -> np.ndarray:
    d = _f(a, DAYS)
    return np.where(d > 0, d, np.nan)


def _load_factor(a: np.ndarray) -> np.ndarray:
    return _div(_f(a, KWH) / 24.0, _f(a, MAXKW_SUM))


def _volatility(a: np.ndarray) -> np.ndarray:
    days = _days(a)
    mean = _f(a, KWH) / days
    var = np.maximum(_f(a, KWH2) / days - mean * mean, 0.0)
    return _div(np.sqrt(var), mean)


def _weekend_ratio(a: np.ndarray) -> np.ndarray:
    we_days = _f(a, DAYS) - _f(a, WD_DAYS)
    we = _div(_f(a, KWH) - _f(a, WD_KWH), we_days)
    return _div(we, _div(_f(a, WD_KWH), _f(a, WD_DAYS)))


def _pv_ratio(a: np.ndarray) -> np.ndarray:
    peak = _div(_f(a, PEAK) + _f(a, SHARP), _f(a, PEAK_H))
    valley = _div(_f(a, VALLEY), _f(a, VALLEY_H))
    return _div(peak, valley)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    unit: str  # share, kwh, kw, ratio, days, hour, count
    description: str
    fn: Callable[[np.ndarray], np.ndarray]


#: Features over a window of days (``avg(name, 90d)``; a bare name means 30 days).
WINDOW_FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("kwh_per_day", "kwh", "mean daily energy drawn from the grid",
            lambda a: _f(a, KWH) / _days(a)),
    Feature("kwh_total", "kwh", "energy drawn from the grid in the window",
            lambda a: np.where(_f(a, DAYS) > 0, _f(a, KWH), np.nan)),
    Feature("sharp_share", "share", "share of energy in critical-peak hours",
            lambda a: _div(_f(a, SHARP), _f(a, KWH))),
    Feature("peak_share", "share", "share of energy in peak and critical-peak hours",
            lambda a: _div(_f(a, PEAK) + _f(a, SHARP), _f(a, KWH))),
    Feature("flat_share", "share", "share of energy in flat hours",
            lambda a: _div(_f(a, FLAT), _f(a, KWH))),
    Feature("valley_share", "share", "share of energy in valley hours",
            lambda a: _div(_f(a, VALLEY), _f(a, KWH))),
    Feature("night_share", "share", "share of energy between 00:00 and 06:00",
            lambda a: _div(_f(a, NIGHT), _f(a, KWH))),
    Feature("daytime_share", "share", "share of energy between 08:00 and 18:00",
            lambda a: _div(_f(a, DAYTIME), _f(a, KWH))),
    Feature("evening_share", "share", "share of energy between 18:00 and 23:00",
            lambda a: _div(_f(a, EVENING), _f(a, KWH))),
    Feature("export_share", "share", "exported energy over exported plus drawn energy",
            lambda a: _div(_f(a, EXPORT), _f(a, EXPORT) + _f(a, KWH))),
    Feature("export_per_day", "kwh", "mean daily exported energy",
            lambda a: _f(a, EXPORT) / _days(a)),
    Feature("load_factor", "ratio", "mean load over mean daily peak",
            _load_factor),
    Feature("peak_kw", "kw", "highest daily peak in the window",
            lambda a: np.where(_f(a, DAYS) > 0, _f(a, MAXKW_MAX), np.nan)),
    Feature("avg_peak_kw", "kw", "mean daily peak",
            lambda a: _f(a, MAXKW_SUM) / _days(a)),
    Feature("base_kw", "kw", "mean daily lowest load (base load)",
            lambda a: _f(a, MINKW_SUM) / _days(a)),
    Feature("base_share", "share", "base load over mean load",
            lambda a: _div(_f(a, MINKW_SUM) * 24.0, _f(a, KWH))),
    Feature("peak_valley_ratio", "ratio", "mean kW in peak hours over mean kW in valley hours",
            _pv_ratio),
    Feature("weekend_ratio", "ratio", "mean day-off energy over mean weekday energy",
            _weekend_ratio),
    Feature("volatility", "ratio", "coefficient of variation of daily energy",
            _volatility),
    Feature("days", "days", "days with a profile in the window",
            lambda a: _f(a, DAYS)),
)}

#: Features without a window.
SCALAR_FEATURES: dict[str, tuple[str, str]] = {
    "mom_growth": ("ratio", "last full month's daily energy over the month before, minus 1"),
    "yoy_growth": ("ratio", "last full month's daily energy over the same month a year "
                            "before, minus 1"),
    "summer_ratio": ("ratio", "daily energy in June-August over spring and autumn"),
    "winter_ratio": ("ratio", "daily energy in December-February over spring and autumn"),
    "seasonal_swing": ("ratio", "highest over lowest monthly daily energy, last 12 months"),
    "months_seen": ("count", "months of the last 12 with at least 10 days of profiles"),
    "days_seen": ("days", "days with a profile since the customer was first seen"),
    "peak_hour": ("hour", "hour of the highest load of the typical weekday"),
    "high_hours": ("count", "hours of the typical weekday at 70 % of its peak or more"),
    "weekend_level": ("ratio", "typical day-off load over typical weekday load"),
}

DEFAULT_WINDOW = 30.0


# ---------------------------------------------------------------------------- batches
@dataclass(slots=True)
class ProfileBatch:
    """Daily profiles as arrays (one row per meter-day), the form the update takes."""

    day: np.ndarray  # proleptic ordinal of the local day (int64)
    month: np.ndarray  # month_no (int64)
    curve: np.ndarray  # (n, 24) hourly mean kW
    peak_kw: np.ndarray
    valley_kw: np.ndarray
    day_off: np.ndarray  # bool
    wd_curve: np.ndarray  # (n, 24)
    we_curve: np.ndarray  # (n, 24)

    @classmethod
    def of(cls, profiles: Iterable[object], tz: object = None) -> ProfileBatch:
        """From ``DailyProfile`` objects; ``tz`` (a tzinfo) gives the local day of ``p.day``."""
        ps = list(profiles)
        days = [_local_date(p.day, tz) for p in ps]  # type: ignore[attr-defined]
        return cls(
            day=np.fromiter((d.toordinal() for d in days), np.int64, len(ps)),
            month=np.fromiter((month_no(d) for d in days), np.int64, len(ps)),
            curve=np.asarray([p.day_curve for p in ps], np.float32)  # type: ignore[attr-defined]
            .reshape(len(ps), 24),
            peak_kw=np.fromiter((p.peak_kw for p in ps), np.float32, len(ps)),  # type: ignore[attr-defined]
            valley_kw=np.fromiter((p.valley_kw for p in ps), np.float32, len(ps)),  # type: ignore[attr-defined]
            day_off=np.fromiter((p.is_day_off for p in ps), bool, len(ps)),  # type: ignore[attr-defined]
            wd_curve=np.asarray([p.weekday_curve for p in ps], np.float32)  # type: ignore[attr-defined]
            .reshape(len(ps), 24),
            we_curve=np.asarray([p.weekend_curve for p in ps], np.float32)  # type: ignore[attr-defined]
            .reshape(len(ps), 24),
        )


def _local_date(t: datetime, tz: object) -> date:
    if tz is not None and t.tzinfo is not None:
        return t.astimezone(tz).date()  # type: ignore[arg-type]
    # DailyProfile.day is the local midnight in UTC: add half a day before taking the date
    return datetime.fromtimestamp(t.timestamp() + 43_200, UTC).date() if t.tzinfo \
        else t.date()


def series(batch: ProfileBatch, tou: TouSchedule) -> np.ndarray:
    """The 18 per-day sums of each row of a batch, (n, S) float64."""
    n = len(batch.day)
    curve = batch.curve.astype(np.float64)
    imp = np.clip(curve, 0.0, None)
    exp = np.clip(-curve, 0.0, None)
    moy = (batch.month % 12).astype(np.int64)  # 0 = January
    out = np.zeros((n, S), np.float64)
    kwh = imp.sum(1)
    out[:, KWH] = kwh
    hours = np.zeros((n, 2))  # peak+sharp hours, valley hours
    for m in np.unique(moy):  # usually one month per batch: one matrix product
        sel = moy == m
        masks = tou.masks[:, m, :].astype(np.float64)  # (4, 24)
        part = imp[sel] @ masks.T
        out[sel, VALLEY], out[sel, FLAT] = part[:, 0], part[:, 1]
        out[sel, PEAK], out[sel, SHARP] = part[:, 2], part[:, 3]
        hours[sel] = (masks[2].sum() + masks[3].sum(), masks[0].sum())
    out[:, NIGHT] = imp @ _NIGHT
    out[:, DAYTIME] = imp @ _DAYTIME
    out[:, EVENING] = imp @ _EVENING
    out[:, EXPORT] = exp.sum(1)
    out[:, MAXKW_SUM] = batch.peak_kw
    out[:, MAXKW_MAX] = batch.peak_kw
    out[:, MINKW_SUM] = np.maximum(batch.valley_kw, 0.0)
    out[:, KWH2] = kwh * kwh
    out[:, DAYS] = 1.0
    wd = ~batch.day_off
    out[:, WD_KWH] = np.where(wd, kwh, 0.0)
    out[:, WD_DAYS] = wd
    out[:, PEAK_H] = hours[:, 0]
    out[:, VALLEY_H] = hours[:, 1]
    return out


def _ring_add(state: np.ndarray, rows: np.ndarray, ids: np.ndarray, base: int, id_base: int,
              size: int, width: int, values: np.ndarray, max_cols: tuple[int, ...] = ()
              ) -> None:
    """Add ``values`` (n, width) into the ring bucket of each row's id (resetting a bucket that
    held an older id; ignoring a value older than its bucket's id)."""
    slot = (ids % size).astype(np.int64)
    id_col = id_base + slot
    held = state[rows, id_col]
    newer = ids > held
    if newer.any():
        r, s = rows[newer], slot[newer]
        cols = base + s[:, None] * width + np.arange(width)
        state[r[:, None], cols] = 0.0
        state[r, id_base + s] = ids[newer]
    ok = ids >= state[rows, id_col]
    if not ok.all():
        rows, slot, values = rows[ok], slot[ok], values[ok]
    cols = base + slot[:, None] * width + np.arange(width)
    add = values.astype(np.float32)
    for c in max_cols:
        add[:, c] = 0.0
    if len(np.unique(rows)) == len(rows):  # the usual case: one profile per customer
        state[rows[:, None], cols] += add
        for c in max_cols:
            at = base + slot * width + c
            state[rows, at] = np.maximum(state[rows, at], values[:, c].astype(np.float32))
        return
    np.add.at(state, (np.repeat(rows, width), cols.ravel()), add.ravel())
    for c in max_cols:
        np.maximum.at(state, (rows, base + slot * width + c), values[:, c].astype(np.float32))


def update(state: np.ndarray, rows: np.ndarray, batch: ProfileBatch, tou: TouSchedule) -> None:
    """Fold a batch of daily profiles into the feature rows ``rows`` of ``state`` (in place).
    Several profiles of one customer and day (one per meter) add up; the day counts once."""
    if len(rows) == 0:
        return
    vals = series(batch, tou)
    # a customer-day counts once, whatever the number of meters
    key = rows.astype(np.int64) * 10_000_000 + batch.day
    _, first = np.unique(key, return_index=True)
    once = np.zeros(len(rows), bool)
    once[first] = True
    seen = state[rows, LAST_DAY] >= batch.day
    for c in (DAYS, WD_DAYS, PEAK_H, VALLEY_H):
        vals[:, c] = np.where(once & ~seen, vals[:, c], 0.0)
    _ring_add(state, rows, batch.day, _DAILY, _DAY_IDS, D, S, vals, (MAXKW_MAX,))
    _ring_add(state, rows, batch.month, _MONTHLY, _MONTH_IDS, M, S, vals, (MAXKW_MAX,))
    new = once & ~seen
    if new.any():
        r = rows[new]
        state[r, DAYS_SEEN] += 1
        first_day = state[r, FIRST_DAY]
        state[r, FIRST_DAY] = np.where(first_day == 0, batch.day[new], first_day)
    latest = batch.day >= state[rows, LAST_DAY]
    if latest.any():
        r = rows[latest]
        wd = batch.wd_curve[latest].astype(np.float64)
        we = batch.we_curve[latest].astype(np.float64)
        top = wd.max(1)
        state[r, LAST_DAY] = batch.day[latest]
        state[r, WD_PEAK_HOUR] = np.where(top > 0, wd.argmax(1), np.nan)
        state[r, WD_HIGH_HOURS] = np.where(top > 0, (wd >= 0.7 * top[:, None]).sum(1), np.nan)
        state[r, WE_LEVEL] = _div(we.mean(1), wd.mean(1))


def add_alerts(state: np.ndarray, rows: np.ndarray, months: np.ndarray, types: np.ndarray
               ) -> None:
    """Count alerts (type index into ALERT_TYPES) in the month they were raised."""
    ones = np.zeros((len(rows), E), np.float64)  # types index ALERT_TYPES, then VERDICTS
    ones[np.arange(len(rows)), types] = 1.0
    _ring_add(state, rows, months, _ALERTS, _ALERT_IDS, A, E, ones)


# ---------------------------------------------------------------------------- windows
def _month_span(today: date, days: float) -> tuple[int, int]:
    """Month numbers (first, last) a window of ``days`` ending ``today`` reads."""
    k = max(1, round(days / 30.4))
    cur = month_no(today)
    first = cur - k + 1
    if today.day < 15:
        first -= 1
    return first, cur


def bucket_values(state: np.ndarray, today: date, days: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The buckets a window reads: (n, B, S) sums and an (n, B) mask of the valid ones."""
    if days <= D:
        t = today.toordinal()
        ids = state[:, _DAY_IDS:_DAY_IDS + D]
        mask = (ids > t - days) & (ids <= t)
        vals = state[:, _DAILY:_DAILY + D * S].reshape(-1, D, S)
    else:
        first, last = _month_span(today, days)
        ids = state[:, _MONTH_IDS:_MONTH_IDS + M]
        mask = (ids >= first) & (ids <= last)
        vals = state[:, _MONTHLY:_MONTHLY + M * S].reshape(-1, M, S)
    return vals, mask


def aggregate(state: np.ndarray, today: date, days: float) -> np.ndarray:
    """Sums of the buckets of a window, (n, S) float64 (the peak column is a max)."""
    vals, mask = bucket_values(state, today, days)
    agg = np.einsum("nbs,nb->ns", vals, mask.astype(np.float32)).astype(np.float64)
    agg[:, MAXKW_MAX] = np.where(mask, vals[..., MAXKW_MAX], 0.0).max(1)
    return agg


def window_feature(state: np.ndarray, name: str, func: str, today: date, days: float,
                   agg: np.ndarray | None = None) -> np.ndarray:
    """``avg`` (the feature of the window's sums), ``min`` or ``max`` (over its days or months
    with data) of a window feature. ``agg`` is ``aggregate(state, today, days)`` when the
    caller has it already."""
    feat = WINDOW_FEATURES[name]
    if func == "avg":
        return feat.fn(aggregate(state, today, days) if agg is None else agg)
    vals, mask = bucket_values(state, today, days)
    per = feat.fn(vals)
    per = np.where(mask & (vals[..., DAYS] > 0), per, np.nan)
    ok = ~np.isnan(per).all(1)
    out = np.full(len(state), np.nan)
    if ok.any():
        out[ok] = (np.nanmax if func == "max" else np.nanmin)(per[ok], axis=1)
    return out


def alert_table(state: np.ndarray, today: date, days: float) -> np.ndarray:
    """Alerts by type and verdicts, (n, E), in the months a window of ``days`` covers (at
    most 3)."""
    first, last = _month_span(today, min(days, 91.0))
    ids = state[:, _ALERT_IDS:_ALERT_IDS + A]
    mask = ((ids >= first) & (ids <= last)).astype(np.float32)
    vals = state[:, _ALERTS:_ALERTS + A * E].reshape(-1, A, E)
    return np.einsum("nae,na->ne", vals, mask).astype(np.float64)


def alert_count(state: np.ndarray, etype: str | None, today: date, days: float,
                table: np.ndarray | None = None) -> np.ndarray:
    """Alerts of a type (None: any) in the months a window of ``days`` covers (at most 3)."""
    t = alert_table(state, today, days) if table is None else table
    if etype is None:
        return t[:, :len(ALERT_TYPES)].sum(1)
    if etype in VERDICTS:
        return t[:, len(ALERT_TYPES) + VERDICTS.index(etype)]
    return t[:, ALERT_TYPES.index(etype)]


def scalar_feature(state: np.ndarray, name: str, today: date,
                   shared: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The value of a feature without a window. ``shared`` (a dict kept by the caller for
    one state and day) saves recomputing the monthly figures the features have in common."""
    if name == "days_seen":
        return state[:, DAYS_SEEN].astype(np.float64)
    if name == "peak_hour":
        return np.where(state[:, LAST_DAY] > 0, state[:, WD_PEAK_HOUR], np.nan)
    if name == "high_hours":
        return np.where(state[:, LAST_DAY] > 0, state[:, WD_HIGH_HOURS], np.nan)
    if name == "weekend_level":
        return np.where(state[:, LAST_DAY] > 0, state[:, WE_LEVEL], np.nan)
    cur = month_no(today)
    sh = shared if shared is not None else {}
    if "per_day" not in sh:
        vals = state[:, _MONTHLY:_MONTHLY + M * S].reshape(-1, M, S)
        n_days = vals[..., DAYS].astype(np.float64)
        sh["ids"] = state[:, _MONTH_IDS:_MONTH_IDS + M]
        sh["per_day"] = _div(vals[..., KWH].astype(np.float64), n_days)
        sh["enough"] = n_days >= 10
    ids, per_day, enough = sh["ids"], sh["per_day"], sh["enough"]

    def month(m: int) -> np.ndarray:
        sel = (ids == m) & enough
        return np.where(sel, per_day, 0.0).sum(1) / np.where(sel.any(1), 1.0, np.nan)

    if name == "mom_growth":
        return month(cur - 1) / month(cur - 2) - 1.0
    if name == "yoy_growth":
        return month(cur - 1) / month(cur - 13) - 1.0
    recent = (ids > cur - 12) & (ids <= cur) & enough
    if name == "months_seen":
        return recent.sum(1).astype(np.float64)
    moy = (ids.astype(np.int64) % 12) + 1

    def mean_of(months: tuple[int, ...]) -> np.ndarray:
        sel = recent & np.isin(moy, months)
        total = np.where(sel, per_day, 0.0).sum(1)
        return _div(total, sel.sum(1).astype(np.float64))

    shoulder = mean_of((3, 4, 5, 9, 10, 11))
    if name == "summer_ratio":
        return _div(mean_of((6, 7, 8)), shoulder)
    if name == "winter_ratio":
        return _div(mean_of((12, 1, 2)), shoulder)
    if name == "seasonal_swing":
        hi = np.where(recent, per_day, -np.inf).max(1)
        lo = np.where(recent, per_day, np.inf).min(1)
        out = _div(hi, lo)
        return np.where(recent.sum(1) >= 3, out, np.nan)
    raise KeyError(name)


# ---------------------------------------------------------------------------- containers
class FeatureTable:
    """The feature states of many customers as one (n, L) float32 array, row per customer."""

    def __init__(self, tou: TouSchedule, customer_ids: Iterable[str] = ()) -> None:
        self.tou = tou
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.state = np.zeros((0, L), np.float32)
        #: rows changed since ``take_dirty`` was last called (what a store must write again)
        self.dirty: set[int] = set()
        self.add_customers(customer_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def add_customers(self, customer_ids: Iterable[str]) -> None:
        new = [c for c in dict.fromkeys(customer_ids) if c not in self.index]
        if not new:
            return
        for c in new:
            self.index[c] = len(self.ids)
            self.ids.append(c)
        self.state = np.vstack([self.state, np.zeros((len(new), L), np.float32)])

    def rows(self, customer_ids: Iterable[str]) -> np.ndarray:
        ids = list(customer_ids)
        self.add_customers(ids)
        return np.fromiter((self.index[c] for c in ids), np.int64, len(ids))

    def update(self, customer_ids: Iterable[str], batch: ProfileBatch) -> None:
        rows = self.rows(customer_ids)
        update(self.state, rows, batch, self.tou)
        self.dirty.update(rows.tolist())

    def observe(self, profiles: Iterable[object], tz: object = None) -> None:
        """Fold ``DailyProfile`` objects in (those without a customer id are keyed by meter)."""
        ps = list(profiles)
        if ps:
            keys = [p.customer_id or p.meter_id for p in ps]  # type: ignore[attr-defined]
            self.update(keys, ProfileBatch.of(ps, tz))

    def add_events(self, events: Iterable[object]) -> int:
        """Count alerts by type per customer (events without a customer or of an unknown
        type are skipped); returns how many were counted."""
        rows: list[str] = []
        months: list[int] = []
        types: list[int] = []
        for e in events:
            cid = getattr(e, "customer_id", None)
            etype = getattr(e, "type", None)
            if not cid or etype not in ALERT_TYPES or getattr(e, "state", "") == "resolved":
                continue
            rows.append(cid)
            months.append(month_no(e.onset.date()))  # type: ignore[attr-defined]
            types.append(ALERT_TYPES.index(etype))
        if rows:
            idx = self.rows(rows)
            add_alerts(self.state, idx, np.asarray(months, np.int64),
                       np.asarray(types, np.int64))
            self.dirty.update(idx.tolist())
        return len(rows)

    def add_transitions(self, transitions: Iterable[object]) -> int:
        """Count verdicts from the router's alert transitions (``AlertTransition``): an
        acknowledgement, or a resolution by a person; returns how many were counted."""
        rows: list[str] = []
        months: list[int] = []
        kinds: list[int] = []
        for t in transitions:
            cid = getattr(t, "customer_id", None)
            verdict = _verdict(t)
            if not cid or verdict is None:
                continue
            rows.append(cid)
            months.append(month_no(t.at.date()))  # type: ignore[attr-defined]
            kinds.append(len(ALERT_TYPES) + VERDICTS.index(verdict))
        if rows:
            idx = self.rows(rows)
            add_alerts(self.state, idx, np.asarray(months, np.int64),
                       np.asarray(kinds, np.int64))
            self.dirty.update(idx.tolist())
        return len(rows)

    def take_dirty(self) -> list[str]:
        """The customers whose state changed since the last call (and forget them)."""
        out = [self.ids[r] for r in sorted(self.dirty)]
        self.dirty.clear()
        return out

    def subset(self, customer_ids: list[str]) -> np.ndarray:
        rows = self.rows(customer_ids)
        return self.state[rows]


def _verdict(t: object) -> str | None:
    state = getattr(t, "state", "")
    if state == "acknowledged":
        return "acknowledged"
    if state == "resolved" and getattr(t, "by", "gridwatch") != "gridwatch":
        return "closed_by_hand"
    return None


class CustomerFeatures:
    """One customer's feature state: a float32 vector (``to_bytes`` is 1,824 bytes), updated
    with the same vectorised code as the table."""

    __slots__ = ("state",)

    def __init__(self, state: np.ndarray | None = None) -> None:
        self.state = np.zeros((1, L), np.float32) if state is None else \
            np.asarray(state, np.float32).reshape(1, L).copy()

    def update(self, profile: object, tou: TouSchedule, tz: object = None) -> None:
        update(self.state, np.zeros(1, np.int64), ProfileBatch.of([profile], tz), tou)

    def add_event(self, event: object) -> None:
        etype = getattr(event, "type", None)
        if etype in ALERT_TYPES and getattr(event, "state", "") != "resolved":
            add_alerts(self.state, np.zeros(1, np.int64),
                       np.asarray([month_no(event.onset.date())]),  # type: ignore[attr-defined]
                       np.asarray([ALERT_TYPES.index(etype)]))

    def value(self, name: str, today: date, days: float = DEFAULT_WINDOW,
              func: str = "avg") -> float:
        if name in WINDOW_FEATURES:
            return float(window_feature(self.state, name, func, today, days)[0])
        return float(scalar_feature(self.state, name, today)[0])

    def to_bytes(self) -> bytes:
        return self.state.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerFeatures:
        arr = np.frombuffer(data, np.float32)
        if arr.size != L:
            raise ValueError(f"feature state of {arr.size} values, expected {L}")
        return cls(arr)


def nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x
