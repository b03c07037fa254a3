"""Journal records: a reading the collector wrote comes back equal without a second
validation; an untagged (older or foreign) record is validated in full; a damaged one is
rejected with its reason, never taken as a reading it is not, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from gridwatch import Reading
from gridwatch._schemas import MeterStatus
from gridwatch.ingest import Journal, JournalSource, decode_item, encode_item, read_deadletters
from gridwatch.ingest._assemble import ReadingFields
from gridwatch.ingest._journal import (
    BATCH_TAG,
    READING_TAG,
    _rebuild,
    compact_fields,
    compact_readings,
    decode_record,
    rebuild_fields,
    split_batch_record,
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}", fullmatch=True)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1),
                     timezones=st.just(UTC))


def _opt(s: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | s


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    """Any reading the collector can accept, with any set of optional fields given."""
    phases = draw(st.integers(1, 3))
    doc = {
        "meter_id": draw(ids), "ts": draw(times),
        "kw": draw(st.floats(-1e5, 1e5) | st.integers(-100, 100)),
        "kwh": draw(_opt(st.floats(0, 1e12))),
        "export_kwh": draw(_opt(st.floats(0, 1e12))),
        "voltage": draw(_opt(st.tuples(*[st.floats(0, 5e5)] * phases))),
        "current": draw(_opt(st.tuples(*[st.floats(0, 1e5)] * phases))),
        "pf": draw(_opt(st.floats(-1, 1))),
        "freq": draw(_opt(st.floats(40, 70))),
        "status": draw(st.lists(st.sampled_from(list(MeterStatus)), max_size=3)),
        "interval_s": draw(_opt(st.integers(1, 86_400))),
    }
    given_fields = draw(st.sets(st.sampled_from(sorted(doc))))
    keep = {k: v for k, v in doc.items()
            if k in ("meter_id", "ts", "kw") or (k in given_fields and v is not None)}
    return Reading.model_validate(keep, context={"max_future": timedelta.max})


def rebuild_readings(records: list[bytes]) -> list[Reading] | None:
    """The readings of a run as the journal source makes them when asked for readings: the
    run's fields (:func:`rebuild_fields`), then each reading of its fields."""
    given = rebuild_fields(records)
    return None if given is None else ReadingFields(given).readings()


def _same(a: Reading, b: Reading) -> None:
    assert type(b) is Reading and a == b
    assert a.model_fields_set == b.model_fields_set
    assert a.model_dump_json() == b.model_dump_json()
    assert b.ts.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(reading=readings())
def test_any_record_the_collector_wrote_comes_back_equal(reading: Reading) -> None:
    data = encode_item(reading)
    assert data.startswith(READING_TAG)
    got = decode_item(data)
    assert got == reading
    # ... taken by the typed decoder, not by a second validation
    assert _rebuild(data) == reading
    # Field for field what a full validation of the record gives (the same fields given, too).
    _same(Reading.model_validate_json(data, context={"max_future": timedelta.max}), got)
    assert encode_item(got) == data
    # Every JSON reader still reads the record as the wire form.
    assert json.loads(data) == json.loads(data[len(READING_TAG):])


@settings(max_examples=300, deadline=None)
@given(reading=readings())
def test_an_untagged_record_is_validated_like_before(reading: Reading) -> None:
    old = reading.model_dump_json(exclude_none=True, exclude_defaults=True).encode()
    got = decode_item(old)
    assert got == reading
    _same(Reading.model_validate_json(old, context={"max_future": timedelta.max}), got)


def _validated(data: bytes) -> Reading | None:
    """What a full validation makes of the record behind the tag (None: rejected)."""
    try:
        return Reading.model_validate_json(data[len(READING_TAG):],
                                           context={"max_future": timedelta.max})
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(reading=readings(), data=st.data())
def test_a_damaged_tagged_record_is_rejected_or_well_formed(reading: Reading,
                                                            data: st.DataObject) -> None:
    rec = bytearray(encode_item(reading))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(len(READING_TAG), len(rec) - 1))
        rec[i] = data.draw(st.integers(0, 255))
    raw = bytes(rec)
    try:
        got = decode_item(raw)
    except ValueError:
        return  # rejected with pydantic's reason: the journal source dead-letters it
    # Taken: a reading of the right shape (types as validation gives them) ...
    assert type(got) is Reading and got.ts.tzinfo is UTC and isinstance(got.kw, float)
    for v in (got.voltage, got.current):
        assert v is None or (type(v) is tuple and all(type(x) is float for x in v))
    assert all(type(s) is MeterStatus for s in got.status)
    # ... and whenever validation accepts the same bytes, exactly what it gives.
    full = _validated(raw)
    if full is not None:
        assert got == full


def _each(records: list[bytes]) -> list[Any]:
    """What the journal source made of each record alone: its item, None when rejected."""
    out: list[Any] = []
    for data in records:
        try:
            out.append(decode_item(data))
        except ValueError:
            out.append(None)
    return out


