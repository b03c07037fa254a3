"""Load profiling figures, tags, segmentation and the segment's theft judgement."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gridwatch import Event, Severity
from gridwatch.models import DailyProfile, Segmenter, SegmentJudge, load_profile, profile_tags

EVENING = tuple(1.0 + 1.5 * math.exp(-(((h - 19) / 2) ** 2)) for h in range(24))
DAYTIME = tuple(8.0 if 8 <= h < 18 else 1.0 for h in range(24))
FLAT = tuple(5.0 + 0.1 * (h % 2) for h in range(24))
TWO_SHIFT = tuple(20.0 if 6 <= h < 22 else 3.0 for h in range(24))


def day(meter: str, wd: tuple[float, ...], we: tuple[float, ...],
        ratio: float | None = 1.0) -> DailyProfile:
    return DailyProfile(
        meter_id=meter, day=datetime(2024, 3, 5, tzinfo=UTC), customer_id=None,
        customer_class="residential", daily_kwh=float(sum(wd)), peak_kw=max(wd),
        valley_kw=min(wd), day_curve=wd, weekday_curve=wd, weekend_curve=we,
        is_day_off=False, mom_growth=0.05, ratio=ratio)


def test_tags_describe_the_shape():
    assert profile_tags(EVENING, EVENING, "residential")[0] == "evening-peak residential"
    assert profile_tags(FLAT, FLAT, "industrial")[0] == "flat 24 h"
    assert profile_tags(TWO_SHIFT, TWO_SHIFT, "industrial")[0] == "two-shift industrial"
    tags = profile_tags(DAYTIME, tuple(1.0 for _ in range(24)), "commercial")
    assert "weekend-closed commercial" in tags and "daytime commercial" in tags


def test_load_profile_figures():
    lp = load_profile(day("m1", DAYTIME, DAYTIME), "commercial-0", ("daytime commercial",))
    assert lp.daily_kwh == sum(DAYTIME)
    assert lp.peak_valley_ratio == 8.0
    assert lp.load_factor == round(sum(DAYTIME) / 24 / 8.0, 4)
    assert lp.night_day_ratio is not None and lp.night_day_ratio < 0.2
    assert lp.curve == DAYTIME and lp.segment == "commercial-0"


def test_segmenter_separates_shapes():
    seg = Segmenter("residential", n_clusters=3, seed=1)
    rng = np.random.default_rng(0)
    labels: dict[str, set[str]] = {"evening": set(), "flat": set()}
    for i in range(300):
        shape, base = ("evening", EVENING) if i % 2 else ("flat", FLAT)
        noisy = tuple(float(v * (1 + rng.normal(0, 0.03))) for v in base)
        segment, _ = seg.assign(day(f"m{i}", noisy, noisy))
        if i >= 200:
            labels[shape].add(segment)
    assert len(labels["evening"]) == 1 and len(labels["flat"]) == 1
    assert labels["evening"] != labels["flat"]
    assert seg.segment_of(EVENING, EVENING) in labels["evening"]
    assert seg.segment_of(FLAT, FLAT) in labels["flat"]


DAY = datetime(2024, 3, 4, tzinfo=UTC)  # the day a candidate raised on 5 March is about


def _theft(meter: str, day: int = 0, strong: bool = False) -> Event:
    t = datetime(2024, 3, 5, tzinfo=UTC) + timedelta(days=day)
    return Event(meter_id=meter, type="possible_theft", severity=Severity.WARNING, score=0.8,
                 onset=t - timedelta(days=2), raised_at=t,
                 evidence={"day_ratio": 0.2, "strong": strong})


def _day(day: int = 0) -> int:
    return (DAY + timedelta(days=day)).toordinal()


def test_segment_judge_confirms_only_individual_drops():
    judge = SegmentJudge("residential-0", min_ratio=0.7)
    for _ in range(50):
        judge.learn(1.0, day=_day(0))
    confirmed = judge.judge(_theft("a")).event
    assert confirmed is not None and confirmed.evidence["segment_median_ratio"] == 1.0
    for _ in range(600):
        judge.learn(0.5, day=_day(1))  # the whole segment dropped: a holiday week, a mild spell
    assert judge.judge(_theft("b", day=1)).event is None
    assert judge.suppressed == 1
    resolved = _theft("a").model_copy(update={"state": "resolved"})
    assert judge.judge(resolved).event is not None
    assert judge.judge(resolved).event is None  # already resolved


def test_segment_judge_uses_the_candidates_own_day_in_any_arrival_order():
    """Regression: candidates reached the judge out of event-time order and were judged against
    whatever days had arrived last."""
    judge = SegmentJudge("residential-0", min_ratio=0.7)
    for _ in range(30):
        judge.learn(0.5, day=_day(5))  # a later, shared drop arrives first
    for _ in range(30):
        judge.learn(1.0, day=_day(0))
    assert judge.judge(_theft("late", day=5)).event is None
    assert judge.judge(_theft("early", day=0)).event is not None  # its own day was normal


def test_strong_evidence_is_not_vetoed_by_the_collective_rule():
    """Regression: the collective rule (3 candidates of 8 members) suppressed the one real
    theft. A meter whose own evidence is strong is raised, with the segment's view added."""
    judge = SegmentJudge("residential-0", collective_share=0.1, min_collective=3)
    for _ in range(8):
        judge.learn(1.0, day=_day(0))
    weak = [judge.judge(_theft(f"m{i}")).event for i in range(3)]
    assert [v is not None for v in weak] == [True, True, False]
    strong = judge.judge(_theft("thief", strong=True)).event
    assert strong is not None and strong.evidence["segment_disagrees"] is True


