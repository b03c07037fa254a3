"""Journal records and the hand-over, each beside a baseline measured in the same run.

* ``decode``: ``decode_item`` of 100,000 journal records as the collector writes them (tagged:
  rebuilt) against the same records untagged (the older form: validated by pydantic). The
  figure is the best of 5 rounds, printed beside its baseline as a ratio.
* ``handover``: resident memory per reading kept in the hand-over (``ingest.handover_items``,
  :class:`RecentItems`), for 100,000 readings decoded from 100-reading batches as the
  collector decodes them, each kept as a compact tuple (this version) and as the pydantic
  object beside its record (the form before), against decoding them and keeping nothing; one
  fresh child process per form. Also the time to take them back out.

    .venv/bin/python benchmarks/records.py [--only decode|handover]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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


def decode() -> None:
    readings = _readings()
    tagged = [encode_item(r) for r in readings]
    old = [rec[len(READING_TAG):] for rec in tagged]
    assert [decode_item(d) for d in tagged] == [decode_item(d) for d in old] == readings
    fast = _best(lambda: [decode_item(d) for d in tagged])
    slow = _best(lambda: [decode_item(d) for d in old])
    print(f"journal decode: tagged {N / fast:,.0f} records/s, untagged (validated) "
          f"{N / slow:,.0f} records/s; ratio {slow / fast:.2f}x")


# -- the hand-over's memory -------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _batches() -> list[bytes]:
    out = []
    for start in range(0, N, 100):
        docs = [{"meter_id": f"m{i % 5000}", "ts": f"2026-01-01T00:{i // 5000:02d}:00Z",
                 "kw": round((i % 977) * 0.25, 2), "kwh": 1000.0 + i, "voltage": 230.1,
                 "pf": 0.97} for i in range(start, start + 100)]
        out.append(json.dumps(docs).encode())
    return out


def _child(form: str) -> dict[str, Any]:
    from gridwatch.ingest._decode import Decoder
    from gridwatch.ingest._journal import RecentItems

    msgs = _batches()
    decoder = Decoder()
    now = datetime.now(UTC)
    gc.collect()
    recent = RecentItems(N)
    old: dict[int, tuple[bytes, Any]] = {}
    before = _rss()
    offset = 0
    for m in msgs:
        items = decoder.decode_message("meters/north/c1/batch", m, now).accepted
        records = [encode_item(r) for r in items]
        if form == "compact":
            recent.add(offset, records, items)
        elif form == "object":  # the hand-over before: {offset: (record, pydantic object)}
            for i, (rec, item) in enumerate(zip(records, items, strict=True)):
                old[offset + i] = (rec, item)
        offset += len(records)
    assert offset == N, f"{offset} of {N} readings accepted"
    gc.collect()
    kept = _rss() - before
    took = 0.0
    if form == "compact":
        wanted = [(e[0], e[1]) for e in recent._ring if e is not None]
        t0 = time.perf_counter()
        got = recent.take(wanted)
        took = time.perf_counter() - t0
        assert len(got) == N and None not in got
    return {"form": form, "rss_bytes": kept, "take_s": took}


def handover() -> None:
    out = {}
    for form in ("none", "object", "compact"):
        proc = subprocess.run([sys.executable, __file__, "--child", form], check=True,
                              capture_output=True, text=True)
        out[form] = json.loads(proc.stdout)
    none = out["none"]["rss_bytes"]
    obj = (out["object"]["rss_bytes"] - none) / N
    compact = (out["compact"]["rss_bytes"] - none) / N
    print(f"hand-over, resident memory per kept reading ({N:,} kept, over decoding and keeping "
          f"nothing): compact tuple {compact:,.0f} B, pydantic object and record (before) "
          f"{obj:,.0f} B; ratio {obj / compact:.2f}x")
    print(f"hand-over, taking {N:,} kept readings back as pydantic objects: "
          f"{out['compact']['take_s'] / N * 1e6:.2f} µs each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("decode", "handover"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    if args.only in (None, "decode"):
        decode()
    if args.only in (None, "handover"):
        handover()


if __name__ == "__main__":
    main()
