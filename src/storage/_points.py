"""The storage schema: how each value object becomes InfluxDB points.

One measurement per kind of object. Tags are the values dashboards group and filter by and that
take a bounded set of values (meter, customer, grid cell, segment, event type, severity, alert
state); everything else — numbers, free text, lists — is a field. A point's identity is its
measurement, tag set and timestamp, all taken from the object itself (never from the clock), so
converting the same object again gives the same point and rewriting it overwrites instead of
doubling. Numbers are always written as floats, so a value that happens to be whole never
creates an integer/float field type conflict. docs/storage.md documents the layout.

Pure: a :class:`PointRecord` is plain data (measurement, tags, fields, timestamp) and renders
itself as line protocol, which is what the sink writes. No InfluxDB client is imported here; the
writer module turns records into ``influxdb_client.Point`` objects for callers that want them
(:func:`gridwatch.storage.to_points`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import msgspec

from gridwatch._schemas import (
    ID_PATTERN,
    AlertTransition,
    DeviceTelemetry,
    Event,
    Forecast,
    LoadProfile,
    MeterStatus,
    Reading,
    Score,
)

__all__ = [
    "MEASUREMENTS",
    "PRECISION",
    "PointRecord",
    "StoredObject",
    "UnsupportedObjectError",
    "field_lines",
    "reading_lines",
    "to_lines",
    "to_records",
]

#: Measurement names, by the value object they store.
MEASUREMENTS: dict[type, str] = {
    Reading: "reading",
    DeviceTelemetry: "telemetry",
    Score: "score",
    Event: "event",
    LoadProfile: "profile",
    AlertTransition: "alert",
    Forecast: "forecast",
}

#: Precision of every timestamp written (nanoseconds: no two distinct instants collide); the
#: value of ``influxdb_client.WritePrecision.NS``.
PRECISION = "ns"

_PHASES = ("l1", "l2", "l3")


class UnsupportedObjectError(TypeError):
    """The object is not one the storage schema knows how to write."""


def _num(value: float | int) -> float:
    return float(value)


def _text(value: str) -> str:
    # Line protocol has one point per line: a line break inside a string field would split it.
    return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t",
                             "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r'\"', "\\": r"\\"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PointRecord:
    """One point of the schema as plain data, rendered straight to line protocol (about 1.2×
    faster than through an ``influxdb_client.Point``, byte for byte the same; a property test
    checks)."""

    __slots__ = ("fields", "measurement", "tags", "ts")

    def __init__(self, measurement: str) -> None:
        self.measurement = measurement
        self.tags: dict[str, str] = {}
        self.fields: dict[str, float | bool | str] = {}
        self.ts: datetime | None = None

    def tag(self, key: str, value: str) -> PointRecord:
        self.tags[key] = value
        return self

    def field(self, key: str, value: float | bool | str) -> PointRecord:
        self.fields[key] = value
        return self

    def time(self, ts: datetime) -> PointRecord:
        self.ts = ts
        return self

    def line(self) -> str:
        parts = [self.measurement]
        for key in sorted(self.tags):
            value = self.tags[key].translate(_ESCAPE_KEY)
            if value.endswith("\\"):
                value += " "
            parts.append(f",{key.translate(_ESCAPE_KEY)}={value}")
        fields = []
        for key in sorted(self.fields):
            fvalue = self.fields[key]
            if isinstance(fvalue, bool):
                text = "true" if fvalue else "false"
            elif isinstance(fvalue, float):
                if not math.isfinite(fvalue):
                    continue  # as influxdb-client does
                text = str(fvalue)
                if text.endswith(".0"):
                    text = text[:-2]
            else:
                text = '"' + fvalue.translate(_ESCAPE_STRING) + '"'
            fields.append(f"{key.translate(_ESCAPE_KEY)}={text}")
        assert self.ts is not None
        delta = self.ts - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        return f"{''.join(parts)} {','.join(fields)} {ns}"


def _tags(point: PointRecord, tags: dict[str, str | None]) -> PointRecord:
    for key, value in tags.items():
        if value:
            point.tag(key, _text(value))
    return point


def _reading(r: Reading) -> PointRecord:
    p = _tags(PointRecord("reading"), {"meter_id": r.meter_id})
    p.field("kw", _num(r.kw))
    if r.kwh is not None:
        p.field("kwh", _num(r.kwh))
    if r.export_kwh is not None:
        p.field("export_kwh", _num(r.export_kwh))
    for name, values in (("v", r.voltage), ("i", r.current)):
        for phase, value in zip(_PHASES, values or (), strict=False):
            p.field(f"{name}_{phase}", _num(value))
    if r.pf is not None:
        p.field("pf", _num(r.pf))
    if r.freq is not None:
        p.field("freq", _num(r.freq))
    if r.status:
        p.field("status", ",".join(s.value for s in r.status))
    if r.interval_s is not None:
        p.field("interval_s", _num(r.interval_s))
    return p.time(r.ts)


def _telemetry(t: DeviceTelemetry) -> PointRecord:
    p = _tags(PointRecord("telemetry"), {"device_id": t.device_id, "site": t.site, "kind": t.kind})
    for name, value in sorted(t.metrics.items()):
        p.field(name, _num(value))
    if t.status:
        p.field("status_flags", ",".join(t.status))
    return p.time(t.ts)


def _score(s: Score) -> PointRecord:
    p = _tags(PointRecord("score"), {"meter_id": s.meter_id, "segment": s.segment})
    p.field("kw", _num(s.kw)).field("expected_kw", _num(s.expected_kw))
    p.field("score", _num(s.score)).field("anomalous", bool(s.anomalous))
    return p.time(s.ts)


def _event(e: Event) -> PointRecord:
    p = _tags(PointRecord("event"), {
        "meter_id": e.meter_id, "type": e.type, "severity": e.severity.value,
        "customer_id": e.customer_id, "grid_cell": e.grid_cell,
    })
    p.field("score", _num(e.score)).field("state", e.state)
    p.field("onset", _iso(e.onset))
    p.field("summary", _text(e.summary))
    if e.meters:
        p.field("meters", _text(",".join(e.meters))).field("meter_count", float(len(e.meters)))
    for key, value in sorted(e.evidence.items()):
        if value is None:
            continue
        # Numbers as floats, so evidence that is sometimes whole does not conflict.
        if isinstance(value, bool | str):
            p.field(f"ev_{key}", _text(value) if isinstance(value, str) else value)
        else:
            p.field(f"ev_{key}", _num(value))
    return p.time(e.raised_at)


def _profile(lp: LoadProfile) -> PointRecord:
    p = _tags(PointRecord("profile"), {
        "meter_id": lp.meter_id, "customer_id": lp.customer_id, "segment": lp.segment,
    })
    p.field("daily_kwh", _num(lp.daily_kwh)).field("peak_kw", _num(lp.peak_kw))
    p.field("valley_kw", _num(lp.valley_kw))
    for name in ("peak_valley_ratio", "load_factor", "night_day_ratio", "mom_growth"):
        value = getattr(lp, name)
        if value is not None:
            p.field(name, _num(value))
    if lp.tags:
        p.field("tags", _text(",".join(lp.tags)))
    for hour, value in enumerate(lp.curve):
        p.field(f"h{hour:02d}", _num(value))
    return p.time(lp.day)


def _alert(a: AlertTransition) -> PointRecord:
    p = _tags(PointRecord("alert"), {
        "meter_id": a.meter_id, "type": a.type, "severity": a.severity.value, "state": a.state,
        "customer_id": a.customer_id, "grid_cell": a.grid_cell,
    })
    p.field("fingerprint", _text(a.fingerprint)).field("by", _text(a.by))
    if a.recipient:
        p.field("recipient", _text(a.recipient))
    if a.reason:
        p.field("reason", _text(a.reason))
    return p.time(a.at)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _forecast(f: Forecast) -> PointRecord:
    p = _tags(PointRecord("forecast"), {"target": f.target, "target_kind": f.target_kind,
                                  "horizon": f.horizon, "grid_cell": f.grid_cell,
                                  "customer_id": f.customer_id})
    if f.actual is None:
        p.field("value", _num(f.value)).field("p10", _num(f.p10)).field("p90", _num(f.p90))
        p.field("made_at", _iso(f.made_at))
        if f.limit is not None:
            p.field("limit", _num(f.limit))
    else:
        p.field("actual", _num(f.actual))
    return p.time(f.ts)


_CONVERTERS: dict[type, Any] = {
    Reading: _reading,
    DeviceTelemetry: _telemetry,
    Score: _score,
    Event: _event,
    LoadProfile: _profile,
    AlertTransition: _alert,
    Forecast: _forecast,
}


StoredObject: TypeAlias = (Reading | DeviceTelemetry | Score | Event | LoadProfile
                           | AlertTransition | Forecast)


def _convert(obj: StoredObject) -> PointRecord:
    convert = _CONVERTERS.get(type(obj))
    if convert is None:
        raise UnsupportedObjectError(
            f"cannot store a {type(obj).__name__}: expected one of "
            f"{', '.join(t.__name__ for t in _CONVERTERS)}"
        )
    record: PointRecord = convert(obj)
    return record


def to_records(obj: StoredObject) -> list[PointRecord]:
    """The points that store ``obj``, as plain records (one per object in the current schema).

    Raises :class:`UnsupportedObjectError` naming the type for anything else.
    """
    return [_convert(obj)]


def to_lines(obj: StoredObject) -> list[str]:
    """The line protocol (nanosecond timestamps) of the points that store ``obj``: what the sink
    writes. Raises :class:`UnsupportedObjectError` naming the type for anything but a schema
    object."""
    if type(obj) is Reading:  # one per reading: the hot path has a writer of its own
        return reading_lines((obj,))
    return [_convert(obj).line()]


#: ``.0`` at the end of a number in the lines of readings: a whole float is written as an
#: integer literal (``kw=2``), as influxdb-client's ``Point`` writes it (line protocol reads
#: both as a float field without the ``i`` suffix). In a reading's line a number ends before
#: ``,`` (the next field) or before a space and the timestamp's first digit. The meter's
#: identifier, the only other text that could end in ``.0``, is followed by a space and a
#: field's name (a letter), and no status holds ``.0`` or ``,``. So one pass over the lines of
#: a batch, joined, drops exactly what a pass over each line's fields would.
_WHOLE = re.compile(r"\.0(?=,| [0-9])").sub

if any(".0" in s.value or "," in s.value or "=" in s.value
       for s in MeterStatus):  # pragma: no cover
    raise ImportError("a meter status with '.0', ',' or '=' would be mangled by _WHOLE")
if any(re.fullmatch(ID_PATTERN, "a" + c) for c in ',= \t\r\n"\\%'):  # pragma: no cover
    raise ImportError("a meter identifier may need escaping in a tag, or hold a '%' "
                      "(a line maker puts it in a format): shaped lines do not")


def _reading_format(shape: tuple[bool, bool, int, bool, bool, bool, bool, int]) -> str:
    """The ``%`` format of the fields of a reading of ``shape`` (which of export_kwh, freq,
    the current's phases, interval_s, kwh, pf, status and the voltage's phases it has): keys in
    sorted order, as the general path writes them; ``%r`` gives a float's shortest repr."""
    export, freq, currents, interval, kwh, pf, status, volts = shape
    names = ((["export_kwh"] if export else []) + (["freq"] if freq else [])
             + [f"i_{p}" for p in _PHASES[:currents]] + (["interval_s"] if interval else [])
             + ["kw"] + (["kwh"] if kwh else []) + (["pf"] if pf else []))
    fields = [f"{name}=%r" for name in names]
    if status:
        fields.append('status="%s"')
    fields += [f"v_{p}=%r" for p in _PHASES[:volts]]
    return ",".join(fields)


