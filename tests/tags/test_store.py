"""Imports with one-line errors, billing figures, and the tag history."""

from __future__ import annotations

from datetime import date

import pytest
from _tags_helpers import CATALOGUE
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.alerts._registry import AttributeSpec, Registry, RegistryError
from gridwatch.tags._catalogue import load_schema
from gridwatch.tags._engine import TagHit
from gridwatch.tags._imports import import_csv
from gridwatch.tags._store import TagStore

SCHEMA = load_schema(CATALOGUE / "attributes.yaml")


@pytest.fixture
def store(tmp_path):
    s = TagStore(tmp_path / "tags.sqlite")
    yield s
    s.close()


def _csv(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_customers_import_validates_each_row(tmp_path, store):
    p = _csv(tmp_path, "customers.csv",
             "customer_id,industry,voltage_kv,ev_owner\n"
             "C1,steel,10,no\n"
             "C2,stee1,10,no\n"
             "C3,hotel,ten,yes\n"
             "C4,,0.4,maybe\n")
    res = import_csv("customers", p, store, SCHEMA)
    assert res.imported == 0 and res.bad == 3
    assert res.errors == [
        f"{p}: row 3: industry: 'stee1' is not one of " + ", ".join(SCHEMA["industry"].values),
        f"{p}: row 4: voltage_kv: 'ten' is not a number",
        f"{p}: row 5: ev_owner: 'maybe' is not yes/no",
    ]
    assert store.attributes() == {}
    assert store.counters() == {"import_customers_rejected_files": 1}
    res = import_csv("customers", p, store, SCHEMA, skip_bad=True)
    assert res.imported == 1
    assert store.attributes() == {"C1": {"industry": "steel", "voltage_kv": 10.0,
                                         "ev_owner": False}}
    assert store.counters()["import_customers_bad_rows"] == 3


def test_unknown_columns_and_customers_are_refused(tmp_path, store):
    p = _csv(tmp_path, "c.csv", "customer_id,shoe_size\nC1,42\n")
    res = import_csv("customers", p, store, SCHEMA)
    assert len(res.errors) == 1 and "row 1: column 'shoe_size' is not an attribute" in \
        res.errors[0]
    p = _csv(tmp_path, "crm.csv", "customer_id,programs,needs\nC9,app|e_billing,pv\n"
             "bad id!,app,\n")
    res = import_csv("crm", p, store, SCHEMA, known_customers={"C1"})
    assert res.errors == [f"{p}: row 2: customer_id: 'C9' is not in the registry",
                          f"{p}: row 3: customer_id: 'bad id!' is not a valid id"]


def test_crm_sets_and_billing_figures(tmp_path, store):
    p = _csv(tmp_path, "crm.csv", "customer_id,programs,needs,complaints_12m\n"
             "C1,app|e_billing,storage,2\n")
    assert import_csv("crm", p, store, SCHEMA).imported == 1
    assert store.attributes(["C1"])["C1"]["programs"] == ("app", "e_billing")
    b = _csv(tmp_path, "billing.csv",
             "customer_id,period,amount_due,amount_paid,due_date,paid_date\n"
             "C1,2024-01,100,100,2024-02-10,2024-02-09\n"
             "C1,2024-02,100,100,2024-03-10,2024-03-25\n"
             "C1,2024-03,100,40,2024-04-10,2024-04-20\n"
             "C1,2024-04,100,0,2024-05-10,\n"
             "C1,2022-01,50,0,2022-02-10,\n")
    res = import_csv("billing", b, store, SCHEMA)
    assert res.errors == [] and res.imported == 5
    f = store.billing_features(date(2024, 5, 20))["C1"]
    assert f["bills_12m"] == 4
    assert f["late_payments_12m"] == 3  # paid late, paid late and short, unpaid
    assert f["on_time_share"] == pytest.approx(0.25)
    assert f["arrears"] == pytest.approx(60 + 100 + 50)
    assert f["unpaid_bills"] == 3
    assert f["avg_days_late"] == pytest.approx((15 + 10 + 10) / 3)
    bad = _csv(tmp_path, "bad.csv",
               "customer_id,period,amount_due,amount_paid,due_date,paid_date\n"
               "C1,2024-13,100,100,2024-02-10,2024-02-09\n"
               "C1,2024-01,-5,0,2024-02-10,\n"
               "C1,2024-01,5,5,2024-02-10,\n")
    res = import_csv("billing", bad, store, SCHEMA)
    assert [e.split(": ", 1)[1] for e in res.errors] == [
        "row 2: period: '2024-13' is not a month like 2024-05",
        "row 3: amount_due: '-5' is negative",
        "row 4: paid_date: empty although amount_paid is not zero"]


def test_history_keeps_when_tags_appeared_and_left(store):
    def hit(tag: str) -> TagHit:
        return TagHit(tag, f"tagged {tag}: because", "usage")

    assert store.apply(date(2024, 5, 1), {"C1": [hit("evening-peak")]}) == (1, 0)
    assert store.apply(date(2024, 5, 2), {"C1": [hit("evening-peak")]}) == (0, 0)
    assert store.apply(date(2024, 5, 10), {"C1": [hit("night-heavy")]}) == (1, 1)
    assert store.apply(date(2024, 5, 20), {"C1": [hit("night-heavy"), hit("evening-peak")]}) \
        == (1, 0)
    h = store.history("C1")
    assert [(e.tag, e.appeared, e.left) for e in h] == [
        ("evening-peak", date(2024, 5, 1), date(2024, 5, 10)),
        ("night-heavy", date(2024, 5, 10), None),
        ("evening-peak", date(2024, 5, 20), None)]
    assert h[1].describe(date(2024, 5, 24)) == "became night-heavy 14 days ago (2024-05-10)"
    assert h[0].describe(date(2024, 5, 24)) == (
        "was evening-peak from 2024-05-01 to 2024-05-10")
    assert [r["tag"] for r in store.current("C1")] == ["evening-peak", "night-heavy"]
    assert store.tag_counts() == {"evening-peak": 1, "night-heavy": 1}


@given(st.lists(st.sets(st.sampled_from(["a", "b", "c", "d"])), min_size=1, max_size=12))
@settings(max_examples=80, deadline=None)
def test_history_replays_to_the_current_tags(days):
    """Whatever the sequence of daily tag sets, the open history entries are today's tags and
    every stretch is closed exactly when the tag went away."""
    s = TagStore(":memory:")
    for i, tags in enumerate(days):
        s.apply(date(2024, 1, 1 + i), {"C": [TagHit(t, t, "usage") for t in sorted(tags)]})
    hist = s.history("C")
    assert {e.tag for e in hist if e.left is None} == days[-1]
    assert {r["tag"] for r in s.current("C")} == days[-1]
    for e in hist:
        start = (e.appeared - date(2024, 1, 1)).days
        end = (e.left - date(2024, 1, 1)).days if e.left else len(days)
        assert all(e.tag in days[k] for k in range(start, end))
        if e.left:
            assert e.tag not in days[end]
    s.close()


def test_registry_accepts_declared_attributes_only():
    base = {"managers": [{"id": "M1"}], "cells": [{"id": "A", "primary": "M1"}]}
    schema = {"industry": {"type": "text", "values": ["steel", "hotel"]},
              "critical": {"type": "bool"}, "rooftop_m2": {"type": "number", "min": 0}}
    reg = Registry.model_validate({**base, "attribute_schema": schema, "customers": [
        {"id": "C1", "grid_cell": "A", "attributes": {"industry": "steel", "critical": "yes",
                                                      "rooftop_m2": "120"}}]})
    assert reg.customer("C1").attributes == {"industry": "steel", "critical": True,
                                             "rooftop_m2": 120.0}
    for attrs, msg in (({"colour": "red"}, "attribute 'colour' is not declared"),
                       ({"industry": "bakery"}, "attribute industry: 'bakery' is not one of"),
                       ({"rooftop_m2": -1}, "attribute rooftop_m2: -1 is below the minimum")):
        with pytest.raises(ValueError, match=msg):
            Registry.model_validate({**base, "attribute_schema": schema, "customers": [
                {"id": "C1", "grid_cell": "A", "attributes": attrs}]})


def test_registry_file_error_is_one_line(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("managers: [{id: M1}]\ncells: [{id: A, primary: M1}]\n"
                 "customers: [{id: C1, grid_cell: A, attributes: {x: 1}}]\n")
    with pytest.raises(RegistryError) as info:
        Registry.load(p)
    assert "\n" not in str(info.value) and "attribute 'x' is not declared" in str(info.value)


def test_attribute_spec_set_values():
    spec = AttributeSpec(type="set", values=("a", "b"))
    assert spec.check("b|a;a") == ("a", "b")
    with pytest.raises(ValueError, match="'c' is not one of a, b"):
        spec.check("a|c")


cells = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", "steel", "10", "-1", "yes", "no", "1e400", "nan", "app|pv", "2024-02-30", "0.4"]))


@given(st.lists(st.tuples(st.sampled_from(["C1", "C2", "bad id", ""]), cells, cells, cells),
                max_size=12),
       st.booleans())
@settings(max_examples=120, deadline=None)
def test_any_csv_is_imported_or_refused_row_by_row(tmp_path_factory, rows, skip_bad):
    """Whatever the cells, the import never raises: each row is imported or reported once, with
    its row number, and nothing of a refused file is stored."""
    import csv

    folder = tmp_path_factory.mktemp("csv")
    path = folder / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "industry", "voltage_kv", "ev_owner"])
        w.writerows(rows)
    s = TagStore(":memory:")
    res = import_csv("customers", path, s, SCHEMA, skip_bad=skip_bad)
    assert res.rows == len(rows)
    reported = {int(e.split(": row ")[1].split(":")[0]) for e in res.errors}
    assert len(reported) == res.bad and reported <= set(range(2, len(rows) + 2))
    if res.bad and not skip_bad:
        assert res.imported == 0 and s.attributes() == {}
    else:
        assert res.imported == len(rows) - res.bad
        assert set(s.attributes()) <= {"C1", "C2"}
    s.close()
