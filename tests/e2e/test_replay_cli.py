"""`gridwatch replay FILE --no-influx --alerts-out F` runs the dataflow over a CSV with no broker
and no database, writes one JSON line per event and keeps rejected rows as dead letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from gridwatch.ingest import read_deadletters

T0 = datetime(2024, 4, 8, tzinfo=UTC)


def test_replay_csv_without_broker_or_database(tmp_path: Path) -> None:
    rows = ["meter_id,timestamp,kw,kwh,voltage,pf"]
    kwh = {"R-1": 100.0, "R-2": 200.0}
    for i in range(96):
        ts = (T0 + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z")
        for m in kwh:
            kw = 0.5 + 0.05 * ((i * 7 + len(m)) % 5)
            kwh[m] += kw / 4
            sag = m == "R-2" and 60 <= i < 72  # three hours at 180 V on a 220 V supply
            rows.append(f"{m},{ts},{kw:.3f},{kwh[m]:.3f},{180.0 if sag else 221.0},0.97")
    rows.insert(40, "R-1,not-a-time,1.0,,,")  # a bad row: kept, not fatal
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({
        "managers": [{"id": "MG", "name": "M", "channels": ["mqtt"]}],
        "cells": [{"id": "C1", "name": "cell", "primary": "MG"}],
        "customers": [{"id": f"CU-{m}", "name": m, "class": "residential",
                       "contracted_kva": 8, "grid_cell": "C1", "meters": [m]} for m in kwh],
    }))
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump({
        "ingest": {"deadletter_dir": str(tmp_path / "dead")},
        "influx": {"url": "http://127.0.0.1:9"},  # nothing listens: must not be contacted
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", "replay", str(tmp_path / "r.csv"), "--no-influx",
         "--alerts-out", str(tmp_path / "alerts.jsonl"),
         "--registry", str(tmp_path / "registry.yaml")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=os.environ | {"GRIDWATCH_CONFIG": str(tmp_path / "gw.yaml")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "readings processed: 192" in proc.stdout
    assert "rejected: 1" in proc.stdout
    n_fire = sum(e["state"] == "firing" for e in (
        json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()))
    n_res = sum(1 for x in (tmp_path / "alerts.jsonl").read_text().splitlines()) - n_fire
    assert f"alarms raised (firing): {n_fire}  resolutions: {n_res}" in proc.stdout
    events = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    firing = [e for e in events if e["state"] == "firing"]
    assert [(e["meter_id"], e["type"]) for e in firing] == [("R-2", "voltage_sag")]
    sag = firing[0]
    for key in ("meter_id", "type", "severity", "onset", "raised_at", "score"):
        assert key in sag
    assert sag["onset"].startswith("2024-04-08T15:00")
    dead = list(read_deadletters(tmp_path / "dead" / "replay"))
    assert len(dead) == 1 and dead[0].reason == "schema"


def test_replay_of_a_two_partition_journal_keeps_each_meters_readings_in_order(
        tmp_path: Path) -> None:
    """A cluster's journal: two collectors on one shared subscription each got every other
    interval of the same meters. Replayed, the cells step them in event-time order (no clock
    going backwards, no false silence) and raise what the one-partition journal raises."""
    from gridwatch import Reading, Settings
    from gridwatch._engine import replay
    from gridwatch._replay_cluster import replay_cluster
    from gridwatch.ingest import Journal
    from gridwatch.ingest._journal import encode_item

    readings = []
    for i in range(96):
        for m in ("R-1", "R-2", "R-3"):
            sag = m == "R-2" and 60 <= i < 72
            readings.append(Reading(meter_id=m, ts=T0 + timedelta(minutes=15 * i),
                                    kw=0.5 + 0.05 * ((i * 7 + len(m)) % 5),
                                    voltage=(180.0 if sag else 221.0,)))

    def run(name: str, split: bool, processes: int = 1) -> list[tuple[str, str, str]]:
        journal = tmp_path / name
        parts = [Journal(journal, p) for p in ((0, 1) if split else (0,))]
        for k, r in enumerate(readings):
            parts[(k // 3) % len(parts)].append([encode_item(r)])
        for j in parts:
            j.close()
        settings = Settings.model_validate({"ingest": {"deadletter_dir": str(tmp_path / "dl")}})
        out = tmp_path / f"{name}.jsonl"
        if processes > 1:
            stats = replay_cluster(settings, journal, processes, influx=False, alerts_out=out)
        else:
            stats = replay(settings, journal, influx=False, alerts_out=out)
        assert stats.readings == len(readings)
        return sorted((e["meter_id"], e["type"], e["state"])
                      for e in map(json.loads, out.read_text().splitlines()))

    one = run("one", split=False)
    assert ("R-2", "voltage_sag", "firing") in one
    assert not [e for e in one if e[1] in ("clock_drift", "comm_loss")]
    assert run("two", split=True) == one
    # two processes, each reading one partition: the readings of a meter meet at its cell
    assert run("two-by-two", split=True, processes=2) == one


def _fleet_csv(tmp_path: Path) -> tuple[Path, Path]:
    """Two days of 12 meters in 4 cells: one meter's voltage sags, one goes silent for
    three hours, one row is bad; and the registry that puts the meters in their cells."""
    meters = [f"R-{i}" for i in range(12)]
    rows = ["meter_id,timestamp,kw,voltage"]
    for i in range(192):
        ts = (T0 + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z")
        for k, m in enumerate(meters):
            if m == "R-7" and 100 <= i < 112:
                continue  # silent
            sag = m == "R-2" and 60 <= i < 72
            kw = 0.5 + 0.05 * ((i * 7 + k) % 5) + 0.3 * (30 <= i % 96 < 40)
            rows.append(f"{m},{ts},{kw:.3f},{180.0 if sag else 221.0}")
    rows.insert(500, "R-3,2024-04-08T99:00:00Z,1.0,")
    path = tmp_path / "fleet.csv"
    path.write_text("\n".join(rows) + "\n")
    return path, _four_cells(tmp_path, meters, contracted_kva=8)


def _four_cells(tmp_path: Path, meters: list[str], **customer: object) -> Path:
    """A registry of four cells of one manager, the meters' households dealt out over them
    (each customer with ``customer``'s fields too)."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({
        "managers": [{"id": "MG", "name": "M", "channels": ["mqtt"]}],
        "cells": [{"id": f"C{c}", "name": f"cell {c}", "primary": "MG"} for c in range(4)],
        "customers": [{"id": f"CU-{m}", "name": m, "class": "residential", **customer,
                       "grid_cell": f"C{k % 4}", "meters": [m]}
                      for k, m in enumerate(meters)],
    }))
    return registry


