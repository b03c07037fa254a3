"""Light imports: the package, its settings and the command line's help load no IO or model
library; those come in with the first name that needs them. Each check runs in a fresh
interpreter, since this test process has long imported everything."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Libraries that only the stages using them may load.
HEAVY = ("river", "jinja2", "requests", "paho", "influxdb_client", "bytewax", "apprise",
         "pandas", "numpy")


def loaded_by(*args: str) -> set[str]:
    """Top-level names of the modules a fresh ``python -X importtime ARGS`` imports."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    assert "gridwatch" in names, "importtime output not understood"
    return names


@pytest.mark.parametrize("args", [
    ("-c", "import gridwatch"),
    ("-c", "import gridwatch; gridwatch.load_settings()"),
    ("-m", "gridwatch", "--help"),
    ("-m", "gridwatch", "alerts", "--help"),
    ("-m", "gridwatch", "simulate", "--help"),
], ids=["import", "load_settings", "help", "alerts-help", "simulate-help"])
def test_start_loads_no_heavy_library(args: tuple[str, ...]) -> None:
    heavy = sorted(loaded_by(*args).intersection(HEAVY))
    assert heavy == [], f"python {' '.join(args)} loads {heavy}"


def test_a_name_loads_its_library_on_first_use() -> None:
    # The check above must be able to fail: the same probe sees River once a model is used.
    assert "river" in loaded_by("-c", "import gridwatch.models as m; m.Segmenter")
