"""Points per second through each write API, beside a raw HTTP POST of the same line protocol.

Starts its own private servers (Debian's InfluxDB 1.6.7 for the v1 ``/write`` API,
VictoriaMetrics for influxdb-client's v2 write API) on free loopback ports, writes the same
readings through the gridwatch writer and through a bare ``http.client`` POST of the same
batches, and prints both rates and their ratio, and the CPU time each server spent on the
writer's points (from ``/proc/<pid>/stat``, until a second after the last write returned:
on a machine that runs the engine and its database side by side, that is CPU the engine does
not get). Each database or measurement prefix is fresh per
run, so no run overwrites another's points. The conversion of value objects to line protocol is
timed apart: the sink's path for a batch (``reading_lines``) and a reading at a time
(``to_lines``) beside influxdb-client's ``Point``, and readings given by their fields (as the
journal's come) through ``field_lines``' line makers beside the general way, in turns.

    .venv/bin/python benchmarks/storage.py            # about a minute
    .venv/bin/python benchmarks/storage.py --points 50000 --repeat 1

``--fleet N`` instead writes N 15-minute intervals of a utility's fleet (``--fleet-meters``,
100,000 by default: one series a meter, the engine's reading points with one or three phases,
as ``to_lines`` writes them) to two private InfluxDB 1.6.7 servers side by side, one with
InfluxDB's default cache snapshot size (25 MB) and one as gridwatch configures it
(``_services.INFLUX_CACHE_SNAPSHOT``), the order alternating by interval, and prints each
server's CPU per point over the whole run (its compactions in the background included) and
write rate, and their ratio:

    .venv/bin/python benchmarks/storage.py --fleet 12   # about 4 minutes

``--parallel N`` writes intervals of the same fleet to one InfluxDB 1.6.7 through the sink's
writer with one request at a time and with N at once (``influx.write_requests``), in turns,
the batch of each write ``--batch`` points, and prints each interval's rate and the server's
CPU a point, then the medians and their ratio:

    .venv/bin/python benchmarks/storage.py --parallel 2 --fleet-intervals 6 --batch 2000

``--lines-against DIR`` times only the line protocol of a fleet's readings given by their
fields, as the journal's come (``field_lines``, batches of ``--batch``), against the same
function of a revision exported to ``DIR`` (``git archive REV src | tar -x -C DIR``, then
``src`` renamed ``gridwatch``), in turns, ``--repeat`` rounds a side; the lines must be the
same:

    .venv/bin/python benchmarks/storage.py --lines-against /tmp/base --batch 2000 --repeat 7
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import importlib.util
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _e2e_lib import cpu_seconds

from gridwatch import _services
from gridwatch._schemas import Reading
from gridwatch.storage import (
    InfluxSettings,
    V1Writer,
    V2Writer,
    reading_lines,
    to_line_protocol,
    to_lines,
    to_points,
)
from gridwatch.storage._points import field_lines, general_lines


def readings(n: int, meters: int) -> list[Reading]:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    return [Reading(meter_id=f"m-{i % meters:05d}", ts=t0 + timedelta(minutes=15 * (i // meters)),
                    kw=1.0 + (i % 97) / 10, kwh=100.0 + i / meters, voltage=(230.0, 231.0, 229.5),
                    pf=0.97, interval_s=900)
            for i in range(n)]


def batches(lines: list[str], size: int) -> list[list[str]]:
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def raw_post(url: str, path_query: str, chunks: list[list[str]], use_gzip: bool) -> None:
    """The baseline: one kept-alive connection, the body prepared the same way, no checks
    beyond the status."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    try:
        for chunk in chunks:
            body = ("\n".join(chunk) + "\n").encode()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            if use_gzip:
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            conn.request("POST", path_query, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status // 100 != 2:
                raise RuntimeError(f"raw POST failed: HTTP {resp.status} {data[:200]!r}")
    finally:
        conn.close()


def write_all(writer: Any, chunks: list[list[str]]) -> None:
    """Each chunk written by ``writer``, in order."""
    for chunk in chunks:
        writer.write(chunk)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def timed_with_cpu(fn: Callable[[], object], pid: int, settle_s: float = 1.0
                   ) -> tuple[float, float]:
    """(wall seconds of ``fn``, CPU-seconds server ``pid`` spent from its start until
    ``settle_s`` after it returned: work a server does after answering counts too)."""
    c0 = cpu_seconds(pid)
    wall = timed(fn)
    time.sleep(settle_s)
    return wall, cpu_seconds(pid) - c0


def create_db(url: str, name: str) -> None:
    raw = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'})
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
    conn.request("POST", "/query", body=raw,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    conn.close()


def fleet_fields(meters: int, k: int, kwh_digits: int | None = None
                 ) -> list[dict[str, object]]:
    """Interval ``k`` of a fleet of ``meters``, each reading given by its fields in the order
    the simulator sends them (as the journal's come to the sink): every third meter
    three-phase, the others one phase; kW, register, power factor and interval as the utility
    fleet's readings carry (the register rounded to ``kwh_digits``, as a meter sends it, when
    given)."""
    at = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=15 * k)
    out: list[dict[str, object]] = []
    for i in range(meters):
        phases = 3 if i % 3 == 0 else 1
        kwh = 10_000.0 + i / 7 + k * 0.25
        out.append({"meter_id": f"m{i:06d}", "ts": at,
                    "kw": 0.05 + ((i * 7 + k * 13) % 997) / 100,
                    "kwh": kwh if kwh_digits is None else round(kwh, kwh_digits),
                    "voltage": tuple(228.0 + (i + k + p) % 40 / 10 for p in range(phases)),
                    "current": tuple(0.1 + (i + p) % 50 / 10 for p in range(phases)),
                    "pf": 0.85 + (i % 15) / 100, "interval_s": 900})
    return out


def fleet_interval(meters: int, k: int) -> list[str]:
    """The lines of interval ``k`` of a fleet of ``meters`` (:func:`fleet_fields`), as
    ``to_lines`` writes them."""
    return [line for d in fleet_fields(meters, k) for line in to_lines(Reading(**d))]


def lines_against(directory: Path, meters: int, batch: int, rounds: int) -> None:
    """``field_lines`` of this tree against a revision's, on two intervals of a fleet, in
    turns: the best of ``rounds`` a side, in µs a line."""
    path = directory / "gridwatch" / "storage" / "_points.py"
    spec = importlib.util.spec_from_file_location("_points_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no line protocol module at {path}")
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)
    docs = fleet_fields(meters, 0, kwh_digits=3) + fleet_fields(meters, 1, kwh_digits=3)
    chunks = [docs[i:i + batch] for i in range(0, len(docs), batch)]
    ours = [line for c in chunks for line in field_lines(c)]
    theirs = [line for c in chunks for line in before.field_lines(c)]
    if ours != theirs:
        raise SystemExit("the two revisions write different lines")
    best = {"this tree": float("inf"), str(directory): float("inf")}
    for _ in range(rounds):
        for name, fn in (("this tree", field_lines), (str(directory), before.field_lines)):
            t = time.perf_counter()
            for c in chunks:
                fn(c)
            best[name] = min(best[name], time.perf_counter() - t)
    now, base = best["this tree"], best[str(directory)]
    print(f"line protocol of {len(docs):,} readings given by their fields (a fleet of "
          f"{meters:,} meters, a third of them three-phase; batches of {batch:,}), best of "
          f"{rounds} in turns: this tree {now / len(docs) * 1e6:.2f} µs a line, {directory} "
          f"{base / len(docs) * 1e6:.2f} µs; {base / now:.2f}x; the same lines")


