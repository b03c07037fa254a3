"""The segmenter's compiled numbers (``_segment_jit.day_numbers``) are numpy's, bit for bit:
the tags' code, the 48 features, the day curve's night and day means, the nearest centre and
its move; and a segmenter learning a stream of meter-days through them ends where numpy's path
ends (the same stored profiles, centres and names)."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from _models_helpers import compiled
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gridwatch.models import DailyProfile, Segmenter, _quiet, _segment
from gridwatch.models._segment_codes import NEW_CENTRE, NUMPY, OUT_SIZE

#: a curve's value as the close gives it (four decimals of a float16 or float32 value)
_KW = st.floats(-500, 65_504, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 4))
#: and a few that test the edges: zeros of both signs, ties, tiny and large values
_EDGE = st.sampled_from([0.0, -0.0, 1e-10, 1e-9, 0.5, 1.0, 1.5, 65_504.0, -1.0])
_VALUE = st.one_of(_KW, _EDGE)
_CURVE = st.lists(_VALUE, min_size=24, max_size=24)
_ANY = st.floats(allow_nan=False)  # infinities too


def _kernel() -> Any:
    _quiet.use_compiled(True)
    assert _segment.COMPILED[0] is not None, "the segmenter's compiled numbers did not load"
    return _segment.COMPILED[0]


def _bits(a: np.ndarray) -> list[int]:
    """The values' bit patterns (a signed zero and NaN's payload count)."""
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64).tolist()


def _numbers(wd: list[float], we: list[float], day: list[float], rows: np.ndarray | None,
             seeding: bool = False, seed_distance: float = 2.0
             ) -> tuple[int, int, np.ndarray, np.ndarray | None]:
    kernel = _kernel()
    curves = np.array(wd + we + day, dtype=np.float64)
    out = np.full(OUT_SIZE, np.nan)
    moved = None if rows is None else np.ascontiguousarray(rows.copy())
    code, k = kernel(curves.ctypes.data, 0 if moved is None else moved.ctypes.data,
                     -1 if moved is None else len(moved), 0.05, out.ctypes.data,
                     seed_distance, seeding)
    return code, k, out, moved


def _numpys(wd: list[float], we: list[float], day: list[float], rows: np.ndarray | None,
            seeding: bool = False, seed_distance: float = 2.0
            ) -> tuple[int, int, np.ndarray, np.ndarray | None]:
    """The same numbers from numpy's path (the functions the compiled one replaces): with
    ``seeding``, ``rows`` are the seeded centres of a segmenter with one more to seed."""
    from gridwatch.models._daily import _mean

    c, w, d = (np.array(x, dtype=np.float64) for x in (wd, we, day))
    code = _segment._tag_code(c, w)
    v = Segmenter.vector(c, w)
    night_day = np.array([_mean(d[0:6]), _mean(d[8:20])])
    numbers = np.concatenate((v, night_day))
    if rows is None:
        return code, -1, numbers, None
    moved = rows.copy()
    seg = Segmenter("residential", n_clusters=len(rows) + seeding, seed_distance=seed_distance)
    if seeding:
        for j, row in enumerate(moved):
            seg.model.centers[j].update(zip(_segment._FEATURES, row.tolist(), strict=True))
        seg.seeded = len(rows)
        x = dict(zip(_segment._FEATURES, v.tolist(), strict=True))
        if seg._far_from_seeds(x):
            return code, NEW_CENTRE, numbers, moved
        k = seg._nearest_seeded(x)
    else:
        k = seg._nearest_row(moved, v)
    seg._rows, seg._row_keys = moved, _segment._FEATURES
    seg._move_row(moved, k, v)
    return code, k, numbers, moved


@hsettings(max_examples=500, deadline=None)
@given(_CURVE, _CURVE, _CURVE, st.integers(0, 4), st.booleans(), st.data())
def test_the_compiled_numbers_are_numpys(wd, we, day, n_rows, seeding, data):
    """Tags' code, features, night and day means, the centre learned from (while seeding:
    a new one, or the nearest seeded; then the nearest) and its move: equal bits."""
    rows = None
    if n_rows or seeding:
        values = data.draw(st.lists(st.one_of(st.floats(-5, 5), _EDGE),
                                    min_size=48 * n_rows, max_size=48 * n_rows))
        rows = np.array(values, dtype=np.float64).reshape(n_rows, 48)
    distance = data.draw(st.sampled_from([0.5, 2.0, 8.0]))
    with np.errstate(all="ignore"):
        want = _numpys(wd, we, day, rows, seeding, distance)
    got = _numbers(wd, we, day, rows, seeding, distance)
    assert got[0] == want[0], "the tags' code"
    assert got[1] == want[1], "the nearest centre"
    assert _bits(got[2]) == _bits(want[2]), "the features and the night/day means"
    if rows is not None:
        assert got[3] is not None and want[3] is not None
        assert _bits(got[3]) == _bits(want[3]), "the centres after the move"


@hsettings(max_examples=200, deadline=None)
@given(st.lists(_ANY, min_size=24, max_size=24), st.lists(_ANY, min_size=24, max_size=24))
def test_infinite_values_give_numpys_numbers(wd, we):
    """Curves with infinities (never made by a close, but nothing stops a caller): the same
    numbers, NaNs they make included."""
    rows = np.linspace(-1, 1, 96).reshape(2, 48)
    with np.errstate(all="ignore"):
        want = _numpys(wd, we, wd, rows)
    got = _numbers(wd, we, wd, rows)
    assert (got[0], got[1]) == (want[0], want[1])
    assert _bits(got[2]) == _bits(want[2])
    assert got[3] is not None and want[3] is not None and _bits(got[3]) == _bits(want[3])


def test_a_nan_goes_to_numpys_path_untouched():
    rows = np.zeros((2, 48))
    curve = [1.0] * 24
    code, k, _, moved = _numbers(curve, [math.nan, *curve[1:]], curve, rows)
    assert (code, k) == (NUMPY, -1)
    assert moved is not None and not moved.any(), "no centre moved"


def _days(n: int, seed: int, n_shapes: int = 4, noise: float = 1.0) -> list[DailyProfile]:
    """``n`` meter-days of ``n_shapes`` shapes with noise (``noise`` times the usual), some
    with a curve of zeros (the unknown segment) and a few odd ones (not 24 values, a NaN):
    each path's cases."""
    rng = np.random.default_rng(seed)
    hours = np.arange(24)
    shapes = [1 + 1.5 * np.exp(-(((hours - 19) / 2) ** 2)), np.where((hours >= 8) & (hours < 18),
              8.0, 1.0), 5 + 0.1 * (hours % 2), np.where((hours >= 6) & (hours < 22), 20.0, 3.0)]
    out = []
    t0 = datetime(2024, 3, 4, tzinfo=UTC)
    for i in range(n):
        base = shapes[int(rng.integers(n_shapes))]
        wd = tuple(round(float(v), 4) for v in base * rng.normal(1, 0.2 * noise, 24).clip(0))
        we = tuple(round(float(v), 4) for v in base * rng.normal(0.8, 0.3 * noise, 24).clip(0))
        day = tuple(round(float(v), 4) for v in base * rng.normal(1, 0.5, 24).clip(0))
        if i % 37 == 5:
            wd = (0.0,) * 24
        if i % 53 == 7:
            day = day[:12]
        if i % 61 == 9:
            we = (math.nan, *we[1:])
        out.append(DailyProfile(
            meter_id=f"m{i % 40}", day=t0 + timedelta(days=i // 40), customer_id=None,
            customer_class="residential", daily_kwh=float(sum(day)), peak_kw=max(day),
            valley_kw=min(day), day_curve=day, weekday_curve=wd, weekend_curve=we,
            is_day_off=False, mom_growth=None, ratio=1.0))
    return out


@pytest.mark.parametrize(("seed", "n_shapes", "noise", "seeded"),
                         [(0, 4, 1.0, 4), (1, 4, 1.0, 4), (2, 2, 0.3, 2)])
def test_a_segmenter_learns_the_same_either_way(seed, n_shapes, noise, seeded):
    """A stream of meter-days through ``Segmenter.profile``, compiled and numpy's, with a
    snapshot and restore half-way (its centres' array is then built again): the same stored
    profiles, centres and names; with two shapes and little noise (a class of alike
    customers) not every centre is ever seeded, and each day is learned while seeding."""
    days = _days(600, seed, n_shapes, noise)
    ends = []
    for on in (False, True):
        with compiled(on):
            assert (_segment.COMPILED[0] is not None) is on
            seg = Segmenter("residential", n_clusters=4, seed=42)
            stored = [seg.profile(p).model_dump_json() for p in days[:300]]
            seg = pickle.loads(pickle.dumps(seg))
            stored += [seg.profile(p).model_dump_json() for p in days[300:]]
            ends.append((stored, repr({k: dict(c) for k, c in seg.model.centers.items()}),
                         seg.names, seg.seen, seg.seeded))  # (repr: a NaN equals a NaN)
    assert ends[0] == ends[1]
    assert ends[0][4] == seeded, "the centres seeded"
