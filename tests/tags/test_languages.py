"""Reasons in the reader's language: every catalogue tag has a reason in Chinese and English,
the engine writes both, the store keeps both (and a store of the earlier layout gains the
Chinese column), and a reader asks for its language."""

from __future__ import annotations

import re
import sqlite3
from datetime import date, timedelta

import numpy as np
import pytest
from _tags_helpers import CATALOGUE, TARIFF, profile

from gridwatch.tags._catalogue import Catalogue, CatalogueError, TagReason
from gridwatch.tags._engine import Attributes, TagEngine, TagHit, format_value
from gridwatch.tags._features import FeatureTable
from gridwatch.tags._notes import TagNotes
from gridwatch.tags._store import TagStore
from gridwatch.tags._tariff import TouSchedule

#: Latin words a Chinese reason may hold: units and the utility's own label.
UNITS = {"kWh", "kVA", "kW", "V", "kV", "kWp", "m", "VIP"}
_SLOT = re.compile(r"\{[^{}]+\}")


def latin_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+", text)) - UNITS


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return Catalogue.load(CATALOGUE)


def test_every_catalogue_tag_has_a_reason_in_both_languages(cat):
    for t in cat:
        assert isinstance(t.spec.reason, TagReason), f"{t.id}: a reason per language"
        zh, _ = t.reason_template("zh")
        en, _ = t.reason_template("en")
        assert zh != en, t.id
        assert re.search(r"[\u4e00-\u9fff]", zh), f"{t.id}: the Chinese reason is Chinese"
        # outside its slots, a Chinese reason has no English word
        assert latin_words(_SLOT.sub("", zh)) == set(), (t.id, zh)
        assert (t.name("zh"), t.name("en"), t.name("fr")) == \
            (t.spec.name.zh, t.spec.name.en, t.id)


def test_one_text_serves_every_language_and_a_bad_slot_names_the_language():
    base = {"id": "t", "name": {"zh": "标签", "en": "tag"}, "dimension": "usage",
            "description": "a test tag", "when": "night_share >= 10%"}
    one = Catalogue.from_data([("t.yaml", {"tags": [{**base, "reason": "{night_share:%}"}]})])
    tag = one.by_id["t"]
    assert tag.reason_template("zh") == tag.reason_template("en")
    with pytest.raises(CatalogueError, match=r"t.yaml: tag t: reason.zh: .*unknown name"):
        Catalogue.from_data([("t.yaml", {"tags": [{**base, "reason": {
            "en": "{night_share:%}", "zh": "夜间 {nite_share:%}"}}]})])
    with pytest.raises(CatalogueError, match=r"t.yaml: tags\[0\] \(t\): reason: .*zh and en "
                       r"\(missing: zh\)"):
        Catalogue.from_data([("t.yaml", {"tags": [{**base, "reason": {"en": "x"}}]})])


def _population() -> tuple[np.ndarray, Attributes, date, Catalogue]:
    cat = Catalogue.load(CATALOGUE)
    t = FeatureTable(TouSchedule.load(TARIFF))
    start = date(2024, 1, 1)
    shapes = [[0.2] * 24, [2.0] * 6 + [0.3] * 18, [0.2] * 8 + [3.0] * 10 + [0.2] * 6,
              [0.1] * 18 + [2.5] * 5 + [0.1]]
    for i in range(120):
        d = start + timedelta(days=i)
        t.observe([profile(f"c{k}", d, [v * (1 + 0.3 * ((i + k) % 4)) for v in s])
                   for k, s in enumerate(shapes)])
    today = start + timedelta(days=119)
    recs = [{"customer_class": c, "contracted_kva": 40.0, "industry": "hotel",
             "programs": ("app",), "arrears": 120.0, "tariff": "tou"} for c in
            ("residential", "commercial", "industrial", "agricultural")]
    return t.subset(["c0", "c1", "c2", "c3"]), Attributes(recs, cat.names.kinds), today, cat


