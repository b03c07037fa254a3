"""Tags of the running engine (``LiveTags``): days fold in as they arrive, a day is evaluated
when a later day arrives or its profiles stop coming, the tags go to the store (history kept)
and to the router (``publish``)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from _tags_helpers import CATALOGUE, TARIFF, profile

from gridwatch._schemas import Event, LoadProfile, Severity
from gridwatch.alerts._registry import Registry
from gridwatch.tags._live import LiveTags, router_publisher, tags_row_id
from gridwatch.tags._profiler import TagProfiler
from gridwatch.tags._store import TagStore

NIGHT = [1.5] * 6 + [0.2] * 18
EVENING = [0.2] * 17 + [1.5] * 5 + [0.3] * 2

REGISTRY = Registry.model_validate({
    "managers": [{"id": "M1"}], "cells": [{"id": "A", "primary": "M1"}],
    "customers": [{"id": "N1", "grid_cell": "A", "meters": ["mn"]},
                  {"id": "E1", "grid_cell": "A", "meters": ["me"]}]})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _live(store: TagStore, clock: Clock, published: list) -> LiveTags:
    return LiveTags(lambda: TagProfiler.from_config(CATALOGUE, TARIFF, registry=REGISTRY,
                                                    store=store),
                    publish=lambda cid, seg, tags, _day: published.append((cid, seg, tags)),
                    settle_s=5.0, clock=clock)


def _day(d: date) -> list:
    return [profile("N1", d, NIGHT, meter="mn"), profile("E1", d, EVENING, meter="me")]


def test_a_day_is_evaluated_when_the_next_one_arrives_and_history_is_kept():
    store, clock, published = TagStore(":memory:"), Clock(), []
    live = _live(store, clock, published)
    d1 = date(2024, 5, 6)
    live.put_days(_day(d1))
    assert live.evaluations == 0 and live.pending == d1  # the day may still be arriving
    live.put_days(_day(d1 + timedelta(days=1)))
    assert live.evaluations == 1 and live.last_day == d1 and live.pending == d1 + timedelta(1)
    night = {cid: tags for cid, _seg, tags in published}
    assert "night-heavy" in night["N1"] and "night-heavy" not in night["E1"]
    assert "evening-peak" in night["E1"]
    assert store.history("N1", "night-heavy")[0].appeared == d1
    # the same tags again: nothing new to tell the router
    live.put_days(_day(d1 + timedelta(days=2)))
    assert live.evaluations == 2 and len(published) == 2


def test_the_last_day_is_evaluated_once_its_profiles_stop_coming():
    store, clock, published = TagStore(":memory:"), Clock(), []
    live = _live(store, clock, published)
    d1 = date(2024, 5, 6)
    live.put_days(_day(d1))
    clock.t = 4.0
    assert live.settle() is None
    clock.t = 5.5
    assert live.settle() == d1
    assert {r["tag"] for r in store.current("N1")} >= {"night-heavy"}
    assert live.settle() is None  # nothing pending any more


def test_a_late_profile_is_folded_in_and_its_day_evaluated_again():
    store, clock, published = TagStore(":memory:"), Clock(), []
    live = _live(store, clock, published)
    d1 = date(2024, 5, 6)
    live.put_days([profile("E1", d1, EVENING, meter="me")])
    clock.t = 10
    assert live.settle() == d1
    assert "N1" not in live.hits
    live.put_days([profile("N1", d1, NIGHT, meter="mn")])  # a meter that reported late
    clock.t = 20
    assert live.settle() == d1
    assert "night-heavy" in {h.tag for h in live.hits["N1"]}


def test_alerts_the_engine_routes_count_in_the_features():
    store, clock, published = TagStore(":memory:"), Clock(), []
    live = _live(store, clock, published)
    d1 = date(2024, 5, 6)
    t = datetime(2024, 5, 6, 12, tzinfo=UTC)
    sags = [Event(meter_id="mn", customer_id="N1", grid_cell="A", type="voltage_sag",
                  severity=Severity.WARNING, score=1.0, onset=t + timedelta(hours=i),
                  raised_at=t + timedelta(hours=i))
            for i in range(3)]
    routed: list = []
    submit = live.submit_wrapper(lambda evs: routed.extend(evs))
    submit(sags)
    assert routed == sags
    live.put_days(_day(d1))
    clock.t = 10
    live.settle()
    assert "voltage-quality-need" in {h.tag for h in live.hits["N1"]}
    assert "voltage-quality-need" not in {h.tag for h in live.hits["E1"]}


def test_segments_come_from_the_load_profiles():
    store, clock, published = TagStore(":memory:"), Clock(), []
    live = _live(store, clock, published)
    seen: list = []
    on_profile = live.profile_wrapper(seen.append)
    lp = LoadProfile(meter_id="mn", day=datetime(2024, 5, 6, tzinfo=UTC), customer_id="N1",
                     segment="night-heavy households", daily_kwh=1.0, peak_kw=1.0,
                     valley_kw=0.1)
    on_profile(lp)
    assert seen == [lp]
    live.put_days(_day(date(2024, 5, 6)))
    clock.t = 10
    live.settle()
    assert ("N1", "night-heavy households") in {(c, s) for c, s, _t in published}


def test_on_its_thread_the_work_is_done_in_the_background():
    published: list = []
    live = LiveTags(lambda: TagProfiler.from_config(CATALOGUE, TARIFF, registry=REGISTRY,
                                                    store=TagStore(":memory:")),
                    publish=lambda cid, seg, tags, _day: published.append((cid, seg, tags)),
                    settle_s=0.2).start()
    try:
        live.put_days(_day(date(2024, 5, 6)))
        deadline = time.monotonic() + 20
        while not published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {c for c, _s, _t in published} == {"N1", "E1"}
        assert live.errors == 0
    finally:
        live.stop()


class _Router:
    def __init__(self) -> None:
        self.rows: list[LoadProfile] = []

    def update_profile(self, p: LoadProfile) -> None:
        self.rows.append(p)


@pytest.mark.parametrize("cid", ["C1", "C" * 64])
def test_the_router_gets_a_profile_row_per_customer(cid):
    router = _Router()
    router_publisher(router)(cid, None, ("night-heavy",), date(2024, 5, 6))
    (row,) = router.rows
    assert row.customer_id == cid and row.tags == ("night-heavy",)
    assert row.day == datetime(2024, 5, 6, tzinfo=UTC)
    assert row.meter_id == tags_row_id(cid) and len(row.meter_id) <= 64


def test_stopping_evaluates_the_pending_day():
    published: list = []
    live = LiveTags(lambda: TagProfiler.from_config(CATALOGUE, TARIFF, registry=REGISTRY,
                                                    store=TagStore(":memory:")),
                    publish=lambda cid, seg, tags, _day: published.append(cid),
                    settle_s=3600).start()
    live.put_days(_day(date(2024, 5, 6)))
    live.stop()
    assert sorted(published) == ["E1", "N1"] and live.last_day == date(2024, 5, 6)


def test_verdicts_come_from_the_routers_transitions():
    from gridwatch._schemas import AlertTransition

    ack = AlertTransition(fingerprint="mn/outage", meter_id="mn", type="outage",
                          severity=Severity.CRITICAL, state="acknowledged",
                          at=datetime(2024, 5, 6, 9, tzinfo=UTC), by="M1", customer_id="N1")
    audit = [ack]
    asked: list[int] = []

    def transitions(after: int) -> tuple[list, int]:
        asked.append(after)
        return audit[after:], len(audit)

    store, clock = TagStore(":memory:"), Clock()
    live = LiveTags(lambda: TagProfiler.from_config(CATALOGUE, TARIFF, registry=REGISTRY,
                                                    store=store),
                    transitions=transitions, clock=clock)
    live.put_days(_day(date(2024, 5, 6)))
    clock.t = 10
    live.settle()
    assert "alerts-acknowledged" in {h.tag for h in live.hits["N1"]}
    assert "alerts-acknowledged" not in {h.tag for h in live.hits["E1"]}
    live.put_days(_day(date(2024, 5, 7)))
    clock.t = 20
    live.settle()
    assert asked == [0, 1, 1]  # each transition read once


def test_the_engine_runs_on_without_tags_when_the_catalogue_is_broken(tmp_path, caplog):
    from gridwatch._settings import Settings
    from gridwatch.tags._live import live_tags

    (tmp_path / "bad.yaml").write_text(
        "dimension: usage\ntags:\n  - id: my-tag\n    name: {zh: 我的, en: mine}\n"
        "    description: my own tag\n    when: vally_share > 1\n")
    settings = Settings(alerts={"tags_catalogue": str(tmp_path), "tariff": str(TARIFF),
                                "state_db": str(tmp_path / "alerts.sqlite")})
    with caplog.at_level("ERROR", logger="gridwatch.tags"):
        assert live_tags(settings, None, None) is None
    assert "the engine computes no tags" in caplog.text and "vally_share" in caplog.text
    good = Settings(alerts={"tags_catalogue": str(CATALOGUE), "tariff": str(TARIFF),
                            "state_db": str(tmp_path / "alerts.sqlite")})
    live = live_tags(good, None, None)
    assert live is not None and live.publish is None
    off = Settings(alerts={"tags_catalogue": None})
    assert live_tags(off, None, None) is None


def test_the_catalogue_checked_at_start_is_the_one_the_engine_runs(tmp_path):
    """The catalogue is read once, at start: an edit of the file afterwards (here a broken
    one) does not reach the running engine, which tags with what it checked; after a reload
    of the registry the catalogue is read again, against the new attribute schema."""
    import shutil

    from gridwatch._settings import Settings
    from gridwatch.tags._live import live_tags

    folder = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, folder)
    settings = Settings(alerts={"tags_catalogue": str(folder), "tariff": str(TARIFF),
                                "state_db": str(tmp_path / "alerts.sqlite")})

    class Router:  # what live_tags uses of the alert router: its registry, its audit trail
        def __init__(self) -> None:
            self.registry = REGISTRY
            self.profiles: list[LoadProfile] = []

        def transitions(self, after: int) -> tuple[list, int]:
            return [], after

        def update_profile(self, profile: LoadProfile) -> None:
            self.profiles.append(profile)

    router = Router()
    live = live_tags(settings, router, UTC)
    assert live is not None
    for f in folder.glob("*.yaml"):
        f.write_text("tags: [")  # broken after the start
    d1 = date(2024, 5, 6)
    live.put_days(_day(d1))
    live.put_days(_day(d1 + timedelta(days=1)))
    assert live.errors == 0 and live.evaluations == 1
    assert "night-heavy" in {h.tag for h in live.hits["N1"]}
    assert any("night-heavy" in p.tags for p in router.profiles)

    # a second engine whose registry is reloaded before its first day: it reads the file
    # again (now broken), and says so on its tag thread
    shutil.rmtree(folder)
    shutil.copytree(CATALOGUE, folder)
    settings = settings.model_copy(update={"alerts": settings.alerts.model_copy(
        update={"state_db": tmp_path / "alerts2.sqlite"})})
    again = live_tags(settings, router, UTC)
    assert again is not None
    router.registry = Registry.model_validate(REGISTRY.model_dump())  # a reload
    for f in folder.glob("*.yaml"):
        f.write_text("tags: [")
    with pytest.raises(ValueError):
        again.put_days(_day(d1))


def test_an_engine_started_again_goes_on_from_the_stored_features(tmp_path):
    """A restart with recovery hands the days since the last snapshot again: the features
    stored at the last evaluation are resumed, those days are not counted twice, and the
    router hears the stored tags at once."""
    db = tmp_path / "tags.sqlite"
    clock, published = Clock(), []
    live = _live(TagStore(db), clock, published)
    d1 = date(2024, 5, 6)
    for k in range(3):
        live.put_days(_day(d1 + timedelta(days=k)))
    live.settle(force=True)
    assert live.last_day == d1 + timedelta(days=2)
    before = live.profiler.table.state.copy()
    order = list(live.profiler.table.ids)

    again: list = []
    live2 = _live(TagStore(db), Clock(), again)
    live2.put_days(_day(d1 + timedelta(days=1)) + _day(d1 + timedelta(days=2)))  # replayed
    assert live2.skipped == 4 and live2.pending is None
    rows = live2.profiler.table.rows(order)
    assert (live2.profiler.table.state[rows] == before).all()
    told = {cid: tags for cid, _seg, tags in again}
    assert "night-heavy" in told["N1"] and "evening-peak" in told["E1"]
    # a new day is folded in and evaluated as before
    live2.put_days(_day(d1 + timedelta(days=3)))
    live2.settle(force=True)
    assert live2.last_day == d1 + timedelta(days=3)
    assert live2.profiler.table.state[rows[0]].tobytes() != before[0].tobytes()


def test_only_the_customers_whose_features_changed_are_written_again(tmp_path):
    store, clock, published = TagStore(tmp_path / "t.sqlite"), Clock(), []
    live = _live(store, clock, published)
    d1 = date(2024, 5, 6)
    live.put_days(_day(d1))
    live.settle(force=True)
    assert store.features("N1")[3] == d1 and store.features("E1")[3] == d1
    live.put_days([profile("N1", d1 + timedelta(days=1), NIGHT, meter="mn")])  # E1 silent
    live.settle(force=True)
    assert store.features("N1")[3] == d1 + timedelta(days=1)
    assert store.features("E1")[3] == d1
