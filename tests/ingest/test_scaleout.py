"""Two collectors on one shared subscription, then a two-process bytewax cluster over their two
journal partitions: each reading lands in one partition, and is processed once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _ingest_helpers import (
    journal_keys,
    make_settings,
    mixed_messages,
)
from _suite_helpers import wait_until
from prometheus_client import CollectorRegistry

from gridwatch import _services
from gridwatch.ingest import Collector, Journal, decode_record

pytestmark = [pytest.mark.services, pytest.mark.slow]

HERE = Path(__file__).parent


def _partition_keys(journal_dir: Path, part: int) -> list[tuple[str, str]]:
    with Journal(journal_dir, part, readonly=True) as j:
        out = []
        for _, data in j.read(0, 1_000_000):
            for item in decode_record(data):
                out.append((item.meter_id, item.ts.isoformat().replace("+00:00", "Z")))
        return out


def test_shared_subscription_then_two_process_dataflow(fresh_mosquitto, tmp_path: Path,
                                                       publisher_factory) -> None:
    group = {"shared_group": "gw-scale"}
    collectors = [
        Collector(make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-scale",
                                mqtt_extra=group), partition=p, registry=CollectorRegistry())
        for p in (0, 1)
    ]
    assert [c.client_id for c in collectors] == ["gw-scale", "gw-scale-p1"]
    msgs = list(mixed_messages(0, 10_000, 100))
    expected = Counter(k for _, _, keys in msgs for k in keys)
    journal_dir = tmp_path / "journal"
    try:
        for c in collectors:
            c.start()
        for c in collectors:
            c.wait_ready(10)
        pub = publisher_factory(fresh_mosquitto.port, client_id="pub-scale")
        pub.publish_all(msgs)
        pub.wait_all(60)
        wait_until(lambda: sum(c.stats.accepted for c in collectors) >= 20_000, 60,
                   "every reading journaled")
    finally:
        for c in collectors:
            c.stop()
    per_part = [_partition_keys(journal_dir, p) for p in (0, 1)]
    assert all(len(keys) > 1_000 for keys in per_part), [len(k) for k in per_part]
    assert Counter(journal_keys(journal_dir)) == expected

    # Two bytewax processes (-i/-a) over the two partitions, replay mode.
    out = tmp_path / "out"
    out.mkdir()
    ports = [_services.free_port(), _services.free_port()]
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    env = os.environ | {"GW_JOURNAL": str(journal_dir), "GW_OUT": str(out)}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "_ingest_flow:build()", "-i", str(i),
             "-a", addresses],
            env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for i in (0, 1)
    ]
    logs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    files = sorted(out.glob("worker-*.txt"))
    lines_per_worker = [f.read_text().splitlines() for f in files]
    assert len([ls for ls in lines_per_worker if ls]) == 2, "both processes read a partition"
    got = Counter(tuple(line.split("|")) for ls in lines_per_worker for line in ls)
    assert got == expected
