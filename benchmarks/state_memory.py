"""Resident memory per meter of the detectors' state, at 10^5 and 10^6 meters.

Each figure is measured in a fresh process: a warmed meter state (three weeks of 15-minute
readings through ``MeterState.step``) is cloned from its snapshot N times into a dict keyed by
meter id, as the dataflow keeps its meters, and the growth of the resident set is divided by N.
Beside it, in the same run:

* ``empty dict``: the container and a key per meter with an empty dict as the value (what any
  per-meter state costs before holding anything);
* ``version 4 layout``: the same state held as version 4 held it (one numpy array per part
  and the same scalars), rebuilt from the version 4 field names and dtypes.

First, what a meter's snapshot costs to write (``MeterState.to_bytes``, the record by position,
version 7) beside the same record written by name as version 6 wrote it (``by_name``, the
engine's writer before version 7, kept here as the baseline), in turns, best of 5: a cell
with recovery writes every meter of its own at each epoch's end.

    .venv/bin/python benchmarks/state_memory.py --serialise     # the snapshot's cost alone

    .venv/bin/python benchmarks/state_memory.py                 # 10^5 and 10^6: ~2 minutes
    .venv/bin/python benchmarks/state_memory.py --meters 100000 # one size only
"""

from __future__ import annotations

import argparse
import gc
import math
import pickle
import resource
import subprocess
import sys
import time
from dataclasses import field, make_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
#: version 4's numpy dtype of each array part (the other fields were scalars, as now)
V4_ARRAYS = {"tow_n": np.uint16, "tow_mu": np.float32, "lv_n": np.uint16, "lv_mu": np.float32,
             "lv_dev": np.float32, "lv_kw": np.float32, "wd_curve": np.float32,
             "we_curve": np.float32, "day_sum": np.float32, "day_cnt": np.uint8,
             "peaks": np.float32, "th_obs": np.float32, "th_exp": np.float32,
             "th_cnt": np.uint8}


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def template(customer_class: str) -> bytes:
    """The snapshot of one meter after three weeks of readings."""
    from gridwatch import MeterMeta, Reading
    from gridwatch.models import Calendar, DetectionSettings, MeterState

    s = DetectionSettings()
    cal = Calendar()
    meta = MeterMeta(meter_id="m0", customer_class=customer_class, contracted_kva=20.0)
    rng = np.random.default_rng(3)
    st = MeterState("m0")
    kwh = 0.0
    for i in range(21 * 96):
        ts = T0 + i * STEP
        h = ts.hour + ts.minute / 60
        kw = max(1.0 + 0.8 * math.exp(-(((h - 19) / 2) ** 2)) + rng.normal(0, 0.05), 0.0)
        kwh += kw / 4
        r = Reading.model_construct(
            meter_id="m0", ts=ts, kw=round(kw, 3), kwh=round(kwh, 2), export_kwh=None,
            voltage=(round(float(rng.normal(230, 2)), 1),), current=None, pf=0.95, freq=None,
            status=(), interval_s=None)
        st.step(r, meta, None, s, cal)
    return st.to_bytes()


def v4_layout() -> Any:
    """A class holding the state as version 4 did: slots, one numpy array per part."""
    from gridwatch.models._record import CELL_FIELDS, I_FIELDS, X_FIELDS, MeterRecord

    names = [f for f in MeterRecord.__dataclass_fields__ if f not in ("h", "th", "x")]
    names += list(CELL_FIELDS) + list(X_FIELDS) + list(I_FIELDS) + list(V4_ARRAYS)
    return make_dataclass("V4Record", [(n, Any, field(default=None)) for n in names],
                          slots=True)


def measure(kind: str, n: int, customer_class: str) -> float:
    """Bytes of resident memory per meter for ``n`` meters of one kind (in this process)."""
    from gridwatch.models import MeterState

    blob = template(customer_class)
    _, state = pickle.loads(blob)
    ids = [f"m{i:07d}" for i in range(n)]
    cls = v4_layout() if kind == "v4" else None
    gc.collect()
    gc.disable()
    before = rss()
    meters: dict[str, Any] = {}
    if kind == "empty":
        for m in ids:
            meters[m] = {}
    elif kind == "now":
        for m in ids:
            st = MeterState.from_bytes(blob)
            st.rec.meter_id = m
            meters[m] = st
    else:
        assert cls is not None
        # version 4 held every part, the theft window's included, whatever the class
        rec = MeterState.from_bytes(blob)
        held = rec.th is not None
        arrays = {k: (np.asarray(rec.view(k), dt).tobytes() if held or not k.startswith("th_")
                      else bytes(24 * np.dtype(dt).itemsize), dt)
                  for k, dt in V4_ARRAYS.items()}
        scalars = {k: v for k, v in state.items() if k not in V4_ARRAYS}
        for m in ids:
            s2 = pickle.loads(pickle.dumps(scalars))  # distinct objects, as a restore has
            rec = cls(**s2)
            for k, (v, dtype) in arrays.items():
                setattr(rec, k, np.frombuffer(v, dtype).copy())
            rec.meter_id = m
            meters[m] = rec
    gc.enable()
    gc.collect()
    grown = rss() - before
    return grown / n


