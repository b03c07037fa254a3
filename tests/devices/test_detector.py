"""The device detector alone (pure): each rule on hand-made telemetry, and robustness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch._schemas import DeviceTelemetry
from gridwatch.devices import Device
from gridwatch.models._device import (
    DEVICE_EVENT_TYPES,
    DeviceState,
    KindModel,
    oil_rise_ultimate,
)

T0 = datetime(2024, 4, 1, tzinfo=UTC)  # a Monday
TX = Device.model_validate({"id": "tx-1", "kind": "transformer", "grid_cell": "c1",
                            "ratings": {"kva": 400, "voltage_v": 400, "temp_limit_c": 105,
                                        "hot_temp_limit_c": 120}})
MOTOR = Device.model_validate({
    "id": "mot-1", "kind": "motor", "customer": "ind-1", "grid_cell": "c1",
    "ratings": {"rated_kw": 30, "rated_current_a": 50},
    "shift": {"start_h": 6, "end_h": 14, "timezone": "UTC"}})
PV = Device.model_validate({"id": "pv-1", "kind": "pv_inverter", "customer": "ind-1",
                            "grid_cell": "c1", "ratings": {"rated_kw": 50}})


def tx_metrics(load: float, amps: tuple[float, float, float] | None = None) -> dict[str, float]:
    kva = 400 * load
    i = kva * 1000 / (3 ** 0.5 * 400)
    a, b, c = amps or (i, i, i)
    return {"kva": kva, "kw": kva * 0.95, "ambient_c": 15.0, "current_a": a, "current_b": b,
            "current_c": c}


def run(dev: Device, rows: list[dict[str, float]], status: dict[int, tuple[str, ...]]
        | None = None, state: DeviceState | None = None, model: KindModel | None = None,
        start: int = 0) -> list:
    state = state or DeviceState(dev.id)
    model = model or KindModel(dev.kind.value)
    out = []
    for k, m in enumerate(rows, start):
        t = DeviceTelemetry.model_construct(device_id=dev.id, site="s", kind=dev.kind.value,
                                            ts=T0 + timedelta(minutes=15 * k), metrics=m,
                                            status=(status or {}).get(k, ()))
        out.extend(state.step(t, dev, model))
    return out


def test_transformer_overload_fires_after_two_readings_and_resolves():
    rows = [tx_metrics(0.6)] * 4 + [tx_metrics(1.2)] * 4 + [tx_metrics(0.6)] * 5
    events = run(TX, rows)
    assert [(e.type, e.state) for e in events] == [("device_overload", "firing"),
                                                   ("device_overload", "resolved")]
    fire = events[0]
    assert fire.raised_at == T0 + timedelta(minutes=15 * 5)
    assert fire.onset == T0 + timedelta(minutes=15 * 4)
    assert fire.evidence["load_of_rated"] == 1.2 and fire.evidence["device_id"] == "tx-1"
    assert fire.grid_cell == "c1" and fire.meter_id == "tx-1"


def test_one_reading_over_the_rating_is_not_an_overload():
    assert run(TX, [tx_metrics(0.6), tx_metrics(1.3), tx_metrics(0.6)]) == []


def test_three_phase_unbalance():
    i = 400 * 0.5 * 1000 / (3 ** 0.5 * 400)
    rows = [tx_metrics(0.5)] * 3 + [tx_metrics(0.5, (i * 1.4, i * 0.8, i))] * 3
    events = run(TX, rows)
    assert [(e.type, e.state) for e in events] == [("phase_unbalance", "firing")]
    assert events[0].evidence["unbalance"] > 0.2
    # the same shares at almost no load are not judged
    light = [tx_metrics(0.02, (0.02 * 577 * 1.4, 0.02 * 577 * 0.8, 0.02 * 577))] * 6
    assert run(TX, light) == []


def test_equipment_running_outside_its_shift():
    # 00:00-03:00 UTC, before the 06-14 shift: off, then running from 01:00
    rows = [{"kw": 0.0, "ambient_c": 20.0}] * 4 + [{"kw": 20.0, "ambient_c": 20.0}] * 8
    events = run(MOTOR, rows)
    assert [(e.type, e.state) for e in events] == [("off_shift_running", "firing")]
    assert events[0].customer_id == "ind-1"
    assert events[0].evidence["hours_outside_shift"] > 0
    # the same load inside the shift (from 07:00) is what it is for
    assert run(MOTOR, [{"kw": 20.0, "ambient_c": 20.0}] * 8, start=28) == []


def test_inverter_trip_by_status_and_by_silence_in_sunshine():
    sunny = {"kw": 35.0, "irradiance_w_m2": 800.0}
    tripped = {"kw": 0.0, "irradiance_w_m2": 800.0}
    by_status = run(PV, [sunny, sunny, tripped], status={2: ("trip",)})
    assert [(e.type, e.state) for e in by_status] == [("inverter_trip", "firing")]
    silent = run(PV, [sunny, tripped, tripped])
    assert [(e.type, e.state) for e in silent] == [("inverter_trip", "firing")]
    night = run(PV, [{"kw": 0.0, "irradiance_w_m2": 0.0}] * 6)
    assert night == []


def test_stuck_temperature_sensor_while_the_load_moves():
    rows = []
    for k in range(12):
        m = tx_metrics(0.4 + 0.03 * k)
        m["oil_temp_c"] = 40.0 if k >= 2 else 39.0 + k * 0.3
        m["winding_temp_c"] = 45.0 + k
        rows.append(m)
    events = run(TX, rows)
    assert [(e.type, e.state) for e in events] == [("sensor_fault", "firing")]
    assert events[0].evidence["sensor"] == "oil_temp_c"
    assert events[0].evidence["mode"] == "stuck"


def test_overheating_and_drift_against_the_learned_thermal_model():
    """Two weeks of a normal transformer teach the kind's model; then both sensors above it is
    overheating, one sensor alone is a sensor fault."""
    import math

    model = KindModel("transformer")
    state = DeviceState("tx-1")

    def day(k0: int, extra_oil: float = 0.0, extra_wdg: float = 0.0, slope: float = 0.0
            ) -> list[dict[str, float]]:
        rows = []
        rise = None
        for k in range(k0, k0 + 96):
            load = 0.45 + 0.25 * math.sin(2 * math.pi * k / 96)
            ult = oil_rise_ultimate(load)
            rise = ult if rise is None else rise + (ult - rise) * (1 - math.exp(-15 / 180))
            m = tx_metrics(load)
            m["ambient_c"] = 12.0 + 4 * math.sin(2 * math.pi * (k - 30) / 96)
            drift = slope * (k - k0) / 4
            m["oil_temp_c"] = round(m["ambient_c"] + rise + extra_oil + drift, 1)
            m["winding_temp_c"] = round(m["oil_temp_c"] - drift + 23 * load ** 1.6 + extra_wdg,
                                        1)
            rows.append(m)
        return rows

    normal = [r for d in range(10) for r in day(d * 96)]
    assert run(TX, normal, state=state, model=model) == []
    hot = run(TX, day(960, extra_oil=12.0, extra_wdg=12.0), state=state, model=model,
              start=960)
    assert ("device_overheating", "firing") in [(e.type, e.state) for e in hot]
    assert "sensor_fault" not in {e.type for e in hot}

    state2 = DeviceState("tx-1")
    run(TX, normal, state=state2, model=model)
    drift = run(TX, day(960, slope=2.0), state=state2, model=model, start=960)
    fired = [(e.type, e.evidence.get("sensor")) for e in drift if e.state == "firing"]
    assert fired[0] == ("sensor_fault", "oil_temp_c")
    assert "device_overheating" not in {e.type for e in drift}


def test_late_and_duplicate_telemetry_is_ignored():
    state, model = DeviceState("tx-1"), KindModel("transformer")
    run(TX, [tx_metrics(0.5)] * 3, state=state, model=model)
    assert run(TX, [tx_metrics(1.5)] * 3, state=state, model=model) == []  # same times again
    assert state.n == 3


metric_names = st.sampled_from(["kw", "kva", "ambient_c", "oil_temp_c", "winding_temp_c",
                                "current_a", "current_b", "current_c", "irradiance_w_m2",
                                "flow_m3min", "cooling_kw", "bearing_temp_c", "running"])
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([TX, MOTOR, PV]),
       st.lists(st.dictionaries(metric_names, finite, min_size=1, max_size=8), min_size=1,
                max_size=30))
def test_any_finite_telemetry_gives_valid_events_and_never_raises(dev, rows):
    events = run(dev, rows, model=KindModel(dev.kind.value),
                 state=DeviceState(dev.id))
    for e in events:
        assert e.type in DEVICE_EVENT_TYPES and e.meter_id == dev.id

