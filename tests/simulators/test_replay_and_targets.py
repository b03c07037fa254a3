"""Recorded-data replay with a column mapping, the file targets, and the pacing of time."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridwatch.simulators import (
    ColumnMap,
    CsvTarget,
    JsonlTarget,
    Pacer,
    Replay,
    Simulation,
    nab_labels,
    parse_speed,
)
from gridwatch.simulators._targets import RateLimit, drain

NAB = Path("/work/shared/datasets/nab")
NAB = NAB if NAB.exists() else Path(__file__).resolve().parents[3] / "shared/datasets/nab"


def _nab_file(name: str) -> Path:
    hits = sorted((NAB / "data").glob(f"*/{name}"))
    assert hits, f"NAB data file {name} not found under {NAB} (the shared datasets)"
    return hits[0]


def test_replay_nab_one_meter_per_file() -> None:
    files = [_nab_file("art_daily_jumpsup.csv"),
             _nab_file("ambient_temperature_system_failure.csv")]
    rows = [sum(1 for _ in f.open()) - 1 for f in files]
    rep = Replay(files, ColumnMap.parse("timestamp=timestamp,kw=value"))
    readings = list(rep.readings())
    assert len(readings) + rep.skipped.total() == sum(rows)
    assert rep.skipped.total() == 0
    assert rep.meter_ids == {"art_daily_jumpsup", "ambient_temperature_system_failure"}
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(readings))
    with files[0].open() as fh:
        first = next(csv.DictReader(fh))
    mine = next(r for r in readings if r.meter_id == "art_daily_jumpsup")
    assert mine.kw == float(first["value"])
    assert mine.ts == datetime.fromisoformat(first["timestamp"]).replace(tzinfo=UTC)
    labels = nab_labels(NAB / "labels" / "combined_windows.json", files)
    assert labels and {lb.meter_id for lb in labels} <= rep.meter_ids
    assert all(lb.type == "abnormal_consumption" and lb.start < lb.end for lb in labels)


def test_replay_shift_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("id,time,power_w,energy\n"
                    "mA,2023-06-01 00:00:00,1500,10.0\n"
                    "mA,2023-06-01 00:15:00,not-a-number,10.4\n"
                    "mB,2023-06-01 00:15:00,2e9,1.0\n"
                    "mA,2023-06-01 00:30:00,1000,10.6\n")
    cols = ColumnMap.parse("meter_id=id,timestamp=time,kw=power_w,kwh=energy,scale=0.001,"
                           "timezone=Europe/Berlin")
    to = datetime(2024, 1, 1, tzinfo=UTC)
    rep = Replay([path], cols, shift_to=to)
    got = list(rep.readings())
    assert [(r.meter_id, r.kw, r.kwh) for r in got] == [("mA", 1.5, 10.0), ("mA", 1.0, 10.6)]
    assert got[0].ts == to and got[1].ts == to + timedelta(minutes=30)
    assert rep.skipped.total() == 2 and rep.first_problem and "export.csv:3" in rep.first_problem
    with pytest.raises(ValueError, match="colour"):
        ColumnMap.parse("colour=red")
    with pytest.raises(ValueError, match="no column"):
        list(Replay([path], ColumnMap.parse("kw=watts")).readings())


def test_csv_target_round_trips_through_replay(tmp_path: Path, make) -> None:
    sim = Simulation(make(duration="3h"))
    out = tmp_path / "fleet.csv"
    target = CsvTarget(out)
    drain(sim.chunks(), target, Pacer(None))
    target.close()
    header = out.read_text().splitlines()[0]
    assert header == "meter_id,timestamp,kw,kwh,voltage,pf"
    cols = ColumnMap.parse("meter_id=meter_id,timestamp=timestamp,kw=kw,kwh=kwh,"
                           "voltage=voltage,pf=pf")
    back = list(Replay([out], cols).readings())
    original = [d for _, rows in sim.chunks("dict") for *_, d in rows]
    assert len(back) == len(original)
    by_key = {(d["meter_id"], d["ts"]): d for d in original}
    for r in back:
        d = by_key[(r.meter_id, r.ts.isoformat().replace("+00:00", "Z"))]
        assert (r.kw, r.kwh, r.pf) == (d["kw"], d["kwh"], d["pf"])
        assert r.voltage[0] == pytest.approx(sum(d["voltage"]) / len(d["voltage"]), abs=0.06)


def test_jsonl_target_writes_the_wire_form(make) -> None:
    sim = Simulation(make(duration="1h"))
    buf = io.StringIO()
    drain(sim.chunks(), JsonlTarget(buf), Pacer(None))
    lines = buf.getvalue().splitlines()
    assert [json.loads(x) for x in lines] == [d for _, rows in sim.chunks("dict") for *_, d in rows]


@pytest.mark.parametrize("text, speed", [("realtime", 1.0), ("x60", 60.0), ("60x", 60.0),
                                         ("2.5", 2.5), ("max", None)])
def test_parse_speed(text: str, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["warp", "x0", "-3"])
def test_parse_speed_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="speed"):
        parse_speed(text)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 6))
        self.now += s


def test_pacer_holds_simulated_time_to_the_wall_clock() -> None:
    clock = FakeClock()
    pacer = Pacer(60.0, clock=clock, sleep=clock.sleep)  # an hour a minute
    t0 = datetime(2024, 3, 4, tzinfo=UTC)
    for k in range(5):
        pacer.wait(t0 + k * timedelta(minutes=15))
        clock.now += 1.0  # one second of work per interval
    assert clock.slept == [14.0, 14.0, 14.0, 14.0]
    fast = Pacer(None, clock=clock, sleep=clock.sleep)
    assert fast.wait(t0) == fast.wait(t0 + timedelta(days=9)) == 0.0


def test_rate_limit_spaces_messages() -> None:
    clock = FakeClock()
    limit = RateLimit(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(9):
        limit.take()
    assert clock.now == pytest.approx(100.0 + 8 * 0.25)


def test_shifted_replay_moves_its_labels() -> None:
    files = [_nab_file("art_daily_jumpsup.csv")]
    to = datetime(2024, 5, 1, tzinfo=UTC)
    rep = Replay(files, ColumnMap(), shift_to=to)
    first = next(iter(rep.readings()))
    assert first.ts == to
    plain = nab_labels(NAB / "labels" / "combined_windows.json", files)
    moved = nab_labels(NAB / "labels" / "combined_windows.json", files, rep.offset())
    assert [m.start - p.start for m, p in zip(moved, plain, strict=True)] == \
        [to - datetime(2014, 4, 1, tzinfo=UTC)] * len(plain)


def test_cli_replays_nab_with_labels(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridwatch.cli import app

    data = _nab_file("art_daily_flatmiddle.csv")
    out = tmp_path / "nab.jsonl"
    res = CliRunner().invoke(app, [
        "simulate", "--replay", str(data), "--columns", "timestamp=timestamp,kw=value",
        "--nab-windows", str(NAB / "labels" / "combined_windows.json"),
        "--target", "jsonl", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == sum(1 for _ in data.open()) - 1
    assert json.loads(lines[0])["meter_id"] == "art_daily_flatmiddle"
    labels = (tmp_path / "nab.labels.jsonl").read_text().splitlines()
    assert labels and json.loads(labels[0])["type"] == "abnormal_consumption"
    assert "replay summary" in res.output
