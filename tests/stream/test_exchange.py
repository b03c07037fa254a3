"""The engine's hot paths against their reference: a ``ReadingBatch`` pickles as columns and
comes back as the same readings, a batch of given fields (as read from the journal) is the
batch of their readings, the storage sink's line for a reading is the schema's
(hypothesis), and the dataflow's registry lookup is one table built once per registry."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import MeterMeta, Reading
from gridwatch._engine import meter_lookup
from gridwatch._registry import Registry
from gridwatch._schemas import ID_PATTERN
from gridwatch._settings import Settings
from gridwatch.ingest._journal import decode_item, encode_items, rebuild_fields
from gridwatch.storage._points import _convert, field_lines, reading_lines
from gridwatch.stream import ReadingBatch

FAR = datetime(2100, 1, 1, tzinfo=UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)

_phases = st.integers(1, 3)
_finite = {"allow_nan": False, "allow_infinity": False}


@st.composite
def readings(draw: Any) -> Reading:
    """A valid reading with any subset of the optional fields given (sometimes explicitly as
    their default), so that the set of given fields varies within a batch."""
    data: dict[str, Any] = {
        "meter_id": draw(st.from_regex(ID_PATTERN, fullmatch=True)),
        "ts": T0 + timedelta(seconds=draw(st.integers(0, 10**8)),
                             microseconds=draw(st.integers(0, 999_999))),
        "kw": draw(st.floats(-100_000, 100_000, **_finite)),
    }
    n = draw(_phases)
    optional = {
        "kwh": st.none() | st.floats(0, 1e12, **_finite),
        "export_kwh": st.none() | st.floats(0, 1e12, **_finite),
        "voltage": st.lists(st.floats(0, 500_000, **_finite), min_size=n, max_size=n),
        "current": st.lists(st.floats(0, 100_000, **_finite), min_size=n, max_size=n),
        "pf": st.floats(-1, 1, **_finite),
        "freq": st.floats(40, 70, **_finite),
        "status": st.lists(st.sampled_from(["power_fail", "estimated", "cover_open"]),
                           max_size=2),
        "interval_s": st.integers(1, 86_400),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        data[name] = draw(optional[name])
    return Reading.model_validate(data, context={"now": FAR})


@settings(max_examples=150, deadline=None)
@given(st.lists(readings(), max_size=40), st.text(max_size=12), st.text(max_size=6))
def test_a_batch_round_trips_through_pickle_as_the_same_readings(rs, key, part):
    batch = ReadingBatch(key, tuple(rs), part)
    wire = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    back = pickle.loads(wire)
    assert type(back) is ReadingBatch
    assert back == batch
    assert (back.key, back.part) == (key, part)
    for got, sent in zip(back.readings, batch.readings, strict=True):
        assert type(got) is Reading
        assert got.model_fields_set == sent.model_fields_set
        assert got.model_dump() == sent.model_dump()
        assert got.model_dump_json(exclude_unset=True) == sent.model_dump_json(exclude_unset=True)
        assert hash(got) == hash(sent)
        # each reading has its own set of given fields (a shared one would leak edits)
        assert got.model_fields_set is not sent.model_fields_set
    assert len({id(r.model_fields_set) for r in back.readings}) == len(back.readings)


@settings(max_examples=150, deadline=None)
@given(st.lists(readings(), min_size=1, max_size=40), st.text(max_size=12))
def test_a_batch_of_given_fields_is_the_batch_of_their_readings(rs, key):
    """A batch as the dataflow reads it from the journal (each reading's record decoded into
    its given fields, no objects) gives the same readings, one at a time or all, the same
    meters, the same lines to store and the same batch across processes as the batch of the
    readings the journal's records decode to (each equal to the reading written; a field
    given as its default is not written, so it is not among their given fields)."""
    records = encode_items(rs)
    given = rebuild_fields(records)
    assert given is not None  # (the writer's form: every record taken as one run)
    decoded = [decode_item(rec) for rec in records]
    assert decoded == rs
    rs = decoded
    batch = ReadingBatch.of_fields(key, given, "p1")
    objects = ReadingBatch(key, tuple(rs), "p1")
    assert batch.meter_ids() == [r.meter_id for r in rs]
    assert field_lines(batch.fields()) == reading_lines(rs)
    for i, r in enumerate(rs):
        one = batch.reading(i)
        assert one == r and one.model_fields_set == r.model_fields_set
    assert batch.given is given and batch._readings is None  # nothing made so far
    assert batch == objects
    for got, sent in zip(batch.readings, rs, strict=True):
        assert got.model_dump_json(exclude_unset=True) == sent.model_dump_json(exclude_unset=True)
    back = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.given == given and back._readings is None  # (fields across, none made)
    assert back == objects and back.part == "p1"


def test_a_batch_dumped_twice_is_pickled_once(monkeypatch):
    """bytewax pickles an item that crosses to another process twice (its size, then its
    bytes): the second dump of a batch reuses the first one's bytes."""
    made = []
    reduced = ReadingBatch._reduced
    monkeypatch.setattr(ReadingBatch, "_reduced", lambda b: made.append(b) or reduced(b))
    rs = [Reading(meter_id=f"m{i}", ts=T0 + timedelta(minutes=15 * i), kw=float(i))
          for i in range(5)]
    for batch in (ReadingBatch("cell:a", tuple(rs), "p0"),
                  ReadingBatch.of_fields("cell:a", [{"meter_id": r.meter_id, "ts": r.ts,
                                                     "kw": r.kw} for r in rs], "p0")):
        made.clear()
        first, second = pickle.dumps(batch), pickle.dumps(batch)
        assert first == second and made == [batch]
        assert pickle.loads(second) == batch


