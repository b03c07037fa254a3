"""``engine.gc_threshold``: what the entry points do to the cycle collector after start-up.
Process-wide, so each case runs in a child interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = """
import gc, json
from gridwatch import Settings
from gridwatch._gc import tuned_gc
before = gc.get_threshold()
s = Settings()
with tuned_gc(s.engine.gc_threshold) as settled:
    during, frozen = gc.get_threshold(), gc.get_freeze_count()
    built = [[i] for i in range(5000)]  # what start-up builds (a registry, tables)
    settled()
    settled_frozen = gc.get_freeze_count()
print(json.dumps({"before": before, "after": during, "frozen": frozen,
                  "settled": settled_frozen - frozen,
                  "restored": gc.get_threshold(), "thawed": gc.get_freeze_count(),
                  "setting": s.engine.gc_threshold}))
"""


def run_child(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **env}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_freezes_start_up_and_raises_the_first_threshold():
    r = run_child({})
    assert r["setting"] == 250_000
    assert r["after"] == [250_000, 20, 20]
    assert r["frozen"] > 1000  # the imported modules' objects
    assert r["settled"] >= 5000  # and, once start-up is over, what it built
    assert r["restored"] == r["before"] and r["thawed"] == 0  # Python's settings again after


def test_zero_leaves_python_settings():
    r = run_child({"GRIDWATCH_ENGINE__GC_THRESHOLD": "0"})
    assert r["setting"] == 0
    assert r["after"] == r["before"]
    assert r["frozen"] == 0
    assert r["settled"] == 0


def test_setting_from_the_environment():
    r = run_child({"GRIDWATCH_ENGINE__GC_THRESHOLD": "5000"})
    assert r["after"] == [5000, 20, 20]


REPLAY_CHILD = """
import gc, json, sys
from datetime import UTC, datetime, timedelta
import bytewax.testing
from typer.testing import CliRunner
from gridwatch import Reading
from gridwatch.cli import app

tmp = sys.argv[1]
t0 = datetime(2026, 3, 2, tzinfo=UTC)
with open(f"{tmp}/r.jsonl", "w") as f:
    for i in range(8):
        f.write(Reading(meter_id="m1", ts=t0 + timedelta(minutes=15 * i), kw=1.0)
                .model_dump_json() + "\\n")
with open(f"{tmp}/g.yaml", "w") as f:
    f.write(f"engine:\\n  data_dir: {tmp}/data\\n")
seen = {}
run_main = bytewax.testing.run_main
def watching(*a, **k):
    seen["during"] = [gc.get_threshold(), gc.get_freeze_count()]
    return run_main(*a, **k)
bytewax.testing.run_main = watching
before = [gc.get_threshold(), gc.get_freeze_count()]
res = CliRunner().invoke(app, ["replay", f"{tmp}/r.jsonl", "--no-influx", "-c", f"{tmp}/g.yaml"])
print(json.dumps({"code": res.exit_code, "out": res.output, "before": before,
                  "during": seen.get("during"),
                  "after": [gc.get_threshold(), gc.get_freeze_count()]}))
"""


def test_cli_replay_tunes_the_collector_while_it_runs_and_restores_it(tmp_path):
    out = subprocess.run([sys.executable, "-c", REPLAY_CHILD, str(tmp_path)],
                         capture_output=True, text=True, timeout=300, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["code"] == 0, r["out"]
    assert r["during"][0] == [250_000, 20, 20] and r["during"][1] > 1000
    assert r["after"] == r["before"]


PAUSES_CHILD = """
import gc, json
from prometheus_client import CollectorRegistry
from gridwatch._gc import tuned_gc
reg = CollectorRegistry()
callbacks = len(gc.callbacks)
with tuned_gc(20_000, reg):
    during = len(gc.callbacks)
    for _ in range(500):  # cyclic garbage: only the collector frees it
        a = []
        a.append(a)
    del a
    gc.collect(0)
    gc.collect()
def value(name, gen):
    return reg.get_sample_value(name, {"generation": str(gen)}) or 0.0
print(json.dumps({"callbacks": [callbacks, during, len(gc.callbacks)],
                  "counts": [value("gridwatch_gc_pause_seconds_count", g) for g in range(3)],
                  "sums": [value("gridwatch_gc_pause_seconds_sum", g) for g in range(3)],
                  "collected": sum(value("python_gc_objects_collected_total", g)
                                   for g in range(3))}))
"""


def test_the_collector_s_pauses_are_measured_while_the_dataflow_runs():
    out = subprocess.run([sys.executable, "-c", PAUSES_CHILD], capture_output=True, text=True,
                         timeout=120, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    before, during, after = r["callbacks"]
    assert during == before + 1 and after == before  # installed for the run only
    # tuned_gc's own full collection, then one of generation 0 and one full
    assert r["counts"][0] >= 1 and r["counts"][2] >= 2
    assert all(s > 0 for s, c in zip(r["sums"], r["counts"], strict=True) if c)
    assert r["collected"] >= 500  # the 500 self-referencing lists (python_gc_*)


def test_pauses_fall_in_their_buckets_and_the_histogram_is_cumulative():
    from prometheus_client import CollectorRegistry, generate_latest

    from gridwatch._gc import GcPauses

    reg = CollectorRegistry()
    watch = GcPauses(reg)
    for _ in range(3):  # three short collections of generation 0
        watch("start", {"generation": 0})
        watch("stop", {"generation": 0, "collected": 2, "uncollectable": 0})
    watch("start", {"generation": 2})
    watch._started -= 0.3  # a pause of 0.3 s: between the 0.25 and 0.5 bounds
    watch("stop", {"generation": 2, "collected": 0, "uncollectable": 0})

    def sample(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    assert sample("gridwatch_gc_pause_seconds_count", generation="0") == 3
    assert sample("gridwatch_gc_pause_seconds_bucket", generation="0", le="+Inf") == 3
    assert sample("gridwatch_gc_pause_seconds_bucket", generation="0", le="2.5") == 3
    assert sample("gridwatch_gc_pause_seconds_bucket", generation="2", le="0.25") == 0
    assert sample("gridwatch_gc_pause_seconds_bucket", generation="2", le="0.5") == 1
    assert sample("gridwatch_gc_pause_seconds_bucket", generation="2", le="+Inf") == 1
    assert 0.3 <= sample("gridwatch_gc_pause_seconds_sum", generation="2") < 0.5
    assert sample("gridwatch_gc_pause_seconds_count", generation="1") == 0
    # the text a Prometheus server scrapes
    text = generate_latest(reg).decode()
    assert 'gridwatch_gc_pause_seconds_bucket{generation="2",le="0.5"} 1.0' in text
    # prometheus-client's own collector on the same registry: the objects freed
    assert "# TYPE python_gc_objects_collected_total counter" in text
