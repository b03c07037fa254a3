"""What the placement tests share (``tests/stream/test_place_events.py`` and
``tests/ingest/test_placed_collectors.py``): the small demo fleet they run, and a cluster of
``tests/stream/_place_run.py`` processes over a journal directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gridwatch import _services
from gridwatch.simulators import Fleet, Simulation

__all__ = ["PLACE_RUN", "run_placed", "small_demo"]

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "fleets" / "demo.yaml"
#: One process of the placement tests' dataflow (see its docstring).
PLACE_RUN = ROOT / "tests" / "stream" / "_place_run.py"


def small_demo() -> Simulation:
    """The demo fleet's eight days with a sixth of its customers (5 cells in two regions),
    without its devices."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    for spec in data["customers"].values():
        spec["count"] = max(2, spec["count"] // 6)
    data.pop("devices", None)
    return Simulation(Fleet.from_dict(data, source=str(DEMO)))


def run_placed(directory: Path, procs: int, mode: str) -> dict[str, Any]:
    """``procs`` processes of ``_place_run.py`` over ``directory`` (its journal, meta and
    placement) in ``mode`` (``hashed``, ``placed``, ``exclusive``): their events (sorted),
    how many times reading batches were pickled, and the readings each read."""
    addresses = ",".join(f"127.0.0.1:{_services.free_port()}" for _ in range(procs))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(PLACE_RUN.parent),
                                                       os.environ.get("PYTHONPATH", "")])}
    children = [subprocess.Popen([sys.executable, str(PLACE_RUN), str(directory), str(i),
                                  str(procs), addresses, mode], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for i in range(procs)]
    logs = [c.communicate(timeout=300)[0].decode(errors="replace") for c in children]
    assert [c.returncode for c in children] == [0] * procs, logs
    outs = [json.loads((directory / f"out-{i}.json").read_text()) for i in range(procs)]
    return {"events": sorted(tuple(e) for o in outs for e in o["events"]),
            "crossed": sum(o["crossed"] for o in outs),
            "readings": sum(o["readings"] for o in outs),
            "per_process": [o["readings"] for o in outs]}