_FORMATS: dict[tuple[bool, bool, int, bool, bool, bool, bool, int], str] = {}
#: A reading's fields a line maker writes (:func:`_line_maker`), and those it must have.
_SERVED = frozenset(("meter_id", "ts", "kw", "kwh", "export_kwh", "voltage", "current", "pf",
                     "freq", "interval_s"))
_NEEDED = frozenset(("meter_id", "ts", "kw"))
#: A line maker: given a reading's fields, its timestamp's text (`` ns``) and the batch's
#: two lists' ``append``/``extend`` (formats, numbers), it adds the reading's line to them as
#: its ``%`` format (its meter and stamp in it) and its numbers (:func:`field_lines`).
LineMaker: TypeAlias = Callable[[dict[str, Any], str, Callable[[str], None],
                                 Callable[[tuple[Any, ...]], None]], None]
#: The line maker of a reading by the names of its given fields, in their order (None: the
#: general way). At most ``_MAKERS_KEPT`` are made: a sender's firmware keeps one order of
#: fields, and the readings of orders beyond them (senders that shuffle their fields) go the
#: general way rather than make a function each.
_MAKERS: dict[tuple[str, ...], LineMaker | None] = {}
_MAKERS_KEPT = 256
_UNSEEN: Any = object()
#: msgspec's JSON text of a batch's numbers, in one call: for a finite float it is Python's
#: ``repr`` (the shortest text that reads back as the float) wherever neither writes an
#: exponent, and an int's is its ``repr`` too. The two differ only in an exponent's form and
#: where it starts (msgspec writes ``0.00001`` where ``repr`` writes ``1e-05``), so a batch
#: whose numbers' text has an ``e``, or a number below 10^-4 (``0.0000``), is written the
#: general way; so is any text but numbers (``null`` for a field given as None).
_encode_numbers = msgspec.json.encode
_NUMBER_TEXT = b"0123456789.-,[]"


