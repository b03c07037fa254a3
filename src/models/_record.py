"""The named, versioned state record of one meter, and its compact serialisation.

Every detector of :mod:`gridwatch.models` reads and writes its own fields of one
:class:`MeterRecord`; the record is what the dataflow snapshots. It is serialised by field name
(never by position), so adding a field with a default keeps old snapshots readable; a snapshot of
version 4 is converted on reading, one of an unknown version is refused with a clear error
instead of being misread.

Layout (version 5): the per-slot statistics of a meter are not one small numpy array each (an
array object costs about 110 bytes besides its data) but two packed ``array.array`` buffers,
``f`` (float32: time-of-week means, level means, dispersions and mean loads, the daily curves,
today's hourly sums, the 28-day record ring) and ``h`` (uint16: sample counts, today's hourly
reading counts), addressed by the offsets below. The hourly theft window (``th``) exists only
for meters whose class judges it. Values and their float32 rounding are the ones version 4
kept, so a meter decides exactly as before; :meth:`MeterRecord.view` gives a numpy view of one
named part.
"""

from __future__ import annotations

import math
import pickle
from array import array
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "DT0",
    "EMPTY",
    "F_LEN",
    "GLOBAL",
    "H_LEN",
    "I_FIELDS",
    "LEVELS",
    "RECORD_VERSION",
    "SLOTS",
    "X_FIELDS",
    "MeterRecord",
    "drop",
    "f32",
    "put",
]

#: Version of the record layout: 5 packs the arrays; version 4 snapshots are converted.
RECORD_VERSION = 5
_READABLE = (4, 5)

SLOTS = 168  #: time-of-week hours
#: Baseline levels besides the time-of-week slots: 48 day-type hours (weekday 0..23, day off
#: 24..47) and one meter-wide slot.
DT0 = 0
GLOBAL = 48
LEVELS = 49

# --- offsets in ``f`` (float32)
TOW_MU = 0
LV_MU = TOW_MU + SLOTS
LV_DEV = LV_MU + LEVELS
LV_KW = LV_DEV + LEVELS
WD = LV_KW + LEVELS  #: usual weekday curve, 24 hourly means (kW)
WE = WD + 24  #: usual day-off curve
DAY_SUM = WE + 24  #: today's hourly sums of kW
PEAKS = DAY_SUM + 24  #: ring of the last 28 local days' highest usual reading
N_PEAKS = 28
F_LEN = PEAKS + N_PEAKS
# --- offsets in ``h`` (uint16)
TOW_N = 0
LV_N = TOW_N + SLOTS
DAY_CNT = LV_N + LEVELS  #: today's readings per hour (capped at 255, as a uint8 was)
H_LEN = DAY_CNT + 24
# --- offsets in ``th`` (float32; counts capped at 255)
TH_OBS = 0
TH_EXP = 24
TH_CNT = 48
TH_LEN = 72

#: name -> (buffer, offset, size, dtype of the serialised bytes): the serialised form of each
#: part is the one version 4 wrote (its numpy dtype), so both versions read alike.
_PARTS: dict[str, tuple[str, int, int, Any]] = {
    "tow_n": ("h", TOW_N, SLOTS, np.uint16), "tow_mu": ("f", TOW_MU, SLOTS, np.float32),
    "lv_n": ("h", LV_N, LEVELS, np.uint16), "lv_mu": ("f", LV_MU, LEVELS, np.float32),
    "lv_dev": ("f", LV_DEV, LEVELS, np.float32), "lv_kw": ("f", LV_KW, LEVELS, np.float32),
    "wd_curve": ("f", WD, 24, np.float32), "we_curve": ("f", WE, 24, np.float32),
    "day_sum": ("f", DAY_SUM, 24, np.float32), "day_cnt": ("h", DAY_CNT, 24, np.uint8),
    "peaks": ("f", PEAKS, N_PEAKS, np.float32),
    "th_obs": ("th", TH_OBS, 24, np.float32), "th_exp": ("th", TH_EXP, 24, np.float32),
    "th_cnt": ("th", TH_CNT, 24, np.uint8),
}
_BUFS = {"f": ("f", F_LEN), "h": ("H", H_LEN), "th": ("f", TH_LEN), "x": ("d", 0)}
_F_ZERO = array("f", bytes(4 * F_LEN))
_H_ZERO = array("H", bytes(2 * H_LEN))
_TH_ZERO = array("f", bytes(4 * TH_LEN))
_SCRATCH = array("f", b"\0\0\0\0")