def by_name(rec: Any) -> bytes:
    """The record as version 6 wrote it, each field by its name (``MeterRecord.to_bytes``
    before version 7, which ``MeterRecord.from_bytes`` still reads)."""
    from gridwatch.models._record import _CELLS, _DICTS, _PARTS, _PLAIN, I_FIELDS, X_FIELDS

    state: dict[str, Any] = {name: getattr(rec, name) for name in _PLAIN}
    for name in _DICTS:
        state[name] = dict(getattr(rec, name))
    x = rec.x
    state.update(zip(X_FIELDS, x, strict=False))
    state.update((name, int(x[i])) for i, name in enumerate(I_FIELDS, len(X_FIELDS)))
    h, th = rec.h, rec.th if rec.th_hour else None
    for name, (buf_name, off, size, enc, dtype) in _PARTS.items():
        if buf_name == "th":
            if th is not None:
                part = th[off:off + size]
                state[name] = bytes(map(int, part)) if dtype is np.uint8 else part.tobytes()
        else:
            state[name] = h[off:off + int(size * _CELLS[enc])].tobytes()
    return pickle.dumps((6, state), protocol=5)


def serialisation(cls: str, rounds: int = 5, n: int = 20_000) -> None:
    """µs a meter of ``to_bytes`` (version 7) and ``by_name`` (version 6), in turns."""
    from gridwatch.models import MeterState

    state = MeterState.from_bytes(template(cls))
    writers = {"by position": state.to_bytes, "by name": lambda: by_name(state)}
    best = dict.fromkeys(writers, math.inf)
    for _ in range(rounds):
        for name, write in writers.items():
            t = time.perf_counter()
            for _ in range(n):
                write()
            best[name] = min(best[name], (time.perf_counter() - t) / n * 1e6)
    v7, v6 = state.to_bytes(), by_name(state)
    assert MeterState.from_bytes(v6).to_bytes() == v7  # (the same record either way)
    print(f"{cls} meter's snapshot: version 7 (by position) {best['by position']:.2f} µs, "
          f"{len(v7):,} B; version 6 (by name) {best['by name']:.2f} µs, {len(v6):,} "
          f"B: {best['by name'] / best['by position']:.1f}x as fast, "
          f"{len(v7) / len(v6):.2f} of the bytes", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, action="append",
                    help="fleet size (repeatable; default 100000 and 1000000)")
    ap.add_argument("--serialise", action="store_true",
                    help="only what a meter's snapshot costs to write, version 7 against 6")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "N", "CLASS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, n, cls = args.one
        print(f"{measure(kind, int(n), cls):.1f}")
        return
    for cls in ("residential", "commercial"):
        serialisation(cls)
    if args.serialise:
        return
    from gridwatch.models import MeterState
    from gridwatch.models._record import RECORD_VERSION

    sizes = args.meters or [100_000, 1_000_000]
    now = f"version {RECORD_VERSION}"
    print("resident bytes per meter, each figure in a fresh process "
          "(warmed state: three weeks of 15-minute readings)")
    for cls in ("residential", "commercial"):
        blob = template(cls)
        print(f"\n{cls} meter: snapshot {len(blob)} B, record version "
              f"{pickle.loads(blob)[0]}, theft window "
              f"{'held' if MeterState.from_bytes(blob).rec.th is not None else 'none'}")
        print(f"{'meters':>10} {'empty dict':>11} {'version 4':>10} {now:>10} "
              f"{'v4 / now':>8} {'now - empty':>11}")
        for n in sizes:
            got = {}
            for kind in ("empty", "v4", "now"):
                out = subprocess.run([sys.executable, __file__, "--one", kind, str(n), cls],
                                     capture_output=True, text=True, check=True)
                got[kind] = float(out.stdout.strip().splitlines()[-1])
            print(f"{n:>10,} {got['empty']:>11.0f} {got['v4']:>10.0f} {got['now']:>10.0f} "
                  f"{got['v4'] / got['now']:>7.2f}x {got['now'] - got['empty']:>11.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
