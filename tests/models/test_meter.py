"""Each per-meter detector on small synthetic series with known answers."""

from __future__ import annotations

import math
import pickle
from datetime import timedelta

import numpy as np
from _models_helpers import STEP, T0, WEEK, of_type, reading, residential, run, series
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gridwatch import MeterMeta, MeterStatus
from gridwatch.models import EVENT_TYPES, Calendar, DetectionSettings, MeterState


def industrial(i, ts, rng):
    return 50.0 + 20.0 * (8 <= ts.hour < 18) + rng.normal(0, 1.0)


IND = MeterMeta(meter_id="m1", customer_class="industrial")


def test_spike_raised_with_onset_and_readable_evidence():
    """On an industrial feeder one interval far above the band is news (class policy)."""
    spike_at = 3 * WEEK + 41
    rs = series(3 * WEEK + 96, lambda i, ts, rng: industrial(i, ts, rng)
                    + (250.0 if i == spike_at else 0.0))
    _, events = run(rs, IND)
    fired = of_type(events, "abnormal_consumption")
    assert len(fired) == 1
    ev = fired[0]
    assert ev.onset == ev.raised_at == rs[spike_at].ts
    assert ev.evidence["kind"] == "spike"
    assert ev.evidence["observed_kw"] > ev.evidence["expected_kw"] + 200
    assert ev.evidence["energy_kwh"] > 50
    assert "time-of-week" in ev.evidence["baseline"]
    resolved = of_type(events, "abnormal_consumption", "resolved")
    assert resolved and resolved[0].raised_at == rs[spike_at + 4].ts  # an hour well inside


def test_household_bursts_are_not_news():
    """Regression: real household load jumps several-fold for one interval when a kettle or an
    oven runs (2.66 kW where 0.24 kW is usual); that raised a z >= 6 'spike' every day."""
    def bursty(i, ts, rng):
        base = 0.24 + 0.6 * (17 <= ts.hour < 21) * rng.uniform(0, 1)
        return base + (2.4 if rng.uniform() < 0.03 else 0.0)

    _, events = run(series(6 * WEEK, bursty))
    assert of_type(events, "abnormal_consumption") == []
    # the same burst on an industrial feeder of the same size is news
    _, ind = run(series(6 * WEEK, bursty), MeterMeta(
        meter_id="m1", customer_class="industrial"), settings=DetectionSettings(
        policy={"industrial": DetectionSettings().policy["industrial"].model_copy(
            update={"high_min_kwh": 0.5})}))
    assert of_type(ind, "abnormal_consumption")


def test_first_day_is_judged():
    """Regression (blind start): a 5x load for two hours on a new meter's first day, and on a
    Saturday of its second week, is raised; nothing else is."""
    for day in (0, 12):  # 2024-01-01 is a Monday: day 12 is a Saturday
        start = day * 96 + 14 * 4  # 14:00

        def fault(i, ts, rng, start=start):
            base = residential(i, ts, rng)
            return base * 5 if start <= i < start + 8 else base

        rs = series((day + 1) * 96, fault)
        _, events = run(rs)
        fired = of_type(events, "abnormal_consumption")
        assert [e.evidence["kind"] for e in fired] == ["spike"], (day, fired)
        assert "beyond the meter's own record" in fired[0].summary
        assert rs[start].ts <= fired[0].raised_at <= rs[start + 7].ts
        assert fired[0].onset == rs[start].ts
        _, clean = run(series((day + 1) * 96))
        assert clean == []


def test_level_shift_is_one_episode():
    """A load that doubles and stays doubled is one alarm, raised within the day and kept
    open as a daily level shift until the level comes back."""
    start = 3 * WEEK + 10
    end = start + 10 * 96
    rs = series(end + 6 * 96, lambda i, ts, rng: residential(i, ts, rng)
                    * (2.5 if start <= i < end else 1.0))
    _, events = run(rs)
    fired = of_type(events, "abnormal_consumption")
    assert len(fired) == 1, [e.summary for e in fired]
    assert fired[0].onset - rs[start].ts <= timedelta(hours=1)
    assert fired[0].raised_at - rs[start].ts <= timedelta(hours=24)
    resolved = of_type(events, "abnormal_consumption", "resolved")
    assert len(resolved) == 1 and resolved[0].raised_at > rs[end].ts