#: The record's float64 scalars, held in one ``array('d')`` (``x``) instead of a float object
#: each: name, default, meaning. Each is also an attribute of the record by its name.
_X_SPEC: tuple[tuple[str, float, str], ...] = (
    ("started", 0.0, "event time of the first reading with load (0: none yet)"),
    ("last_ts", 0.0, "event time of the last reading"),
    ("last_kw", math.nan, "the last reading's kW"),
    ("last_kwh", math.nan, "the last energy register reading"),
    ("last_vmin", math.nan, "the last reading's lowest voltage"),
    ("floor_kw", 0.0, "offset of the log transform, from the meter's own level"),
    ("zero_frac", 0.0, "EW share of the meter's readings at (near) zero"),
    ("peak_today", 0.0, "today's highest usual reading (the 28-day record's day)"),
    ("peak_max", 0.0, "the 28-day record ring's highest reading"),
    ("resid_ew", 0.0, "capacity forecast: EW residual against the usual load"),
    ("trend_ew", 0.0, "capacity forecast: EW trend of the residual"),
    ("day_max", -math.inf, "today's highest reading"),
    ("day_min", math.inf, "today's lowest reading"),
    ("month_kwh", 0.0, "this month's energy so far"),
    ("prev_month_kwh", math.nan, "last month's energy"),
    ("hist_kwh", 0.0, "EW daily energy: the meter's own history"),
)
X_FIELDS = tuple(name for name, _, _ in _X_SPEC)
(STARTED, LAST_TS, LAST_KW, LAST_KWH, LAST_VMIN, FLOOR_KW, ZERO_FRAC, PEAK_TODAY, PEAK_MAX,
 RESID_EW, TREND_EW, DAY_MAX, DAY_MIN, MONTH_KWH, PREV_MONTH_KWH, HIST_KWH) = range(len(X_FIELDS))
#: The record's integers that outgrow CPython's cached small ints (a separate 28-byte object
#: each), held after the float64 scalars in ``x`` (exact: all stay far below 2**53) and read
#: back as ``int`` by their names.
I_FIELDS = ("interval_s", "gap_s", "gap_run", "inferred_s", "n", "day_no", "month_no")
(INTERVAL_S, GAP_S, GAP_RUN, INFERRED_S, N, DAY_NO, MONTH_NO) = range(
    len(X_FIELDS), len(X_FIELDS) + len(I_FIELDS))
_X_DEFAULT = array("d", [default for _, default, _ in _X_SPEC] + [0.0] * len(I_FIELDS))


class _Scalar:
    """One float64 scalar of the record, kept in its ``x`` buffer."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __get__(self, rec: MeterRecord | None, owner: type | None = None) -> float:
        assert rec is not None
        return rec.x[self.i]

    def __set__(self, rec: MeterRecord, value: float) -> None:
        rec.x[self.i] = value


class _Int:
    """One integer of the record, kept (exactly) in its ``x`` buffer."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __get__(self, rec: MeterRecord | None, owner: type | None = None) -> int:
        assert rec is not None
        return int(rec.x[self.i])

    def __set__(self, rec: MeterRecord, value: int) -> None:
        rec.x[self.i] = value

#: Shared immutable defaults (a meter with no run open holds these, not copies).
NO_RUN: tuple[float, int, float, float, float] = (0.0, 0, 0.0, 0.0, 0.0)
NO_PEAK_RUN: tuple[float, int, float] = (0.0, 0, 0.0)
NO_DAYS: tuple[float, int] = (0.0, 0)
_SHARED = {NO_RUN: NO_RUN, NO_PEAK_RUN: NO_PEAK_RUN, NO_DAYS: NO_DAYS}


#: The shared, read-only empty mapping a record holds for each of its alarm dicts (``act``,
#: ``cnt``, ``clr``, ``since``, ``fb``) while it is empty: most meters have nothing open or
#: pending, and an empty dict of their own would cost 64 bytes each. Write with :func:`put` and
#: :func:`drop`.
EMPTY: Any = MappingProxyType({})
_DICTS = ("act", "cnt", "clr", "since", "fb")


def _empty() -> Any:
    return EMPTY


def put(rec: MeterRecord, name: str, key: str, value: Any) -> None:
    """``rec.<name>[key] = value``, giving the record a dict of its own first if needed."""
    d = getattr(rec, name)
    if d is EMPTY:
        d = {}
        setattr(rec, name, d)
    d[key] = value


