"""Points per second through each write API, beside a raw HTTP POST of the same line protocol.

Starts its own private servers (Debian's InfluxDB 1.6.7 for the v1 ``/write`` API,
VictoriaMetrics for influxdb-client's v2 write API) on free loopback ports, writes the same
readings through the gridwatch writer and through a bare ``http.client`` POST of the same
batches, and prints both rates and their ratio, and the CPU time each server spent on the
writer's points (from ``/proc/<pid>/stat``, until a second after the last write returned:
on a machine that runs the engine and its database side by side, that is CPU the engine does
not get). Each database or measurement prefix is fresh per
run, so no run overwrites another's points. The conversion of value objects to line protocol is
timed apart, the sink's direct path beside influxdb-client's ``Point``.

    .venv/bin/python benchmarks/storage.py            # about a minute
    .venv/bin/python benchmarks/storage.py --points 50000 --repeat 1
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _e2e_lib import cpu_seconds

from gridwatch import _services
from gridwatch._schemas import Reading
from gridwatch.storage import (
    InfluxSettings,
    V1Writer,
    V2Writer,
    to_line_protocol,
    to_lines,
    to_points,
)


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
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
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


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def timed_with_cpu(fn: Callable[[], None], pid: int, settle_s: float = 1.0
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
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request("POST", "/query", body=raw,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    args = ap.parse_args()

    objs = readings(args.points, args.meters)
    t = time.perf_counter()
    via_points = to_line_protocol(p for r in objs for p in to_points(r))
    points_s = time.perf_counter() - t
    t = time.perf_counter()
    lines = [line for r in objs for line in to_lines(r)]
    lines_s = time.perf_counter() - t
    assert lines == via_points
    print(f"{args.points} readings of {args.meters} meters, batches of {args.batch}, "
          f"best of {args.repeat}")
    print(f"conversion: to_lines (the sink's path) {args.points / lines_s:,.0f} points/s, "
          f"influxdb_client.Point (to_points + to_line_protocol) "
          f"{args.points / points_s:,.0f} points/s, ratio {points_s / lines_s:.1f}")
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
                    wall, cpu = timed_with_cpu(lambda w=writer: [w.write(c) for c in chunks],
                                               influx.proc.pid)
                    best_w, cpu_w = min(best_w, wall), min(cpu_w, cpu)
                    writer.close()
                    q = f"/write?db={db_r}&precision=ns"
                    best_r = min(best_r, timed(
                        lambda q=q, g=use_gzip: raw_post(influx.url, q, chunks, g)))
                rows.append((f"v1 /write, InfluxDB 1.6.7, gzip {'on' if use_gzip else 'off'}",
                             best_w, best_r, cpu_w))
            for use_gzip in (True, False):
                best_w = best_r = cpu_w = float("inf")
                for run in range(args.repeat):
                    writer2 = V2Writer(InfluxSettings(api="v2", url=vm.url, org="bench",
                                                      bucket=f"b{run}", gzip=use_gzip))
                    wall, cpu = timed_with_cpu(lambda w=writer2: [w.write(c) for c in chunks],
                                               vm.proc.pid)
                    best_w, cpu_w = min(best_w, wall), min(cpu_w, cpu)
                    writer2.close()
                    q = f"/api/v2/write?org=bench&bucket=r{run}&precision=ns"
                    best_r = min(best_r, timed(
                        lambda q=q, g=use_gzip: raw_post(vm.url, q, chunks, g)))
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
