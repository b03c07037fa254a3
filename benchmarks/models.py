"""Detection cost per reading and memory per meter, beside plain River HalfSpaceTrees.

Prints, in one run:
* µs per reading through the per-meter path (``MeterState.step``: every detector + profiling),
* µs per finished meter-day through the segment models (River KMeans + rolling median),
* µs per reading through the whole bytewax dataflow (``run_replay``, one worker),
* pickled bytes per meter, and resident memory for 100,000 simulated meters,
* the same per-reading cost and model size for River ``HalfSpaceTrees`` (defaults), as a ratio;
* ``MeterState.step`` with its quiet path (``FAST_PATH``) against the full path only, µs per
  reading over the same readings in the same process, as a ratio, with the share of readings
  that took the quiet path: the first 200,000 readings of the real set (sgsc45, 45 households,
  as ``gridwatch replay`` runs them) and the demo fleet (``config/fleets/demo.yaml``: 304
  meters of every class over 8 days, anomalies injected on the last), and the CPU time of
  ``quiet_step`` itself per reading it took (each call timed, the timer's cost taken off);
* with ``--against REV``: those figures for this tree and for git revision ``REV`` (exported
  with ``git archive`` and put first on PYTHONPATH), each engine in its own process over the
  same readings, in alternating turns, as ratios.

    .venv/bin/python benchmarks/models.py          # about two minutes
    .venv/bin/python benchmarks/models.py --full   # larger samples
    .venv/bin/python benchmarks/models.py --only quiet   # the quiet path figure alone
    .venv/bin/python benchmarks/models.py --against main # the quiet path against main's

Times are CPU time of this process (``time.process_time``): the machine is shared, and wall
time moves with the neighbours' load while CPU time moves far less.

Memory per meter at 10^5 and 10^6 meters, beside the version 4 layout, is
``benchmarks/state_memory.py``.
"""

from __future__ import annotations

import argparse
import gc
import math
import pickle
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from _data import SGSC45

from gridwatch import MeterMeta, Reading, Settings
from gridwatch.models import Calendar, DetectionSettings, MeterState, Segmenter, SegmentJudge

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
FAR = datetime(2035, 1, 1, tzinfo=UTC)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def fleet(meters: int, days: int, seed: int = 1) -> list[Reading]:
    """Readings in time order: an evening-peak household shape per meter, scaled and noisy,
    with voltage, power factor and an energy register."""
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 0.5, meters)
    kwh = np.zeros(meters)
    out = []
    for i in range(days * 96):
        ts = T0 + i * STEP
        h = ts.hour + ts.minute / 60
        shape = 1.0 + 0.8 * math.exp(-(((h - 19) / 2) ** 2))
        kw = np.maximum(scale * shape + rng.normal(0, 0.05, meters), 0.0)
        kwh += kw / 4
        volt = rng.normal(230, 2, meters)
        for m in range(meters):
            out.append(Reading.model_construct(
                meter_id=f"m{m:06d}", ts=ts, kw=round(float(kw[m]), 3),
                kwh=round(float(kwh[m]), 2), export_kwh=None, voltage=(round(float(volt[m]), 1),),
                current=None, pf=0.95, freq=None, status=(), interval_s=None))
    return out


def bench_meter_path(readings: list[Reading], settings: DetectionSettings) -> tuple[float, dict]:
    cal = Calendar(settings.timezone, settings.holiday_country)
    states: dict[str, MeterState] = {}
    metas = {r.meter_id: MeterMeta(meter_id=r.meter_id, contracted_kva=20.0) for r in readings}
    t0 = time.process_time()
    for r in readings:
        st = states.get(r.meter_id)
        if st is None:
            st = states[r.meter_id] = MeterState(r.meter_id)
        st.step(r, metas[r.meter_id], None, settings, cal)
    us = (time.process_time() - t0) / len(readings) * 1e6
    return us, states


def bench_hst(readings: list[Reading], n: int) -> tuple[float, int]:
    from river import anomaly, preprocessing

    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
    xs = [{"kw": r.kw, "hour": r.ts.hour} for r in readings[:n]]
    t0 = time.process_time()
    for x in xs:
        model.score_one(x)
        model.learn_one(x)
    us = (time.process_time() - t0) / len(xs) * 1e6
    return us, len(pickle.dumps(model))


