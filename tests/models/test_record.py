"""The packed meter record (version 5): it reads version 4 snapshots as they were, goes on
deciding what version 4 decided, round-trips, and rounds its float32 sums as numpy did."""

from __future__ import annotations

import json
import pickle
from array import array
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import MeterMeta
from gridwatch.models import MeterState
from gridwatch.models._record import (
    _PARTS,
    EMPTY,
    I_FIELDS,
    RECORD_VERSION,
    X_FIELDS,
    MeterRecord,
    drop,
    f32,
    put,
)

NAMES = [f.name for f in fields(MeterRecord) if f.name not in ('f', 'h', 'th', 'x')] + list(
    X_FIELDS) + list(I_FIELDS)

DATA = Path(__file__).parent / "data"
#: The commercial meter of ``meter_v4.bin``: three weeks of office load, then a bypass (the
#: load at 40 %) from day 23, with a voltage dip on one phase every 97th reading.
META = MeterMeta(meter_id="m1", customer_class="commercial", contracted_kva=14.0, phases=3)
HEAD = 21 * 96 + 37  # readings behind the snapshot


def _load(i, ts, rng):
    working = ts.weekday() < 5 and 8 <= ts.hour < 18
    base = (10.0 if working else 1.0) + rng.normal(0, 0.1)
    return base * (0.4 if i >= 22 * 96 else 1.0)


def _readings(gen):
    return gen.series(26 * 96, _load, extra=lambda i, ts: {
        "voltage": [230.0, 231.0, 229.0 if i % 97 else 190.0], "pf": 0.95})


def test_version_4_snapshot_is_read_field_by_field():
    blob = (DATA / "meter_v4.bin").read_bytes()
    version, old = pickle.loads(blob)
    assert version == 4 and RECORD_VERSION == 5
    rec = MeterRecord.from_bytes(blob)
    for name, (_, _, _, dtype) in _PARTS.items():
        want = np.frombuffer(old[name], dtype)
        assert np.array_equal(rec.view(name).astype(np.float64), want.astype(np.float64)), name
    for name in NAMES:
        got = getattr(rec, name)
        assert got == old[name] or (got != got and old[name] != old[name]), name  # NaN
    assert rec.th is not None and rec.th_hour  # a commercial meter fills its theft window


def test_version_4_snapshot_goes_on_deciding_as_version_4_did(gen):
    """``meter_v4_next.json`` holds what the version 4 detectors raised on the readings after
    the snapshot: a bypass (possible theft, a sustained drop) and voltage sags."""
    want = json.loads((DATA / "meter_v4_next.json").read_text())
    assert {e["type"] for e in want} >= {"possible_theft", "abnormal_consumption",
                                        "voltage_sag"}
    state = MeterState.from_bytes((DATA / "meter_v4.bin").read_bytes())
    _, events = gen.run(_readings(gen)[HEAD:], META, state=state)
    assert [e.model_dump(mode="json") for e in events] == want


def test_version_5_round_trip_keeps_every_field_and_decision(gen):
    rs = _readings(gen)
    state, _ = gen.run(rs[:HEAD], META)
    blob = state.to_bytes()
    assert pickle.loads(blob)[0] == 5
    clone = MeterState.from_bytes(blob)
    for name in NAMES:
        a, b = getattr(state.rec, name), getattr(clone.rec, name)
        assert a == b or (a != a and b != b), name
    _, ev_a = gen.run(rs[HEAD:HEAD + 300], META, state=state)
    _, ev_b = gen.run(rs[HEAD:HEAD + 300], META, state=clone)
    assert ev_a and ev_a == ev_b


def test_household_holds_no_theft_window_and_snapshot_omits_it(gen):
    state, _ = gen.run(gen.series(3 * 96))
    assert state.rec.th is None
    _, old = pickle.loads(state.to_bytes())
    assert "th_obs" not in old
    assert MeterState.from_bytes(state.to_bytes()).rec.th is None


def test_unknown_version_is_refused():
    blob = pickle.dumps((3, {"meter_id": "m1"}))
    with pytest.raises(ValueError, match="version 3"):
        MeterRecord.from_bytes(blob)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=60))
def test_float32_sums_round_as_numpy_float32_did(values):
    """Today's hourly sums and the theft window were numpy float32 arrays (``a[i] += kw``
    rounds ``kw`` to float32, then the sum); the packed buffer rounds the same way."""
    a = np.zeros(1, np.float32)
    b = array("f", [0.0])
    for v in values:
        a[0] += v
        b[0] = b[0] + f32(v)
        assert float(a[0]) == b[0]


_ops = st.lists(st.tuples(st.sampled_from(["act", "cnt", "clr", "since", "fb"]),
                          st.sampled_from(["a", "b", "c"]), st.booleans(), st.integers(0, 9)),
                max_size=40)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_alarm_dicts_behave_as_dicts_and_never_write_the_shared_empty_one(ops):
    """``put``/``drop`` on a record's alarm dicts behave as ``d[k] = v`` / ``d.pop(k, None)``
    on plain dicts (same content, same order), an emptied dict goes back to the shared empty
    mapping, and the shared one stays empty."""
    rec, other = MeterRecord("m1"), MeterRecord("m2")
    model: dict[str, dict[str, int]] = {n: {} for n in ("act", "cnt", "clr", "since", "fb")}
    for name, key, is_put, value in ops:
        if is_put:
            put(rec, name, key, value)
            model[name][key] = value
        else:
            drop(rec, name, key)
            model[name].pop(key, None)
        got = getattr(rec, name)
        assert list(got.items()) == list(model[name].items())
        assert (got is EMPTY) == (not model[name])
    assert len(EMPTY) == 0 and all(getattr(other, n) is EMPTY for n in model)
    clone = MeterRecord.from_bytes(rec.to_bytes())
    for name in model:
        assert dict(getattr(clone, name)) == model[name]
        assert (getattr(clone, name) is EMPTY) == (not model[name])
