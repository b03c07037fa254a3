"""The decoder: reason codes, topic checks, batches that keep their good readings, and
property tests (any bytes are decoded or rejected, never crash; valid readings round-trip)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from _ingest_helpers import compact_docs
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch import Reading
from gridwatch.ingest import REASONS, DecodeError, Decoder, decode, decode_item, encode_item
from gridwatch.ingest._config import IngestSettings, TopicSettings
from gridwatch.ingest._decode import topic_matches

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TS = "2026-03-01T11:45:00Z"


def _msg(meter: str = "m1", **fields) -> bytes:
    return json.dumps({"meter_id": meter, "ts": TS, "kw": 1.5} | fields).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("meters/r/m1/reading", b"\xc3\x28", "invalid_utf8"),
        ("meters/r/m1/reading", b"{not json", "invalid_json"),
        ("meters/r/m1/reading", b"[1, 2]", "schema"),
        ("meters/r/m1/reading", b'{"meter_id": "m1", "ts": "2026-03-01T11:45:00Z"}', "schema"),
        ("meters/r/m1/reading", _msg(kw="high"), "schema"),
        ("meters/r/m1/reading", _msg(extra=1), "schema"),
        ("meters/r/m1/reading", _msg(ts="2026-03-01T11:45:00"), "schema"),
        ("meters/r/m1/reading", b'{"meter_id":"m1","ts":"2026-03-01T11:45:00Z","kw":Infinity}',
         "non_finite"),
        ("meters/r/m1/reading", _msg(kw=-1e7), "out_of_range"),
        ("meters/r/m1/reading", _msg(pf=1.2), "out_of_range"),
        ("meters/r/m1/reading", _msg(ts="1999-12-31T00:00:00Z"), "out_of_range"),
        ("meters/r/m1/reading", _msg(ts="2026-03-01T12:10:00Z"), "future_timestamp"),
        ("meters/r/m2/reading", _msg(), "topic_mismatch"),
        ("meters/r/c1/batch", b"[]", "empty_batch"),
        ("meters/r/c1/batch", b'{"concentrator_id": "c2", "readings": [{}]}', "topic_mismatch"),
        ("meters/r/c1/batch", b'{"readings": 5}', "schema"),
        ("devices/s1/d1/telemetry",
         b'{"device_id":"d1","site":"s2","ts":"2026-03-01T11:45:00Z","metrics":{"t":1}}',
         "topic_mismatch"),
        ("devices/s1/d1/telemetry",
         b'{"device_id":"d1","site":"s1","ts":"2026-03-01T11:45:00Z","metrics":{"t":NaN}}',
         "non_finite"),
        ("other/topic", _msg(), "unknown_topic"),
        ("meters/r/m1/reading", b"{" + b" " * 2000 + b"}", "too_large"),
    ],
)
def test_reason_codes(topic: str, payload: bytes, reason: str) -> None:
    ing = IngestSettings(max_payload_bytes=1024)
    with pytest.raises(DecodeError) as err:
        decode(topic, payload, settings=ing, now=NOW)
    assert err.value.reason == reason, err.value.detail
    assert reason in REASONS
    assert err.value.detail


def test_accepts_readings_batches_and_telemetry() -> None:
    dec = Decoder()
    [r] = decode("meters/north/m1/reading", _msg(voltage=230.1), settings=dec, now=NOW)
    assert isinstance(r, Reading) and r.voltage == (230.1,)
    batch = {"concentrator_id": "c1", "readings": [json.loads(_msg(f"b{i}")) for i in range(3)]}
    assert len(decode("meters/north/c1/batch", json.dumps(batch).encode(), settings=dec,
                      now=NOW)) == 3
    [t] = decode("devices/s1/d1/telemetry",
                 b'{"device_id":"d1","site":"s1","ts":"2026-03-01T11:45:00Z",'
                 b'"kind":"transformer","metrics":{"oil_temp_c":61.5}}', settings=dec, now=NOW)
    assert decode_item(encode_item(t)) == t


def test_batch_keeps_good_readings_around_bad_ones() -> None:
    items = [json.loads(_msg(f"m{i}")) for i in range(5)]
    items[1]["kw"] = None
    items[3] = "not an object"
    res = Decoder().decode_message("meters/r/c1/batch", json.dumps(items).encode(), NOW)
    assert [r.meter_id for r in res.accepted] == ["m0", "m2", "m4"]
    assert [(j.index, j.reason) for j in res.rejected] == [(1, "schema"), (3, "schema")]
    assert json.loads(res.rejected[0].payload)["meter_id"] == "m1"


def test_duplicates_and_stale_readings_per_meter() -> None:
    dec = Decoder(None, IngestSettings(max_backwards_s=3600, dedup_per_meter=4))
    assert dec.decode_message("meters/r/m1/reading", _msg(), NOW).accepted
    dup = dec.decode_message("meters/r/m1/reading", _msg(kw=9.0), NOW)
    assert [j.reason for j in dup.rejected] == ["duplicate"]
    # Within the tolerance, out of order is fine; beyond it, stale.
    assert dec.decode_message("meters/r/m1/reading", _msg(ts="2026-03-01T11:00:00Z"),
                              NOW).accepted
    stale = dec.decode_message("meters/r/m1/reading", _msg(ts="2026-03-01T10:00:00Z"), NOW)
    assert [j.reason for j in stale.rejected] == ["stale_timestamp"]
    # Another meter is not affected.
    assert dec.decode_message("meters/r/m2/reading", _msg("m2"), NOW).accepted


def test_topic_levels_are_configurable() -> None:
    topics = TopicSettings(reading="site/+/meter/+/reading", meter_id_level=3)
    assert decode("site/x/meter/m1/reading", _msg(), settings=topics, now=NOW)
    with pytest.raises(DecodeError, match="topic_mismatch"):
        decode("site/x/meter/m9/reading", _msg(), settings=topics, now=NOW)


# -- properties ----------------------------------------------------------------------------
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}", fullmatch=True)
finite = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False)
times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 3, 1, 11),
                     timezones=st.just(UTC))


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    phases = draw(st.integers(1, 3))
    return Reading(
        meter_id=draw(ids), ts=draw(times), kw=draw(finite),
        kwh=draw(st.none() | st.floats(0, 1e9)),
        voltage=draw(st.none() | st.tuples(*[st.floats(0, 1000)] * phases)),
        pf=draw(st.none() | st.floats(-1, 1)),
    )


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(["meters/r/m1/reading", "meters/r/c/batch",
                              "devices/s/d/telemetry", "x"]),
       payload=st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8),
                      lambda c: st.lists(c, max_size=4)
                      | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
       .map(lambda v: json.dumps(v).encode()))
def test_any_payload_is_accepted_or_rejected_never_raises(topic: str, payload: bytes) -> None:
    res = Decoder().decode_message(topic, payload, NOW)
    assert res.accepted or res.rejected
    for j in res.rejected:
        assert j.reason in REASONS and j.detail


@settings(max_examples=200, deadline=None)
@given(reading=readings())
def test_valid_readings_round_trip_through_the_wire_form(reading: Reading) -> None:
    payload = json.dumps(reading.to_json_dict()).encode()
    [got] = decode(f"meters/r/{reading.meter_id}/reading", payload, now=NOW)
    assert got == reading
    assert decode_item(encode_item(got)) == reading


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=20, unique_by=lambda r: r.meter_id),
       bad=st.sets(st.integers(0, 30), max_size=10))
def test_batch_accepts_exactly_the_good_items(batch: list[Reading], bad: set[int]) -> None:
    docs: list[object] = [r.to_json_dict() for r in batch]
    bad_at = sorted(i for i in bad if i <= len(docs))
    for i in bad_at:
        docs.insert(i, {"meter_id": "bad", "ts": TS, "kw": "x"})
    res = Decoder(None, IngestSettings(max_backwards_s=1e9)).decode_message(
        "meters/r/c/batch", json.dumps(docs).encode(), NOW)
    assert res.accepted == batch
    assert [j.index for j in res.rejected] == [
        i for i, d in enumerate(docs) if isinstance(d, dict) and d.get("meter_id") == "bad"]


def test_future_tolerance_comes_from_settings() -> None:
    ahead = (NOW + timedelta(minutes=20)).isoformat().replace("+00:00", "Z")
    ing = IngestSettings(max_future_s=3600)
    assert decode("meters/r/m1/reading", _msg(ts=ahead), settings=ing, now=NOW)


def test_the_widest_future_tolerance_still_decodes_and_a_wider_one_is_refused() -> None:
    widest = IngestSettings(max_future_s=8e13)  # past the calendar's end
    ahead = (NOW + timedelta(days=3650)).isoformat().replace("+00:00", "Z")
    assert decode("meters/r/m1/reading", _msg(ts=ahead), settings=widest, now=NOW)
    with pytest.raises(ValidationError, match="max_future_s"):
        IngestSettings(max_future_s=1e15)  # beyond Python's widest time difference


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("meters/+/+/reading", "meters/r/m1/reading", True),
    ("meters/+/+/reading", "meters/r/m1/batch", False),
    ("meters/#", "meters", True),
    ("meters/#", "meters/r/m1/reading", True),
    ("meters/+", "meters/r/m1", False),
    ("#", "$SYS/broker", False),
    ("+/broker", "$SYS/broker", False),
    ("$SYS/#", "$SYS/broker", True),
    ("a/+/c", "a//c", True),
])
def test_topic_filters_follow_mqtt(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


_LEVELS = st.lists(st.sampled_from(["a", "b", "", "+", "#", "$x"]), min_size=1, max_size=5)


@settings(max_examples=500, deadline=None)
@given(pattern=_LEVELS, levels=_LEVELS)
def test_topic_filters_match_as_paho_does(pattern: list[str], levels: list[str]) -> None:
    from paho.mqtt.client import topic_matches_sub

    topic_filter, topic = "/".join(pattern), "/".join(levels)
    assert topic_matches(topic_filter, topic) == topic_matches_sub(topic_filter, topic)


def _judged(res: object) -> tuple[list[Reading], list[tuple[str, str]]]:
    accepted = res.accepted  # type: ignore[attr-defined]
    rejected = [(j.reason, j.detail.split(": ", 1)[1] if j.detail.startswith("batch item")
                 else j.detail) for j in res.rejected]  # type: ignore[attr-defined]
    return accepted, rejected


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["m1", "m2", "m3"]),
                               st.integers(-120, 12), st.integers(0, 59)),
                     min_size=1, max_size=30),
       ahead_s=st.sampled_from([0.0, 300.0, 3_600.0, 8e13]),
       back_s=st.sampled_from([0.0, 3_600.0, 86_400.0]))
def test_a_batch_is_judged_as_its_readings_one_by_one(
        rows: list[tuple[str, int, int]], ahead_s: float, back_s: float) -> None:
    """A valid batch (the fast path: one validation of the array, the clock's limit taken
    once) accepts and rejects exactly what the same readings sent one per message do, with
    the same reasons and details, in order; and so does the item-by-item path a batch takes
    when one of its items is invalid. Readings up to 3 hours ahead and 30 hours behind, with
    duplicates; the tolerances of the settings, one of them past the calendar's end."""
    docs = [{"meter_id": m, "ts": (NOW + timedelta(minutes=15 * q, seconds=s))
             .isoformat().replace("+00:00", "Z"), "kw": 1.0} for m, q, s in rows]
    ing = IngestSettings(max_future_s=ahead_s, max_backwards_s=back_s)
    batch = Decoder(None, ing).decode_message("meters/r/c/batch", json.dumps(docs).encode(),
                                              NOW)
    one = Decoder(None, ing)
    singles = [one.decode_message(f"meters/r/{d['meter_id']}/reading", json.dumps(d).encode(),
                                  NOW) for d in docs]
    want_accepted = [r for res in singles for r in res.accepted]
    want_rejected = [x for res in singles for x in _judged(res)[1]]
    assert _judged(batch) == (want_accepted, want_rejected)
    assert [j.index for j in batch.rejected] == [i for i, res in enumerate(singles)
                                                 if res.rejected]
    slow = Decoder(None, ing).decode_message(
        "meters/r/c/batch", json.dumps([*docs, {"meter_id": "m1"}]).encode(), NOW)
    accepted, rejected = _judged(slow)
    assert (accepted, rejected[:-1]) == (want_accepted, want_rejected)
    assert slow.rejected[-1].reason == "schema"


