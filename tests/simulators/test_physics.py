"""Physics: registers integrate power, voltage and power factor stay in their bands, and each
class follows its standard load profile (BDEW, computed here directly with demandlib)."""

from __future__ import annotations

import warnings
from datetime import timedelta
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pytest

from gridwatch import CustomerClass
from gridwatch.simulators import Simulation


@pytest.fixture(scope="module")
def clean_run(request: pytest.FixtureRequest):
    make = request.getfixturevalue("make")
    collect = request.getfixturevalue("collect")
    sim = Simulation(make())
    return sim, collect(sim)


def test_register_increments_equal_integrated_power(clean_run) -> None:
    sim, rows = clean_run
    dt_h = sim.fleet.interval_min / 60
    checked = 0
    for (k, i), d in rows.items():
        prev = rows.get((k - 1, i))
        if prev is None:
            continue
        imported = d["kwh"] - prev["kwh"]
        assert imported == pytest.approx(max(d["kw"], 0) * dt_h, abs=0.0011), (k, d, prev)
        if "export_kwh" in d:
            exported = d["export_kwh"] - prev.get("export_kwh", 0.0)
            assert exported == pytest.approx(max(-d["kw"], 0) * dt_h, abs=0.0011)
        checked += 1
    assert checked > 0.95 * len(rows)
    assert any(d["kw"] < 0 for d in rows.values()), "no PV meter exported at midday"


def test_voltage_and_power_factor_stay_in_their_bands(clean_run) -> None:
    sim, rows = clean_run
    lo_v, hi_v = sim.fleet.voltage.band
    lo_pf, hi_pf = sim.fleet.power_factor.band
    for (_, i), d in rows.items():
        m = sim.meters[i]
        assert len(d["voltage"]) == len(d["current"]) == m.phases
        for v in d["voltage"]:
            assert lo_v * m.nominal_voltage_v <= v <= hi_v * m.nominal_voltage_v
        assert lo_pf <= d["pf"] <= hi_pf
        # current consistent with power: I = |P| / (phases · V · pf)
        expected = abs(d["kw"]) * 1000 / m.phases / (d["voltage"][0] * d["pf"])
        assert d["current"][0] == pytest.approx(expected, rel=0.02, abs=0.02)


def _bdew(year: int, country: str = "DE") -> dict[str, np.ndarray]:
    from demandlib import bdew

    with warnings.catch_warnings():
        slp = bdew.ElecSlp(year, holidays=dict(holidays.country_holidays(country, years=year)))
        frame = slp.get_profiles()
    return {c: frame[c].to_numpy() * len(frame) for c in frame.columns}


@pytest.mark.parametrize("klass, where", [
    (CustomerClass.RESIDENTIAL, {}),
    (CustomerClass.COMMERCIAL, {}),
    (CustomerClass.AGRICULTURAL, {}),
    # local time and holidays follow the fleet: 1 October is a public holiday in China
    (CustomerClass.RESIDENTIAL, {"country": "CN", "timezone": "Asia/Shanghai",
                                 "start": "2024-09-30T16:00:00Z"}),
])
def test_daily_shape_follows_the_bdew_profile(make, klass: CustomerClass, where: dict) -> None:
    customers = {klass.value: {"count": 150, "pv_share": 0.0}}
    fleet = make(customers=customers, duration="3d", **where)  # three days
    sim = Simulation(fleet)
    profiles = _bdew(2024, fleet.country)
    tz = ZoneInfo(fleet.timezone)
    origin = fleet.start.astimezone(tz).replace(tzinfo=None, month=1, day=1, hour=0)
    actual, expected = [], []
    for block in sim.blocks():
        local = (block.ts - fleet.step).astimezone(tz).replace(tzinfo=None)
        slot = int((local - origin) / timedelta(minutes=15))
        actual.append(block.kw[block.present].sum())
        expected.append(sum(m.annual_kwh / 8760 * profiles[m.profile][slot]
                            for m in sim.meters))
    r = np.corrcoef(actual, expected)[0, 1]
    assert r > 0.9, f"{klass}: correlation with BDEW {r:.3f}"
    # and the level is right: energy within 15 % of the profile's
    assert sum(actual) == pytest.approx(sum(expected), rel=0.15)


def test_industrial_shifts(make) -> None:
    fleet = make(customers={"industrial": {"count": 40, "shifts": {1: 1.0},
                                           "weekend_share": 0.0}},
                 start="2024-03-08T00:00:00Z", duration="3d")  # Friday to Sunday
    sim = Simulation(fleet)
    tz = ZoneInfo(fleet.timezone)
    by_time = {}
    for block in sim.blocks():
        local = (block.ts - fleet.step).astimezone(tz)
        by_time[(local.weekday(), local.hour)] = block.kw.sum()
    friday_day, friday_night = by_time[(4, 10)], by_time[(4, 2)]
    sunday_day = by_time[(6, 10)]
    assert friday_day > 2.5 * friday_night
    assert sunday_day < 0.5 * friday_day


def test_normal_load_stays_below_the_contracted_capacity(clean_run) -> None:
    sim, rows = clean_run
    worst = max(abs(d["kw"]) / d["pf"] / sim.meters[i].contracted_kva
                for (_, i), d in rows.items())
    assert 0.2 < worst < 0.9  # so an over-capacity label stands out
