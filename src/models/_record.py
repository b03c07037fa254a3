"""The named, versioned state record of one meter, and its compact serialisation.

Every detector of :mod:`gridwatch.models` reads and writes its own fields of one
:class:`MeterRecord`; the record is what the dataflow snapshots. Version 7 serialises it by
position: its plain fields in :data:`LAYOUT`'s order, its alarm dicts, and its two buffers as
they are (``h``, holding every 16-bit part, the flags and counts and the scalars, and the
theft window ``th``), about 1.9 µs a meter where writing each field by its name (version 6)
took 13.6: a cell with recovery snapshots every meter of its own at each epoch's end
(:meth:`MeterRecord.to_bytes`). A change to the layout must therefore come with a new
version, and keep reading version 7 by :data:`LAYOUT` (``tests/models/test_record.py`` pins
it); snapshots of versions 4, 5 and 6, written by field name, are read by name and converted,
and one of an unknown version is refused with a clear error instead of being misread.

Layout (version 6 and 7): every per-slot statistic of a meter lives in one packed ``array('H')``
(``h``, 16 bits a value), addressed by the offsets below, in one of four encodings:

* ``log`` — the log-load means and dispersions (time-of-week means, level means and
  dispersions): fixed point, ``code * LOG_STEP - LOG_BIAS`` (steps of 1/2048 over -16..16, far
  finer than float16 near the values log-load takes; see :func:`enc_log`);
* ``f16`` — kW quantities (level mean loads, the usual daily curves, the 28-day record ring):
  IEEE half precision (11 significant bits, saturating at ±65,504 kW; :func:`enc_f16`);
* ``f32`` — today's hourly sums of kW: float32 in two 16-bit cells each, summed with float32
  rounding as before (:func:`get_f32`, :func:`set_f32`);
* ``u16`` — the levels' sample counts, exact as before;
* ``u8`` — two counts to a cell (element ``j`` in cell ``j // 2``, the low byte for even
  ``j``; :func:`u8`, :func:`inc_u8`), saturating at 255: each time-of-week slot's samples
  (255 is five years of hourly readings in one slot, 64 weeks of 15-minute ones; beyond it a
  slot's weight against its level stays at 255 / 261 = 0.977 instead of creeping to 1) and
  today's readings per hour (capped at 255 before too).

The float64 scalars and the large integers are in ``x`` (``array('d')``). The hourly theft
window (``th``, float32) exists only for meters whose class judges it. :meth:`MeterRecord.view`
gives a numpy view of a named part (a decoded copy for the ``log`` parts).
"""

from __future__ import annotations

import math
import pickle
import struct
import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from operator import attrgetter
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "CELL_FIELDS",
    "C_CALM",
    "C_DAYS",
    "C_LAST_FAIL",
    "C_PEAK_DAYS",
    "C_QUIET",
    "C_SILENT",
    "C_WD_DAYS",
    "C_WE_DAYS",
    "DT0",
    "EMPTY",
    "F16",
    "GLOBAL",
    "H_LEN",
    "I_FIELDS",
    "LAYOUT",
    "LEVELS",
    "LOG_BIAS",
    "LOG_STEP",
    "RECORD_VERSION",
    "SLOTS",
    "X_AT",
    "X_BYTES",
    "X_FIELDS",
    "MeterRecord",
    "drop",
    "enc_f16",
    "enc_log",
    "f32",
    "get_f32",
    "inc_u8",
    "put",
    "set_f32",
    "u8",
]

#: Version of the record's serialised form: 6 packs every per-slot statistic into one 16-bit
#: buffer, written by name; 7 writes the same record by position (:data:`LAYOUT`). Snapshots
#: of versions 4, 5 and 6 are converted.
RECORD_VERSION = 7
_READABLE = (4, 5, 6, 7)

SLOTS = 168  #: time-of-week hours
#: Baseline levels besides the time-of-week slots: 48 day-type hours (weekday 0..23, day off
#: 24..47) and one meter-wide slot.
DT0 = 0
GLOBAL = 48
LEVELS = 49

