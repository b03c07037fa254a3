"""Per-customer features: the time-of-use schedule, the online rings against a plain
recomputation from every profile, alerts by type, and the compact state."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from _tags_helpers import TARIFF, profile
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch._schemas import Event, Severity
from gridwatch.models._meter import DailyProfile
from gridwatch.tags._features import (
    CustomerFeatures,
    FeatureTable,
    ProfileBatch,
    month_no,
    scalar_feature,
    window_feature,
)
from gridwatch.tags._tariff import TariffError, TouSchedule

TOU = TouSchedule.load(TARIFF)


def test_guangdong_schedule_matches_its_source():
    # 粤发改价格〔2021〕331号: valley 0-8, peak 10-12 and 14-19, critical peak 11-12 and 15-17 in
    # July to September, flat otherwise
    assert [TOU.period(4, h) for h in range(24)] == (
        ["valley"] * 8 + ["flat"] * 2 + ["peak"] * 2 + ["flat"] * 2 + ["peak"] * 5
        + ["flat"] * 5)
    assert [TOU.period(8, h) for h in (10, 11, 14, 15, 16, 17)] == [
        "peak", "sharp", "peak", "sharp", "sharp", "peak"]
    assert TOU.hours("valley", 1) == 8 and TOU.hours("sharp", 1) == 0


def test_schedule_errors_name_the_problem():
    with pytest.raises(TariffError, match="hour 8 is both valley and peak"):
        TouSchedule.from_dict({"periods": {"peak": ["8-12"], "valley": ["0-10"]}})
    with pytest.raises(TariffError, match="'25-3'"):
        TouSchedule.from_dict({"periods": {"peak": ["25-3"]}})
    with pytest.raises(TariffError, match="unknown period 'shoulder'"):
        TouSchedule.from_dict({"periods": {"shoulder": ["1-2"]}})


def test_tariff_shares_of_a_known_day():
    curve = [1.0] * 24
    curve[2] = 5.0  # a valley hour
    curve[11] = 3.0  # a peak hour (April: no critical peak)
    f = CustomerFeatures()
    f.update(profile("c1", date(2024, 4, 10), curve), TOU)
    total = sum(curve)
    day = date(2024, 4, 10)
    assert f.value("kwh_per_day", day, 1) == pytest.approx(total)
    assert f.value("valley_share", day, 1) == pytest.approx((8 - 1 + 5) / total)
    assert f.value("peak_share", day, 1) == pytest.approx((7 - 1 + 3) / total)
    assert f.value("flat_share", day, 1) == pytest.approx(9 / total)
    assert f.value("night_share", day, 1) == pytest.approx((6 - 1 + 5) / total)
    # mean kW in peak hours over mean kW in valley hours
    assert f.value("peak_valley_ratio", day, 1) == pytest.approx((9 / 7) / (12 / 8))


def test_export_is_counted_apart_from_drawn_energy():
    curve = [0.5] * 24
    for h in range(10, 15):
        curve[h] = -2.0
    f = CustomerFeatures()
    f.update(profile("c1", date(2024, 5, 6), curve), TOU)
    d = date(2024, 5, 6)
    assert f.value("export_per_day", d, 1) == pytest.approx(10.0)
    assert f.value("kwh_per_day", d, 1) == pytest.approx(0.5 * 19)
    assert f.value("export_share", d, 1) == pytest.approx(10 / (10 + 9.5))


def test_two_meters_of_one_customer_add_up_and_count_one_day():
    t = FeatureTable(TOU)
    d = date(2024, 4, 10)
    t.observe([profile("c1", d, [1.0] * 24, meter="m1"),
               profile("c1", d, [2.0] * 24, meter="m2")])
    assert window_feature(t.state, "kwh_per_day", "avg", d, 1)[0] == pytest.approx(72.0)
    assert window_feature(t.state, "days", "avg", d, 1)[0] == 1
    assert scalar_feature(t.state, "days_seen", d)[0] == 1


def test_alerts_by_type_in_the_window():
    f = FeatureTable(TOU)
    onset = datetime(2024, 4, 10, 3, tzinfo=UTC)

    def ev(t: str, when: datetime = onset, state: str = "firing") -> Event:
        return Event(meter_id="m1", customer_id="c1", type=t, severity=Severity.WARNING,
                     score=1.0, onset=when, raised_at=when, state=state, summary="x")

    n = f.add_events([ev("outage"), ev("outage"), ev("voltage_sag"),
                      ev("outage", state="resolved"),  # a resolution is not a new alert
                      ev("outage", onset - timedelta(days=200))])
    assert n == 4
    from gridwatch.tags._features import alert_count

    day = date(2024, 4, 20)
    assert alert_count(f.state, "outage", day, 90)[0] == 2
    assert alert_count(f.state, None, day, 90)[0] == 3
    # verdicts from the router's transitions, apart from the alert counts
    from gridwatch._schemas import AlertTransition

    def tr(state: str, by: str) -> AlertTransition:
        return AlertTransition(fingerprint="f", meter_id="m1", type="outage",
                               severity=Severity.WARNING, state=state, at=onset, by=by,
                               customer_id="c1")

    assert f.add_transitions([tr("acknowledged", "M1"), tr("resolved", "M1"),
                              tr("resolved", "gridwatch"), tr("firing", "gridwatch")]) == 2
    assert alert_count(f.state, "acknowledged", day, 90)[0] == 1
    assert alert_count(f.state, "closed_by_hand", day, 90)[0] == 1
    assert alert_count(f.state, None, day, 90)[0] == 3


def test_state_is_compact_and_round_trips():
    f = CustomerFeatures()
    for i in range(40):
        f.update(profile("c1", date(2024, 3, 1) + timedelta(days=i), [1.0 + i % 3] * 24), TOU)
    data = f.to_bytes()
    assert len(data) < 2048
    g = CustomerFeatures.from_bytes(data)
    d = date(2024, 4, 9)
    for name in ("kwh_per_day", "valley_share", "volatility", "load_factor"):
        assert g.value(name, d, 30) == pytest.approx(f.value(name, d, 30))
    with pytest.raises(ValueError):
        CustomerFeatures.from_bytes(b"\0" * 12)


def test_growth_month_on_month_and_year_on_year():
    f = CustomerFeatures()
    start = date(2023, 3, 1)
    for i in range(400):
        d = start + timedelta(days=i)
        level = 10.0 if d < date(2024, 3, 1) else 13.0
        f.update(profile("c1", d, [level / 24] * 24), TOU)
    today = date(2024, 4, 4)  # last full month March 2024 (13/day) vs February (10/day)
    assert f.value("mom_growth", today) == pytest.approx(0.3, abs=1e-4)
    assert f.value("yoy_growth", today) == pytest.approx(0.3, abs=1e-4)
    # May 2023 to March 2024; April 2024 has only 3 days so far
    assert f.value("months_seen", today) == 11


# ------------------------------------------------------------------ property: rings vs recompute
def _month_span(today: date, days: float) -> tuple[int, int]:
    k = max(1, round(days / 30.4))
    cur = today.year * 12 + today.month - 1
    return cur - k + 1 - (1 if today.day < 15 else 0), cur


def _reference(days_seen: list[tuple[date, list[float]]], today: date, window: float
               ) -> tuple[float, float, float, int]:
    """kWh/day, valley share, peak kW and day count over the window, from every profile."""
    if window <= 7:
        sel = [(d, c) for d, c in days_seen if today - timedelta(days=window) < d <= today]
    else:
        first, last = _month_span(today, window)
        sel = [(d, c) for d, c in days_seen if first <= month_no(d) <= last]
    if not sel:
        return math.nan, math.nan, math.nan, 0
    kwh = sum(sum(c) for _, c in sel)
    valley = sum(sum(x for h, x in enumerate(c) if h < 8) for _, c in sel)
    peak = max(max(c) for _, c in sel)
    return kwh / len(sel), valley / kwh if kwh else math.nan, peak, len(sel)


@given(st.lists(st.tuples(st.integers(1, 20), st.lists(st.floats(0.0, 5.0), min_size=24,
                                                      max_size=24)),
                min_size=1, max_size=40),
       st.sampled_from([1, 3, 7, 30, 90, 180, 365]))
@settings(max_examples=120, deadline=None)
def test_windows_equal_recomputation_from_every_profile(steps, window):
    f = CustomerFeatures()
    d = date(2023, 6, 1)
    seen: list[tuple[date, list[float]]] = []
    for gap, curve in steps:
        d = d + timedelta(days=gap)
        c32 = [float(np.float32(x)) for x in curve]
        f.update(profile("c1", d, c32), TOU)
        seen.append((d, c32))
    for today in (d, d + timedelta(days=3)):
        kwh, valley, peak, n = _reference(seen, today, window)
        got_days = f.value("days", today, window)
        assert got_days == n
        if n == 0:
            assert math.isnan(f.value("kwh_per_day", today, window))
            continue
        assert f.value("kwh_per_day", today, window) == pytest.approx(kwh, rel=1e-4, abs=1e-4)
        assert f.value("peak_kw", today, window) == pytest.approx(peak, rel=1e-5, abs=1e-5)
        v = f.value("valley_share", today, window)
        if math.isnan(valley):
            assert math.isnan(v)
        else:
            assert v == pytest.approx(valley, rel=1e-4, abs=1e-4)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30)), min_size=1, max_size=60))
@settings(max_examples=60, deadline=None)
def test_table_rows_are_independent_of_batching(items):
    """Feeding profiles one by one or as one batch per day gives the same state."""
    base = date(2024, 1, 1)
    profs = [profile(f"c{c}", base + timedelta(days=d), [1.0 + c] * 24) for c, d in items]
    one = FeatureTable(TOU)
    for p in sorted(profs, key=lambda p: p.day):
        one.observe([p])
    batched = FeatureTable(TOU)
    by_day: dict[datetime, list[DailyProfile]] = {}
    for p in profs:
        by_day.setdefault(p.day, []).append(p)
    for day in sorted(by_day):
        batched.observe(by_day[day])
    ids = sorted(one.ids)
    np.testing.assert_allclose(one.subset(ids), batched.subset(ids), rtol=1e-6)


def test_profile_batch_reads_daily_profiles():
    p = profile("c1", date(2024, 4, 10), [2.0] * 24)
    b = ProfileBatch.of([p])
    assert b.day[0] == date(2024, 4, 10).toordinal()
    assert b.curve.shape == (1, 24)
