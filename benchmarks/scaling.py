"""How memory and throughput grow with the fleet: 10^4, 10^5 and 10^6 meters in one table.

For each size, in a fresh process, the simulated utility fleet
(``config/fleets/utility-100k.yaml`` scaled, grid cells of about 435 meters as in the full
fleet) runs three 15-minute intervals through the dataflow's per-cell step (``CellLogic``: the
silence watch and every meter's ``MeterState``, the objects a worker holds), without bytewax
and without storage, so that 10^6 meters take minutes rather than hours:

1. interval 1 builds every meter's state (a meter's first reading: the costliest), read as
   the engine reads it: the interval is first written to a journal (``dataflow.py``'s
   ``build_journal``, in this process), then read back in a fresh one, 1,000 records at a
   time, decoded by the engine's ``decode_record``.
   **Resident memory per meter** is the process's RSS growth over it, divided by meters; the
   compiled quiet path is loaded before it, as the dataflow loads it when it is built (its
   resident size is printed apart: the process's, not its meters'). Beside it, in a third
   process, interval 1's memory fed straight from the simulator (the figure before
   2026-12-01 19:50 UTC): the simulator computes the interval as arrays and lists of every
   meter's values, and those, freed among the meters' buffers, leave free heap behind (152 B
   a meter at 2 * 10^5 meters by glibc's ``mallinfo2``, all of it handed back by
   ``malloc_trim``; the simulator-fed figure was 302 B a meter above the journal-fed one at
   10^6): the simulator's memory, not the engine's. At 10^4 meters the journal-fed figure
   falls below the object census: the states take up memory the process had freed before;
2. interval 2, the **baseline**: ``MeterState.step`` over the interval's readings in a plain
   loop, on the same states (the detectors alone);
3. interval 3: the same readings' shape through ``CellLogic.on_batch`` in batches per cell,
   as the source hands them over: **readings/s**, and the ratio to the baseline.

Intervals 2 and 3 time their first ``--timed`` readings (200,000 by default: at 10^6 meters
the cells still hold every meter, but the run stays near four minutes).

Beside the resident figure, the pickled ``MeterState.to_bytes()`` per meter (a sample of
1,000 meters) is the baseline of memory: what the state holds, serialised; and a census of the
objects the cells hold per meter (``sys.getsizeof`` by part: the state's buffers and object,
the meter id, theft windows, the cells' dictionaries, the watch's and the lane's columns),
what the resident figure is made of before the allocators' own overhead.

Usage: ``python benchmarks/scaling.py`` (all three sizes, about 9 minutes on 2 cores, most of
it building 10^6 meters' state), ``--sizes 10000 100000`` (a quicker pass). Figures go to the
terminal and to ``var/bench/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dataflow import build_journal  # noqa: E402

CHILD = r'''
import gc, json, pickle, sys, time
sys.path.insert(0, {here!r})
from dataflow import fleet_of
from _e2e_lib import rss_bytes
from gridwatch import Settings
from gridwatch.models import Calendar
from gridwatch.ingest import Journal
from gridwatch.ingest._journal import decode_record
from gridwatch.models._quiet import use_compiled
from gridwatch.simulators import Simulation
from gridwatch.stream import ReadingBatch
from gridwatch.stream._flow import watch_key
from gridwatch.stream._logic import CellLogic

meters = {meters}

def object_census(cells):
    """Bytes of the objects the cells hold for their meters (``sys.getsizeof``, each object
    counted once), by part: what the resident figure is made of, before the allocators'
    own overhead."""
    size = sys.getsizeof
    out = dict.fromkeys(("state buffer h (and its scalars)", "state object", "meter id",
                         "theft windows", "cell dicts (meters, registry entries, watch)",
                         "watch columns", "lane columns"), 0)
    for cell in cells.values():
        w = cell.watch
        out["cell dicts (meters, registry entries, watch)"] += (
            size(cell.meters) + size(cell._kept.known) + size(w.slot))
        out["watch columns"] += sum(map(size, (w._last, w._iv, w._st, w._since)))
        lane = cell.lane
        if lane is not None:  # (numpy arrays: getsizeof counts their data)
            out["lane columns"] += sum(map(size, (lane.addrs, lane.meters, lane.ready,
                                                  lane.metas, lane.forecast_iv, lane.profiles)))
        for st in cell.meters.values():
            out["state buffer h (and its scalars)"] += size(st.h)
            out["state object"] += size(st)
            out["meter id"] += size(st.meter_id)
            if st.th is not None:
                out["theft windows"] += size(st.th)
    return out

def say(msg):
    print(msg, file=sys.stderr, flush=True)

det = Settings().detection
cal = Calendar(det.timezone, det.holiday_country)
sim = Simulation(fleet_of(meters, 3))
meta = {{m.meter_id: m.meta() for m in sim.meters}}
n = len(meta)
lookup = meta.get
key = {{m: watch_key(m, mm) for m, mm in meta.items()}}
blocks = sim.blocks()
cells = {{}}

def feed(readings, limit=None):
    """One interval's readings through the cells (its first ``limit``), 1,000 readings at a
    time grouped per cell."""
    count = 0
    chunk = []
    def flush():
        groups = {{}}
        for r in chunk:
            groups.setdefault(key[r.meter_id], []).append(r)
        for k, rs in groups.items():
            cell = cells.get(k)
            if cell is None:
                cell = cells[k] = CellLogic(None, det, cal, lookup, float(det.interval_s),
                                            float(det.lateness_s), snapshots=False)
            cell.on_batch([ReadingBatch(k, tuple(rs), "p0")])
        chunk.clear()
    for r in readings:
        chunk.append(r)
        count += 1
        if len(chunk) == 1000:
            flush()
        if count == limit:
            break
    flush()
    return count

def from_journal():
    """Interval 1 as the engine reads it: the journal's records (each cell's in one of two
    partitions), 1,000 at a time, each decoded by the engine (``decode_record``)."""
    for part in (0, 1):
        journal = Journal({journal!r}, part, readonly=True)
        offset = journal.start_offset
        while batch := journal.read(offset, 1000):
            for _o, data in batch:
                yield from decode_record(data)
            offset = batch[-1][0] + 1
        journal.close()

# the compiled quiet path is loaded first, as the dataflow loads it when it is built: its
# machine code and numba's modules (about 100 MiB here) are the process's, not its meters'
rss_bare = rss_bytes()
use_compiled(True)
gc.collect()
rss0 = rss_bytes()
say(f"  {{n:,}} meters: interval 1 (every meter's first reading) ...")
t0, c0 = time.perf_counter(), time.process_time()
r1 = feed(from_journal() if {journal!r} else sim.block_readings(next(blocks)))
t1, c1 = time.perf_counter(), time.process_time()
gc.collect()
rss1 = rss_bytes()
if {journal!r}:
    next(blocks)  # (interval 1's block: its readings came from the journal)
states = {{m: s for cell in cells.values() for m, s in cell.meters.items()}}
sample = list(states.values())[:: max(1, len(states) // 1000)]
pickled = sum(len(s.to_bytes()) for s in sample) / len(sample)
census = object_census(cells)
if {memory_only}:
    print(json.dumps({{"meters": n, "bytes_per_meter": (rss1 - rss0) / n,
                      "census": {{k: v / n for k, v in census.items()}}}}))
    sys.exit(0)

say("  interval 2: MeterState.step in a plain loop (baseline) ...")
t2, c2 = time.perf_counter(), time.process_time()
r2 = 0
for r in sim.block_readings(next(blocks)):
    st = states.get(r.meter_id)
    if st is None:
        continue
    st.step(r, lookup(r.meter_id), None, det, cal)
    r2 += 1
    if r2 == {timed}:
        break
t3, c3 = time.perf_counter(), time.process_time()

# the plain loop stepped the states behind the cells' backs: what their lanes kept of the
# meters is dropped (a cell's lane sets a meter's row again after a reading of it in Python)
for cell in cells.values():
    cell.lane = None

say("  interval 3: CellLogic.on_batch per cell ...")
r3 = feed(sim.block_readings(next(blocks)), {timed})
t4, c4 = time.perf_counter(), time.process_time()
print(json.dumps({{
    "meters": n, "cells": len(cells), "rss_before": rss0, "rss_after": rss1,
    "kernel_rss": rss0 - rss_bare,
    "bytes_per_meter": (rss1 - rss0) / n, "pickled_per_meter": pickled,
    "census": {{k: v / n for k, v in census.items()}},
    "cold_per_s": r1 / (t1 - t0), "cold_per_cpu_s": r1 / (c1 - c0),
    "step_per_s": r2 / (t3 - t2), "step_per_cpu_s": r2 / (c3 - c2),
    "cell_per_s": r3 / (t4 - t3), "cell_per_cpu_s": r3 / (c4 - c3),
}}))
'''


def _child(code: str, what: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def run_size(meters: int, timed: int) -> dict[str, Any]:
    """One fleet size: interval 1 written to a journal first (its own process), then the run
    fed from it; then interval 1's memory again, fed by the simulator (as before)."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gridwatch-scaling-") as tmp:
        fleet = Path(tmp) / "fleet"
        journal = str(fleet / "journal")
        say(f"  {meters:,} meters: interval 1 written to a journal ...")
        # (the fleet's first interval is the same whatever its length: fleet_of(meters, 1))
        build_journal(meters, 1, fleet, baselines=False)
        out = _child(CHILD.format(here=str(HERE), meters=meters, timed=timed,
                                  journal=journal, memory_only=False),
                     f"the {meters:,}-meter run")
    say("  interval 1 again, fed by the simulator: memory only ...")
    sim = _child(CHILD.format(here=str(HERE), meters=meters, timed=timed, journal="",
                              memory_only=True), f"the {meters:,}-meter simulator-fed run")
    out["bytes_per_meter_simulator"] = sim["bytes_per_meter"]
    out["seconds"] = time.perf_counter() - t
    return out


