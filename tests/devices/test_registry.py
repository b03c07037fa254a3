"""Devices in the registry: table-driven checks of the ``devices:`` section."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from gridwatch.alerts import Registry, RegistryError
from gridwatch.devices import DeviceKind, Shift

BASE = """
managers: [{id: mgr-1}]
cells: [{id: c1, primary: mgr-1}]
customers:
  - {id: ind-1, class: industrial, grid_cell: c1, meters: [m1, m2]}
"""


def registry(devices: str, tmp_path) -> Registry:
    path = tmp_path / "registry.yaml"
    path.write_text(BASE + "devices:\n" + devices, encoding="utf-8")
    return Registry.load(path)


def test_devices_load_and_customer_devices_take_the_customers_cell(tmp_path):
    reg = registry("""
  - {id: tx-1, kind: transformer, grid_cell: c1, meters: [m1, m2], ratings: {kva: 630}}
  - {id: cmp-1, kind: compressor, customer: ind-1,
     ratings: {rated_kw: 75, rated_current_a: 135, rated_output: 12},
     shift: {start_h: 6, end_h: 22, timezone: Asia/Shanghai}}
""", tmp_path)
    tx, cmp_ = reg.device("tx-1"), reg.device("cmp-1")
    assert tx is not None and tx.kind is DeviceKind.TRANSFORMER and tx.ratings.kva == 630
    assert cmp_ is not None and cmp_.grid_cell == "c1" and cmp_.customer == "ind-1"
    assert reg.device("nope") is None


@pytest.mark.parametrize(("devices", "message"), [
    ("  - {id: tx-1, kind: transformer, ratings: {kva: 630}}\n", "needs a grid_cell"),
    ("  - {id: mot-1, kind: motor, grid_cell: c1, ratings: {rated_kw: 5, rated_current_a: 9}}\n",
     "needs a customer"),
    ("  - {id: mot-1, kind: motor, customer: ind-1, ratings: {rated_kw: 5}}\n",
     "ratings need rated_current_a"),
    ("  - {id: mot-1, kind: motor, customer: ind-9, ratings: {rated_kw: 5, rated_current_a: 9}}\n",
     "customer 'ind-9' is not in customers"),
    ("  - {id: tx-1, kind: transformer, grid_cell: c9, ratings: {kva: 630}}\n",
     "grid_cell 'c9' is not in cells"),
    ("  - {id: tx-1, kind: transformer, grid_cell: c1, meters: [m7], ratings: {kva: 630}}\n",
     "meter 'm7' is not a meter"),
    ("  - {id: tx-1, kind: transformer, grid_cell: c1, ratings: {kva: 630}}\n" * 2,
     "duplicate id 'tx-1'"),
    ("  - {id: tx-1, kind: boiler, grid_cell: c1}\n", "devices"),
    ("  - {id: f-1, kind: furnace, customer: ind-1, ratings: {rated_kw: 5},"
     " shift: {start_h: 22, end_h: 6}}\n", "not after its start"),
])
def test_bad_devices_are_named(devices, message, tmp_path):
    with pytest.raises(RegistryError, match=message):
        registry(devices, tmp_path)


def test_a_registry_without_devices_still_loads(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert Registry.load(path).device("tx-1") is None
    assert yaml.safe_load(BASE)["customers"][0]["id"] == "ind-1"


@pytest.mark.parametrize(("local", "expected"), [
    ("2024-04-03T10:00", 0.0),     # Wednesday, inside 06-22
    ("2024-04-03T22:30", 0.0),     # within the hour's tolerance after the end
    ("2024-04-03T23:30", 0.5),
    ("2024-04-03T03:00", 2.0),     # three hours before the start, less the tolerance
    ("2024-04-06T12:00", 13.0),    # Saturday: 14 h after Friday 22:00, less the tolerance
    ("2024-04-06T00:30", 1.5),     # just after Friday's shift
])
def test_hours_outside_the_shift(local, expected):
    from zoneinfo import ZoneInfo

    shift = Shift(start_h=6, end_h=22, weekends=False, timezone="Asia/Shanghai")
    ts = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
    assert shift.hours_outside(ts) == pytest.approx(expected)
