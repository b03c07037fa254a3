"""Which tags an alert message shows: the few that bear on the alert's type
(``config/tags/relevance.yaml``), each with its reason in the reader's language, and how many
more the workspace's customer page holds. The context is built from a real router's stored
alert and a real tag store, and rendered with the shipped templates."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from _tags_helpers import CATALOGUE
from _web_helpers import build_web, event

from gridwatch.alerts._messages import alert_context
from gridwatch.alerts._templates import Templates
from gridwatch.tags._catalogue import Catalogue, CatalogueError
from gridwatch.tags._engine import TagHit
from gridwatch.tags._notes import TagNotes, tags_db_path
from gridwatch.tags._relevance import Relevance, relevance_for
from gridwatch.tags._store import TagStore

CAT = Catalogue.load(CATALOGUE)

#: C3's tags, oldest first: the facts of the registry long ago, the theft-relevant ones
#: later, and the newest ones of no bearing on theft (so relevance, not age, decides).
OLD = ["residential-customer", "single-phase-supply", "low-voltage-supply", "tou-tariff"]
THEFT = ["in-arrears", "night-heavy", "sudden-drop-this-week", "theft-suspect-history",
         "recent-night-shift", "large-arrears"]
NEW = ["apartment-household", "pv-candidate", "near-contracted-capacity"]


def hit(tag: str) -> TagHit:
    t = CAT.by_id[tag]
    return TagHit(tag, f"tagged {tag}: why in English ({t.spec.name.en})", t.dimension,
                  f"{t.spec.name.zh}：中文依据")


@pytest.fixture
def w(tmp_path: Path):
    web = build_web(tmp_path, alerts={"tags_catalogue": str(CATALOGUE)})
    store = TagStore(tags_db_path(web.settings.alerts))
    day = date(2026, 3, 1)
    for group in (OLD, THEFT, NEW):
        have = [hit(t) for t in (*OLD, *THEFT, *NEW) if t in OLD or t in group
                or (group is NEW and t in THEFT)]
        store.apply(day, {"C3": have})
        day += timedelta(days=20)
    store.close()
    web.seed(event("r1", "possible_theft"), event("r2", "over_capacity_risk"))
    yield web
    web.router.close()
    web.ws.close()


def context(w, meter: str) -> dict:
    row = w.router.db.execute("SELECT * FROM alerts WHERE meter_id=?", (meter,)).fetchone()
    return alert_context(row, "firing", registry=w.router.registry, labels=w.router.labels(row),
                         settings=w.router.settings, resolved_at=None,
                         tag_notes=TagNotes(tags_db_path(w.settings.alerts)).for_message)


def render(w, lang: str, a: dict) -> str:
    ctx = {"alerts": [a], "top": a, "kind": "firing", "status": "firing",
           "recipient_name": "Alice", "customer_name": "Alice", "firing": 1}
    return Templates(w.settings.alerts.templates).render("manager", lang, ctx)[1]


def test_a_theft_alert_shows_the_theft_tags_first_and_counts_the_rest(w):
    a = context(w, "r1")
    assert len(a["tag_notes"]) == 5
    # in the order of the table's list for possible_theft, whatever their age
    assert [n["tag"] for n in a["tag_notes"]] == [
        "theft-suspect-history", "sudden-drop-this-week", "recent-night-shift", "night-heavy",
        "large-arrears"]
    assert a["tag_notes_more"] == len(OLD) + len(THEFT) + len(NEW) - 5
    assert a["customer_path"] == "/customer/C3"


def test_an_over_capacity_alert_shows_other_tags(w):
    a = context(w, "r2")
    shown = [n["tag"] for n in a["tag_notes"]]
    assert shown[0] == "near-contracted-capacity"
    assert "theft-suspect-history" not in shown


def test_a_chinese_message_shows_chinese_reasons_only(w):
    a = context(w, "r1")
    body = render(w, "zh", a)
    for n in a["tag_notes"]:
        assert n["reasons"]["zh"] in body
    assert "tagged " not in body and "why in English" not in body
    assert f"另有 {a['tag_notes_more']} 个标签，见工作台客户页 /customer/C3" in body
    en = render(w, "en", a)
    assert "tagged theft-suspect-history: why in English" in en and "中文依据" not in en
    assert f"... and {a['tag_notes_more']} more in the workspace (/customer/C3)" in en


def test_a_customer_with_few_tags_gets_no_more_line(w):
    store = TagStore(tags_db_path(w.settings.alerts))
    store.apply(date(2026, 5, 1), {"C3": [hit("night-heavy"), hit("residential-customer")]})
    store.close()
    a = context(w, "r1")
    assert [n["tag"] for n in a["tag_notes"]] == ["night-heavy", "residential-customer"]
    assert a["tag_notes_more"] == 0
    assert "另有" not in render(w, "zh", a) and "more in the workspace" not in render(w, "en", a)


NOTES = [{"tag": t, "dimension": CAT.by_id[t].dimension, "days": i}
         for i, t in enumerate(["residential-customer", "night-heavy", "in-arrears",
                                "pv-candidate", "evening-heavy", "tou-tariff", "ev-owner"])]


@pytest.mark.parametrize(("alert_type", "limit", "shown"), [
    # listed tags in the table's order, then the listed dimensions, then the rest by age
    ("possible_theft", 3, ["night-heavy", "in-arrears", "evening-heavy"]),
    # a type the table does not list: the default dimensions (usage, needs, value, basic)
    ("outage", 4, ["night-heavy", "evening-heavy", "pv-candidate", "in-arrears"]),
])
def test_selection_is_by_the_table(alert_type, limit, shown):
    rel = Relevance.from_data({"limit": limit, "alerts": {"possible_theft": {
        "tags": ["night-*", "in-arrears"], "dimensions": ["usage"]}}}, "t", CAT.by_id)
    got, more = rel.select(alert_type, NOTES)
    assert [n["tag"] for n in got] == shown and more == len(NOTES) - limit


@pytest.mark.parametrize(("data", "message"), [
    ({"alerts": {"possible_theif": {"tags": ["night-heavy"]}}},
     "t: alerts.possible_theif: unknown alert type"),
    ({"alerts": {"outage": {"tags": ["nigth-*"]}}},
     "t: alerts.outage: tag 'nigth-\\*' matches no tag of the catalogue"),
    ({"alerts": {"outage": {"dimensions": ["wealth"]}}}, "t: alerts.outage.dimensions.0: "),
    ({"limit": 0}, "t: limit: "),
])
def test_a_bad_table_is_refused_with_one_line(data, message):
    with pytest.raises(CatalogueError, match=message):
        Relevance.from_data(data, "t", CAT.by_id)


def test_the_shipped_table_names_catalogue_tags_and_a_missing_one_means_the_default(tmp_path):
    shipped = Relevance.load(CATALOGUE / "relevance.yaml", CAT.by_id)
    assert shipped.limit == 5 and "possible_theft" in shipped.alerts
    assert relevance_for(tmp_path).alerts == {}
    assert relevance_for(tmp_path).limit == 5