_offsets = st.none() | st.integers(-14 * 60, 14 * 60).map(
    lambda m: timezone(timedelta(minutes=m)))
_stamps = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(),
              st.datetimes(min_value=datetime(1998, 1, 1), max_value=datetime(2040, 1, 1)),
              _offsets),
    st.sampled_from(["9999-12-31T23:00:00-01:00", "0001-01-01T00:30:00+01:00",
                     "1999-12-31T23:30:00-01:00", "2000-01-01T00:30:00+01:00",
                     "2000-01-01T00:00:00Z", "1999-12-31T23:59:59.999999Z",
                     "2026-01-01T00:00:00Z", "2026-01-01", "2026-01-01T00:00:00+05:45",
                     "2026-13-01T00:00:00Z", "1767225600", "2026-01-01T00:00:00.1234567Z",
                     "2026-01-01T00:00:00.9999999Z", "2026-01-01t00:00:00z",
                     "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.5+00:00",
                     "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00Z",
                     "\u0662\u0660\u0662\u0666-01-01T00:00:00Z", "2026-01-01T00:00:00-00:00"]))
# a lone number (float or int) is one phase; a bool or a string is not a number of volts
_phases = (st.none() | st.floats(0, 500) | st.integers(-5, 600) | st.booleans()
           | st.sampled_from(["230", "x", ""])
           | st.lists(st.floats(0, 500) | st.integers(0, 2), min_size=0, max_size=4))
