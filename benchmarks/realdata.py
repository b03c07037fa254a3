"""Detection on real household load (the sgsc45 set) and on the demo fleet, in one command.

Prints, for the real set split into a tuning half and a held-out half of households (by a stable
hash of the meter id: CRC-32 even → tuning, odd → held-out; the members of each are printed):

* alarms per 1,000 meter-days by type on the recorded load as it is (no faults in it; alarms
  about silence that the file's own gaps explain are counted apart),
* recall and median delay (in reading intervals) per fault type of faults injected into the same
  load with a fixed seed (``gridwatch simulate --replay --inject``'s shapes), from the third
  week of each household's data, and of one spike in each household's first 36 hours
  (``spike_first_day``: a new meter),

and, on the demo fleet (``config/fleets/demo.yaml``, simulated with its labels), the event
precision / recall of ``gridwatch evaluate``, theft recall, and over-capacity recall with the lead
time of each warning before the load crossed the contracted capacity.

    .venv/bin/python benchmarks/realdata.py               # the whole set: several minutes
    .venv/bin/python benchmarks/realdata.py --meters 10   # 10 households per half: quicker
    .venv/bin/python benchmarks/realdata.py --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from _data import SGSC45 as DATA

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240611
#: Faults per meter-month injected into the real set (several per household over its data).
MIX = ("spike=0.5/mm,outage=0.25/mm,comm_loss=0.25/mm,drop=0.25/mm,stuck=0.25/mm,"
       "level_shift_up=0.15/mm,level_shift_down=0.15/mm,theft=0.15/mm")


def split(meters: list[str], per_half: int | None) -> dict[str, list[str]]:
    from gridwatch._filereplay import half_of

    halves: dict[str, list[str]] = {"tune": [], "held": []}
    for m in sorted(meters, key=lambda m: (zlib.crc32(m.encode()), m)):
        h = halves[half_of(m)]
        if per_half is None or len(h) < per_half:
            h.append(m)
    return {k: sorted(v) for k, v in halves.items()}


def load(path: Path) -> dict[str, Any]:
    """Per-meter series of a ``meter_id,timestamp,kw`` file (pandas: the set is known to be
    well formed; ``gridwatch simulate --replay`` validates every row instead)."""
    import pandas as pd

    from gridwatch.simulators import Series

    df = pd.read_csv(path)
    ts = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    df["t"] = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()  # any datetime resolution
    out = {}
    for m, g in df.groupby("meter_id", sort=True):
        g = g.sort_values("t", kind="stable")
        out[str(m)] = Series(str(m), g["t"].to_numpy(), g["kw"].to_numpy(dtype=float))
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def replay(settings: Any, path: Path, meta: Any = None, title: str = "replay"
           ) -> tuple[Any, float]:
    """The replay of ``path`` and its wall time (runs in a worker process: progress as lines)."""
    from rich.console import Console

    from gridwatch._filereplay import Progress, count_lines, replay_file

    t0 = time.monotonic()
    with Progress(Console(stderr=True, force_terminal=False), count_lines(path), title,
                  every_s=60) as progress:
        run = replay_file(settings, path, meta, on_progress=progress)
    return run, time.monotonic() - t0


def subset(run: Any, meters: set[str]) -> Any:
    from gridwatch._filereplay import ReplayRun

    return ReplayRun(events=[e for e in run.events if e.meter_id in meters],
                     times={m: t for m, t in run.times.items() if m in meters},
                     kw={m: v for m, v in run.kw.items() if m in meters},
                     kva={m: v for m, v in run.kva.items() if m in meters},
                     readings=sum(len(t) for m, t in run.times.items() if m in meters),
                     rejected=Counter())


def real_set(args: argparse.Namespace, base_settings: Any, work: Path) -> dict[str, Any]:
    from gridwatch._evaluate import Label, evaluate_shapes
    from gridwatch._falsealarms import analyse
    from gridwatch.simulators._inject import Mix, inject, write_series

    settings = base_settings
    t0 = time.monotonic()
    log(f"reading {DATA} ...")
    series = load(DATA)
    halves = split(list(series), args.meters)
    chosen = set(halves["tune"]) | set(halves["held"])
    series = {m: s for m, s in series.items() if m in chosen}
    step = int(np.median([s.interval_s for s in series.values()]))
    if not 60 <= step <= 86_400:
        raise SystemExit(f"reading interval {step} s inferred from {DATA}: not a meter's")
    clean = work / "clean.csv.gz"
    write_series(series, clean)
    log(f"{sum(len(s.ts) for s in series.values()):,} readings of {len(series)} households "
        f"({time.monotonic() - t0:.0f} s)")

    from gridwatch._filereplay import with_interval

    settings = with_interval(settings, step)
    injected = inject(series, Mix.parse(MIX), SEED, warmup=timedelta(days=14))
    # and a new meter's first day: one 4-6x spike of 1-2 h in each household's first 36 hours
    new_labels = []
    for i, m in enumerate(sorted(injected.series)):
        one = inject({m: injected.series[m]}, Mix.parse("spike=1"), SEED + 1 + i,
                     warmup=timedelta(hours=12), within=timedelta(days=1))
        injected.series[m] = one.series[m]
        new_labels += [dataclasses.replace(lb, shape="spike_first_day") for lb in one.labels]
    injected.labels.extend(new_labels)
    faulty = work / "injected.csv.gz"
    write_series(injected.series, faulty)
    log(f"faults injected and written ({time.monotonic() - t0:.0f} s); replaying the recorded "
        f"and the injected load{'' if args.no_demo else ' and the demo fleet'} in "
        f"{args.jobs} processes ...")
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
        f_clean = pool.submit(replay, settings, clean, None, "recorded")
        f_inj = pool.submit(replay, settings, faulty, None, "injected")
        f_demo = None if args.no_demo else pool.submit(demo_fleet, base_settings, work)
        run, t_clean = f_clean.result()
        run2, t_inj = f_inj.result()
        demo = f_demo.result() if f_demo is not None else None
    fa: dict[str, Any] = {}
    for name in ("tune", "held"):
        fa[name] = analyse(subset(run, set(halves[name])), float(step),
                           settings.detection.silence_intervals, top=3)
    labels = [Label(lb.meter_id, lb.type, lb.start, lb.end, lb.shape, lb.params)
              for lb in injected.labels]
    rec: dict[str, Any] = {}
    for name in ("tune", "held"):
        members = set(halves[name])
        rec[name] = evaluate_shapes([e for e in run2.events if e.meter_id in members],
                                    [lb for lb in labels if lb.meter_id in members])
    return {"halves": halves, "interval_s": step, "false_alarms": fa, "recall": rec,
            "skipped": injected.skipped, "seconds": {"clean": t_clean, "injected": t_inj},
            "readings": run.readings, "demo": demo}


def demo_fleet(settings: Any, work: Path) -> dict[str, Any]:
    from gridwatch._evaluate import capacity_leads, evaluate_events, load_labels
    from gridwatch._filereplay import with_interval
    from gridwatch.alerts import Registry
    from gridwatch.simulators import Fleet, JsonlTarget, Simulation, write_labels, write_registry

    fleet = Fleet.load(ROOT / "config/fleets/demo.yaml")
    log(f"demo fleet: simulating {fleet.n_meters} meters ...")
    sim = Simulation(fleet, None)
    readings = work / "demo.jsonl"
    target = JsonlTarget(readings)
    for _, rows in sim.chunks("json"):
        target.write(rows)
    target.close()
    labels_path = work / "demo.labels.jsonl"
    write_labels(sim.labels, labels_path)
    registry = work / "demo-registry.json"
    write_registry(sim.meters, registry)
    settings = with_interval(settings, fleet.interval_min * 60)
    run, _ = replay(settings, readings, Registry.load(registry).meter_meta, "demo fleet")
    labs = load_labels(labels_path)
    reports = evaluate_events(run.events, labs, run.meter_days())
    leads = capacity_leads(run.events, labs, run.times, run.kva)
    return {"reports": reports, "leads": leads, "meters": fleet.n_meters,
            "meter_days": run.meter_days()}


def fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=None,
                    help="households per half (default: all); the first by hash order")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo fleet")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--jobs", type=int, default=min(3, os.cpu_count() or 1),
                    help="processes for the three replays (default: up to 3, one per core)")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"the sgsc45 set is not at {DATA}", file=sys.stderr)
        return 2
    from gridwatch import Settings

    settings = Settings()
    t_all = time.monotonic()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gridwatch-realdata-") as tmp:
        work = Path(tmp)
        real = real_set(args, settings, work)
        demo = real["demo"]

    print(f"\nsgsc45: {real['readings']:,} readings, interval {real['interval_s']} s; split by "
          "CRC-32 of the meter id (even: tuning, odd: held-out)")
    for name in ("tune", "held"):
        print(f"  {name} ({len(real['halves'][name])}): {' '.join(real['halves'][name])}")
    print(f"replay time: {real['seconds']['clean']:.0f} s (recorded), "
          f"{real['seconds']['injected']:.0f} s (injected)")

    print("\nfalse alarms per 1,000 meter-days on recorded load (firing alarms)")
    fa = real["false_alarms"]
    types = sorted(set(fa["tune"].firing_by_type) | set(fa["held"].firing_by_type))
    print(f"{'type':28} {'tuning':>10} {'held-out':>10}")
    for t in types:
        print(f"{t:28} {fa['tune'].per_1000(fa['tune'].firing_by_type.get(t, 0)):10.2f} "
              f"{fa['held'].per_1000(fa['held'].firing_by_type.get(t, 0)):10.2f}")
    print(f"{'under judgement (all but silence alarms on the file gaps)':28}")
    print(f"{'  all judged':28} {fa['tune'].per_1000(fa['tune'].alarms):10.2f} "
          f"{fa['held'].per_1000(fa['held'].alarms):10.2f}")
    print(f"{'meter-days':28} {fa['tune'].meter_days:10.1f} {fa['held'].meter_days:10.1f}")
    for name in ("tune", "held"):
        print(f"  silence alarms ({name}): {fa[name].silence or 'none'}")

    step_min = real["interval_s"] / 60
    print(f"\nrecall of injected faults (seed {SEED}, mix {MIX}); delay in intervals of "
          f"{step_min:g} min; al/f: firing alarms per detected fault (1 is one episode)")
    print(f"{'shape':18} {'type':22} {'tune n':>7} {'recall':>7} {'delay':>6} {'al/f':>5} "
          f"{'held n':>7} {'recall':>7} {'delay':>6} {'al/f':>5}")
    rec = real["recall"]
    for shape in sorted(set(rec["tune"]) | set(rec["held"]), key=lambda s: (s == "all", s)):
        cells = []
        for name in ("tune", "held"):
            r = rec[name].get(shape)
            d = None if r is None or r.delay_median_min is None else r.delay_median_min / step_min
            cells.append(f"{(r.labels if r else 0):7d} {fmt(r.recall if r else None):>7} "
                         f"{fmt(d, '.1f'):>6} "
                         f"{fmt(r.alarms_per_fault if r else None, '.1f'):>5}")
        typ = next((rec[n][shape].type for n in ("tune", "held") if shape in rec[n]), "")
        print(f"{shape:18} {typ:22} {cells[0]} {cells[1]}")
    if real["skipped"]:
        print(f"  not placed (no free stretch of data): {real['skipped']}")

    if demo is not None:
        reps = demo["reports"]
        a = reps["all"]
        print(f"\ndemo fleet ({demo['meters']} meters, {demo['meter_days']:.0f} meter-days): "
              f"event precision {fmt(a.precision)} recall {fmt(a.recall)} F1 {fmt(a.f1)}")
        for t in ("possible_theft", "over_capacity_risk"):
            r = reps.get(t)
            print(f"  {t}: recall {fmt(r.recall if r else None)} "
                  f"({r.detected if r else 0} of {r.labels if r else 0}), "
                  f"precision {fmt(r.precision if r else None)}")
        crossed = [x["lead_min"] for x in demo["leads"] if x["lead_min"] is not None]
        n_cross = sum(x["crossing"] is not None for x in demo["leads"])
        print(f"  over-capacity labels whose apparent power reached the contracted capacity: "
              f"{n_cross} of {len(demo['leads'])}")
        if crossed:
            print(f"  over-capacity lead before the crossing (warned and crossed: {len(crossed)}):"
                  f" median {np.median(crossed):.0f} min, min {min(crossed):.0f} min, max "
                  f"{max(crossed):.0f} min, {sum(x >= 15 for x in crossed)} at least 15 min "
                  "ahead (negative: raised after the crossing)")
        else:
            print("  over-capacity lead: no warned label whose load crossed the capacity")
    print(f"\ntotal time {time.monotonic() - t_all:.0f} s")

    if args.json:
        out = {
            "halves": real["halves"], "interval_s": real["interval_s"],
            "false_alarms": {n: r.to_json_dict() for n, r in fa.items()},
            "recall": {n: {s: r.row() for s, r in v.items()} for n, v in rec.items()},
            "demo": None if demo is None else {
                "reports": {k: r.row() for k, r in demo["reports"].items()},
                "over_capacity_leads": demo["leads"]},
        }
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
