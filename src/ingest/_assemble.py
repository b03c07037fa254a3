"""Readings put together without pydantic, from values already checked: the pieces the fast
readers of ingest share (the CSV rows of a file, compact MQTT payloads, the journal's records).

:func:`built` makes a :class:`Reading` as pydantic does after its validation; :class:`Stamps`
reads the plain spelling of a timestamp that pydantic reads the same way; :func:`phases_agree`
does ``Reading``'s per-phase checks on a reading's field values. Each reader's tests prove it
gives exactly what ``Reading``'s validation gives.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel

from gridwatch._schemas import Reading

__all__ = ["DEFAULTS", "YEAR_2000", "ReadingFields", "Stamps", "built", "phases_agree",
           "reading_of_fields"]

#: Every field of a reading at its default: a copy updated with the given fields is its
#: ``__dict__``.
DEFAULTS: Final[dict[str, Any]] = {name: f.default for name, f in Reading.model_fields.items()}
#: The earliest timestamp a reading may have (``_check_timestamp``: a meter's clock unset).
YEAR_2000: Final = datetime(2000, 1, 1, tzinfo=UTC)

_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
# pydantic's own slots of every model (what ``model_construct`` fills)
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def built(values: dict[str, Any], given: set[str]) -> Reading:
    """A reading of field ``values`` already checked (every field, in order), ``given`` its
    fields set, put together as pydantic does after validation."""
    reading = _new(Reading)
    _set_dict(reading, values)
    _set_fields_set(reading, given)
    _set_extra(reading, None)
    _set_private(reading, None)
    return reading


def reading_of_fields(given: dict[str, Any]) -> Reading:
    """The reading of its ``given`` fields, each already as :class:`Reading` holds it (checked,
    a lone phase number made a tuple: :func:`phases_agree`); the others at their defaults."""
    values = DEFAULTS.copy()
    values.update(given)
    return built(values, set(given))


class ReadingFields:
    """Readings as their given fields only, in order: a run of journal records decoded
    (:func:`~gridwatch.ingest._journal.rebuild_fields`), each field as :class:`Reading` holds
    it. A source item that stands for ``len(self)`` readings whose objects are made only when
    asked (:meth:`readings`): the dataflow groups them per grid cell and its compiled lane
    reads the fields themselves, so most readings never need one."""

    __slots__ = ("given",)

    def __init__(self, given: list[dict[str, Any]]) -> None:
        self.given = given

    def __len__(self) -> int:
        return len(self.given)

    def __repr__(self) -> str:
        return f"ReadingFields({len(self.given)} readings)"

    def readings(self) -> list[Reading]:
        """The readings themselves."""
        return list(map(reading_of_fields, self.given))


def phases_agree(values: dict[str, Any]) -> bool:
    """What ``Reading``'s per-phase checks do, on a reading's field values (all of them, or
    the given ones only): a lone voltage or current number made a one-phase tuple
    (``_scalar_to_tuple``), in place; False unless there are as many voltage as current
    phases (``_phases_agree``)."""
    voltage, current = values.get("voltage"), values.get("current")
    if voltage.__class__ is float:
        voltage = values["voltage"] = (voltage,)
    if current.__class__ is float:
        current = values["current"] = (current,)
    return not (voltage and current and len(voltage) != len(current))


#: The plain ISO spelling (ASCII digits, ``T``, at most microseconds, ``Z`` or an offset)
_PLAIN_STAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})").fullmatch


class Stamps:
    """Timestamps read so far, by their text (at most ``kept``, then forgotten at once): the
    UTC time of a plain ISO timestamp not before 2000, None for any other text (validation
    judges it). Readers look in :attr:`known` first (one dict access a reading) and call
    :meth:`read` for a text not there."""

    __slots__ = ("kept", "known")

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.known: dict[str, datetime | None] = {}

    def read(self, text: str) -> datetime | None:
        """The time of ``text`` (kept for the next reading with the same text)."""
        stamp: datetime | None = None
        if _PLAIN_STAMP(text):
            try:
                stamp = datetime.fromisoformat(text).astimezone(UTC)
            except (ValueError, OverflowError):  # not a day of the calendar; past its end
                stamp = None
            if stamp is not None and stamp < YEAR_2000:
                stamp = None
        known = self.known
        if len(known) >= self.kept:
            known.clear()
        known[text] = stamp
        return stamp
