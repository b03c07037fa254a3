"""Value objects reject what a wrong or broken sender would send, and keep what is right."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch import Batch, DeviceTelemetry, Event, Reading, Severity

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CTX = {"now": NOW}


def reading(**kw):
    base = {"meter_id": "M-0001", "ts": "2026-03-02T11:45:00Z", "kw": 1.25}
    return Reading.model_validate(base | kw, context=CTX)


def test_minimal_reading_is_utc():
    r = reading(ts="2026-03-02T19:45:00+08:00")
    assert r.ts == datetime(2026, 3, 2, 11, 45, tzinfo=UTC)
    assert r.ts.tzinfo == UTC


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ts", "2026-03-02T11:45:00", "timezone"),
        ("ts", "2026-03-02T13:00:00Z", "ahead of the receiving clock"),
        ("ts", "1970-01-01T00:00:00Z", "before 2000"),
        ("kw", float("nan"), "finite"),
        ("kw", float("inf"), "finite"),
        ("kw", 1e9, "less than or equal"),
        ("pf", 1.5, "less than or equal"),
        ("kwh", -1, "greater than or equal"),
        ("freq", 10, "greater than or equal"),
        ("meter_id", "bad id/with slash", "pattern"),
        ("colour", "red", "Extra inputs"),
        ("status", ["exploded"], "Input should be"),
        ("voltage", [230, 231, 229, 228], "at most 3"),
    ],
)
def test_reading_rejects(field, value, message):
    with pytest.raises(ValidationError) as exc:
        reading(**{field: value})
    text = str(exc.value)
    assert message in text
    assert field in text


def test_phase_counts_must_agree():
    with pytest.raises(ValidationError, match="3 phases but current has 1"):
        reading(voltage=[230, 231, 229], current=[5])


def test_scalar_voltage_is_one_phase():
    assert reading(voltage=231.5).voltage == (231.5,)


def test_future_tolerance_comes_from_context():
    data = {"meter_id": "m1", "ts": "2026-03-02T12:30:00Z", "kw": 1}
    with pytest.raises(ValidationError):
        Reading.model_validate(data, context=CTX)
    ok = Reading.model_validate(data, context={"now": NOW, "max_future": timedelta(hours=1)})
    assert ok.kw == 1


@given(
    kw=st.floats(-100_000, 100_000, allow_nan=False),
    kwh=st.none() | st.floats(0, 1e9, allow_nan=False),
    pf=st.none() | st.floats(-1, 1, allow_nan=False),
    minutes=st.integers(0, 10_000),
    offset_h=st.integers(-12, 14),
)
def test_wire_form_round_trips(kw, kwh, pf, minutes, offset_h):
    tz = timezone(timedelta(hours=offset_h))
    ts = (NOW - timedelta(minutes=minutes)).astimezone(tz)
    r = Reading.model_validate(
        {"meter_id": "m-1", "ts": ts, "kw": kw, "kwh": kwh, "pf": pf}, context=CTX
    )
    back = Reading.model_validate(r.to_json_dict(), context=CTX)
    assert back == r


def test_batch_and_telemetry():
    b = Batch.model_validate(
        {"concentrator_id": "dc-1", "readings": [{"meter_id": "a", "ts": NOW, "kw": 1.0}]},
        context=CTX,
    )
    assert b.readings[0].meter_id == "a"
    with pytest.raises(ValidationError, match="at least 1"):
        Batch.model_validate({"readings": []}, context=CTX)
    t = DeviceTelemetry.model_validate(
        {"device_id": "tx-7", "site": "s1", "ts": NOW, "kind": "transformer",
         "metrics": {"oil_temp_c": 61.5}}, context=CTX)
    assert t.metrics["oil_temp_c"] == 61.5
    with pytest.raises(ValidationError, match="finite"):
        DeviceTelemetry.model_validate(
            {"device_id": "tx-7", "site": "s1", "ts": NOW, "metrics": {"x": math.nan}},
            context=CTX)


def test_event_fingerprint_and_evidence():
    e = Event(meter_id="m1", type="outage", severity=Severity.CRITICAL, score=1.0,
              onset=NOW, raised_at=NOW, evidence={"silent_for_min": 60})
    assert e.fingerprint == "m1/outage"
    assert Severity.CRITICAL.rank > Severity.WARNING.rank
    with pytest.raises(ValidationError, match="finite"):
        Event(meter_id="m1", type="outage", severity="critical", score=1.0,
              onset=NOW, raised_at=NOW, evidence={"x": math.inf})
    with pytest.raises(ValidationError, match="timezone-aware"):
        Event(meter_id="m1", type="outage", severity="critical", score=1.0,
              onset=datetime(2026, 1, 1), raised_at=NOW)
