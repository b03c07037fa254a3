"""The shipped catalogue and the checks a utility's own tags go through."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml
from _tags_helpers import CATALOGUE
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.alerts._registry import AttributeSpec
from gridwatch.tags._catalogue import (
    CLASSES,
    DIMENSIONS,
    Catalogue,
    CatalogueError,
    Names,
    canonical_tag,
)
from gridwatch.tags._expr import Call, Name, Str, walk


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return Catalogue.load(CATALOGUE)


def test_at_least_200_tags_over_four_dimensions_and_four_classes(cat):
    assert len(cat) >= 200
    dims = Counter(t.dimension for t in cat)
    assert set(dims) == set(DIMENSIONS) and min(dims.values()) >= 30
    for cls in CLASSES:
        assert len(cat.for_class(cls)) >= 60, cls


def test_every_tag_parses_and_names_only_known_features_and_attributes(cat):
    names = cat.names
    for tag in cat:
        for node in walk(tag.expr):
            if isinstance(node, Name) and not (
                    any(isinstance(c, Call) and c.func in ("alerts", "verdicts")
                        and c.args[0] is node for c in walk(tag.expr))):
                assert node.name in names.kinds, (tag.id, node.name)
            if isinstance(node, Call) and node.func == "tag":
                assert isinstance(node.args[0], Str) and node.args[0].value in cat.by_id
        for _, slot, _ in tag.slots:
            names.kind(slot)  # raises on an unknown name


def test_every_tag_has_names_description_and_one_spelling(cat):
    for tag in cat:
        assert tag.spec.name.zh and tag.spec.name.en and len(tag.spec.description) >= 8
        assert canonical_tag(tag.id) == tag.id


def test_tags_come_after_the_tags_they_use(cat):
    pos = {t.id: i for i, t in enumerate(cat)}
    for t in cat:
        for d in t.deps():
            assert pos[d] < pos[t.id]


@pytest.mark.parametrize("spelling", ["night_heavy", "Night Heavy", " night--heavy ",
                                      "NIGHT_HEAVY"])
def test_canonical_spelling(spelling):
    assert canonical_tag(spelling) == "night-heavy"


def _one(when: str, **extra) -> dict:
    return {"tags": [{"id": "my-tag", "name": {"zh": "我的", "en": "mine"},
                      "dimension": "usage", "description": "a tag of the utility",
                      "when": when, **extra}]}


@pytest.mark.parametrize("when, message", [
    ("avg(vally_share, 90d) > 40%", "tag my-tag: when: avg(): 'vally_share' is not a window"),
    ("vally_share > 40%", "unknown name 'vally_share' (did you mean 'valley_share'?)"),
    ("valley_share >", "tag my-tag: when: expected a value"),
    ("avg(valley_share) > 1", "takes 2 argument(s)"),
    ("avg(valley_share, 3) > 1", "must be a window like 90d"),
    ("alerts(meteor_strike, 30d) > 1", "unknown alert type 'meteor_strike'"),
    ("alerts(outage, 365d) > 1", "at most 90d"),
    ("verdicts(applauded, 30d) > 1", "unknown verdict 'applauded'"),
    ("customer_class == 'industriel'", "'industriel' is not a value of customer_class"),
    ("customer_class > 'a'", "text can only be compared"),
    ("customer_class == 3", "cannot compare text with number"),
    ("tag('no-such-tag')", "unknown tag 'no-such-tag'"),
    ("frobnicate(1)", "unknown function 'frobnicate'"),
    ("customer_class", "not text"),
    ("90d > 1", "only an argument"),
])
def test_bad_definitions_fail_with_one_line_naming_the_tag(when, message):
    with pytest.raises(CatalogueError) as info:
        Catalogue.from_data([("mine.yaml", _one(when))])
    text = str(info.value)
    assert "\n" not in text and text.startswith("mine.yaml: tag my-tag")
    assert message in text


def test_bad_reason_slot_is_refused():
    with pytest.raises(CatalogueError, match="tag my-tag: reason: unknown name 'nope'"):
        Catalogue.from_data([("mine.yaml", _one("valley_share > 0.4", reason="{nope:%}"))])


def test_duplicate_ids_unknown_fields_and_cycles():
    doc = _one("valley_share > 0.4")
    with pytest.raises(CatalogueError, match="duplicate id"):
        Catalogue.from_data([("a.yaml", doc), ("b.yaml", doc)])
    bad = _one("valley_share > 0.4", colour="red")
    with pytest.raises(CatalogueError, match=r"tags\[0\] \(my-tag\): colour: unknown field"):
        Catalogue.from_data([("a.yaml", bad)])
    cyc = {"tags": [
        {**_one("tag('b-tag')")["tags"][0], "id": "a-tag"},
        {**_one("tag('a-tag')")["tags"][0], "id": "b-tag"},
    ]}
    with pytest.raises(CatalogueError, match="refer to each other"):
        Catalogue.from_data([("c.yaml", cyc)])
    with pytest.raises(CatalogueError, match="id"):
        Catalogue.from_data([("a.yaml", {"tags": [{**doc["tags"][0], "id": "Night_Heavy"}]})])


def test_a_utility_adds_a_tag_over_its_own_attribute(tmp_path):
    (tmp_path / "attributes.yaml").write_text(yaml.safe_dump({"attributes": {
        "district_heating_zone": {"type": "bool", "source": "customers"},
        "feeder_group": {"type": "text", "source": "customers", "values": ["n1", "n2"]}}}))
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"dimension": "basic", "tags": [
        {"id": "north-heating-zone", "name": {"zh": "北区供热", "en": "north heating zone"},
         "description": "customers of the northern district heating zone",
         "when": "district_heating_zone and feeder_group == 'n1'"}]}))
    cat = Catalogue.load(tmp_path)
    assert [t.id for t in cat] == ["north-heating-zone"]
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"dimension": "basic", "tags": [
        {"id": "north-heating-zone", "name": {"zh": "北区供热", "en": "north heating zone"},
         "description": "customers of the northern district heating zone",
         "when": "feeder_group == 'n3'"}]}))
    with pytest.raises(CatalogueError, match="'n3' is not a value of feeder_group"):
        Catalogue.load(tmp_path)


def test_declared_attribute_cannot_shadow_a_built_in_name():
    with pytest.raises(CatalogueError, match="already a built-in"):
        Names({"valley_share": AttributeSpec(type="number")})


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))


@given(st.lists(st.dictionaries(
    st.sampled_from(["id", "name", "dimension", "description", "when", "classes", "reason",
                     "colour"]),
    st.one_of(scalars, st.lists(scalars, max_size=3),
              st.dictionaries(st.sampled_from(["zh", "en"]), scalars)),
    max_size=8), max_size=4))
@settings(max_examples=200, deadline=None)
def test_any_catalogue_document_loads_or_fails_with_one_line(tags):
    try:
        Catalogue.from_data([("x.yaml", {"tags": tags})])
    except CatalogueError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.yaml")
