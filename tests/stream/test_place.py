"""Placement of grid cells: the hash bytewax routes keys by (SipHash-1-3, zero key, a ``str``
fed as its bytes and 0xff), placed keys that land where asked, and the configuration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import ConfigError, MeterMeta, Settings
from gridwatch._engine import check_placement_store, cluster_placement
from gridwatch.stream import Placement, route
from gridwatch.stream._flow import watch_key
from gridwatch.stream._place import placed_key, siphash13

#: The reference paper's key, 00 01 .. 0f, as the two little-endian words SipHash takes.
K0, K1 = 0x0706050403020100, 0x0F0E0D0C0B0A0908


def test_siphash_2_4_matches_the_papers_vectors():
    """Aumasson and Bernstein, "SipHash: a fast short-input PRF" (2012), appendix A: message
    00 01 .. 0e under key 00 .. 0f; and the first entry of their vector table (empty
    message)."""
    assert siphash13(bytes(range(15)), K0, K1, c_rounds=2, d_rounds=4) == 0xA129CA6149BE45E5
    assert siphash13(b"", K0, K1, c_rounds=2, d_rounds=4) == 0x726FDB47DD0E0E31


def _cpython_siphash13(items: list[bytes]) -> list[int]:
    """CPython 3.11+ hashes ``bytes`` with SipHash-1-3 keyed by its hash secret, which
    PYTHONHASHSEED=0 sets to zero: the same function as Rust's ``DefaultHasher::new()``."""
    code = ("import sys, json\n"
            "assert sys.hash_info.algorithm == 'siphash13' and sys.hash_info.cutoff == 0\n"
            "print(json.dumps([hash(bytes.fromhex(h)) & (2**64 - 1)"
            " for h in json.loads(sys.stdin.read())]))")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps([b.hex() for b in items]),
                          capture_output=True, text=True, check=True, timeout=60,
                          env={"PYTHONHASHSEED": "0"})
    return list(json.loads(proc.stdout))


@settings(max_examples=12, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=70), min_size=1, max_size=60))
def test_siphash_1_3_with_zero_key_is_cpythons_hash_at_seed_zero(items):
    assert [siphash13(b) for b in items] == _cpython_siphash13(items)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.integers(1, 64))
def test_route_is_the_hash_of_the_keys_bytes_and_0xff_modulo_the_workers(key, workers):
    w = route(key, workers)
    assert 0 <= w < workers
    assert w == siphash13(key.encode("utf-8") + b"\xff") % workers == route(key, workers)


def test_route_refuses_no_workers():
    with pytest.raises(ValueError, match="at least 1"):
        route("cell:a", 0)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30), st.data())
def test_a_placed_key_lands_on_the_worker_asked_and_is_stable(key, data):
    workers = data.draw(st.integers(1, 16))
    worker = data.draw(st.integers(0, workers - 1))
    placed = placed_key(key, worker, workers)
    assert route(placed, workers) == worker
    assert placed == placed_key(key, worker, workers)
    assert placed == key or placed.startswith(f"{key}#")
    if route(key, workers) == worker:
        assert placed == key  # a key already in place is kept as it is


_cells = st.from_regex(r"[a-z]{1,6}-c[0-9]{3}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(_cells, min_size=1, max_size=30, unique=True), st.integers(2, 4),
       st.integers(1, 3), st.data())
def test_every_placed_cell_routes_to_a_worker_of_its_process(cells, processes, per_process,
                                                               data):
    chosen = {c: data.draw(st.integers(0, processes - 1)) for c in cells}
    by_process: dict[int, list[str]] = {}
    for c, p in chosen.items():
        by_process.setdefault(p, []).append(c)
    placement = Placement(by_process, processes, per_process)
    again = Placement(by_process, processes, per_process)
    for c, p in chosen.items():
        key = placement.key(c)
        worker = route(key, processes * per_process)
        assert worker == placement.worker_of(c)
        assert worker // per_process == p  # timely numbers process p's workers p*w onwards
        assert key == again.key(c) == placement.key(c)  # a function of the configuration


