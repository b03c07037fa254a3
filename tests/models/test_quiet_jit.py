"""The compiled quiet path's own encoders equal Python's, value for value.

``_enc_f16`` stands for ``struct``'s half-precision packing (one rounding of the double, ties to
even) and ``_rint`` for Python's ``round``; the kernel's use of them is covered by
``test_quiet_path.py``, which runs every stream through the kernel and the full path."""

from __future__ import annotations

import math
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from gridwatch.models import _quiet_jit

_F16_MAX = 65_504.0


def _struct_f16(v: float) -> int:
    return int(struct.unpack("<H", struct.pack("<e", v))[0])


@given(st.floats(-_F16_MAX, _F16_MAX, allow_nan=False))
@example(0.0)
@example(-0.0)
@example(5.960464477539063e-08)  # (the smallest subnormal half)
@example(2.9802322387695312e-08)  # (half of it: a tie, to even: zero)
@example(6.103515625e-05)  # (the smallest normal half)
@example(_F16_MAX)
def test_f16_encoding_equals_struct(v: float) -> None:
    assert _quiet_jit._enc_f16(v) == _struct_f16(v)


def test_f16_encoding_of_every_half_and_every_tie_between_neighbours() -> None:
    """Each finite half value, and the midpoint between it and the next (where ties to even
    decide), encodes as ``struct`` encodes it."""
    for code in range(0x10000):
        v = struct.unpack("<e", struct.pack("<H", code))[0]
        if not math.isfinite(v):
            continue
        assert _quiet_jit._enc_f16(v) == _struct_f16(v) == code
        nxt = struct.unpack("<e", struct.pack("<H", (code + 1) & 0xFFFF))[0]
        if math.isfinite(nxt) and (code & 0x7FFF) != 0x7BFF and code != 0x7FFF:
            mid = (v + nxt) / 2
            if abs(mid) <= _F16_MAX:
                assert _quiet_jit._enc_f16(mid) == _struct_f16(mid), (code, mid)


@given(st.one_of(st.floats(-1e12, 1e12, allow_nan=False),
                 st.integers(-10**9, 10**9).map(lambda i: i + 0.5)))
def test_rint_equals_python_round(v: float) -> None:
    assert _quiet_jit._rint(v) == round(v)
