"""The codes :func:`gridwatch.models._segment_jit.day_numbers` answers with, importable
without numba (``_segment`` reads them on either path)."""

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