@settings(max_examples=300, deadline=None)
@given(readings())
def test_the_sinks_reading_line_is_the_schemas(r):
    # (to_lines of a reading is reading_lines of one: the schema's general path is the check)
    assert reading_lines([r]) == [_convert(r).line()]


def test_the_columnar_form_is_smaller_than_pickled_models():
    rs = tuple(Reading.model_validate({"meter_id": f"m{i}", "ts": T0 + i * timedelta(minutes=15),
                                       "kw": 1.0 + i / 100, "kwh": 10.0 + i,
                                       "voltage": [230.0 + i / 10]}, context={"now": FAR})
               for i in range(100))
    columnar = len(pickle.dumps(ReadingBatch("cell:c1", rs, "0")))
    models = len(pickle.dumps(rs))
    assert columnar < 0.75 * models


def _registry(meters: int, cell: str = "c1") -> Registry:
    return Registry.model_validate({
        "managers": [{"id": "mgr1", "name": "A. Manager"}],
        "cells": [{"id": cell, "primary": "mgr1", "timezone": "Europe/Paris"}],
        "customers": [{"id": f"k{i}", "grid_cell": cell, "contracted_kva": 9.0,
                       "meters": [f"m{i}"]} for i in range(meters)],
    })


def test_meta_table_is_built_once_and_answers_like_meter_meta():
    reg = _registry(50)
    table = reg.meta_table()
    assert len(table) == 50
    assert reg.meta_table() is table  # built once per registry
    meta = reg.meter_meta("m7")
    assert meta is table["m7"]
    assert meta == MeterMeta(meter_id="m7", customer_id="k7", grid_cell="c1",
                             contracted_kva=9.0, timezone="Europe/Paris")
    assert reg.meter_meta("nope") is None
    assert Registry().meta_table() == {}


class _Router:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry


def test_engine_lookup_follows_a_registry_reload():
    router = _Router(_registry(3, cell="c1"))
    lookup = meter_lookup(Settings(), router)
    assert lookup is not None
    first = lookup("m1")
    assert first is not None and first.grid_cell == "c1"
    assert lookup("m9") is None
    router.registry = _registry(10, cell="c2")
    again = lookup("m9")
    assert again is not None and again.grid_cell == "c2"
    assert lookup("m1").grid_cell == "c2"  # type: ignore[union-attr]
