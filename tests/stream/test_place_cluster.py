"""Where a real bytewax cluster puts keys and partitions: two processes of two workers each
(``python -m bytewax.run -i/-a/-w``), against :func:`gridwatch.stream.route` and
:class:`gridwatch.stream.Placement`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch import _services
from gridwatch.stream import Placement, route

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).parent


def _cluster(flow: str, out: Path, workers: int, env: dict[str, str] | None = None
             ) -> dict[int, list[str]]:
    """Run ``_place_flow:<flow>`` on two processes of ``workers`` workers; what each worker
    wrote, by worker index."""
    out.mkdir()
    addresses = ";".join(f"127.0.0.1:{_services.free_port()}" for _ in range(2))
    base = os.environ | (env or {}) | {"GW_OUT": str(out)}
    base["PYTHONPATH"] = os.pathsep.join([str(HERE), base.get("PYTHONPATH", "")])
    procs = [subprocess.Popen([sys.executable, "-m", "bytewax.run", f"_place_flow:{flow}",
                               "-i", str(i), "-a", addresses, "-w", str(workers)],
                              env=base | {"GW_PID": str(i)}, cwd=HERE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in (0, 1)]
    logs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    return {int(f.stem.split("-")[1]): f.read_text(encoding="utf-8").splitlines()
            for f in out.glob("worker-*.txt")}


def test_bytewax_runs_each_key_on_the_worker_route_names(tmp_path: Path):
    cells = [f"{region}-c{i:03d}" for region in ("north", "south", "city") for i in range(40)]
    placement = Placement({0: ["north-*"], 1: ["south-*"]}, processes=2,
                          workers_per_process=2)
    keys = [placement.key(c) for c in cells] + ["clock", "shard:07", "ü-é", "x" * 90]
    assert len(set(keys)) == len(keys)
    (tmp_path / "keys.txt").write_text("\n".join(keys), encoding="utf-8")
    held = _cluster("build()", tmp_path / "out", 2, {"GW_KEYS": str(tmp_path / "keys.txt")})
    where = {key: worker for worker, ks in held.items() for key in ks}
    assert sorted(where) == sorted(keys)
    assert {k: route(k, 4) for k in keys} == where
    assert set(where.values()) == {0, 1, 2, 3}
    for c in cells:
        region = c.split("-")[0]
        if region in ("north", "south"):
            assert where[placement.key(c)] // 2 == {"north": 0, "south": 1}[region]
        else:
            assert placement.key(c) == f"cell:{c}"  # unplaced: the plain key, hashed


def test_a_partition_listed_by_one_process_is_read_by_its_first_worker(tmp_path: Path):
    """bytewax makes the primary of a partition the least loaded of the workers that list it,
    the lowest index first: with one partition per process, worker ``p * workers``."""
    held = _cluster("build_parts()", tmp_path / "out", 2)
    assert {w: ks for w, ks in held.items() if ks} == {0: ["p0"], 2: ["p1"]}
