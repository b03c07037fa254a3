"""Tags at work in the alert router: a route for every tag the catalogue or the profiler can
emit, in one spelling, and routes with tag expressions (``when:``)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from _tags_helpers import CATALOGUE, REPO

from gridwatch._schemas import Event, LoadProfile, Severity
from gridwatch.alerts import Registry, Router, RoutesError, RouteTree, Templates
from gridwatch.models._segment import profile_tags
from gridwatch.tags._catalogue import Catalogue, canonical_tag
from gridwatch.tags._strategy import Strategies

T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
CAT = Catalogue.load(CATALOGUE)


def _profiler_tags() -> set[str]:
    """Every tag the load profiler can emit, whatever the curve."""
    out: set[str] = set()
    shapes = {
        "flat": [1.0] * 24,
        "evening": [0.3] * 17 + [1.5] * 4 + [0.3] * 3,
        "two-shift": [0.2] * 6 + [1.0] * 16 + [0.2] * 2,
        "daytime": [0.2] * 8 + [1.0] * 12 + [0.2] * 4,
        "morning": [0.5] * 6 + [1.5] * 3 + [0.8] * 15,
        "night": [2.0] * 6 + [0.5] * 18,
    }
    for cls in ("residential", "commercial", "industrial", "agricultural"):
        for wd, we in itertools.product(shapes.values(), ([0.1] * 24, [1.0] * 24)):
            out.update(profile_tags(tuple(wd), tuple(we), cls))
    return out


PROFILER_TAGS = sorted(_profiler_tags())
ALL_TAGS = sorted({t.id for t in CAT} | {canonical_tag(t) for t in PROFILER_TAGS})


def _tree(tags: list[str]) -> RouteTree:
    return RouteTree.parse({
        "receivers": {f"r{i}": {"mqtt": f"gridwatch/offers/{t}"} for i, t in enumerate(tags)},
        "route": {"receivers": ["cell_manager"], "routes": [
            {"name": t, "match": {"tags": [t]}, "receivers": [f"r{i}"]}
            for i, t in enumerate(tags)]},
    })


def test_profiler_emits_the_shapes_the_tests_name():
    assert {"night-heavy", "flat 24 h", "evening-peak residential",
            "two-shift industrial"} <= set(PROFILER_TAGS)


def test_every_tag_routes_in_the_pure_tree():
    tree = _tree(ALL_TAGS)
    for i, tag in enumerate(ALL_TAGS):
        assert tree.receivers_for({"type": "outage", "severity": "warning",
                                   "tags": (tag,)}) == [f"r{i}"], tag
    assert tree.receivers_for({"type": "outage", "severity": "warning", "tags": ()}) == [
        "cell_manager"]


def test_profiler_spellings_route_by_their_one_spelling():
    tree = _tree(sorted({canonical_tag(t) for t in PROFILER_TAGS}))
    for raw in PROFILER_TAGS:  # the profiler's own spelling, spaces and all
        got = tree.receivers_for({"type": "outage", "severity": "warning", "tags": (raw,)})
        assert got != ["cell_manager"], raw


def test_the_readme_example_fires():
    # routes written as {tags: [night_heavy]} match the profiler's night-heavy
    tree = RouteTree.parse({"route": {"receivers": ["cell_manager"], "routes": [
        {"match": {"tags": ["night_heavy"]}, "receivers": ["backup_manager"]}]}})
    assert tree.receivers_for({"tags": ("night-heavy",)}) == ["backup_manager"]


def test_every_catalogue_and_profiler_tag_routes_through_the_router():
    """The real router (SQLite state): each customer carries one tag in its stored profile;
    an outage of its meter goes to the receiver of that tag's route."""
    customers = [{"id": f"C{i}", "class": "industrial", "grid_cell": "A",
                  "meters": [f"m{i}"]} for i in range(len(ALL_TAGS))]
    registry = Registry.model_validate({
        "managers": [{"id": "M1"}, {"id": "M2"}],
        "cells": [{"id": "A", "primary": "M1", "backup": "M2"}], "customers": customers})
    router = Router(registry, _tree(ALL_TAGS), templates=Templates(REPO / "config/templates"),
                    notifiers={}, clock=lambda: T0)
    try:
        for i, tag in enumerate(ALL_TAGS):
            router.update_profile(LoadProfile(
                meter_id=f"m{i}", day=T0, customer_id=f"C{i}", segment="x", tags=(tag,),
                daily_kwh=1.0, peak_kw=1.0, valley_kw=0.1), now=T0)
            router.submit(Event(meter_id=f"m{i}", customer_id=f"C{i}", grid_cell="A",
                                type="outage", severity=Severity.CRITICAL, score=1.0,
                                onset=T0, raised_at=T0, state="firing", summary="no power"),
                          now=T0)
        got = {a["customer_id"]: json.loads(a["receivers"]) for a in router.alerts()}
    finally:
        router.close()
    for i, tag in enumerate(ALL_TAGS):
        assert got[f"C{i}"] == [f"receiver:r{i}"], tag