def test_flagged_points_are_not_learned():
    s = DetectionSettings()
    cal = Calendar()
    rs = series(3 * WEEK, industrial)
    state, _ = run(rs, IND, settings=s)
    nxt = rs[-1].ts + STEP
    slot = cal.slot(nxt.timestamp())
    before = float(state.rec.tow_mu[slot])
    ev = state.update(reading("m1", nxt, 400.0), IND, settings=s, calendar=cal)
    assert [e.type for e in ev] == ["abnormal_consumption"]
    assert float(state.rec.tow_mu[slot]) == before
    state2, _ = run(rs, IND, settings=s)
    state2.update(reading("m1", nxt, 60.0), IND, settings=s, calendar=cal)
    assert int(state2.rec.tow_n[slot]) == int(state.rec.tow_n[slot]) + 1


def commercial(i, ts, rng):
    working = ts.weekday() < 5 and 8 <= ts.hour < 18
    return (10.0 if working else 1.0) + rng.normal(0, 0.1)


SHOP = MeterMeta(meter_id="m1", customer_class="commercial")


def test_weekends_are_not_abnormal_by_themselves():
    _, events = run(series(6 * WEEK, commercial), SHOP)
    assert of_type(events, "abnormal_consumption") == []


def test_holiday_scored_as_sunday_not_abnormal():
    # Christmas and Boxing Day 2024 (GB holidays) are a Wednesday and a Thursday: the shop
    # stays closed, as on a Sunday.
    def closed_on_christmas(i, ts, rng):
        if ts.month == 12 and ts.day in (25, 26):
            return 1.0 + rng.normal(0, 0.1)
        return commercial(i, ts, rng)

    start = T0.replace(month=11, day=4)  # a Monday, seven weeks before
    rs = series(int(7.5 * WEEK), closed_on_christmas, start=start)
    _, plain = run(rs, SHOP, settings=DetectionSettings())
    _, with_holidays = run(rs, SHOP, settings=DetectionSettings(holiday_country="GB"))
    assert of_type(plain, "abnormal_consumption"), "the test must be able to fail"
    assert of_type(with_holidays, "abnormal_consumption") == []


def test_silence_is_comm_loss_then_resolved():
    rs = series(200)
    state, _ = run(rs)
    last = rs[-1].ts
    assert state.on_timer(last + 3 * STEP) == []
    events = state.on_timer(last + 4 * STEP)
    assert [e.type for e in events] == ["comm_loss"]
    assert events[0].onset == last + STEP
    assert state.on_timer(last + 8 * STEP) == []  # raised once
    back = state.update(reading("m1", last + 10 * STEP, 1.0))
    assert [(e.type, e.state) for e in back] == [("comm_loss", "resolved")]


def test_power_fail_then_silence_is_outage_and_zero_load_is_not():
    rs = series(100)
    state, _ = run(rs)
    t = rs[-1].ts + STEP
    assert state.update(reading("m1", t, 0.0, status=["power_fail"])) == []
    ev = state.on_timer(t + STEP)  # a last gasp needs no waiting for missed intervals
    assert [(e.type, e.evidence["kind"], e.onset) for e in ev] == [("outage", "last_gasp", t)]
    assert state.on_timer(t + 10 * STEP) == []  # already firing
    back = state.update(reading("m1", t + 11 * STEP, 1.0))
    assert [(e.type, e.state) for e in back] == [("outage", "resolved")]
    # a meter that keeps reporting zero load is not silent
    zero, events = run(series(300, lambda i, ts, rng: 0.0, meter="z"))
    assert zero.on_timer(T0 + 300 * STEP) == []
    assert not of_type(events, "outage") and not of_type(events, "stuck_reading")


