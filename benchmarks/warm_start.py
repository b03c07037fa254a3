"""The warm start of a dataflow without recovery state, each figure beside its baseline in the
same run, on a private InfluxDB 1.6.7 holding ``--days`` days of a simulated fleet, with
Python's cycle collector as ``gridwatch run`` sets it (``engine.gc_threshold``).

* **The reader.** The stored readings of one group of meters (``--group``, 200 as the warm
  start asks for them) through ``InfluxReader.recent_readings``' query and rows
  (``InfluxReader.rows``: the response split into lines and parsed) against the same query's
  response fetched whole and parsed in one call (the least a client can do with it), in
  turns; and the same response split by requests' ``iter_lines``, as the reader did before,
  beside the reader's ``lines_of``. Then the rows made each reading's fields by the
  reader's plain checks (``InfluxReader.recent_fields``, what the warm start steps) beside
  the rows validated as ``Reading`` one by one (as the reader did before), and the readings
  made of the fields (``recent_readings``).
* **A cell's warm start.** Each cell's first batch (its meters' readings of the next
  interval) through ``CellLogic`` with the engine's warm start (``_engine.influx_warm_start``
  with the registry's cells: every meter of the cell asked for at once) against the same
  batch on a cold cell: the seconds a meter's week costs at start-up, the queries made, and
  that a warm cell's meters hold what their stored week stepped live gives (the same state,
  byte for byte), and from them the time a fleet of ``--fleet`` meters would take. The
  same cells asked batch by batch (``--cell-batch`` readings a batch, the warm start before
  the registry's cells were used) give the queries that made, in the same turns, and the
  cells' meters at once with each stored reading validated as a ``Reading`` (as before the
  plain checks) what the validation cost.

    .venv/bin/python benchmarks/warm_start.py            # about a minute
    .venv/bin/python benchmarks/warm_start.py --days 8 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gridwatch import Settings, _services  # noqa: E402
from gridwatch._engine import influx_warm_start  # noqa: E402
from gridwatch._gc import tuned_gc  # noqa: E402
from gridwatch._schemas import MeterMeta, Reading  # noqa: E402
from gridwatch.models import Calendar, DetectionSettings, MeterState  # noqa: E402
from gridwatch.simulators import Fleet  # noqa: E402
from gridwatch.storage import InfluxReader, build_writer  # noqa: E402
from gridwatch.storage._points import reading_lines  # noqa: E402
from gridwatch.storage._reader import READ_BYTES, _reading, lines_of  # noqa: E402
from gridwatch.stream import CellLogic, ReadingBatch  # noqa: E402

DB = "warm"


def _post(url: str, q: str) -> None:
    urllib.request.urlopen(url + "/query", urllib.parse.urlencode({"q": q}).encode(),
                           timeout=60).read()


def _rows(doc_lines: Sequence[bytes]) -> int:
    n = 0
    for line in doc_lines:
        if not line.strip():
            continue
        for result in msgspec.json.decode(line).get("results", []):
            for series in result.get("series", []):
                n += len(series.get("values", []))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=8, help="days of the fleet stored (default 8)")
    ap.add_argument("--group", type=int, default=200, help="meters a query (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="best of (default 3)")
    ap.add_argument("--cell-batch", type=int, default=4,
                    help="readings of a cell's batch (default 4: a 1,000-reading source "
                    "batch of a 100,000-meter fleet in 230 cells)")
    ap.add_argument("--fleet", type=int, default=100_000,
                    help="meters of the fleet the per-meter cost is projected to")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gridwatch-warm-"))
    svc = _services.influxdb(work / "influxdb").start()
    try:
        _post(svc.url, f'CREATE DATABASE "{DB}"')
        settings = Settings(influx={"api": "v1", "url": svc.url, "database": DB})
        fleet = Fleet.load(ROOT / "config/fleets/small.yaml", duration=f"{args.days}d")
        meta = {m.meter_id: m.meta() for m in fleet.meters(fleet.seed)}
        readings = sorted(fleet.generate()[0], key=lambda r: (r.ts, r.meter_id))
        start = readings[-1].ts - timedelta(days=1)  # the restart: the last day is live
        stored = [r for r in readings if r.ts < start]
        live = [r for r in readings if r.ts >= start]
        writer = build_writer(settings.influx)
        lines = reading_lines(stored)
        began = time.perf_counter()
        for i in range(0, len(lines), 5000):
            writer.write(lines[i:i + 5000])
        print(f"stored {len(stored):,} readings of {len(meta)} meters ({args.days - 1} days) "
              f"in {time.perf_counter() - began:.1f} s; the restart at {start:%Y-%m-%d %H:%M}")
        week = timedelta(days=7)
        # the cycle collector as ``gridwatch run`` sets it (``engine.gc_threshold``)
        with tuned_gc(settings.engine.gc_threshold):
            _reader(settings, sorted(meta)[:args.group], start - week, start, args.rounds)
            _cells(settings, meta, live, start, args)
    finally:
        svc.stop()


def _reader(settings: Settings, ids: list[str], since: Any, until: Any, rounds: int) -> None:
    reader = InfluxReader(settings.influx)
    q = reader._select("reading", ["(" + " OR ".join(f"meter_id = '{m}'" for m in ids) + ")"],
                       since, until)
    params = {"db": DB, "q": q, "epoch": "ns", "chunked": "true", "chunk_size": "10000"}
    url = settings.influx.url + "/query"

    def whole() -> int:
        return _rows(requests.get(url, params=params, timeout=60).content.split(b"\n"))

    def rows() -> int:
        return sum(1 for _ in reader.rows(q))

    def old_split() -> int:
        with requests.get(url, params=params, timeout=60, stream=True) as resp:
            return _rows(list(resp.iter_lines()))

    def new_split() -> int:
        with requests.get(url, params=params, timeout=60, stream=True) as resp:
            return _rows(list(lines_of(resp.iter_content(chunk_size=READ_BYTES))))

    def fields() -> int:
        return sum(1 for _ in reader.recent_fields(since, ids, until=until))

    def validated() -> int:
        return sum(1 for row in reader.rows(q) if _reading(row) is not None)

    def made() -> int:
        return sum(1 for _ in reader.recent_readings(since, ids, until=until))

    times: dict[str, list[float]] = {k: [] for k in ("whole", "rows", "old", "new", "fields",
                                                     "validated", "made")}
    n = 0
    for _ in range(rounds):  # in turns
        for key, fn in (("whole", whole), ("rows", rows), ("old", old_split),
                        ("new", new_split), ("fields", fields), ("validated", validated),
                        ("made", made)):
            began = time.perf_counter()
            got = fn()
            times[key].append(time.perf_counter() - began)
            assert n in (0, got), (key, got, n)
            n = got
    best = {k: min(v) for k, v in times.items()}
    us = {k: v / n * 1e6 for k, v in best.items()}
    print(f"\nthe reader: {len(ids)} meters' week, {n:,} rows, best of {rounds}, µs a row")
    print(f"  the response fetched whole, parsed in one call  {us['whole']:6.2f}")
    print(f"  InfluxReader.rows (lines_of, msgspec, dicts)     {us['rows']:6.2f}   "
          f"{best['whole'] / best['rows']:.2f} of the baseline's rate")
    print(f"  split by requests' iter_lines (before)          {us['old']:6.2f}")
    print(f"  split by lines_of                               {us['new']:6.2f}   "
          f"{best['old'] / best['new']:.1f}x as fast")
    print(f"  rows validated as Reading one by one (before)   {us['validated']:6.2f}")
    print(f"  recent_fields: rows made fields (plain checks)  {us['fields']:6.2f}   "
          f"{best['validated'] / best['fields']:.2f}x as fast")
    print(f"  recent_readings: the fields made readings       {us['made']:6.2f}")


def _cells(settings: Settings, meta: dict[str, MeterMeta], live: list[Reading], start: Any,
           args: argparse.Namespace) -> None:
    by_cell: dict[str, list[str]] = {}
    for m, entry in meta.items():
        by_cell.setdefault(entry.grid_cell or "", []).append(m)
    first = [r for r in live if r.ts == start]
    det = DetectionSettings()
    cal = Calendar(det.timezone, det.holiday_country)
    days = 7.0
    k = args.cell_batch

    def run(warm: Any) -> tuple[float, dict[str, CellLogic]]:
        began = time.perf_counter()
        cells = {}
        for name in sorted(by_cell):
            logic = cells[name] = CellLogic(None, det, cal, meta.get, 900.0, 0.0, warm=warm)
            mine = [r for r in first if meta[r.meter_id].grid_cell == name]
            for i in range(0, len(mine), k):
                logic.on_batch([ReadingBatch(f"cell:{name}", tuple(mine[i:i + k]))])
        return time.perf_counter() - began, cells

    def at_once() -> Any:
        return influx_warm_start(settings, days, lambda c: by_cell.get(c, ()), meta.get)

    def by_batch() -> Any:
        return influx_warm_start(settings, days)

    def validated() -> Any:  # (each stored reading validated as a Reading, as before)
        fields = at_once()

        def warm(meter_ids: list[str], until: float) -> Any:
            for f in fields(meter_ids, until):
                r = Reading.model_validate(f)
                yield {k: r.__dict__[k] for k in r.model_fields_set}

        warm.stats = fields.stats  # type: ignore[attr-defined]
        return warm

    took: dict[str, list[float]] = {"cold": [], "cell": [], "batch": [], "validated": []}
    stats: dict[str, Any] = {}
    warm_cells: dict[str, CellLogic] = {}
    for _ in range(args.rounds):  # in turns
        took["cold"].append(run(None)[0])
        for key, make in (("cell", at_once), ("validated", validated), ("batch", by_batch)):
            warm = make()
            t, cells = run(warm)
            took[key].append(t)
            stats[key] = warm.stats
            if key == "cell":
                warm_cells = cells
    # the warm meters hold what their stored week stepped live gives, then the batch
    stored_week = sorted(_stored(settings, meta, start, days), key=lambda r: (r.meter_id, r.ts))
    live_states: dict[str, MeterState] = {}
    for r in stored_week + first:
        state = live_states.setdefault(r.meter_id, MeterState(r.meter_id))
        state.step(r, meta.get(r.meter_id), None, det, cal)
    same = sum(warm_cells[meta[m].grid_cell or ""].meters[m].to_bytes() == s.to_bytes()
               for m, s in live_states.items())
    med = {key: statistics.median(v) for key, v in took.items()}
    readings = stats["cell"]["readings"]
    extra = med["cell"] - med["cold"]
    per_meter = extra / len(meta)
    print(f"\na cell's warm start: {len(by_cell)} cells, {len(meta)} meters, their first "
          f"interval after the restart in batches of {k} a cell, median of {args.rounds} in "
          f"turns")
    print(f"  cold cells                                {med['cold']:7.2f} s")
    for key, label in (("cell", "warm, a cell's meters at once"),
                       ("validated", "the same, each reading validated (before)"),
                       ("batch", "warm, each batch's new meters (before)")):
        st = stats[key]
        print(f"  {label:40s}  {med[key]:7.2f} s   {st['queries']:,} queries, "
              f"{st['meters']:,} meters, {st['readings']:,} stored readings")
    print(f"  a meter's week, a cell's meters at once   {per_meter * 1000:7.1f} ms   "
          f"({extra / max(readings, 1) * 1e6:.1f} µs a stored reading)")
    before = (med["validated"] - med["cold"]) / len(meta)
    print(f"  the same, each reading validated (before) {before * 1000:7.1f} ms   "
          f"({per_meter / before:.2f} of its time)")
    print(f"  the same state as the stored week stepped live: {same} of {len(live_states)} "
          f"meters")
    print(f"  {args.fleet:,} meters' week at this rate: about "
          f"{per_meter * args.fleet / 60:.0f} minutes of one core")


def _stored(settings: Settings, meta: dict[str, MeterMeta], start: Any,
            days: float) -> list[Reading]:
    with InfluxReader(settings.influx) as reader:
        return list(reader.recent_readings(start - timedelta(days=days), sorted(meta),
                                           until=start))


if __name__ == "__main__":
    main()