#: A variant of the ``--fleet`` comparison: its name, the server's cache snapshot size and
#: more lines of its ``[data]`` section, and a field its points go without (None: all).
Variant = tuple[str, str | None, tuple[str, ...], str | None]


def fleet_variants(data_conf: Sequence[str], drop_field: str | None) -> list[Variant]:
    """The two sides of ``--fleet``: InfluxDB's default cache snapshot size against
    gridwatch's; or, with ``data_conf``, gridwatch's configuration against it with those
    lines too; or, with ``drop_field``, the points as the engine writes them against the same
    points without that field (what one field of every point costs the database)."""
    ours = _services.INFLUX_CACHE_SNAPSHOT
    if data_conf:
        return [("gridwatch's configuration", ours, (), None),
                ("with " + "; ".join(data_conf), ours, tuple(data_conf), None)]
    if drop_field:
        return [("the engine's points", ours, (), None),
                (f"without {drop_field}", ours, (), drop_field)]
    return [("InfluxDB's default (25 MB)", None, (), None),
            (f"gridwatch's setting ({ours})", ours, (), None)]


def without_field(lines: list[str], name: str) -> list[str]:
    """``lines`` (of :func:`fleet_interval`: no space in a tag or a field) with field
    ``name`` left out of each."""
    out = []
    for line in lines:
        head, fields, stamp = line.split(" ")
        kept = ",".join(f for f in fields.split(",") if f.partition("=")[0] != name)
        out.append(f"{head} {kept} {stamp}")
    return out


