"""The read side: InfluxQL over ``/query`` (InfluxDB 1.x, 2.x's v1 compatibility API, 3.x).

Used by ``gridwatch report`` and to warm-start per-meter baselines from history after a restart
without recovery state. Rows come back as the value objects they were written from.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import requests
from pydantic import ValidationError

from gridwatch._schemas import (
    DEFAULT_MAX_FUTURE,
    ID_PATTERN,
    Event,
    LoadProfile,
    MeterStatus,
    Reading,
)
from gridwatch.ingest._assemble import YEAR_2000, reading_of_fields
from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._writer import influx_session

__all__ = ["InfluxReader", "ReadError"]

log = logging.getLogger("gridwatch.storage")

_PHASES = ("l1", "l2", "l3")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Bytes taken from a query's response at a time. (requests' ``iter_lines`` takes 512 and
#: joins each to the line so far: quadratic in a line, and a chunked response's line is a
#: whole chunk of rows, about a megabyte for 10,000 readings.)
READ_BYTES = 1 << 16
_decode = msgspec.json.decode
#: a meter id as ``Reading`` takes it (pydantic's ``$`` is the string's end, no newline)
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$")).fullmatch


class ReadError(RuntimeError):
    """A query failed; the message carries the server's words and the query."""


def _ns(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"time {ts.isoformat()} must carry a timezone")
    delta = ts.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_YEAR_2000_NS = _ns(YEAR_2000)


