"""A cell's lane: its quiet readings stepped a micro-batch at a time in compiled code.

Most readings are quiet (see :mod:`gridwatch.models._quiet`), and for a quiet reading the cell's
per-reading work in Python — the registry lookup, the silence watch, the meter's checks, the
kernel's 38 arguments — costs several times the kernel's arithmetic. The lane keeps, per meter
of the cell (by its slot in the silence watch), what the kernel needs from the meter's record
and registry entry (:data:`~gridwatch.models._quiet_jit.LANE_METER`; the registry's and the
class's part shared as a few profiles), and whether the meter's next reading may take the lane
at all (``ready``). A batch's readings are put in rows of floats in one pass; one call of the
compiled :func:`~gridwatch.models._quiet_jit.lane` then steps them in order, record and watch,
for as long as each is quiet, and hands the first that is not back to the cell, which steps it
in Python as before and sets its meter's row again.

A judged reading beyond the band takes the lane too, as long as it raises or ends nothing, and
so does a reading of an abnormal-consumption episode (an alarm open): the kernel keeps the
meter's runs above and below the band and beyond its record (``rec.hi``, ``rec.lo``,
``rec.peak_run``) and the open alarm's kind and onset in a row of the lane's ``runs`` while
there is one, counts the episode's calm readings in the record, and each reading that changes
them hands the runs back to the record (:func:`~gridwatch.models._quiet.quiet_done`), so a
snapshot or a reading through Python finds the record as the per-reading path leaves it. A
reading that would raise, supersede or resolve an alarm goes through Python, as does a run's
or an episode's reading that starts a new local day.

A meter's row is set from its record at rest: right after a reading of it went through
Python, or, for a meter the lane has no row for yet (new to the cell, or resumed from a
snapshot), when the cell reaches its first reading in a chunk (``CellLogic._first_sight``),
so that that reading takes the lane too: the cell does the ticks before it, as the
per-reading path starts a reading, and sets the rows of the meters without one from there
on, the new ones given their slots in the silence watch only up to the next reading whose
watermark may tick (the watch's slots and ticks stay in the per-reading path's order; the
first new meter past it starts the same again). A meter's readings whose rows were made
while it had no slot are made again (a batch that holds many readings of a new meter: a file
sorted by meter, a backlog). A batch of any size takes the lane. The per-reading path of a
whole batch (one with verdicts waiting) takes the meters it steps off the lane until then
(:meth:`Lane.drop`). A silence tick needs no such
step: the meters it changes leave their watch status off rest, and the lane takes no reading
of such a meter. The records it leaves, and the events and scores, are those of the
per-reading path: ``tests/stream/test_lane.py`` runs both ways.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from gridwatch._schemas import MeterMeta, Reading
from gridwatch.ingest._assemble import reading_of_fields
from gridwatch.models import Calendar, DetectionSettings, MeterState
from gridwatch.models._quiet import (
    NO_PHASES,
    day_before,
    forecast_steps,
    lane_entry,
    phases_of,
    run_row,
)
from gridwatch.models._quiet_codes import POLICY, RUN_N

__all__ = ["Lane", "TimedFields", "meter_ids_at"]

_N_IN = 23  # (columns of a reading's row: _quiet_jit.LANE_IN)
_N_METER = 8  # (_quiet_jit.LANE_METER)
_N_PROFILE = 8 + len(POLICY)  # (_quiet_jit.LANE_PROFILE)
_RUNS = 5  # (the runs' column of LANE_METER)
#: a reading's row, packed as float64 (one C call a row: no tuple, no numpy conversion of
#: nested sequences, which cost about twice as much)
_ROW = struct.Struct(f"={_N_IN}d")
#: a row in two: the reading's own columns (``slot`` to ``pf``) and those of its time and
#: forecast (``cal_slot`` on), packed once for the readings that share them
_N_HEAD = 14
_HEAD = struct.Struct(f"={_N_HEAD}d")
_TAIL = struct.Struct(f"={_N_IN - _N_HEAD}d")
#: a reading the lane leaves to Python
_PYTHON_ROW = _ROW.pack(-1.0, *(0.0,) * (_N_IN - 1))
_NAN = math.nan
_NO_META = object()  #: a slot whose row was never set
#: numpy's float64 dtype, made once (a type given as a dtype is converted at each call)
_F64 = np.dtype(np.float64)
_NO_FORECAST = (0, 0, 0, 0)  #: a meter without a contracted kVA: no forecast's steps


class TimedFields(Sequence[tuple[float, Reading]]):
    """Readings given as their fields (each as :class:`Reading` holds it), with their event
    times: a sequence of (event time, reading) whose readings are made at the first look at
    each, which the lane spares the readings it steps (:meth:`Lane.rows` reads the fields)."""

    __slots__ = ("fields", "made", "times")

    def __init__(self, fields: list[dict[str, Any]], times: list[float]) -> None:
        self.fields = fields
        self.times = times
        #: the readings made so far, by index
        self.made: dict[int, Reading] = {}

    def __len__(self) -> int:
        return len(self.fields)

    @overload
    def __getitem__(self, i: int) -> tuple[float, Reading]: ...

    @overload
    def __getitem__(self, i: slice) -> TimedFields: ...

    def __getitem__(self, i: int | slice) -> tuple[float, Reading] | TimedFields:
        if isinstance(i, slice):
            return TimedFields(self.fields[i], self.times[i])
        if i < 0:
            i += len(self.fields)
        r = self.made.get(i)
        if r is None:
            r = self.made[i] = reading_of_fields(self.fields[i])
        return self.times[i], r

    def __iter__(self) -> Iterator[tuple[float, Reading]]:
        for i in range(len(self.fields)):
            yield self[i]

    def pairs(self) -> Iterable[tuple[float, dict[str, Any]]]:
        """(event time, fields) of each reading, in order."""
        return zip(self.times, self.fields, strict=True)


def meter_ids_at(timed: Sequence[tuple[float, Reading]] | TimedFields, ks: Iterable[int]
                 ) -> list[str]:
    """The meters of readings ``ks`` of ``timed`` (read from the fields of a
    :class:`TimedFields`: no reading is made)."""
    if type(timed) is TimedFields:
        fields = timed.fields
        return [fields[k]["meter_id"] for k in ks]
    return [timed[k][1].meter_id for k in ks]


def _cells_of(addrs: np.ndarray, meters: np.ndarray, ready: np.ndarray
              ) -> tuple[memoryview, memoryview, memoryview]:
    """The cells of the lane's address, meter and ready columns as flat memoryviews of
    int64, int32 and uint8 (the arrays' own memory, row after row)."""
    if not len(ready):  # (an empty array's view cannot be cast)
        return memoryview(array("q")), memoryview(array("i")), memoryview(array("B"))
    return (addrs.data.cast("B").cast("q"), meters.data.cast("B").cast("i"),
            ready.data.cast("B"))


class Lane:
    """The lane's columns for the meters of one cell, by the watch's slot."""

    __slots__ = ("_cells", "addrs", "calendar", "forecast_iv", "free", "metas", "meters",
                 "profile_of", "profiles", "ready", "runs", "settings")

    def __init__(self, settings: DetectionSettings, calendar: Calendar) -> None:
        self.settings = settings
        self.calendar = calendar
        self.addrs = np.zeros((0, 3), dtype=np.int64)
        self.meters = np.zeros((0, _N_METER), dtype=np.int32)
        self.ready = np.zeros(0, dtype=np.uint8)
        #: the three columns' cells as flat memoryviews (``set`` writes a row a cell at a
        #: time: a numpy assignment of a row from a tuple costs several times as much)
        self._cells = _cells_of(self.addrs, self.meters, self.ready)
        #: the registry entry each meter's row was set with (a reading whose entry is another
        #: object, after a reload, goes through Python and sets the row again)
        self.metas: list[Any] = []
        #: the interval of the meter's load forecast: -1 without a contracted kVA (no
        #: forecast's steps in its rows), its registered interval (s), else 0 (the reading's,
        #: the inferred one or the default, found at each reading)
        self.forecast_iv = array("i")
        self.profile_of: dict[tuple[float, ...], int] = {}
        self.profiles = np.zeros((0, _N_PROFILE), dtype=np.float64)
        #: the runs beyond the band of the meters with one open, a row each (the meter's
        #: ``runs`` column: its index + 1), and the free rows (their count, then indices)
        self.runs = np.zeros((0, RUN_N), dtype=np.float64)
        self.free = np.zeros(1, dtype=np.int64)

    def spare(self, rows: int) -> None:
        """At least ``rows`` free rows of runs (the lane takes one for each run that starts;
        without one, a reading beyond the band goes through Python)."""
        free = self.free
        if free[0] >= rows:
            return
        have = len(self.runs)
        size = max(have * 2, have + rows, 16)
        runs = np.zeros((size, RUN_N), dtype=np.float64)
        runs[:have] = self.runs
        grown = np.zeros(size + 1, dtype=np.int64)
        n = int(free[0])
        grown[1:n + 1] = free[1:n + 1]
        added = np.arange(size - 1, have - 1, -1, dtype=np.int64)  # (the lowest taken first)
        grown[n + 1:n + 1 + len(added)] = added
        grown[0] = n + len(added)
        self.runs, self.free = runs, grown

    def fit(self, slots: int) -> None:
        """Room for ``slots`` meters (the watch's slots grow as meters appear)."""
        have = len(self.ready)
        if slots <= have:
            return
        size = max(slots, have + have // 4, 16)
        addrs = np.zeros((size, 3), dtype=np.int64)
        addrs[:have] = self.addrs
        meters = np.zeros((size, _N_METER), dtype=np.int32)
        meters[:have] = self.meters
        ready = np.zeros(size, dtype=np.uint8)
        ready[:have] = self.ready
        self.addrs, self.meters, self.ready = addrs, meters, ready
        self._cells = _cells_of(addrs, meters, ready)
        self.metas.extend([_NO_META] * (size - have))
        self.forecast_iv.frombytes(bytes(4 * (size - have)))

    def set(self, j: int, state: MeterState, meta: MeterMeta | None) -> None:
        """Meter ``j``'s row from its record and registry entry, after a reading of it went
        through Python: ready for the lane, or not (see ``_quiet.lane_entry``)."""
        self.fit(j + 1)
        addrs, meters, ready = self._cells
        entry = lane_entry(state, meta, self.settings, self.calendar)
        if entry is None:
            ready[j] = 0
            return
        row, profile = entry
        p = self.profile_of.get(profile)
        if p is None:
            p = self.profile_of[profile] = len(self.profile_of)
            self.profiles = np.vstack([self.profiles, np.array([profile], dtype=np.float64)])
        a = 3 * j
        addrs[a], addrs[a + 1], addrs[a + 2] = row[0], row[1], row[2]
        m = _N_METER * j
        held = meters[m + _RUNS] - 1
        (meters[m], meters[m + 1], meters[m + 2], meters[m + 3], meters[m + 4],
         meters[m + 5], meters[m + 6]) = row[3:]
        meters[m + _N_METER - 1] = p
        runs = run_row(state)
        if runs is None:
            if held >= 0:  # (its row is free again)
                self._give(held)
            meters[m + _RUNS] = 0
        else:
            if held < 0:
                held = self._take()
            self.runs[held] = runs
            meters[m + _RUNS] = held + 1
        self.metas[j] = meta
        self.forecast_iv[j] = int(profile[0]) if profile[7] != 0.0 else -1
        ready[j] = 1

    def _take(self) -> int:
        """A free row of runs, taken (as the lane takes one)."""
        self.spare(1)
        free = self.free
        k = int(free[free[0]])
        free[0] -= 1
        return k

    def _give(self, k: int) -> None:
        """Row ``k`` of runs free again (as the lane gives one back)."""
        free = self.free
        free[0] += 1
        free[free[0]] = k

    def never_set(self, j: int) -> bool:
        """Whether meter ``j``'s row was never set (a meter new to the cell, or to the lane
        since a resume)."""
        return j >= len(self.metas) or self.metas[j] is _NO_META

    def drop(self, j: int | None) -> None:
        """Meter ``j`` off the lane until its next reading through Python."""
        if j is not None and j < len(self.ready):
            self.ready[j] = 0

    @staticmethod
    def unslotted(timed: Sequence[tuple[float, Reading]] | TimedFields, rows: np.ndarray,
                  start: int) -> dict[str, list[int]]:
        """The readings from ``start`` on that ``rows`` leaves to Python, by meter."""
        out: dict[str, list[int]] = {}
        ks = (np.flatnonzero(rows[start:, 0] < 0) + start).tolist()
        for k, meter_id in zip(ks, meter_ids_at(timed, ks), strict=True):
            out.setdefault(meter_id, []).append(k)
        return out

    @staticmethod
    def subset(timed: Sequence[tuple[float, Reading]] | TimedFields, ks: list[int]
               ) -> Sequence[tuple[float, Reading]] | TimedFields:
        """The readings ``ks`` of ``timed``, as ``timed`` holds them (fields stay fields)."""
        if type(timed) is TimedFields:
            return TimedFields([timed.fields[k] for k in ks], [timed.times[k] for k in ks])
        return [timed[k] for k in ks]

    def rows(self, timed: Sequence[tuple[float, Reading]] | TimedFields, slot: dict[str, int],
             known: Mapping[str, MeterMeta | None], meta_of: Callable[[str], MeterMeta | None],
             cell_known: bool,
             states: dict[str, MeterState], c: Any
             ) -> tuple[np.ndarray, bool, list[Any], list[MeterMeta | None]]:
        """The batch's readings as rows (``_quiet_jit.LANE_IN``), whether any may take the
        lane, the forecast's steps the rows point to (keep them while the rows are used), and
        each reading's registry entry (looked up once here: ``known``, the entries kept, else
        ``meta_of``).
        A reading goes through Python when its meter has no row, its registry entry is not the
        one the row was set with, it carries a status, its voltages are neither one nor three,
        or the cell still waits for its name from the registry. The readings of a
        :class:`TimedFields` are read from their fields: no reading object is made."""
        slot_get = slot.get
        metas = self.metas
        n_metas = len(metas)
        cal = self.calendar
        quarters = cal._q
        info_of = cal.info
        out: list[bytes] = []
        append = out.append
        any_lane = False
        nan = _NAN
        default_iv = c.interval_s
        kept: list[Any] = []
        info_t = steps_t = _NAN
        steps_iv = 0
        info: tuple[int, int, int] = (0, 0, 0)
        before: tuple[int, int, float] = (0, 0, 0.0)
        before_day: int | None = None  # (the day ``before`` is the day before of)
        kva_steps: tuple[int, ...] = _NO_FORECAST
        entries: list[MeterMeta | None] = []
        entry = entries.append
        forecast_iv = self.forecast_iv
        known_get = known.get
        head = _HEAD.pack
        tail_pack = _TAIL.pack
        plain_tail = kva_tail = b""  # (the tail of this time without a forecast, with one)
        pairs = timed.pairs() if type(timed) is TimedFields \
            else [(t, r.__dict__) for t, r in timed]
        for t, d in pairs:
            meter_id = d["meter_id"]
            meta = known_get(meter_id) or meta_of(meter_id)
            entry(meta)
            j = slot_get(meter_id, -1)
            if j < 0 or j >= n_metas or metas[j] is not meta or d.get("status") or (
                    not cell_known and meta is not None):
                append(_PYTHON_ROW)
                continue
            volts = d.get("voltage")
            ph = phases_of(volts, d.get("current")) if volts else NO_PHASES
            if ph is None:
                append(_PYTHON_ROW)
                continue
            kwh = d.get("kwh")
            pf = d.get("pf")
            r_iv = d.get("interval_s")
            if t != info_t:
                info_t = t
                info = quarters.get(int(t // 900)) or info_of(t)
                if info[2] != before_day:  # (a cell's readings of one meter: a new time each)
                    before_day = info[2]
                    before = day_before(cal, before_day)
                plain_tail = kva_tail = b""
            cap_iv = forecast_iv[j]
            if cap_iv >= 0:
                # the interval the kernel will use, as far as it is known now (it answers
                # PYTHON, and the reading goes through Python, if it finds another): the
                # registry's (kept with the row, from the same entry), else the reading's,
                # the inferred one or the default
                if not cap_iv:
                    state = states.get(meter_id)
                    if state is None:
                        append(_PYTHON_ROW)
                        continue
                    cap_iv = int(r_iv or state.inferred_s or default_iv)
                if t != steps_t or cap_iv != steps_iv:
                    steps_t, steps_iv = t, cap_iv
                    steps = forecast_steps(c, cal, t, cap_iv)
                    kept.append(steps)
                    kva_steps = (cap_iv, steps[0], steps[3], len(steps[1]))
                    kva_tail = b""
                if not kva_tail:
                    kva_tail = tail_pack(info[1], info[2], *kva_steps, *before)
                tail = kva_tail
            else:
                if not plain_tail:
                    plain_tail = tail_pack(info[1], info[2], *_NO_FORECAST, *before)
                tail = plain_tail
            append(head(j, t, d["kw"], nan if kwh is None else kwh, r_iv or 0.0, *ph,
                        nan if pf is None else pf))
            append(tail)  # (the row's other columns: the join puts them after its own)
            any_lane = True
        # (a bytearray: the kernel takes a writable array; a row a reading, as ``entries``
        # holds an entry a reading, or numpy raises: the buffer is too small)
        rows = np.ndarray((len(entries), _N_IN), _F64, bytearray().join(out))
        return rows, any_lane, kept, entries
