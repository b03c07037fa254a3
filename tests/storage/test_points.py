"""The storage schema: measurement, tags, fields and timestamp of each value object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import pytest
from _storage_helpers import T0, reading, samples
from hypothesis import given, settings
from influxdb_client import Point

from gridwatch._schemas import (
    ID_PATTERN,
    AlertTransition,
    Event,
    LoadProfile,
    MeterMeta,
    MeterStatus,
    Reading,
    Score,
    Severity,
)
from gridwatch.storage import (
    MEASUREMENTS,
    UnsupportedObjectError,
    reading_lines,
    to_line_protocol,
    to_lines,
    to_points,
)
from gridwatch.storage._points import field_lines

# The documented layout (README, "Storage: InfluxDB"): the only tag keys each measurement may carry.
TAG_KEYS = {
    "reading": {"meter_id"},
    "score": {"meter_id", "segment"},
    "event": {"meter_id", "type", "severity", "customer_id", "grid_cell"},
    "profile": {"meter_id", "customer_id", "segment"},
    "alert": {"meter_id", "type", "severity", "state", "customer_id", "grid_cell"},
    "telemetry": {"device_id", "site", "kind"},
}


def parse(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    """A minimal line-protocol parser for lines without escaped separators."""
    head, fields_part, ts = _split_top(line)
    measurement, *tag_parts = head.split(",")
    tags = dict(t.split("=", 1) for t in tag_parts)
    fields = {}
    for item in _split_fields(fields_part):
        key, value = item.split("=", 1)
        fields[key] = value
    return measurement, tags, fields, int(ts)


def _split(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on ``sep`` outside double quotes, keeping backslash escapes as they are."""
    parts, cur, quoted, esc = [], "", False, False
    for ch in text:
        if esc:
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted and len(parts) != maxsplit:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return parts


def _split_top(line: str) -> tuple[str, str, str]:
    parts = _split(line, " ", maxsplit=2)
    assert len(parts) == 3, line
    return parts[0], parts[1], parts[2]


def _split_fields(text: str) -> list[str]:
    return _split(text, ",")


def ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


@pytest.mark.parametrize("kind", ["reading", "score", "event", "profile", "alert", "telemetry"])
def test_each_object_gives_one_point_with_documented_tags(kind):
    obj = samples()[kind]
    points = to_points(obj)
    assert len(points) == 1 and isinstance(points[0], Point)
    [line] = to_line_protocol(points)
    measurement, tags, fields, _ = parse(line)
    assert measurement == kind == MEASUREMENTS[type(obj)]
    assert set(tags) <= TAG_KEYS[kind]
    assert tags.get("meter_id", tags.get("device_id", "").removesuffix("-inv")) == "m-1"
    assert fields, line
    # A tag is never also a field.
    assert not set(tags) & set(fields)


def test_same_object_same_line_and_new_object_of_equal_value_too():
    for kind, obj in samples().items():
        again = type(obj).model_validate(obj.model_dump())
        assert to_line_protocol(to_points(obj)) == to_line_protocol(to_points(again)), kind


def test_reading_fields_and_timestamp():
    r = reading("m-9", 5)
    [line] = to_line_protocol(to_points(r))
    _, tags, fields, ts = parse(line)
    assert tags == {"meter_id": "m-9"}
    assert ts == ns(r.ts)
    assert float(fields["kw"]) == r.kw
    assert float(fields["kwh"]) == r.kwh
    assert [float(fields[f"v_l{p}"]) for p in (1, 2, 3)] == list(r.voltage)
    assert [float(fields[f"i_l{p}"]) for p in (1, 2, 3)] == list(r.current)
    assert fields["status"] == '"estimated"'
    # Whole numbers are written as floats (no "i" suffix): never an integer/float conflict.
    assert not any(v.endswith("i") for v in fields.values())


def test_event_time_is_raised_at_and_evidence_is_typed():
    e = samples()["event"]
    [line] = to_line_protocol(to_points(e))
    _, tags, fields, ts = parse(line)
    assert ts == ns(e.raised_at)
    assert tags == {"meter_id": "m-1", "type": "abnormal_consumption", "severity": "warning",
                    "customer_id": "c-1", "grid_cell": "cell-7"}
    assert fields["ev_observed_kw"] == "4"  # an int in the evidence, a float on the wire
    assert fields["ev_holiday"] == "false"
    assert fields["ev_reason"] == '"baseline"'
    assert "ev_missing" not in fields
    assert "\n" not in line and fields["summary"] == '"load twice the usual for an hour"'
    assert fields["onset"] == f'"{T0.isoformat().replace("+00:00", "Z")}"'


