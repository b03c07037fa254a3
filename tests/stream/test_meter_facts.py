"""The flow's per-meter facts (watch key, industrial or not), kept across batches: the same
answers as a look-up per reading, a registry reload seen at the next batch, unknown meters
looked up again until they are known (kept at once when there is no registry)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch._schemas import MeterMeta, Reading
from gridwatch.ingest._assemble import ReadingFields
from gridwatch.models import Calendar, DetectionSettings
from gridwatch.stream import Placement, ReadingBatch, Watermark
from gridwatch.stream._flow import MeterFacts, meta_lookup, watch_key
from gridwatch.stream._logic import CellLogic, no_registry
from gridwatch.stream._partition import _group

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def reading(meter: str, i: int = 0) -> Reading:
    return Reading(meter_id=meter, ts=T0 + timedelta(minutes=15 * i), kw=1.0)


def meta(meter: str, cell: str | None = "c1", klass: str = "residential",
         customer: str | None = "k") -> MeterMeta:
    return MeterMeta(meter_id=meter, grid_cell=cell, customer_class=klass,
                     customer_id=customer)


def batch(meters: list[str], key: str = "cell:c1") -> ReadingBatch:
    return ReadingBatch(key, tuple(reading(m, i) for i, m in enumerate(meters)), "p0")


def test_keys_match_watch_key_for_known_unknown_and_placed_meters():
    registry = {"a": meta("a", "north-c001"), "b": meta("b", None), "c": meta("c", "south-c2")}
    placement = Placement({0: ["north-*"], 1: ["south-*"]}, 2)
    for place in (None, placement):
        facts = MeterFacts(registry.get, place)
        for m in ("a", "b", "c", "zz", "a", "zz"):
            assert facts(reading(m)) == watch_key(m, registry.get(m), place)
    # unknown meters are not kept
    assert "zz" not in facts.known and "a" in facts.known


def test_meters_of_one_cell_share_their_kept_facts():
    """The kept facts are one tuple per watch key and flag, not one per meter (a million
    meters would otherwise hold a million copies of a few hundred cell keys)."""
    registry = {m: meta(m, "c1") for m in ("a", "b", "c")}
    registry["d"] = meta("d", "c1", "industrial")
    facts = MeterFacts(registry.get)
    for m in registry:
        facts(reading(m))
    assert facts.known["a"] is facts.known["b"] is facts.known["c"] == ("cell:c1", False)
    assert facts.known["d"] == ("cell:c1", True) and facts.known["d"] is not facts.known["a"]


def test_registry_reload_is_seen_at_the_next_check():
    registry = {"a": meta("a", "c1"), "b": meta("b", "c1")}
    facts = MeterFacts(lambda m: registry.get(m))
    assert facts(reading("a")) == "cell:c1" and facts(reading("b")) == "cell:c1"
    assert facts.industrial(batch(["a", "b"])) == []
    # a reload: new objects, "a" moves to another cell, "b" becomes an industrial customer's
    registry = {"a": meta("a", "c9"), "b": meta("b", "c1", "industrial")}
    facts.check()
    assert facts(reading("a")) == "cell:c9"
    out = facts.industrial(batch(["a", "b", "a"]))
    assert [r.meter_id for r in out] == ["b"]


def test_industrial_check_sees_a_reload_by_itself():
    registry = {"a": meta("a"), "b": meta("b")}
    facts = MeterFacts(lambda m: registry.get(m))
    assert facts.industrial(batch(["a", "b"])) == []
    registry = {"a": meta("a"), "b": meta("b", klass="industrial")}
    assert [r.meter_id for r in facts.industrial(batch(["b", "a", "b"]))] == ["b", "b"]


def test_unknown_meter_becomes_known_without_a_reload_of_the_others():
    registry: dict[str, MeterMeta] = {"a": meta("a")}
    facts = MeterFacts(registry.get)
    assert facts(reading("x")) == watch_key("x", None)
    assert facts.shards == {"x": watch_key("x", None)}  # its shard key is kept, not its facts
    assert facts.industrial(batch(["a", "x"])) == []
    registry["x"] = meta("x", "c5", "industrial")  # added, the kept "a" is still the same
    assert facts(reading("x")) == "cell:c5"
    assert [r.meter_id for r in facts.industrial(batch(["a", "x"]))] == ["x"]


def test_without_a_registry_the_facts_of_each_meter_are_kept():
    """A flow with no registry (``meta_lookup(None)``: no meter can become known) keeps each
    meter's facts as a known meter's, shared per shard; the keys are the hash shards."""
    lookup = meta_lookup(None)
    assert lookup is no_registry
    facts = MeterFacts(lookup)
    meters = ["x", "y", "x", "z"]
    assert [facts(reading(m)) for m in meters] == [watch_key(m, None) for m in meters]
    assert set(facts.known) == {"x", "y", "z"} and not facts.shards
    assert facts.known["x"] == (watch_key("x", None), False)
    assert facts.industrial(batch(meters)) == []
    other = MeterFacts(lambda m: None)  # a registry that knows none of them yet
    other(reading("x"))
    assert not other.known and other.shards == {"x": watch_key("x", None)}
    # the cells look no entry up either
    cell = CellLogic(None, DetectionSettings(), Calendar(), lookup, 900.0, 0.0)
    assert cell._meta_of is no_registry


def test_industrial_needs_a_customer():
    registry = {"a": meta("a", klass="industrial", customer=None),
                "b": meta("b", klass="industrial")}
    facts = MeterFacts(registry.get)
    assert [r.meter_id for r in facts.industrial(batch(["a", "b", "a"]))] == ["b"]
    assert facts.industrial(batch([])) == []


def naive_group(items, key_of, announced, newest):
    """The grouping as a look-up per reading, in the order of the items."""
    groups: dict[str, list[Reading]] = {}
    out = [x for x in items if not isinstance(x, Reading)]
    for x in items:
        if isinstance(x, Reading):
            groups.setdefault(key_of(x), []).append(x)
            newest = max(newest, x.ts.timestamp())
    if not groups:
        return out, newest
    fresh = tuple(k for k in groups if k not in announced)
    announced.update(fresh)
    out.extend(ReadingBatch(k, tuple(rs), "p0") for k, rs in groups.items())
    out.append(Watermark("p0", newest, fresh))
    return out, newest


METERS = [f"m{i}" for i in range(8)]
metas = st.fixed_dictionaries({}, optional={
    m: st.builds(meta, st.just(m), st.sampled_from(["c1", "c2", None]),
                 st.sampled_from(["residential", "industrial"])) for m in METERS})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(metas, st.lists(st.tuples(st.sampled_from(METERS),
                                                     st.integers(0, 50)), max_size=12)),
                min_size=1, max_size=5))
def test_grouping_with_kept_facts_is_a_lookup_per_reading(batches):
    """Batches read between registry reloads: kept facts group as fresh look-ups would, and
    split the same industrial readings."""
    registry: dict[str, MeterMeta] = {}
    facts = MeterFacts(lambda m: registry.get(m))
    announced: set[str] = set()
    announced_naive: set[str] = set()
    newest = newest_naive = -math.inf
    for table, rows in batches:
        registry = table  # a reload between batches (new objects)
        items = [reading(m, i) for m, i in rows]

        def fresh_key(r: Reading, registry: dict[str, MeterMeta] = table) -> str:
            return watch_key(r.meter_id, registry.get(r.meter_id))

        got, newest = _group(items, "p0", facts, announced, newest)
        want, newest_naive = naive_group(items, fresh_key, announced_naive, newest_naive)
        assert got == want and newest == newest_naive
        # the same readings as the journal's come (their fields: the grouping marks plain
        # batches, which have no industrial readings to look for)
        given = [{"meter_id": r.meter_id, "ts": r.ts, "kw": r.kw} for r in items]
        as_fields, _ = _group([ReadingFields(given)], "p0", facts, set(), -math.inf) \
            if items else ([], 0.0)
        assert [x for x in as_fields if isinstance(x, ReadingBatch)] == \
            [x for x in got if isinstance(x, ReadingBatch)]
        for b in [*got, *as_fields]:
            if isinstance(b, ReadingBatch):
                want_ind = [r for r in b.readings if (m := registry.get(r.meter_id))
                            and m.customer_id and m.customer_class == "industrial"]
                assert facts.industrial(b) == want_ind
                assert not (b.plain and want_ind)


def test_a_batch_of_fields_of_known_meters_none_industrial_is_plain():
    registry = {"a": meta("a"), "b": meta("b"), "i": meta("i", klass="industrial")}
    facts = MeterFacts(registry.get)

    def grouped(meters: list[str]) -> ReadingBatch:
        given = [{"meter_id": m, "ts": T0, "kw": 1.0} for m in meters]
        [b] = [x for x in _group([ReadingFields(given)], "p0", facts, set(), -math.inf)[0]
               if isinstance(x, ReadingBatch)]
        return b

    assert not grouped(["a", "b"]).plain  # (first sight: not yet known when grouped)
    plain = grouped(["a", "b", "a"])
    assert plain.plain and facts.industrial(plain) == []
    with_industrial = grouped(["a", "i"])
    assert not with_industrial.plain
    assert [r.meter_id for r in facts.industrial(with_industrial)] == ["i"]
    assert grouped(["a", "i"]).plain is False  # (known now, and industrial)
    assert not grouped(["x"]).plain and not grouped(["x"]).plain  # unknown: looked up again
    assert not batch(["a", "b"]).plain  # reading objects: no mark, looked at as before


def test_industrial_of_keeps_the_order_across_batches():
    registry = {"a": meta("a"), "i": meta("i", klass="industrial"),
                "j": meta("j", "c2", "industrial")}
    facts = MeterFacts(registry.get)
    got = facts.industrial_of([batch(["a", "i", "a"]), batch(["a"]),
                               batch(["j", "x", "j"], "cell:c2")])
    assert [(r.meter_id, r.ts) for r in got] == [("i", T0 + timedelta(minutes=15)),
                                                 ("j", T0), ("j", T0 + timedelta(minutes=30))]
    assert facts.industrial_of([]) == []


def test_without_a_registry_no_reading_is_an_industrial_customers():
    """No registry: no meter is known to be an industrial customer's, so none of a batch's
    readings goes to the load forecasts, and no meter's facts are looked up for it."""
    facts = MeterFacts(no_registry)
    assert facts.industrial(batch(["a", "i", "a"])) == []
    assert facts.industrial_of([batch(["j"], "cell:c2"), batch([])]) == []
    assert facts.known == {} and facts.shards == {}