# --- offsets in ``h`` (16-bit cells)
DAY_SUM = 0  #: today's hourly sums of kW (f32: two cells each)
TOW_MU = DAY_SUM + 48  #: log: time-of-week means of log-load
LV_MU = TOW_MU + SLOTS  #: log: level means
LV_DEV = LV_MU + LEVELS  #: log: level dispersions
LV_KW = LV_DEV + LEVELS  #: f16: level mean loads (kW)
WD = LV_KW + LEVELS  #: f16: usual weekday curve, 24 hourly means (kW)
WE = WD + 24  #: f16: usual day-off curve
PEAKS = WE + 24  #: f16: ring of the last 28 local days' highest usual reading
N_PEAKS = 28
LV_N = PEAKS + N_PEAKS  #: u16: samples per level
TOW_N = LV_N + LEVELS  #: u8: samples per time-of-week slot (saturating at 255)
DAY_CNT = TOW_N + SLOTS // 2  #: u8: today's readings per hour (capped at 255)
H_LEN = DAY_CNT + 12
# --- offsets in ``th`` (float32; counts capped at 255)
TH_OBS = 0
TH_EXP = 24
TH_CNT = 48
TH_LEN = 72

#: Fixed point of the ``log`` parts: ``value = code * LOG_STEP - LOG_BIAS``.
LOG_STEP = 1.0 / 2048.0
LOG_BIAS = 16.0
_LOG_ZERO = 32_768  #: the code of 0.0
_F16_MAX = 65_504.0
#: float16 code -> value (a shared table: decoding is one index)
F16: tuple[float, ...] = tuple(np.arange(65_536, dtype=np.uint16).view(np.float16)
                               .astype(np.float64).tolist())
_pack_e = struct.Struct("<e").pack
_unpack_h = struct.Struct("<H").unpack
_f32 = struct.Struct("=f")
_pack_f32_into = _f32.pack_into
_unpack_f32_from = _f32.unpack_from


def enc_log(y: float) -> int:
    """The ``log`` code of ``y`` (nearest step; saturating at -16 and 16)."""
    v = (y + LOG_BIAS) * 2048.0 + 0.5
    if v >= 65_535.0:
        return 65_535
    if not v >= 0.0:  # (NaN too)
        return 0
    return int(v)


def enc_f16(x: float) -> int:
    """The float16 code of ``x`` (nearest, ties to even; saturating at ±65,504)."""
    if x > _F16_MAX:
        x = _F16_MAX
    elif x < -_F16_MAX:
        x = -_F16_MAX
    return _unpack_h(_pack_e(x))[0]


def u8(h: array, off: int, j: int) -> int:
    """Element ``j`` of the ``u8`` part at cell ``off`` of ``h``."""
    c = h[off + (j >> 1)]
    return c >> 8 if j & 1 else c & 255


def inc_u8(h: array, off: int, j: int) -> None:
    """Add one to element ``j`` of the ``u8`` part at cell ``off`` (saturating at 255)."""
    i = off + (j >> 1)
    c = h[i]
    if j & 1:
        if c < 0xFF00:
            h[i] = c + 256
    elif c & 255 != 255:
        h[i] = c + 1


def get_f32(h: array, i: int) -> float:
    """The float32 held in cells ``i``, ``i + 1`` of ``h``."""
    return _unpack_f32_from(h, 2 * i)[0]


def set_f32(h: array, i: int, v: float) -> None:
    """Store ``v`` rounded to float32 in cells ``i``, ``i + 1`` of ``h``."""
    _pack_f32_into(h, 2 * i, v)


#: name -> (buffer, offset, values, encoding, dtype versions 4 and 5 serialised it as)
_PARTS: dict[str, tuple[str, int, int, str, Any]] = {
    "tow_n": ("h", TOW_N, SLOTS, "u8", np.uint16),
    "tow_mu": ("h", TOW_MU, SLOTS, "log", np.float32),
    "lv_n": ("h", LV_N, LEVELS, "u16", np.uint16),
    "lv_mu": ("h", LV_MU, LEVELS, "log", np.float32),
    "lv_dev": ("h", LV_DEV, LEVELS, "log", np.float32),
    "lv_kw": ("h", LV_KW, LEVELS, "f16", np.float32),
    "wd_curve": ("h", WD, 24, "f16", np.float32),
    "we_curve": ("h", WE, 24, "f16", np.float32),
    "day_sum": ("h", DAY_SUM, 24, "f32", np.float32),
    "day_cnt": ("h", DAY_CNT, 24, "u8", np.uint8),
    "peaks": ("h", PEAKS, N_PEAKS, "f16", np.float32),
    "th_obs": ("th", TH_OBS, 24, "th", np.float32),
    "th_exp": ("th", TH_EXP, 24, "th", np.float32),
    "th_cnt": ("th", TH_CNT, 24, "th", np.uint8),
}
_CELLS = {"u16": 1.0, "log": 1.0, "f16": 1.0, "f32": 2.0, "u8": 0.5}  #: cells per value
_DTYPE = {"u16": np.uint16, "f16": np.float16, "f32": np.float32}
_H_ZERO = array("H", bytes(2 * H_LEN))
_H_ZERO[TOW_MU:LV_KW] = array("H", [_LOG_ZERO] * (LV_KW - TOW_MU))
_TH_ZERO = array("f", bytes(4 * TH_LEN))
_SCRATCH = array("f", b"\0\0\0\0")


