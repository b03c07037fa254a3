"""Evaluating tags over customers: class gating, unknown data, tags that use tags, reasons."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from _tags_helpers import CATALOGUE, TARIFF, profile

from gridwatch.tags._catalogue import Catalogue
from gridwatch.tags._engine import Attributes, TagEngine, format_value
from gridwatch.tags._features import FeatureTable
from gridwatch.tags._tariff import TouSchedule

TOU = TouSchedule.load(TARIFF)


def _tags(when: str, tag_id: str = "t", reason: str | None = None, classes=()) -> dict:
    d = {"id": tag_id, "name": {"zh": "标签", "en": "tag"}, "dimension": "usage",
         "description": "a test tag", "when": when}
    if reason:
        d["reason"] = reason
    if classes:
        d["classes"] = list(classes)
    return d


def _valley_table(shares: list[float], days: int = 60) -> tuple[FeatureTable, date]:
    """Customers whose valley hours (0-8) carry the given share of a 24 kWh day."""
    t = FeatureTable(TOU)
    start = date(2024, 2, 1)
    for i in range(days):
        d = start + timedelta(days=i)
        batch = []
        for k, share in enumerate(shares):
            curve = [share * 24 / 8] * 8 + [(1 - share) * 24 / 16] * 16
            batch.append(profile(f"c{k}", d, curve))
        t.observe(batch)
    return t, start + timedelta(days=days - 1)


def test_valley_shifter_with_its_reason():
    cat = Catalogue.from_data([("t.yaml", {"tags": [_tags(
        "avg(valley_share, 90d) >= 40%", "valley-shifter",
        "{avg(valley_share, 90d):%} of energy in valley hours over 90 days")]})])
    table, today = _valley_table([0.46, 0.2])
    attrs = Attributes([{"customer_class": "residential"}] * 2, cat.names.kinds)
    hits = TagEngine(cat).tag_customers(table.subset(["c0", "c1"]), attrs, today)
    assert [h.tag for h in hits[0]] == ["valley-shifter"] and hits[1] == []
    assert hits[0][0].reason == ("tagged valley-shifter: 46 % of energy in valley hours over "
                                 "90 days")


def test_class_gating_unknown_data_and_tag_dependencies():
    cat = Catalogue.from_data([("t.yaml", {"tags": [
        _tags("avg(valley_share, 90d) >= 40%", "valley", classes=["industrial"]),
        _tags("tag('valley') or has(needs, 'storage')", "offer-storage"),
    ]})], {"needs": __import__("gridwatch.alerts._registry", fromlist=["x"]).AttributeSpec(
        type="set", source="crm", values=("storage", "pv"))})
    table, today = _valley_table([0.5, 0.5, 0.1])
    recs = [{"customer_class": "industrial"}, {"customer_class": "residential"},
            {"customer_class": "industrial", "needs": ("storage",)}]
    hits = TagEngine(cat).evaluate(table.subset(["c0", "c1", "c2"]),
                                   Attributes(recs, cat.names.kinds), today)
    assert hits["valley"].tolist() == [True, False, False]
    # c1: not industrial and its needs are unknown -> not certainly true -> no tag
    assert hits["offer-storage"].tolist() == [True, False, True]


def test_a_customer_without_profiles_gets_no_behaviour_tag_but_its_attribute_tags():
    cat = Catalogue.load(CATALOGUE)
    table = FeatureTable(TOU, ["c0"])
    attrs = Attributes([{"customer_class": "industrial", "contracted_kva": 500.0,
                         "phases": 3, "meters": 1}], cat.names.kinds)
    hits = TagEngine(cat).tag_customers(table.subset(["c0"]), attrs, date(2024, 5, 1))[0]
    got = {h.tag for h in hits}
    assert {"industrial-customer", "medium-plant", "three-phase-supply"} <= got
    assert "newly-metered" in got
    assert {h.dimension for h in hits} == {"basic"}
    assert all(h.reason.startswith(f"tagged {h.tag}: ") and len(h.reason) > len(h.tag) + 10
               for h in hits)


def test_automatic_reason_names_the_figures():
    cat = Catalogue.from_data([("t.yaml", {"tags": [_tags(
        "avg(valley_share, 90d) >= 40% and contracted_kva < 10", "t")]})])
    table, today = _valley_table([0.5])
    attrs = Attributes([{"customer_class": "residential", "contracted_kva": 8.0}],
                       cat.names.kinds)
    hit = TagEngine(cat).tag_customers(table.subset(["c0"]), attrs, today)[0][0]
    assert "avg(valley_share, 90d) = 50 % (>= 40%)" in hit.reason
    assert "contracted_kva = 8 (< 10)" in hit.reason


@pytest.mark.parametrize("value, fmt, unit, text", [
    (0.456, "", "share", "46 %"), (0.456, "%", "", "46 %"), (1234.5, "", "kwh", "1,234"),
    (12.34, "", "kw", "12.3"), (1.234, "", "ratio", "1.23"), (float("nan"), "", "", "unknown"),
    (None, "", "", "unknown"), (3.0, "d", "", "3"), ("abc", "", "", "abc"),
])
def test_format_value(value, fmt, unit, text):
    assert format_value(value, fmt, unit) == text


def test_every_shipped_tag_evaluates_on_a_mixed_population():
    """No tag of the catalogue fails to evaluate, whatever is known or unknown."""
    cat = Catalogue.load(CATALOGUE)
    table, today = _valley_table([0.1, 0.3, 0.5, 0.7])
    recs = [{"customer_class": c, "contracted_kva": 50.0, "industry": "hotel",
             "programs": ("app",), "arrears": 0.0} for c in
            ("residential", "commercial", "industrial", "agricultural")]
    hits = TagEngine(cat).evaluate(table.subset(["c0", "c1", "c2", "c3"]),
                                   Attributes(recs, cat.names.kinds), today)
    assert set(hits) == {t.id for t in cat}
    assert all(v.dtype == np.bool_ and v.shape == (4,) for v in hits.values())