def bench_segments(states: dict[str, MeterState], settings: DetectionSettings,
                   days: int) -> float:
    """Close one more day for every meter and push the profiles through the segment models."""
    from gridwatch.models import DailyProfile

    profiles: list[DailyProfile] = []
    cal = Calendar(settings.timezone, settings.holiday_country)
    for st in states.values():
        st2 = MeterState.from_bytes(st.to_bytes())
        r = Reading.model_construct(meter_id=st2.meter_id, ts=T0 + days * 96 * STEP, kw=1.0,
                                    kwh=None, export_kwh=None, voltage=None, current=None,
                                    pf=None, freq=None, status=(), interval_s=None)
        res = st2.step(r, None, None, settings, cal)
        if res.profile is not None:
            profiles.append(res.profile)
    seg = Segmenter("residential", settings.segments_per_class, seed=settings.seed)
    judges: dict[str, SegmentJudge] = {}
    reps = max(1, 20_000 // max(len(profiles), 1))
    t0 = time.process_time()
    n = 0
    for _ in range(reps):
        for p in profiles:
            segment, _tags = seg.assign(p)
            judge = judges.get(segment)
            if judge is None:
                judge = judges[segment] = SegmentJudge(segment)
            judge.learn(p.ratio if p.ratio is not None else 1.0)
            n += 1
    return (time.process_time() - t0) / max(n, 1) * 1e6


def bench_flow(readings: list[Reading]) -> float:
    from gridwatch.stream import run_replay

    settings = Settings()
    t0 = time.process_time()
    run_replay(settings, readings)
    return (time.process_time() - t0) / len(readings) * 1e6


def bench_memory(template: MeterState, n: int) -> tuple[float, float]:
    """Resident MB for ``n`` live meter states, and for ``n`` snapshots (bytes)."""
    blob = template.to_bytes()
    gc.collect()
    before = rss_mb()
    live = [MeterState.from_bytes(blob) for _ in range(n)]
    for i, st in enumerate(live):
        st.rec.meter_id = f"m{i:07d}"
    gc.collect()
    live_mb = rss_mb() - before
    del live
    snaps = [blob[:-1] + blob[-1:] for _ in range(n)]  # distinct objects
    snaps_mb = sum(sys.getsizeof(b) for b in snaps) / 2**20  # freed pages are reused: count
    del snaps
    return live_mb, snaps_mb


def sgsc45(limit: int) -> list[Reading]:
    """The first ``limit`` readings of the real set (in time order, all households), read as
    ``gridwatch replay`` reads the file (rejected rows left out)."""
    from gridwatch.ingest import iter_readings_file

    return list(islice((x for x in iter_readings_file(SGSC45) if isinstance(x, Reading)),
                       limit))


def demo_fleet() -> tuple[list[Reading], dict[str, MeterMeta], DetectionSettings]:
    """The demo fleet's readings (with its injected anomalies), registry and settings."""
    from gridwatch.simulators import Fleet

    fleet = Fleet.load(ROOT / "config" / "fleets" / "demo.yaml")
    metas = {m.meter_id: m.meta() for m in fleet.meters(fleet.seed)}
    readings, _labels = fleet.generate(fleet.seed)
    return (list(readings), metas,
            DetectionSettings(timezone=fleet.timezone, holiday_country=fleet.country))


def _step_all(readings: list[Reading], metas: dict[str, MeterMeta],
              settings: DetectionSettings, fast: bool) -> float:
    """CPU seconds of ``MeterState.step`` over ``readings`` from fresh states."""
    from gridwatch.models import _meter

    was = _meter.FAST_PATH
    _meter.FAST_PATH = fast
    try:
        cal = Calendar(settings.timezone, settings.holiday_country)
        states: dict[str, MeterState] = {}
        get = metas.get
        t0 = time.process_time()
        for r in readings:
            st = states.get(r.meter_id)
            if st is None:
                st = states[r.meter_id] = MeterState(r.meter_id)
            st.step(r, get(r.meter_id), None, settings, cal)
        return time.process_time() - t0
    finally:
        _meter.FAST_PATH = was


def bench_quiet(readings: list[Reading], metas: dict[str, MeterMeta],
                settings: DetectionSettings, reps: int = 2) -> tuple[float, float, float]:
    """µs per reading with the quiet path and with the full path only (the best of ``reps``
    alternating runs of each), and the share of readings that took the quiet path."""
    from gridwatch.models import _meter

    fast = full = math.inf
    for _ in range(reps):
        fast = min(fast, _step_all(readings, metas, settings, True))
        full = min(full, _step_all(readings, metas, settings, False))
    taken = [0]
    inner = _meter.quiet_step

    def counting(*args: Any) -> Any:
        res = inner(*args)
        taken[0] += res is not None
        return res

    _meter.quiet_step = counting
    try:
        _step_all(readings, metas, settings, True)
    finally:
        _meter.quiet_step = inner
    n = len(readings)
    return fast / n * 1e6, full / n * 1e6, taken[0] / n


def quiet_call_us(readings: list[Reading], metas: dict[str, MeterMeta],
                  settings: DetectionSettings) -> float:
    """µs of CPU time per reading inside ``quiet_step``, over the readings it took: each call
    timed with ``time.process_time_ns`` (the timer's own cost, measured around an empty call,
    taken off)."""
    from gridwatch.models import _meter

    clock = time.process_time_ns
    spent = [0, 0]
    inner = _meter.quiet_step

    def timed(*args: Any) -> Any:
        t0 = clock()
        res = inner(*args)
        t1 = clock()
        if res is not None:
            spent[0] += t1 - t0
            spent[1] += 1
        return res

    def empty(*args: Any) -> None:
        return None

    _meter.quiet_step = timed
    try:
        _step_all(readings, metas, settings, True)
    finally:
        _meter.quiet_step = inner
    n_cal = 200_000
    overhead = 0
    for _ in range(n_cal):
        t0 = clock()
        empty(None)
        t1 = clock()
        overhead += t1 - t0
    return (spent[0] / max(spent[1], 1) - overhead / n_cal) / 1000


Rows = list[tuple[str, list[Reading], dict[str, MeterMeta], DetectionSettings]]


def quiet_rows() -> Rows:
    """The quiet path's readings: the first 200,000 of sgsc45 and the demo fleet."""
    real = sgsc45(200_000)
    rows: Rows = [(f"sgsc45, first {len(real):,} readings (45 households)", real, {},
                   DetectionSettings(interval_s=1800))]
    del real
    sim, metas, s = demo_fleet()
    rows.append((f"demo fleet, {len(sim):,} readings ({len(metas)} meters, 8 days)", sim,
                 metas, s))
    return rows


def report_quiet() -> None:
    _load_compiled()
    print("MeterState.step: quiet path on (FAST_PATH) against the full path only, "
          "same readings, same process (best of 2 runs each); quiet_step: CPU time per call "
          "on the readings it took")
    print(f"{'readings':58} {'quiet on':>12} {'full only':>12} {'ratio':>8} {'quiet':>7} "
          f"{'quiet_step':>11}")
    for name, readings, m, st in quiet_rows():
        us_fast, us_full, share = bench_quiet(readings, m, st)
        us_call = quiet_call_us(readings, m, st)
        print(f"{'µs per reading, ' + name:58} {us_fast:12.2f} {us_full:12.2f} "
              f"{us_full / us_fast:7.2f}x {share:7.1%} {us_call:11.2f}")


def _export(rev: str, into: Path) -> None:
    """The engine of git revision ``rev`` as an importable ``gridwatch`` package in ``into``
    (``src`` as ``gridwatch``, ``simulators`` as ``gridwatch.simulators``, as pyproject maps
    them): put ``into`` first on PYTHONPATH to run that revision."""
    import subprocess
    import tarfile

    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src", "simulators"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    (into / "src").rename(into / "gridwatch")
    (into / "simulators").rename(into / "gridwatch" / "simulators")


def _load_compiled() -> None:
    """Loads the compiled quiet path before any clock starts (an engine without one: no-op)."""
    from gridwatch.models import _quiet

    load = getattr(_quiet, "use_compiled", None)
    if load is not None:
        load(True)


def _quiet_worker(data: Path) -> None:
    """One turn of ``--against``: the readings in ``data`` through whichever engine is first
    on the path; prints one JSON line (per row: µs per reading with the quiet path on, µs per
    call of ``quiet_step`` on the readings it took, µs per reading with the quiet path off:
    every reading through the full path)."""
    import json

    _load_compiled()

    with open(data, "rb") as fh:
        rows: Rows = pickle.load(fh)
    out = []
    for _name, readings, m, st in rows:
        t = _step_all(readings, m, st, True) / len(readings) * 1e6
        full = _step_all(readings, m, st, False) / len(readings) * 1e6
        out.append((t, quiet_call_us(readings, m, st), full))
    print(json.dumps(out))


def report_against(rev: str, turns: int) -> None:
    """The quiet path of this tree against the one of git revision ``rev``: the same readings,
    each engine in a process of its own, in alternating turns (best of ``turns`` each)."""
    import json
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tree"
        _export(rev, base)
        rows = quiet_rows()
        data = Path(tmp) / "readings.pickle"
        with open(data, "wb") as fh:
            pickle.dump(rows, fh)
        envs = {rev: {**os.environ, "PYTHONPATH": str(base)},
                "this tree": {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}}
        best: dict[str, list[list[float]]] = {}
        for _ in range(turns):
            for label, env in envs.items():
                got = json.loads(subprocess.run(
                    [sys.executable, __file__, "--quiet-worker", str(data)], env=env,
                    check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                old = best.get(label)
                best[label] = got if old is None else [
                    [min(a, b) for a, b in zip(o, g, strict=True)]
                    for o, g in zip(old, got, strict=True)]
    print(f"The quiet path: {rev} against this tree, the same readings, each in its own "
          f"process, {turns} alternating turns (best of each); CPU time")
    for name, *_rest in rows:
        print(f"  {name}")
    print(f"{'figure':50} {rev:>10} {'this tree':>10} {'ratio':>8}")
    for k, (name, *_rest) in enumerate(rows):
        (b_step, b_call, b_full), (n_step, n_call, n_full) = best[rev][k], best["this tree"][k]
        short = name[:name.index(",")]
        print(f"{'µs per reading, MeterState.step, ' + short:50} {b_step:10.2f} {n_step:10.2f} "
              f"{b_step / n_step:7.2f}x")
        print(f"{'µs per quiet reading, quiet_step, ' + short:50} {b_call:10.2f} {n_call:10.2f} "
              f"{b_call / n_call:7.2f}x")
        print(f"{'µs per reading, quiet path off, ' + short:50} {b_full:10.2f} {n_full:10.2f} "
              f"{b_full / n_full:7.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="larger samples (a few minutes)")
    ap.add_argument("--only", choices=["quiet"], help="only the quiet path figure")
    ap.add_argument("--against", metavar="REV",
                    help="the quiet path of this tree against git revision REV (e.g. main), "
                         "in alternating turns")
    ap.add_argument("--turns", type=int, default=2, help="turns of each engine (--against)")
    ap.add_argument("--quiet-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quiet_worker:
        _quiet_worker(args.quiet_worker)
        return
    if args.against:
        report_against(args.against, args.turns)
        return
    if args.only == "quiet":
        report_quiet()
        return
    meters, days = (2000, 21) if args.full else (300, 14)
    settings = DetectionSettings()
    _load_compiled()
    print(f"generating {meters} meters x {days} days of 15-minute readings ...")
    readings = fleet(meters, days)

    us_meter, states = bench_meter_path(readings, settings)
    us_hst, hst_bytes = bench_hst(readings, 50_000 if args.full else 20_000)
    us_seg = bench_segments(states, settings, days)
    flow_sample = readings[: (200_000 if args.full else 60_000)]
    us_flow = bench_flow(flow_sample)
    sizes = np.array([len(s.to_bytes()) for s in states.values()])
    pickled = np.array([len(pickle.dumps(s)) for s in states.values()])
    template = max(states.values(), key=lambda s: len(s.to_bytes()))
    live_mb, snap_mb = bench_memory(template, 100_000)

    print()
    print("ratio = River HST / gridwatch (above 1: gridwatch is cheaper)")
    print(f"{'figure':58} {'gridwatch':>12} {'River HST':>12} {'ratio':>8}")
    print(f"{'µs per reading, per-meter path (all detectors)':58} {us_meter:12.1f} "
          f"{us_hst:12.1f} {us_hst / us_meter:7.1f}x")
    print(f"{'µs per reading, whole bytewax flow (1 worker)':58} {us_flow:12.1f} "
          f"{us_hst:12.1f} {us_hst / us_flow:7.1f}x")
    print(f"{'µs per meter-day, segment models (KMeans + median)':58} {us_seg:12.1f}")
    print(f"{'pickled bytes per meter (mean / max)':58} "
          f"{sizes.mean():6.0f}/{sizes.max():5d} {hst_bytes:12d} "
          f"{hst_bytes / sizes.max():7.0f}x")
    print(f"{'pickle.dumps(MeterState) bytes (max)':58} {pickled.max():12d}")
    print(f"{'resident MB, 100,000 live meter states':58} {live_mb:12.1f} "
          f"{hst_bytes * 100_000 / 2**20:12.0f} (pickled HST x 100k, lower bound)")
    print(f"{'MB held by 100,000 snapshots (bytes objects)':58} {snap_mb:12.1f}")
    print(f"readings: per-meter path {len(readings):,}, flow {len(flow_sample):,}; "
          f"meters {meters}, days {days}")
    print()
    report_quiet()


if __name__ == "__main__":
    main()