def test_register_frozen_while_power_flows():
    def extra(i, ts):
        return {"kwh": 100.0 + min(i, 50) * 0.5}

    rs = series(60, lambda i, ts, rng: 2.0 + 0.01 * (i % 3), extra=extra)
    _, events = run(rs)
    fired = of_type(events, "register_frozen")
    assert len(fired) == 1
    assert fired[0].onset == rs[51].ts
    assert fired[0].raised_at == rs[51 + 3].ts


def test_stuck_reading():
    s = DetectionSettings(stuck_readings=8)
    rs = series(40, lambda i, ts, rng: 1.234 if 10 <= i < 30 else 1.0 + 0.01 * (i % 4))
    _, events = run(rs, settings=s)
    fired = of_type(events, "stuck_reading")
    assert len(fired) == 1 and fired[0].raised_at == rs[17].ts
    assert of_type(events, "stuck_reading", "resolved")[0].raised_at == rs[30].ts


def test_tamper_register_decrease_and_reverse_flow():
    rs = series(10, lambda i, ts, rng: 1.0 + 0.1 * i, extra=lambda i, ts: {
        "kwh": 50.0 - 5 if i == 5 else 50.0 + i})
    _, events = run(rs)
    fired = of_type(events, "tamper")
    assert len(fired) == 1 and fired[0].evidence["kind"] == "register_decrease"
    rev = series(5, lambda i, ts, rng: -1.5 - 0.1 * i, meter="pv")
    _, no_export = run(rev)
    _, export = run(rev, meta=MeterMeta(meter_id="pv", has_export=True))
    assert of_type(no_export, "tamper")[0].evidence["kind"] == "reverse_flow"
    assert of_type(export, "tamper") == []


def test_clock_drift():
    rs = series(20, lambda i, ts, rng: 1.0 + 0.01 * i)
    shifted = [reading("m1", r.ts + timedelta(seconds=90 if i >= 10 else 0), r.kw)
               for i, r in enumerate(rs)]
    _, events = run(shifted)
    fired = of_type(events, "clock_drift")
    assert len(fired) == 1 and fired[0].evidence["offset_s"] == 90.0
    _, aligned = run(rs)
    assert of_type(aligned, "clock_drift") == []


def test_voltage_limits_single_and_three_phase():
    def v(i, ts):
        return {"voltage": [220.0, 203.0, 196.0, 220.0, 236.0, 237.0, 220.0][i]}

    _, events = run(series(7, lambda i, ts, rng: 1.0 + 0.01 * i, extra=v))
    # 220 V single phase: sag below 198 V (-10%), swell above 235.4 V (+7%)
    assert [e.raised_at for e in of_type(events, "voltage_sag")] == [
        T0 + 2 * STEP]
    assert [e.raised_at for e in of_type(events, "voltage_swell")] == [
        T0 + 4 * STEP]
    three = MeterMeta(meter_id="m1", phases=3)
    _, ev3 = run(series(2, lambda i, ts, rng: 5.0 + i,
                                extra=lambda i, ts: {"voltage": [212.0, 213.0, 212.5]}), three)
    # 230 V three phase: -7% is 213.9 V
    assert of_type(ev3, "voltage_sag")


def test_low_power_factor_and_phase_imbalance():
    _, events = run(series(12, lambda i, ts, rng: 3.0 + 0.1 * i, extra=lambda i, ts: {
        "pf": 0.8 if 1 <= i <= 6 else 0.97}))
    pf = of_type(events, "low_power_factor")
    assert len(pf) == 1 and pf[0].raised_at == T0 + 4 * STEP
    assert pf[0].onset == T0 + STEP
    assert of_type(events, "low_power_factor", "resolved")
    # at light load (under the meter's own average) a low power factor is normal
    def light(i, ts, rng):
        return 3.0 if i < 6 else 0.5

    _, mild = run(series(12, light, extra=lambda i, ts: {"pf": 0.97 if i < 6 else 0.85}))
    assert of_type(mild, "low_power_factor") == []
    _, severe = run(series(12, light, extra=lambda i, ts: {"pf": 0.97 if i < 6 else 0.6}))
    assert of_type(severe, "low_power_factor")
    _, imb = run(series(4, lambda i, ts, rng: 20.0 + i, extra=lambda i, ts: {
        "voltage": [230.0, 231.0, 229.0], "current": [50.0, 10.0, 12.0]}))
    assert of_type(imb, "phase_imbalance")[0].evidence["kind"] == "current"


