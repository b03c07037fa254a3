"""A day's close, its arithmetic compiled (numba): :func:`close_numbers` and :func:`rounded`.

``_daily._close_day`` makes about twenty numpy calls on arrays of 24 values; each costs a
microsecond or two of Python around a few nanoseconds of arithmetic, and every meter closes a
day at its local midnight, all of a time zone in the same interval. These functions do the
same IEEE operations in the same order, on the record's own buffer (by address), so what they
give is bit-identical to the numpy path they replace: float32 means and quotients, float32
sums in numpy's own pairwise order (eight running sums, then the rest), float32 products and
square root. ``tests/models/test_daily_close.py`` compares them with that path value for
value, and the equivalence tests run whole streams through both.

Loaded with the quiet path's kernel (``_quiet.use_compiled``); without numba, or with
``GRIDWATCH_JIT=0``, the numpy path computes the same.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types

from gridwatch.models._quiet_jit import _F16, _f32p, _f64p, _pointer, _u16p, direct, keep_current
from gridwatch.models._record import DAY_CNT, DAY_SUM, WD, WE

_u8p = _pointer(types.uint8)


@numba.njit(cache=True)
def _pairwise24(a: Any) -> Any:
    """numpy's ``add.reduce`` of 24 float32 values, in its order: eight running sums over the
    first 24 (the unrolled block), combined as ((0+1)+(2+3))+((4+5)+(6+7)); 24 is a multiple
    of eight, so nothing is added after."""
    r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
    r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
    for i in range(8, 24, 8):
        r0 = np.float32(r0 + a[i])
        r1 = np.float32(r1 + a[i + 1])
        r2 = np.float32(r2 + a[i + 2])
        r3 = np.float32(r3 + a[i + 3])
        r4 = np.float32(r4 + a[i + 4])
        r5 = np.float32(r5 + a[i + 5])
        r6 = np.float32(r6 + a[i + 6])
        r7 = np.float32(r7 + a[i + 7])
    return np.float32(np.float32(np.float32(r0 + r1) + np.float32(r2 + r3))
                      + np.float32(np.float32(r4 + r5) + np.float32(r6 + r7)))


@numba.njit(cache=True)
def _mean32(a: Any) -> Any:
    """``_daily._mean32``: the float32 sum, divided as a double by the count, to float32."""
    return np.float32(np.float64(_pairwise24(a)) / 24.0)


_CLOSE_SIGNATURE = types.UniTuple(types.float64, 4)(
    types.intp, types.boolean, types.intp, types.intp)


@numba.njit(_CLOSE_SIGNATURE, cache=True)
def close_numbers(hp, off, curve_p, typical_p):
    """The numbers of a day's close from the record's buffer ``h`` (at address ``hp``):
    writes the day's curve (each hour's mean, the usual curve's value for an hour without
    readings) and the usual curve of the day's type (``off``: a day off) as float32 at
    ``curve_p`` and ``typical_p``; returns (hours covered, the day's kWh, the usual day's kWh,
    the shape correlation of the two curves), as ``_daily._close_day`` and
    ``_daily._shape_corr`` compute them."""
    cnt = numba.carray(_u8p(hp + 2 * DAY_CNT), (24,))
    sums = numba.carray(_f32p(hp + 2 * DAY_SUM), (24,))
    codes = numba.carray(_u16p(hp + 2 * (WE if off else WD)), (24,))
    curve = numba.carray(_f32p(curve_p), (24,))
    typical = numba.carray(_f32p(typical_p), (24,))
    covered = 0
    for i in range(24):
        typical[i] = np.float32(_F16[codes[i]])
        if cnt[i] > 0:
            covered += 1
            curve[i] = np.float32(sums[i] / np.float32(cnt[i]))
        else:
            curve[i] = typical[i]
    m_c = _mean32(curve)
    m_t = _mean32(typical)
    aa = np.empty(24, np.float32)
    bb = np.empty(24, np.float32)
    ab = np.empty(24, np.float32)
    for i in range(24):
        x = np.float32(curve[i] - m_c)
        y = np.float32(typical[i] - m_t)
        aa[i] = np.float32(x * x)
        bb[i] = np.float32(y * y)
        ab[i] = np.float32(x * y)
    den = np.float64(np.sqrt(np.float32(_pairwise24(aa) * _pairwise24(bb))))
    corr = np.float64(_pairwise24(ab)) / den if den > 1e-12 else 0.0
    return (float(covered), np.float64(_pairwise24(curve)), np.float64(_pairwise24(typical)),
            corr)


_ROUNDED_SIGNATURE = types.void(types.intp, types.intp, types.intp)


@numba.njit(_ROUNDED_SIGNATURE, cache=True)
def rounded(curve_p, hp, out_p):
    """``_daily._rounded`` of the day's curve (float32 at ``curve_p``), then the usual weekday
    and day-off curves (float16 in ``h`` at ``hp``): ``k / 10**4`` of each value, ``k`` the
    integer nearest ``v * 10**4`` (ties to even), as 72 doubles at ``out_p``.

    That is ``round(v, 4)`` of each: a float32 or float16 value times 10**4 is exact in a
    double (at most 24 + 14 significant bits), so ``k`` is the integer nearest the exact
    ``v * 10**4``, which ``round`` takes too, and ``k / 10**4`` is the double nearest the
    decimal ``k * 10**-4``, which ``round`` returns; NaN and the infinities come out as they
    went in, as from ``round``. (``_daily._rounded`` takes doubles, whose product can round
    across a half: it leaves those values to ``round``; none occur here.)"""
    curve = numba.carray(_f32p(curve_p), (24,))
    wd = numba.carray(_u16p(hp + 2 * WD), (24,))
    we = numba.carray(_u16p(hp + 2 * WE), (24,))
    out = numba.carray(_f64p(out_p), (72,))
    for i in range(24):
        out[i] = np.rint(np.float64(curve[i]) * 1e4) / 1e4
        out[24 + i] = np.rint(_F16[wd[i]] * 1e4) / 1e4
        out[48 + i] = np.rint(_F16[we[i]] * 1e4) / 1e4


#: the record's layout these functions read (its offsets are frozen into the machine code)
_LAYOUT_NOW = (DAY_CNT, DAY_SUM, WD, WE)


@numba.njit(cache=True)
def _layout() -> tuple[int, int, int, int]:
    return _LAYOUT_NOW


keep_current(__file__, _layout, _LAYOUT_NOW, (close_numbers, rounded),
             "the compiled day's close")


def entry_points() -> tuple[Any, Any]:
    """(close_numbers, rounded) as machine code called without numba's dispatch."""
    return direct(close_numbers), direct(rounded)