def _replay_cli(tmp_path: Path, path: Path, registry: Path, out: Path, *extra: str
                ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump({
        "engine": {"data_dir": str(tmp_path / "data")},
        "ingest": {"deadletter_dir": str(tmp_path / "dead")},
        "influx": {"url": "http://127.0.0.1:9"},  # nothing listens: must not be contacted
    }))
    return subprocess.run(
        [sys.executable, "-m", "gridwatch", "replay", str(path), "--no-influx",
         "--alerts-out", str(out), "--registry", str(registry), *extra],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env=os.environ | {"GRIDWATCH_CONFIG": str(tmp_path / "gw.yaml")})


def test_a_replay_with_two_processes_raises_what_one_raises(tmp_path: Path) -> None:
    """`--processes 2`: each process steps the cells its worker watches; the merged alerts
    file holds the events one process raises, sorted by event time, and the summary, the
    counts and the dead letters are those of one process."""
    path, registry = _fleet_csv(tmp_path)

    def events(out: Path) -> list[dict]:
        return [json.loads(x) for x in out.read_text().splitlines()]

    one = _replay_cli(tmp_path, path, registry, tmp_path / "one.jsonl")
    assert one.returncode == 0, one.stderr
    dead_one = list(read_deadletters(tmp_path / "dead" / "replay"))
    assert [d.reason for d in dead_one] == ["schema"]
    import shutil

    shutil.rmtree(tmp_path / "dead")
    two = _replay_cli(tmp_path, path, registry, tmp_path / "two.jsonl", "--processes", "2")
    assert two.returncode == 0, two.stderr
    assert "with 2 processes" in " ".join(two.stderr.split())
    # the parent's segment stage says what it does once the processes have ended
    assert "segment stage: the meter-days of 1 day, from every process" in \
        " ".join(two.stderr.split())
    first, second = events(tmp_path / "one.jsonl"), events(tmp_path / "two.jsonl")
    key = ("meter_id", "type", "state", "onset", "raised_at", "severity")
    assert {(e["meter_id"], e["type"], e["state"]) for e in first} >= {
        ("R-2", "voltage_sag", "firing"), ("R-7", "comm_loss", "firing")}
    assert sorted(tuple(e[k] for k in key) for e in second) == \
        sorted(tuple(e[k] for k in key) for e in first)
    times = [datetime.fromisoformat(e["raised_at"]) for e in second]
    assert times == sorted(times)
    # the workers' own files were merged away
    assert sorted(p.name for p in tmp_path.glob("two*")) == ["two.jsonl"]
    summary = [ln for ln in one.stdout.splitlines() if ln.startswith(("readings", "alarms"))]
    assert summary == [ln.replace("two.jsonl", "one.jsonl") for ln in two.stdout.splitlines()
                       if ln.startswith(("readings", "alarms"))]
    assert "readings processed: 2292  rejected: 1" in two.stdout
    dead_two = list(read_deadletters(tmp_path / "dead" / "replay"))
    assert [(d.reason, d.index) for d in dead_two] == [(d.reason, d.index) for d in dead_one]