def test_profile_curve_and_tags():
    p = samples()["profile"]
    [line] = to_line_protocol(to_points(p))
    _, tags, fields, ts = parse(line)
    assert ts == ns(p.day)
    assert tags == {"meter_id": "m-1", "customer_id": "c-1", "segment": "residential"}
    assert [float(fields[f"h{h:02d}"]) for h in range(24)] == list(p.curve)
    assert fields["tags"] == '"night_owl,ev"'


def test_alert_state_is_a_tag_recipient_a_field():
    a = samples()["alert"]
    [line] = to_line_protocol(to_points(a))
    _, tags, fields, _ = parse(line)
    assert tags["state"] == "acknowledged" and tags["severity"] == "critical"
    assert fields["recipient"] == '"alice@example.org"'


def test_unknown_object_is_refused_with_its_type():
    with pytest.raises(UnsupportedObjectError, match="MeterMeta"):
        to_points(MeterMeta(meter_id="m-1"))  # type: ignore[arg-type]


def test_line_protocol_passes_strings_through():
    line = "reading,meter_id=x kw=1 1"
    assert to_line_protocol([line]) == [line]


def test_optional_values_absent_not_empty():
    r = reading("m-1", 1).model_copy(update={"voltage": None, "current": None, "kwh": None,
                                             "status": ()})
    [line] = to_line_protocol(to_points(r))
    _, _, fields, _ = parse(line)
    assert set(fields) == {"kw", "pf", "freq", "interval_s"}
    assert datetime.fromtimestamp(parse(line)[3] / 1e9, UTC) == r.ts


_TEXT = st.text(max_size=20)
_NUM = st.floats(-1e6, 1e6, allow_nan=False)
_TS = st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))
_ID = st.from_regex(ID_PATTERN, fullmatch=True)


@given(meter=_ID, ts=_TS, kw=st.floats(-1e5, 1e5, allow_nan=False),
       kwh=st.none() | st.floats(0, 1e9), volts=st.none() | st.lists(
           st.floats(0, 1000), min_size=1, max_size=3).map(tuple),
       status=st.lists(st.sampled_from(list(MeterStatus)), max_size=3).map(tuple))
@settings(max_examples=150, deadline=None)
def test_direct_lines_equal_influxdb_client_readings(meter, ts, kw, kwh, volts, status):
    r = Reading.model_validate({"meter_id": meter, "ts": ts, "kw": kw, "kwh": kwh,
                                "voltage": volts, "status": status},
                               context={"now": datetime(2031, 1, 1, tzinfo=UTC)})
    assert to_lines(r) == to_line_protocol(to_points(r))


_OPT = st.none() | st.floats(0, 1e9)
_PHASES = st.none() | st.lists(st.floats(0, 1000), min_size=1, max_size=3).map(tuple)
_READING = st.fixed_dictionaries(
    {"meter_id": _ID, "kw": st.floats(-1e5, 1e5, allow_nan=False) | st.integers(-5, 5)
     | st.floats(-1e-3, 1e-3)},
    optional={"kwh": _OPT, "export_kwh": _OPT, "voltage": _PHASES, "current": _PHASES,
              "pf": st.none() | st.floats(-1, 1), "freq": st.none() | st.floats(40, 70),
              "interval_s": st.none() | st.integers(1, 86_400),
              "status": st.lists(st.sampled_from(list(MeterStatus)), max_size=3).map(tuple)})


@given(docs=st.lists(st.tuples(_READING, st.sampled_from([0, 0, 1, 2])), max_size=12),
       ts=_TS)
@settings(max_examples=200, deadline=None)
def test_the_lines_of_a_batch_of_readings_are_the_client_s(docs, ts):
    """``reading_lines`` (the sink's path for a batch) writes each reading's line as
    influxdb-client's ``Point`` does, whatever fields each has, in runs that share a
    timestamp or not, and in order."""
    readings = []
    for doc, step in docs:
        if {"voltage", "current"} <= doc.keys() and doc["voltage"] and doc["current"]:
            doc = {**doc, "current": doc["current"][:1], "voltage": doc["voltage"][:1]}
        readings.append(Reading.model_validate(
            {**doc, "ts": ts + timedelta(minutes=15 * step)},
            context={"now": datetime(2031, 1, 1, tzinfo=UTC)}))
    want = [line for r in readings for line in to_line_protocol(to_points(r))]
    assert reading_lines(readings) == want
    assert [line for r in readings for line in to_lines(r)] == want


@given(docs=st.lists(st.tuples(_READING, st.sampled_from([0, 0, 1]), st.randoms()),
                     max_size=12), ts=_TS)
