"""``gridwatch tags ...`` and ``gridwatch import ...`` from the command line, on a small
simulated fleet run through the per-meter models."""

from __future__ import annotations

import re

import pytest
import yaml
from _tags_helpers import REPO
from typer.testing import CliRunner

from gridwatch.cli import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args), catch_exceptions=False)
    return res.exit_code, res.output + (res.stderr if res.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    fleet = {
        "name": "tiny", "seed": 3, "start": "2024-04-08T00:00:00+08:00", "duration": "5d",
        "interval_min": 60, "country": "CN", "timezone": "Asia/Shanghai", "latitude": 23.1,
        "regions": [{"name": "tianhe", "cells": 2}],
        "customers": {"residential": {"count": 8}, "commercial": {"count": 3},
                      "industrial": {"count": 1}, "agricultural": {"count": 2}},
        "anomalies": {"warmup": "3d", "rate_per_meter_day": 0.2},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(fleet))
    db, reg = tmp / "tags.sqlite", tmp / "registry.yaml"
    code, text = _run("tags", "profile", "--fleet", str(path), "--db", str(db),
                      "--registry-out", str(reg))
    assert code == 0, text
    return db, reg, text


def test_check_and_list():
    code, text = _run("tags", "check")
    assert code == 0 and re.search(r"\d{3} tags valid", text)
    code, text = _run("tags", "list", "--dimension", "needs", "--class", "agricultural",
                      "--tsv")
    lines = [ln.split("\t") for ln in text.strip().splitlines()]
    assert code == 0 and len(lines) >= 10
    assert all(ln[1] == "needs" and (ln[3] == "all" or "agricultural" in ln[3])
               for ln in lines)


def test_check_names_the_bad_tag(tmp_path):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"dimension": "usage", "tags": [{
        "id": "my-tag", "name": {"zh": "我的", "en": "mine"}, "description": "a utility tag",
        "when": "avg(nite_share, 30d) > 0.3"}]}))
    code, text = _run("tags", "check", "--catalogue", str(tmp_path))
    assert code == 2
    assert "tag my-tag: when: avg(): 'nite_share' is not a window feature" in \
        " ".join(text.split())


def test_profile_reports_tags_with_reasons(fleet_run):
    _, _, text = fleet_run
    assert "14 customers" in text
    m = re.search(r"tags per customer: median (\d+(?:\.\d+)?)", text)
    assert m and float(m.group(1)) >= 5
    assert "every tag with a reason: True" in " ".join(text.split())


def test_explain_stats_and_history(fleet_run):
    db, reg, _ = fleet_run
    cust = yaml.safe_load(reg.read_text())["customers"][0]
    code, text = _run("tags", "explain", "--customer", cust["id"], "--db", str(db),
                      "--registry", str(reg))
    assert code == 0, text
    assert f"{cust.get('class', 'residential')}-customer" in text and "registered as" in text
    assert "history" in text and "became" in text
    code, text = _run("tags", "explain", "--customer", cust["id"], "--db", str(db),
                      "--registry", str(reg), "--lang", "zh")
    assert code == 0, text
    assert "登记为" in text and "registered as" not in text and "新增标签" in text
    code, text = _run("tags", "stats", "--cell", cust["grid_cell"], "--db", str(db),
                      "--registry", str(reg))
    assert code == 0 and "tags per customer: median" in text
    code, text = _run("tags", "history", "--customer", cust["id"], "--db", str(db))
    assert code == 0 and "became" in text
    code, text = _run("tags", "explain", "--customer", "nobody", "--db", str(db))
    assert code == 1 and "no profile of customer 'nobody'" in text


def test_import_refuses_a_bad_file_with_row_numbers(fleet_run, tmp_path):
    db, reg, _ = fleet_run
    ids = [c["id"] for c in yaml.safe_load(reg.read_text())["customers"]]
    bad = tmp_path / "crm.csv"
    bad.write_text(f"customer_id,programs\n{ids[0]},app\n{ids[1]},telepathy\n")
    code, text = _run("import", "crm", str(bad), "--db", str(db), "--registry", str(reg))
    assert code == 1
    assert "row 3: programs: 'telepathy' is not one of" in " ".join(text.split())
    assert "nothing imported" in text
    good = tmp_path / "crm2.csv"
    good.write_text(f"customer_id,programs,labels\n{ids[0]},demand_response|app,vip\n")
    code, text = _run("import", "crm", str(good), "--db", str(db), "--registry", str(reg))
    assert code == 0 and "imported 1 crm rows" in text
    code, text = _run("tags", "explain", "--customer", ids[0], "--db", str(db),
                      "--registry", str(reg))
    assert "demand-response-participant" in text and "vip-customer" in text
    code, text = _run("import", "payroll", str(good), "--db", str(db))
    assert code == 2 and "unknown import 'payroll'" in text


def test_repo_paths_exist():
    assert (REPO / "config" / "tags" / "attributes.yaml").exists()


def _dimension_rows(text: str) -> dict[str, int]:
    """Customers with one or more tags of each dimension, from ``tags stats``."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if len(cells) == 4 and cells[0] in ("basic", "usage", "value", "needs"):
            out[cells[0]] = int(cells[1])
    return out


def test_sample_imports_bring_value_and_needs_tags(fleet_run, tmp_path):
    """The demo's way: sample files written from the registry, brought in with
    ``gridwatch import``, then the fleet tagged: all four dimensions appear, where without
    the files value and needs tags are (almost) absent."""
    from datetime import date

    from gridwatch.tags._sample import sample_rows, write_sample_imports

    db0, reg, _ = fleet_run
    customers = yaml.safe_load(reg.read_text())["customers"]
    as_of = date(2024, 4, 12)
    assert sample_rows(customers, as_of, 3) == sample_rows(customers, as_of, 3)
    assert sample_rows(customers, as_of, 3) != sample_rows(customers, as_of, 4)
    files = write_sample_imports(customers, as_of, tmp_path / "imports", seed=3)
    db = tmp_path / "tags.sqlite"
    for kind, path in files.items():
        code, text = _run("import", kind, str(path), "--db", str(db), "--registry", str(reg))
        assert code == 0, text
        assert f"imported {len(sample_rows(customers, as_of, 3)[kind])} {kind} rows" in text
    fleet = yaml.safe_load((db0.parent / "tiny.yaml").read_text())
    code, text = _run("tags", "profile", "--fleet", str(db0.parent / "tiny.yaml"),
                      "--db", str(db))
    assert code == 0, text
    code, with_files = _run("tags", "stats", "--db", str(db))
    code0, without = _run("tags", "stats", "--db", str(db0))
    assert code == code0 == 0
    got, before = _dimension_rows(with_files), _dimension_rows(without)
    n = sum(fleet["customers"][c]["count"] for c in fleet["customers"])
    assert set(got) == {"basic", "usage", "value", "needs"}
    assert got["value"] == n  # every customer has bills: on time, late or in arrears
    assert got["needs"] > before.get("needs", 0) and got["value"] > before.get("value", 0)