def say(msg: str) -> None:
    print(msg, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--timed", type=int, default=200_000,
                    help="readings of intervals 2 and 3 timed (the first ones of each)")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        print(f"{n:,} meters ...", flush=True)
        r = run_size(n, args.timed)
        rows.append(r)
        print(f"  done in {r['seconds']:.0f} s", flush=True)
    head = ("meters", "cells", "RSS B/meter", "simulator-fed", "pickled B/meter",
            "first reading r/s",
            "step loop r/s (baseline)", "cell step r/s", "ratio (CPU)")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join([
            f"{r['meters']:,}", f"{r['cells']:,}", f"{r['bytes_per_meter']:,.0f}",
            f"{r['bytes_per_meter_simulator']:,.0f}",
            f"{r['pickled_per_meter']:,.0f}", f"{r['cold_per_s']:,.0f}",
            f"{r['step_per_s']:,.0f} ({r['step_per_cpu_s']:,.0f}/CPU-s)",
            f"{r['cell_per_s']:,.0f} ({r['cell_per_cpu_s']:,.0f}/CPU-s)",
            f"{r['cell_per_s'] / r['step_per_s']:.2f} "
            f"({r['cell_per_cpu_s'] / r['step_per_cpu_s']:.2f})"]))
    for r in rows:
        parts = r["census"]
        print(f"objects per meter at {r['meters']:,} meters ({sum(parts.values()):,.0f} B; "
              f"resident {r['bytes_per_meter']:,.0f} B): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in parts.items()))
    print("the compiled quiet path, loaded before interval 1: "
          + ", ".join(f"{r['kernel_rss'] / 2**20:,.0f} MiB" for r in rows) + " resident")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"from {a['meters']:,} to {b['meters']:,} meters: memory per meter x"
              f"{b['bytes_per_meter'] / a['bytes_per_meter']:.2f}, cell step per CPU-second x"
              f"{b['cell_per_cpu_s'] / a['cell_per_cpu_s']:.2f}")
    out = ROOT / "var" / "bench" / "scaling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
