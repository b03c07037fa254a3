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
