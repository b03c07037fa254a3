"""A registry reload reaches the dataflow: the meter facts the engine hands the flow follow the
router's registry (``gridwatch._engine.meter_lookup``), and the flow's step that picks industrial
customers' readings for their load forecasts keeps its facts across batches only while they are
still the registry's. A meter that becomes an industrial customer's mid-stream is forecast from
then on; one that stops being one is not forecast any more."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _alerts_helpers import make_router
from bytewax.testing import TestingSink, TestingSource, run_main

from gridwatch._engine import meter_lookup
from gridwatch._schemas import Forecast, Reading
from gridwatch._settings import Settings
from gridwatch.alerts import Registry
from gridwatch.stream import Sinks, build_flow

T = datetime(2024, 4, 1, tzinfo=UTC)
SLOTS = 4 * 24 * 4  # four days of quarter hours
SWAP = 4 * 24  # the registry changes after the first day


def registry(x_class: str) -> dict:
    return {"managers": [{"id": "M1"}], "cells": [{"id": "A", "primary": "M1"}],
            "customers": [
                {"id": "CX", "class": x_class, "contracted_kva": 100, "grid_cell": "A",
                 "meters": ["X"]},
                {"id": "CY", "class": "industrial", "contracted_kva": 100, "grid_cell": "A",
                 "meters": ["Y"]},
                {"id": "CZ", "class": "residential", "grid_cell": "A", "meters": ["Z"]}]}


@pytest.mark.parametrize(("before", "after"), [("residential", "industrial"),
                                               ("industrial", "commercial")])
def test_the_flow_picks_industrial_readings_by_the_reloaded_registry(
        tmp_path: Path, before: str, after: str) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry(before)))
    router = make_router(registry=registry(before))
    router.registry = Registry.load(path)
    router.registry_path, router._registry_mtime = path, path.stat().st_mtime

    def stream() -> Iterator[Reading]:
        for i in range(SLOTS):
            if i == SWAP:
                path.write_text(json.dumps(registry(after)))
                os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
                assert router.maybe_reload()
            for m in ("X", "Y", "Z"):
                yield Reading(meter_id=m, ts=T + timedelta(minutes=15 * i), kw=10.0 + i % 4,
                              kwh=float(i), interval_s=900)

    lookup = meter_lookup(Settings(), router)
    assert lookup is not None
    out: list = []
    run_main(build_flow(Settings(), TestingSource(stream(), batch_size=12),
                        Sinks(points=TestingSink(out)), lookup, snapshots=False))
    made = {}  # customer -> when its forecasts were made
    for f in out:
        if isinstance(f, Forecast) and f.target_kind == "customer":
            made.setdefault(f.target, []).append(f.made_at)
    swap_at = T + timedelta(minutes=15 * SWAP)
    assert "CZ" not in made
    assert made["CY"]  # industrial all along
    if after == "industrial":
        # Forecast after its two warm-up days, counted from the reload.
        assert min(made["CX"]) >= swap_at + timedelta(days=2)
    else:
        # Its readings stopped reaching the forecaster at the reload.
        assert "CX" not in made or max(made["CX"]) < swap_at
    router.close()
