"""Where the benchmarks find the data sets of ``shared/datasets``: the machine's copy, else
the one beside the checkout (as a clean clone in CI has it)."""

from __future__ import annotations

from pathlib import Path

#: real half-hourly household load, 45 households (see its README)
SGSC45 = Path("/work/shared/datasets/sgsc45/readings.csv.gz")
if not SGSC45.exists():
    SGSC45 = Path(__file__).resolve().parents[2] / "shared/datasets/sgsc45/readings.csv.gz"
