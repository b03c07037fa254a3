"""A dataflow for the scale-out test: journal partitions in, one line per reading out, written
by whichever worker processed it. Run with ``python -m bytewax.run _ingest_flow:build()``;
``GW_JOURNAL`` and ``GW_OUT`` name the journal and output directories."""

from __future__ import annotations

import os
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from gridwatch.ingest import JournalSource


class _Lines(StatelessSinkPartition[str]):
    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write_batch(self, items: list[str]) -> None:
        self.f.write("".join(f"{x}\n" for x in items))
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


class LinesSink(DynamicSink[str]):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Lines:
        return _Lines(self.directory / f"worker-{worker_index}.txt")


def build() -> Dataflow:
    flow = Dataflow("ingest_scaleout")
    src = op.input("journal", flow, JournalSource(Path(os.environ["GW_JOURNAL"]), follow=False))
    lines = op.map("line", src, lambda r: f"{r.meter_id}|{r.ts.isoformat().replace('+00:00', 'Z')}")
    op.output("out", lines, LinesSink(Path(os.environ["GW_OUT"])))
    return flow
