"""Generation: deterministic, valid readings in time order, the wire form, the labels."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridwatch import Reading
from gridwatch.cli import app
from gridwatch.simulators import Fleet, Label, Simulation, read_labels, write_labels
from gridwatch.simulators._targets import JsonlTarget, MemoryTarget, Pacer, drain

FAR_FUTURE = {"now": datetime(2100, 1, 1, tzinfo=UTC)}


def _jsonl(sim: Simulation) -> bytes:
    buf = io.StringIO()
    drain(sim.chunks(), JsonlTarget(buf), Pacer(None))
    return buf.getvalue().encode()


def test_same_seed_same_bytes_other_seed_differs(make) -> None:
    fleet = make(anomalies={"warmup": "1d", "rate_per_meter_day": 0.1})
    a, b, c = Simulation(fleet), Simulation(fleet), Simulation(fleet, seed=fleet.seed + 1)
    assert _jsonl(a) == _jsonl(b)
    assert a.labels == b.labels and a.labels
    assert _jsonl(a) != _jsonl(c)
    assert a.labels != c.labels


def test_cli_writes_the_same_bytes_twice(tmp_path: Path) -> None:
    fleet = Path(__file__).resolve().parents[2] / "config" / "fleets" / "small.yaml"
    runner = CliRunner()
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run / "readings.jsonl"
        res = runner.invoke(app, ["simulate", "--fleet", str(fleet), "--target", "jsonl",
                                  "--out", str(out), "--duration", "30h",
                                  "--registry", str(tmp_path / run / "registry.yaml")])
        assert res.exit_code == 0, res.output
        assert "anomalies" in res.output and "readings sent" in res.output
        outs.append((out.read_bytes(), (tmp_path / run / "readings.labels.jsonl").read_bytes()))
    assert outs[0] == outs[1]
    assert outs[0][0].count(b"\n") > 300 * 100
    assert outs[0][1].count(b"\n") >= 1


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("customers: {residential: {count: 5}}\ninterval_min: 20\n")
    res = CliRunner().invoke(app, ["simulate", "--fleet", str(bad), "--target", "csv",
                                   "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    assert "interval_min" in res.output
    res = CliRunner().invoke(app, ["simulate", "--fleet", str(bad), "--speed", "warp"])
    assert res.exit_code == 2 and "warp" in res.output


def test_fast_json_lines_equal_json_dumps_of_the_wire_dicts(make) -> None:
    fleet = make(anomalies={"warmup": "1d", "rate_per_meter_day": 0.3,
                            "counts": {"feeder_outage": 1, "tamper": 3, "clock_drift": 3}})
    sim = Simulation(fleet)
    n = 0
    for block in sim.blocks():
        lines = sim.lines(block)
        rows = list(sim.rows(block))
        assert [i for i, _ in lines] == [i for i, _ in rows]
        for (_, line), (_, d) in zip(lines, rows, strict=True):
            assert line == json.dumps(d, separators=(",", ":"))
            n += 1
    assert n > 0.9 * fleet.n_readings


def test_readings_validate_and_match_the_wire_form(make) -> None:
    fleet = make(anomalies={"warmup": "1d", "rate_per_meter_day": 0.2})
    sim = Simulation(fleet)
    readings, labels = fleet.generate()
    assert labels == sim.labels
    n = 0
    last_nominal = None
    for block, reading in zip(_blocks_per_reading(sim), readings, strict=True):
        strict = Reading.model_validate(reading.model_dump(), context=FAR_FUTURE)
        assert strict == reading
        assert reading.to_json_dict() == strict.to_json_dict()
        assert Reading.model_validate(reading.to_json_dict(), context=FAR_FUTURE) == reading
        assert last_nominal is None or block.ts >= last_nominal  # time order across meters
        last_nominal = block.ts
        n += 1
    assert n > 0.9 * fleet.n_readings


def _blocks_per_reading(sim: Simulation):
    for block in sim.blocks():
        for _ in range(len(block)):
            yield block


def test_generate_is_lazy_and_bounded(make) -> None:
    # A year of one-minute readings would be 31.6 million readings: the first ones arrive at once.
    fleet = make(duration="365d", interval_min=1)
    readings, _ = fleet.generate()
    first = [next(readings) for _ in range(200)]
    assert first[0].ts == fleet.start
    assert {r.interval_s for r in first} == {60}


def test_memory_target_counts_everything(make) -> None:
    fleet = make(duration="6h")
    sink = MemoryTarget()
    readings, messages = drain(Simulation(fleet).chunks(), sink, Pacer(None))
    assert readings == messages == sink.readings == fleet.n_readings


def test_labels_round_trip_as_jsonl(tmp_path: Path, make) -> None:
    fleet = make(anomalies={"warmup": "1d", "rate_per_meter_day": 0.3,
                            "counts": {"feeder_outage": 1}})
    labels = Simulation(fleet).labels
    path = tmp_path / "labels.jsonl"
    assert write_labels(labels, path) == len(labels)
    assert read_labels(path) == labels
    for line in path.read_text().splitlines():
        d = json.loads(line)
        assert {"meter_id", "type", "start", "end", "shape", "event_type"} <= d.keys()
        assert d["type"] == d["event_type"]
        if d["shape"] in ("spike", "drop", "level_shift"):
            assert d["type"] == "abnormal_consumption"
        else:
            assert d["type"] == d["shape"]
        start, end = (datetime.fromisoformat(d[k]) for k in ("start", "end"))
        assert fleet.start + timedelta(days=1) <= start < end <= fleet.end
    feeder = [lb for lb in labels if lb.shape == "feeder_outage"]
    assert len(feeder) == 1 and len(feeder[0].meters) > 1
    assert isinstance(labels[0], Label)


@pytest.mark.slow
def test_memory_stays_bounded_for_100k_meters() -> None:
    import tracemalloc

    fleet = Fleet.load(Path(__file__).resolve().parents[2] / "config" / "fleets" /
                       "utility-100k.yaml", duration="4h", interval_min=1)
    sim = Simulation(fleet)
    blocks = sim.blocks()
    next(blocks)
    tracemalloc.start()
    try:
        for _ in range(5):
            block = next(blocks)
        _, early_peak = tracemalloc.get_traced_memory()
        for _ in range(60):
            block = next(blocks)
        _, late_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(block) == 100_000
    # one interval of 100,000 meters is a few tens of MB of arrays; an hour more adds nothing
    assert early_peak < 200 * 2**20
    assert late_peak < early_peak * 1.1 + 2**20