def fleet(intervals: int, meters: int, batch: int, variants: list[Variant]) -> None:
    """Two InfluxDB servers side by side on a utility's fleet, each given the same
    intervals in turns (the order alternating by interval): CPU a point and write rate."""
    print(f"a fleet of {meters:,} meters, {intervals} intervals of 15 minutes, batches of "
          f"{batch:,}, v1 /write with gzip; {variants[0][0]} against {variants[1][0]}:")
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-") as tmp:
        servers: list[_services.Service] = []
        try:  # (a server that does not start, as with a bad --data-conf, stops those started)
            for v, (_name, size, conf, _drop) in enumerate(variants):
                servers.append(_services.influxdb(Path(tmp) / f"influxdb{v}",
                                                  cache_snapshot=size, data_conf=conf).start())
            pids = []
            for svc in servers:
                assert svc.proc is not None
                pids.append(svc.proc.pid)
                create_db(svc.url, "fleet")
            writers = [V1Writer(InfluxSettings(api="v1", url=svc.url, database="fleet",
                                               gzip=True)) for svc in servers]
            cpu0 = [cpu_seconds(pid) for pid in pids]
            wall = [0.0, 0.0]
            for k in range(intervals):
                lines = fleet_interval(meters, k)
                chunks = [batches(without_field(lines, drop) if drop else lines, batch)
                          for _name, _size, _conf, drop in variants]
                rates = []
                for v in ((0, 1) if k % 2 == 0 else (1, 0)):
                    took = timed(partial(write_all, writers[v], chunks[v]))
                    wall[v] += took
                    rates.append((v, meters / took))
                print(f"  interval {k + 1}/{intervals}: " + ", ".join(
                    f"{variants[v][0]} {r:,.0f} points/s" for v, r in sorted(rates)), flush=True)
            time.sleep(2.0)  # the compactions the last interval set off
            cpu = [cpu_seconds(pid) - c for pid, c in zip(pids, cpu0, strict=True)]
            for w in writers:
                w.close()
            # each snapshot of the cache to a TSM file is logged at its start
            snapshots = [svc.log_path.read_text(errors="replace").count(
                "Cache snapshot (start)") for svc in servers]
        finally:
            for svc in servers:
                svc.stop()
    points = meters * intervals
    for (name, *_rest), c, w, n in zip(variants, cpu, wall, snapshots, strict=True):
        print(f"{name}: {c / points * 1e6:.1f} µs of server CPU a point, "
              f"{points / w:,.0f} points/s written, {n} cache snapshots")
    print(f"server CPU a point, {variants[0][0]} / {variants[1][0]}: {cpu[0] / cpu[1]:.2f}x; "
          f"write rate, the second / the first: {wall[0] / wall[1]:.2f}x")