def test_over_capacity_warned_before_the_crossing():
    meta = MeterMeta(meter_id="m1", contracted_kva=100.0)
    ramp_start = 200

    def ramp(i, ts, rng):
        return 50.0 + max(0, i - ramp_start) * 4.0 + rng.normal(0, 0.5)

    rs = series(240, ramp)
    _, events = run(rs, meta)
    fired = of_type(events, "over_capacity_risk")
    assert fired
    crossing = next(r.ts for r in rs if r.kw >= 100.0)
    assert fired[0].raised_at < crossing
    assert fired[0].evidence["projected_crossing"] is not None
    assert fired[0].evidence["contracted_kva"] == 100.0


def test_possible_theft_on_sustained_drop():
    drop_at = 30 * 96 + 40  # day 30, 10:00

    def drop(i, ts, rng):
        base = residential(i, ts, rng)
        return base * 0.45 if i >= drop_at else base

    rs = series(36 * 96, drop)
    _, events = run(rs, SHOP)  # a shop: judged within the day too
    fired = of_type(events, "possible_theft")
    assert len(fired) == 1
    assert timedelta(0) <= fired[0].onset - rs[drop_at].ts <= timedelta(hours=1)
    assert fired[0].raised_at - fired[0].onset >= timedelta(hours=12)
    assert fired[0].evidence["window_ratio"] < 0.6 and fired[0].evidence["shape_corr"] > 0.5
    # a shop's drop is news within two hours; the theft follows it, and no other drop alarm
    assert [e.evidence["kind"] for e in of_type(events, "abnormal_consumption")] == [
        "sustained_drop"]
    assert of_type(events, "possible_theft", "resolved") == []  # still low: no flapping
    _, normal = run(series(36 * 96), SHOP)
    assert of_type(normal, "possible_theft") == []
    _, home = run(rs)  # a household: on whole days, two of them
    fired = of_type(home, "possible_theft")
    assert len(fired) == 1 and fired[0].evidence["day_ratio"] < 0.6
    assert fired[0].raised_at - rs[drop_at].ts >= timedelta(days=2)


def test_empty_home_is_not_theft():
    """A house left empty drops to its base load and loses its shape: not a bypass."""
    away = 30 * 96

    def empty(i, ts, rng):
        return 0.3 + rng.normal(0, 0.02) if i >= away else residential(i, ts, rng)

    for meta in (None, SHOP):
        _, events = run(series(36 * 96, empty), meta)
        assert of_type(events, "possible_theft") == []


def test_theft_does_not_flap():
    """Regression: a six-day theft gave about 25 fire/resolve pairs of the sustained-drop alarm,
    re-firing with the old onset. Now: one episode per alarm type, resolved once, after."""
    start, end = 28 * 96 + 40, 34 * 96 + 40
    rs = series(40 * 96, lambda i, ts, rng: residential(i, ts, rng)
                    * (0.4 if start <= i < end else 1.0))
    _, events = run(rs)
    for etype in {e.type for e in events}:
        fired = of_type(events, etype)
        onsets = [e.onset for e in fired]
        assert len(onsets) == len(set(onsets)), etype
    assert len(of_type(events, "possible_theft")) == 1
    res = of_type(events, "possible_theft", "resolved")
    assert len(res) == 1 and res[0].raised_at >= rs[end].ts


