"""A day's close, its arithmetic compiled (numba): :func:`close_numbers` and :func:`rounded`,
for the Python quiet path and the full path (the quiet path's kernel closes a day itself:
``_quiet_jit._plan_close``, from the same :func:`._quiet_jit.day_numbers`).

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

from gridwatch.models._quiet_jit import (
    _F16,
    _f32p,
    _f64p,
    _u16p,
    day_numbers,
    direct,
    keep_current,
    round4,
)
from gridwatch.models._record import DAY_CNT, DAY_SUM, WD, WE

_CLOSE_SIGNATURE = types.UniTuple(types.float64, 4)(
    types.intp, types.boolean, types.intp, types.intp)


@numba.njit(_CLOSE_SIGNATURE, cache=True)
def close_numbers(hp, off, curve_p, typical_p):
    """``_quiet_jit.day_numbers`` with the day's curve and the usual one (float32) written at
    the addresses ``curve_p`` and ``typical_p``: (hours covered, the day's kWh, the usual
    day's kWh, the shape correlation of the two curves)."""
    return day_numbers(hp, off, numba.carray(_f32p(curve_p), (24,)),
                       numba.carray(_f32p(typical_p), (24,)))


_ROUNDED_SIGNATURE = types.void(types.intp, types.intp, types.intp)


@numba.njit(_ROUNDED_SIGNATURE, cache=True)
def rounded(curve_p, hp, out_p):
    """``_daily._rounded`` of the day's curve (float32 at ``curve_p``), then the usual weekday
    and day-off curves (float16 in ``h`` at ``hp``): ``k / 10**4`` of each value, ``k`` the
    integer nearest ``v * 10**4`` (ties to even), as 72 doubles at ``out_p``.

    That is ``round(v, 4)`` of each, as for any float32 or float16 value times 10**4 exact in
    a double, so ``k`` is the integer nearest the exact
    ``v * 10**4`` (``_quiet_jit.round4``). (``_daily._rounded`` takes doubles, whose product
    can round across a half: it leaves those values to ``round``; none occur here.)"""
    curve = numba.carray(_f32p(curve_p), (24,))
    wd = numba.carray(_u16p(hp + 2 * WD), (24,))
    we = numba.carray(_u16p(hp + 2 * WE), (24,))
    out = numba.carray(_f64p(out_p), (72,))
    for i in range(24):
        out[i] = round4(np.float64(curve[i]))
        out[24 + i] = round4(_F16[wd[i]])
        out[48 + i] = round4(_F16[we[i]])


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
