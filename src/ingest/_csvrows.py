"""The common CSV row of a readings file, read without pydantic: ``meter_id``, a timestamp,
``kw`` and any of the other plain float columns, each in the one plain spelling that pydantic's
validation reads the same way (an identifier of the schema's pattern, ``2024-05-01T00:15:00Z``
or an offset, ``-12.5``).

:class:`FastRows` answers the reading that ``Reading.model_validate`` would give for such a row
(equal, field for field, with the same set of given fields), and None for any other row, which
then goes through the schema's validation and gets its reason. A row it answers is valid:
every range and rule of the schema it checks, and anything it does not check (quotes, other
spellings of numbers or times, out-of-range values, a timestamp before 2000) it leaves to
the validation.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, get_args

import annotated_types as at
from pydantic import BaseModel

from gridwatch._schemas import ID_PATTERN, Reading

__all__ = ["FastRows"]



def _bounds(name: str) -> tuple[float, float]:
    """The ``ge``/``le`` bounds of ``Reading``'s field ``name`` (inside its optional type too),
    read from the schema so that the two cannot drift apart."""
    field = Reading.model_fields[name]
    metas = list(field.metadata)
    for arg in get_args(field.annotation):
        for extra in get_args(arg)[1:]:
            metas.extend(getattr(extra, "metadata", ()))
    lo: Any = next(m.ge for m in metas if isinstance(m, at.Ge))
    hi: Any = next(m.le for m in metas if isinstance(m, at.Le))
    return float(lo), float(hi)


#: the float columns read here, with the schema's bounds
_FLOAT_BOUNDS: dict[str, tuple[float, float]] = {
    name: _bounds(name) for name in ("kw", "kwh", "export_kwh", "pf", "freq")}
_ID = re.compile(ID_PATTERN).fullmatch
_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?").fullmatch
_STAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})").fullmatch
_YEAR_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_UNSEEN: Any = object()

_DEFAULTS: dict[str, Any] = {name: f.default for name, f in Reading.model_fields.items()}
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


class FastRows:
    """Rows of one CSV header. :meth:`of` is None when the header has a column this does not
    read (phases, status, interval) or names a field twice: every row then goes through the
    schema's validation."""

    def __init__(self, width: int, id_col: int, ts_col: int,
                 floats: tuple[tuple[int, str, float, float], ...]) -> None:
        self.width = width
        self.id_col = id_col
        self.ts_col = ts_col
        self.floats = floats
        # what has been read before (bounded): timestamps, meter ids, numbers
        self._stamps: dict[str, datetime | None] = {}
        self._ids: set[str] = set()
        self._numbers: dict[str, float] = {}

    @classmethod
    def of(cls, header: list[str]) -> FastRows | None:
        """For a header as ``_numbered`` reads it (stripped, lower case)."""
        named = [h for h in header if h in _FLOAT_BOUNDS or h in ("meter_id", "ts", "timestamp")]
        if len(set(named)) != len(named) or ("ts" in named and "timestamp" in named):
            return None
        if {"voltage", "current", "status", "interval_s"} & set(header):
            return None
        if "meter_id" not in named or "kw" not in named:
            return None
        ts_col = header.index("ts" if "ts" in header else "timestamp")
        floats = tuple((i, h, *_FLOAT_BOUNDS[h]) for i, h in enumerate(header)
                       if h in _FLOAT_BOUNDS)
        return cls(len(header), header.index("meter_id"), ts_col, floats)

    def _stamp(self, text: str) -> datetime | None:
        """The UTC time of a plain ISO timestamp, None when validation must judge it (kept
        for the next rows with the same text)."""
        cache = self._stamps
        stamp: datetime | None = None
        if _STAMP(text):
            try:
                stamp = datetime.fromisoformat(text).astimezone(UTC)
            except (ValueError, OverflowError):
                stamp = None
            if stamp is not None and stamp < _YEAR_2000:
                stamp = None
        if len(cache) >= 100_000:
            cache.clear()
        cache[text] = stamp
        return stamp

    def reading(self, text: str) -> Reading | None:
        """The reading of one data line, or None when the schema's validation must read it."""
        if '"' in text or "\r" in text or "\x00" in text or "\n" in text:
            return None  # csv.reader would read it otherwise than a split on commas
        row = text.split(",")
        if len(row) != self.width:
            return None
        meter_id = row[self.id_col].strip()
        ids = self._ids
        if meter_id not in ids:
            if not _ID(meter_id):
                return None
            if len(ids) >= 100_000:
                ids.clear()
            ids.add(meter_id)
        text_ts = row[self.ts_col].strip()
        stamp = self._stamps.get(text_ts, _UNSEEN)
        if stamp is _UNSEEN:
            stamp = self._stamp(text_ts)
        if stamp is None:
            return None
        values = _DEFAULTS.copy()
        values["meter_id"] = meter_id
        values["ts"] = stamp
        given = {"meter_id", "ts"}
        numbers = self._numbers
        for i, name, low, high in self.floats:
            v = row[i].strip()
            if not v:
                continue  # an empty cell is a field not given
            x = numbers.get(v)
            if x is None:
                if not _NUMBER(v):
                    return None
                x = float(v)
                if len(numbers) >= 100_000:
                    numbers.clear()
                numbers[v] = x
            if not low <= x <= high:
                return None
            values[name] = x
            given.add(name)
        if "kw" not in given:
            return None
        reading = _new(Reading)
        _set_dict(reading, values)
        _set_fields_set(reading, given)
        _set_extra(reading, None)
        _set_private(reading, None)
        return reading