def _compact(batch: list[Reading]) -> list[bytes]:
    """The records the collector journals for ``batch`` sent as one compact payload (none
    when it is not in the compact form)."""
    payload = json.dumps([r.to_json_dict() for r in batch], separators=(",", ":")).encode()
    records: list[bytes] = []
    compact_readings(payload, True, records)
    return records


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=12), sent=st.booleans())
def test_a_run_of_records_comes_back_as_each_record_alone(batch: list[Reading],
                                                          sent: bool) -> None:
    records = (_compact(batch) if sent else []) or [encode_item(r) for r in batch]
    got = rebuild_readings(records)
    assert got is not None and len(got) == len(batch)
    for one, alone, reading in zip(got, _each(records), batch, strict=True):
        _same(alone, one)
        assert one == reading


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=6), data=st.data())
def test_a_run_with_a_damaged_record_is_taken_only_as_each_record_alone(
        batch: list[Reading], data: st.DataObject) -> None:
    records = [encode_item(r) for r in batch]
    k = data.draw(st.integers(0, len(records) - 1))
    rec = bytearray(records[k])
    damage = data.draw(st.sampled_from(["bytes", "space", "split", "join"]))
    if damage == "bytes":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(rec) - 1))
            rec[i] = data.draw(st.integers(0, 255))
        records[k] = bytes(rec)
    elif damage == "space":  # whitespace beyond the tag, anywhere
        i = data.draw(st.integers(len(READING_TAG), len(rec)))
        records[k] = bytes(rec[:i]) + data.draw(st.sampled_from([b" ", b"\t", b"\n"])) \
            + bytes(rec[i:])
    elif damage == "split":  # one record cut in two, each with the tag
        i = data.draw(st.integers(len(READING_TAG) + 1, len(rec) - 1))
        records[k:k + 1] = [bytes(rec[:i]), READING_TAG + bytes(rec[i:])]
    else:  # two records as one
        records[k:k + 1] = [bytes(rec) + b"," + encode_item(batch[0])]
    got = rebuild_readings(records)
    if got is None:
        return  # decoded one by one by the caller
    alone = _each(records)
    assert all(each is not None for each in alone)  # (not ``in``: that calls __eq__)
    assert len(got) == len(records)
    for one, each in zip(got, alone, strict=True):
        _same(each, one)


def _payload(batch: list[Reading]) -> bytes:
    return json.dumps([r.to_json_dict() for r in batch], separators=(",", ":")).encode()


@settings(max_examples=200, deadline=None)
@given(runs=st.lists(st.tuples(st.lists(readings(), min_size=1, max_size=8), st.booleans()),
                     min_size=1, max_size=5))
def test_a_batch_record_holds_its_readings_as_the_readings_records_do(
        runs: list[tuple[list[Reading], bool]]) -> None:
    """A compact batch journaled whole (one :data:`BATCH_TAG` record, the payload as sent)
    comes back as the very readings, given fields and all, that its readings' own records
    give: alone (``decode_record``) and in a run mixed with reading records
    (``rebuild_fields``); cut apart (``split_batch_record``), it is those records."""
    records: list[bytes] = []
    want: list[Reading] = []
    for batch, whole in runs:
        payload = _payload(batch)
        each: list[bytes] = []
        one: list[bytes] = []
        if compact_fields(payload, True, each) is None:
            records += [encode_item(r) for r in batch]  # not in the compact form
            want += batch
            continue
        assert compact_fields(payload, True, one, whole=True) is not None
        if not each:  # a timestamp not in UTC: records written anew, never whole
            assert one == []
            records += [encode_item(r) for r in batch]
            want += batch
            continue
        assert one == [BATCH_TAG + payload]
        assert split_batch_record(one[0], len(batch)) == each
        alone = decode_record(one[0])
        for got, reading in zip(alone, [r for d in each for r in decode_record(d)],
                                strict=True):
            _same(reading, got)
        records += one if whole else each
        want += batch
    got = rebuild_readings(records)
    assert got is not None
    assert got == want
    for g, w in zip(got, [r for d in records for r in decode_record(d)], strict=True):
        _same(w, g)


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=6), data=st.data())
def test_a_damaged_batch_record_is_rejected_or_its_readings_are_well_formed(
        batch: list[Reading], data: st.DataObject) -> None:
    """A batch record with bytes changed, whitespace added or its array cut: never a crash,
    never readings that validation of the same bytes would not give; a run holding it is
    left to the records alone."""
    payload = _payload(batch)
    records: list[bytes] = []
    if compact_fields(payload, True, records, whole=True) is None or not records:
        return
    rec = bytearray(records[0])
    damage = data.draw(st.sampled_from(["bytes", "space", "cut"]))
    if damage == "bytes":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(rec) - 1))
            rec[i] = data.draw(st.integers(0, 255))
    elif damage == "space":
        i = data.draw(st.integers(len(BATCH_TAG), len(rec)))
        rec[i:i] = data.draw(st.sampled_from([b" ", b"\t", b"\n"]))
    else:
        del rec[data.draw(st.integers(len(BATCH_TAG), len(rec) - 1)):]
    damaged = bytes(rec)
    try:
        got = decode_record(damaged)
    except ValueError:
        got = None
    try:
        full = TypeAdapter(list[Reading]).validate_json(
            damaged, context={"max_future": timedelta.max})
    except ValueError:
        full = None
    if got is not None:
        assert got and all(type(r) is Reading and r.ts.tzinfo is UTC for r in got)
        if full is not None:
            assert got == full
    run = rebuild_readings([encode_item(batch[0]), damaged])
    if run is not None:
        assert got is not None and run[1:] == got


