"""Faults injected into recorded data: seeded, deterministic, and labelled exactly."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridwatch._schemas import Reading
from gridwatch.cli import app
from gridwatch.ingest import iter_readings_file, replay_source
from gridwatch.simulators._inject import (
    INJECT_SHAPES,
    Mix,
    Series,
    inject,
    load_series,
    rows,
    write_series,
)

T0 = datetime(2013, 1, 7, tzinfo=UTC).timestamp()
STEP = 1800.0
AEST = timezone(timedelta(hours=10))


def household(meter: str, days: int, seed: int, holes: tuple[int, ...] = ()) -> Series:
    """Bursty half-hourly load: a daily shape times lognormal noise, some recorded gaps."""
    rng = np.random.default_rng(seed)
    n = days * 48
    k = np.arange(n)
    base = 0.3 + 0.4 * (np.sin(2 * np.pi * (k % 48) / 48 - 1.5) > 0.3)
    kw = np.round(base * rng.lognormal(0, 0.6, n), 3)
    keep = np.ones(n, dtype=bool)
    for h in holes:
        keep[h:h + 5] = False
    return Series(meter, T0 + k[keep] * STEP, kw[keep])


def fleet(seed: int = 0, meters: int = 4, days: int = 30) -> dict[str, Series]:
    return {f"m{i}": household(f"m{i}", days, seed + i, holes=(200 + 37 * i,))
            for i in range(meters)}


ALL = Mix.parse(",".join(f"{s}=2" for s in INJECT_SHAPES))


def _rows(series: dict[str, Series]) -> list[tuple[float, str, float, str]]:
    return list(rows(series))


def test_mix_parse_counts_rates_aliases_and_errors() -> None:
    m = Mix.parse("spike=10, zero=3,theft=0.5/mm,possible_theft=2")
    assert m.counts == {"spike": 10, "drop": 3, "theft": 2}
    assert m.rates == {"theft": 0.5}
    for bad in ("spike", "kettle=3", "spike=-1", "spike=x/mm", "spike=1.5"):
        with pytest.raises(ValueError, match="inject mix"):
            Mix.parse(bad)


def test_every_shape_placed_and_labelled_with_the_engine_type() -> None:
    res = inject(fleet(), ALL, seed=3, warmup=timedelta(days=2), gap=timedelta(hours=12),
                 capacity_kva={"m0": 5.0, "m1": 7.0})
    shapes = {lb.shape for lb in res.labels}
    assert shapes == set(INJECT_SHAPES), res.skipped
    for lb in res.labels:
        assert lb.type == INJECT_SHAPES[lb.shape].type
        assert lb.start < lb.end
        if INJECT_SHAPES[lb.shape].kind:
            assert lb.params["kind"] == INJECT_SHAPES[lb.shape].kind
        if lb.shape == "over_capacity":
            assert lb.meter_id in ("m0", "m1")


def test_over_capacity_needs_a_capacity() -> None:
    res = inject(fleet(), Mix.parse("over_capacity=3"), seed=1, warmup=timedelta(0))
    assert res.labels == [] and res.skipped == {"over_capacity": 3}


def test_rate_per_meter_month() -> None:
    data = fleet(meters=6, days=60)  # 12 meter-months
    res = inject(data, Mix.parse("spike=2/mm"), seed=5, warmup=timedelta(0),
                 gap=timedelta(hours=6))
    assert 23 <= len(res.labels) + sum(res.skipped.values()) <= 25


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), data_seed=st.integers(0, 1000),
       warm=st.integers(0, 5))
def test_injection_is_deterministic_and_labels_match_the_modified_rows(
        seed: int, data_seed: int, warm: int) -> None:
    data = fleet(data_seed, meters=3, days=20)
    original = {m: s.copy() for m, s in data.items()}
    kw = {"warmup": timedelta(days=warm), "gap": timedelta(hours=6),
          "capacity_kva": {"m1": 6.0}}
    a = inject(data, ALL, seed, **kw)
    b = inject(data, ALL, seed, **kw)
    assert a.labels == b.labels
    assert _rows(a.series) == _rows(b.series)
    # the input is not changed
    assert _rows(data) == _rows(original)

    before = {(m, t): (kw_, st_) for t, m, kw_, st_ in _rows(original)}
    after = {(m, t): (kw_, st_) for t, m, kw_, st_ in _rows(a.series)}
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for lb in a.labels:
        spans.setdefault(lb.meter_id, []).append(
            (lb.start.timestamp(), lb.end.timestamp(), lb.shape))
        assert lb.start.timestamp() >= original[lb.meter_id].ts[0] + warm * 86_400

    def label_of(m: str, t: float) -> str | None:
        return next((s for a0, a1, s in spans.get(m, ()) if a0 <= t < a1), None)

    # rows outside every label are as recorded; removed rows lie inside labels
    for key, value in before.items():
        shape = label_of(*key)
        if shape is None:
            assert after.get(key) == value, key
        elif key not in after:
            assert shape in ("outage", "comm_loss")
    assert set(after) <= set(before)
    # every label changed every row it covers (or removed it), and only what its shape does
    for lb in a.labels:
        covered = [(k, v) for k, v in before.items()
                   if k[0] == lb.meter_id and lb.start.timestamp() <= k[1] < lb.end.timestamp()]
        n_int = round((lb.end - lb.start).total_seconds() / STEP)
        assert len(covered) == n_int, "a fault lies on evenly spaced recorded data"
        for i, (k, (kw0, _)) in enumerate(sorted(covered)):
            got = after.get(k)
            if lb.shape == "comm_loss" or (lb.shape == "outage" and i > 0):
                assert got is None
            elif lb.shape == "outage":
                assert got == (0.0, "power_fail")
            elif lb.shape == "stuck":
                assert got is not None and got[0] == lb.params["value"] > 0
            elif lb.shape == "spike":
                assert got is not None and got[0] >= 4 * max(kw0, 0.05) - 1e-3
            elif lb.shape in ("drop", "level_shift_down", "theft", "level_shift_up"):
                assert got is not None
                assert got[0] == pytest.approx(kw0 * lb.params["factor"], abs=1e-3)
            elif lb.shape == "over_capacity":
                assert got is not None and got[0] >= kw0 - 1e-9
        if lb.shape == "over_capacity":
            last = after[sorted(covered)[-1][0]][0]
            assert last == pytest.approx(lb.params["peak_of_contracted"] * 6.0, abs=1e-3) \
                or last >= lb.params["peak_of_contracted"] * 6.0


def test_different_seeds_give_different_faults() -> None:
    a = inject(fleet(), ALL, 1, warmup=timedelta(days=2), capacity_kva={"m0": 5.0})
    b = inject(fleet(), ALL, 2, warmup=timedelta(days=2), capacity_kva={"m0": 5.0})
    assert a.labels != b.labels


def test_written_gzip_is_reproducible_and_read_back_by_the_engine(tmp_path: Path) -> None:
    res = inject(fleet(), ALL, 7, warmup=timedelta(days=2), capacity_kva={"m2": 5.0})
    p1, p2 = tmp_path / "a.csv.gz", tmp_path / "b" / "a.csv.gz"
    n = write_series(res.series, p1)
    write_series(res.series, p2)
    assert p1.read_bytes() == p2.read_bytes()
    with gzip.open(p1, "rt") as fh:
        assert fh.readline().strip() == "meter_id,timestamp,kw,status"
    items = list(iter_readings_file(p1))
    readings = [r for r in items if isinstance(r, Reading)]
    assert len(readings) == len(items) == n
    back = load_series(readings)
    assert _rows(back) == _rows(res.series)
    fails = [r for r in readings if r.status]
    assert len(fails) == sum(lb.shape == "outage" for lb in res.labels)
    # the replay source of `gridwatch replay` takes the compressed file as it is
    assert replay_source(p1).list_parts() == ["file:a.csv.gz"]
    bad = tmp_path / "a.txt.gz"
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.csv\.gz"):
        replay_source(bad)


def test_replay_reads_gzip_and_sniffs_its_columns(tmp_path: Path) -> None:
    from gridwatch.simulators import ColumnMap, Replay
    from gridwatch.simulators._replay import meter_id_from

    p = tmp_path / "site-7.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("meter_id,timestamp,kw\nA,2013-01-01T00:00:00+10:00,0.5\n"
                 "B,2013-01-01T00:00:00+10:00,1.5\n")
    cols = ColumnMap.sniff(p)
    assert (cols.meter_id, cols.kw, cols.timestamp) == ("meter_id", "kw", "timestamp")
    got = list(Replay([p], cols).readings())
    assert [(r.meter_id, r.kw) for r in got] == [("A", 0.5), ("B", 1.5)]
    assert got[0].ts == datetime(2012, 12, 31, 14, tzinfo=UTC)
    assert meter_id_from(p) == "site-7"
    nab = tmp_path / "nab.csv"
    nab.write_text("timestamp,value\n2014-01-01 00:00:00,3\n")
    assert (ColumnMap.sniff(nab).kw, ColumnMap.sniff(nab).meter_id) == ("value", None)


def test_simulate_replay_inject_then_evaluate(tmp_path: Path) -> None:
    """The command line end to end on a small gzip file: simulate --replay --inject writes
    readings and labels; evaluate scores them against the engine's events unchanged."""
    src = tmp_path / "recorded.csv.gz"
    data = fleet(meters=3, days=21)
    with gzip.open(src, "wt") as fh:
        fh.write("meter_id,timestamp,kw\n")
        for t, m, kw, _ in rows(data):
            ts = datetime.fromtimestamp(t, UTC).astimezone(AEST).isoformat()
            fh.write(f"{m},{ts},{kw}\n")
    out = tmp_path / "injected.csv.gz"
    labels = tmp_path / "truth.jsonl"
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", "--replay", str(src), "--inject",
                              "spike=3,comm_loss=1,stuck=1", "--seed", "4", "--inject-warmup",
                              "7d", "--target", "csv", "--out", str(out), "--labels",
                              str(labels)])
    assert res.exit_code == 0, res.output
    got = [json.loads(line) for line in labels.read_text().splitlines()]
    assert sorted(g["shape"] for g in got) == ["comm_loss", "spike", "spike", "spike", "stuck"]
    again = tmp_path / "again.csv.gz"
    res2 = runner.invoke(app, ["simulate", "--replay", str(src), "--inject",
                               "spike=3,comm_loss=1,stuck=1", "--seed", "4", "--inject-warmup",
                               "7d", "--target", "csv", "--out", str(again), "--labels",
                               str(tmp_path / "again.jsonl")])
    assert res2.exit_code == 0, res2.output
    assert gzip.decompress(again.read_bytes()) == gzip.decompress(out.read_bytes())
    assert (tmp_path / "again.jsonl").read_text() == labels.read_text()

    report = tmp_path / "eval.json"
    res3 = runner.invoke(app, ["evaluate", "--readings", str(out), "--labels", str(labels),
                               "--interval", "1800", "--json", str(report)])
    assert res3.exit_code == 0, res3.output
    figures = json.loads(report.read_text())["labels"]
    assert figures["all"]["labels"] == 5
    assert {"abnormal_consumption", "comm_loss", "stuck_reading"} <= set(figures)


