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
from gridwatch._engine import tune_gc
before = gc.get_threshold()
s = Settings()
tune_gc(s.engine.gc_threshold)
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "setting": s.engine.gc_threshold}))
"""


def run_child(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=120, env={**os.environ, **env}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_freezes_start_up_and_raises_the_first_threshold():
    r = run_child({})
    assert r["setting"] == 20_000
    assert r["after"] == [20_000, 20, 20]
    assert r["frozen"] > 1000  # the imported modules' objects


def test_zero_leaves_python_settings():
    r = run_child({"GRIDWATCH_ENGINE__GC_THRESHOLD": "0"})
    assert r["setting"] == 0
    assert r["after"] == r["before"]
    assert r["frozen"] == 0


def test_setting_from_the_environment():
    r = run_child({"GRIDWATCH_ENGINE__GC_THRESHOLD": "5000"})
    assert r["after"] == [5000, 20, 20]