def test_a_batch_record_of_no_readings_is_not_a_record() -> None:
    with pytest.raises(ValueError):
        decode_record(BATCH_TAG + b"[]")
    assert rebuild_fields([BATCH_TAG + b"[]"]) is None
    with pytest.raises(ValueError, match="not a batch record"):
        split_batch_record(READING_TAG + b'{"meter_id":"m1"}', 1)
    with pytest.raises(ValueError, match="does not split into 3 readings"):
        split_batch_record(BATCH_TAG + b'[{"meter_id":"m1"},{"meter_id":"m2"}]', 3)


@pytest.mark.parametrize("records", [
    # an untagged record, one not parsed, one with ": inside a value, a local time
    [encode_item(Reading(meter_id="m1", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0)),
     b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0}'],
    [READING_TAG + b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0'],
    [READING_TAG + b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"x":"\\":"}'],
    [READING_TAG + b'{"meter_id":"m1","ts":"2026-01-01T00:00:00+01:00","kw":1.0}'],
    # phases that disagree, given as lone numbers and as lists
    [READING_TAG + b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"voltage":1.0,'
                   b'"current":[1.0,2.0]}'],
    [READING_TAG + b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"voltage":[1.0],'
                   b'"current":[1.0,2.0]}'],
])
def test_a_run_not_all_in_the_written_form_is_left_to_the_records_alone(
        records: list[bytes]) -> None:
    assert rebuild_readings(records) is None


def test_a_lone_phase_number_in_a_run_is_made_a_tuple() -> None:
    got = rebuild_readings([READING_TAG + b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z",'
                                          b'"kw":1.0,"voltage":230.5,"current":2.0}'])
    assert got is not None and got[0].voltage == (230.5,) and got[0].current == (2.0,)


@pytest.mark.parametrize("payload", [
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":NaN}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00","kw":1.0}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00+01:00","kw":1.0}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":"1.0"}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"voltage":[]}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"status":["x"]}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"extra":1}',
    # an unknown key the ":-count would miss without the whitespace check, a key given twice
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"extra" :1}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z", "kw":1.0}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"kw":2.0}',
    # forms validation accepts: an integer, a UTC offset
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00+00:00","kw":1.0}',
    # a value holding ": (one more than the fields: validation decides, and refuses the id)
    b'{"meter_id":":m1","ts":"2026-01-01T00:00:00Z","kw":1.0}',
    # out of the model's range (the typed decoder checks it too)
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1e6}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0,"voltage":[1.0,2.0,3.0,4.0]}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z"}',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":null}',
    b'[1]',
    b'{"meter_id":"m1","ts":"2026-01-01T00:00:00Z","kw":1.0',
    b'\xff\xfe',
])
def test_tagged_records_not_in_the_written_form_go_through_validation(payload: bytes) -> None:
    raw = READING_TAG + payload
    full = _validated(raw)
    if full is None:
        with pytest.raises(ValueError):
            decode_item(raw)
    else:  # a form the writer does not use but validation accepts: validation's reading
        _same(full, decode_item(raw))


def test_the_journal_source_dead_letters_a_bad_record_with_its_reason(tmp_path: Path) -> None:
    ok = Reading(meter_id="m1", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0)
    # An untagged (older or foreign) record is validated: out of range, it is dead-lettered.
    bad = b'{"meter_id":"m1","ts":"2026-01-01T00:15:00Z","kw":1e9}'
    with Journal(tmp_path / "journal", 0) as j:
        j.append([encode_item(ok), bad, b'{"meter_id": "m2"', encode_item(ok)])
    source = JournalSource(tmp_path / "journal", follow=False,
                           deadletter_dir=tmp_path / "dead")
    part = source.build_part("in", "p0000", None)
    got = part.next_batch()
    with pytest.raises(StopIteration):
        part.next_batch()
    part.close()
    assert got == [ok, ok]
    assert source.rejected_by_reason == {"out_of_range": 1, "invalid_json": 1}
    letters = list(read_deadletters(tmp_path / "dead"))
    assert [(d.reason, d.index, d.payload) for d in letters] == [
        ("out_of_range", 1, bad), ("invalid_json", 2, b'{"meter_id": "m2"')]
    assert all(d.topic == "journal:p0000" and d.detail for d in letters)


