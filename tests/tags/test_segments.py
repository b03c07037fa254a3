"""Descriptive segment names from centroid curves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.tags._segments import SEGMENT_SHAPES, segment_name

EVENING = [0.4] * 17 + [1.2, 1.6, 1.8, 1.5, 1.0] + [0.6, 0.5]


@pytest.mark.parametrize("curve, cls, name", [
    (EVENING, "residential", "evening-peak households"),
    ([0.2] * 17 + [3.0, 4.0, 3.5, 2.0] + [0.2] * 3, "residential", "sharp evening-peak households"),
    ([1.0] * 24, "industrial", "round-the-clock plants"),
    ([0.2] * 6 + [1.0] * 16 + [0.2] * 2, "industrial", "long-hours plants"),
    ([0.1] * 8 + [1.0, 1.2, 1.3, 1.4, 1.3, 1.2, 1.2, 1.1, 1.0, 0.9] + [0.1] * 6, "commercial",
     "daytime businesses"),
    ([2.0] * 6 + [0.3] * 18, "agricultural", "night-heavy farms"),
    ([0.5] * 6 + [1.2, 1.5, 1.1] + [0.8] * 15, "residential", "morning-peak households"),
    ([0.0] * 24, "commercial", "inactive businesses"),
])
def test_names_of_known_shapes(curve, cls, name):
    assert segment_name(curve, cls) == name


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=24, max_size=24),
       st.integers(-10, 10).map(lambda k: 2.0 ** k),
       st.sampled_from(["residential", "commercial", "industrial", "agricultural"]))
@settings(max_examples=200, deadline=None)
def test_names_are_stable_descriptive_and_scale_free(curve, scale, cls):
    # a power of two scales exactly, so the normalised curve is the same
    name = segment_name(curve, cls)
    assert name == segment_name(np.asarray(curve) * scale, cls)
    words = name.removeprefix("sharp ").split(" ")
    assert words[0] in SEGMENT_SHAPES and len(words) == 2
    assert not any(ch.isdigit() for ch in name)  # no cluster index


def test_wrong_length_is_refused():
    with pytest.raises(ValueError, match="24 hourly values"):
        segment_name([1.0] * 23, "residential")


def test_public_face():
    import gridwatch.tags as tags

    missing = [n for n in tags.__all__ if not hasattr(tags, n)]
    assert not missing


# ---------------------------------------------------------------- the segment model's names
def _day(curve, weekend=None):
    from datetime import UTC, datetime

    from gridwatch.models._meter import DailyProfile

    we = tuple(weekend if weekend is not None else curve)
    return DailyProfile(meter_id="m", day=datetime(2024, 5, 6, tzinfo=UTC), customer_id="c",
                        customer_class="residential", daily_kwh=float(sum(curve)),
                        peak_kw=max(curve), valley_kw=min(curve), day_curve=tuple(curve),
                        weekday_curve=tuple(curve), weekend_curve=we, is_day_off=False,
                        mom_growth=None, ratio=None)


FLATTISH = [0.7] * 12 + [1.0] * 12  # lowest hour 70 % of the highest: round the clock
MIDDAY = [0.64] * 12 + [1.0] * 12  # a little lower at night: a midday peak by itself


def test_the_segmenter_names_clusters_by_their_shape():
    from gridwatch.models._segment import Segmenter

    seg = Segmenter("residential", n_clusters=2, seed=1)
    got = {seg.assign(_day(EVENING))[0] for _ in range(20)}
    got |= {seg.assign(_day([1.0] * 24))[0] for _ in range(20)}
    assert got == {"evening-peak households", "round-the-clock households"}
    assert seg.segment_of(tuple(EVENING), tuple(EVENING)) == "evening-peak households"


def test_a_name_stays_when_its_centroid_moves_a_little():
    from gridwatch.models._segment import Segmenter

    assert segment_name(FLATTISH, "residential") == "round-the-clock households"
    assert segment_name(MIDDAY, "residential") == "midday-peak households"
    seg = Segmenter("residential", n_clusters=1)
    assert seg.assign(_day(FLATTISH))[0] == "round-the-clock households"
    for _ in range(300):  # the centroid drifts over the boundary, but not far
        name, _ = seg.assign(_day(MIDDAY))
    centre = [seg.model.centers[0][f"d{h:02d}"] for h in range(24)]
    assert segment_name(centre, "residential") == "midday-peak households"
    assert name == "round-the-clock households"
    for _ in range(300):  # a real change of shape renames it
        name, _ = seg.assign(_day(EVENING))
    assert name == "evening-peak households"


def test_two_segments_of_one_shape_are_told_apart():
    import pickle

    from gridwatch.models._segment import Segmenter

    seg = Segmenter("residential", n_clusters=2, seed=3)
    a = seg.assign(_day(EVENING))[0]
    b = seg.assign(_day(EVENING, [0.01] * 24))[0]  # same weekdays, empty weekends
    assert a == "evening-peak households" and b == "evening-peak households 2"
    again = pickle.loads(pickle.dumps(seg))  # names are part of the snapshot
    assert again.assign(_day(EVENING, [0.01] * 24))[0] == b
    assert again.assign(_day(EVENING))[0] == a
