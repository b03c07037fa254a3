"""The tag profiler day by day: features from profiles, tags committed, history kept."""

from __future__ import annotations

from datetime import date, timedelta

from _tags_helpers import CATALOGUE, TARIFF, profile

from gridwatch.alerts._registry import Registry
from gridwatch.tags._profiler import TagProfiler
from gridwatch.tags._store import TagStore

EVENING = [0.2] * 17 + [1.5] * 5 + [0.3] * 2
NIGHT = [1.5] * 6 + [0.2] * 18


def test_a_customer_becomes_night_heavy_and_the_history_says_when():
    registry = Registry.model_validate({
        "managers": [{"id": "M1"}], "cells": [{"id": "A", "primary": "M1"}],
        "customers": [{"id": "C1", "grid_cell": "A", "contracted_kva": 6,
                       "meters": ["m1"]}]})
    store = TagStore(":memory:")
    prof = TagProfiler.from_config(CATALOGUE, TARIFF, registry=registry, store=store)
    start, switch = date(2024, 3, 1), date(2024, 4, 1)
    day = start
    while day < date(2024, 5, 10):
        prof.observe([profile("C1", day, NIGHT if day >= switch else EVENING, meter="m1")])
        prof.commit(day)
        day += timedelta(days=1)
    today = day - timedelta(days=1)
    current = {r["tag"]: r for r in store.current("C1")}
    assert "night-heavy" in current and "evening-peak" not in current
    assert "night-peak" in current
    spans = store.history("C1", "night-heavy")
    assert len(spans) == 1 and spans[0].left is None and spans[0].appeared >= switch
    assert spans[0].describe(today).startswith("became night-heavy ")
    evening = store.history("C1", "evening-peak")
    assert evening[0].appeared == start and evening[0].left is not None
    assert evening[0].left >= switch
    # registry facts are tags from the first day on
    assert store.history("C1", "small-household-capacity")[0].appeared == start
    ex = prof.explain("C1", today)
    by_tag = {h.tag: h.reason for h in ex.tags}
    assert by_tag["night-heavy"].startswith("tagged night-heavy: ")
    assert "% of energy between 00:00 and 06:00" in by_tag["night-heavy"]
    store.close()