def test_a_parallel_replay_refuses_what_it_cannot_do_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("meter,when,power\nm1,2026-01-01T00:00:00Z,1\n")  # not readings
    registry = tmp_path / "registry.yaml"
    registry.write_text("managers: []\ncells: []\ncustomers: []\n")
    for extra in ((), ("-p", "2")):
        proc = _replay_cli(tmp_path, path, registry, tmp_path / "a.jsonl", *extra)
        assert proc.returncode == 2, proc.stderr
        said = " ".join(proc.stderr.split())  # (the console wraps long lines)
        assert "the CSV header must name meter_id, timestamp and kw" in said
        assert "Traceback" not in said
    route = _replay_cli(tmp_path, path, registry, tmp_path / "a.jsonl", "-p", "2", "--route")
    assert route.returncode == 2 and "--route needs one process" in " ".join(route.stderr.split())


def _long_csv(tmp_path: Path, intervals: int = 3000) -> Path:
    """300 meters' readings over ``intervals`` intervals (900,000 readings by default: a
    replay of several seconds)."""
    path = tmp_path / "long.csv"
    with path.open("w") as fh:
        fh.write("meter_id,timestamp,kw\n")
        for i in range(intervals):
            ts = (T0 + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z")
            fh.writelines(f"m{k},{ts},{0.5 + 0.01 * ((i + k) % 7):.2f}\n" for k in range(300))
    return path


def test_a_parallel_replay_reports_its_progress(tmp_path: Path) -> None:
    """The progress bar of a parallel replay follows the slowest process: the file's lines
    it has consumed (never more than the file has) and the time of its last reading."""
    from contextlib import contextmanager

    from gridwatch import Settings
    from gridwatch._replay_cluster import replay_cluster

    path = _long_csv(tmp_path, 1000)  # (the parent looks at the processes every 0.2 s)
    seen: list[tuple[int, datetime]] = []

    @contextmanager
    def progress():
        yield lambda n, ts: seen.append((n, ts))

    settings = Settings.model_validate({"engine": {"data_dir": str(tmp_path / "data")},
                                        "ingest": {"deadletter_dir": str(tmp_path / "dead")}})
    stats = replay_cluster(settings, path, 2, influx=False, progress=progress())
    assert stats.readings == 300_000
    assert len(seen) >= 2, f"progress reported {len(seen)} times"
    lines = [n for n, _ in seen]
    assert lines == sorted(lines) and 0 < lines[-1] <= 300_000
    assert all(T0 <= ts <= T0 + timedelta(minutes=15 * 999) for _, ts in seen)


def test_a_parallel_replay_stops_when_a_process_dies(tmp_path: Path) -> None:
    """kill -9 of one process of a parallel replay: the command stops the other and says
    how each ended, with exit code 1 (no process is left behind)."""
    import signal
    import time

    path = _long_csv(tmp_path)
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump({"engine": {"data_dir": str(tmp_path)}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridwatch", "replay", str(path), "--no-influx", "-p", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=os.environ | {"GRIDWATCH_CONFIG": str(tmp_path / "gw.yaml")})
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            children = [int(p) for p in subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
        assert len(children) >= 2, "the replay's processes did not start"
        time.sleep(1)  # mid-replay
        assert proc.poll() is None, "the replay finished before the kill: make it longer"
        os.kill(children[-1], signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    said = " ".join(err.split())
    assert "the replay failed: " in said and " ended by signal SIGKILL" in said, said
    for child in children:
        assert not Path(f"/proc/{child}").exists() or \
            "zombie" in Path(f"/proc/{child}/status").read_text()


@pytest.mark.services
def test_a_parallel_replay_stores_every_reading(tmp_path: Path, influxdb) -> None:
    """`--processes 2` into a real InfluxDB 1.6.7: each process writes the readings it read
    through its own sink and spool, and every accepted reading is stored."""
    import urllib.parse
    import urllib.request

    path, registry = _fleet_csv(tmp_path)
    db = "parallel_replay"
    urllib.request.urlopen(f"{influxdb.url}/query", data=urllib.parse.urlencode(
        {"q": f"CREATE DATABASE {db}"}).encode(), timeout=10).read()
    (tmp_path / "gw.yaml").write_text(yaml.safe_dump({
        "engine": {"data_dir": str(tmp_path / "data")},
        "influx": {"api": "v1", "url": influxdb.url, "database": db,
                   "spool_dir": str(tmp_path / "spool")},
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", "replay", str(path), "--registry", str(registry),
         "-p", "2"], capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env=os.environ | {"GRIDWATCH_CONFIG": str(tmp_path / "gw.yaml")})
    assert proc.returncode == 0, proc.stderr
    body = urllib.request.urlopen(f"{influxdb.url}/query?" + urllib.parse.urlencode(
        {"db": db, "q": "SELECT count(kw) FROM reading GROUP BY meter_id"}), timeout=10).read()
    series = json.loads(body)["results"][0]["series"]
    counts = {s["tags"]["meter_id"]: s["values"][0][1] for s in series}
    assert sum(counts.values()) == 2292
    assert counts == {f"R-{i}": 180 if i == 7 else 192 for i in range(12)}  # silent)
    # the load profiles, from the one segment stage the parent runs over the processes' days:
    # each meter's first day, closed by its second day's first reading
    body = urllib.request.urlopen(f"{influxdb.url}/query?" + urllib.parse.urlencode(
        {"db": db, "q": "SELECT count(daily_kwh) FROM profile GROUP BY meter_id"}),
        timeout=10).read()
    series = json.loads(body)["results"][0]["series"]
    assert {s["tags"]["meter_id"]: s["values"][0][1] for s in series} == {
        f"R-{i}": 1 for i in range(12)}


def _theft_csv(tmp_path: Path) -> tuple[Path, Path]:
    """Fourteen days of 40 households in 4 cells, half-hourly, two daily shapes; from the
    eighth day on, T-1's load is a third of its usual (a bypass: the same shape, scaled)
    and T-2's more than twice its usual (a rise, judged within the day); and the registry of
    their cells."""
    meters = [f"H-{i}" for i in range(38)] + ["T-1", "T-2"]
    rows = ["meter_id,timestamp,kw"]
    for i in range(14 * 48):
        ts = (T0 + timedelta(minutes=30 * i)).isoformat().replace("+00:00", "Z")
        hour, day = (i % 48) / 2, i // 48
        for k, m in enumerate(meters):
            if k % 2:
                kw = 0.3 + (1.2 if 17 <= hour < 22 else 0.0)  # evening peak
            else:
                kw = 0.2 + (0.9 if 8 <= hour < 18 else 0.0)  # daytime
            kw *= 1 + 0.08 * (((i * 13 + k * 7) % 11) - 5) / 5  # a little noise
            if m == "T-1" and day >= 7:
                kw /= 3
            if m == "T-2" and day >= 7:
                kw *= 2.4
            rows.append(f"{m},{ts},{kw:.3f}")
    path = tmp_path / "theft.csv"
    path.write_text("\n".join(rows) + "\n")
    return path, _four_cells(tmp_path, meters)


def test_a_parallel_replay_writes_the_same_events_on_any_number_of_processes(
        tmp_path: Path) -> None:
    """The processes of a replay of a file run apart and hand their meters' finished days to
    one segment stage in the parent, which takes them in the order of the days: two and three
    processes write the same alerts, byte for byte, segment-judged events (a possible theft)
    included; the events no segment judges are those of one process."""
    from gridwatch import Event
    from gridwatch.models._segment import is_candidate

    path, registry = _theft_csv(tmp_path)
    runs = {}
    for n in (1, 2, 3):
        out = tmp_path / f"p{n}.jsonl"
        proc = _replay_cli(tmp_path, path, registry, out, *(("-p", str(n)) if n > 1 else ()))
        assert proc.returncode == 0, proc.stderr
        runs[n] = out.read_text()
    assert runs[2] == runs[3]
    events = [Event.model_validate_json(x) for x in runs[2].splitlines()]
    judged = {(e.meter_id, e.type, e.state) for e in events if is_candidate(e)}
    assert ("T-1", "possible_theft", "firing") in judged, sorted(judged)
    one = [Event.model_validate_json(x) for x in runs[1].splitlines()]

    def key(e: Event) -> tuple:
        return (e.meter_id, e.type, e.state, e.onset, e.raised_at, e.severity)

    assert sorted(key(e) for e in events if not is_candidate(e)) == \
        sorted(key(e) for e in one if not is_candidate(e))
    assert sorted(p.name for p in tmp_path.glob("p2*")) == ["p2.jsonl"]  # parts merged away
