"""A dataflow that records where bytewax runs each key of a stateful step: the keys of
``GW_KEYS`` (one per line) go through ``key_on`` and ``stateful_map``, and each worker
appends the keys it held to ``GW_OUT/worker-<index>.txt``. Run with
``python -m bytewax.run _place_flow:build() -i <id> -a <addresses> -w <workers>``.

``build_parts()``: each process lists only its own partition, ``p<GW_PID>``, whose one item
names it; the worker that reads it writes it (an input's items stay on the worker that read
them up to an output)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource


class _Lines(StatelessSinkPartition[Any]):
    def __init__(self, path: Path) -> None:
        self.path = path

    def write_batch(self, items: list[Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(f"{key}\n" for key, _ in items))


class _Where(DynamicSink[Any]):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Lines:
        return _Lines(self.directory / f"worker-{worker_index}.txt")


def build() -> Dataflow:
    keys = Path(os.environ["GW_KEYS"]).read_text(encoding="utf-8").splitlines()
    flow = Dataflow("place_flow")
    keyed = op.key_on("key", op.input("keys", flow, TestingSource(keys)), lambda k: k)
    held = op.stateful_map("hold", keyed, lambda state, value: (state, value))
    op.output("where", held, _Where(Path(os.environ["GW_OUT"])))
    return flow


class _OnePart(StatefulSourcePartition[Any, None]):
    def __init__(self, part: str) -> None:
        self.items = [(part, None)]

    def next_batch(self) -> list[Any]:
        if not self.items:
            raise StopIteration
        out, self.items = self.items, []
        return out

    def snapshot(self) -> None:
        return None


class _OwnPartition(FixedPartitionedSource[Any, None]):
    def list_parts(self) -> list[str]:
        return [f"p{os.environ['GW_PID']}"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _OnePart:
        return _OnePart(for_part)


def build_parts() -> Dataflow:
    flow = Dataflow("place_parts")
    op.output("where", op.input("parts", flow, _OwnPartition()), _Where(Path(os.environ["GW_OUT"])))
    return flow
