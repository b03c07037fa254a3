"""The readings-file source alone: rows of a CSV file read into readings (``iter_readings_file``:
parse, validate, duplicate check), with the common row read without pydantic, against the same
rows all validated by the schema (the path before), in the same run; and as the dataflow reads
them (``FileSource(as_fields=True)``: each batch of common rows as its readings' given fields,
no reading objects); beside a plain ``csv.reader`` pass over the file. Best of ``--rounds``,
wall and CPU::

    .venv/bin/python benchmarks/filesource.py                 # the first 300,000 rows of sgsc45
    .venv/bin/python benchmarks/filesource.py --rows 0        # the whole set (1.13 M rows)
    .venv/bin/python benchmarks/filesource.py --file r.csv    # any readings CSV

All paths must give equal readings (checked on every row before timing).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from _data import SGSC45


def _best(fn: Callable[[], int], rounds: int) -> tuple[float, float, int]:
    best_wall = best_cpu = float("inf")
    n = 0
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, n


def main() -> None:
    from gridwatch import Reading
    from gridwatch.ingest import FileSource, _source, iter_readings_file
    from gridwatch.ingest._assemble import ReadingFields

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", type=Path, default=None)
    ap.add_argument("--rows", type=int, default=300_000, help="of sgsc45; 0 = all")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "readings.csv"
            with gzip.open(SGSC45, "rt") as src, open(path, "w") as dst:
                for i, line in enumerate(src):
                    if args.rows and i > args.rows:
                        break
                    dst.write(line)

        def plain() -> int:
            with open(path, newline="") as fh:
                return sum(1 for _ in csv.reader(fh)) - 1

        def source() -> int:
            return sum(1 for x in iter_readings_file(path) if isinstance(x, Reading))

        def validated() -> int:
            with mock.patch.object(_source.FastRows, "of", staticmethod(lambda _h: None)):
                return source()

        def batches() -> list[list[Any]]:
            src = FileSource(path, as_fields=True, deadletter_dir=Path(tmp) / "dead")
            part = src.build_part("in", src.list_parts()[0], None)
            out = []
            try:
                while True:
                    out.append(part.next_batch())
            except StopIteration:
                return out
            finally:
                part.close()

        def as_fields() -> int:
            return sum(len(x) if type(x) is ReadingFields else isinstance(x, Reading)
                       for batch in batches() for x in batch)

        fast_items = list(iter_readings_file(path))
        made = [r for batch in batches() for x in batch
                for r in (x.readings() if type(x) is ReadingFields else [x])]
        assert made == [x for x in fast_items if isinstance(x, Reading)], \
            "the fields' readings differ from the source's"
        with mock.patch.object(_source.FastRows, "of", staticmethod(lambda _h: None)):
            slow_items = list(iter_readings_file(path))
        assert fast_items == slow_items, "the fast rows differ from the validated ones"
        assert all(a.model_fields_set == b.model_fields_set for a, b in
                   zip(fast_items, slow_items, strict=True) if isinstance(a, Reading))
        p_wall, p_cpu, rows = _best(plain, args.rounds)
        v_wall, v_cpu, n = _best(validated, args.rounds)
        f_wall, f_cpu, n2 = _best(source, args.rounds)
        g_wall, g_cpu, n3 = _best(as_fields, args.rounds)
        assert n == n2 == n3
    print(f"{path.name}: {rows:,} rows, {n:,} readings")
    print(f"  plain csv.reader pass:        {rows / p_wall:>11,.0f} rows/s "
          f"({rows / p_cpu:,.0f} per CPU-second)")
    print(f"  source, every row validated:  {n / v_wall:>11,.0f} readings/s "
          f"({n / v_cpu:,.0f} per CPU-second)")
    print(f"  source, common rows fast:     {n / f_wall:>11,.0f} readings/s "
          f"({n / f_cpu:,.0f} per CPU-second)")
    print(f"  source, as given fields:      {n / g_wall:>11,.0f} readings/s "
          f"({n / g_cpu:,.0f} per CPU-second)")
    print(f"  fast / validated: {v_wall / f_wall:.2f}x wall, {v_cpu / f_cpu:.2f}x CPU; "
          f"ratio to the plain csv pass (CPU) {p_cpu / f_cpu:.3f} (before {p_cpu / v_cpu:.3f})")
    print(f"  given fields / fast: {f_wall / g_wall:.2f}x wall, {f_cpu / g_cpu:.2f}x CPU; "
          f"ratio to the plain csv pass (CPU) {p_cpu / g_cpu:.3f}")


if __name__ == "__main__":
    main()
