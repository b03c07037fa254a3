"""A dataflow for the scale-out test: journal partitions in, one line per reading out, written
by whichever worker processed it. Run with ``python -m bytewax.run _ingest_flow:build()``;
``GW_JOURNAL`` and ``GW_OUT`` name the journal and output directories."""

from __future__ import annotations

import os
import time
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


def _line(r: object) -> str:
    delay = float(os.environ.get("GW_DELAY_S", "0"))
    if delay:
        time.sleep(delay)  # makes the run long enough to be killed in the middle
    return f"{r.meter_id}|{r.ts.isoformat().replace('+00:00', 'Z')}"  # type: ignore[attr-defined]


def build() -> Dataflow:
    flow = Dataflow("ingest_flow")
    source = JournalSource(Path(os.environ["GW_JOURNAL"]), follow=False,
                           batch_size=int(os.environ.get("GW_BATCH", "1000")))
    src = op.input("journal", flow, source)
    op.output("out", op.map("line", src, _line), LinesSink(Path(os.environ["GW_OUT"])))
    return flow
