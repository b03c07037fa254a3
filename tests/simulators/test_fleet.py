"""The fleet file: loading, clear errors, the meters it describes, the registry it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridwatch import CustomerClass, MeterMeta
from gridwatch.simulators import Fleet, FleetError, write_registry

FLEETS = Path(__file__).resolve().parents[2] / "config" / "fleets"


@pytest.mark.parametrize("name, meters", [("small.yaml", None), ("utility-100k.yaml", 100_000)])
def test_shipped_fleets_load(name: str, meters: int | None) -> None:
    fleet = Fleet.load(FLEETS / name)
    assert fleet.interval_min == 15
    if meters:
        assert fleet.n_meters == meters
    else:
        assert 200 <= fleet.n_meters <= 1000
        assert fleet.duration.days in (1, 2)


@pytest.mark.parametrize("change, needle", [
    ({"interval_min": 5}, "interval_min"),
    ({"start": "2024-03-04T00:00:00"}, "needs a time zone"),
    ({"start": "2024-03-04T00:07:00Z"}, "15-minute boundary"),
    ({"customers": {"residential": {"count": -3}}}, "customers.residential.count"),
    ({"customers": {"residential": {"count": 3, "profiles": {"h9": 1}}}}, "'h9'"),
    ({"customers": {"villas": {"count": 3}}}, "villas"),
    ({"anomalies": {"mix": {"meteor": 1}}}, "'meteor'"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"duration": "soon"}, "duration"),
    ({"customers": {}}, "no customers"),
])
def test_errors_name_the_bad_value(change: dict, needle: str, base_fleet: dict) -> None:
    with pytest.raises(FleetError) as exc:
        Fleet.from_dict(base_fleet | change, source="fleets/bad.yaml")
    msg = str(exc.value)
    assert msg.startswith("fleets/bad.yaml: ")
    assert needle in msg
    assert "\n" not in msg


def test_load_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninterval_min: 7\ncustomers: {residential: 5}\n")
    with pytest.raises(FleetError, match=r"bad\.yaml: interval_min"):
        Fleet.load(bad)


def test_meters_are_deterministic_and_complete(make) -> None:
    fleet = make()
    a, b, c = fleet.meters(), fleet.meters(), fleet.meters(seed=12)
    assert a == b
    assert a != c
    assert len(a) == 30 + 12 + 4 * 2 + 10 == fleet.n_meters
    assert len({m.meter_id for m in a}) == len(a)
    classes = {m.customer_class for m in a}
    assert classes == set(CustomerClass)
    for m in a:
        meta = m.meta()
        assert isinstance(meta, MeterMeta)
        assert meta.grid_cell == m.grid_cell and meta.contracted_kva == m.contracted_kva
        assert m.region in {"north", "south"} and m.grid_cell.startswith(m.region)
        assert m.contracted_kva in fleet.customers[m.customer_class].contracted_kva
        if m.customer_class is CustomerClass.INDUSTRIAL:
            assert m.profile.startswith("ind")
    industrial = [m for m in a if m.customer_class is CustomerClass.INDUSTRIAL]
    assert len({m.customer_id for m in industrial}) == 4  # two meters per site


def test_registry_loads_in_the_alert_router(tmp_path: Path, make) -> None:
    from gridwatch.alerts._registry import Registry

    meters = make().meters()
    path = write_registry(meters, tmp_path / "registry.yaml")
    reg = Registry.load(path)
    assert sorted(reg.meter_ids()) == sorted(m.meter_id for m in meters)
    for m in meters:
        assert reg.meter_meta(m.meter_id) == m.meta()
        cell = reg.cell(m.grid_cell)
        assert cell is not None and cell.primary != cell.backup
        assert reg.manager(cell.primary) is not None
        cust = reg.customer(m.customer_id)
        assert cust is not None and cust.name == m.customer_name
        assert cust.notices == (m.customer_class is CustomerClass.INDUSTRIAL)


def test_public_names() -> None:
    import gridwatch.simulators as sims

    for name in sims.__all__:
        assert getattr(sims, name) is not None, name
    assert sorted(sims.__all__) == sorted(sims._WHERE)
    with pytest.raises(AttributeError):
        sims.NoSuchThing  # noqa: B018


def test_flow_style_registry_is_the_same_data(tmp_path: Path, make) -> None:
    import yaml

    from gridwatch.alerts._registry import Registry

    meters = make().meters()
    block = write_registry(meters, tmp_path / "block.yaml", flow=False)
    flow = write_registry(meters, tmp_path / "flow.yaml", flow=True)
    assert block.read_text() != flow.read_text()
    as_json = write_registry(meters, tmp_path / "registry.json")
    assert yaml.safe_load(block.read_text()) == yaml.safe_load(flow.read_text()) == \
        json.loads(as_json.read_text())
    for path in (flow, as_json):
        assert Registry.load(path).meter_meta(meters[-1].meter_id) == meters[-1].meta()


def test_csv_registry_loads_in_the_alert_router(tmp_path: Path, make) -> None:
    from gridwatch.alerts._registry import Registry

    meters = make().meters()
    path = write_registry(meters, tmp_path / "registry" / "customers.csv")
    reg = Registry.load(path)
    assert sorted(reg.meter_ids()) == sorted(m.meter_id for m in meters)
    for m in meters:
        meta = reg.meter_meta(m.meter_id)
        assert meta is not None
        assert (meta.customer_id, meta.grid_cell, meta.phases, meta.has_export,
                meta.customer_class) == (m.customer_id, m.grid_cell, m.phases, m.has_export,
                                         m.customer_class)
        cell = reg.cell(m.grid_cell)
        assert cell is not None and reg.manager(cell.backup or "") is not None
