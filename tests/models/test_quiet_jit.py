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


def test_the_quiet_path_calls_the_kernels_entry_point_without_numba_dispatch() -> None:
    """``quiet_step`` calls the kernel's compiled entry point (``direct``), not numba's
    dispatcher; both give the same answer for the same arguments, since the dispatcher
    chooses among one signature and calls that same entry point."""
    from gridwatch import Settings
    from gridwatch.models import _quiet
    from gridwatch.models._meter import MeterState
    from gridwatch.models._record import X_BYTES

    _quiet.use_compiled(True)
    entry = _quiet._JIT[0]
    assert entry is _quiet_jit.direct(_quiet_jit.kernel)
    assert entry is not _quiet_jit.kernel
    rec = MeterState("m1")
    consts = _quiet.consts(Settings().detection)
    hp = rec.h.buffer_info()[0]
    args = (hp + X_BYTES, hp, 0, consts.jit_at,
            1.7e9, 1.25, 10.0, True, 900, 900.0, False, 1, 230.0, 0.0, 0.0, 230.0, 0,
            0, 0.0, 0.0, 0.0, 0.98, True, 10, 738_000, 0.2, 1.5, 0, 0, False, 0, 0.0, 0,
            0, 0, 0, False, -1, False, 0, 0, 0, 0.0, 0, 0, 0)
    assert entry(*args) == _quiet_jit.kernel(*args)  # (a new meter: not quiet, unchanged)
    assert rec.h == MeterState("m1").h


def test_direct_refuses_a_function_compiled_for_several_signatures() -> None:
    import numba
    import pytest

    @numba.njit(["int64(int64)", "float64(float64)"])
    def twice(v):  # type: ignore[no-untyped-def]
        return v * 2

    with pytest.raises(ValueError):
        _quiet_jit.direct(twice)
