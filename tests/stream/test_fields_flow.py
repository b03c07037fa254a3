"""The dataflow over a journal, its reading batches as their records' given fields (the
engine's way: reading objects made only for the readings the compiled lane leaves to Python)
against the same journal read as reading objects: the same events, scores and profiles in the
same order, and the same lines stored, on a slice of the demo fleet with anomalies injected."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from _models_helpers import demo_slice
from bytewax.testing import TestingSink, run_main

from gridwatch import Event, LoadProfile, Settings
from gridwatch.ingest import Journal, JournalSource
from gridwatch.ingest._journal import encode_items
from gridwatch.storage._points import field_lines, to_lines
from gridwatch.stream import ReadingBatch, Sinks, build_flow


class _Batches(TestingSink):
    """A sink that takes reading batches whole, as the storage sink does."""

    takes_batches = True


def _journal(directory: Path) -> tuple[dict[str, Any], int]:
    """A slice of the demo fleet with anomalies injected, in a journal as the collector
    writes it: the meters' registry entries and the readings written."""
    _fleet, meta, readings, _labels = demo_slice("1d")
    with Journal(directory, 0) as journal:
        for k in range(0, len(readings), 1000):
            journal.append(encode_items(readings[k:k + 1000]))
    return meta, len(readings)


def _run(directory: Path, meta: dict[str, Any], as_fields: bool | None
         ) -> tuple[list[Any], list[str], list[bool]]:
    """(events, scores and profiles; the lines stored; whether each batch held fields)."""
    source = JournalSource(directory, follow=False, batch_size=500, as_fields=as_fields)
    points: list[Any] = []
    events: list[Any] = []
    settings = Settings(detection={"score_sample_every": 20})
    run_main(build_flow(settings, source, Sinks(points=_Batches(points),
                                                events=TestingSink(events)), meta))
    lines: list[str] = []
    held: list[bool] = []
    for item in points:
        if isinstance(item, ReadingBatch):
            held.append(item.given is not None)
            lines += field_lines(item.fields())
        else:
            lines += to_lines(item)
    return events, lines, held


def test_batches_of_fields_raise_and_store_what_batches_of_readings_do(tmp_path: Path) -> None:
    meta, written = _journal(tmp_path)
    fields = _run(tmp_path, meta, None)
    objects = _run(tmp_path, meta, False)
    assert all(fields[2]) and not any(objects[2])  # each run read the journal its own way
    assert any(isinstance(e, Event) and e.state == "firing" for e in objects[0])
    assert {type(e) for e in objects[0]} >= {Event, LoadProfile}
    assert fields[0] == objects[0]
    measured = Counter(line.split(",", 1)[0] for line in objects[1])
    # every reading stored; scores sampled; the industrial customers' load forecasts (their
    # readings taken one by one out of batches of fields)
    assert measured["reading"] == written
    assert measured["score"] > 0 and measured["forecast"] > 0
    assert fields[1] == objects[1]