def drop(rec: MeterRecord, name: str, key: str) -> None:
    """``rec.<name>.pop(key, None)``; an emptied dict goes back to the shared empty one."""
    d = getattr(rec, name)
    if key in d:
        del d[key]
        if not d:
            setattr(rec, name, EMPTY)


def f32(x: float) -> float:
    """``x`` rounded to float32 (what a numpy float32 operation rounds a Python float to)."""
    _SCRATCH[0] = x
    return _SCRATCH[0]


def new_theft_window() -> array:
    """A zeroed hourly theft window (``th``)."""
    return _TH_ZERO[:]


@dataclass(slots=True)
class MeterRecord:
    """Everything one meter's detectors know: two packed numeric buffers and scalars."""

    meter_id: str
    #: float64 scalars (names and meanings in ``X_FIELDS``; read and set them by name)
    x: array = field(default_factory=_X_DEFAULT.__copy__)
    # --- the reading stream
    last_fail: bool = False
    silent: bool = False
    quiet: bool = False
    #: float32 buffer: the load baseline (log-load per slot, see _baseline), the daily curves,
    #: today's hourly sums, the 28-day record ring (offsets above)
    f: array = field(default_factory=_F_ZERO.__copy__)
    #: uint16 buffer: sample counts per slot and level, today's readings per hour
    h: array = field(default_factory=_H_ZERO.__copy__)
    # --- consumption episodes: high and low runs (start, intervals, kWh beyond the band, kWh
    #: beyond usual (low: max kW), usual kWh)
    hi: tuple[float, int, float, float, float] = NO_RUN
    lo: tuple[float, int, float, float, float] = NO_RUN
    calm: int = 0  #: readings in a row back inside the band while a consumption alarm is open
    #: the meter's record: highest usual reading of each of the last 28 local days (ring in
    #: ``f``, by day ordinal), today's so far, and the current run above the record (start,
    #: readings, its highest reading, folded into today's record when the run ends)
    #: the ring's highest reading and how many of its days hold one (kept when the ring changes)
    peak_days: int = 0
    peak_run: tuple[float, int, float] = NO_PEAK_RUN
    # --- capacity forecast
    # --- daily profile
    wd_days: int = 0
    we_days: int = 0
    days: int = 0
    #: daily-level runs: (first day's start, days in a row) below the theft ratio, above the
    #: level-shift ratio, below the level-shift ratio
    low_days: tuple[float, int] = NO_DAYS
    high_days: tuple[float, int] = NO_DAYS
    down_days: tuple[float, int] = NO_DAYS
    # --- possible theft within the day: hourly sums of observed and usual kW and reading
    #: counts over the last 24 hours (ring by absolute hour, offsets TH_*), and the hour being
    #: filled; allocated only for meters whose class judges it
    th: array | None = None
    th_hour: int = 0
    # --- alarm lifecycle: open alarms (key -> onset), counters of bad/good readings
    act: dict[str, float] = field(default_factory=_empty)
    cnt: dict[str, int] = field(default_factory=_empty)
    clr: dict[str, int] = field(default_factory=_empty)
    since: dict[str, float] = field(default_factory=_empty)
    #: kind of the open consumption alarm
    kind: str = ""
    #: managers' verdicts: "type:kind" -> (false-alarm weight, event time it was last set, when
    #: the last verdict taken was given); a weight halves every ``feedback_half_life_days`` and
    #: widens that alarm's thresholds
    fb: dict[str, tuple[float, float, float]] = field(default_factory=_empty)

    started = _Scalar(STARTED)
    last_ts = _Scalar(LAST_TS)
    last_kw = _Scalar(LAST_KW)
    last_kwh = _Scalar(LAST_KWH)
    last_vmin = _Scalar(LAST_VMIN)
    floor_kw = _Scalar(FLOOR_KW)
    zero_frac = _Scalar(ZERO_FRAC)
    peak_today = _Scalar(PEAK_TODAY)
    peak_max = _Scalar(PEAK_MAX)
    resid_ew = _Scalar(RESID_EW)
    trend_ew = _Scalar(TREND_EW)
    day_max = _Scalar(DAY_MAX)
    day_min = _Scalar(DAY_MIN)
    month_kwh = _Scalar(MONTH_KWH)
    prev_month_kwh = _Scalar(PREV_MONTH_KWH)
    hist_kwh = _Scalar(HIST_KWH)
    interval_s = _Int(INTERVAL_S)  #: the interval in use (stated, inferred, or configured)
    gap_s = _Int(GAP_S)  #: the last positive gap between readings (s)
    gap_run = _Int(GAP_RUN)  #: readings in a row with that same gap
    inferred_s = _Int(INFERRED_S)  #: interval inferred from the data (0: not yet)
    n = _Int(N)  #: readings judged or learned
    day_no = _Int(DAY_NO)  #: the local day being accumulated (ordinal)
    month_no = _Int(MONTH_NO)  #: the local month being accumulated

    # ----------------------------------------------------------------- named views
    def view(self, name: str) -> np.ndarray:
        """A writable numpy view of one named part (``tow_mu``, ``lv_n``, ``wd_curve``, ...).
        The theft window's parts are zeros while it is not allocated."""
        buf_name, off, size, _ = _PARTS[name]
        buf = getattr(self, buf_name)
        if buf is None:
            buf = self.th = new_theft_window()
        dtype = np.float32 if _BUFS[buf_name][0] == "f" else np.uint16
        return np.frombuffer(buf, dtype, size, off * np.dtype(dtype).itemsize)

    @property
    def tow_n(self) -> np.ndarray:
        return self.view("tow_n")

    @property
    def tow_mu(self) -> np.ndarray:
        return self.view("tow_mu")

    @property
    def lv_n(self) -> np.ndarray:
        return self.view("lv_n")

    @property
    def lv_mu(self) -> np.ndarray:
        return self.view("lv_mu")

    @property
    def lv_dev(self) -> np.ndarray:
        return self.view("lv_dev")

    @property
    def lv_kw(self) -> np.ndarray:
        return self.view("lv_kw")

    @property
    def wd_curve(self) -> np.ndarray:
        return self.view("wd_curve")

    @property
    def we_curve(self) -> np.ndarray:
        return self.view("we_curve")

    @property
    def peaks(self) -> np.ndarray:
        return self.view("peaks")

    # ----------------------------------------------------------------- serialisation
    def to_bytes(self) -> bytes:
        state: dict[str, Any] = {name: getattr(self, name) for name in _PLAIN}
        for name in _DICTS:
            state[name] = dict(getattr(self, name))
        x = self.x
        state.update(zip(X_FIELDS, x, strict=False))
        state.update((name, int(x[i])) for i, name in enumerate(I_FIELDS, len(X_FIELDS)))
        for name, (buf_name, off, size, dtype) in _PARTS.items():
            buf = getattr(self, buf_name)
            if buf is None:
                continue
            part = buf[off:off + size]
            state[name] = bytes(map(int, part)) if dtype is np.uint8 else part.tobytes()
        return pickle.dumps((RECORD_VERSION, state), protocol=5)

    @classmethod
    def from_bytes(cls, data: bytes) -> MeterRecord:
        version, state = pickle.loads(data)
        if version not in _READABLE:
            raise ValueError(f"meter state version {version} is not {RECORD_VERSION}: "
                             "start without the old recovery snapshot")
        rec = cls(state["meter_id"])
        # fields missing from the snapshot keep their defaults; names it holds that are no
        # longer fields are ignored
        for name in _PLAIN:
            if name in state:
                v = state[name]
                setattr(rec, name, _SHARED.get(v, v) if type(v) is tuple else v)
        for name in _DICTS:
            if state.get(name):
                setattr(rec, name, state[name])
        x = rec.x
        for i, name in enumerate(X_FIELDS + I_FIELDS):
            if name in state:
                x[i] = state[name]
        for name, (buf_name, off, size, dtype) in _PARTS.items():
            if name not in state:
                continue
            v = state[name]
            buf = getattr(rec, buf_name)
            if buf is None:
                buf = rec.th = new_theft_window()
            code = _BUFS[buf_name][0]
            # float32 and uint16 parts are stored in the buffers' own machine format
            buf[off:off + size] = (array(code, array("B", v)) if dtype is np.uint8
                                   else array(code, v))
        if not rec.th_hour:
            rec.th = None  # an unfilled window is zeroed before use: hold none
        return rec


#: The record's plain fields (serialised as they are), besides the buffers and the alarm dicts.
_PLAIN = tuple(f.name for f in fields(MeterRecord) if f.name not in _BUFS and f.name not in _DICTS)
