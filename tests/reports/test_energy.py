"""Golden numbers of the energy report for a small fixture day, computed by hand, and the
time-of-use schedule shipped for Jiangsu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridwatch._schemas import Reading
from gridwatch.reports import TariffError, energy_summary, load_tariff, pf_adjustment

# Local (Asia/Shanghai) hour -> kW: valley 0-8 at 100, peak 8-11 and 17-22 at 300, flat at 200.
KW = [100] * 8 + [300] * 3 + [200] * 6 + [300] * 5 + [200] * 2


def day(month: int = 4, pf: float = 0.8) -> list[Reading]:
    local_midnight_utc = datetime(2024, month, 10, tzinfo=UTC) - timedelta(hours=8)
    return [Reading(meter_id="m-1", ts=local_midnight_utc + timedelta(hours=h + 1), kw=kw,
                    pf=pf, interval_s=3600) for h, kw in enumerate(KW)]


def test_golden_day():
    tariff = load_tariff("cn-jiangsu")
    s = energy_summary(day(), tariff, contracted_kva=400)
    # by hand: valley 8 h × 100; peak 8 h × 300; flat 8 h × 200
    assert s.kwh_by_period == {"valley": 800, "peak": 2400, "flat": 1600}
    assert s.kwh == 4800
    # prices: flat 0.65, peak 1.6 × 0.65 = 1.04, valley 0.4 × 0.65 = 0.26 CNY/kWh
    assert s.energy_cost == pytest.approx(2400 * 1.04 + 1600 * 0.65 + 800 * 0.26)  # 3744
    assert s.max_demand_kw == 300
    assert s.load_factor == pytest.approx(200 / 300)
    assert s.demand_of_contracted == pytest.approx(0.75)
    # power factor 0.8 is ten steps below 0.90: +5 % of the energy cost
    assert s.power_factor == pytest.approx(0.8)
    assert s.pf_adjustment_share == pytest.approx(0.05)
    assert s.pf_adjustment_cost == pytest.approx(187.2)
    # 10 % of the peak energy to the valley: 240 kWh × (1.04 − 0.26)
    assert s.shift_kwh == pytest.approx(240)
    assert s.shift_saving == pytest.approx(187.2)
    assert any("kvar" in a for a in s.advice)


def test_summer_has_a_sharp_peak():
    s = energy_summary(day(month=7, pf=0.95), load_tariff("cn-jiangsu"))
    # 14-15 (flat hours, 200 kW) and 20-21 (peak hours, 300 kW) become sharp
    assert s.kwh_by_period["sharp"] == 500
    assert s.kwh_by_period["peak"] == 2100 and s.kwh_by_period["flat"] == 1400
    assert s.pf_adjustment_share == pytest.approx(-0.0075)


@pytest.mark.parametrize(("pf", "share"), [
    (1.0, -0.0075), (0.95, -0.0075), (0.92, -0.003), (0.90, 0.0), (0.89, 0.005),
    (0.80, 0.05), (0.70, 0.10), (0.69, 0.11), (0.65, 0.15), (0.64, 0.17), (0.60, 0.25),
])
def test_power_factor_adjustment_table(pf, share):
    assert pf_adjustment(pf) == pytest.approx(share)


def test_a_tariff_with_a_gap_is_refused(tmp_path):
    bad = tmp_path / "gap.yaml"
    bad.write_text("region: x\nflat_price_per_kwh: 1\nmultipliers: {flat: 1}\n"
                   "periods: [{name: flat, start: '00:00', end: '23:00'}]\n", encoding="utf-8")
    with pytest.raises(TariffError, match="23:00 is in no period"):
        load_tariff(bad)
    with pytest.raises(TariffError, match="cannot read"):
        load_tariff("no-such-region")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)))
def test_every_moment_has_a_priced_period(ts):
    tariff = load_tariff("cn-jiangsu")
    period = tariff.period_of(ts)
    assert period in tariff.multipliers and tariff.price(period) > 0


@given(st.floats(min_value=0.3, max_value=1.0), st.floats(min_value=0.3, max_value=1.0))
def test_power_factor_adjustment_never_rewards_a_worse_power_factor(a, b):
    lo, hi = sorted((round(a, 2), round(b, 2)))
    assert pf_adjustment(lo) >= pf_adjustment(hi)
    assert -0.0075 <= pf_adjustment(hi) <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 23), st.floats(0, 5000), st.floats(0.5, 1.0)),
                min_size=1, max_size=48))
def test_energy_by_period_adds_up(rows):
    tariff = load_tariff("cn-jiangsu")
    readings = [Reading(meter_id="m", ts=datetime(2024, 4, 10, h, tzinfo=UTC) + timedelta(
        minutes=15 * i), kw=kw, pf=pf, interval_s=900) for i, (h, kw, pf) in enumerate(rows)]
    s = energy_summary(readings, tariff, contracted_kva=1000)
    assert sum(s.kwh_by_period.values()) == pytest.approx(s.kwh)
    assert s.energy_cost == pytest.approx(sum(s.cost_by_period.values()))
    assert s.max_demand_kw == max(kw for _, kw, _ in rows)
    if s.load_factor is not None:
        assert 0 <= s.load_factor <= 1 + 1e-9