_doc = st.fixed_dictionaries(
    {"meter_id": st.sampled_from(["m1", "m-2", " m3 ", "bad id", "m1\n", "\u3000m1", "m\u00e9"]),
     "ts": _stamps,
     "kw": st.floats(-2e5, 2e5) | st.integers(-10**6, 10**6) | st.sampled_from(
         ["1.5", None, True, 1e999, 10**30])},
    optional={"voltage": _phases, "current": _phases,
              "status": st.lists(st.sampled_from(["estimated", "cover_open", "nope",
                                                  " estimated"]), max_size=2),
              "pf": st.floats(-1.5, 1.5),
              "interval_s": st.integers(0, 90_000) | st.sampled_from([900.0, 1.5, "900"]),
              "kwh": st.none() | st.floats(-1, 2e12), "freq": st.floats(30, 80),
              "unknown": st.just(1)})


@settings(max_examples=400, deadline=None)
@given(docs=st.lists(_doc, min_size=1, max_size=6))
def test_the_fast_path_validates_as_reading_does(docs: list[dict[str, object]]) -> None:
    """The collector's fast path validates with Reading's core schema less its two Python
    validators and does their work itself (timestamp aware, to UTC, not before 2000; as many
    voltage as current phases): it accepts exactly the batches and single readings that
    ``Reading`` accepts, as equal readings (the same fields given, ``ts`` in UTC), and sends
    everything else to the path that finds the reason. So does the compact path in front of
    it (msgspec), on compact payloads with odd timestamps, identifiers, numbers, a field
    twice, an unknown field, and characters beyond ASCII."""
    from pydantic import TypeAdapter, ValidationError

    from gridwatch.ingest._assemble import reading_of_fields

    readings_of = TypeAdapter(list[Reading])
    ctx = {"now": NOW, "max_future": timedelta.max}
    decoder = Decoder()
    batch = lambda p: readings_of.validate_json(p, context=ctx)  # noqa: E731
    one = lambda p: [Reading.model_validate_json(p, context=ctx)]  # noqa: E731
    compact = {"separators": (",", ":")}
    cases: list[tuple[str, bytes, object]] = [
        ("batch", json.dumps(docs).encode(), batch),
        ("reading", json.dumps(docs[0]).encode(), one),
        # the compact form (what concentrators and the simulator send): msgspec's path
        ("batch", json.dumps(docs, **compact).encode(), batch),
        ("reading", json.dumps(docs[0], **compact).encode(), one),
        # a field twice: pydantic takes the last
        ("reading", json.dumps(docs[0], **compact).encode()[:-1] + b',"kw":2.5}', one),
        # not ASCII, as sent
        ("batch", json.dumps(docs, ensure_ascii=False, **compact).encode(), batch)]
    from gridwatch.ingest._journal import compact_readings

    for kind, payload, full in cases:
        try:
            want = full(payload)  # type: ignore[operator]
        except ValidationError:
            want = None
        records: list[bytes] = []
        # what the decoder validates a payload with before its checks: the compact form's
        # readings when it is in it, else pydantic's parser
        given = decoder._compact(kind, payload, records)
        got = decoder._validated(kind, payload, NOW) if given is None \
            else list(map(reading_of_fields, given))
        if want is None:
            assert got is None
            continue
        assert got is not None and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert type(g) is Reading and g == w
            assert g.model_fields_set == w.model_fields_set
            assert g.model_dump_json() == w.model_dump_json()
            assert g.ts.tzinfo is UTC
        # the compact path's journal records, the readings as sent: where every timestamp is
        # in UTC, one a reading, each read back as the same reading, its given fields too
        by_msgspec = compact_readings(payload, kind == "batch") is not None
        in_utc = all(str(d["ts"]).endswith("Z") for d in (docs if kind == "batch" else docs[:1]))
        assert bool(records) == (by_msgspec and in_utc)
        if records:
            assert len(records) == len(got)
            for rec, g in zip(records, got, strict=True):
                back = decode_item(rec)
                assert back == g and back.model_fields_set == g.model_fields_set
                assert back.model_dump_json() == g.model_dump_json()