@settings(max_examples=300, deadline=None)
def test_the_lines_of_given_fields_are_the_client_s(docs, ts):
    """``field_lines`` of readings given by their fields only, as the journal's come (any
    order of fields, a field given as None, statuses or none, one phase or three), writes each
    reading's line as influxdb-client's ``Point`` does for the reading they make, in order."""
    from gridwatch.storage import _points

    _points._MAKERS.clear()  # (each example's orders get line makers: the kept ones are few)
    given, want = [], []
    for doc, step, rnd in docs:
        if {"voltage", "current"} <= doc.keys() and doc["voltage"] and doc["current"]:
            doc = {**doc, "current": doc["current"][:1], "voltage": doc["voltage"][:1]}
        doc = {**doc, "ts": ts + timedelta(minutes=15 * step)}
        r = Reading.model_validate(doc, context={"now": datetime(2031, 1, 1, tzinfo=UTC)})
        want += to_line_protocol(to_points(r))
        keys = list(doc)
        rnd.shuffle(keys)
        given.append({k: getattr(r, k) if doc[k] is not None else None for k in keys})
    assert field_lines(given) == want
    assert field_lines(given) == want  # (the second time from the kept line makers)


@pytest.mark.parametrize("odd", [1.5e-05, -9.9e-05, 1e-07, 1e-300, -2.5e-9])
def test_numbers_written_with_an_exponent_are_the_client_s_in_a_batch_of_plain_ones(odd):
    """The batch's numbers are written as text in one call, which differs from the client's
    (Python's ``repr``) only where one writes an exponent (``0.00001`` against ``1e-05``): a
    batch with such a number among plain ones still has the client's lines, each of them."""
    plain = [Reading(meter_id=f"m-{i}", ts=T0, kw=0.5 + i, kwh=10.25, pf=0.9,
                     voltage=(230.5,), interval_s=900) for i in range(3)]
    odd_one = Reading(meter_id="m-odd", ts=T0, kw=odd, kwh=abs(odd), pf=0.9,
                      voltage=(230.0,), current=(abs(odd),), interval_s=900)
    readings = [plain[0], odd_one, *plain[1:]]
    want = [line for r in readings for line in to_line_protocol(to_points(r))]
    order = ("meter_id", "ts", "kw", "kwh", "voltage", "current", "pf", "interval_s")
    given_ = [{k: getattr(r, k) for k in order if getattr(r, k) is not None}
              for r in readings]
    assert field_lines(given_) == want
    assert field_lines(given_[:1] + given_[2:]) == want[:1] + want[2:]


def test_fields_in_orders_beyond_the_kept_makers_go_the_general_way(monkeypatch):
    """A sender that shuffles its fields makes no function a message: beyond the kept line
    makers, its readings are written the general way, to the same lines."""
    from itertools import permutations

    from gridwatch.storage import _points

    monkeypatch.setattr(_points, "_MAKERS", {})
    monkeypatch.setattr(_points, "_MAKERS_KEPT", 3)
    r = Reading(meter_id="m-1", ts=T0, kw=2.0, kwh=10.5, pf=0.9, voltage=(230.0,))
    want = to_line_protocol(to_points(r))
    names = ("meter_id", "ts", "kw", "kwh", "pf", "voltage")
    for order in list(permutations(names))[:8]:
        assert field_lines([{k: getattr(r, k) for k in order}]) == want
    assert len(_points._MAKERS) == 3


@given(segment=st.none() | _TEXT, summary=_TEXT, kind=st.from_regex(r"[a-z][a-z0-9_]{0,10}",
       fullmatch=True), evidence=st.dictionaries(
           st.from_regex(r"[a-z][a-z_ =,]{0,8}", fullmatch=True),
           st.none() | st.booleans() | _TEXT | _NUM | st.integers(-10**6, 10**6), max_size=4),
       state=_TEXT.filter(bool), ts=_TS, score=_NUM)
@settings(max_examples=150, deadline=None)
def test_direct_lines_equal_influxdb_client_others(segment, summary, kind, evidence, state, ts,
                                                   score):
    objs = [
        Score(meter_id="m-1", ts=ts, kw=score, expected_kw=1.0, score=score, segment=segment),
        Event(meter_id="m-1", type=kind, severity=Severity.INFO, score=score, onset=ts,
              raised_at=ts, summary=summary, evidence=evidence, customer_id="c-1"),
        LoadProfile(meter_id="m-1", day=ts, segment=segment or "x", tags=(summary,),
                    daily_kwh=score, peak_kw=1.0, valley_kw=0.0, curve=(score, 1.0)),
        AlertTransition(fingerprint=summary, meter_id="m-1", type=kind, severity="warning",
                        state=state, at=ts, recipient=summary or None),
    ]
    for obj in objs:
        assert to_lines(obj) == to_line_protocol(to_points(obj))


def test_telemetry_metrics_are_float_fields():
    t = samples()["telemetry"]
    [line] = to_line_protocol(to_points(t))
    _, tags, fields, ts = parse(line)
    assert tags == {"device_id": "m-1-inv", "site": "site-3", "kind": "inverter"}
    assert fields == {"ac_kw": "12", "temp_c": "41.5", "status_flags": '"derated"'}
    assert ts == ns(t.ts)
    assert to_lines(t) == [line]
