"""Shared fleets and helpers for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gridwatch.simulators import Fleet, Simulation

#: 60 meters of all four classes in two regions, two days at 15 minutes, anomalies on day two.
BASE_FLEET: dict[str, Any] = {
    "name": "test",
    "seed": 11,
    "start": "2024-03-04T00:00:00Z",
    "duration": "2d",
    "interval_min": 15,
    "regions": [{"name": "north", "cells": 2}, {"name": "south", "cells": 2}],
    "customers": {
        "residential": {"count": 30},
        "commercial": {"count": 12},
        "industrial": {"count": 4},
        "agricultural": {"count": 10},
    },
    "meters_per_concentrator": 10,
    "anomalies": {"warmup": "1d", "rate_per_meter_day": 0.0},
}


def make_fleet(**changes: Any) -> Fleet:
    """The base fleet with top-level keys replaced (nested dicts replace, not merge)."""
    return Fleet.from_dict(BASE_FLEET | changes)


@pytest.fixture(scope="session")
def base_fleet() -> dict[str, Any]:
    return dict(BASE_FLEET)


@pytest.fixture(scope="session")
def make() -> Callable[..., Fleet]:
    """``make(**changes)``: the base fleet with top-level keys replaced."""
    return make_fleet


@pytest.fixture(scope="session")
def collect() -> Callable[[Simulation], dict[tuple[int, int], dict[str, Any]]]:
    """``collect(sim)``: every reading as ``{(interval index, meter index): wire dict}``."""
    return _collect


def _collect(sim: Simulation) -> dict[tuple[int, int], dict[str, Any]]:
    """Every reading as ``{(interval index, meter index): wire dict}``."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for block in sim.blocks():
        for i, d in sim.rows(block):
            out[(block.k, i)] = d
    return out
