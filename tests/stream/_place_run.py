"""One process of the placement test's dataflow: ``python _place_run.py DIR PID PROCS ADDRS
MODE``. Reads the journal under ``DIR`` (its own partition in a cluster, every partition
alone), runs ``build_flow`` with the cells placed as ``DIR/placement.json`` says (``MODE``
``placed``; ``exclusive``: placed, and each cell's readings known to come from its own
process's partition only) or hashed (``hashed``), and writes ``DIR/out-<PID>.json``: the
events raised and how many times reading batches were pickled (only to cross to another
process)."""

from __future__ import annotations

import json
import pickle
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main

from gridwatch import Event, Settings
from gridwatch.ingest import JournalSource
from gridwatch.stream import Placement, ReadingBatch, Sinks, build_flow

crossed = [0]
_reduce = ReadingBatch.__reduce__


def _counting(batch: ReadingBatch) -> Any:
    crossed[0] += 1
    return _reduce(batch)


class _Part(StatelessSinkPartition[Any]):
    def __init__(self, events: list[list[str]]) -> None:
        self.events = events

    def write_batch(self, items: list[Any]) -> None:
        self.events.extend([e.meter_id, e.type, e.state, e.onset.isoformat()]
                           for e in items if isinstance(e, Event))


class _Events(DynamicSink[Any]):
    def __init__(self) -> None:
        self.events: list[list[str]] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Part:
        return _Part(self.events)


def main() -> None:
    directory, pid, procs, addrs, mode = (Path(sys.argv[1]), int(sys.argv[2]),
                                          int(sys.argv[3]), sys.argv[4], sys.argv[5])
    ReadingBatch.__reduce__ = _counting  # type: ignore[method-assign]
    meta = pickle.loads((directory / "meta.pickle").read_bytes())
    placement = None
    if mode in ("placed", "exclusive"):
        cells = json.loads((directory / "placement.json").read_text())
        placement = Placement({int(p): c for p, c in cells.items()}, procs,
                              exclusive=mode == "exclusive")
    journal = directory / "journal"
    source = JournalSource(journal, partitions=[pid] if procs > 1 else [0, 1], follow=False,
                           batch_size=500)
    everyone = JournalSource(journal, partitions=[0, 1]).list_parts()
    sink = _Events()
    flow = build_flow(Settings(), source, Sinks(events=sink), meta.get, snapshots=False,
                      partitions=everyone if procs > 1 else (), placement=placement)
    cli_main(flow, workers_per_process=1, process_id=pid if procs > 1 else None,
             addresses=addrs.split(",") if procs > 1 else None,
             epoch_interval=timedelta(seconds=1))
    (directory / f"out-{pid}.json").write_text(json.dumps(
        {"events": sink.events, "crossed": crossed[0], "readings": source.accepted}))


if __name__ == "__main__":
    main()
