"""The dataflow alone, and how it grows: readings/s from the journal with no storage, one and two
processes; replay of the real set against a plain CSV pass; memory per meter.

Every figure is printed beside a baseline measured in the same run, as a ratio, in wall time
and in CPU time (readings per CPU-second of the process: on a shared machine the wall rate
says as much about the neighbours as about the dataflow):

* ``journal``: the simulated utility fleet (``config/fleets/utility-100k.yaml``, scaled to
  ``--meters``) for ``--intervals`` 15-minute intervals, written to a two-partition journal in
  100-reading groups, each a batch record as the engine's collector process journals a
  compact batch (``--records reading``: a record a reading, as before batch records; what
  ``--against`` a revision before them needs), each grid cell's readings in one partition
  (the cells shared out between the two by meter count, largest first: as when each
  process's collector hears the concentrators of its own cells).
  Baselines: reading and decoding every journal record in one plain loop (the source's own
  cost), and ``MeterState.step`` over the same readings in a plain loop (the detectors' own
  cost, the floor of any flow that runs them per reading); the same loop in forked
  processes, one over every reading, then two at once over one partition each, nothing
  shared: what this machine's two cores give this work (the ceiling of a 2-process flow).
* ``flow``: the whole detection dataflow (``build_flow``: per-cell silence watch and every
  meter's ``MeterState.step``, segment models) over that journal, with only a counting event
  sink, in 1 process and in a 2-process bytewax cluster whose processes each list only their
  own journal partition (as on two machines); readings/s from the first to the last item.
  The cluster runs three times: cells keyed as bytewax's hash sends them (about half the
  reading batches cross to the other process); placed (``engine.placement``: each cell keyed
  to the process that reads its partition, so no reading crosses); and placed exclusively
  (``engine.placement_exclusive``: the cells know that their readings come from their own
  partition only, so they step them as they come instead of waiting for the other
  partition, as the journal here allows). Each run counts the pickling
  of reading batches (a batch is pickled only to cross to another process, and bytewax's
  timely exchange pickles it twice on the way: once to size the message, once to write it).
* ``replay``: ``gridwatch replay`` of ``/work/shared/datasets/sgsc45/readings.csv.gz``
  (decompressed first) without a database against a plain ``csv.reader`` pass over the same
  file, with 1 and with 2 processes (``--processes``) in turns (``--replay-processes N``,
  ``--replay-rounds N``); the events of each are compared with the first's (those a
  customer class's segments judge apart: one process's segment stage learns the meter-days
  in the order its dataflow finishes them, several processes' in the order of the days).
  Beside them, without a registry: as many independent ``gridwatch replay`` processes at
  once, each over the lines of one process's share (each its own segment stage), the
  ceiling of a replay on that many processes here. And the replay's fixed cost: the same
  command over the file's first ``STARTUP_LINES`` lines (start-up, the compiled code's
  loading, the flow's building), the ratio to the csv pass a replay costing nothing a
  reading would reach, and what a reading costs beyond it.
  ``--replay-fleet-days DAYS`` replays that many days of the simulated demo fleet instead
  (about 300 meters in five grid cells, three customer classes, with its registry).
* ``memory``: resident memory per meter of a dataflow holding 10^4, 10^5 (and with
  ``--full`` 10^6) meters after ``--memory-intervals`` intervals, beside its throughput: the
  peak RSS over the run less the RSS before it, fed from a journal of the fleet by the
  engine's ``JournalSource`` (as the engine is fed); beside it, fed straight from the
  simulator (the figure before 2026-12-01 19:50 UTC: the simulator's arrays of every meter's
  values, freed among the meters' buffers, leave free heap in the process).

Usage: ``python benchmarks/dataflow.py`` (a few minutes), ``--only PART`` (repeatable),
``--meters N``, ``--intervals N``, ``--full``; ``--flow-rounds N`` runs the flow's four
layouts N times in turns and prints the median of each 2-process run against the 1-process
run of its own round. Figures go to ``var/bench/dataflow.json``.
Comparisons of the 1-process flow, runs taken in turns (with ``--only flow``, instead of the
runs above): ``--gc-pairs N`` (Python's collector settings vs the engine's
``engine.gc_threshold``), ``--against DIR --pairs N`` (the ``gridwatch`` package in ``DIR``,
e.g. an export of main's ``src`` as ``DIR/gridwatch``, vs this tree; with ``--only replay``,
replays of sgsc45 in turns, checked to write the same alerts byte for byte;
``--flow-processes 2``: the flows on two processes, cells placed exclusively or as
``--flow-cells`` says). The flow runs
themselves use the engine's collector settings (``tuned_gc``, as ``gridwatch run`` does);
figures before 2026-12-01 10:00 UTC kept Python's, 7-17 % slower (``--gc-pairs``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import multiprocessing
import os
import pickle
import shutil
import socket
import statistics
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _data import SGSC45

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "dataflow"
#: the lines of the replay that measures its fixed cost (``--only replay``)
STARTUP_LINES = 1_000
FLEET_100K = ROOT / "config" / "fleets" / "utility-100k.yaml"


#: Meters per grid cell in the utility fleet (100,000 meters in 230 cells).
FLEET_CELL_METERS = 435


def fleet_of(meters: int, intervals: int, cell_meters: int = FLEET_CELL_METERS) -> Any:
    """The utility fleet scaled to about ``meters`` meters, for ``intervals`` intervals, in
    grid cells of about ``cell_meters`` meters."""
    import yaml

    from gridwatch.simulators import Fleet

    data = yaml.safe_load(FLEET_100K.read_text())
    factor = meters / 100_000
    for spec in data["customers"].values():
        spec["count"] = max(1, round(spec["count"] * factor))
    cell_factor = factor * FLEET_CELL_METERS / cell_meters
    for region in data["regions"]:
        region["cells"] = max(1, round(region["cells"] * cell_factor))
    data["duration"] = f"{intervals * 15}m"
    data["meters_per_concentrator"] = 100
    data["anomalies"] = {"warmup": "0m", "rate_per_meter_day": 0.0}
    return Fleet.from_dict(data, source=str(FLEET_100K))


# -- journal ------------------------------------------------------------------------------------
def _records_of(buf: list[bytes], form: str) -> list[bytes]:
    """The journal records of 100 readings' records (``encode_item``'s): as they are
    (``reading``, a record a reading), or as the engine's collector process journals them
    sent as one compact batch (``batch``: one record, where the code has the form)."""
    if form == "batch":
        from gridwatch.ingest import _journal

        if hasattr(_journal, "BATCH_TAG"):
            tag = len(_journal.READING_TAG)
            payload = b"[" + b",".join(rec[tag:] for rec in buf) + b"]"
            whole: list[bytes] = []
            if _journal.compact_fields(payload, True, whole, whole=True) is not None and whole:
                return whole
    return buf


def build_journal(meters: int, intervals: int, directory: Path,
                  cell_meters: int = FLEET_CELL_METERS, *, baselines: bool = True,
                  form: str = "batch", order: str = "meter") -> dict[str, Any]:
    """The fleet's readings in a two-partition journal under ``directory``, and (with
    ``baselines``) the source's and the detectors' own costs over them; ``form``: the
    records (:func:`_records_of`); ``order``: each record 100 readings of the partition in
    the meters' order (``meter``: its cells' meters interleaved, a cell's batch in the
    dataflow a dozen readings at a 100,000-meter fleet's start-up), or of one data
    concentrator (``concentrator``: its cell's meters, as a concentrator's message
    journaled whole by the engine's collector process)."""
    from gridwatch import Reading
    from gridwatch.ingest import Journal
    from gridwatch.ingest._journal import encode_item
    from gridwatch.simulators import Simulation

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    sim = Simulation(fleet_of(meters, intervals, cell_meters))
    meta = {m.meter_id: m.meta() for m in sim.meters}
    (directory / "meta.pickle").write_bytes(pickle.dumps(meta))
    journals = [Journal(directory / "journal", p) for p in (0, 1)]
    # Each cell's readings in one partition, as when each process's collector hears the
    # concentrators of its own cells: a meter's readings stay in time order, and the cell can
    # be placed on the process that reads them. Cells go to the lighter partition, largest
    # first; the assignment is the placement of the placed run.
    sizes: dict[str, int] = {}
    for m in meta.values():
        sizes[m.grid_cell or ""] = sizes.get(m.grid_cell or "", 0) + 1
    load = [0, 0]
    part_of: dict[str, int] = {}
    for cell, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        p = part_of[cell] = 0 if load[0] <= load[1] else 1
        load[p] += size
    placement = {p: sorted(c for c, q in part_of.items() if q == p and c) for p in (0, 1)}
    (directory / "placement.json").write_text(json.dumps(placement))
    def part(meter_id: str) -> int:
        """The journal partition of a meter: its cell's, else a hash of its id."""
        cell = meta[meter_id].grid_cell
        return part_of[cell] if cell else zlib.crc32(meter_id.encode()) % 2

    n = 0
    bufs: list[list[bytes]] = [[], []]
    concentrator = {m.meter_id: m.concentrator_id for m in sim.meters}
    for block in sim.blocks():
        readings = sim.block_readings(block)
        if order == "concentrator":  # (a stable grouping: each meter's readings in order)
            by: dict[str, list[Reading]] = {}
            for r in readings:
                by.setdefault(concentrator[r.meter_id], []).append(r)
            for group in by.values():
                p = part(group[0].meter_id)
                for k in range(0, len(group), 100):
                    journals[p].append(_records_of(
                        [encode_item(r) for r in group[k:k + 100]], form))
                n += len(group)
            continue
        for r in readings:
            p = part(r.meter_id)
            bufs[p].append(encode_item(r))
            if len(bufs[p]) == 100:
                journals[p].append(_records_of(bufs[p], form))
                n += 100
                bufs[p] = []
    for p, buf in enumerate(bufs):
        if buf:
            journals[p].append(_records_of(buf, form))
            n += len(buf)
    for j in journals:
        j.close()
    if not baselines:
        return {"meters": len(meta), "readings": n}
    # Baseline: the source's own work, records read and decoded in a plain loop.
    from gridwatch.ingest._journal import decode_record

    t0, c0 = time.perf_counter(), time.process_time()
    seen = 0
    for p in (0, 1):
        j = Journal(directory / "journal", p, readonly=True)
        off = j.start_offset
        while True:
            recs = j.read(off, 5000)
            if not recs:
                break
            for _o, data in recs:
                seen += len(decode_record(data))
            off = recs[-1][0] + 1
        j.close()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    # Baseline 2: the detectors alone, MeterState.step over the same readings in a plain loop
    # (per meter in time order): the floor of any flow that runs them per reading.
    from gridwatch import Settings
    from gridwatch.models import Calendar, MeterState

    det = Settings().detection
    cal = Calendar(det.timezone, det.holiday_country)
    by_part: list[list[Any]] = []
    for p in (0, 1):
        j = Journal(directory / "journal", p, readonly=True)
        by_part.append([r for _o, d in j.read(j.start_offset, 10**9) for r in decode_record(d)])
        j.close()
    items = [r for part in by_part for r in part]

    def step_all(readings: list[Any]) -> None:
        states: dict[str, MeterState] = {}
        for r in readings:
            st = states.get(r.meter_id)
            if st is None:
                st = states[r.meter_id] = MeterState(r.meter_id)
            st.step(r, meta.get(r.meter_id), None, det, cal)

    t1, c1 = time.perf_counter(), time.process_time()
    step_all(items)
    sdt, scpu = time.perf_counter() - t1, time.process_time() - c1
    forked = _step_loops(step_all, by_part)
    cells = len({m.grid_cell for m in meta.values()})
    return {"meters": len(meta), "cells": cells, "readings": n, "decode_s": dt,
            "meters_by_partition": load,
            "decode_per_s": seen / dt,
            "decode_per_cpu_s": seen / cpu, "step_per_s": len(items) / sdt,
            "step_per_cpu_s": len(items) / scpu,
            "step_forked": forked,
            "step_forked_ratio": forked["1"]["wall_s"] / forked["2"]["wall_s"]}


def _step_loops(step_all: Callable[[list[Any]], None], by_part: list[list[Any]],
                rounds: int = 2) -> dict[str, Any]:
    """The plain step loop in forked processes of this (warmed) one: one process over every
    partition's readings, then one process a partition at once, released together, in
    turns (``rounds`` each, the faster kept). The second is what two cores give this work
    with nothing shared and nothing to coordinate: the ceiling of any 2-process flow over
    this journal on this machine. Each run: wall seconds from the release to the last
    process's end, and each process's CPU seconds."""
    ctx = multiprocessing.get_context("fork")

    def run(shares: list[list[Any]]) -> dict[str, Any]:
        start = ctx.Barrier(len(shares) + 1)
        results = ctx.Queue()

        def child(k: int) -> None:
            start.wait()
            c0 = time.process_time()
            step_all(shares[k])
            results.put((k, time.perf_counter(), time.process_time() - c0))

        procs = [ctx.Process(target=child, args=(k,)) for k in range(len(shares))]
        for p in procs:
            p.start()
        start.wait()
        t0 = time.perf_counter()
        got = [results.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        return {"wall_s": max(end for _k, end, _c in got) - t0,
                "cpu_s": [c for _k, _e, c in sorted(got)]}

    everything = [r for part in by_part for r in part]
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name, shares in (("1", [everything]), ("2", by_part)):
            got = run(shares)
            if name not in best or got["wall_s"] < best[name]["wall_s"]:
                best[name] = got
    return best


FLOW_CHILD = r'''
import json, pickle, sys, time
from datetime import timedelta
from typing import Any
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main
from gridwatch import Settings
from gridwatch._gc import tuned_gc
from gridwatch.ingest import JournalSource
from gridwatch.stream import Sinks, build_flow

directory, pid, procs, addrs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
exchange, cells_mode = sys.argv[5], sys.argv[6]
gc_mode = sys.argv[7] if len(sys.argv) > 7 else "python"
import gc
gc_time = [0.0, 0]
_gc_start = [0.0]
def _gc_clock(phase, info):
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    else:
        gc_time[0] += time.perf_counter() - _gc_start[0]
        gc_time[1] += 1
from gridwatch.stream import Placement, ReadingBatch
if exchange == "models":
    # baseline: reading batches cross between processes as pickled pydantic objects
    ReadingBatch.__reduce__ = lambda b: (ReadingBatch, (b.key, b.readings, b.part))
# A batch is pickled only to cross to another process (twice: timely sizes the message
# with bincode, then writes it): count the pickles.
crossed = [0, 0]
_reduce = ReadingBatch.__reduce__
def _counting(b):
    crossed[0] += 1
    given = getattr(b, "given", None)  # (a batch of fields: counted without making readings)
    crossed[1] += len(given) if given is not None else len(b.readings)
    return _reduce(b)
ReadingBatch.__reduce__ = _counting
placement = None
if cells_mode != "hashed" and procs > 1:
    cells = {int(p): c for p, c in json.loads(open(f"{directory}/placement.json").read()).items()}
    placement = Placement(cells, procs, exclusive=cells_mode == "exclusive")
meta = pickle.loads(open(f"{directory}/meta.pickle", "rb").read())
events = [0]
types = {}
first = [None]

sys.path.insert(0, sys.argv[8])
from _sources import watched_journal_source
Counting = watched_journal_source(first)

class _Part(StatelessSinkPartition[Any]):
    def write_batch(self, items):
        events[0] += len(items)
        for e in items:
            k = f"{type(e).__name__}:{getattr(e, 'type', '')}:{getattr(e, 'state', '')}"
            types[k] = types.get(k, 0) + 1

class Null(DynamicSink[Any]):
    def build(self, *a):
        return _Part()

parts = list(range(2)) if procs == 1 else [pid]  # each process lists only its own partition
source = Counting(f"{directory}/journal", partitions=parts, follow=False, batch_size=1000)
# as `gridwatch run -i/-a` does: the cells are told the cluster's partitions
everyone = JournalSource(f"{directory}/journal", partitions=[0, 1]).list_parts()
flow = build_flow(Settings(), source, Sinks(events=Null()), meta.get, snapshots=False,
                  partitions=everyone if procs > 1 else (), placement=placement)
gc.callbacks.append(_gc_clock)
# what `gridwatch run` wraps the dataflow in (engine.gc_threshold; 0 keeps Python's settings)
with tuned_gc(Settings().engine.gc_threshold if gc_mode == "tuned" else 0):
    cli_main(flow, workers_per_process=1, process_id=pid if procs > 1 else None,
             addresses=addrs.split(",") if procs > 1 else None,
             epoch_interval=timedelta(seconds=2))
t1, c1 = time.perf_counter(), time.process_time()
t0, c0 = first[0] or (t1, c1)
print(json.dumps({"pid": pid, "readings": source.accepted, "events": events[0],
                  "types": types, "seconds": t1 - t0, "cpu_s": c1 - c0,
                  "crossed_batches": crossed[0], "crossed_readings": crossed[1],
                  "gc_s": gc_time[0], "gc_collections": gc_time[1]}))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_flow(directory: Path, procs: int, exchange: str = "columns",
             cells: str = "hashed", gc_mode: str = "tuned",
             code: Path | None = None) -> dict[str, Any]:
    """``exchange``: how reading batches cross between processes, ``columns`` (the engine's
    ``ReadingBatch`` pickling) or ``models`` (pickled pydantic ``Reading`` objects).
    ``cells``: ``hashed`` (where bytewax's hash sends them), ``placed`` (each cell keyed to
    the process that reads its partition), ``exclusive`` (placed, and told that its readings
    come from that partition only). ``gc_mode``: ``tuned`` (the engine's: start-up objects
    frozen, ``engine.gc_threshold``, as ``gridwatch run`` does) or ``python`` (Python's own
    collector settings). ``code``: a directory
    holding another ``gridwatch`` package to run instead of this tree's (a comparison)."""
    addrs = ",".join(f"127.0.0.1:{free_port()}" for _ in range(procs))
    env = _env(code, PYTHONHASHSEED="0")
    children = [subprocess.Popen([sys.executable, "-c", FLOW_CHILD, str(directory), str(i),
                                  str(procs), addrs, exchange,
                                  cells, gc_mode, str(Path(__file__).resolve().parent)],
                                 stdout=subprocess.PIPE,
                                 env=env, text=True) for i in range(procs)]
    outs = [json.loads(c.communicate(timeout=1800)[0].strip().splitlines()[-1])
            for c in children]
    readings = sum(o["readings"] for o in outs)
    seconds = max(o["seconds"] for o in outs)
    cpu = sum(o["cpu_s"] for o in outs)
    types: dict[str, int] = {}
    for o in outs:
        for k, v in o["types"].items():
            types[k] = types.get(k, 0) + v
    return {"processes": procs, "exchange": exchange, "cells": cells, "readings": readings,
            "crossed_batches": sum(o["crossed_batches"] for o in outs),
            "crossed_readings": sum(o["crossed_readings"] for o in outs),
            "events": sum(o["events"] for o in outs),
            "seconds": seconds, "per_s": readings / seconds, "cpu_s": cpu,
            "cpu_by_process": [o["cpu_s"] for o in outs],
            "per_cpu_s": readings / cpu, "event_types": types,
            "gc_s": sum(o["gc_s"] for o in outs),
            "gc_collections": sum(o["gc_collections"] for o in outs)}


def pairs(directory: Path, n: int, a: dict[str, Any], b: dict[str, Any], procs: int = 1,
          cells: str = "exclusive") -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` pairs of flow runs on ``procs`` processes (with more than one, the cells laid
    out as ``cells`` says: see ``run_flow``), ``a`` then ``b`` (``run_flow`` options) in
    turns; prints each pair and the ratio b/a per CPU-second."""
    out = []
    layout = {"cells": cells} if procs > 1 else {}
    for i in range(n):
        ra = run_flow(directory, procs, **(layout | a))
        rb = run_flow(directory, procs, **(layout | b))
        out.append((ra, rb))
        same = "same events" if ra["event_types"] == rb["event_types"] else \
            f"OTHER EVENTS: {ra['event_types']} vs {rb['event_types']}"
        print(f"pair {i + 1}: {ra['per_cpu_s']:,.0f} vs {rb['per_cpu_s']:,.0f} readings per "
              f"CPU-second ({rb['per_cpu_s'] / ra['per_cpu_s']:.3f}x; wall "
              f"{rb['per_s'] / ra['per_s']:.3f}x); GC {ra['gc_s']:.2f} s in "
              f"{ra['gc_collections']} collections vs {rb['gc_s']:.2f} s in "
              f"{rb['gc_collections']}; {same}", flush=True)
    _summary([(ra["cpu_s"], ra["readings"]) for ra, _ in out],
             [(rb["cpu_s"], rb["readings"]) for _, rb in out])
    return out


def _summary(a: list[tuple[float, int]], b: list[tuple[float, int]]) -> None:
    """The line under pairs run in turns: ``a`` and ``b`` are each run's (CPU-seconds,
    readings); the ratio is b's readings per CPU-second over a's."""
    ratios = sorted((nb / cb) / (na / ca) for (ca, na), (cb, nb) in zip(a, b, strict=True))
    cpu_a, cpu_b = sum(c for c, _ in a), sum(c for c, _ in b)
    print(f"{len(ratios)} pairs: per CPU-second ratio {ratios[0]:.3f}x to {ratios[-1]:.3f}x, "
          f"median {ratios[len(ratios) // 2]:.3f}x; total CPU {cpu_a:.1f} s vs {cpu_b:.1f} s "
          f"({cpu_a / cpu_b:.3f}x)")


def _env(code: Path | None, **extra: str) -> dict[str, str]:
    """This process's environment (with ``extra``), the ``gridwatch`` package in ``code``
    first on the path when given."""
    env = dict(os.environ, **extra)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    return env


# -- replay of the real set ---------------------------------------------------------------------
def _replay_input() -> Path:
    """sgsc45 decompressed into a fresh work directory (``gridwatch replay`` reads .csv)."""
    work = OUT / "replay"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    plain_csv = work / "readings.csv"
    with gzip.open(SGSC45, "rb") as src, open(plain_csv, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return plain_csv


def _fleet_input(days: int) -> tuple[Path, Path]:
    """The demo fleet (``config/fleets/demo.yaml``: about 300 meters in five grid cells, three
    customer classes) simulated for ``days`` days into a CSV, with its registry."""
    from gridwatch.simulators import Fleet, write_registry

    work = OUT / "replay-fleet"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    fleet_file = ROOT / "config" / "fleets" / "demo.yaml"
    out = work / "readings.csv"
    subprocess.run([sys.executable, "-m", "gridwatch", "simulate", "-f", str(fleet_file),
                    "-t", "csv", "-o", str(out), "--duration", f"{days}d", "--speed", "max"],
                   check=True, capture_output=True, timeout=1800)
    fleet = Fleet.load(fleet_file)
    registry = write_registry(fleet.meters(fleet.seed), work / "registry.json",
                              timezone=fleet.timezone, holiday_country=fleet.country)
    return out, registry


def _replay_run(plain_csv: Path, code: Path | None = None, name: str = "alerts",
                processes: int = 1, registry: Path | None = None) -> tuple[float, float, Path]:
    """One ``gridwatch replay`` of the file without a database (the package in ``code`` when
    given; ``--processes`` when more than one): wall seconds, CPU seconds (every process of
    it), the alerts it wrote."""
    wall, cpu, alerts = _replays(
        [plain_csv], [name], code, [*(["--processes", str(processes)] if processes > 1 else []),
                                    *(["--registry", str(registry)] if registry else [])])
    return wall, cpu, alerts[0]


def _replays(files: list[Path], names: list[str], code: Path | None = None,
             extra: list[str] | None = None) -> tuple[float, float, list[Path]]:
    """``gridwatch replay`` of each file without a database (the package in ``code`` when
    given, ``extra`` arguments), all started at once as independent processes, each writing
    the alerts and dead letters of its name: wall seconds until the last ends, CPU seconds
    of all (every process of each), the alerts each wrote."""
    import resource

    procs, alerts = [], []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for path, name in zip(files, names, strict=True):
        out = path.parent / f"{name}.jsonl"
        out.unlink(missing_ok=True)
        alerts.append(out)
        env = _env(code, GRIDWATCH_INGEST__DEADLETTER_DIR=str(path.parent / f"deadletter-{name}"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gridwatch", "replay", str(path), "--no-influx",
             "--alerts-out", str(out), *(extra or [])], cwd=path.parent, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"replay failed: {err[-2000:]}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, alerts


def _events(path: Path) -> tuple[Counter, Counter]:
    """The events of an alerts file as (those no segment judges, those a segment judges: a
    customer class's segments learn the meter-days in another order on one process than on
    several; see gridwatch._replay_cluster)."""
    from gridwatch import Event
    from gridwatch.models._segment import is_candidate

    mine: Counter = Counter()
    judged: Counter = Counter()
    for line in path.read_text().splitlines():
        e = Event.model_validate_json(line)
        (judged if is_candidate(e) else mine)[
            (e.meter_id, e.type, e.state, e.onset, e.raised_at)] += 1
    return mine, judged


def _split_input(plain_csv: Path, n: int) -> list[Path]:
    """The file's data lines in ``n`` files, each the lines of one share of a parallel replay
    of ``n`` processes (the meters ``gridwatch replay --processes n`` gives that process;
    without a registry, by hash shard), each with the header."""
    from gridwatch import Settings
    from gridwatch._engine import _replay_share

    owner = _replay_share(0, n, Settings().engine.workers, None).owner
    paths = [plain_csv.with_name(f"{plain_csv.stem}.share{i}.csv") for i in range(n)]
    outs = [open(q, "w", newline="") for q in paths]  # noqa: SIM115
    try:
        with open(plain_csv, newline="") as fh:
            header = fh.readline()
            col = header.strip().split(",").index("meter_id")
            for out in outs:
                out.write(header)
            for line in fh:
                outs[owner(line.split(",")[col].strip())].write(line)
    finally:
        for out in outs:
            out.close()
    return paths


def replay_runs(processes: tuple[int, ...] = (1, 2), rounds: int = 1,
                  fleet_days: int = 0) -> dict[str, Any]:
    """A plain csv pass, then ``gridwatch replay`` of sgsc45 (or, with ``fleet_days``, of
    that many days of the demo fleet, with its registry) with each number of processes in
    turn, ``rounds`` times (the median wall time of each is reported)."""
    registry = None
    if fleet_days:
        plain_csv, registry = _fleet_input(fleet_days)
    else:
        plain_csv = _replay_input()
    t0, c0 = time.perf_counter(), time.process_time()
    rows = 0
    with open(plain_csv, newline="") as fh:
        for _row in csv.reader(fh):
            rows += 1
    plain, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in processes}
    alerts: dict[int, Path] = {}
    # without a registry: n independent replays at once, each over one share's lines
    apart_n = max(processes) if registry is None and max(processes) > 1 else 0
    parts = _split_input(plain_csv, apart_n) if apart_n else []
    apart: list[tuple[float, float]] = []
    apart_alerts: list[Path] = []
    # the replay's fixed cost (start-up, the compiled code's loading, the flow's building):
    # the same command over the file's first STARTUP_LINES lines
    head = plain_csv.with_name("head.csv")
    with open(plain_csv, "rb") as src, open(head, "wb") as dst:
        dst.writelines(line for _, line in zip(range(STARTUP_LINES + 1), src, strict=False))
    fixed: list[tuple[float, float]] = []
    for _ in range(rounds):
        for n in processes:
            wall, cpu, alerts[n] = _replay_run(plain_csv, name=f"alerts-p{n}", processes=n,
                                               registry=registry)
            runs[n].append((wall, cpu))
        wall, cpu, _ = _replay_run(head, name="alerts-head", registry=registry)
        fixed.append((wall, cpu))
        if parts:
            # (each its own clock and segment stage: no cluster, nothing shared)
            wall, cpu, apart_alerts = _replays(parts, [f"alerts-apart{i}"
                                                      for i in range(len(parts))])
            apart.append((wall, cpu))
    out: dict[str, Any] = {"rows": rows - 1, "csv_s": plain, "csv_per_s": (rows - 1) / plain,
                           "csv_cpu_s": plain_cpu, "by_processes": {}}
    base_mine, base_judged = _events(alerts[processes[0]])
    for n in processes:
        wall = statistics.median(w for w, _ in runs[n])
        cpu = statistics.median(c for _, c in runs[n])
        mine, judged = _events(alerts[n])
        out["by_processes"][str(n)] = {
            "replay_s": wall, "replay_per_s": (rows - 1) / wall, "ratio": plain / wall,
            "replay_cpu_s": cpu, "cpu_ratio": plain_cpu / cpu, "walls": [w for w, _ in runs[n]],
            "same_events": mine == base_mine, "events": sum(mine.values()),
            "segment_judged": sum(judged.values()),
            "segment_judged_differ": sum(((judged - base_judged) + (base_judged - judged))
                                         .values())}
    if apart:
        mine, judged = Counter(), Counter()
        for path in apart_alerts:
            m, j = _events(path)
            mine += m
            judged += j
        wall = statistics.median(w for w, _ in apart)
        out["apart"] = {
            "processes": apart_n, "replay_s": wall, "replay_per_s": (rows - 1) / wall,
            "replay_cpu_s": statistics.median(c for _, c in apart),
            "walls": [w for w, _ in apart], "same_events": mine == base_mine,
            "events": sum(mine.values()), "segment_judged": sum(judged.values()),
            "segment_judged_differ": sum(((judged - base_judged) + (base_judged - judged))
                                         .values())}
    fixed_s = statistics.median(w for w, _ in fixed)
    out["fixed"] = {"lines": STARTUP_LINES, "replay_s": fixed_s,
                    "replay_cpu_s": statistics.median(c for _, c in fixed),
                    "walls": [w for w, _ in fixed],
                    # the ratio a replay costing nothing a reading would reach on this file
                    "ratio_ceiling": plain / fixed_s}
    first = out["by_processes"][str(processes[0])]
    # what a reading costs beyond the fixed cost, and the ratio without the fixed cost
    out["fixed"]["per_reading_us"] = 1e6 * (first["replay_s"] - fixed_s) / (rows - 1)
    out["fixed"]["ratio_beyond"] = plain / max(first["replay_s"] - fixed_s, 1e-9)
    # (the figures of one process, where earlier runs read them)
    out.update({k: first[k] for k in ("replay_s", "replay_per_s", "ratio", "replay_cpu_s",
                                      "cpu_ratio")})
    return out


def replay_pairs(n: int, code: Path, processes: int = 1) -> list[dict[str, float]]:
    """``n`` pairs of replays of sgsc45 on ``processes`` processes in turns, the package in
    ``code`` then this tree's; prints each pair's ratios (this tree's speed over the other's,
    per CPU-second and in wall time) and whether both wrote the same alerts, byte for byte
    (on several processes, those no segment judges: see :func:`_events`)."""
    plain_csv = _replay_input()
    out = []
    for i in range(n):
        wall_a, cpu_a, alerts_a = _replay_run(plain_csv, code, "alerts-against", processes)
        wall_b, cpu_b, alerts_b = _replay_run(plain_csv, None, "alerts-this", processes)
        if processes == 1:
            same = alerts_a.read_bytes() == alerts_b.read_bytes()
        else:
            same = _events(alerts_a)[0] == _events(alerts_b)[0]
        out.append({"cpu_a": cpu_a, "cpu_b": cpu_b, "wall_a": wall_a, "wall_b": wall_b})
        print(f"pair {i + 1}: {cpu_a:.1f} vs {cpu_b:.1f} CPU-seconds ({cpu_a / cpu_b:.3f}x; "
              f"wall {wall_a:.1f} vs {wall_b:.1f} s, {wall_a / wall_b:.3f}x); "
              f"{'same' if same else 'OTHER'} alerts"
              f"{' not judged by a segment' if processes > 1 else ''}", flush=True)
    _summary([(r["cpu_a"], 1) for r in out], [(r["cpu_b"], 1) for r in out])
    walls = sorted(r["wall_a"] / r["wall_b"] for r in out)
    print(f"wall: median {statistics.median(walls):.3f}x ({', '.join(f'{w:.3f}' for w in walls)})")
    return out


# -- memory -------------------------------------------------------------------------------------
MEMORY_CHILD = r'''
import gc, json, pickle, sys, time
from datetime import timedelta
from typing import Any
sys.path.insert(0, {bench!r})
from dataflow import fleet_of
from _e2e_lib import rss_bytes
from _sources import watched_journal_source
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from gridwatch import Settings
from gridwatch.models._quiet import use_compiled
from gridwatch.simulators import Simulation
from gridwatch.stream import Sinks, build_flow

meters, intervals = {meters}, {intervals}
# loaded before the baseline, as build_flow loads it: the process's memory, not its meters'
use_compiled(True)
sim = Simulation(fleet_of(meters, intervals))
meta = {{m.meter_id: m.meta() for m in sim.meters}}
n = len(meta)
gc.collect()
peak = [0]
first = [None]

class _Part(StatelessSinkPartition[Any]):
    def write_batch(self, items):
        pass

class Null(DynamicSink[Any]):
    def build(self, *a):
        return _Part()

def _sample():
    peak[0] = max(peak[0], rss_bytes())

# the engine's journal source, the process's RSS sampled after each of its batches
Sampled = watched_journal_source(first, _sample)

def readings():
    for block in sim.blocks():
        if first[0] is None:
            first[0] = (time.perf_counter(), time.process_time())
        yield from sim.block_readings(block)
        peak[0] = max(peak[0], rss_bytes())
    peak[0] = max(peak[0], rss_bytes())

if {journal!r}:
    source = Sampled({journal!r}, partitions=[0, 1], follow=False, batch_size=1000)
else:
    source = TestingSource(readings(), batch_size=1000)
before = rss_bytes()
flow = build_flow(Settings(), source, Sinks(events=Null()), meta.get, snapshots=False)
run_main(flow, epoch_interval=timedelta(seconds=2))
print(json.dumps({{"meters": n, "readings": n * intervals, "rss_before": before,
                  "rss_peak": peak[0], "seconds": time.perf_counter() - first[0][0],
                  "cpu_s": time.process_time() - first[0][1]}}))
'''


def memory(meters: int, intervals: int, journal: Path | None = None) -> dict[str, Any]:
    """Resident memory per meter of the whole dataflow: fed from ``journal`` (written by
    :func:`build_journal`) by the engine's journal source, else straight from the
    simulator."""
    code = MEMORY_CHILD.format(bench=str(Path(__file__).resolve().parent), meters=meters,
                               intervals=intervals, journal=str(journal or ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"memory run failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["bytes_per_meter"] = (out["rss_peak"] - out["rss_before"]) / out["meters"]
    out["per_s"] = out["readings"] / out["seconds"]
    out["per_cpu_s"] = out["readings"] / out["cpu_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=["flow", "replay", "memory"])
    ap.add_argument("--meters", type=int, default=2_000)
    ap.add_argument("--intervals", type=int, default=96)
    ap.add_argument("--cell-meters", type=int, default=FLEET_CELL_METERS,
                    help="meters per grid cell (the unit of work spread over processes)")
    ap.add_argument("--flow-rounds", type=int, default=1, metavar="N",
                    help="flow: run the 1-process and the three 2-process layouts N times in "
                         "turns; each 2-process run is compared with the 1-process run of its "
                         "own round and the medians are printed (the machine's speed moves "
                         "between runs)")
    ap.add_argument("--exchange-baseline", action="store_true",
                    help="flow: also run the 2-process flow with reading batches pickled as "
                         "pydantic objects (the exchange before the columnar form)")
    ap.add_argument("--gc-pairs", type=int, default=0, metavar="N",
                    help="flow: instead, N pairs of 1-process runs in turns, Python's own "
                         "collector settings vs the engine's (start-up frozen, first "
                         "threshold 20,000)")
    ap.add_argument("--against", type=Path, metavar="DIR",
                    help="flow and replay: instead, runs in turns (1-process flows, replays "
                         "of sgsc45), the gridwatch package in DIR (e.g. an export of main, "
                         "as DIR/gridwatch) vs this tree's")
    ap.add_argument("--pairs", type=int, default=3, help="pairs of runs for --against")
    ap.add_argument("--flow-processes", type=int, default=1, metavar="N",
                    help="flow with --against: the pairs run on N processes (default 1)")
    ap.add_argument("--flow-cells", choices=["exclusive", "placed", "hashed"],
                    default="exclusive",
                    help="flow with --against on several processes: how the cells are laid "
                         "out (default: placed exclusively)")
    ap.add_argument("--memory-intervals", type=int, default=4)
    ap.add_argument("--replay-processes", type=int, action="append", metavar="N",
                    help="replay: the numbers of processes to replay with, in turns "
                         "(repeatable; default 1 and 2); with --against, the pairs run on "
                         "the largest (default 1)")
    ap.add_argument("--replay-rounds", type=int, default=1, metavar="N",
                    help="replay: rounds of those runs (the median of each is reported)")
    ap.add_argument("--replay-fleet-days", type=int, default=0, metavar="DAYS",
                    help="replay: instead of sgsc45, DAYS days of the demo fleet (five grid "
                         "cells, three customer classes), with its registry")
    ap.add_argument("--full", action="store_true", help="memory at 10^6 meters too")
    ap.add_argument("--records", choices=["batch", "reading"], default="batch",
                    help="the journal's records: a 100-reading batch each, as the engine's "
                         "collector process journals compact batches (the default), or a "
                         "reading each (as a collector with a reader in its process does; "
                         "what --against needs for a revision that reads no batch records)")
    ap.add_argument("--order", choices=["meter", "concentrator"], default="meter",
                    help="flow: the journal's records, 100 readings each, in the meters' "
                         "order (the default: a record holds meters of many cells) or a "
                         "data concentrator's each (its cell's meters, as the engine's "
                         "collector journals a concentrator's message)")
    args = ap.parse_args()
    parts = args.only or ["flow", "replay", "memory"]
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if args.gc_pairs or args.against:  # comparisons in turns, instead of the runs below
        if "flow" in parts:
            results["journal"] = build_journal(args.meters, args.intervals, OUT / "flow",
                                               args.cell_meters, form=args.records,
                                               order=args.order)
            if args.gc_pairs:
                print("Python's collector settings vs the engine's (frozen, 20,000):")
                results["gc_pairs"] = pairs(OUT / "flow", args.gc_pairs,
                                            {"gc_mode": "python"}, {"gc_mode": "tuned"})
            if args.against:
                print(f"flow: {args.against} vs this tree:")
                results["against"] = pairs(OUT / "flow", args.pairs,
                                           {"code": args.against.resolve()}, {},
                                           args.flow_processes, args.flow_cells)
        if "replay" in parts and args.against:
            print(f"replay of sgsc45: {args.against} vs this tree:")
            results["replay_against"] = replay_pairs(
                args.pairs, args.against.resolve(), max(args.replay_processes or [1]))
        (OUT.parent / "dataflow.json").write_text(json.dumps(results, indent=2))
        return
    if "flow" in parts:
        j = build_journal(args.meters, args.intervals, OUT / "flow", args.cell_meters,
                          form=args.records, order=args.order)
        results["journal"] = j
        print(f"journal: {j['readings']:,} readings of {j['meters']:,} meters in "
              f"{j['cells']} grid cells; "
              f"baseline read+decode {j['decode_per_s']:,.0f} readings/s "
              f"({j['decode_per_cpu_s']:,.0f} per CPU-second); baseline MeterState.step loop "
              f"{j['step_per_s']:,.0f} readings/s ({j['step_per_cpu_s']:,.0f} per CPU-second)")
        step2 = j["step_forked_ratio"]
        f1, f2 = j["step_forked"]["1"], j["step_forked"]["2"]
        print(f"baseline MeterState.step loop in forked processes, nothing shared: 1 process "
              f"{j['readings'] / f1['wall_s']:,.0f} readings/s, 2 at once (each over one "
              f"partition's cells) {j['readings'] / f2['wall_s']:,.0f} readings/s "
              f"({j['readings'] / sum(f2['cpu_s']):,.0f} per CPU-second, against "
              f"{j['readings'] / sum(f1['cpu_s']):,.0f}): {step2:.2f}x, what this machine's two "
              f"cores give this work, the ceiling of any 2-process flow here")
        rounds = [(run_flow(OUT / "flow", 1), run_flow(OUT / "flow", 2),
                   run_flow(OUT / "flow", 2, cells="placed"),
                   run_flow(OUT / "flow", 2, cells="exclusive"))
                  for _ in range(args.flow_rounds)]
        # the round whose 1-process run is the median one is printed in full below
        one, two, placed, exclusive = sorted(rounds, key=lambda r: r[0]["per_s"])[
            (len(rounds) - 1) // 2]
        models = run_flow(OUT / "flow", 2, "models") if args.exchange_baseline else None
        results["flow"] = {"1": one, "2": two, "2_placed": placed,
                           "2_placed_exclusive": exclusive} | (
            {"2_models": models} if models else {})
        for r in (one, two, placed, exclusive, *([models] if models else [])):
            how = " (batches pickled as pydantic objects)" if r["exchange"] == "models" else ""
            how += f", cells {r['cells']}" if r["processes"] > 1 else ""
            print(f"dataflow alone, {r['processes']} process(es){how}: "
                  f"{r['per_s']:,.0f} readings/s "
                  f"({r['readings']:,} readings, {r['events']} events, {r['seconds']:.1f} s; "
                  f"{r['per_cpu_s']:,.0f} per CPU-second; reading batches pickled "
                  f"{r['crossed_batches']:,} times, {r['crossed_readings']:,} readings); "
                  f"ratio to the step loop "
                  f"{r['per_s'] / j['step_per_s']:.2f} (CPU "
                  f"{r['per_cpu_s'] / j['step_per_cpu_s']:.2f})")
        if models:
            print(f"exchange as columns vs pydantic objects, 2 processes: "
                  f"{two['per_cpu_s'] / models['per_cpu_s']:.2f}x per CPU-second, "
                  f"{two['per_s'] / models['per_s']:.2f}x wall")
        for label, r in (("cells hashed", two), ("cells placed", placed),
                         ("cells placed exclusively", exclusive)):
            share = max(r["cpu_by_process"]) / sum(r["cpu_by_process"])
            # With a core each and the busier process's core full, two processes run at
            # per_cpu_2 / share readings/s: the wall ratio on an idle machine, whatever the
            # neighbours took from this run.
            idle = r["per_cpu_s"] / (share * one["per_cpu_s"])
            print(f"2 processes vs 1, {label}: {r['per_s'] / one['per_s']:.2f}x "
                  f"(CPU per reading {one['per_cpu_s'] / r['per_cpu_s']:.2f}x the 1-process "
                  f"run's); the busier process spent {share:.0%} of the cluster's CPU (the "
                  f"bound: 1/{share:.2f} = {1 / share:.2f}x at best); from the CPU figures, "
                  f"on two idle cores: {idle:.2f}x; of the bare loop's "
                  f"{step2:.2f}x: {r['per_s'] / one['per_s'] / step2:.0%}")
        if len(rounds) > 1:
            results["flow_rounds"] = rounds
            for k, label in ((1, "cells hashed"), (2, "cells placed"),
                             (3, "cells placed exclusively")):
                ratios = sorted(r[k]["per_s"] / r[0]["per_s"] for r in rounds)
                print(f"2 processes vs 1 in the same round, {label}, {len(rounds)} rounds in "
                      f"turns: median {statistics.median(ratios):.2f}x "
                      f"({', '.join(f'{x:.2f}' for x in ratios)}); of the bare loop's "
                      f"{step2:.2f}x: {statistics.median(ratios) / step2:.0%}")
            ones = sorted(r[0]["per_s"] for r in rounds)
            print(f"1 process, {len(rounds)} rounds: median {statistics.median(ones):,.0f} "
                  f"readings/s ({', '.join(f'{x:,.0f}' for x in ones)})")
        for label, r in (("placed", placed), ("placed exclusively", exclusive)):
            print(f"{label} vs hashed, 2 processes: {r['per_s'] / two['per_s']:.2f}x wall, "
                  f"{r['per_cpu_s'] / two['per_cpu_s']:.2f}x per CPU-second")
        for r in (two, placed, exclusive):
            if r["event_types"] != one["event_types"]:
                print(f"WARNING: 2 processes (cells {r['cells']}) raised other events than "
                      f"1: {r['event_types']} vs {one['event_types']}")
    if "replay" in parts:
        r = replay_runs(tuple(args.replay_processes or (1, 2)), args.replay_rounds,
                          args.replay_fleet_days)
        what = (f"{args.replay_fleet_days} days of the demo fleet" if args.replay_fleet_days
                else "sgsc45")
        results["replay" if not args.replay_fleet_days else "replay_fleet"] = r
        print(f"plain csv pass of {what} ({r['rows']:,} rows): {r['csv_per_s']:,.0f} rows/s")
        first_run: dict[str, Any] | None = None
        for n, x in r["by_processes"].items():
            first_run = first_run or x
            print(f"replay of {what}, {n} process(es): {x['replay_per_s']:,.0f} readings/s "
                  f"in {x['replay_s']:.1f} s (runs: "
                  f"{', '.join(f'{w:.1f}' for w in x['walls'])} s), {x['replay_cpu_s']:.1f} "
                  f"CPU-s; ratio to the csv pass {x['ratio']:.3f} (CPU time ratio "
                  f"{x['cpu_ratio']:.3f}); vs the first: "
                  f"{first_run['replay_s'] / x['replay_s']:.2f}x wall; "
                  f"{x['events']} events not judged by a segment, "
                  f"{'the same' if x['same_events'] else 'NOT THE SAME'}; "
                  f"{x['segment_judged']} judged by a segment, {x['segment_judged_differ']} "
                  f"differ")
        x = r["fixed"]
        print(f"its fixed cost (the same command over the first {x['lines']:,} lines): "
              f"{x['replay_s']:.2f} s (runs: {', '.join(f'{w:.2f}' for w in x['walls'])} s), "
              f"{x['replay_cpu_s']:.2f} CPU-s: a replay costing nothing a reading would reach "
              f"{x['ratio_ceiling']:.3f} of the csv pass; beyond it, one process spends "
              f"{x['per_reading_us']:.2f} us a reading ({x['ratio_beyond']:.3f} of the csv pass)")
        if "apart" in r and first_run is not None:
            x = r["apart"]
            print(f"{x['processes']} independent replays at once, each over one share's "
                  f"meters (no cluster: each its own segmenter): {x['replay_per_s']:,.0f} "
                  f"readings/s in {x['replay_s']:.1f} s (runs: "
                  f"{', '.join(f'{w:.1f}' for w in x['walls'])} s), {x['replay_cpu_s']:.1f} "
                  f"CPU-s; vs the first: {first_run['replay_s'] / x['replay_s']:.2f}x wall, the "
                  f"ceiling of a {x['processes']}-process replay here; {x['events']} events "
                  f"not judged by a segment, {'the same' if x['same_events'] else 'NOT THE SAME'}")
    if "memory" in parts:
        sizes = [10_000, 100_000] + ([1_000_000] if args.full else [])
        results["memory"] = []
        for n in sizes:
            # The fleet first written to a journal (this process), then read by the engine's
            # journal source in a fresh one; beside it, fed straight from the simulator.
            where = OUT / "memory"
            print(f"memory: {n:,} meters: writing the journal ...", flush=True)
            build_journal(n, args.memory_intervals, where, baselines=False)
            m = memory(n, args.memory_intervals, where / "journal")
            shutil.rmtree(where)
            m["simulator_fed"] = memory(n, args.memory_intervals)
            results["memory"].append(m)
            sim = m["simulator_fed"]
            print(f"memory: {m['meters']:,} meters: {m['bytes_per_meter']:,.0f} B/meter "
                  f"resident fed from the journal, {m['per_s']:,.0f} readings/s "
                  f"({m['per_cpu_s']:,.0f} per CPU-second) over {m['readings']:,} readings; "
                  f"fed straight from the simulator {sim['bytes_per_meter']:,.0f} B/meter",
                  flush=True)
    (OUT.parent / "dataflow.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