def test_every_catalogue_tag_the_engine_computes_routes_through_the_router():
    """The same, with each tag as the running engine hands it over (``router_publisher``: a
    profile row of the customer, not of a meter), and a meter row with the profiler's tags
    beside it that must not get in the way."""
    from datetime import date

    from gridwatch.tags._live import router_publisher

    tags = sorted(t.id for t in CAT)
    customers = [{"id": f"C{i}", "class": "residential", "grid_cell": "A",
                  "meters": [f"m{i}"]} for i in range(len(tags))]
    registry = Registry.model_validate({
        "managers": [{"id": "M1"}], "cells": [{"id": "A", "primary": "M1"}],
        "customers": customers})
    router = Router(registry, _tree(tags), templates=Templates(REPO / "config/templates"),
                    notifiers={}, clock=lambda: T0)
    publish = router_publisher(router)
    try:
        for i, tag in enumerate(tags):
            router.update_profile(LoadProfile(
                meter_id=f"m{i}", day=T0, customer_id=f"C{i}", segment="x",
                tags=("residential",), daily_kwh=1.0, peak_kw=1.0, valley_kw=0.1), now=T0)
            publish(f"C{i}", None, (tag,), date(2026, 5, 3))
        router.submit_many([Event(meter_id=f"m{i}", customer_id=f"C{i}", grid_cell="A",
                                  type="outage", severity=Severity.CRITICAL, score=1.0,
                                  onset=T0, raised_at=T0, summary="no power")
                            for i in range(len(tags))], now=T0)
        got = {a["customer_id"]: json.loads(a["receivers"]) for a in router.alerts()}
    finally:
        router.close()
    assert len(tags) >= 200
    for i, tag in enumerate(tags):
        assert got[f"C{i}"] == [f"receiver:r{i}"], tag


def test_every_segment_name_routes():
    """A route may name a segment the segment model can emit (``match: {segment: ...}``)."""
    from gridwatch._segnames import SEGMENT_SHAPES

    names = [f"{sharp}{shape} {who}" for shape in SEGMENT_SHAPES
             for sharp in ("", "sharp ")
             for who in ("households", "businesses", "plants", "farms")]
    tree = RouteTree.parse({"route": {"receivers": ["cell_manager"], "routes": [
        {"match": {"segment": [n]}, "receivers": ["backup_manager"]} for n in names[:1]]}})
    for n in names:
        want = ["backup_manager"] if n == names[0] else ["cell_manager"]
        assert tree.receivers_for({"segment": n, "tags": ()}) == want
    tree = RouteTree.parse({"route": {"receivers": ["cell_manager"], "routes": [
        {"match": {"segment": [n]}, "receivers": ["backup_manager"]} for n in names]}})
    assert all(tree.receivers_for({"segment": n, "tags": ()}) == ["backup_manager"]
               for n in names)


@pytest.mark.parametrize("when, labels, hit", [
    ("tag('valley-shifter') and customer_class == 'industrial'",
     {"tags": ("valley-shifter",), "customer_class": "industrial"}, True),
    ("tag('valley-shifter') and customer_class == 'industrial'",
     {"tags": ("valley-shifter",), "customer_class": "residential"}, False),
    ("tag('night_heavy') or segment == 'evening-peak households'",
     {"tags": ("night-heavy",)}, True),
    ("not tag('key-account') and type in ('outage', 'feeder_outage')",
     {"tags": (), "type": "outage"}, True),
    ("known(segment)", {"tags": ()}, False),
])
def test_routes_with_tag_expressions(when, labels, hit):
    tree = RouteTree.parse({"route": {"receivers": ["cell_manager"], "routes": [
        {"when": when, "receivers": ["backup_manager"]}]}})
    want = ["backup_manager"] if hit else ["cell_manager"]
    assert tree.receivers_for(labels) == want


@pytest.mark.parametrize("when, message", [
    ("tag('x') and", r"routes\[0\]\.when: expected a value"),
    ("valley_share > 0.4", "unknown label 'valley_share'"),
    ("severity > 'warning'", "labels are text"),
    ("avg(a, 3d) > 1", r"avg\(\): only tag\('id'\) and known\(label\) are allowed"),
])
def test_bad_route_expressions_are_refused_at_load(when, message):
    with pytest.raises(RoutesError, match=message):
        RouteTree.parse({"route": {"receivers": ["cell_manager"], "routes": [
            {"when": when, "receivers": ["backup_manager"]}]}})


def test_strategies_name_known_tags_and_pick_by_priority():
    strat = Strategies.load(CATALOGUE / "strategies.yaml", CAT.by_id)
    got = strat.for_customer(["care-visit-need", "storage-candidate"], None, "residential")
    assert [s.id for s in got] == ["vulnerable-household-care", "peak-management"]
    seg = strat.for_customer([], "evening-peak households", "residential")
    assert [s.id for s in seg] == ["evening-peak-households"]
    assert strat.for_customer([], None, "residential") == []
    # every tag a strategy names is in the catalogue
    from gridwatch.tags._expr import Call, walk

    for expr in strat.exprs.values():
        for n in walk(expr.node):
            if isinstance(n, Call) and n.func == "tag":
                assert n.args[0].value in CAT.by_id  # type: ignore[attr-defined]