def test_segment_judge_suppresses_a_drop_shared_within_the_day():
    judge = SegmentJudge("residential-0", collective_share=0.1, min_collective=3)
    for _ in range(20):
        judge.learn(1.0, day=_day(0))
    verdicts = [judge.judge(_theft(f"m{i}")).event for i in range(4)]
    assert [v is not None for v in verdicts] == [True, True, False, False]


@settings(max_examples=200, deadline=None)
@example([2.67515, 0.12345, 5.00015], [1.0], np.float64)  # where numpy's rounding differs
@given(st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=48),
       st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=48),
       st.sampled_from([np.float64, np.float32, np.float16]))
def test_features_and_rounded_curves_are_the_plain_formulas(wd: list[float], we: list[float],
                                                             dtype: Any) -> None:
    """The segmenter's features and a profile's rounded curves, built from ``tolist`` and
    cached feature names, are exactly the per-element formulas (``float`` of each numpy
    element): the same floats, the same names, in the same order."""
    from gridwatch.models._daily import _rounded
    from gridwatch.models._segment import _norm

    p = SimpleNamespace(weekday_curve=tuple(wd), weekend_curve=tuple(we))
    d, e = _norm(p.weekday_curve), _norm(p.weekend_curve)
    scale = float(np.mean(p.weekday_curve)) or 1.0
    level = float(np.mean(p.weekend_curve)) / scale if scale > 1e-9 else 0.0
    plain = {f"d{h:02d}": float(v) for h, v in enumerate(d)}
    plain.update({f"e{h:02d}": float(v) * level for h, v in enumerate(e)})
    assert list(Segmenter.features(p).items()) == list(plain.items())
    curve = np.asarray(wd, dtype=dtype)
    assert _rounded(curve) == [tuple(round(float(x), 4) for x in curve)]