def _line_maker(keys: tuple[str, ...]) -> LineMaker | None:
    """The maker of the line of a reading whose given fields are ``keys``, with no status:
    a function, made once for the keys, that indexes each field and adds to the batch's
    lists the reading's ``%`` format (the one of its phases, its meter and stamp put in) and
    its numbers; :func:`field_lines` writes the numbers' text for the whole batch at once.
    None for keys it does not serve (a status, a field no reading has), which
    :func:`_general_line` then writes. A phase field given as None makes it raise TypeError
    before it adds anything; a plain field given as None adds None to the numbers (the
    caller checks)."""
    names = set(keys)
    if len(names) != len(keys) or not names <= _SERVED or not names >= _NEEDED:
        return None
    export, freq, interval, kwh, pf = (n in names for n in
                                       ("export_kwh", "freq", "interval_s", "kwh", "pf"))
    formats = tuple(
        " " + _reading_format((export, freq, c, interval, kwh, pf, False, v)).replace("%r", "%s")
        for c in range(4) for v in range(4))
    current = 'd["current"]' if "current" in names else "()"
    voltage = 'd["voltage"]' if "voltage" in names else "()"
    values = [*(f'd["{n}"]' for n in ("export_kwh", "freq") if n in names),
              "*c", *(f'd["{n}"]' for n in ("interval_s", "kw", "kwh", "pf") if n in names),
              "*v"]
    source = (f"def line(d, stamp, add_format, add_numbers):\n"
              f"    c = {current}\n    v = {voltage}\n"
              f"    numbers = ({', '.join(values)},)\n"
              f"    add_format('reading,meter_id=' + d['meter_id'] + formats[len(c) * 4 + len(v)]"
              f" + stamp)\n"
              f"    add_numbers(numbers)\n")
    scope: dict[str, Any] = {"formats": formats}
    exec(source, scope)  # a source made above of the fixed field names only
    made: LineMaker = scope["line"]
    return made


