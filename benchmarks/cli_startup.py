"""Start-up time of the command line, beside a bare interpreter measured in the same run.

Each command runs as a fresh process, alternating with the others, ``--runs`` times; the table
gives the median and the best wall time, and the median as a ratio of ``python -c pass``.
The last row loads what ``import gridwatch`` loaded while the models and alerts packages imported
their names eagerly (River, jinja2, requests, the router), for comparison.

``--registry``: the engine's own start-up with the registry of the 100,000-meter utility fleet
(``benchmarks/_e2e_lib.py``): load it, build the dataflow's table of meter facts, then freeze
what was built, as ``gridwatch run`` does, with the cycle collector tuned from the start
(``engine.gc_threshold``, what the engine does) against Python's settings until the dataflow
starts (what it did before); one fresh child process each, alternating, ``--runs`` times.

    .venv/bin/python benchmarks/cli_startup.py            # about 30 s
    .venv/bin/python benchmarks/cli_startup.py --runs 40
    .venv/bin/python benchmarks/cli_startup.py --registry --runs 3   # about 1 min
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass (baseline)", ["-c", "pass"]),
    ("python -c 'import gridwatch'", ["-c", "import gridwatch"]),
    ("gridwatch --help", ["-m", "gridwatch", "--help"]),
    ("gridwatch check-config", ["-m", "gridwatch", "check-config"]),
    ("gridwatch + models + alerts, eager", [
        "-c", "import gridwatch, gridwatch.models._segment, gridwatch.models._meter, "
              "gridwatch.alerts._service, gridwatch.alerts._acl"]),
]


def once(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


START_UP_CHILD = """
import json, sys, time
from gridwatch import Settings
from gridwatch._gc import tuned_gc
from gridwatch._registry import Registry

path, from_start = sys.argv[1], sys.argv[2] == "tuned"
threshold = Settings().engine.gc_threshold
t0 = time.perf_counter()
with tuned_gc(threshold if from_start else 0):
    registry = Registry.load(path)
    t1 = time.perf_counter()
    table = registry.meta_table()
    t2 = time.perf_counter()
with tuned_gc(threshold) as settled:
    settled()
    t3 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "table": t2 - t1, "freeze": t3 - t2, "all": t3 - t0,
                  "meters": len(table)}))
"""


def start_up(runs: int) -> None:
    """The engine's start-up work on a 100,000-meter registry, tuned collector against
    Python's settings, alternating in fresh child processes."""
    import json
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _e2e_lib import load_fleet

    from gridwatch.simulators import Simulation, write_registry

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.json"
        print("writing the registry of the 100,000-meter fleet ...", flush=True)
        write_registry(Simulation(load_fleet(duration="15m")).meters, path)
        got: dict[str, list[dict[str, float]]] = {"tuned": [], "python": []}
        for k in range(runs):
            for mode in ("tuned", "python"):
                out = subprocess.run([sys.executable, "-c", START_UP_CHILD, str(path), mode],
                                     check=True, capture_output=True, text=True)
                got[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  run {k + 1}, {mode}: {got[mode][-1]['all']:.2f} s", flush=True)
    meters = int(got["tuned"][0]["meters"])
    print(f"engine start-up with a registry of {meters:,} meters, median of {runs} "
          f"(load / table of meter facts / freeze / all):")
    med = {m: {k: statistics.median(r[k] for r in rows) for k in ("load", "table", "freeze",
                                                                   "all")}
           for m, rows in got.items()}
    for mode, label in (("python", "Python's collector settings (baseline)"),
                        ("tuned", "engine.gc_threshold from the start")):
        f = med[mode]
        print(f"  {label:40} {f['load']:5.2f} / {f['table']:5.2f} / {f['freeze']:5.2f} / "
              f"{f['all']:5.2f} s")
    print(f"  ratio (baseline / tuned): {med['python']['all'] / med['tuned']['all']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    parser.add_argument("--registry", action="store_true",
                        help="the engine's start-up with a 100,000-meter registry instead")
    args = parser.parse_args()
    if args.registry:
        start_up(args.runs)
        return

    times: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
    for _name, argv in COMMANDS:  # warm the file cache once
        once(argv)
    for _ in range(args.runs):
        for name, argv in COMMANDS:
            times[name].append(once(argv))

    base = statistics.median(times[COMMANDS[0][0]])
    print(f"{'command':40} {'median ms':>10} {'best ms':>9} {'× baseline':>11}")
    for name, _ in COMMANDS:
        med = statistics.median(times[name])
        print(f"{name:40} {med * 1000:10.0f} {min(times[name]) * 1000:9.0f} {med / base:11.1f}")
    print(f"({args.runs} runs each, {sys.executable}, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
