"""The engine's journal source with a hook at each of its batches, for the benchmarks' child
processes (the ``gridwatch`` package on their path may be another tree's, in comparisons)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def watched_journal_source(first: list[Any], after: Callable[[], None] | None = None
                           ) -> type:
    """A ``JournalSource`` whose partitions note in ``first[0]`` the wall and CPU clocks at
    their first batch, and call ``after`` after each batch."""
    from gridwatch.ingest import JournalSource

    class Watched(JournalSource):
        def build_part(self, step_id: str, for_part: str, resume_state: Any) -> Any:
            part = super().build_part(step_id, for_part, resume_state)
            inner = part.next_batch

            def next_batch() -> Any:
                if first[0] is None:
                    first[0] = (time.perf_counter(), time.process_time())
                items = inner()
                if after is not None:
                    after()
                return items

            part.next_batch = next_batch
            return part

    return Watched