def test_open_alarm_does_not_hide_a_different_anomaly():
    """Regression: an open alarm covered a later, different anomaly on the same meter."""
    rise, zero = 3 * WEEK + 10 * 4, 3 * WEEK + 16 * 4

    def two(i, ts, rng):
        base = industrial(i, ts, rng)
        if rise <= i < rise + 6 * 4:
            return base * 4
        return 0.0 if zero + 8 <= i < zero + 8 + 16 else base

    rs = series(3 * WEEK + 96, two)
    _, events = run(rs, IND)
    kinds = [(e.state, e.evidence.get("kind")) for e in events
             if e.type == "abnormal_consumption"]
    assert ("firing", "sustained_rise") in kinds or ("firing", "spike") in kinds
    assert ("firing", "zero_consumption") in kinds or ("firing", "sustained_drop") in kinds


def test_state_is_small_and_round_trips():
    """Worst case: a month of history and most conditions firing at once."""
    meta = MeterMeta(meter_id="m1", contracted_kva=10.0, phases=3)
    rs = series(5 * WEEK, extra=lambda i, ts: {"kwh": 1000.0 + i})
    bad = [reading("m1", rs[-1].ts + (i + 1) * STEP + timedelta(seconds=90), 30.0,
                       kwh=5000.0, voltage=[230.0, 180.0, 231.0], current=[60.0, 5.0, 55.0],
                       pf=0.6, status=["cover_open"]) for i in range(20)]
    state, _ = run(rs + bad, meta)
    assert len(state.active) >= 8, state.active
    size = len(pickle.dumps(state))
    assert size <= 4096, size
    assert len(state.to_bytes()) <= 4096
    clone = MeterState.from_bytes(state.to_bytes())
    nxt = reading("m1", bad[-1].ts + STEP, 7.0, kwh=5001.0)
    assert clone.update(nxt, meta) == state.update(nxt, meta)


def test_deterministic():
    rs = series(4 * WEEK, lambda i, ts, rng: industrial(i, ts, rng)
                    + (300.0 if i % 500 == 0 else 0.0))
    a = [e.model_dump() for e in run(rs, IND)[1]]
    b = [e.model_dump() for e in run(rs, IND)[1]]
    assert a and a == b


def test_interval_inferred_from_the_data():
    """Regression: half-hourly data under the default 900 s raised "no reading for 6
    intervals (90 min)"; the interval is now the meter's own."""
    rs = series(200, step=timedelta(minutes=30))
    state, _ = run(rs)
    assert state.interval_s == 1800
    last = rs[-1].ts
    assert state.on_timer(last + timedelta(minutes=90)) == []
    ev = state.on_timer(last + timedelta(hours=2))
    assert [e.type for e in ev] == ["comm_loss"]
    assert ev[0].evidence["expected_interval_s"] == 1800 and "4 intervals" in ev[0].summary
    stated = MeterMeta(meter_id="m1", interval_s=900)  # the registry wins
    st2, _ = run(rs[:10], stated)
    assert st2.interval_s == 900


def test_shanghai_peak_in_the_19h_slot_from_the_registry():
    """A Shanghai fleet's 19:00 peak lands in the 19:00 slot of the local day when the registry
    gives the cell its time zone, whatever the settings say (UTC here)."""
    from datetime import UTC, datetime

    meta = MeterMeta(meter_id="m1", timezone="Asia/Shanghai", holiday_country="CN")

    def peak_at_19_local(i, ts, rng):  # 11:00 UTC is 19:00 in Shanghai
        return 0.3 + (2.0 if ts.hour == 11 else 0.0) + rng.normal(0, 0.02)

    state, _ = run(series(21 * 96, peak_at_19_local), meta)
    curve = state.wd_curve
    assert int(curve.argmax()) == 19
    cal = Calendar("Asia/Shanghai", "CN")
    slot = cal.slot(datetime(2024, 1, 16, 11, 0, tzinfo=UTC).timestamp())  # Tue 19:00 local
    assert slot == 24 + 19 and state.rec.tow_n[slot] > 0