def _compact_doc(i: int) -> dict[str, object]:
    return {"meter_id": f"m-{i:05d}", "ts": "2026-03-01T10:15:00Z", "kw": 0.25 + i,
            "kwh": 1000.5 + i, "voltage": [230.1, 229.8, 231.0][: 1 + i % 3],
            "current": [1.5, 1.2, 0.9][: 1 + i % 3], "pf": 0.97, "interval_s": 900,
            **({"status": ["estimated"]} if i % 7 == 0 else {})}


def test_compact_payloads_are_read_by_msgspec_as_pydantic_validates_them() -> None:
    from pydantic import TypeAdapter

    from gridwatch.ingest._journal import compact_readings

    docs = [_compact_doc(i) for i in range(100)]
    payload = json.dumps(docs, separators=(",", ":")).encode()
    got = compact_readings(payload, batch=True)
    want = TypeAdapter(list[Reading]).validate_json(
        payload, context={"now": NOW, "max_future": timedelta.max})
    assert got is not None and got == want
    assert [g.model_fields_set for g in got] == [w.model_fields_set for w in want]
    assert all(g.ts.tzinfo is UTC for g in got)
    one = json.dumps(docs[3], separators=(",", ":")).encode()
    assert compact_readings(one, batch=False) == [want[3]]
    # an offset is read as a CSV file's rows read it: the same instant, in UTC
    east = one.replace(b'"2026-03-01T10:15:00Z"', b'"2026-03-01T11:15:00+01:00"')
    assert east != one and compact_readings(east, batch=False) == [want[3]]
    # and the decoder takes them: every reading accepted, none rejected
    res = Decoder().decode_message("meters/r/c/batch", payload, NOW)
    assert res.accepted == want and not res.rejected