def test_a_source_asked_for_fields_gives_a_read_in_the_written_form_as_one_run(
        tmp_path: Path) -> None:
    """``as_fields``: a read whose records are all readings in the written form is one
    ``ReadingFields`` item (counted as its readings), whose readings are the records'; a read
    with a record that is not is decoded record by record, its bad record dead-lettered; a
    source not asked (None, False) gives readings."""
    rs = [Reading(meter_id=f"m{i}", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0 + i,
                  voltage=(230.0,)) for i in range(5)]
    bad = b'{"meter_id":"m1","ts":"2026-01-01T00:15:00Z","kw":1e9}'
    with Journal(tmp_path / "journal", 0) as j:
        j.append([encode_item(r) for r in rs])
        j.append([encode_item(rs[0]), bad])
    for asked in (None, False, True):
        source = JournalSource(tmp_path / "journal", follow=False, batch_size=5,
                               deadletter_dir=tmp_path / f"dead-{asked}", as_fields=asked)
        part = source.build_part("in", "p0000", None)
        first, second = part.next_batch(), part.next_batch()
        part.close()
        if asked:
            assert len(first) == 1 and type(first[0]) is ReadingFields
            assert len(first[0]) == 5
            for got, want in zip(first[0].readings(), rs, strict=True):
                _same(want, got)
        else:
            assert first == rs
        assert second == [rs[0]]
        assert source.accepted == 6
        assert source.rejected_by_reason == {"out_of_range": 1}
        assert [d.payload for d in read_deadletters(tmp_path / f"dead-{asked}")] == [bad]


def test_a_source_reads_batch_records_as_their_readings_and_dead_letters_a_bad_one(
        tmp_path: Path) -> None:
    """Batch records beside reading records: read as fields, a read all in the written form
    is one run of every reading; a read with a damaged batch record is decoded record by
    record, the good records' readings kept in order, the bad one dead-lettered whole with
    its reason; readings are counted, not records."""
    rs = [Reading(meter_id=f"m{i}", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0 + i,
                  voltage=(230.5,)) for i in range(6)]
    whole: list[bytes] = []
    assert compact_fields(_payload(rs[:4]), True, whole, whole=True) is not None
    [batch] = whole
    bad = batch.replace(b'"kw":1.0', b'"kw":1e9')  # out of range
    with Journal(tmp_path / "journal", 0) as j:
        j.append([batch, encode_item(rs[4])])
        j.append([bad, batch, encode_item(rs[5])])
    for asked in (True, False):
        dead = tmp_path / f"dead-{asked}"
        source = JournalSource(tmp_path / "journal", follow=False, batch_size=2,
                               deadletter_dir=dead, as_fields=asked)
        part = source.build_part("in", "p0000", None)
        reads = [part.next_batch() for _ in range(3)]
        with pytest.raises(StopIteration):
            part.next_batch()
        part.close()
        if asked:  # a read all in the written form: one run
            assert [type(x) for x in reads[0]] == [ReadingFields]
            assert [type(x) for x in reads[2]] == [ReadingFields]
        first, second, third = ([r for x in read for r in (
            x.readings() if type(x) is ReadingFields else [x])] for read in reads)
        assert first == rs[:5]
        assert second == rs[:4]  # the bad batch's record dead-lettered, the next read whole
        assert third == [rs[5]]
        assert source.accepted == 10
        assert source.rejected_by_reason == {"out_of_range": 1}
        assert [(d.payload, d.index) for d in read_deadletters(dead)] == [(bad, 2)]


def test_a_live_source_keeps_its_dead_letters_apart_from_the_collectors(tmp_path: Path) -> None:
    """The engine's source shares the dead-letter directory with its collector: it writes to a
    partition of its own (base + journal partition), and `journal deadletters` sees both."""
    from gridwatch._engine import SOURCE_DEADLETTER_BASE
    from gridwatch.ingest._deadletter import DeadLetter, DeadLetters

    dead = tmp_path / "dead"
    with DeadLetters(dead, 3) as collector:  # the collector of partition 3, still open
        collector.put_many([DeadLetter("invalid_json", "meters/x", b"{", "bad",
                                       datetime(2026, 1, 1, tzinfo=UTC))])
        with Journal(tmp_path / "journal", 3) as j:
            j.append([b'{"meter_id": "m2"'])
        source = JournalSource(tmp_path / "journal", partitions=[3], follow=False,
                               deadletter_dir=dead,
                               deadletter_partition_base=SOURCE_DEADLETTER_BASE)
        part = source.build_part("in", "p0003", None)
        assert part.next_batch() == []
        part.close()
    reasons = sorted((d.reason, d.topic) for d in read_deadletters(dead))
    assert reasons == [("invalid_json", "journal:p0003"), ("invalid_json", "meters/x")]
    assert any(str(SOURCE_DEADLETTER_BASE + 3) in p.name for p in dead.iterdir())