def test_local_time_slots():
    """A Shanghai meter's 19:00 peak lands in the 19:00 slot of its local week."""
    from datetime import UTC, datetime
    cal = Calendar("Asia/Shanghai", "CN")
    t = datetime(2024, 3, 5, 11, 0, tzinfo=UTC).timestamp()  # Tue 19:00 in Shanghai
    assert cal.slot(t) == 1 * 24 + 19
    assert cal.hour(t) == 19


def test_every_event_type_is_known():
    assert len(set(EVENT_TYPES)) == 14


_statuses = st.lists(st.sampled_from([MeterStatus.POWER_FAIL, MeterStatus.COVER_OPEN,
                                      MeterStatus.CLOCK_INVALID]), max_size=1, unique=True)
_step = st.tuples(
    st.floats(-2, 30, allow_nan=False), st.integers(1, 6),
    st.one_of(st.none(), st.floats(150, 260)), st.one_of(st.none(), st.floats(0.5, 1.0)),
    _statuses, st.booleans())


@hsettings(max_examples=60, deadline=None)
@given(st.lists(_step, min_size=1, max_size=120))
def test_events_alternate_firing_and_resolved(steps):
    """Per type, a meter's events alternate firing → resolved → firing ..., resolved events
    keep the onset of their firing, and raised_at never precedes onset."""
    s = DetectionSettings(warmup_h=1, stuck_readings=3)
    cal = Calendar()
    meta = MeterMeta(meter_id="p", contracted_kva=20.0)
    state = MeterState("p")
    t = 1_700_000_100.0
    from datetime import UTC, datetime

    from gridwatch import Reading

    open_: dict[str, object] = {}
    rng = np.random.default_rng(0)
    for kw, gap, volt, pf, status, timer in steps:
        t += 900 * gap
        if timer:
            events = state.on_timer(t, meta, settings=s)
        else:
            r = Reading(meter_id="p", ts=datetime.fromtimestamp(t, UTC), kw=round(kw, 2),
                        voltage=volt, pf=pf, status=tuple(status),
                        kwh=float(rng.integers(0, 3)))
            events = state.update(r, meta, settings=s, calendar=cal)
        for e in events:
            assert e.raised_at >= e.onset
            if e.state == "firing":
                assert e.type not in open_, f"{e.type} fired twice"
                open_[e.type] = e.onset
            else:
                assert open_.pop(e.type) == e.onset
    assert set(open_) == set(state.active)


def test_prosumer_net_load_not_judged_while_exporting():
    """A sunny day doubles a prosumer's usual export: weather, not consumption. A surge at
    night, when it imports, is still judged."""
    meta = MeterMeta(meter_id="pv", has_export=True)
    night = 27 * 96 + 8  # 02:00 of the sunny day

    def pv(i, ts, rng):
        sun = max(0.0, 1 - abs(ts.hour + ts.minute / 60 - 12) / 5)
        gain = 2.0 if i // 96 == 27 else 1.0  # one very sunny day after four weeks
        return (0.8 + rng.normal(0, 0.03) - 3.0 * sun * gain
                + (5.0 if night <= i < night + 8 else 0))

    rs = series(4 * WEEK + 96, pv, meter="pv")
    _, events = run(rs, meta)
    fired = of_type(events, "abnormal_consumption")
    assert [e.evidence["kind"] for e in fired] == ["spike"]
    assert rs[night].ts <= fired[0].raised_at <= rs[night + 7].ts
    assert of_type(events, "tamper") == []


def test_sustained_drop_of_a_skewed_load():
    """A shop whose load falls to a tenth for most of a working day: an episode found by its
    energy, with the onset where the low run began; the same drop for one interval is not."""
    meta = MeterMeta(meter_id="m1", customer_class="commercial")
    start = 3 * WEEK + 9 * 4  # 09:00

    def shop(i, ts, rng):
        base = 0.5 + rng.uniform(0, 0.1) + 8.0 * (8 <= ts.hour < 18) * rng.uniform(0.6, 1.4)
        return base * (0.1 if start <= i < start + 24 else 1.0)

    _, events = run(series(3 * WEEK + 96, shop), meta)
    fired = of_type(events, "abnormal_consumption")
    assert [e.evidence["kind"] for e in fired] == ["sustained_drop"]
    assert fired[0].onset == T0 + start * STEP