def test_every_reason_rendered_in_chinese_has_no_english_word():
    """Every tag's reason, filled in for four customers of each class (whether or not they
    carry the tag, so every slot is rendered, known or unknown)."""
    state, attrs, today, cat = _population()
    engine = TagEngine(cat)
    env = engine.env(state, attrs, today)
    engine.evaluate(state, attrs, today, env)
    rows = np.arange(4)
    for tag in cat:
        for text in engine.reasons(tag, env, rows, "zh"):
            assert latin_words(text) == set(), (tag.id, text)
        assert all(re.search(r"[a-z]{3}", s) for s in engine.reasons(tag, env, rows, "en"))


def test_the_engine_writes_both_reasons_with_the_tag_named_in_each_language():
    state, attrs, today, cat = _population()
    per = TagEngine(cat).tag_customers(state, attrs, today)
    hits = [h for hs in per for h in hs]
    assert len(hits) > 20
    for h in hits:
        name = cat.by_id[h.tag].spec.name
        assert h.reason.startswith(f"tagged {h.tag}: ")
        assert h.reason_zh.startswith(f"{name.zh}：")
        assert h.text("zh") == h.reason_zh and h.text("en") == h.text("fr") == h.reason
        assert latin_words(h.reason_zh.split("：", 1)[1]) == set(), h.reason_zh


def test_format_value_says_unknown_in_the_readers_language():
    assert format_value(None, "", "", "zh") == "未知"
    assert format_value(float("nan"), "%", "share", "zh") == "未知"
    assert format_value(None) == "unknown"
    assert format_value(0.412, "%", "share", "zh") == "41 %"


def test_the_store_keeps_both_reasons_and_the_reader_picks_its_language(tmp_path):
    db = tmp_path / "tags.sqlite"
    store = TagStore(db)
    night = TagHit("night-heavy", "tagged night-heavy: 48 % at night", "usage",
                   "夜间用电为主：夜间用电占 48 %")
    store.apply(date(2024, 5, 1), {"C": [night]})
    # the reason changes while the tag stays: both languages follow
    later = TagHit("night-heavy", "tagged night-heavy: 52 % at night", "usage",
                   "夜间用电为主：夜间用电占 52 %")
    store.apply(date(2024, 5, 2), {"C": [later]})
    store.close()
    notes = TagNotes(db).current("C", date(2024, 5, 3))
    assert [(n.text("zh"), n.text("en"), n.days) for n in notes] == [
        ("夜间用电为主：夜间用电占 52 %", "tagged night-heavy: 52 % at night", 2)]
    d = TagNotes(db).for_message("C", date(2024, 5, 3))[0]
    assert d["reasons"] == {"zh": "夜间用电为主：夜间用电占 52 %",
                            "en": "tagged night-heavy: 52 % at night"}
    assert d["reason"] == d["reasons"]["en"]


def test_a_store_of_the_earlier_layout_gains_the_chinese_column(tmp_path):
    db = tmp_path / "tags.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE current (customer_id TEXT NOT NULL, tag TEXT NOT NULL, since TEXT NOT "
        "NULL, reason TEXT NOT NULL, dimension TEXT NOT NULL, PRIMARY KEY (customer_id, tag));"
        "INSERT INTO current VALUES ('C', 'night-heavy', '2024-05-01', 'tagged night-heavy: "
        "old', 'usage');")
    con.close()
    # read before the engine opened it: the English reason serves every language
    old = TagNotes(db).current("C", date(2024, 5, 2))
    assert [n.text("zh") for n in old] == ["tagged night-heavy: old"]
    TagStore(db).close()
    assert [n.text("zh") for n in TagNotes(db).current("C", date(2024, 5, 2))] == \
        ["tagged night-heavy: old"]
    store = TagStore(db)
    store.apply(date(2024, 5, 2), {"C": [TagHit("night-heavy", "tagged night-heavy: new",
                                               "usage", "夜间用电为主：新")]})
    store.close()
    assert [n.text("zh") for n in TagNotes(db).current("C")] == ["夜间用电为主：新"]