@pytest.mark.parametrize("change", [
    lambda p: p.replace(b'"kw":', b'"kw": '),                      # whitespace
    lambda p: p.replace(b'"m-00001"', b'"m-0000\\u0031"'),         # an escape
    lambda p: p.replace(b'"pf":0.97', b'"pf":0.97,"pf":0.5', 1),   # a field twice
    lambda p: p.replace(b'"pf":0.97', b'"pf":0.97,"phase":1', 1),  # a field unknown
    lambda p: p.replace(b'10:15:00Z', b'10:15:00.1234567Z', 1),    # beyond microseconds
    lambda p: p.replace(b'10:15:00Z', b'10:15:00z', 1),
    lambda p: p.replace(b'10:15:00Z', b'11:15:00+0100', 1),        # an offset without colon
    lambda p: p.replace(b"2026-03-01T", b"1999-03-01T", 1),        # the clock unset
    lambda p: p.replace(b"2026-03-01T", b"2026-02-30T", 1),        # no such day
    lambda p: p.replace(b'"voltage":[230.1]', b'"voltage":[230.1,230.2]', 1),  # phases
])
def test_payloads_not_in_the_compact_form_go_to_pydantic(change) -> None:
    from gridwatch.ingest._journal import compact_readings

    payload = json.dumps([_compact_doc(i) for i in range(3)], separators=(",", ":")).encode()
    assert compact_readings(payload, batch=True) is not None
    changed = change(payload)
    assert changed != payload
    assert compact_readings(changed, batch=True) is None