def test_tampered_readings_are_not_consumption():
    rs = series(3 * WEEK + 20, lambda i, ts, rng: -1.0 if i >= 3 * WEEK
                    else residential(i, ts, rng))
    _, events = run(rs)
    assert of_type(events, "tamper")
    assert of_type(events, "abnormal_consumption") == []


def test_false_alarm_verdicts_quiet_a_misfiring_meter_but_not_a_real_fault():
    """The closed loop: a household whose pool pump, once a month, runs beyond its record raises
    a spike each time; after its manager calls it a false alarm the next ones stay quiet for
    weeks (the verdict fades), while a real fault (five times the usual) is still raised."""
    pump = [35 * 96 * k + 14 * 4 for k in range(1, 5)]  # 14:00 every 35 days
    fault = 5 * 35 * 96 + 20 * 96 + 12 * 4

    def load(i, ts, rng):
        base = residential(i, ts, rng)
        if any(p <= i < p + 8 for p in pump):
            return base + 1.6  # beyond the 28-day record, for two hours
        return base * 5 if fault <= i < fault + 8 else base

    rs = series(fault + 96, load)
    s = DetectionSettings()
    cal = Calendar()

    def spikes(verdicts: bool) -> list:
        state = MeterState("m1")
        raised = []
        for r in rs:
            for e in state.update(r, settings=s, calendar=cal):
                if e.state == "firing" and e.evidence.get("kind") == "spike":
                    raised.append(e.onset)
                    if verdicts and e.onset < rs[fault].ts:
                        state.verdict(e.type, "spike", "false_alarm", e.raised_at, settings=s)
        return raised

    plain = spikes(verdicts=False)
    assert [rs[p].ts for p in pump] + [rs[fault].ts] == plain
    judged = spikes(verdicts=True)
    assert judged[0] == rs[pump[0]].ts  # raised, and judged a false alarm
    assert rs[pump[1]].ts not in judged and rs[pump[2]].ts not in judged  # quiet after it ...
    assert judged[-1] == rs[fault].ts  # ... and the real fault is still raised


def test_calendar_quarter_cache_is_bounded_and_agrees_with_zoneinfo():
    """The per-calendar cache of quarter hours never grows past its bound, and what it returns
    is what a zoneinfo conversion says (a DST change and a holiday included)."""
    from datetime import UTC, datetime, timedelta

    from gridwatch.models._calendar import _MAX_QUARTERS

    cal = Calendar("Europe/Berlin", "DE")
    start = datetime(2024, 3, 29, tzinfo=UTC)  # Good Friday; DST starts on the 31st
    for i in range(0, 2 * _MAX_QUARTERS, 7):
        ts = start + timedelta(minutes=15 * i)
        loc = ts.astimezone(cal.tz)
        day_type = 6 if cal.is_holiday(loc.date()) else loc.weekday()
        assert cal.info(ts.timestamp()) == (day_type, day_type * 24 + loc.hour,
                                            loc.date().toordinal())
        assert len(cal._q) <= _MAX_QUARTERS
    assert cal.day_type(start.timestamp()) == 6  # the holiday counts as a Sunday


_ANY_F32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ANY_F32, _ANY_F32), min_size=24, max_size=24),
       st.floats(0.0, 1.0))