# -- records a writer in this process appended: taken as its items, not decoded --------------
def _follow(tmp_path: Path, batch: int = 1000) -> tuple[JournalSource, Any]:
    source = JournalSource(tmp_path / "journal", partitions=[0], follow=True, batch_size=batch)
    return source, source.build_part("in", "p0000", None)


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=20))
def test_a_following_source_takes_what_this_process_appended_as_its_items(
        tmp_path_factory: pytest.TempPathFactory, batch: list[Reading]) -> None:
    tmp_path = tmp_path_factory.mktemp("recent")
    _source, part = _follow(tmp_path)
    with Journal(tmp_path / "journal", 0) as j:
        j.append([encode_item(r) for r in batch], batch)
        got = part.next_batch()
    recent = part.recent
    part.close()
    # taken from memory, not decoded: the very objects the writer validated (the newest are
    # kept as they came), each equal to what decoding gives
    assert (recent.hits, recent.misses) == (len(batch), 0)
    assert all(g is r for g, r in zip(got, batch, strict=True))
    assert got == [decode_item(encode_item(r)) for r in batch]
    assert part.recent is None  # released on close


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=20), loose=st.integers(0, 20))
def test_a_reading_kept_compact_comes_back_field_for_field(batch: list[Reading],
                                                           loose: int) -> None:
    """Readings older than the ``loose`` newest are kept as compact tuples and put together
    again when taken: the same values (the very objects), the same fields given (in a set of
    its own), equal to what decoding their records gives."""
    from gridwatch.ingest._journal import RecentItems

    recent = RecentItems(64, loose=loose)
    records = [encode_item(r) for r in batch]
    recent.add(7, records, batch)
    compact = sum(len(e) > 3 for e in recent._ring if e is not None)
    assert compact == max(0, len(batch) - loose)
    assert recent.compacted == compact
    got = recent.take([(7 + i, rec) for i, rec in enumerate(records)])
    assert recent.hits == len(batch)
    for g, r, rec in zip(got, batch, records, strict=True):
        _same(r, g)
        assert all(g.__dict__[f] is r.__dict__[f] for f in Reading.model_fields)
        if g is not r:
            assert g.model_fields_set is not r.model_fields_set
        assert g == decode_item(rec) and encode_item(g) == rec


def test_recent_items_are_used_only_for_the_same_bytes_at_the_same_offset(
        tmp_path: Path) -> None:
    from gridwatch.ingest._journal import recent_items, release_recent_items

    a = Reading(meter_id="a", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0)
    b = Reading(meter_id="b", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=2.0)
    recent = recent_items(tmp_path / "journal", 0)
    try:
        recent.add(5, [encode_item(a), encode_item(b)], [a, b])
        # offset 5 holds other bytes (not what was appended with ``a``): decode it
        assert recent.take([(5, encode_item(b)), (6, encode_item(b)), (7, b"x")]) == \
            [None, b, None]
        assert (recent.hits, recent.misses) == (1, 2)
        assert recent.take([(6, encode_item(b))]) == [None]  # each item is taken once
        with pytest.raises(ValueError):
            recent.add(0, [encode_item(a)], [])
        # bounded: the oldest go first
        recent.capacity = 3
        recent.add(10, [encode_item(a)] * 5, [a] * 5)
        assert recent.take([(o, encode_item(a)) for o in range(10, 15)]) == \
            [None, None, a, a, a]
    finally:
        release_recent_items(tmp_path / "journal", 0)


def test_a_writer_keeps_items_only_while_a_reader_in_this_process_follows(
        tmp_path: Path) -> None:
    from gridwatch.ingest._journal import _RECENT

    r = Reading(meter_id="a", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0)
    with Journal(tmp_path / "journal", 0) as j:
        j.append([encode_item(r)], [r])  # no reader: nothing kept
        assert not any(str(tmp_path) in str(k) for k in _RECENT)
        _source, part = _follow(tmp_path)
        assert part.next_batch() == [r]  # decoded (appended before the reader came)
        assert part.recent.misses == 1
        j.append([encode_item(r)], [r])
        assert part.next_batch() == [r]
        assert part.recent.hits == 1
        part.close()
        assert not any(str(tmp_path) in str(k) for k in _RECENT)
    # a replay (follow=False) never asks for recent items
    replay = JournalSource(tmp_path / "journal", partitions=[0], follow=False)
    rp = replay.build_part("in", "p0000", None)
    assert rp.recent is None and rp.next_batch() == [r, r]
    rp.close()