def _encode(values: np.ndarray, enc: str) -> array:
    """Cells of ``values`` (numbers as versions 4 and 5 kept them) in encoding ``enc``."""
    v = values.astype(np.float64)
    codes: np.ndarray
    if enc == "log":
        codes = np.clip(np.floor((v + LOG_BIAS) * 2048.0 + 0.5), 0, 65_535).astype(np.uint16)
    elif enc == "f16":
        codes = np.clip(v, -_F16_MAX, _F16_MAX).astype(np.float16).view(np.uint16)
    elif enc == "f32":
        codes = v.astype(np.float32).view(np.uint16)
    elif enc == "u8":
        b = np.minimum(v, 255).astype(np.uint16)
        codes = (b[0::2] | (b[1::2] << 8)).astype(np.uint16)
    else:
        codes = v.astype(np.uint16)
    return array("H", codes.tobytes())


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
#: The scalars live at the end of ``h``, in the cells from ``X_AT`` (8-byte aligned: ``h``'s
#: own allocation is), not in an array of their own: a second buffer per meter cost its
#: object and its allocation besides its 184 bytes.
#: Between the 16-bit parts and the scalars, one cell each for the record's flags and small
#: counts (a slot each on the record object cost 8 bytes): named in ``CELL_FIELDS``.
CELL_FIELDS = ("last_fail", "silent", "quiet", "calm", "peak_days", "wd_days", "we_days",
               "days")
(C_LAST_FAIL, C_SILENT, C_QUIET, C_CALM, C_PEAK_DAYS, C_WD_DAYS, C_WE_DAYS, C_DAYS) = range(
    H_LEN, H_LEN + len(CELL_FIELDS))
X_AT = H_LEN + len(CELL_FIELDS)
X_BYTES = 2 * X_AT  #: the same offset in bytes (where the compiled kernels' ``x`` starts)
if X_AT % 4:
    raise ImportError("the record's scalars must start on an 8-byte boundary of h")
_H_ZERO.extend(array("H", bytes(2 * len(CELL_FIELDS))))
_H_ZERO.extend(array("H", _X_DEFAULT.tobytes()))
_d = struct.Struct("=d")
_unpack_d_from = _d.unpack_from
_pack_d_into = _d.pack_into


class _Scalar:
    """One float64 scalar of the record, kept in the scalars at the end of ``h``."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = X_BYTES + 8 * i  #: its byte offset in ``h``

    def __get__(self, rec: MeterRecord | None, owner: type | None = None) -> float:
        assert rec is not None
        return _unpack_d_from(rec.h, self.i)[0]

    def __set__(self, rec: MeterRecord, value: float) -> None:
        _pack_d_into(rec.h, self.i, value)


class _Int(_Scalar):
    """One integer of the record, kept (exactly) as a float64 in the scalars of ``h``."""

    __slots__ = ()

    def __get__(self, rec: MeterRecord | None, owner: type | None = None) -> int:
        assert rec is not None
        return int(_unpack_d_from(rec.h, self.i)[0])


#: the buffer whose scalars were viewed last, and that view (``MeterRecord.x``)
_LAST_X: list[tuple[array | None, memoryview[float]]] = [(None, memoryview(b"").cast("d"))]


class _Count:
    """One small count of the record, kept in its 16-bit cell ``i`` of ``h`` (saturating at
    65,535: days, readings in a row, never near it)."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __get__(self, rec: MeterRecord | None, owner: type | None = None) -> int:
        assert rec is not None
        return rec.h[self.i]

    def __set__(self, rec: MeterRecord, value: int) -> None:
        rec.h[self.i] = value if value < 65_535 else 65_535


class _Flag(_Count):
    """One flag of the record, kept in its cell of ``h`` (0 or 1)."""

    __slots__ = ()

    def __get__(self, rec: MeterRecord | None, owner: type | None = None) -> bool:
        assert rec is not None
        return rec.h[self.i] != 0

    def __set__(self, rec: MeterRecord, value: int) -> None:  # (a bool, or any truth value)
        rec.h[self.i] = 1 if value else 0


