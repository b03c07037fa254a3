"""The compiled day's close (``_daily_jit``) gives what numpy's path gives, bit for bit: the
day's curve, its energy, the usual day's, the shape correlation, the rounded curves, and the
whole close (profile, events, the record after it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _models_helpers import T0, compiled
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gridwatch.models import Calendar, DetectionSettings, MeterState, _daily, _quiet

_F32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
_KW32 = st.floats(-50_000, 50_000, width=32)
_F16 = st.floats(width=16, allow_nan=True, allow_infinity=True)
_F16_FINITE = st.floats(-65_504, 65_504, width=16)
#: exact ties at the fourth decimal (0.03125 is 312.5 ten-thousandths), where rounding goes to
#: the even neighbour; a float32 or float16 value times 10**4 is exact, so no other value lies
#: nearer a half than these
_TIES = st.sampled_from([0.03125, -0.03125, 0.09375, 0.15625, 1.03125, 2.5e-05])


def _kernels() -> tuple[object, object]:
    _quiet.use_compiled(True)
    assert _daily.COMPILED[0] is not None, "the compiled close did not load"
    return _daily.COMPILED[0]


def _record(hours: list[tuple[float, int, float, float]]) -> MeterState:
    rec = MeterState("m")
    rec.day_no = T0.date().toordinal() + 1  # a weekday
    rec.view("day_sum")[:] = [h[0] for h in hours]
    rec.view("day_cnt")[:] = [h[1] for h in hours]
    rec.view("wd_curve")[:] = [h[2] for h in hours]
    rec.view("we_curve")[:] = [h[3] for h in hours]
    return rec


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


_COUNTS = st.sampled_from([0, 0, 1, 2, 4, 255])


@hsettings(max_examples=400, deadline=None)
@given(st.one_of(  # (finite days most, for a NaN anywhere makes every sum NaN)
    st.lists(st.tuples(_KW32, _COUNTS, _F16_FINITE, _F16_FINITE), min_size=24, max_size=24),
    st.lists(st.tuples(_F32, _COUNTS, _F16, _F16), min_size=24, max_size=24)),
    st.booleans())
def test_the_compiled_numbers_of_a_close_are_numpys(hours, off):
    """Each hour's mean (the usual curve's value without readings), the day's energy, the usual
    day's and the shape correlation: the same floats as numpy's calls, NaN and infinities
    included."""
    from gridwatch.models._daily_jit import close_numbers

    rec = _record(hours)
    with np.errstate(all="ignore"):
        cnt = rec.view("day_cnt").astype(np.float32)
        typical = rec.view("we_curve" if off else "wd_curve").astype(np.float32)
        curve = np.where(cnt > 0, rec.view("day_sum") / np.maximum(cnt, 1), typical)
        want = (float(np.count_nonzero(cnt)), float(np.add.reduce(curve)),
                float(np.add.reduce(typical)), _daily._shape_corr(curve, typical))
        got_curve = np.empty(24, np.float32)
        got_typical = np.empty(24, np.float32)
        got = close_numbers(rec.h.buffer_info()[0], off, got_curve.ctypes.data,
                            got_typical.ctypes.data)
    assert got_curve.tobytes() == curve.astype(np.float32).tobytes()
    assert got_typical.tobytes() == typical.tobytes()
    assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)


@hsettings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_F32, _KW32, _TIES), min_size=24, max_size=24),
       st.lists(_F16, min_size=48, max_size=48))
def test_the_compiled_rounding_is_round_to_four_decimals(curve, usual):
    """The day's curve and the two usual curves rounded as ``_rounded`` rounds them (which is
    ``round(v, 4)`` of each), ties and non-finite values included."""
    rec = MeterState("m")
    rec.view("wd_curve")[:] = usual[:24]
    rec.view("we_curve")[:] = usual[24:]
    c = np.asarray(curve, dtype=np.float32)
    want = _daily._rounded(c, rec.view("wd_curve"), rec.view("we_curve"))
    kernel = _kernels()[1]
    sc = _daily._scratch()
    sc.curve[:] = c  # (where the close leaves the day's curve)
    got = _daily._rounded_compiled(kernel, sc, rec.h)
    assert [list(map(repr, x)) for x in got] == [list(map(repr, x)) for x in want]


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_KW32, st.integers(0, 8), _F16_FINITE, _F16_FINITE),
                min_size=24, max_size=24),
       st.integers(0, 40), st.integers(0, 40), st.integers(0, 40),
       st.floats(0.0, 100.0), st.integers(0, 8))
def test_a_whole_close_compiled_is_numpys(hours, days, wd_days, we_days, hist_kwh, low):
    """The whole close through the compiled numbers and through numpy's: the same profile,
    the same events (possible theft and level shifts judged on the day), and the same record
    after it, byte for byte."""
    s = DetectionSettings()
    cal = Calendar(s.timezone, s.holiday_country)
    base = _record([(kw * max(n, 1), n, wd, we) for kw, n, wd, we in hours])
    base.days, base.wd_days, base.we_days = days, wd_days, we_days
    base.hist_kwh = hist_kwh
    base.low_days = (T0.timestamp(), low) if low else (0.0, 0)
    t = T0.timestamp() + 3 * 86_400
    results = []
    for on in (False, True):
        rec = MeterState.from_bytes(base.to_bytes())
        out: list = []
        with compiled(on), np.errstate(all="ignore"):
            if on:
                assert _daily.COMPILED[0] is not None
            profile = _daily._close_day(rec, None, s, cal, t, out)
        results.append((profile, [e.model_dump() for e in out], rec.to_bytes()))
    assert results[1] == results[0]


def test_kept_code_of_another_layout_is_compiled_anew():
    """Kept machine code that answers another record layout than the one now is removed and
    compiled again; if it still does not match, the import fails with the module named."""
    from gridwatch.models import _daily_jit
    from gridwatch.models._quiet_jit import keep_current

    functions = (_daily_jit.close_numbers, _daily_jit.rounded)
    with pytest.raises(ImportError, match="the day's close does not match"):
        keep_current(_daily_jit.__file__, _daily_jit._layout, ("another",), functions,
                     "the day's close")
    # compiled anew from this layout: it answers the layout now, and the close computes
    assert tuple(_daily_jit._layout()) == _daily_jit._LAYOUT_NOW
    keep_current(_daily_jit.__file__, _daily_jit._layout, _daily_jit._LAYOUT_NOW, functions,
                 "the day's close")  # (current: nothing to do)
    rec = _record([(2.0, 1, 1.0, 1.0)] * 24)
    curve, typical = np.empty(24, np.float32), np.empty(24, np.float32)
    covered, kwh, usual, _ = _daily_jit.close_numbers(
        rec.h.buffer_info()[0], False, curve.ctypes.data, typical.ctypes.data)
    assert (covered, kwh, usual) == (24.0, 48.0, 24.0)