def test_simulate_inject_over_capacity_reads_the_registry(tmp_path: Path) -> None:
    import yaml

    src = tmp_path / "recorded.csv"
    lines = ["meter_id,timestamp,kw"]
    lines += [f"{m},{datetime.fromtimestamp(t, UTC).isoformat()},{kw}"
              for t, m, kw, _ in rows(fleet(meters=2, days=10))]
    src.write_text("\n".join(lines) + "\n")
    args = ["simulate", "--replay", str(src), "--inject", "over_capacity=2",
            "--inject-warmup", "1d", "--target", "jsonl", "--out", str(tmp_path / "o.jsonl"),
            "--labels", str(tmp_path / "l.jsonl")]
    runner = CliRunner()
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "contracted capacity" in " ".join(res.output.split())
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "managers": [{"id": "MG", "name": "M", "channels": ["mqtt"]}],
        "cells": [{"id": "C1", "name": "cell", "primary": "MG"}],
        "customers": [{"id": "CU-1", "name": "one", "class": "residential",
                       "contracted_kva": 4, "grid_cell": "C1", "meters": ["m1"]}]}))
    res = runner.invoke(app, [*args, "--registry", str(reg)])
    assert res.exit_code == 0, res.output
    labels = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert [(lb["meter_id"], lb["type"], lb["contracted_kva"]) for lb in labels] == [
        ("m1", "over_capacity_risk", 4.0)] * 2
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    last = labels[0]["end"]
    peak = max(r["kw"] for r in out if r["meter_id"] == "m1"
               and labels[0]["start"] <= r["ts"] < last)
    assert peak >= 0.95 * 4.0 - 1e-6


def test_faults_of_a_new_meter_start_within_its_first_day() -> None:
    data = fleet(meters=4, days=20)
    res = inject(data, Mix.parse("spike=8"), 2, warmup=timedelta(hours=6),
                 within=timedelta(days=1), gap=timedelta(hours=2))
    assert len(res.labels) == 8
    for lb in res.labels:
        t0 = data[lb.meter_id].ts[0]
        assert t0 + 6 * 3600 <= lb.start.timestamp() <= t0 + 30 * 3600