# -- the hand-over's capacity (ingest.handover_items) ------------------------------------------
def _fleet_readings(n: int, meters: int = 5000) -> list[Reading]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [Reading(meter_id=f"m{i % meters}", ts=t0 + timedelta(minutes=15 * (i // meters)),
                    kw=(i % 977) * 0.25, kwh=1000.0 + i, voltage=(230.1,), pf=0.97)
            for i in range(n)]


def _backlog_through_the_hand_over(tmp_path: Path, batch: list[Reading]
                                   ) -> tuple[list[Any], Any, Any]:
    """``batch`` appended (100 per append, as 100-reading batches) before the dataflow's
    journal source reads any, then read to the end: (what it yielded, the hand-over, the
    metrics)."""
    from prometheus_client import CollectorRegistry

    from gridwatch.ingest import IngestMetrics

    metrics = IngestMetrics(CollectorRegistry())
    source = JournalSource(tmp_path / "journal", partitions=[0], follow=True,
                           batch_size=1000, metrics=metrics)
    part = source.build_part("in", "p0000", None)
    got: list[Any] = []
    with Journal(tmp_path / "journal", 0, fsync=False) as j:
        for k in range(0, len(batch), 100):
            chunk = batch[k:k + 100]
            j.append([encode_item(r) for r in chunk], chunk)
        while len(got) < len(batch):
            more = part.next_batch()
            assert more, "the reader stopped before the end"
            got.extend(more)
    recent = part.recent
    part.close()
    return got, recent, metrics


def test_a_burst_larger_than_the_old_capacity_is_taken_from_memory(tmp_path: Path) -> None:
    """40,000 readings appended (100 per append, as 100-reading batches) before the dataflow
    reads any: more than the 32,768 the hand-over used to keep, all taken from memory and
    counted as hits in the engine's metrics."""
    from gridwatch.ingest._config import IngestSettings
    from gridwatch.ingest._journal import DEFAULT_HANDOVER_ITEMS

    assert DEFAULT_HANDOVER_ITEMS == IngestSettings().handover_items >= 100_000
    batch = _fleet_readings(40_000)
    got, recent, metrics = _backlog_through_the_hand_over(tmp_path, batch)
    assert got == batch
    assert (recent.hits, recent.misses) == (40_000, 0)
    reg = metrics.registry
    assert reg.get_sample_value("gridwatch_ingest_handover_hits_total",
                                {"partition": "0"}) == 40_000
    assert reg.get_sample_value("gridwatch_ingest_handover_misses_total",
                                {"partition": "0"}) == 0
    # within the loose window: nothing was made compact
    assert recent.compacted == 0
    assert reg.get_sample_value("gridwatch_ingest_handover_compacted_total",
                                {"partition": "0"}) == 0


def test_a_burst_beyond_the_loose_window_is_compacted_and_counted(tmp_path: Path) -> None:
    """A dataflow 70,000 readings behind: the oldest beyond the newest HANDOVER_LOOSE are
    made compact, counted in the metrics, and still taken from memory as they were."""
    from gridwatch.ingest._journal import HANDOVER_LOOSE

    n = 70_000
    assert n > HANDOVER_LOOSE
    batch = _fleet_readings(n)
    got, recent, metrics = _backlog_through_the_hand_over(tmp_path, batch)
    assert got == batch
    assert (recent.hits, recent.misses) == (n, 0)
    # compaction runs in steps of the loose window: at least the readings beyond it
    assert n - HANDOVER_LOOSE <= recent.compacted < n
    assert metrics.registry.get_sample_value("gridwatch_ingest_handover_compacted_total",
                                             {"partition": "0"}) == recent.compacted


def _counting_end_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the reads of ``Journal.end_offset`` (a scan of the journal's end on disk)."""
    calls: list[int] = []
    scan = Journal.end_offset

    def counted(self: Journal) -> int:
        calls.append(1)
        return scan.fget(self)

    monkeypatch.setattr(Journal, "end_offset", property(counted))
    return calls


def test_the_lag_gauge_follows_the_collector_in_this_process_without_a_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from gridwatch.ingest import IngestMetrics

    metrics = IngestMetrics(CollectorRegistry())
    source = JournalSource(tmp_path / "journal", partitions=[0], follow=True,
                           batch_size=100, metrics=metrics, lag_every_s=0.0)
    part = source.build_part("in", "p0000", None)
    batch = _fleet_readings(350)

    def lag() -> float | None:
        return metrics.registry.get_sample_value("gridwatch_ingest_consumer_lag",
                                                 {"partition": "0"})

    with Journal(tmp_path / "journal", 0, fsync=False) as j:
        for k in range(0, 300, 100):
            j.append([encode_item(r) for r in batch[k:k + 100]], batch[k:k + 100])
        scans = _counting_end_scans(monkeypatch)
        assert part.next_batch() == batch[:100]
        assert lag() == 200
        j.append([encode_item(r) for r in batch[300:]], batch[300:])
        assert part.next_batch() == batch[100:200]
        assert lag() == 150
        assert part.next_batch() == batch[200:300]
        assert part.next_batch() == batch[300:]
        assert part.next_batch() == []  # (idle: the writer's end too)
        assert lag() == 0
        assert scans == []  # the writer's end, not a scan of the disk
    part.close()


def test_without_a_collector_here_the_lag_gauge_scans_at_most_every_lag_every_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from gridwatch.ingest import IngestMetrics

    batch = _fleet_readings(300)
    with Journal(tmp_path / "journal", 0, fsync=False) as j:
        j.append([encode_item(r) for r in batch])  # (written before any reader: no hand-over)
    for every, lags in ((3600.0, [200, 200]), (0.0, [200, 100])):
        metrics = IngestMetrics(CollectorRegistry())
        source = JournalSource(tmp_path / "journal", partitions=[0], follow=False,
                               batch_size=100, metrics=metrics, lag_every_s=every)
        part = source.build_part("in", "p0000", None)
        scans = _counting_end_scans(monkeypatch)
        seen = []
        for _ in range(3):
            part.next_batch()
            seen.append(metrics.registry.get_sample_value("gridwatch_ingest_consumer_lag",
                                                          {"partition": "0"}))
        # an hour apart: the first batch scans, the next two do not (the third reads the last
        # records; the end is found when the partition next finds nothing to read)
        assert seen[:2] == lags
        assert len(scans) == (1 if every else 3)
        with pytest.raises(StopIteration):
            part.next_batch()
        assert metrics.registry.get_sample_value("gridwatch_ingest_consumer_lag",
                                                 {"partition": "0"}) == 0
        part.close()


def test_the_lag_gauge_follows_the_end_a_writer_elsewhere_tells_without_a_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's collector process publishes its journal's end: the gauge follows it, and
    reads no record ahead of the reader; while it tells none (starting), the gauge scans."""
    from prometheus_client import CollectorRegistry

    from gridwatch.ingest import IngestMetrics

    batch = _fleet_readings(300)
    with Journal(tmp_path / "journal", 0, fsync=False) as j:
        j.append([encode_item(r) for r in batch])
    told: list[int | None] = [1_000]  # (beyond the records on disk: only the told end gives it)
    metrics = IngestMetrics(CollectorRegistry())
    source = JournalSource(tmp_path / "journal", partitions=[0], follow=True, batch_size=100,
                           metrics=metrics, lag_every_s=0.0, handover_items=0,
                           journal_end=lambda p: told[0] if p == 0 else None)
    part = source.build_part("in", "p0000", None)
    scans = _counting_end_scans(monkeypatch)

    def lag() -> float | None:
        return metrics.registry.get_sample_value("gridwatch_ingest_consumer_lag",
                                                 {"partition": "0"})

    assert part.next_batch() == batch[:100]
    assert lag() == 900
    assert part.next_batch() == batch[100:200]
    assert lag() == 800
    assert scans == []
    told[0] = None  # the collector process starts again: nothing told, the disk is scanned
    assert part.next_batch() == batch[200:]
    assert lag() == 0 and len(scans) == 1
    told[0] = 300
    assert part.next_batch() == []  # (idle: the end told, not scanned)
    assert lag() == 0 and len(scans) == 1
    part.close()


def test_a_reader_beyond_the_capacity_decodes_what_fell_out(tmp_path: Path) -> None:
    """A hand-over of 1,000 items and 3,500 readings appended before the reader comes back:
    the first 2,500 fell out and are decoded, the last 1,000 are taken; every one equal."""
    batch = _fleet_readings(3_500, meters=700)
    source = JournalSource(tmp_path / "journal", partitions=[0], follow=True,
                           batch_size=600, handover_items=1_000)
    part = source.build_part("in", "p0000", None)
    assert part.recent.capacity == 1_000
    got: list[Any] = []
    with Journal(tmp_path / "journal", 0, fsync=False) as j:
        for k in range(0, len(batch), 100):
            chunk = batch[k:k + 100]
            j.append([encode_item(r) for r in chunk], chunk)
        while len(got) < len(batch):
            got.extend(part.next_batch())
    recent = part.recent
    part.close()
    for g, r in zip(got, batch, strict=True):
        _same(r, g)
    assert (recent.hits, recent.misses) == (1_000, 2_500)


def test_no_hand_over_when_it_is_turned_off(tmp_path: Path) -> None:
    from gridwatch.ingest._config import IngestSettings
    from gridwatch.ingest._journal import _RECENT

    r = Reading(meter_id="a", ts=datetime(2026, 1, 1, tzinfo=UTC), kw=1.0)
    source = JournalSource(tmp_path / "journal", partitions=[0], follow=True,
                           handover_items=0)
    part = source.build_part("in", "p0000", None)
    assert part.recent is None
    with Journal(tmp_path / "journal", 0) as j:
        j.append([encode_item(r)], [r])
        assert not any(str(tmp_path) in str(k) for k in _RECENT)
        assert part.next_batch() == [r]
    part.close()
    with pytest.raises(ValueError, match="handover_items"):
        JournalSource(tmp_path / "journal", handover_items=-1)
    with pytest.raises(ValidationError, match="handover_items"):
        IngestSettings(handover_items=-1)


def test_the_hand_over_keeps_telemetry_and_its_newest_items_when_resized(
        tmp_path: Path) -> None:
    from gridwatch._schemas import DeviceTelemetry
    from gridwatch.ingest._journal import RecentItems

    t = DeviceTelemetry(device_id="d1", site="s1", ts=datetime(2026, 1, 1, tzinfo=UTC),
                        metrics={"temp_c": 41.5})
    batch = _fleet_readings(6)
    items: list[Any] = [t, *batch]
    records = [encode_item(x) for x in items]
    recent = RecentItems(4, loose=1)
    recent.add(100, records, items)  # 7 items, 4 slots: offsets 103..106 stay
    recent.capacity = 8  # growing keeps them
    recent.add(107, [records[0]], [t])
    got = recent.take([(100 + i, rec) for i, rec in enumerate(records)]
                      + [(107, records[0])])
    assert got[:3] == [None, None, None]
    assert got[3:7] == items[3:7] and got[7] is t
    recent.add(200, records, items)
    recent.capacity = 2  # shrinking keeps the newest
    assert recent.take([(205, records[5]), (206, records[6]), (204, records[4])]) == \
        [items[5], items[6], None]
    with pytest.raises(ValueError):
        RecentItems(0)
    with pytest.raises(ValueError):
        RecentItems(4, loose=-1)


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 12), loose=st.integers(0, 6), kinds=st.sampled_from([2, 3, 40]),
       steps=st.lists(st.tuples(st.integers(0, 7), st.lists(st.integers(-3, 20), max_size=8),
                                st.booleans()), min_size=1, max_size=12))
def test_the_hand_over_ring_keeps_what_a_model_says(
        capacity: int, loose: int, kinds: int,
        steps: list[tuple[int, list[int], bool]]) -> None:
    """Appends of 0–7 readings and takes of any offsets (some with other bytes), against a
    model: an item is taken exactly when it was appended at that offset with those bytes, is
    among the newest ``capacity`` appended, and was not taken before; it comes back equal to
    what was appended, whether kept as it came or compact. With few kinds of readings the
    same bytes come back at other offsets: only the offset they were appended at counts."""
    from gridwatch.ingest._journal import RecentItems

    pool = _fleet_readings(kinds, meters=kinds)
    recent = RecentItems(capacity, loose=loose)
    appended: dict[int, tuple[bytes, Reading]] = {}
    taken: set[int] = set()
    end = 0
    for n, wanted, wrong_bytes in steps:
        items = [pool[(end + i) % len(pool)] for i in range(n)]
        records = [encode_item(r) for r in items]
        recent.add(end, records, items)
        for i, (rec, r) in enumerate(zip(records, items, strict=True)):
            appended[end + i] = (rec, r)
        end += n
        assert recent.end == end  # the journal's end as the writer knows it
        asks = [end - 1 - k for k in wanted if end - 1 - k >= 0]
        pairs = [(o, b"other" if wrong_bytes or o not in appended else appended[o][0])
                 for o in asks]  # (an offset past the end: not appended yet)
        got = recent.take(pairs)
        for (offset, data), g in zip(pairs, got, strict=True):
            present = (offset in appended and offset >= end - capacity
                       and offset not in taken and data == appended[offset][0])
            if present:
                assert g is not None
                _same(appended[offset][1], g)
                taken.add(offset)
            else:
                assert g is None



def _bounds(schema: Any, defs: dict[str, Any]) -> Any:
    """The bounds in a field's JSON schema (ranges, lengths, allowed values), nested as found,
    references resolved."""
    if isinstance(schema, list):
        return [_bounds(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _bounds(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    keep: dict[str, Any] = {k: v for k, v in schema.items()
                            if k in ("minimum", "maximum", "minItems", "maxItems")}
    if "enum" in schema:
        keep["enum"] = sorted(schema["enum"])
    keep.update({k: _bounds(v, defs) for k, v in schema.items() if k in ("items", "anyOf")})
    return keep


def test_the_typed_decoder_checks_the_bounds_the_model_has() -> None:
    """The journal's typed decoder and ``Reading`` bound each field alike (drift here would
    let a damaged tagged record through that validation refuses, or the reverse); a per-phase
    field may be a lone number, bounded as each phase is (``Reading`` takes one as one
    phase, and a record of a compact payload holds the number as it was sent)."""
    import msgspec

    from gridwatch.ingest._journal import _Written

    ours = msgspec.json.schema(_Written)
    typed = ours["$defs"][ours["$ref"].rsplit("/", 1)[1]]["properties"]
    model = Reading.model_json_schema()
    assert set(typed) == set(model["properties"])
    for name, field_schema in model["properties"].items():
        want = _bounds(field_schema, model["$defs"])
        if name in ("voltage", "current"):
            phases, none = want["anyOf"]
            want = {"anyOf": [phases, phases["items"], none]}
        assert _bounds(typed[name], ours["$defs"]) == want, name