def _general_line(d: dict[str, Any], stamp: str) -> str:
    """The line (``.0`` not yet dropped) of a reading of any given fields (those not given
    or None left out): one ``%`` format a shape of reading."""
    get = d.get
    export, freq, interval, kwh, pf = (get("export_kwh"), get("freq"), get("interval_s"),
                                       get("kwh"), get("pf"))
    current, status, voltage = get("current") or (), get("status"), get("voltage") or ()
    shape = (export is not None, freq is not None, len(current), interval is not None,
             kwh is not None, pf is not None, bool(status), len(voltage))
    fmt = _FORMATS.get(shape)
    if fmt is None:
        fmt = _FORMATS[shape] = _reading_format(shape)
    values: list[Any] = [x for x in (export, freq) if x is not None]
    values += current
    if interval is not None:
        values.append(interval)
    values.append(d["kw"])
    if kwh is not None:
        values.append(kwh)
    if pf is not None:
        values.append(pf)
    if status:
        values.append(",".join(s.value for s in status).translate(_ESCAPE_STRING))
    values += voltage
    return ("reading,meter_id=" + d["meter_id"].translate(_ESCAPE_KEY) + " "
            + fmt % tuple(values) + stamp)


def reading_lines(readings: Iterable[Reading]) -> list[str]:
    """The line protocol of each reading, in order (:func:`field_lines` of their fields)."""
    return field_lines([r.__dict__ for r in readings])


