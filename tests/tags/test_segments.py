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
