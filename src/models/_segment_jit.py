"""The segmenter's arithmetic on a finished meter-day, compiled (numba): :func:`day_numbers`.

``Segmenter.profile`` makes about forty numpy calls on arrays of 24 and 48 values for one
meter-day (the tags' figures, the normalised curves, the nearest centre and its move, the
day's night/day ratio); each costs a microsecond or two of Python around a few nanoseconds of
arithmetic, and every meter of a time zone closes its day in the same interval. This function
does the same IEEE operations in the same order, so its numbers are bit-identical to the numpy
path's: means are numpy's pairwise sums (eight running sums over the multiples of eight, then
the rest one by one, added to the reduction's initial zero) divided by the count; a centre's
distance is the pairwise sum of squared differences. ``tests/models/test_segment_jit.py``
compares it with that path value for value.

Loaded with the quiet path's kernel (``_quiet.use_compiled``); without numba, or with
``GRIDWATCH_JIT=0``, the numpy path computes the same.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types

from gridwatch.models._quiet_jit import _f64p, direct
from gridwatch.models._segment_codes import CLASS_ONLY, NEW_CENTRE, NUMPY, OUT_SIZE, shape_code

#: the tags' rule, compiled (one rule for both paths)
_shape_code = numba.njit(cache=True)(shape_code)


@numba.njit(cache=True)
def _sum(a: Any, lo: int, n: int) -> Any:
    """``np.add.reduce`` of the ``n`` doubles from ``a[lo]`` (``n`` at most 128), in numpy's
    order: under eight, one by one; else eight running sums over the multiples of eight,
    combined as ((0+1)+(2+3))+((4+5)+(6+7)), then the rest one by one; added to the
    reduction's initial zero."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[lo + i]
        return 0.0 + res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    end = n - n % 8
    for i in range(8, end, 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, n):
        res += a[lo + i]
    return 0.0 + res


@numba.njit(cache=True)
def _norm_into(src: Any, lo: int, out: Any, at: int, scratch: Any, times: float) -> None:
    """``_segment._norm`` of the 24 values from ``src[lo]``, times ``times``, into ``out[at]``
    (``times`` 1.0 for the weekday curve: the same doubles)."""
    for i in range(24):
        scratch[i] = abs(src[lo + i])
    m = _sum(scratch, 0, 24) / 24
    if m > 1e-9:
        for i in range(24):
            out[at + i] = src[lo + i] / m * times
    else:
        for i in range(24):
            out[at + i] = 0.0 * times


_SIGNATURE = types.UniTuple(types.int64, 2)(types.intp, types.intp, types.intp, types.float64,
                                            types.intp, types.float64, types.boolean)


@numba.njit(_SIGNATURE, cache=True)
def day_numbers(curves_p, rows_p, n_rows, halflife, out_p, seed_distance, seeding):
    """A finished meter-day's numbers for the segmenter, from ``curves_p``: 72 doubles, the
    typical weekday curve, the typical day-off curve and the day's curve.

    Writes at ``out_p`` the 48 features (``Segmenter.vector``), then the day curve's night
    and day means (``load_profile``'s night/day ratio). With ``n_rows`` (0 or more) seeded
    centres at ``rows_p`` (a row of 48 doubles each, ``Segmenter._rows``), learns from the
    features as ``Segmenter._learn`` does:

    * ``seeding`` (not every centre seeded yet): when no centre is within
      ``seed_distance`` (Euclidean, ``Segmenter._dist``), answers ``NEW_CENTRE`` (the
      features seed the next); else the nearest, moved;
    * else the nearest by squared differences (``Segmenter._nearest_row``: River's ``p`` of
      2), moved;

    a move takes the centre ``halflife`` of the way to the features (``_move_row``), in place.

    Returns (the tags' code, the centre learned from, ``NEW_CENTRE``, or -1 when ``n_rows``
    is negative: nothing learned): the code is ``NUMPY`` when a
    curve holds a NaN (numpy's path then answers, with nothing changed), ``CLASS_ONLY`` when
    the weekday curve's mean is not positive, else the sum of the shape's tag and the
    ``NIGHT_HEAVY`` and ``WEEKEND_CLOSED`` bits (``_segment.profile_tags``)."""
    c = numba.carray(_f64p(curves_p), (72,))
    out = numba.carray(_f64p(out_p), (OUT_SIZE,))
    for i in range(72):
        if np.isnan(c[i]):
            return NUMPY, -1
    scratch = np.empty(48)
    # the tags (profile_tags)
    c_mean = _sum(c, 0, 24) / 24
    code = CLASS_ONLY
    if not c_mean <= 0:  # (a NaN mean, of infinities, is judged on: as numpy's path does)
        peak, low, top = c[0], c[0], 0
        for i in range(1, 24):
            if c[i] > peak:
                peak, top = c[i], i
            if c[i] < low:
                low = c[i]
        edge = 0.7 * peak
        high_hours = 0
        for i in range(24):
            if c[i] >= edge:
                high_hours += 1
        code = _shape_code(peak, low, top, high_hours, _sum(c, 0, 6) / 6, _sum(c, 8, 12) / 12,
                           c_mean, _sum(c, 24, 24) / 24)
    # the features (Segmenter.vector)
    scale = c_mean
    if scale == 0.0:
        scale = 1.0
    we_level = _sum(c, 24, 24) / 24 / scale if scale > 1e-9 else 0.0
    _norm_into(c, 0, out, 0, scratch, 1.0)
    _norm_into(c, 24, out, 24, scratch, we_level)
    # the day curve's night and day means (load_profile)
    out[48] = _sum(c, 48, 6) / 6
    out[49] = _sum(c, 56, 12) / 12
    if n_rows < 0:
        return code, -1
    if n_rows == 0:  # (only while seeding: the first centre)
        return code, NEW_CENTRE
    rows = numba.carray(_f64p(rows_p), (n_rows, 48))
    best, k = 0.0, 0
    if seeding:  # the nearest seeded centre (Segmenter._far_from_seeds, _nearest_seeded)
        for j in range(n_rows):
            for i in range(48):
                d = out[i] - rows[j, i]
                scratch[i] = d * d
            dist = np.sqrt(_sum(scratch, 0, 48))
            if j == 0 or dist < best:  # (Python's min: the first kept unless one is less)
                best, k = dist, j
        if best > seed_distance:
            return code, NEW_CENTRE
    else:  # the nearest centre (Segmenter._nearest_row: numpy's argmin, the first NaN)
        for j in range(n_rows):
            for i in range(48):
                d = abs(rows[j, i] - out[i])
                scratch[i] = d * d
            total = _sum(scratch, 0, 48)
            if j == 0 or total < best or (np.isnan(total) and not np.isnan(best)):
                best, k = total, j
    for i in range(48):
        rows[k, i] += halflife * (out[i] - rows[k, i])
    return code, k


def entry_point() -> Any:
    """:func:`day_numbers` as machine code called without numba's dispatch."""
    return direct(day_numbers)