@settings(max_examples=500, deadline=None)
@given(docs=st.lists(compact_docs, min_size=1, max_size=5))
def test_the_compact_path_reads_what_pydantic_validates(docs: list[dict[str, object]]) -> None:
    """Compact payloads whose values lie at and beyond every bound (floats of every size,
    integers for floats, a lone number or 1-3 phases, timestamps of 0-6 decimals in UTC or
    with an offset, around 2000): msgspec's path gives exactly the readings pydantic's
    validation gives, and None where pydantic rejects the payload."""
    from pydantic import TypeAdapter, ValidationError

    from gridwatch.ingest._journal import compact_readings

    payload = json.dumps(docs, separators=(",", ":")).encode()
    try:
        want = TypeAdapter(list[Reading]).validate_json(
            payload, context={"now": NOW, "max_future": timedelta.max})
    except ValidationError:
        want = None
    records: list[bytes] = []
    got = compact_readings(payload, batch=True, records=records)
    if want is None:
        assert got is None
        return
    assert got == want
    assert [g.model_fields_set for g in got] == [w.model_fields_set for w in want]
    assert [g.model_dump_json() for g in got] == [w.model_dump_json() for w in want]
    # their journal records, each reading's object as sent, where every timestamp is in UTC:
    # read back (the journal's reader, and the dataflow after a restart) as the same readings
    assert bool(records) == all(str(d["ts"]).endswith("Z") for d in docs)
    if records:
        back = [decode_item(rec) for rec in records]
        assert back == want
        assert [b.model_fields_set for b in back] == [w.model_fields_set for w in want]
        assert [b.model_dump_json() for b in back] == [w.model_dump_json() for w in want]
        assert all(rec.startswith(b" \t{") and rec.endswith(b"}") for rec in records)


_volts = st.floats(0, 500)
_sent_docs = st.fixed_dictionaries(
    {"meter_id": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,8}\Z"),
     "ts": st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2026, 2, 28)).map(
         lambda d: d.isoformat(timespec="microseconds" if d.microsecond else "seconds") + "Z"),
     "kw": st.floats(-1_000, 1_000) | st.integers(-1_000, 1_000)},
    optional={"kwh": st.none() | st.floats(0, 1e9), "pf": st.floats(-1, 1),
              "voltage": st.none() | _volts | st.lists(_volts, min_size=1, max_size=3),
              "status": st.lists(st.sampled_from(["estimated", "cover_open"]), max_size=2),
              "interval_s": st.none() | st.integers(1, 86_400)})


@settings(max_examples=300, deadline=None)
@given(docs=st.lists(_sent_docs, min_size=1, max_size=8), single=st.booleans())
def test_compact_readings_are_journaled_as_sent_and_read_back_the_same(
        docs: list[dict[str, object]], single: bool) -> None:
    """A good compact payload in UTC: the decoder hands the collector each accepted
    reading's journal record as it was sent (no second serialisation), and each is read back
    without validation (the tagged form) as the very reading the decoder accepted, its given
    fields too; readings it rejects (a duplicate) leave their records out."""
    from gridwatch.ingest._journal import _rebuild

    decoder = Decoder()
    docs = docs[:1] if single else docs
    compact = {"separators": (",", ":")}
    topic, payload = ((f"meters/r/{docs[0]['meter_id']}/reading",
                       json.dumps(docs[0], **compact).encode()) if single
                      else ("meters/r/c/batch", json.dumps(docs, **compact).encode()))
    res = decoder.decode_message(topic, payload, NOW)
    assert res.accepted and res.records is not None
    assert len(res.records) == len(res.accepted)
    for rec, item in zip(res.records, res.accepted, strict=True):
        fast = _rebuild(rec)
        assert fast is not None and fast == item
        assert fast.model_fields_set == item.model_fields_set
        assert decode_item(rec) == item
    if not single:  # the same batch again, with one reading more: only that one is new
        extra = {"meter_id": "zz-new-meter-0", "ts": "2026-02-28T00:00:00Z", "kw": 1.0}
        again = decoder.decode_message(topic, json.dumps([*docs, extra], **compact).encode(),
                                       NOW)
        assert [r.meter_id for r in again.accepted] == ["zz-new-meter-0"]
        assert again.records is not None and len(again.records) == 1
        assert decode_item(again.records[0]) == again.accepted[0]