def field_lines(readings: Iterable[dict[str, Any]]) -> list[str]:
    """The line protocol of each reading, given by its fields (all of them, or the ones given:
    the others at their defaults), in order, byte for byte what the general
    ``PointRecord`` path gives (a property test checks), at a fraction of its cost: the sink
    writes one line per reading, the largest part of the engine's storage work.

    A reading with no status, given by its fields only (as the journal's readings come), is
    put by the line maker of its fields' names (:func:`_line_maker`) as its ``%`` format, with
    its meter and stamp in it, and its numbers; any other is written the general way
    (:func:`_general_line`) and goes in as a format with nothing to fill. The numbers of the
    whole batch are written as text in one call (msgspec's JSON, which is their ``repr``, see
    :data:`_encode_numbers`), whole floats' ``.0`` dropped there (where a number ends), then
    put in the formats in one ``%``. A timestamp is computed once for a run of readings at
    the same instant. A batch whose numbers' text is not plain (an exponent, a number below
    10^-4, a field given as None) is written the general way, reading by reading
    (:func:`general_lines`). A validated ``Reading`` has finite numbers, floats but for
    ``interval_s`` (an int below 10^16, whose ``%r`` is the text of the same float without
    ``.0``), and a meter id that needs no escaping and holds no ``%`` (checked at
    import)."""
    docs = readings if isinstance(readings, list) else list(readings)
    if not docs:
        return []
    formats: list[str] = []
    numbers: list[Any] = []
    add_format, add_numbers = formats.append, numbers.extend
    makers = _MAKERS
    last: datetime | None = None
    stamp = ""
    for d in docs:
        ts = d["ts"]
        if ts != last:
            stamp = f" {_ns(ts)}"
            last = ts
        names = tuple(d)
        make = makers.get(names, _UNSEEN)
        if make is _UNSEEN:
            make = None
            if len(makers) < _MAKERS_KEPT:
                make = makers[names] = _line_maker(names)
        if make is not None:
            try:
                make(d, stamp, add_format, add_numbers)
                continue
            except TypeError:  # a phase field given as None
                pass
        # (a format of no places: its ``%`` escaped)
        add_format(_WHOLE("", _general_line(d, stamp)).replace("%", "%%"))
    try:
        text = _encode_numbers(numbers)
    except TypeError:  # (a number of a type msgspec does not write)
        return general_lines(docs)
    if text.translate(None, _NUMBER_TEXT) or b"0.0000" in text:
        return general_lines(docs)
    # whole floats' ``.0`` dropped where they end: only numbers are in the text
    text = text[1:-1].replace(b".0,", b",")
    if text.endswith(b".0"):
        text = text[:-2]
    joined = "\n".join(formats)
    filled = joined % tuple(text.decode().split(",")) if numbers else joined.replace("%%", "%")
    return filled.split("\n")


def general_lines(docs: Iterable[dict[str, Any]]) -> list[str]:
    """:func:`field_lines` of readings given by their fields, every one the general way
    (:func:`_general_line`), with no line maker: the same lines."""
    text = "\n".join(_general_line(d, f" {_ns(d['ts'])}") for d in docs)
    return _WHOLE("", text).split("\n") if text else []


def _ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of an aware time."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000

