"""The weight of false-alarm verdicts handed to detection: fading over weeks, reset by a
confirmation, never negative, never more than the number of verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gridwatch.web import false_alarm_weights

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = ("m1", "abnormal_consumption", "sustained_rise")


def v(verdict: str, days_ago: float, meter: str = "m1") -> tuple[str, str, str, str, datetime]:
    return (meter, "abnormal_consumption", "sustained_rise", verdict,
            NOW - timedelta(days=days_ago))


def test_weight_halves_every_half_life() -> None:
    assert false_alarm_weights([v("false_alarm", 0)], NOW) == {KEY: 1.0}
    assert false_alarm_weights([v("false_alarm", 14)], NOW) == {KEY: 0.5}
    two = false_alarm_weights([v("false_alarm", 0), v("false_alarm", 28)], NOW)
    assert two == {KEY: 1.25}


def test_confirmation_resets_and_site_visits_do_not_count() -> None:
    assert false_alarm_weights([v("false_alarm", 3), v("confirmed", 2)], NOW) == {}
    after = false_alarm_weights([v("confirmed", 3), v("false_alarm", 0)], NOW)
    assert after == {KEY: 1.0}
    assert false_alarm_weights([v("site_visit", 1)], NOW) == {}
    assert false_alarm_weights([v("false_alarm", -1)], NOW) == {}  # not yet given
    other = false_alarm_weights([v("false_alarm", 0, "m2")], NOW)
    assert list(other) == [("m2", "abnormal_consumption", "sustained_rise")]


verdicts = st.lists(st.tuples(st.sampled_from(["confirmed", "false_alarm", "site_visit"]),
                              st.floats(min_value=0, max_value=365)), max_size=30)


@given(verdicts, st.floats(min_value=0, max_value=100))
def test_weights_fade_and_stay_bounded(vs, later_days) -> None:
    given_ = [v(kind, age) for kind, age in vs]
    now_w = false_alarm_weights(given_, NOW).get(KEY, 0.0)
    later_w = false_alarm_weights(given_, NOW + timedelta(days=later_days)).get(KEY, 0.0)
    n_false = sum(1 for kind, _ in vs if kind == "false_alarm")
    assert 0.0 <= later_w <= now_w + 1e-9 <= n_false + 1e-9


def test_verdicts_reach_the_meters_once_through_the_dataflow_cell(tmp_path) -> None:
    """The closed loop end to end, below the browser: a verdict stored by the workspace is read
    by the engine's VerdictFeed and handed once to the meter's detectors in the dataflow's cell
    step; a misfiring meter goes quiet after its manager's false-alarm verdict while a real
    fault (five times its usual load) is still raised; a replayed verdict changes nothing."""
    import math

    import numpy as np

    from gridwatch import Event, Reading
    from gridwatch.models import Calendar, DetectionSettings
    from gridwatch.stream import CellLogic, ReadingBatch
    from gridwatch.web import VerdictFeed
    from gridwatch.web._store import connect
    from gridwatch.web._verdicts import record_verdict

    db_path = tmp_path / "alerts.sqlite"
    connect(db_path).close()
    wall = [NOW]
    feed = VerdictFeed(db_path, clock=lambda: wall[0], every_s=0)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    step = timedelta(minutes=15)
    pump = [35 * 96 * k + 14 * 4 for k in range(1, 4)]
    fault = 4 * 35 * 96 + 12 * 4
    rng = np.random.default_rng(7)
    readings = []
    for i in range(fault + 96):
        ts = start + i * step
        h = ts.hour + ts.minute / 60
        kw = 1.0 + 0.8 * math.exp(-(((h - 19) / 2) ** 2)) + rng.normal(0, 0.05)
        if any(p <= i < p + 8 for p in pump):
            kw += 1.6  # the pool pump, once a month, beyond the meter's record
        elif fault <= i < fault + 8:
            kw *= 5
        readings.append(Reading(meter_id="m1", ts=ts, kw=round(kw, 4)))
    cell = CellLogic(None, DetectionSettings(), Calendar(), lambda m: None, 900.0, 0.0,
                     snapshots=False, verdicts=feed)
    spikes = []
    db = connect(db_path)
    for i in range(0, len(readings), 4):
        out, _ = cell.on_batch([ReadingBatch("shard:00", tuple(readings[i:i + 4]))])
        for e in out:
            if isinstance(e, Event) and e.state == "firing" and e.evidence.get("kind") == "spike":
                spikes.append(e.onset)
                if len(spikes) == 1:  # the manager calls the first one a false alarm
                    wall[0] = wall[0] + timedelta(minutes=5)
                    record_verdict(db, {"fingerprint": "m1/abnormal_consumption", "episode": 1,
                                        "meter_id": "m1", "type": e.type,
                                        "severity": str(e.severity), "evidence": e.evidence},
                                   "false_alarm", "pool pump", "mgr-000", wall[0])
                    db.commit()
    db.close()
    assert spikes[0] == readings[pump[0]].ts
    assert readings[pump[1]].ts not in spikes  # quiet after the verdict
    assert spikes[-1] == readings[fault].ts  # the real fault is still raised
    assert feed.taken == 1
    state = cell.meters["m1"]
    weight = state.rec.fb["abnormal_consumption:spike"]
    assert state.verdict("abnormal_consumption", "spike", "false_alarm", readings[-1].ts,
                         given=weight[2]) is False  # a replayed verdict is ignored
