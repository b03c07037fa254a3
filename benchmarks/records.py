"""Journal records and the hand-over, each beside a baseline measured in the same run.

* ``decode``: ``decode_item`` of 100,000 journal records as the collector writes them (tagged:
  rebuilt) against the same records untagged (the older form: validated by pydantic). The
  figure is the best of 5 rounds, printed beside its baseline as a ratio. Then the
  collector's decode of 100-reading batches in the compact form (msgspec's path) as the
  engine's collector process makes it (the readings' fields, no objects), the same making
  reading objects (a reader in the process), and the same readings with JSON's spaces
  (pydantic's path), in turns.
* ``handover``: resident memory per reading kept in the hand-over (``ingest.handover_items``,
  :class:`RecentItems`), for 100,000 readings decoded from 100-reading batches as the
  collector decodes them and not yet taken (a reader behind a burst), each kept as a compact
  tuple, as the pydantic object beside its record (the form before), and as the hand-over
  keeps them by default (the newest as they came, the others compact), against decoding them
  and keeping nothing; one fresh child process per form. Also the time to take compact
  readings back out (with Python's default garbage collector settings).

* ``path``: the per-reading work of the live path, in µs per reading, of this checkout and,
  with ``--against REV``, of the code at git revision ``REV`` (exported to a temporary
  directory and imported from there) in the same run, rounds alternating, best of 3:
  the collector (``Decoder.decode_message`` of 100-reading batches, ``encode_item``,
  ``Journal.append`` without fsync, with the dataflow's hand-over registered), the live
  journal source (``next_batch`` with metrics, reading as the collector appends: the items
  come from the hand-over; and reading 5,000 records behind the collector, as an engine
  under load) and a replay of the same journal (every record decoded); then the engine's
  process layout: the collector with no reader in its process (no objects, nothing handed
  over; ten messages an append) and the dataflow's source reading its records as fields.

* ``day``: the work of a meter's finished day, on the first 200,000 readings of sgsc45 (real
  half-hourly household load, eight meters, about 4,100 meter-days): the day's close
  (``_daily._close_day``) in µs a close, the segmenter's (``Segmenter.profile``, or
  ``Segmenter.assign`` and ``load_profile`` of a revision without it) in µs a meter-day,
  and stepping the meters in µs a reading, of this checkout and, with ``--against REV``, of
  revision ``REV`` in the same run (rounds alternating, best of 3), with whether both gave
  the same profiles, events and load profiles (a digest of them).
* ``first``: a meter's first reading in a cell (``CellLogic.on_batch`` of 100-reading batches
  from 50,000 meters new to it: each meter's state made, its row set for the lane), in µs a
  reading, beside the second reading of the same meters (the lane) and their third in a cell
  resumed from the cell's snapshot (a restart with recovery: the resumed meters have no
  rows yet), of this checkout and, with ``--against REV``, of revision ``REV``, rounds
  alternating, best of 3 (``--rounds N``).
* ``small``: a cell's known meters' quiet readings in batches of a few readings
  (``CellLogic.on_batch``; a cell's batch is as small as that when meters send their readings
  one a message, or concentrators mix cells), in µs a reading: 4,800 meters stepped for
  three intervals in batches of 400 first, then an interval each in batches of 1, 2, 4 and
  12 readings, one of 100 after the batches of one (``12 after 1``: 12-reading batches of
  the meters that the batches of one stepped) and one of 100, of this checkout and, with
  ``--against REV``, of revision ``REV``, rounds alternating, best of 3.
* ``midnight``: the interval in which every meter closes its local day. 10,000 meters read
  every 30 minutes for two days through a cell (``CellLogic.on_batch``, 100-reading
  batches), their profiles through the segmenter stage (``SegmenterLogic``); timed, in µs a
  reading: the last interval of the second day (an ordinary one, through the lane) and the
  interval at midnight (each meter's close), with the segmenter stage in µs a meter-day and
  what the midnight interval costs one core for 100,000 meters (cells and segmenter), of
  this checkout and, with ``--against REV``, of revision ``REV``, rounds alternating, best
  of 3, with whether both stored the same load profiles.

* ``feeder``: a feeder outage's end in a cell's silence watch (``CellWatch``) of 5,000 and
  of 20,000 meters: every meter silent together, then a reading of each again; the seconds
  of Python those readings take (the outage resolved once), of this checkout and, with
  ``--against REV``, of revision ``REV``, rounds alternating, best of 3.

    .venv/bin/python benchmarks/records.py
        [--only decode|handover|path|day|first|small|midnight|feeder] [--against REV]
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
from pathlib import Path
from typing import Any

from _data import SGSC45

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


def decode_batches() -> None:
    """The collector's decode of 100-reading batches (``Decoder.decode_message``, a fresh
    decoder each round: its duplicate check) in the compact form the simulator and most
    concentrators send (msgspec's path, ``compact_fields``) as the engine's collector process
    decodes them (no reader in its process: the readings' fields, no objects), against the
    same with reading objects (a reader in the process: the hand-over) and against the same
    readings with JSON's spaces (``json.dumps`` with its default separators: pydantic's
    path). The three in turns, each its best of five."""
    from gridwatch.ingest._assemble import reading_of_fields
    from gridwatch.ingest._decode import Decoder

    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    docs = [[{"meter_id": f"m{i % 5000}",
              "ts": (base + timedelta(minutes=15 * (i // 5000))).isoformat()
              .replace("+00:00", "Z"), "kw": round((i % 977) * 0.25, 2), "kwh": 1000.0 + i,
              "voltage": [230.1, 229.7, 231.2], "current": [1.5, 1.25, 1.75], "pf": 0.97,
              "interval_s": 900} for i in range(k, k + 100)] for k in range(0, N, 100)]
    compact = [json.dumps(d, separators=(",", ":")).encode() for d in docs]
    spaced = [json.dumps(d).encode() for d in docs]

    def run(msgs: list[bytes], objects: bool = True, kept: list[Any] | None = None) -> int:
        """The readings accepted (``kept``, when given, gets them; the collector keeps none
        past its batch, and neither does the timed run)."""
        decoder, now = Decoder(), datetime.now(UTC)
        decoder.objects = objects
        n = 0
        for m in msgs:
            res = decoder.decode_message("meters/n/c1/batch", m, now)
            n += res.count
            if kept is not None:
                kept += res.accepted
                kept += res.given or ()
        return n

    def accepted(msgs: list[bytes], objects: bool = True) -> list[Any]:
        kept: list[Any] = []
        run(msgs, objects, kept)
        return kept

    objects = accepted(compact)
    assert objects == accepted(spaced) and len(objects) == N
    assert list(map(reading_of_fields, accepted(compact, objects=False))) == objects
    del objects
    times: dict[str, list[float]] = {"fields": [], "objects": [], "spaced": []}
    for _ in range(5):
        for name, go in (("fields", lambda: run(compact, objects=False)),
                         ("objects", lambda: run(compact)), ("spaced", lambda: run(spaced))):
            times[name].append(_best(go, rounds=1))
    a, b, c = (min(times[k]) / N * 1e6 for k in ("fields", "objects", "spaced"))
    print(f"collector decode of 100-reading batches: compact as fields (the collector "
          f"process) {a:.2f} µs a reading, compact as objects (a reader in the process) "
          f"{b:.2f} µs, with spaces (pydantic) {c:.2f} µs; objects/fields {b / a:.2f}x, "
          f"spaces/objects {c / b:.2f}x")


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
    recent = RecentItems(N, loose=0) if form == "compact" else RecentItems(N)
    old: dict[int, tuple[bytes, Any]] = {}
    before = _rss()
    offset = 0
    for m in msgs:
        items = decoder.decode_message("meters/north/c1/batch", m, now).accepted
        records = [encode_item(r) for r in items]
        if form in ("compact", "handover"):
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
    from gridwatch.ingest._journal import HANDOVER_LOOSE

    out = {}
    for form in ("none", "object", "compact", "handover"):
        proc = subprocess.run([sys.executable, __file__, "--child", form], check=True,
                              capture_output=True, text=True)
        out[form] = json.loads(proc.stdout)
    none = out["none"]["rss_bytes"]
    obj = (out["object"]["rss_bytes"] - none) / N
    compact = (out["compact"]["rss_bytes"] - none) / N
    mixed = (out["handover"]["rss_bytes"] - none) / N
    print(f"hand-over, resident memory per kept reading ({N:,} kept, over decoding and keeping "
          f"nothing): compact tuple {compact:,.0f} B, pydantic object and record (before) "
          f"{obj:,.0f} B; ratio {obj / compact:.2f}x; as kept by default (the newest "
          f"{HANDOVER_LOOSE:,} as they came, the others compact) {mixed:,.0f} B")
    print(f"hand-over, taking {N:,} kept readings back as pydantic objects: "
          f"{out['compact']['take_s'] / N * 1e6:.2f} µs each")
    handover_cpu()


def handover_cpu() -> None:
    """The hand-over's CPU per reading (collector's add, dataflow's take; garbage collector
    off, best of 5) when the reader keeps up (1,000 readings behind) and behind a burst of
    100,000, beside decoding the same records (what a reader does without the hand-over)."""
    from gridwatch.ingest._journal import RecentItems

    readings = _readings()
    records = [encode_item(r) for r in readings]
    wanted = list(enumerate(records))
    gc.collect()
    gc.disable()
    try:
        decode_s = _best(lambda: [decode_item(d) for d in records])
        for mode in ("keeps up", "burst"):
            add_s = take_s = float("inf")
            for _ in range(5):
                recent = RecentItems(131_072)
                a = t = 0.0
                step = 1_000 if mode == "keeps up" else N
                for k in range(0, N, step):
                    t0 = time.perf_counter()
                    for j in range(k, k + step, 100):
                        recent.add(j, records[j:j + 100], readings[j:j + 100])
                    t1 = time.perf_counter()
                    got = [recent.take(wanted[j:j + 1_000]) for j in range(k, k + step, 1_000)]
                    t += time.perf_counter() - t1
                    a += t1 - t0
                    assert all(x is not None for part in got for x in part)
                add_s, take_s = min(add_s, a), min(take_s, t)
            print(f"hand-over, reader {mode}: add {add_s / N * 1e6:.2f} µs + take "
                  f"{take_s / N * 1e6:.2f} µs per reading, against decode_item "
                  f"{decode_s / N * 1e6:.2f} µs per record; ratio "
                  f"{decode_s / (add_s + take_s):.1f}x")
    finally:
        gc.enable()


# -- the live path, per reading ------------------------------------------------------------------
PATH_MSGS = 1_000  # 100-reading batches: 100,000 readings
PATH_STEPS = ("collector", "live source", "live, behind", "replay source",
              "collector, own process", "source, as fields")


def _path_child() -> dict[str, float]:
    """One round of the live path in this process (whichever ``gridwatch`` it imports)."""
    import tempfile

    from prometheus_client import CollectorRegistry

    from gridwatch.ingest import IngestMetrics, JournalSource, _journal
    from gridwatch.ingest._decode import Decoder
    from gridwatch.ingest._journal import Journal

    # what the collector of that revision calls (a batch in one loop since encode_items)
    encode_all: Callable[[list[Any]], list[bytes]] = getattr(
        _journal, "encode_items", lambda items: [_journal.encode_item(r) for r in items])
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    msgs = []
    for start in range(0, PATH_MSGS * 100, 100):
        docs = [{"meter_id": f"m{i % 5000}",
                 "ts": (base + timedelta(minutes=i // 5000)).isoformat().replace("+00:00", "Z"),
                 "kw": round((i % 977) * 0.25, 2), "kwh": 1000.0 + i, "voltage": 230.1,
                 "pf": 0.97} for i in range(start, start + 100)]
        msgs.append(json.dumps(docs, separators=(",", ":")).encode())  # as the simulator sends
    n = PATH_MSGS * 100
    out = {}
    with tempfile.TemporaryDirectory(prefix="gridwatch-path-") as tmp:
        directory = Path(tmp) / "journal"
        decoder = Decoder()
        source = JournalSource(directory, partitions=[0], follow=True, batch_size=1000,
                               metrics=IngestMetrics(CollectorRegistry()))
        part = source.build_part("in", "p0000", None)
        got = 0
        collector_s = source_s = 0.0
        records: list[tuple[list[bytes], list[Any]]] = []
        gc.collect()
        gc.freeze()
        with Journal(directory, 0, fsync=False) as journal:
            for k in range(0, PATH_MSGS, 10):  # ten messages, then the dataflow reads them
                t0 = time.perf_counter()
                now = datetime.now(UTC)
                for m in msgs[k:k + 10]:
                    items = decoder.decode_message("meters/north/c1/batch", m, now).accepted
                    recs = encode_all(items)
                    journal.append(recs, items)
                    records.append((recs, items))  # (appended again below, read behind)
                t1 = time.perf_counter()
                while True:
                    batch = part.next_batch()
                    if not batch:
                        break
                    got += len(batch)
                source_s += time.perf_counter() - t1
                collector_s += t1 - t0
        part.close()
        assert got == n, f"read {got} of {n}"
        # the live source 5,000 records behind the collector (an engine under load): a batch
        # read as each 1,000 are appended, the items from the hand-over
        behind = Path(tmp) / "behind"
        source = JournalSource(behind, partitions=[0], follow=True, batch_size=1000,
                               metrics=IngestMetrics(CollectorRegistry()))
        part = source.build_part("in", "p0000", None)
        got = 0
        behind_s = 0.0
        with Journal(behind, 0, fsync=False) as journal:
            for k, (recs, items) in enumerate(records):
                journal.append(recs, items)
                if k % 10 == 9 and k >= 59:  # 1,000 more appended, 5,000 left unread
                    t1 = time.perf_counter()
                    got += len(part.next_batch())
                    behind_s += time.perf_counter() - t1
            t1 = time.perf_counter()
            while got < n:
                got += len(part.next_batch())
            behind_s += time.perf_counter() - t1
        part.close()
        replay = JournalSource(directory, follow=False, batch_size=1000)
        rpart = replay.build_part("in", "p0000", None)
        t0 = time.perf_counter()
        got = 0
        try:
            while True:
                got += len(rpart.next_batch())
        except StopIteration:
            pass
        replay_s = time.perf_counter() - t0
        rpart.close()
        assert got == n
        # The engine's process layout (``engine.collector_process``): the collector with no
        # reader of its journal in its process (its decoder makes no objects, nothing is
        # handed over) and the dataflow's source reading its records as fields.
        own = Path(tmp) / "process"
        fields_decoder = Decoder()
        fields_decoder.objects = False
        source = JournalSource(own, partitions=[0], follow=True, batch_size=1000,
                               handover_items=0, as_fields=True,
                               metrics=IngestMetrics(CollectorRegistry()))
        part = source.build_part("in", "p0000", None)
        got = 0
        own_s = fields_s = 0.0
        with Journal(own, 0, fsync=False) as journal:
            for k in range(0, PATH_MSGS, 10):
                t0 = time.perf_counter()
                now = datetime.now(UTC)
                recs = []
                for m in msgs[k:k + 10]:
                    result = fields_decoder.decode_message("meters/north/c1/batch", m, now)
                    recs += result.records if result.records is not None \
                        else encode_all(result.accepted)
                journal.append(recs)
                t1 = time.perf_counter()
                while batch := part.next_batch():
                    got += sum(map(len, batch))
                fields_s += time.perf_counter() - t1
                own_s += t1 - t0
        part.close()
        assert got == n, f"read {got} of {n} as fields"
        out = {"collector": collector_s / n * 1e6, "live source": source_s / n * 1e6,
               "live, behind": behind_s / n * 1e6, "replay source": replay_s / n * 1e6,
               "collector, own process": own_s / n * 1e6, "source, as fields": fields_s / n * 1e6}
    return out


# -- a meter's finished day ------------------------------------------------------------------------
DAY_READINGS = 200_000


def _day_child() -> dict[str, Any]:
    """One round of the meter-day work in this process (whichever ``gridwatch`` it imports)."""
    import csv
    import gzip
    import hashlib
    import pickle

    from gridwatch.models import MeterState, _daily
    from gridwatch.models._calendar import Calendar
    from gridwatch.models._config import DetectionSettings
    from gridwatch.models._quiet import use_compiled
    from gridwatch.models._segment import Segmenter, load_profile

    use_compiled(True)
    s = DetectionSettings()
    cal = Calendar(s.timezone, s.holiday_country)
    with gzip.open(SGSC45, "rt", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        readings = [Reading(meter_id=m, ts=datetime.fromisoformat(ts), kw=float(kw))
                    for (m, ts, kw), _ in zip(rows, range(DAY_READINGS), strict=False)]
    close = _daily._close_day
    spent = [0.0, 0]

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return close(*args)
        finally:
            spent[0] += time.perf_counter() - t0
            spent[1] += 1

    _daily._close_day = timed
    states: dict[str, Any] = {}
    profiles, events = [], []
    gc.collect()
    t0 = time.perf_counter()
    for r in readings:
        st = states.get(r.meter_id)
        if st is None:
            st = states[r.meter_id] = MeterState(r.meter_id)
        res = st.step(r, None, None, s, cal)
        if res.profile is not None:
            profiles.append(res.profile)
        events.extend(res.events)
    step_s = time.perf_counter() - t0
    _daily._close_day = close
    segment_s = float("inf")
    stored: list[Any] = []
    for _ in range(3):
        seg = Segmenter("residential", s.segments_per_class, seed=s.seed)
        t0 = time.perf_counter()
        profile = getattr(seg, "profile", None)  # (what the dataflow calls; older: two calls)
        stored = [profile(p) for p in profiles] if profile is not None else \
            [load_profile(p, *seg.assign(p)) for p in profiles]
        segment_s = min(segment_s, time.perf_counter() - t0)
    digest = hashlib.sha256(pickle.dumps(
        ([repr(p) for p in profiles], [e.model_dump_json() for e in events],
         [lp.model_dump_json() for lp in stored]))).hexdigest()
    return {"close": spent[0] / spent[1] * 1e6, "segmenter": segment_s / len(profiles) * 1e6,
            "step": step_s / len(readings) * 1e6, "meter-days": len(profiles),
            "digest": digest[:16]}


def _cell_interval(k: int, meters: int, size: int) -> list[Any]:
    """Interval ``k`` of ``meters`` meters of one cell (``m000000`` on), quiet readings in
    ``ReadingBatch``es of ``size`` (the ``first`` and ``small`` rounds)."""
    from gridwatch.stream import ReadingBatch

    ts = T0 + timedelta(minutes=15 * k)
    return [ReadingBatch("cell:c1", tuple(
        Reading(meter_id=f"m{i:06d}", ts=ts, kw=1.0 + (i + k) % 7 / 3, kwh=1000.0 + i + k,
                voltage=(230.0,), pf=0.97) for i in range(j, min(j + size, meters))), "p0")
        for j in range(0, meters, size)]


def _first_child() -> dict[str, Any]:
    """One round of meters' first readings in a cell, in this process (whichever
    ``gridwatch`` it imports): 50,000 meters new to the cell, then their second readings."""
    from gridwatch.models import Calendar, DetectionSettings
    from gridwatch.models._quiet import use_compiled
    from gridwatch.stream._logic import CellLogic

    use_compiled(True)
    meters = 50_000
    s = DetectionSettings()
    logic = CellLogic(None, s, Calendar(), lambda _m: None, 900.0, 0.0)
    rounds = [_cell_interval(k, meters, 100) for k in range(3)]
    gc.collect()
    gc.freeze()
    out = {}
    for name, batches in zip(("first", "second", "resumed"), rounds, strict=True):
        if name == "resumed":  # (a restart with recovery: the cell from its snapshot)
            logic = CellLogic(logic.snapshot(), s, Calendar(), lambda _m: None, 900.0, 0.0)
            gc.collect()
        t0 = time.perf_counter()
        for b in batches:
            logic.on_batch([b])
        out[name] = (time.perf_counter() - t0) / meters * 1e6
    out["meters"] = len(logic.meters)
    return out


#: ``small``: the cell's meters, and the batch sizes of its timed intervals, in order
SMALL_METERS = 4_800
SMALL_SIZES = (("1", 1), ("2", 2), ("4", 4), ("12", 12), ("1 again", 1), ("12 after 1", 12),
               ("100", 100))


def _small_child() -> dict[str, Any]:
    """One round of ``small`` in this process (whichever ``gridwatch`` it imports)."""
    from gridwatch.models import Calendar, DetectionSettings
    from gridwatch.models._quiet import use_compiled
    from gridwatch.stream._logic import CellLogic

    use_compiled(True)
    s = DetectionSettings()
    logic = CellLogic(None, s, Calendar(), lambda _m: None, 900.0, 0.0)
    for k in range(3):
        for b in _cell_interval(k, SMALL_METERS, 400):
            logic.on_batch([b])
    gc.collect()
    gc.freeze()
    out: dict[str, Any] = {}
    for k, (name, size) in enumerate(SMALL_SIZES, start=3):
        batches = _cell_interval(k, SMALL_METERS, size)
        t0 = time.perf_counter()
        for b in batches:
            logic.on_batch([b])
        out[name] = (time.perf_counter() - t0) / SMALL_METERS * 1e6
    return out


def _feeder_child() -> dict[str, Any]:
    """One round of a feeder outage's end, in this process: a cell's silence watch of 5,000
    and of 20,000 meters, every meter silent together (a feeder outage), then a reading of
    each again; the seconds those readings take, and the outage resolved once."""
    from gridwatch.models import DetectionSettings
    from gridwatch.stream import CellWatch

    out: dict[str, Any] = {}
    base = T0.timestamp()
    for n in (5_000, 20_000):
        w = CellWatch(None, "C1", DetectionSettings())
        for m in range(n):
            w.seen(f"m{m}", base, 900, False)
        for k in range(1, 10):
            w.tick(base + k * 900)
        assert w.feeder_onset is not None
        t0 = time.perf_counter()
        events = [e for m in range(n) for e in w.seen(f"m{m}", base + 9000, 900, False)]
        out[f"{n:,} meters"] = time.perf_counter() - t0
        assert [e.state for e in events] == ["resolved"]
    return out


#: the midnight's fleet: meters, and readings a day each (every 30 minutes)
MIDNIGHT_METERS, MIDNIGHT_PER_DAY = 10_000, 48


def _midnight_batches(k: int) -> list[Any]:
    """The fleet's readings of interval ``k`` (30 minutes each from ``T0``, midnight UTC), in
    100-reading batches: each meter an evening-peak household of its own level and peak
    hour, with a little noise."""
    import math

    from gridwatch.stream import ReadingBatch

    ts = T0 + timedelta(minutes=30 * k)
    hour = (k % MIDNIGHT_PER_DAY) / 2
    batches = []
    for j in range(0, MIDNIGHT_METERS, 100):
        batch = []
        for i in range(j, j + 100):
            usual = (0.3 + i % 17 / 10) * (1 + 1.5 * math.exp(-(((hour - 17 - i % 5) / 2) ** 2)))
            noise = (i * 7919 + k * 104_729) % 1000 / 1000 - 0.5
            batch.append(Reading(meter_id=f"m{i:06d}", ts=ts, kw=round(usual * (1 + 0.2 * noise),
                                 3), interval_s=1800))
        batches.append(ReadingBatch("cell:c1", tuple(batch), "p0"))
    return batches


def _midnight_child() -> dict[str, Any]:
    """One round of a midnight, in this process (whichever ``gridwatch`` it imports): the
    fleet reads for two days through a cell (``CellLogic.on_batch``), its day-1 profiles
    through the segmenter stage (``SegmenterLogic``); timed: the last interval of day 2 (an
    ordinary one), the interval at midnight (every meter closes its day) and the segmenter
    stage on the profiles it gives."""
    import hashlib

    from gridwatch.models import Calendar, DailyProfile, DetectionSettings
    from gridwatch.models._quiet import use_compiled
    from gridwatch.stream._logic import CellLogic, SegmenterLogic

    use_compiled(True)
    s = DetectionSettings()
    logic = CellLogic(None, s, Calendar(), lambda _m: None, 900.0, 0.0, snapshots=False)
    segmenter = SegmenterLogic(None, s)
    gc.collect()
    gc.freeze()
    out: dict[str, Any] = {}
    digest = hashlib.sha256()
    for k in range(2 * MIDNIGHT_PER_DAY + 1):
        batches = _midnight_batches(k)
        t0 = time.perf_counter()
        got = []
        for b in batches:
            got.extend(logic.on_batch([b])[0])
        spent = time.perf_counter() - t0
        profiles = [p for p in got if isinstance(p, DailyProfile)]
        t0 = time.perf_counter()
        stored = [segmenter.on_item(p)[0][0] for p in profiles]
        segment_s = time.perf_counter() - t0
        for lp in stored:
            digest.update(lp.model_dump_json().encode())
        if k == 2 * MIDNIGHT_PER_DAY - 1:
            out["ordinary"] = spent / MIDNIGHT_METERS * 1e6
        elif k == 2 * MIDNIGHT_PER_DAY:
            out["midnight"] = spent / MIDNIGHT_METERS * 1e6
            out["segmenter"] = segment_s / max(len(profiles), 1) * 1e6
            out["per 100k"] = (spent + segment_s) / MIDNIGHT_METERS * 100_000
            out["profiles"] = len(profiles)
    out["digest"] = digest.hexdigest()[:16]
    return out


def against_runs(child: str, units: dict[str, str], against: str | None,
                 rounds: int = 3) -> dict[str, dict[str, Any]]:
    """``rounds`` rounds of ``--child CHILD`` in fresh processes, this checkout's then, with
    ``against``, revision ``against``'s (exported), alternating; prints each round and the
    best of each figure, with the ratio to the revision's."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gridwatch-rev-") as tmp:
        trees: dict[str, dict[str, str]] = {"this checkout": {}}
        if against:
            trees[against] = {"PYTHONPATH": str(_export(against, Path(tmp)))}
        best: dict[str, dict[str, Any]] = {label: {} for label in trees}
        for i in range(rounds):
            for label, env in trees.items():
                proc = subprocess.run([sys.executable, __file__, "--child", child],
                                      check=True, capture_output=True, text=True,
                                      env=os.environ | env)
                got = json.loads(proc.stdout)
                print(f"round {i + 1}, {label}: " + ", ".join(
                    f"{k} {got[k]:.2f}" for k in units), flush=True)
                for k, v in got.items():
                    best[label][k] = min(best[label].get(k, float("inf")), v) \
                        if k in units else v
    mine = best["this checkout"]
    print(f"best of {rounds}:")
    for k, unit in units.items():
        line = f"{k:<14} {mine[k]:8.2f} {unit}"
        if against:
            old = best[against][k]
            line += f"; at {against} {old:8.2f}; ratio {old / mine[k]:.2f}x"
        print(line)
    return best


