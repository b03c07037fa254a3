"""The ``gridwatch alerts`` and ``gridwatch acl`` commands over a real state database."""

from __future__ import annotations

from pathlib import Path

import yaml
from _alerts_helpers import REGISTRY, REPO
from typer.testing import CliRunner

import gridwatch.alerts as alerts_pkg
from gridwatch.cli import app


def _config(tmp_path: Path) -> Path:
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    cfg = {"alerts": {"registry": str(tmp_path / "registry.yaml"),
                      "routes": str(REPO / "config" / "routes.yaml"),
                      "templates": str(REPO / "config" / "templates"),
                      "state_db": str(tmp_path / "alerts.sqlite"),
                      "jsonl_out": str(tmp_path / "alerts.jsonl")}}
    path = tmp_path / "gridwatch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_public_names() -> None:
    assert sorted(alerts_pkg.__all__) == alerts_pkg.__all__
    for name in alerts_pkg.__all__:
        assert getattr(alerts_pkg, name).__doc__, f"{name} has no docstring"


def test_route_test_list_ack_show_silence_resolve(tmp_path: Path) -> None:
    from _alerts_helpers import event

    from gridwatch import load_settings
    from gridwatch.alerts import build_router

    config = _config(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["alerts", "route-test", "--meter", "m1", "--type",
                              "over_capacity_risk", "-c", str(config)])
    assert res.exit_code == 0, res.output
    assert "customer:C1" in res.output and "manager:M1" in res.output
    assert "escalates to manager:M2" in res.output

    router = build_router(load_settings(config), notifiers={})
    router.submit(event("m1"))
    router.close()
    res = runner.invoke(app, ["alerts", "list", "--tsv", "-c", str(config)])
    assert res.output.startswith("m1/abnormal_consumption\tfiring\twarning\tA\tC1\t")
    res = runner.invoke(app, ["alerts", "ack", "m1/abnormal_consumption", "--by", "alice",
                              "-c", str(config)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["alerts", "ack", "nope/outage", "--by", "alice", "-c", str(config)])
    assert res.exit_code == 1 and "no open alert" in res.output
    res = runner.invoke(app, ["alerts", "silence", "--by", "bob", "-m", "grid_cell=A",
                              "--for", "2h", "-c", str(config)])
    assert res.exit_code == 0 and "silence" in res.output
    res = runner.invoke(app, ["alerts", "silence", "--by", "bob", "-m", "colour=red",
                              "-c", str(config)])
    assert res.exit_code == 2 and "colour" in res.output
    res = runner.invoke(app, ["alerts", "resolve", "m1/abnormal_consumption", "--by", "alice",
                              "--reason", "site visited", "-c", str(config)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["alerts", "show", "m1/abnormal_consumption", "-c", str(config)],
                        env={"COLUMNS": "200"})
    for action in ("firing", "routed", "acknowledged", "resolved", "alice"):
        assert action in res.output


def test_broken_registry_exits_2_with_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "registry.yaml").write_text("customers: [{id: X1, grid_cell: nowhere}]\n")
    res = CliRunner().invoke(app, ["alerts", "list", "-c", str(config)])
    assert res.exit_code == 2
    assert "grid_cell 'nowhere' is not in cells" in res.output


def test_acl_command_writes_files(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = tmp_path / "mq"
    res = CliRunner().invoke(app, ["acl", "--out", str(out), "-c", str(config)])
    assert res.exit_code == 0, res.output
    acl = (out / "acl").read_text()
    assert "user C1\ntopic read gridwatch/customers/C1/notices" in acl
    assert "user M1\ntopic read gridwatch/managers/M1/alerts" in acl
    first = (out / "credentials.csv").read_text()
    CliRunner().invoke(app, ["acl", "--out", str(out), "-c", str(config)])
    assert (out / "credentials.csv").read_text() == first  # passwords are stable


def test_show_and_list_give_the_summary_in_the_readers_language(tmp_path: Path) -> None:
    from _alerts_helpers import event

    from gridwatch import load_settings
    from gridwatch._i18n_terms import summary_text
    from gridwatch.alerts import build_router

    config = _config(tmp_path)
    ev = event("m1", evidence={"observed_kw": 300.0, "expected_kw": 100.0})
    router = build_router(load_settings(config), notifiers={})
    router.submit(ev)
    router.close()
    zh = summary_text("zh", ev.type, "firing", ev.evidence, ev.summary)
    assert zh != ev.summary  # the type has a Chinese phrase
    runner = CliRunner()
    res = runner.invoke(app, ["alerts", "show", "m1/abnormal_consumption", "--lang", "zh",
                              "-c", str(config)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert zh in res.output and ev.summary not in res.output
    res = runner.invoke(app, ["alerts", "list", "--tsv", "--lang", "en", "-c", str(config)])
    assert res.output.rstrip("\n").split("\t")[-1] == ev.summary
    res = runner.invoke(app, ["alerts", "list", "--tsv", "--lang", "zh", "-c", str(config)])
    assert res.output.rstrip("\n").split("\t")[-1] == zh
    res = runner.invoke(app, ["alerts", "list", "--lang", "fr", "-c", str(config)])
    assert res.exit_code == 2 and "zh or en" in res.output
