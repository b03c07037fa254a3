"""Registry loading and validation: YAML, CSV, cross-references, errors naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _alerts_helpers import REGISTRY, REPO

from gridwatch import CustomerClass, MeterMeta
from gridwatch.alerts import Registry, RegistryError


def test_yaml_registry_lookups(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(REGISTRY, allow_unicode=True))
    reg = Registry.load(path)
    assert reg.customer_for_meter("m2").id == "C1"
    assert reg.customer_for_meter("nope") is None
    meta = reg.meter_meta("m2")
    assert meta == MeterMeta(meter_id="m2", customer_id="C1",
                             customer_class=CustomerClass.INDUSTRIAL, grid_cell="A",
                             contracted_kva=500, phases=3)
    assert reg.meter_meta("r7").customer_class == CustomerClass.RESIDENTIAL
    assert reg.meter_meta("unknown") is None
    assert reg.cell("A").backup == "M2"
    assert len(reg.meter_ids()) == 43


def test_shipped_registry_is_valid() -> None:
    reg = Registry.load(REPO / "config" / "registry.yaml")
    assert reg.meter_meta("MTR-0002").has_export is True


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["customers"][1].update(grid_cell="Z"),
     "customers[1] (id 'C2'): grid_cell 'Z' is not in cells"),
    (lambda d: d["cells"][0].update(primary="M9"),
     "cells[0] (id 'A'): primary manager 'M9' is not in managers"),
    (lambda d: d["customers"][1]["meters"].append("m1"),
     "customers[1] (id 'C2'): meter 'm1' also belongs to 'C1'"),
    (lambda d: d["customers"][0].update(**{"class": "spaceship"}),
     "customers[0] (id 'C1').class"),
    (lambda d: d["customers"][2]["meters"].append("bad id!"),
     "customers[2] (id 'C3').meters[40].id"),
    (lambda d: d["managers"][0].update(channels=["email"]),
     "managers[0] (id 'M1'): channel email needs 'email'"),
    (lambda d: d["managers"].append({"id": "M1"}), "managers[3]: duplicate id 'M1'"),
    (lambda d: d["customers"][0].update(colour="red"), "customers[0] (id 'C1').colour: unknown"),
])
def test_errors_name_the_bad_entry(tmp_path: Path, mutate, expected: str) -> None:
    import copy

    data = copy.deepcopy(REGISTRY)
    mutate(data)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RegistryError) as info:
        Registry.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_csv_registry(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text(
        "customer_id,name,class,contracted_kva,grid_cell,meter_id,phases,has_export,notices\n"
        "C1,Acme,industrial,400,A,m1,3,no,yes\n"
        "C1,Acme,industrial,400,A,m2,3,yes,yes\n"
        "C2,Home,residential,8,A,h1,1,no,no\n")
    (tmp_path / "cells.csv").write_text("id,name,primary,backup\nA,Cell A,M1,M2\n")
    (tmp_path / "managers.csv").write_text("id,name,channels\nM1,Alice,mqtt\nM2,Bob,mqtt\n")
    for path in (tmp_path, tmp_path / "customers.csv"):
        reg = Registry.load(path)
        assert reg.meter_meta("m2").has_export
        assert reg.meter_meta("m2").contracted_kva == 400
        assert reg.customer("C1").notices and not reg.customer("C2").notices
        assert reg.cell("A").primary == "M1"


def test_csv_error_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text("customer_id,grid_cell,meter_id\n,A,m1\n")
    with pytest.raises(RegistryError, match="line 2: customer_id is empty"):
        Registry.load(tmp_path)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        Registry.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("customers: [\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        Registry.load(bad)


def test_json_registry_and_cached_meta(tmp_path: Path) -> None:
    import json

    path = tmp_path / "registry.json"
    path.write_text(json.dumps(REGISTRY))
    reg = Registry.load(path)
    assert reg.meter_meta("m2") is reg.meter_meta("m2")
    assert reg.meter_meta("m2").phases == 3
    path.write_text("{")
    with pytest.raises(RegistryError, match="line 1: not valid JSON"):
        Registry.load(path)