def _fields_message(doc: dict[str, object], how: int) -> dict[str, object]:
    """A reading changed to meet one of the decoder's checks after validation: ``how`` 0
    leaves it, 1 moves it a day past the receiving clock, 2 to an hour before 2026 (stale
    behind a meter's newer reading, or history), 3 to a new meter."""
    if how == 1:
        return {**doc, "ts": "2026-03-02T13:00:00Z"}
    if how == 2:
        return {**doc, "ts": "2025-12-31T23:00:00Z"}
    if how == 3:
        return {**doc, "meter_id": f"{doc['meter_id']}-n"}
    return doc


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.tuples(st.lists(st.tuples(_sent_docs, st.integers(0, 3)),
                                            min_size=1, max_size=6),
                                   st.booleans(), st.booleans(), st.booleans()),
                         min_size=1, max_size=6))
def test_a_decoder_without_objects_accepts_and_rejects_what_one_with_objects_does(
        messages: list[tuple[list[tuple[dict[str, object], int]], bool, bool, bool]]
) -> None:
    """Two decoders fed the same messages, one making reading objects and one (a collector
    with no reader in its process) only their fields: the same rejections (reason, detail,
    dead letter, index), the same journal records, and each reading's fields make the very
    reading the other accepted. The messages repeat readings (duplicates), reach past the
    receiving clock, go back in time, and a single reading's topic names another meter;
    some have timestamps with an offset (no records as sent: objects either way), some
    JSON's spaces (pydantic's path: objects either way)."""
    from gridwatch.ingest._assemble import reading_of_fields
    from gridwatch.ingest._journal import BATCH_TAG, decode_record, encode_items

    objects, fields = Decoder(), Decoder()
    fields.objects = False
    seen: list[dict[str, object]] = []
    for batch, single, other_topic, spaced in messages:
        docs = [_fields_message(doc, how) for doc, how in batch]
        docs += seen[-2:]  # readings sent before: duplicates, unless rejected then
        seen += docs
        compact = {} if spaced else {"separators": (",", ":")}
        if single:
            meter = f"{docs[0]['meter_id']}x" if other_topic else docs[0]["meter_id"]
            topic, payload = f"meters/r/{meter}/reading", json.dumps(docs[0], **compact)
        else:
            topic, payload = "meters/r/c/batch", json.dumps(docs, **compact)
        a = objects.decode_message(topic, payload.encode(), NOW)
        b = fields.decode_message(topic, payload.encode(), NOW)
        assert a.rejected == b.rejected
        assert a.given is None
        got = b.accepted + [reading_of_fields(g) for g in b.given or []]
        assert got == a.accepted and b.count == a.count == len(a.accepted)
        assert [g.model_fields_set for g in got] == [w.model_fields_set for w in a.accepted]
        if b.given:  # fields only with the records as sent
            assert not b.accepted and b.records is not None
        want = a.records if a.records is not None else encode_items(a.accepted)
        have = b.records if b.records is not None else encode_items(b.accepted)
        if have != want:
            # A batch whose readings were all accepted is one record, the message as sent.
            assert not single and not b.rejected and have == [BATCH_TAG + payload.encode()]
        back = [r for rec in have for r in decode_record(rec)]
        again = [r for rec in want for r in decode_record(rec)]
        assert back == again == a.accepted
        assert [r.model_fields_set for r in back] == [r.model_fields_set for r in again]
