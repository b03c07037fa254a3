"""``python -m gridwatch.models._warm``: compile the detectors' quiet path (and the day's close
and the segmenter's numbers) now, if they are not yet.

numba keeps the machine code of :mod:`gridwatch.models._quiet_jit`,
:mod:`gridwatch.models._daily_jit` and :mod:`gridwatch.models._segment_jit` beside the
modules; the first
process to load it on a machine compiles it (some seconds), later ones load it in a fraction
of a second. ``make`` runs this once after installing, so that no engine start and no test
pays for the compilation."""

from __future__ import annotations

import sys
import time


def main() -> int:
    """Loads (compiling when needed) the compiled quiet path; says how long it took."""
    t0 = time.perf_counter()
    from gridwatch.models._quiet import _JIT, use_compiled

    use_compiled(True)
    took = time.perf_counter() - t0
    if _JIT[0] is None:
        print("gridwatch: the compiled quiet path is off (GRIDWATCH_JIT=0 or numba missing): "
              "detection runs the Python quiet path", file=sys.stderr)
    elif took > 3:
        print(f"gridwatch: compiled the detectors' quiet path in {took:.0f} s (kept for later "
              "runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
