"""Each injected anomaly changes the data the way its label says, and only inside the labelled
interval: a run with the anomaly is compared reading by reading with the same fleet and seed
without it (the random draws do not depend on the anomaly plan)."""

from __future__ import annotations

from datetime import datetime

import pytest

from gridwatch.simulators import ANOMALY_SHAPES, Label, Simulation


@pytest.fixture(scope="module")
def baseline(make, collect):
    sim = Simulation(make())
    assert sim.labels == []
    return collect(sim)


def _k(sim: Simulation, ts: datetime) -> int:
    return int((ts - sim.fleet.start) / sim.fleet.step)


def _ids(sim: Simulation, label: Label) -> list[int]:
    names = label.meters or (label.meter_id,)
    by_id = {m.meter_id: m.index for m in sim.meters}
    return [by_id[n] for n in names]


def _check_inside(shape: str, label: Label, sim: Simulation, i: int, k0: int, k1: int,
                  rows: dict, base: dict) -> None:
    p = label.params
    dt_h = sim.fleet.interval_min / 60
    m = sim.meters[i]
    lo_v, hi_v = sim.fleet.voltage.band
    for k in range(k0, k1):
        a, b = rows.get((k, i)), base[(k, i)]
        if shape in ("outage", "feeder_outage"):
            if k == k0:  # the last gasp
                assert a is not None and a["status"] == ["power_fail"]
                assert a["kw"] == 0 and set(a["voltage"]) == {0.0}
                assert a["kwh"] == rows[(k0 - 1, i)]["kwh"]
            else:
                assert a is None
            continue
        if shape == "comm_loss":
            assert a is None
            continue
        assert a is not None
        if shape in ("spike", "level_shift"):
            # up by the factor (a spike from at least the mean), but short of the capacity
            assert a["kw"] > b["kw"]
            assert a["kw"] / a["pf"] < 0.85 * m.contracted_kva
            if not m.has_export:  # (with PV the factor applies to the load before PV)
                floor = m.annual_kwh / 8760 if shape == "spike" else 0.0
                cap = 0.8 * m.contracted_kva * m.pf_full
                want = min(max(b["kw"], floor) * p["factor"], max(b["kw"], cap))
                assert a["kw"] == pytest.approx(want, abs=0.004)
        elif shape == "drop":
            assert a["kw"] < b["kw"]
        elif shape == "possible_theft":
            assert a["kw"] == pytest.approx(b["kw"] * p["factor"], abs=0.0011)
        elif shape == "tamper":
            assert a["kw"] == pytest.approx(-abs(b["kw"]), abs=0.0011)
            assert a.get("status") == (["reverse_flow"] if p["status_flag"] else None)
            assert a["export_kwh"] > rows[(k0 - 1, i)].get("export_kwh", 0.0) or b["kw"] == 0
        elif shape == "register_frozen":
            assert a["kw"] == b["kw"]
            assert a["kwh"] == rows[(k0 - 1, i)]["kwh"]
        elif shape == "voltage_sag":
            for va, vb in zip(a["voltage"], b["voltage"], strict=True):
                assert va == pytest.approx(vb * p["factor"], abs=0.15)
                assert va < lo_v * m.nominal_voltage_v
        elif shape == "voltage_swell":
            for va, vb in zip(a["voltage"], b["voltage"], strict=True):
                assert va == pytest.approx(vb * p["factor"], abs=0.15)
                assert va > hi_v * m.nominal_voltage_v
        elif shape == "low_power_factor":
            assert a["pf"] == p["pf"] < sim.fleet.power_factor.band[0]
            assert a["current"][0] > b["current"][0] or b["kw"] == 0
        elif shape == "over_capacity_risk":
            assert a["kw"] >= b["kw"]
        elif shape == "clock_drift":
            lag = (datetime.fromisoformat(b["ts"]) - datetime.fromisoformat(a["ts"]))
            assert lag.total_seconds() == round(p["lag_s_per_hour"] * (k - k0 + 1) * dt_h)
            assert {**a, "ts": b["ts"]} == b
        if shape not in ("tamper", "register_frozen", "possible_theft"):
            # the register integrates the (changed) power
            prev = rows[(k - 1, i)]
            assert a["kwh"] - prev["kwh"] == pytest.approx(max(a["kw"], 0) * dt_h, abs=0.0011)
    if shape == "over_capacity_risk":
        last = rows[(k1 - 1, i)]
        apparent = last["kw"] / last["pf"]
        assert apparent >= 0.9 * p["peak_of_contracted"] * m.contracted_kva


@pytest.mark.parametrize("shape", ANOMALY_SHAPES)
def test_anomaly_changes_only_its_labelled_interval(shape: str, make, collect,
                                                    baseline) -> None:
    fleet = make(anomalies={"warmup": "1d", "rate_per_meter_day": 0, "counts": {shape: 3}})
    sim = Simulation(fleet)
    labels = [lb for lb in sim.labels if lb.shape == shape]
    assert len(labels) == len(sim.labels) >= (1 if shape == "feeder_outage" else 2)
    rows = collect(sim)
    inside: dict[int, list[tuple[int, int]]] = {}
    for label in labels:
        assert label.start >= fleet.start + fleet.anomalies.warmup
        k0, k1 = _k(sim, label.start), _k(sim, label.end)
        assert 0 < k0 < k1 <= fleet.n_intervals
        for i in _ids(sim, label):
            for b0, b1 in inside.get(i, []):
                assert k1 <= b0 or b1 <= k0, "two anomalies on one meter at once"
            inside.setdefault(i, []).append((k0, k1))
            _check_inside(shape, label, sim, i, k0, k1, rows, base=baseline)
    if shape == "feeder_outage":
        for label in labels:
            cell_meters = {m.index for m in sim.meters if m.grid_cell == label.grid_cell}
            assert set(_ids(sim, label)) == cell_meters and len(cell_meters) > 1

    # Outside the labelled intervals nothing differs, except that registers keep the offset an
    # anomaly left (compared by increment) and the first reading after an outage says so.
    changed_meters = set()
    def within(i: int, k: int) -> bool:
        return any(k0 <= k < k1 for k0, k1 in inside.get(i, []))

    for (k, i), b in baseline.items():
        if within(i, k):
            continue
        a = rows[(k, i)]
        if a != b:
            changed_meters.add(i)
        skip = {"kwh", "export_kwh"}
        if shape in ("outage", "feeder_outage") and within(i, k - 1):
            assert a["status"] == ["power_restored"]
            skip.add("status")
        assert {x: v for x, v in a.items() if x not in skip} == \
            {x: v for x, v in b.items() if x not in skip}, (shape, k, i)
        prev_a, prev_b = rows.get((k - 1, i)), baseline.get((k - 1, i))
        if prev_a and prev_b and not within(i, k - 1):
            assert a["kwh"] - prev_a["kwh"] == pytest.approx(b["kwh"] - prev_b["kwh"],
                                                             abs=0.0021)
    assert changed_meters <= set(inside)
    assert len(rows) <= len(baseline)