def test_patterns_exact_ids_first_and_unplaced_cells_keep_their_key():
    placement = Placement({0: ["north-*", "south-c007"], 1: ["south-*", "north-c001"]}, 2)
    assert placement.process_of("north-c003") == 0
    assert placement.process_of("north-c001") == 1  # an exact id beats a pattern
    assert placement.process_of("south-c007") == 0
    assert placement.process_of("south-c001") == 1
    assert placement.process_of("city-c001") is None
    assert placement.key("city-c001") == "cell:city-c001"
    assert route(placement.key("north-c003"), 2) == 0
    meta = MeterMeta(meter_id="m1", grid_cell="north-c003")
    assert watch_key("m1", meta, placement) == placement.key("north-c003")
    assert watch_key("m1", meta) == "cell:north-c003"
    assert watch_key("m1", None, placement).startswith("shard:")


@settings(max_examples=100, deadline=None)
@given(st.lists(_cells, min_size=1, max_size=20, unique=True), st.data())
def test_a_placed_key_is_told_apart_from_any_other_by_any_worker(cells, data):
    placed_cells = data.draw(st.lists(st.sampled_from(cells), unique=True))
    placement = Placement({0: placed_cells[::2], 1: placed_cells[1::2]}, 2)
    other = Placement({0: placed_cells[::2], 1: placed_cells[1::2]}, 2)  # another worker's
    for c in cells:
        key = placement.key(c)
        assert other.is_placed(key) == (c in placed_cells)
        assert not other.is_placed(f"cell:{c}#999") or placement.key(c) == f"cell:{c}#999"
    assert not other.is_placed("shard:07") and not other.is_placed("clock")


def test_placement_refuses_a_process_beyond_the_cluster():
    with pytest.raises(ValueError, match="process 2"):
        Placement({2: ["a-*"]}, 2)


def test_settings_placement_and_its_errors(tmp_path):
    s = Settings(engine={"placement": {"0": ["north-*"], "1": ["south-*"]}})
    assert s.engine.placement == {0: ["north-*"], 1: ["south-*"]}
    with pytest.raises(ValueError, match="on process 0 and on process 1"):
        Settings(engine={"placement": {0: ["a-*"], 1: ["a-*"]}})
    assert cluster_placement(s, 1) is None  # one process: nothing crosses anyway
    assert cluster_placement(Settings(), 2) is None
    placement = cluster_placement(s, 2)
    assert placement is not None and placement.process_of("south-c001") == 1
    with pytest.raises(ConfigError, match="process 3, but the cluster has 2"):
        cluster_placement(Settings(engine={"placement": {3: ["a"]}}), 2)


def test_a_recovery_store_keeps_the_placement_it_was_made_with(tmp_path):
    rdir = tmp_path / "recovery"
    placed = Settings(engine={"placement": {0: ["north-*"]}, "recovery_dir": str(rdir)})
    check_placement_store(placed, cluster_placement(placed, 2))
    (rdir / "part-0.sqlite3").write_bytes(b"")
    check_placement_store(placed, cluster_placement(placed, 2))  # the same: fine
    other = Settings(engine={"placement": {1: ["north-*"]}, "recovery_dir": str(rdir)})
    with pytest.raises(ConfigError, match=r"fresh engine\.recovery_dir"):
        check_placement_store(other, cluster_placement(other, 2))
    more_workers = Settings(engine={"placement": {0: ["north-*"]}, "recovery_dir": str(rdir),
                                    "workers": 2})
    with pytest.raises(ConfigError, match="with 4 workers"):
        check_placement_store(more_workers, cluster_placement(more_workers, 2))
    exclusive = Settings(engine={"placement": {0: ["north-*"]}, "recovery_dir": str(rdir),
                                 "placement_exclusive": True})
    with pytest.raises(ConfigError, match="differs"):  # placed cells change steps
        check_placement_store(exclusive, cluster_placement(exclusive, 2))
    # a store made before placements existed (partitions, no placement file) has plain keys
    old = tmp_path / "old"
    old.mkdir()
    (old / "part-0.sqlite3").write_bytes(b"")
    plain = Settings(engine={"recovery_dir": str(old)})
    check_placement_store(plain, None)
    moved = Settings(engine={"placement": {0: ["north-*"]}, "recovery_dir": str(old)})
    with pytest.raises(ConfigError, match="none"):
        check_placement_store(moved, cluster_placement(moved, 2))


def test_one_process_recovery_store_is_made_beside_the_placement_file(tmp_path):
    """The placement is written before bytewax's partitions are made: a directory holding
    only the placement file still gets its recovery partition."""
    from gridwatch._engine import recovery_config

    plain = Settings(engine={"recovery_dir": str(tmp_path / "r")})
    check_placement_store(plain, None)
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["placement.json"]
    assert recovery_config(plain, 1) is not None
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["part-0.sqlite3",
                                                                  "placement.json"]