def test_day_close_arithmetic_is_numpys_own(pairs: list[tuple[float, float]], a: float) -> None:
    """The day's close without numpy's Python wrappers computes what the wrapped calls do:
    a usual curve moved towards the day and saturated as ``np.clip`` saturates it (NaN kept),
    the shape correlation on means as ``ndarray.mean()`` gives them."""
    from gridwatch.models._daily import _learn_curve, _shape_corr

    with np.errstate(all="ignore"):
        usual = np.asarray([u for u, _ in pairs], dtype=np.float32).astype(np.float16)
        curve = np.asarray([c for _, c in pairs], dtype=np.float32)
        want = np.clip(usual + a * (curve - usual), -65_504.0, 65_504.0).astype(np.float16)
        got = usual.copy()
        _learn_curve(got, curve, a)
        assert got.tobytes() == want.tobytes()
        typical = usual.astype(np.float32)
        x, y = curve - curve.mean(), typical - typical.mean()
        den = float(np.sqrt((x * x).sum() * (y * y).sum()))
        corr = float((x * y).sum()) / den if den > 1e-12 else 0.0
        got_corr = _shape_corr(curve, typical)
    assert (math.isnan(corr) and math.isnan(got_corr)) or got_corr == corr


def test_calendar_day_is_its_local_midnight_kept_and_bounded():
    """A day a meter closes: its local midnight, as epoch seconds, whether it is off (judged at
    local noon: a weekend, a holiday) and its midnight in UTC, as zoneinfo gives them across a
    change of daylight saving time; kept for the next meter, within a bound."""
    from datetime import UTC, date, datetime

    from gridwatch.models._calendar import _MAX_DAYS

    cal = Calendar("Europe/Berlin", "DE")
    first = date(2024, 3, 25).toordinal()  # Good Friday the 29th; DST starts on the 31st
    for day_no in range(first, first + 2 * _MAX_DAYS, 3):
        start = datetime.fromordinal(day_no).replace(tzinfo=cal.tz)
        want = (start, start.timestamp(), cal.is_day_off(start.timestamp() + 43_200),
                start.astimezone(UTC))
        assert cal.day(day_no) == want
        assert cal.day(day_no) is cal.day(day_no)  # kept
        assert len(cal._days) <= _MAX_DAYS
    assert cal.day(date(2024, 3, 29).toordinal())[2]  # the holiday is a day off
    assert not cal.day(date(2024, 3, 28).toordinal())[2]
    assert cal.day(date(2024, 3, 31).toordinal())[3] == datetime(2024, 3, 30, 23, tzinfo=UTC)
    assert cal.day(date(2024, 4, 1).toordinal())[3] == datetime(2024, 3, 31, 22, tzinfo=UTC)


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-100_000, 100_000, width=32), st.integers(0, 255),
                          st.floats(-65_504, 65_504, width=16)), min_size=24, max_size=24))
def test_closed_day_curve_is_each_hours_mean_else_the_usual(hours):
    """A closed day's curve is, hour by hour, the mean of its readings, and the usual curve's
    value for an hour without any: the float32 values of ``where(cnt > 0, sum / cnt, NaN)``
    with the NaNs then taken from the usual curve, its energy their sum."""
    from gridwatch.models._daily import _close_day, _rounded

    s = DetectionSettings()
    cal = Calendar(s.timezone, s.holiday_country)
    rec = MeterState("m")
    day = T0.date().toordinal() + 1  # a weekday
    rec.day_no = day
    sums, counts = rec.view("day_sum"), rec.view("day_cnt")
    sums[:] = [h[0] * max(h[1], 1) for h in hours]
    counts[:] = [h[1] for h in hours]
    rec.view("wd_curve")[:] = [h[2] for h in hours]
    if sum(1 for h in hours if h[1]) < 20:
        assert _close_day(rec, None, s, cal, 0.0, []) is None
        return
    cnt = counts.astype(np.float32)
    typical = rec.view("wd_curve").astype(np.float32)
    with np.errstate(all="ignore"):
        want = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
        want = np.where(np.isnan(want), typical, want).astype(np.float32)
        profile = _close_day(rec, None, s, cal, 0.0, [])
    assert profile is not None and not profile.is_day_off
    assert profile.day_curve == _rounded(want)[0]
    assert profile.daily_kwh == float(want.sum())