#: Shared immutable defaults (a meter with no run open holds these, not copies).
NO_RUN: tuple[float, int, float, float, float] = (0.0, 0, 0.0, 0.0, 0.0)
NO_PEAK_RUN: tuple[float, int, float] = (0.0, 0, 0.0)
NO_DAYS: tuple[float, int] = (0.0, 0)
_SHARED = {NO_RUN: NO_RUN, NO_PEAK_RUN: NO_PEAK_RUN, NO_DAYS: NO_DAYS}


#: The shared, read-only empty mapping a record holds for each of its alarm dicts (``act``,
#: ``cnt``, ``clr``, ``since``, ``fb``) while it is empty: most meters have nothing open or
#: pending, and an empty dict of their own would cost 64 bytes each. Write with :func:`put` and
#: :func:`drop`.
EMPTY: Mapping[str, Any] = MappingProxyType({})
_DICTS = ("act", "cnt", "clr", "since", "fb")


def _empty() -> Mapping[str, Any]:
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
    """Everything one meter's detectors know: one packed numeric buffer (its parts, flags,
    counts and float64 scalars), the theft window where its class judges theft, and the
    Python-level runs, alarms and verdicts."""

    meter_id: str
    #: 16-bit buffer: the load baseline (log-load per slot and level, see _baseline; counts),
    #: the daily curves, today's hourly sums and counts, the 28-day record ring (offsets and
    #: encodings above); from cell ``X_AT``, the float64 scalars (``x``)
    h: array = field(default_factory=_H_ZERO.__copy__)
    # --- consumption episodes: high and low runs (start, intervals, kWh beyond the band, kWh
    #: beyond usual (low: max kW), usual kWh)
    hi: tuple[float, int, float, float, float] = NO_RUN
    lo: tuple[float, int, float, float, float] = NO_RUN
    #: the meter's record (the highest usual reading of each of the last 28 local days, a ring
    #: in ``h`` by day ordinal; today's so far and the ring's highest in the scalars): the
    #: current run above the record (start, readings, its highest reading, folded into
    #: today's record when the run ends)
    peak_run: tuple[float, int, float] = NO_PEAK_RUN
    # --- capacity forecast
    # --- daily profile
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
    #: (each is the shared read-only ``EMPTY`` while empty, a dict of its own otherwise: read
    #: them as mappings, write with :func:`put` and :func:`drop`)
    act: Mapping[str, float] = field(default_factory=_empty)
    cnt: Mapping[str, int] = field(default_factory=_empty)
    clr: Mapping[str, int] = field(default_factory=_empty)
    since: Mapping[str, float] = field(default_factory=_empty)
    #: kind of the open consumption alarm
    kind: str = ""
    #: managers' verdicts: "type:kind" -> (false-alarm weight, event time it was last set, when
    #: the last verdict taken was given); a weight halves every ``feedback_half_life_days`` and
    #: widens that alarm's thresholds
    fb: Mapping[str, tuple[float, float, float]] = field(default_factory=_empty)

    # --- the reading stream: the last reading failed; silent (an outage or comm loss open);
    #: quiet (silence noticed, nothing raised)
    last_fail = _Flag(C_LAST_FAIL)
    silent = _Flag(C_SILENT)
    quiet = _Flag(C_QUIET)
    #: readings in a row back inside the band while a consumption alarm is open
    calm = _Count(C_CALM)
    #: how many of the 28-day record ring's days hold a reading (kept when the ring changes)
    peak_days = _Count(C_PEAK_DAYS)
    wd_days = _Count(C_WD_DAYS)  #: weekdays in the usual weekday curve
    we_days = _Count(C_WE_DAYS)  #: days off in the usual day-off curve
    days = _Count(C_DAYS)  #: whole local days profiled
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

    @property
    def x(self) -> memoryview[float]:
        """The float64 scalars (names and meanings in ``X_FIELDS``, then the integers of
        ``I_FIELDS``; read and set them by name, or by index here): a view of ``h``'s end.
        The last view made is kept (a step asks for it about five times a reading)."""
        h = self.h
        last = _LAST_X[0]  # (one tuple, replaced whole: threads never see a mixed pair)
        if last[0] is h:
            return last[1]
        view = memoryview(h)[X_AT:].cast("B").cast("d")
        _LAST_X[0] = (h, view)
        return view

    # ----------------------------------------------------------------- named views
    def view(self, name: str) -> np.ndarray:
        """A numpy view of one named part (``tow_mu``, ``lv_n``, ``wd_curve``, ...): writable
        for the ``u16``, ``f16`` and ``f32`` parts and the theft window, a decoded copy for the
        ``log`` parts. The theft window's parts are zeros while it is not allocated."""
        buf_name, off, size, enc, _ = _PARTS[name]
        if buf_name == "th":
            th = self.th
            if th is None:
                th = self.th = new_theft_window()
            return np.frombuffer(th, np.float32, size, off * 4)
        if enc == "log":
            codes = np.frombuffer(self.h, np.uint16, size, off * 2)
            return codes * LOG_STEP - LOG_BIAS
        if enc == "u8":
            cells = np.frombuffer(self.h, np.uint16, size // 2, off * 2)
            if sys.byteorder == "little":  # the bytes are the elements, in order
                return cells.view(np.uint8)
            return np.stack([cells & 255, cells >> 8], 1).reshape(-1).astype(np.uint8)
        return np.frombuffer(self.h, _DTYPE[enc], size, off * 2)

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
        """The record, version 7: ``(7, plain fields, alarm dicts, h, th)`` pickled, each
        field at its place in :data:`LAYOUT` (an empty dict and a theft window not being
        filled as None). Equal records give equal bytes."""
        th = self.th
        if th is not None and not self.th_hour:
            th = None  # (a window not being filled holds nothing: zeroed when it opens)
        return pickle.dumps((7, _plain_of(self), tuple(dict(d) if d else None
                                                       for d in _dicts_of(self)),
                             self.h.tobytes(), None if th is None else th.tobytes()), 5)

    @classmethod
    def from_bytes(cls, data: bytes) -> MeterRecord:
        got = pickle.loads(data)
        version = got[0]
        if version not in _READABLE:
            raise ValueError(f"meter state version {version} is not {RECORD_VERSION}: "
                             "start without the old recovery snapshot")
        if version == 7:
            return cls._from_positions(got)
        state = got[1]
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
        h = rec.h
        for name, (buf_name, off, size, enc, dtype) in _PARTS.items():
            if name not in state:
                continue
            v = state[name]
            if buf_name == "th":
                th = rec.th
                if th is None:
                    th = rec.th = new_theft_window()
                # float32 parts in the machine's format, counts as bytes (as version 4 wrote)
                th[off:off + size] = (array("f", array("B", v)) if dtype is np.uint8
                                      else array("f", v))
            elif version >= 6:
                h[off:off + int(size * _CELLS[enc])] = array("H", v)
            else:  # versions 4 and 5: the numbers as numpy typed them, encoded now
                h[off:off + int(size * _CELLS[enc])] = _encode(np.frombuffer(v, dtype), enc)
        if not rec.th_hour:
            rec.th = None  # an unfilled window is zeroed before use: hold none
        return rec

    @classmethod
    def _from_positions(cls, got: tuple[Any, ...]) -> MeterRecord:
        """A version 7 record (:meth:`to_bytes`), checked against :data:`LAYOUT` first."""
        plain_names, dict_names, h_bytes, th_bytes = LAYOUT
        _, plain, dicts, h, th = got
        if len(plain) != len(plain_names) or len(dicts) != len(dict_names) \
                or len(h) != h_bytes or (th is not None and len(th) != th_bytes):
            raise ValueError("meter state version 7 of another layout: start without the "
                             "old recovery snapshot")
        rec = cls(plain[0])
        for name, v in zip(plain_names, plain, strict=True):
            setattr(rec, name, _SHARED.get(v, v) if type(v) is tuple else v)
        for name, d in zip(dict_names, dicts, strict=True):
            if d:
                setattr(rec, name, d)
        memoryview(rec.h).cast("B")[:] = h  # (in place: the buffer keeps its alignment)
        if th is not None and rec.th_hour:
            window = new_theft_window()
            memoryview(window).cast("B")[:] = th
            rec.th = window
        return rec


#: The record's plain fields: its dataclass fields but its two buffers and its alarm dicts.
_FIELDS = tuple(f.name for f in fields(MeterRecord)
                if f.name not in ("h", "th") and f.name not in _DICTS)
#: What versions 4 to 6 wrote by name besides the buffers' parts and the scalars: the flags
#: and counts kept in ``h``, and the plain fields.
_PLAIN = CELL_FIELDS + _FIELDS
#: Version 7's layout, what :meth:`MeterRecord.to_bytes` writes at each place (pinned by a
#: test): the plain fields in order, the alarm dicts in order, the bytes of ``h`` and ``th``.
LAYOUT = (_FIELDS, _DICTS, 2 * len(_H_ZERO), 4 * TH_LEN)
if _FIELDS[0] != "meter_id":
    raise ImportError("the record's first plain field must be its meter id")
_plain_of = attrgetter(*_FIELDS)
_dicts_of = attrgetter(*_DICTS)