def _time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def lines_of(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream given in chunks (split at ``\\n``, each line joined once
    from its parts): every piece of ``b"".join(chunks).split(b"\\n")``, empty ones between
    two newlines too, but for an empty last one (the stream ends with a newline)."""
    parts: list[bytes] = []
    for chunk in chunks:
        if b"\n" not in chunk:
            if chunk:
                parts.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if parts:
            parts.append(lines[0])
            lines[0] = b"".join(parts)
            parts = []
        tail = lines.pop()
        yield from lines
        if tail:
            parts.append(tail)
    if parts:
        yield b"".join(parts)


def quote(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxReader:
    """InfluxQL queries against ``settings.url`` in database ``settings.database`` (and
    ``settings.retention_policy`` when set). Rows that no longer validate as value objects are
    counted in ``skipped`` and logged, never silently lost."""

    def __init__(self, settings: InfluxSettings, *, chunk_size: int = 10_000) -> None:
        self._settings = settings
        self._url = f"{settings.url}/query"
        self._timeout = settings.timeout_ms / 1000
        self._chunk = chunk_size
        self._session = influx_session(settings)
        rp = settings.retention_policy
        self._prefix = f'"{rp}".' if rp else ""
        self.skipped = 0

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> InfluxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw -------------------------------------------------------------------------------

    def series(self, q: str) -> Iterator[dict[str, Any]]:
        """The result series of one InfluxQL statement (chunked: memory stays bounded)."""
        params = {"db": self._settings.database, "q": q, "epoch": "ns",
                  "chunked": "true", "chunk_size": str(self._chunk)}
        try:
            resp = self._session.get(self._url, params=params, timeout=self._timeout,
                                     stream=True)
        except requests.RequestException as exc:
            raise ReadError(f"cannot reach {self._url}: {exc}") from None
        with resp:
            if resp.status_code // 100 != 2:
                raise ReadError(f"HTTP {resp.status_code} from {self._url} for {q!r}: "
                                f"{resp.text.strip()}")
            for raw in lines_of(resp.iter_content(chunk_size=READ_BYTES)):
                if not raw.strip():
                    continue
                try:
                    doc = _decode(raw)
                except msgspec.DecodeError as exc:
                    raise ReadError(f"{self._url} answered what is not JSON ({exc}) for "
                                    f"{q!r}") from None
                if doc.get("error"):
                    raise ReadError(f"{doc['error']} (query {q!r})")
                for result in doc.get("results", []):
                    if result.get("error"):
                        raise ReadError(f"{result['error']} (query {q!r})")
                    yield from result.get("series", [])

    def rows(self, q: str) -> Iterator[dict[str, Any]]:
        """Rows of ``q`` as dicts of column → value (series tags included)."""
        for s in self.series(q):
            tags = s.get("tags") or {}
            columns = s["columns"]
            for values in s.get("values", []):
                yield _row(tags, columns, values)

    def _select(self, measurement: str, where: Iterable[str], start: datetime | None,
                end: datetime | None) -> str:
        conds = list(where)
        if start is not None:
            conds.append(f"time >= {_ns(start)}")
        if end is not None:
            conds.append(f"time < {_ns(end)}")
        clause = f" WHERE {' AND '.join(conds)}" if conds else ""
        return f'SELECT * FROM {self._prefix}"{measurement}"{clause}'

    def _valid(self, kind: str, build: Any, row: dict[str, Any]) -> Any:
        try:
            return build(row)
        except (ValidationError, KeyError, ValueError, TypeError) as exc:
            self.skipped += 1
            log.warning("stored %s row does not validate, skipped (%s): %s", kind, row,
                        str(exc).splitlines()[0])
            return None

    # -- value objects ---------------------------------------------------------------------

    def readings(self, meter_id: str, start: datetime, end: datetime) -> list[Reading]:
        """One meter's readings in ``[start, end)``, oldest first."""
        q = self._select("reading", [f"meter_id = {quote(meter_id)}"], start, end)
        out = (self._valid("reading", _reading, r) for r in self.rows(q))
        return [r for r in out if r is not None]

    def events(self, meter_id: str | None = None, start: datetime | None = None,
               end: datetime | None = None, *, customer_id: str | None = None,
               grid_cell: str | None = None) -> list[Event]:
        """Events about a meter, a customer or a grid cell in ``[start, end)``, oldest first."""
        where = [f"{tag} = {quote(v)}" for tag, v in
                 (("meter_id", meter_id), ("customer_id", customer_id), ("grid_cell", grid_cell))
                 if v is not None]
        out = (self._valid("event", _event, r)
               for r in self.rows(self._select("event", where, start, end)))
        return [e for e in out if e is not None]

    def profiles(self, meter_id: str | None = None, start: datetime | None = None,
                 end: datetime | None = None, *,
                 customer_id: str | None = None) -> list[LoadProfile]:
        """Daily load profiles of a meter or a customer in ``[start, end)``, oldest first."""
        where = [f"{tag} = {quote(v)}" for tag, v in
                 (("meter_id", meter_id), ("customer_id", customer_id)) if v is not None]
        out = (self._valid("profile", _profile, r)
               for r in self.rows(self._select("profile", where, start, end)))
        return [p for p in out if p is not None]

    def recent_readings(self, since: datetime, meter_ids: Iterable[str] | None = None, *,
                        until: datetime | None = None,
                        group: int = 200) -> Iterator[Reading]:
        """Readings since ``since`` (all meters, or ``meter_ids``), to rebuild per-meter
        baselines at start-up without recovery state. Oldest first for every meter (across
        meters too when ``meter_ids`` is None); streamed in chunks, so memory stays small.
        The readings of :meth:`recent_fields`."""
        return map(reading_of_fields, self.recent_fields(since, meter_ids, until=until,
                                                         group=group))

    def recent_fields(self, since: datetime, meter_ids: Iterable[str] | None = None, *,
                      until: datetime | None = None,
                      group: int = 200) -> Iterator[dict[str, Any]]:
        """:meth:`recent_readings` as each reading's given fields, as :class:`Reading` holds
        them (what a warm start steps, without a reading object). A row is checked against
        ``Reading``'s limits by plain code (:func:`stored_fields`); one it cannot vouch for
        is validated as a ``Reading``, and skipped and counted if that fails too: a row
        gives exactly the fields its validation gives, or nothing."""
        if meter_ids is None:
            groups: list[list[str]] = [[]]
        else:
            ids = sorted(set(meter_ids))
            groups = [ids[i:i + group] for i in range(0, len(ids), group)]
        late = _ns(datetime.now(UTC) + DEFAULT_MAX_FUTURE)
        # (each chunk of an answer is a series of its own, mostly of the same columns: the
        # checks are made once for each set of them)
        checks: dict[tuple[Any, ...], Callable[[list[Any]], dict[str, Any] | None]] = {}
        for ids in groups:
            where = []
            if ids:
                where.append("(" + " OR ".join(f"meter_id = {quote(m)}" for m in ids) + ")")
            for s in self.series(self._select("reading", where, since, until)):
                tags = s.get("tags") or {}
                columns = s["columns"]
                key = (*columns, tags.get("meter_id"))
                fast = checks.get(key)
                if fast is None:
                    fast = checks[key] = stored_fields(columns, tags.get("meter_id"), late)
                for values in s.get("values", []):
                    fields = fast(values)
                    if fields is None:
                        reading = self._valid("reading", _reading, _row(tags, columns, values))
                        if reading is None:
                            continue
                        fields = {k: reading.__dict__[k] for k in reading.model_fields_set}
                    yield fields


def _row(tags: dict[str, Any], columns: list[str], values: list[Any]) -> dict[str, Any]:
    """A row of a series as a dict of column -> value, its series' tags included, the
    columns with no value left out."""
    row = dict(tags)
    row.update({c: v for c, v in zip(columns, values, strict=False) if v is not None})
    return row


#: A reading's phase columns: (the field, its columns in phase order).
_PHASE_COLUMNS = tuple((key, tuple(f"{name}_{p}" for p in _PHASES))
                       for name, key in (("v", "voltage"), ("i", "current")))


#: The limits ``Reading`` sets on its number fields (``tests/storage/test_reader.py`` proves
#: that a row within them validates, and that its fields are the same either way).
_NUMBER_LIMITS: dict[str, tuple[float, float]] = {
    "kw": (-100_000.0, 100_000.0), "kwh": (0.0, 1e12), "export_kwh": (0.0, 1e12),
    "pf": (-1.0, 1.0), "freq": (40.0, 70.0)}
_PHASE_LIMITS: dict[str, float] = {"voltage": 500_000.0, "current": 100_000.0}
#: status texts read so far, and their flags (at most 4,096 kept)
_STATUSES: dict[str, tuple[MeterStatus, ...]] = {}


def _number_check(at: int, lo: float, hi: float) -> list[str]:
    """Source lines that take column ``at`` as ``x``, a float within ``[lo, hi]`` or None
    (the row is refused: ``return None``) for a value of another kind or out of them; a
    line after them indented one step more runs when the column has a value."""
    return [f"    x = values[{at}]",
            "    if x is not None:",
            "        k = x.__class__",
            f"        if (k is not float and k is not int) or not {lo!r} <= x <= {hi!r}:",
            "            return None",
            "        if k is int:",
            "            x = float(x)"]


def stored_fields(columns: Sequence[str], tag_meter: Any,
                  late: int) -> Callable[[list[Any]], dict[str, Any] | None]:
    """The maker of a stored ``reading`` row's fields (the row's ``values`` in a series of
    ``columns``; ``tag_meter`` its series' ``meter_id`` tag, when the meter is not a column):
    the fields of the reading it was written from, as :class:`Reading` holds them, by plain
    code: what ``_reading`` and ``Reading``'s validation give (numbers as floats, the phases
    as tuples, the status as its flags, ``interval_s`` whole), or None for a row it cannot
    vouch for (a value of another type or out of ``Reading``'s limits, a meter id of another
    form, a time before 2000 or past ``late``, in ns): validation then says why.

    One function made once for the columns, each column's check written out at its place
    (a row costs no loop over the columns), of source written here from the column indices
    and ``Reading``'s limits only. A run of rows at one time makes the time once."""
    at = {c: i for i, c in enumerate(columns)}
    if "time" not in at or "kw" not in at:
        return lambda values: None
    lines = ["def check(values):",
             f"    ns = values[{at['time']}]",
             "    if ns.__class__ is not int or not YEAR_2000_NS <= ns <= LATE:",
             "        return None",
             "    if ns != last[0]:",
             "        last[0] = ns",
             "        last[1] = TIME(ns)",
             f"    m = values[{at['meter_id']}]" if "meter_id" in at else "    m = TAG_METER",
             "    if m not in ids:",
             "        if m.__class__ is not str or not ID(m):",
             "            return None",
             "        ids.add(m)",
             "    d = {'meter_id': m, 'ts': last[1]}"]
    for name, (lo, hi) in _NUMBER_LIMITS.items():
        if name in at:
            lines += _number_check(at[name], lo, hi)
            lines.append(f"        d[{name!r}] = x")
            if name == "kw":
                lines += ["    else:", "        return None"]
    counts = []
    for key, cols in _PHASE_COLUMNS:
        given = [at[c] for c in cols if c in at]
        if not given:
            continue
        lines.append("    p = []")
        for i in given:
            lines += _number_check(i, 0.0, _PHASE_LIMITS[key])
            lines.append("        p.append(x)")
        lines += ["    if p:", f"        d[{key!r}] = tuple(p)", f"    n_{key} = len(p)"]
        counts.append(f"n_{key}")
    if len(counts) == 2:
        lines += [f"    if {counts[0]} and {counts[1]} and {counts[0]} != {counts[1]}:",
                  "        return None"]
    if "status" in at:
        lines += [f"    text = values[{at['status']}]",
                  "    if text:",
                  "        flags = STATUSES.get(text) if text.__class__ is str else None",
                  "        if flags is None:",
                  "            flags = status_of(text)",
                  "            if flags is None:",
                  "                return None",
                  "        d['status'] = flags"]
    if "interval_s" in at:
        lines += [f"    x = values[{at['interval_s']}]",
                  "    if x is not None:",
                  "        k = x.__class__",
                  "        if (k is not float and k is not int) or not 1 <= x < 86401:",
                  "            return None",
                  "        d['interval_s'] = int(x)"]
    lines.append("    return d")
    scope: dict[str, Any] = {
        "YEAR_2000_NS": _YEAR_2000_NS, "LATE": late, "TIME": _time, "TAG_METER": tag_meter,
        "ID": _ID, "STATUSES": _STATUSES, "status_of": _status_of, "last": [None, None],
        "ids": set()}
    exec("\n".join(lines) + "\n", scope)  # a source made above of column indices only
    check: Callable[[list[Any]], dict[str, Any] | None] = scope["check"]
    return check


def _status_of(text: Any) -> tuple[MeterStatus, ...] | None:
    """The flags of a status text as ``_reading`` reads it (kept for the next row), or None
    for a flag ``MeterStatus`` does not know."""
    try:
        flags = tuple(MeterStatus(s) for s in str(text).split(","))
    except ValueError:
        return None
    if len(_STATUSES) < 4096:
        _STATUSES[str(text)] = flags
    return flags


def _reading(row: dict[str, Any]) -> Reading:
    data: dict[str, Any] = {"meter_id": row["meter_id"], "ts": _time(row["time"]),
                            "kw": row["kw"]}
    for name in ("kwh", "export_kwh", "pf", "freq"):
        if name in row:
            data[name] = row[name]
    for key, columns in _PHASE_COLUMNS:
        phases = [row[c] for c in columns if c in row]
        if phases:
            data[key] = tuple(phases)
    if row.get("status"):
        flags = _status_of(row["status"])
        if flags is None:
            raise ValueError(f"a status flag of {row['status']!r} is not known")
        data["status"] = flags
    if "interval_s" in row:
        data["interval_s"] = int(row["interval_s"])
    return Reading.model_validate(data, context={"now": datetime.now(UTC)})


def _event(row: dict[str, Any]) -> Event:
    evidence = {k[3:]: v for k, v in row.items() if k.startswith("ev_")}
    meters = tuple(m for m in str(row.get("meters", "")).split(",") if m)
    return Event(
        meter_id=row["meter_id"], type=row["type"], severity=row["severity"],
        score=row["score"], onset=datetime.fromisoformat(row["onset"]),
        raised_at=_time(row["time"]), state=row.get("state", "firing"),
        summary=row.get("summary", ""), evidence=evidence,
        customer_id=row.get("customer_id") or None, grid_cell=row.get("grid_cell") or None,
        meters=meters,
    )


def _profile(row: dict[str, Any]) -> LoadProfile:
    curve = []
    for hour in range(24):
        key = f"h{hour:02d}"
        if key not in row:
            break
        curve.append(row[key])
    optional = {k: row[k] for k in ("peak_valley_ratio", "load_factor", "night_day_ratio",
                                     "mom_growth") if k in row}
    return LoadProfile(
        meter_id=row["meter_id"], day=_time(row["time"]),
        customer_id=row.get("customer_id") or None, segment=row.get("segment", "unknown"),
        tags=tuple(t for t in str(row.get("tags", "")).split(",") if t),
        daily_kwh=row["daily_kwh"], peak_kw=row["peak_kw"], valley_kw=row["valley_kw"],
        curve=tuple(curve), **optional,
    )
