"""Journal records rebuilt without a second validation, against validating them (same run).

``decode_item`` of 100,000 journal records as the collector writes them (tagged: rebuilt)
against the same records untagged (the older form: validated by pydantic). The figure is the
best of 5 rounds, printed beside its baseline as a ratio::

    .venv/bin/python benchmarks/records.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gridwatch import Reading
from gridwatch.ingest import decode_item, encode_item
from gridwatch.ingest._journal import READING_TAG

N = 100_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _readings() -> list[Reading]:
    return [Reading(meter_id=f"m-{i % 2000:05d}", ts=T0 + timedelta(minutes=15 * (i // 2000)),
                    kw=0.5 + (i % 97) / 10, kwh=1000.0 + i / 100, voltage=(230.0 + i % 7,),
                    pf=0.95) for i in range(N)]


def _best(fn: Callable[[], object], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    readings = _readings()
    tagged = [encode_item(r) for r in readings]
    old = [rec[len(READING_TAG):] for rec in tagged]
    assert [decode_item(d) for d in tagged] == [decode_item(d) for d in old] == readings
    fast = _best(lambda: [decode_item(d) for d in tagged])
    slow = _best(lambda: [decode_item(d) for d in old])
    print(f"journal decode: tagged {N / fast:,.0f} records/s, untagged (validated) "
          f"{N / slow:,.0f} records/s; ratio {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
