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
from typing import Any, get_args

import annotated_types as at

from gridwatch._schemas import ID_PATTERN, Reading
from gridwatch.ingest._assemble import Stamps, reading_of_fields

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
_UNSEEN: Any = object()


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
        self._stamps = Stamps(100_000)
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

    def reading(self, text: str) -> Reading | None:
        """The reading of one data line, or None when the schema's validation must read it."""
        given = self.fields(text)
        return None if given is None else reading_of_fields(given)

    def fields(self, text: str) -> dict[str, Any] | None:
        """The given fields of one data line's reading, each as :class:`Reading` holds it
        (:func:`~gridwatch.ingest._assemble.reading_of_fields` makes the reading), or None
        when the schema's validation must read the line."""
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
        stamp = self._stamps.known.get(text_ts, _UNSEEN)
        if stamp is _UNSEEN:
            stamp = self._stamps.read(text_ts)
        if stamp is None:
            return None
        given: dict[str, Any] = {"meter_id": meter_id, "ts": stamp}
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
            given[name] = x
        if "kw" not in given:
            return None
        return given
