"""The named, versioned state record of one meter, and its compact serialisation.

Every detector of :mod:`gridwatch.models` reads and writes its own fields of one
:class:`MeterRecord`; the record is what the dataflow snapshots. It is serialised by field name
(never by position), so adding a field with a default keeps old snapshots readable, and a
snapshot of another version is refused with a clear error instead of being misread.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np

#: Version of the record layout; snapshots of another major version are refused.
RECORD_VERSION = 4

SLOTS = 168  #: time-of-week hours
#: Baseline levels besides the time-of-week slots: 48 day-type hours (weekday 0..23, day off
#: 24..47) and one meter-wide slot.
DT0 = 0
GLOBAL = 48
LEVELS = 49

_ARRAYS: dict[str, tuple[type, int]] = {
    "tow_n": (np.uint16, SLOTS), "tow_mu": (np.float32, SLOTS),
    "lv_n": (np.uint16, LEVELS), "lv_mu": (np.float32, LEVELS), "lv_dev": (np.float32, LEVELS),
    "lv_kw": (np.float32, LEVELS),
    "wd_curve": (np.float32, 24), "we_curve": (np.float32, 24),
    "day_sum": (np.float32, 24), "day_cnt": (np.uint8, 24), "peaks": (np.float32, 28),
    "th_obs": (np.float32, 24), "th_exp": (np.float32, 24), "th_cnt": (np.uint8, 24),
}


def _zeros(name: str) -> Any:
    dtype, size = _ARRAYS[name]
    return np.zeros(size, dtype)


@dataclass(slots=True)
class MeterRecord:
    """Everything one meter's detectors know. Arrays are small and numeric; the rest scalars."""

    meter_id: str
    # --- the reading stream
    interval_s: int = 0  #: the interval in use (stated by the meter, inferred, or configured)
    gap_s: int = 0  #: the last positive gap between readings (s)
    gap_run: int = 0  #: readings in a row with that same gap
    inferred_s: int = 0  #: interval inferred from the data (0: not yet)
    n: int = 0  #: readings judged or learned
    started: float = 0.0  #: event time of the first reading with load (0: none yet)
    last_ts: float = 0.0
    last_kw: float = math.nan
    last_kwh: float = math.nan
    last_vmin: float = math.nan
    last_fail: bool = False
    silent: bool = False
    quiet: bool = False
    # --- the load baseline: log-load per slot (see _baseline)
    tow_n: Any = field(default_factory=partial(_zeros, "tow_n"))
    tow_mu: Any = field(default_factory=partial(_zeros, "tow_mu"))
    lv_n: Any = field(default_factory=partial(_zeros, "lv_n"))
    lv_mu: Any = field(default_factory=partial(_zeros, "lv_mu"))
    lv_dev: Any = field(default_factory=partial(_zeros, "lv_dev"))
    lv_kw: Any = field(default_factory=partial(_zeros, "lv_kw"))
    floor_kw: float = 0.0  #: offset of the log transform, from the meter's own level
    # --- consumption episodes: high and low runs (start, intervals, kWh beyond the band, kWh
    #: beyond usual (low: max kW), usual kWh)
    hi: tuple[float, int, float, float, float] = (0.0, 0, 0.0, 0.0, 0.0)
    lo: tuple[float, int, float, float, float] = (0.0, 0, 0.0, 0.0, 0.0)
    calm: int = 0  #: readings in a row back inside the band while a consumption alarm is open
    zero_frac: float = 0.0  #: EW share of the meter's readings at (near) zero
    #: the meter's record: highest usual reading of each of the last 28 local days (ring, by
    #: day ordinal), today's so far, and the current run above the record (start, readings,
    #: its highest reading, folded into today's record when the run ends)
    peaks: Any = field(default_factory=partial(_zeros, "peaks"))
    peak_today: float = 0.0
    #: the ring's highest reading and how many of its days hold one (kept when the ring changes)
    peak_max: float = 0.0
    peak_days: int = 0
    peak_run: tuple[float, int, float] = (0.0, 0, 0.0)
    # --- capacity forecast
    resid_ew: float = 0.0
    trend_ew: float = 0.0
    # --- daily profile
    wd_curve: Any = field(default_factory=partial(_zeros, "wd_curve"))
    we_curve: Any = field(default_factory=partial(_zeros, "we_curve"))
    wd_days: int = 0
    we_days: int = 0
    day_no: int = 0
    day_sum: Any = field(default_factory=partial(_zeros, "day_sum"))
    day_cnt: Any = field(default_factory=partial(_zeros, "day_cnt"))
    day_max: float = -math.inf
    day_min: float = math.inf
    month_no: int = 0
    month_kwh: float = 0.0
    prev_month_kwh: float = math.nan
    days: int = 0
    hist_kwh: float = 0.0
    #: daily-level runs: (first day's start, days in a row) below the theft ratio, above the
    #: level-shift ratio, below the level-shift ratio
    low_days: tuple[float, int] = (0.0, 0)
    high_days: tuple[float, int] = (0.0, 0)
    down_days: tuple[float, int] = (0.0, 0)
    # --- possible theft within the day: hourly sums of observed and usual kW over the last 24
    #: hours (ring by absolute hour) and the hour being filled
    th_obs: Any = field(default_factory=partial(_zeros, "th_obs"))
    th_exp: Any = field(default_factory=partial(_zeros, "th_exp"))
    th_cnt: Any = field(default_factory=partial(_zeros, "th_cnt"))
    th_hour: int = 0
    # --- alarm lifecycle: open alarms (key -> onset), counters of bad/good readings
    act: dict[str, float] = field(default_factory=dict)
    cnt: dict[str, int] = field(default_factory=dict)
    clr: dict[str, int] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    #: kind of the open consumption alarm
    kind: str = ""
    #: managers' verdicts: "type:kind" -> (false-alarm weight, event time it was last set, when
    #: the last verdict taken was given); a weight halves every ``feedback_half_life_days`` and
    #: widens that alarm's thresholds
    fb: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        state = {}
        for f in fields(self):
            v = getattr(self, f.name)
            state[f.name] = v.tobytes() if f.name in _ARRAYS else v
        return pickle.dumps((RECORD_VERSION, state), protocol=5)

    @classmethod
    def from_bytes(cls, data: bytes) -> MeterRecord:
        version, state = pickle.loads(data)
        if version != RECORD_VERSION:
            raise ValueError(f"meter state version {version} is not {RECORD_VERSION}: "
                             "start without the old recovery snapshot")
        known = {f.name for f in fields(cls)}
        rec = cls(state["meter_id"])
        for name, v in state.items():
            if name not in known:
                continue  # a field since removed: ignore it
            if name in _ARRAYS:
                dtype, _ = _ARRAYS[name]
                v = np.frombuffer(v, dtype).copy()
            setattr(rec, name, v)
        return rec