def day(against: str | None, rounds: int = 3) -> None:
    units = {"close": "µs a close", "segmenter": "µs a meter-day", "step": "µs a reading"}
    print(f"the first {DAY_READINGS:,} readings of sgsc45:")
    best = against_runs("day", units, against, rounds)
    mine = best["this checkout"]
    print(f"({mine['meter-days']} meter-days)")
    if against:
        same = best[against]["digest"] == mine["digest"]
        print("profiles, events and load profiles: " + (
            "the same" if same else "DIFFERENT") + f" (digest {mine['digest']})")


def first(against: str | None, rounds: int = 3) -> None:
    print("50,000 meters new to a cell, 100-reading batches: their first readings, then "
          "their second:")
    against_runs("first", {"first": "µs a reading", "second": "µs a reading",
                           "resumed": "µs a reading, the third after a resume"}, against,
                 rounds)


def small(against: str | None, rounds: int = 3) -> None:
    print(f"{SMALL_METERS:,} known meters of a cell, an interval of quiet readings in batches "
          "of each size:")
    against_runs("small", {name: "µs a reading" for name, _ in SMALL_SIZES}, against, rounds)


def midnight(against: str | None, rounds: int = 3) -> None:
    print(f"{MIDNIGHT_METERS:,} meters read every 30 minutes for two days, then the interval "
          "at midnight (each closes its day):")
    best = against_runs("midnight", {
        "ordinary": "µs a reading, the interval before", "midnight": "µs a reading, midnight",
        "segmenter": "µs a meter-day, the segmenter stage",
        "per 100k": "s of one core for midnight's interval (cells and segmenter), 100,000 "
                    "meters"}, against, rounds)
    mine = best["this checkout"]
    print(f"({mine['profiles']:,} profiles at midnight)")
    if against:
        same = best[against]["digest"] == mine["digest"]
        print("load profiles: " + ("the same" if same else "DIFFERENT")
              + f" (digest {mine['digest']})")