def parallel(requests: int, intervals: int, meters: int, batch: int) -> None:
    """One request at a time against ``requests`` at once, interval by interval in turns."""
    from gridwatch.storage import ParallelWriter

    print(f"a fleet of {meters:,} meters, {intervals} intervals, writes of {batch:,} points "
          f"to InfluxDB 1.6.7 (v1, gzip): 1 request at a time against {requests} at once")
    rates: dict[int, list[float]] = {1: [], requests: []}
    cpus: dict[int, list[float]] = {1: [], requests: []}
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-") as tmp:
        svc = _services.influxdb(Path(tmp) / "influxdb",
                                 cache_snapshot=_services.INFLUX_CACHE_SNAPSHOT).start()
        try:
            assert svc.proc is not None
            create_db(svc.url, "fleet")
            base = InfluxSettings(api="v1", url=svc.url, database="fleet", gzip=True)
            writers = {n: ParallelWriter.of(base.model_copy(update={"write_requests": n}),
                                            V1Writer) for n in rates}
            for k in range(intervals):
                chunks = batches(fleet_interval(meters, k), batch)
                n = (1, requests)[k % 2]
                wall, cpu = timed_with_cpu(
                    partial(write_all, writers[n], chunks), svc.proc.pid)
                rates[n].append(meters / wall)
                cpus[n].append(cpu / meters * 1e6)
                print(f"  interval {k + 1}/{intervals}, {n} at once: {meters / wall:,.0f} "
                      f"points/s, {cpu / meters * 1e6:.1f} µs of server CPU a point", flush=True)
            for w in writers.values():
                w.close()
        finally:
            svc.stop()
    one, many = statistics.median(rates[1]), statistics.median(rates[requests])
    print(f"median: 1 at a time {one:,.0f} points/s ({statistics.median(cpus[1]):.1f} µs a "
          f"point), {requests} at once {many:,.0f} points/s "
          f"({statistics.median(cpus[requests]):.1f} µs a point): {many / one:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    ap.add_argument("--fleet", type=int, default=0, metavar="INTERVALS",
                    help="compare InfluxDB's cache snapshot sizes on a fleet instead")
    ap.add_argument("--fleet-meters", type=int, default=100_000)
    ap.add_argument("--data-conf", action="append", default=[], metavar="LINE",
                    help="--fleet: gridwatch's InfluxDB configuration against it with this "
                         "line in [data] too (repeatable), e.g. 'wal-fsync-delay = \"100ms\"'")
    ap.add_argument("--drop-field", default=None, metavar="NAME",
                    help="--fleet: the engine's points against the same without field NAME")
    ap.add_argument("--parallel", type=int, default=0, metavar="N",
                    help="one write request at a time against N at once, on a fleet")
    ap.add_argument("--fleet-intervals", type=int, default=6,
                    help="intervals written with --parallel (alternating)")
    ap.add_argument("--lines-against", type=Path, default=None, metavar="DIR",
                    help="only the line protocol of a fleet's given fields, against a "
                         "revision exported to DIR, in turns")
    args = ap.parse_args()
    if args.lines_against is not None:
        lines_against(args.lines_against, args.fleet_meters, args.batch, args.repeat)
        return
    if args.parallel:
        parallel(args.parallel, args.fleet_intervals, args.fleet_meters, args.batch)
        return
    if args.fleet:
        fleet(args.fleet, args.fleet_meters, args.batch,
              fleet_variants(args.data_conf, args.drop_field))
        return

    objs = readings(args.points, args.meters)
    t = time.perf_counter()
    via_points = to_line_protocol(p for r in objs for p in to_points(r))
    points_s = time.perf_counter() - t
    t = time.perf_counter()
    each = [line for r in objs for line in to_lines(r)]
    each_s = time.perf_counter() - t
    t = time.perf_counter()
    lines = reading_lines(objs)
    lines_s = time.perf_counter() - t
    assert lines == via_points == each
    # the readings as the journal's come to the sink: their given fields only, no objects
    given = [{k: getattr(r, k) for k in ("meter_id", "ts", "kw", "kwh", "voltage", "pf",
                                         "interval_s")} for r in objs]
    fields_s = general_s = float("inf")
    made: list[str] = []
    general: list[str] = []
    for _ in range(max(1, args.repeat)):  # (in turns: the line makers, the general way)
        t = time.perf_counter()
        made = field_lines(given)
        fields_s = min(fields_s, time.perf_counter() - t)
        t = time.perf_counter()
        general = general_lines(given)
        general_s = min(general_s, time.perf_counter() - t)
    assert made == general == lines
    print(f"{args.points} readings of {args.meters} meters, batches of {args.batch}, "
          f"best of {args.repeat}")
    print(f"conversion: reading_lines (the sink's path for a batch of reading objects) "
          f"{args.points / lines_s:,.0f} points/s, to_lines a reading at a time "
          f"{args.points / each_s:,.0f}, influxdb_client.Point (to_points + "
          f"to_line_protocol) {args.points / points_s:,.0f} points/s; ratio to Point "
          f"{points_s / lines_s:.1f}")
    print(f"conversion of given fields (the journal's readings): field_lines' line makers "
          f"{fields_s / args.points * 1e6:.2f} µs a reading, the general way "
          f"{general_s / args.points * 1e6:.2f} µs: {general_s / fields_s:.2f}x")
    chunks = batches(lines, args.batch)

    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-") as tmp:
        influx = _services.influxdb(Path(tmp) / "influxdb").start()
        vm = _services.victoria_metrics(Path(tmp) / "vm").start()
        try:
            rows = []
            assert influx.proc is not None and vm.proc is not None
            for use_gzip in (True, False):
                best_w = best_r = cpu_w = float("inf")
                for run in range(args.repeat):
                    db_w, db_r = f"w{run}{int(use_gzip)}", f"r{run}{int(use_gzip)}"
                    create_db(influx.url, db_w)
                    create_db(influx.url, db_r)
                    writer = V1Writer(InfluxSettings(api="v1", url=influx.url, database=db_w,
                                                     gzip=use_gzip))
                    wall, cpu = timed_with_cpu(partial(write_all, writer, chunks),
                                               influx.proc.pid)
                    best_w, cpu_w = min(best_w, wall), min(cpu_w, cpu)
                    writer.close()
                    q = f"/write?db={db_r}&precision=ns"
                    best_r = min(best_r, timed(
                        partial(raw_post, influx.url, q, chunks, use_gzip)))
                rows.append((f"v1 /write, InfluxDB 1.6.7, gzip {'on' if use_gzip else 'off'}",
                             best_w, best_r, cpu_w))
            for use_gzip in (True, False):
                best_w = best_r = cpu_w = float("inf")
                for run in range(args.repeat):
                    writer2 = V2Writer(InfluxSettings(api="v2", url=vm.url, org="bench",
                                                      bucket=f"b{run}", gzip=use_gzip))
                    wall, cpu = timed_with_cpu(partial(write_all, writer2, chunks),
                                               vm.proc.pid)
                    best_w, cpu_w = min(best_w, wall), min(cpu_w, cpu)
                    writer2.close()
                    q = f"/api/v2/write?org=bench&bucket=r{run}&precision=ns"
                    best_r = min(best_r, timed(
                        partial(raw_post, vm.url, q, chunks, use_gzip)))
                rows.append((f"v2 influxdb-client, VictoriaMetrics, gzip "
                             f"{'on' if use_gzip else 'off'}", best_w, best_r, cpu_w))
        finally:
            influx.stop()
            vm.stop()

    width = max(len(r[0]) for r in rows)
    print(f"{'API':<{width}}  {'writer pts/s':>13}  {'raw POST pts/s':>14}  {'ratio':>6}  "
          f"{'server CPU µs/pt':>16}")
    for name, w, r, cpu in rows:
        print(f"{name:<{width}}  {args.points / w:>13,.0f}  {args.points / r:>14,.0f}  "
              f"{r / w:>6.2f}  {cpu / args.points * 1e6:>16.1f}")
    print("ratio = writer rate / raw POST rate of the same batches (1.00 = no overhead)")
    print("server CPU = CPU time the server spent on the writer's points (least of the runs), "
          "a second's settling included")
    v1 = min(cpu for name, *_, cpu in rows if name.startswith("v1"))
    v2 = min(cpu for name, *_, cpu in rows if name.startswith("v2"))
    if v1 > 0 and v2 > 0:
        print(f"server CPU per point, VictoriaMetrics / InfluxDB 1.6.7 (least of each): "
              f"{v2 / v1:.2f}")


if __name__ == "__main__":
    main()
