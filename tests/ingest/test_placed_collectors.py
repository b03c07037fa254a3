"""A placed 2-process cluster configured end to end on the real broker: ``topics.regions`` gives
each process's collector its own region's topics, ``engine.placement`` puts that region's
cells on the same process, exclusively. The demo fleet (a sixth of its customers, 5 cells in
two regions, eight days) is published to mosquitto as single readings and concentrator
batches; every reading is journaled once, by the process its cell is placed on, and the
cluster's dataflow (reading only its own partition per process) raises the events of a
1-process run over both partitions."""

from __future__ import annotations

import json
import pickle
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _place_helpers import run_placed, small_demo

from gridwatch import Settings
from gridwatch.ingest import Collector, Journal, journal_partitions
from gridwatch.simulators import MqttTarget

pytestmark = [pytest.mark.slow, pytest.mark.services]

#: The two-line configuration of a placed cluster.
REGIONS = {0: ["pudong"], 1: ["minhang"]}
PLACEMENT = {0: ["pudong-*"], 1: ["minhang-*"]}


def _utc(ts: str) -> str:
    return datetime.fromisoformat(ts).astimezone(UTC).isoformat()


def _journaled(journal_dir: Path) -> dict[int, Counter[tuple[str, str]]]:
    """Journal partition -> (meter, ts) of each reading in it, counted."""
    out: dict[int, Counter[tuple[str, str]]] = {}
    for part in journal_partitions(journal_dir):
        keys: Counter[tuple[str, str]] = Counter()
        with Journal(journal_dir, part, readonly=True) as j:
            offset = j.start_offset
            while batch := j.read(offset, 10_000):
                for off, data in batch:
                    doc = json.loads(data)  # a reading, or a message's batch
                    for one in doc if isinstance(doc, list) else [doc]:
                        keys[(one["meter_id"], _utc(one["ts"]))] += 1
                    offset = off + 1
        out[part] = keys
    return out


def test_placed_cluster_collectors_hear_their_own_cells(tmp_path: Path, fresh_mosquitto):
    broker = fresh_mosquitto
    settings = Settings(
        mqtt={"host": broker.host, "port": broker.port, "client_id": "placed-{partition}",
              "shared_group": "gridwatch", "reconnect_max_s": 2},  # as `gridwatch run -i/-a`
        ingest={"journal_dir": tmp_path / "journal", "deadletter_dir": tmp_path / "dead"},
        topics={"regions": REGIONS},
        engine={"placement": PLACEMENT, "placement_exclusive": True},
    )
    sim = small_demo()
    meta = {m.meter_id: m.meta() for m in sim.meters}
    collectors = [Collector(settings, partition=p) for p in (0, 1)]
    assert collectors[0].topics.reading_filters == ("meters/pudong/+/reading",)
    assert collectors[1].topics.batch_filters == ("meters/minhang/+/batch",)
    published: Counter[tuple[str, str]] = Counter()
    try:
        for c in collectors:
            c.start()
            c.wait_ready(timeout=15)
        singles = MqttTarget(broker.host, broker.port, client_id="sim-singles", max_pending=500)
        batches = MqttTarget(broker.host, broker.port, client_id="sim-batches", batch_size=24,
                             max_pending=500)
        try:
            # The first two days as single readings, the rest as concentrator batches. The
            # singles reach the broker before the first batch goes out: two clients' messages
            # are not ordered between them, and a reading that arrived more than a day behind
            # its meter's newest is refused as stale (ingest.max_backwards_s), as it should be.
            for i, (_, rows) in enumerate(sim.chunks()):
                if i == 2 * 96:
                    singles.flush(timeout=60)
                (singles if i < 2 * 96 else batches).write(rows)
                published.update((meter, _utc(json.loads(payload)["ts"]))
                                 for _, _, meter, payload in rows)
            singles.close()
            batches.close()
        finally:
            singles.client.loop_stop()
            batches.client.loop_stop()
        total = sum(published.values())
        deadline = time.monotonic() + 120
        while sum(c.stats.accepted for c in collectors) < total:
            assert time.monotonic() < deadline, [c.stats for c in collectors]
            time.sleep(0.2)
        time.sleep(1.0)  # anything more (a reading twice) would arrive now
        stats = [c.stats for c in collectors]
    finally:
        for c in collectors:
            c.stop()
    assert [s.deadlettered for s in stats] == [{}, {}], stats
    assert sum(s.accepted for s in stats) == total

    # Every reading journaled once, by the process its cell is placed on.
    journals = _journaled(tmp_path / "journal")
    assert sorted(journals) == [0, 1]
    assert journals[0] + journals[1] == published
    assert max(published.values()) == 1
    for part, keys in journals.items():
        cells = {meta[m].grid_cell.split("-")[0] for m, _ in keys}
        assert cells == set(REGIONS[part]), (part, cells)

    # The dataflow: one process over both partitions, and the placed cluster, each process
    # reading its own partition only.
    runs = {}
    for name, procs, mode in (("one", 1, "hashed"), ("exclusive", 2, "exclusive")):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "journal").symlink_to(tmp_path / "journal")
        (directory / "meta.pickle").write_bytes(pickle.dumps(meta))
        (directory / "placement.json").write_text(json.dumps(PLACEMENT))
        runs[name] = run_placed(directory, procs, mode)
    one, placed = runs["one"], runs["exclusive"]
    assert placed["per_process"] == [sum(journals[0].values()), sum(journals[1].values())]
    firing = {(e[0], e[1]) for e in one["events"] if e[2] == "firing"}
    assert any(t == "feeder_outage" for _, t in firing), firing
    assert len(firing) >= 5, firing

    # Possible theft is confirmed by the segment models, which see the meter-days of a class
    # in another order when two processes send them: left out (as in test_place_events.py).
    def detectors(events: list[Any]) -> list[Any]:
        return [e for e in events if e[1] != "possible_theft"]

    assert detectors(placed["events"]) == detectors(one["events"])
    assert placed["crossed"] == 0  # no reading batch left the process that journaled it