def _export(rev: str, into: Path) -> Path:
    """The package ``gridwatch`` of revision ``rev``, importable from the returned folder."""
    root = Path(__file__).resolve().parent.parent
    tree = into / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (into / "pkg").mkdir()
    (into / "pkg" / "gridwatch").symlink_to(tree / "src")
    return into / "pkg"


def feeder(against: str | None, rounds: int = 3) -> None:
    print("a feeder outage's end: every meter of a cell's watch silent together, then each "
          "reporting again:")
    against_runs("feeder", {"5,000 meters": "s of Python, the readings back",
                            "20,000 meters": "s of Python, the readings back"}, against,
                 rounds)


def path(against: str | None, rounds: int = 3) -> None:
    against_runs("path", {step: "µs per reading" for step in PATH_STEPS}, against, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("decode", "handover", "path", "day", "first",
                                       "small", "midnight", "feeder"))
    ap.add_argument("--against", help="path, day, first, small, midnight and feeder: a git "
                    "revision to run beside this checkout")
    ap.add_argument("--rounds", type=int, default=3, help="path, day, first, small, midnight "
                    "and feeder: rounds (alternating with --against's)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "path":
        print(json.dumps(_path_child()))
        return
    if args.child == "day":
        print(json.dumps(_day_child()))
        return
    if args.child == "first":
        print(json.dumps(_first_child()))
        return
    if args.child == "small":
        print(json.dumps(_small_child()))
        return
    if args.child == "midnight":
        print(json.dumps(_midnight_child()))
        return
    if args.child == "feeder":
        print(json.dumps(_feeder_child()))
        return
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    if args.only in (None, "decode"):
        decode()
        decode_batches()
    if args.only in (None, "handover"):
        handover()
    if args.only in (None, "path"):
        path(args.against, args.rounds)
    if args.only in (None, "day"):
        day(args.against, args.rounds)
    if args.only in (None, "first"):
        first(args.against, args.rounds)
    if args.only in (None, "small"):
        small(args.against, args.rounds)
    if args.only in (None, "midnight"):
        midnight(args.against, args.rounds)
    if args.only in (None, "feeder"):
        feeder(args.against, args.rounds)


if __name__ == "__main__":
    main()
