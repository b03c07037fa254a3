"""The ``simulate`` command: every flag it ever had, its option groups, and the helpers it is
made of (the fleet plan with the clock passed in)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer.main
import yaml

from gridwatch.cli import app
from gridwatch.simulators._cli import CommandError, fleet_plan

#: The options of ``gridwatch simulate`` (Makefile, demo, tests and docs use them).
FLAGS = {
    "--fleet", "-f", "--seed", "--speed", "--target", "-t", "--out", "-o", "--labels",
    "--registry", "--batch-size", "--qos", "--rate", "--host", "--port", "--start",
    "--duration", "--replay", "--columns", "--inject", "--inject-warmup", "--inject-within",
    "--nab-windows", "--config", "-c",
}


def _simulate_command() -> typer.main.TyperCommand:
    group = typer.main.get_command(app)
    return group.commands["simulate"]  # type: ignore[attr-defined,no-any-return]


def test_every_flag_is_kept_and_grouped() -> None:
    params = [p for p in _simulate_command().params if p.name != "help"]
    assert {o for p in params for o in p.opts} == FLAGS
    panels = {p.name: getattr(p, "rich_help_panel", None) for p in params}
    assert set(panels.values()) == {"Fleet", "Replay recorded data", "Fault injection (replay)",
                                    "Output", "MQTT"}
    assert panels["inject_within"] == "Fault injection (replay)" and panels["port"] == "MQTT"


def _fleet_file(tmp_path: Path, base: dict) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(base | {"duration": "6h"}))
    return path


def test_fleet_plan_writes_labels_and_judges_the_pace_by_the_clock_given(
        tmp_path: Path, base_fleet: dict) -> None:
    fleet = _fleet_file(tmp_path, base_fleet)
    before = datetime(2024, 3, 1, tzinfo=UTC)  # three days before the fleet's start
    after = datetime(2030, 1, 1, tzinfo=UTC)
    late = fleet_plan(fleet, labels=tmp_path / "l.jsonl", pace=1.0, now=lambda: before)
    assert late.ahead_of_clock
    assert late.labels_path == tmp_path / "l.jsonl" and late.labels_path.exists()
    assert late.total == 60 * 24 and late.title == "test"  # 60 meters, 6 h of 15 minutes
    assert not fleet_plan(fleet, labels=tmp_path / "l.jsonl", pace=1.0,
                          now=lambda: after).ahead_of_clock
    assert not fleet_plan(fleet, labels=tmp_path / "l.jsonl", pace=None,
                          now=lambda: before).ahead_of_clock  # as fast as possible


def test_fleet_plan_names_a_bad_start(tmp_path: Path, base_fleet: dict) -> None:
    with pytest.raises(CommandError, match="--start 'yesterday'") as info:
        fleet_plan(_fleet_file(tmp_path, base_fleet), start="yesterday",
                   labels=tmp_path / "l.jsonl")
    assert info.value.code == 2


def test_start_now_is_the_clock_given_rounded_to_the_interval(tmp_path: Path,
                                                              base_fleet: dict) -> None:
    at = datetime(2024, 3, 4, 10, 37, 12, tzinfo=UTC)
    plan = fleet_plan(_fleet_file(tmp_path, base_fleet), start="now",
                      labels=tmp_path / "l.jsonl", now=lambda: at)
    period = dict(plan.summary)["period"]
    assert period.startswith("2024-03-04T10:30:00Z to 2024-03-04T16:30:00Z"), period
