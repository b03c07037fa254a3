"""Device events route like meter events: table of labels → receivers with the shipped routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.alerts import RouteTree

ROUTES = Path(__file__).resolve().parents[2] / "config" / "routes.yaml"


@pytest.mark.parametrize(("labels", "receivers"), [
    # a customer's own equipment: a notice to the customer, and the cell manager
    ({"type": "compressor_wear", "customer_class": "industrial", "customer_id": "ind-1"},
     ["customer", "cell_manager"]),
    ({"type": "off_shift_running", "customer_class": "industrial", "customer_id": "ind-1"},
     ["customer", "cell_manager"]),
    ({"type": "capacity_forecast", "customer_class": "industrial", "customer_id": "ind-1"},
     ["customer", "cell_manager"]),
    # a transformer of the cell: the manager only (no customer owns it)
    ({"type": "device_overload", "customer_class": None, "customer_id": None},
     ["cell_manager"]),
    ({"type": "overload_forecast", "customer_class": None, "customer_id": None},
     ["cell_manager"]),
    # equipment of a commercial customer: its manager
    ({"type": "inverter_trip", "customer_class": "commercial", "customer_id": "c-1"},
     ["cell_manager"]),
])
def test_device_events_reach_the_owner_and_the_manager(labels, receivers):
    tree = RouteTree.load(ROUTES)
    base = {"severity": "warning", "grid_cell": "c1", "meter_id": "dev-1", "tags": (),
            "segment": None, "fingerprint": "dev-1/x"}
    assert tree.receivers_for(base | labels) == receivers
