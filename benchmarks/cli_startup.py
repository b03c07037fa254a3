"""Start-up time of the command line, beside a bare interpreter measured in the same run.

Each command runs as a fresh process, alternating with the others, ``--runs`` times; the table
gives the median and the best wall time, and the median as a ratio of ``python -c pass``.
The last row loads what ``import gridwatch`` loaded while the models and alerts packages imported
their names eagerly (River, jinja2, requests, the router), for comparison.

    .venv/bin/python benchmarks/cli_startup.py            # about 30 s
    .venv/bin/python benchmarks/cli_startup.py --runs 40
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    args = parser.parse_args()

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