def _same_floats(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Equal value for value, the sign of a zero and NaN included."""
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b, strict=True))


_HALVES = st.builds(lambda n, e, s: s * (n + 0.5) / 10 ** 4 * (1 + e * 2.0 ** -52),
                    st.integers(0, 10 ** 9), st.integers(-4, 4), st.sampled_from([1, -1]))


@settings(max_examples=500, deadline=None)
@example([[0.03125, 0.00005, 2.67515, 5.00015, -0.00004, 1e300, float("inf"), float("nan")]],
         np.float64)  # an exact half; numpy's own rounding differs; -0.0; huge; not finite
@given(st.lists(st.lists(st.one_of(st.floats(), st.floats(-1e5, 1e5), _HALVES), max_size=30),
                min_size=1, max_size=4),
       st.sampled_from([np.float64, np.float32, np.float16]))
def test_rounded_curves_are_round_to_four_decimals(curves: list[list[float]], dtype: Any) -> None:
    """A profile's curves rounded in one pass are, value for value, ``round(float(v), 4)`` of
    each (the same floats, signed zeros and NaN included), for any float: those a hair from a
    half in the fourth decimal, where rounding ``v * 10**4`` alone would go wrong, most of all."""
    from gridwatch.models._daily import _rounded

    with np.errstate(over="ignore"):
        arrays = [np.asarray(c, dtype=np.float64).astype(dtype) for c in curves]
    got = _rounded(*arrays)
    assert len(got) == len(arrays)
    for g, a in zip(got, arrays, strict=True):
        assert _same_floats(g, tuple(round(x, 4) for x in a.tolist()))


_CURVE = st.lists(st.floats(0, 50, allow_nan=False), min_size=24, max_size=24)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_CURVE, _CURVE), min_size=5, max_size=30), st.integers(2, 5))
def test_nearest_centre_is_rivers(days: list[tuple[list[float], list[float]]],
                                  n_clusters: int) -> None:
    """The segmenter's nearest centre is River's ``KMeans.predict_one`` on the same model,
    profile after profile as the segmenter learns (on any profile, not only the learned one),
    and the model is left as River's query leaves it."""
    seg = Segmenter("residential", n_clusters=n_clusters, seed=3, seed_distance=0.5)
    for wd, we in days:
        p = day("m1", tuple(wd), tuple(we))
        if seg.seeded == n_clusters:
            x = seg.features(p)
            before = {k: dict(c) for k, c in seg.model.centers.items()}
            assert seg.nearest(x) == seg.model.predict_one(x)
            assert {k: dict(c) for k, c in seg.model.centers.items()} == before
        seg.assign(p)


def test_nearest_centre_with_features_river_has_not_seen_is_rivers() -> None:
    """A centre without one of the features (a model kept from other features): River's own
    answer, which draws the missing ones."""
    seg = Segmenter("residential", n_clusters=2, seed=3, seed_distance=0.1)
    for wd in (EVENING, DAYTIME, FLAT):
        seg.assign(day("m1", wd, wd))
    assert seg.seeded == 2
    x = seg.features(day("m1", TWO_SHIFT, TWO_SHIFT))
    del seg.model.centers[1]["d05"]
    twin = copy.deepcopy(seg.model)
    assert seg.nearest(x) == twin.predict_one(x)
    assert "d05" in seg.model.centers[1]  # (drawn, as River draws it)


class PerFeature(Segmenter):
    """The segmenter as a loop over its named features, its centres read from River's dicts
    at every profile: no array of the centres kept between profiles."""

    def _kept_rows(self, n: int) -> None:
        return None

    def _move(self, k: int, x: dict[str, float]) -> None:
        centre = self.model.centers[k]
        for i, xi in x.items():
            centre[i] += self.halflife * (xi - centre[i])
        self._rows = None


_DAYS = st.lists(st.tuples(_CURVE, _CURVE, st.booleans()), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(_DAYS, st.integers(2, 5), st.integers(0, 40))
def test_kept_centres_array_learns_as_the_loop_over_features(
        days: list[tuple[list[float], list[float], bool]], n_clusters: int,
        pickle_at: int) -> None:
    """The segmenter's centres, kept as one array between profiles and written back to
    River's centres, learn exactly as the loop over named features does: the same segment,
    tags and centres, float for float, profile after profile, and after a snapshot restored
    at any point (a snapshot does not carry the array; it is built again)."""
    import pickle

    seg = Segmenter("residential", n_clusters=n_clusters, seed=3, seed_distance=0.5)
    ref = PerFeature("residential", n_clusters=n_clusters, seed=3, seed_distance=0.5)
    for i, (wd, we, again) in enumerate(days):
        if i == pickle_at:
            seg = pickle.loads(pickle.dumps(seg))
            assert "_rows" not in seg.__dict__
        p = day("m1", tuple(wd), tuple(we))
        for _ in range(2 if again else 1):
            assert seg.assign(p) == ref.assign(p)
            assert {k: dict(c) for k, c in seg.model.centers.items()} == \
                {k: dict(c) for k, c in ref.model.centers.items()}
        assert seg.segment_of(p.weekday_curve, p.weekend_curve) == \
            ref.segment_of(p.weekday_curve, p.weekend_curve)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.floats(allow_nan=False)), min_size=1,
                max_size=48))
def test_means_without_numpys_wrapper_are_numpys(values: list[float]) -> None:
    """The day's and the segmenter's means, summed with ``np.add.reduce`` and divided by the
    count, are ``ndarray.mean()`` to the last bit, in float64 and in float32."""
    from gridwatch.models._daily import _mean, _mean32

    with np.errstate(all="ignore"):
        a64 = np.asarray(values, dtype=np.float64)
        a32 = a64.astype(np.float32)
        want64, want32 = a64.mean(), a32.mean()
        got64, got32 = _mean(a64), _mean32(a32)
    assert type(got32) is type(want32)
    for got, want in ((got64, float(want64)), (float(got32), float(want32))):
        assert (math.isnan(got) and math.isnan(want)) or got == want
