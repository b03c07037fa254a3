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


#: What the settings bring (pydantic, YAML), which neither ``import gridwatch`` nor the top-level
#: help needs. (A subcommand's help loads pydantic through typer's own parameter adapters.)
SETTINGS = ("pydantic", "pydantic_settings", "yaml")


@pytest.mark.parametrize(("args", "forbidden"), [
    (("-c", "import gridwatch"), HEAVY + SETTINGS),
    (("-m", "gridwatch", "--help"), HEAVY + SETTINGS),
    (("-c", "import gridwatch; gridwatch.load_settings()"), HEAVY),
    (("-m", "gridwatch", "alerts", "--help"), HEAVY),
    (("-m", "gridwatch", "simulate", "--help"), HEAVY),
], ids=["import", "help", "load_settings", "alerts-help", "simulate-help"])
def test_start_loads_no_heavy_library(args: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    loaded = sorted(loaded_by(*args).intersection(forbidden))
    assert loaded == [], f"python {' '.join(args)} loads {loaded}"


def test_a_name_loads_its_library_on_first_use() -> None:
    # The check above must be able to fail: the same probe sees River once a model is used.
    assert "river" in loaded_by("-c", "import gridwatch.models as m; m.Segmenter")


#: Libraries that talk to the outside world (network, disk databases, mail, the stream runtime).
IO_LIBRARIES = ("paho", "influxdb_client", "requests", "urllib3", "httpx", "aiohttp", "aiosmtpd",
                "apprise", "jinja2", "bytewax", "prometheus_client", "smtplib", "sqlite3", "http",
                "ssl")

#: The pure core: decoding, the storage schema, the value objects, the detectors and the alert
#: stages take values (and the clock) and return values; the IO modules around them (collector,
#: writer, sink, router) bring the libraries.
LOGIC_MODULES = ("gridwatch.ingest._decode", "gridwatch.storage._points", "gridwatch._schemas",
                 "gridwatch.models._meter", "gridwatch.models._baseline",
                 "gridwatch.models._faults", "gridwatch.models._device",
                 "gridwatch.models._alarms", "gridwatch.models._forecast",
                 "gridwatch.alerts._stages")


@pytest.mark.parametrize("module", LOGIC_MODULES)
def test_logic_modules_load_no_io_library(module: str) -> None:
    loaded = sorted(loaded_by("-c", f"import {module}").intersection(IO_LIBRARIES))
    assert loaded == [], f"{module} loads {loaded}"


def test_the_io_probe_sees_an_io_module() -> None:
    # The check above must be able to fail: the writer, next to the schema, loads the client.
    assert "influxdb_client" in loaded_by("-c", "import gridwatch.storage._writer")
