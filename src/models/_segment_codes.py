"""The codes :func:`gridwatch.models._segment_jit.day_numbers` answers with, the rule of the
tags' code and the switch that holds the compiled function, importable without numba
(``_segment`` reads them on either path; the compiled function compiles :func:`shape_code`
itself; ``_quiet.use_compiled`` sets the switch without importing ``_segment``)."""

from __future__ import annotations

from typing import Any

#: the compiled numbers of a meter-day (``_segment_jit.entry_point()``) while the compiled path
#: is on (set and cleared by ``_quiet.use_compiled``), else None: numpy's path
COMPILED: list[Any] = [None]

#: the tags' code: the shape's tag (low three bits), then the night-heavy and weekend-closed bits
FLAT, EVENING, TWO_SHIFT, DAYTIME, MORNING = 1, 2, 3, 4, 5
NIGHT_HEAVY, WEEKEND_CLOSED = 8, 16
#: the class's tag alone (the weekday curve's mean is not positive); numpy's path answers (a NaN)
CLASS_ONLY, NUMPY = -1, -2
#: the centre ``day_numbers`` answers when the features are to seed the next centre
NEW_CENTRE = -2
#: what ``day_numbers`` writes: the 48 features, then the day curve's night mean (hours 0-5)
#: and day mean (hours 8-19)
OUT_SIZE = 50


def shape_code(peak: float, low: float, top: int, high_hours: int, night: float, day: float,
               c_mean: float, w_mean: float) -> int:
    """The tags' code of a weekday curve whose mean ``c_mean`` is not zero or less: its ``peak`` and
    ``low`` value, the hour of its (first) peak, the hours at 70 % of the peak or more, the
    means of hours 0-5 (``night``) and 8-19 (``day``); and the day-off curve's mean
    ``w_mean`` (NaN: none of 24 values)."""
    code = 0
    if low > 0 and peak / low < 1.5:
        code = FLAT
    elif 17 <= top <= 22 and high_hours <= 8:
        code = EVENING
    elif 14 <= high_hours < 22 and night < 0.7 * peak:
        code = TWO_SHIFT
    elif day > 2 * (1e-9 if night < 1e-9 else night):  # (max(night, 1e-9), NaN kept)
        code = DAYTIME
    elif 6 <= top <= 10:
        code = MORNING
    if night > 1.2 * day:
        code += NIGHT_HEAVY
    if w_mean < 0.5 * c_mean:
        code += WEEKEND_CLOSED
    return code
