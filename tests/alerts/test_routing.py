"""Table-driven routing tests: routing trees inline as YAML, alerts as labels, the expected
receivers (in the manner of Alertmanager's dispatch/route_test.go)."""

from __future__ import annotations

import re

import pytest
import yaml
from _alerts_helpers import REPO

from gridwatch.alerts import RoutesError, RouteTree

TREE = """
route:
  receivers: [cell_manager]
  routes:
    - name: critical-outages
      match: {type: [outage, feeder_outage]}
      min_severity: critical
      receivers: [cell_manager, ops-webhook]
    - name: industrial
      match: {customer_class: industrial}
      receivers: [customer]
      continue: true
      routes:
        - name: industrial-capacity
          match: {type: over_capacity_risk}
          receivers: [customer, capacity-mail]
    - name: night-heavy
      match: {tags: [night_heavy, seasonal]}
      receivers: [backup_manager]
      continue: true
    - name: cell-b
      match: {grid_cell: B}
      receivers: [am]
receivers:
  ops-webhook: {webhook: "http://127.0.0.1:9/hook"}
  capacity-mail: {email: [capacity@example.org]}
  am: {alertmanager: "http://127.0.0.1:9093"}
"""

CASES = [
    # labels, expected receivers, why
    ({"type": "outage", "severity": "critical", "customer_class": "residential"},
     ["cell_manager", "ops-webhook"], "critical outage stops at its route"),
    ({"type": "outage", "severity": "warning", "customer_class": "residential"},
     ["cell_manager"], "below min_severity: falls through to the root"),
    ({"type": "abnormal_consumption", "severity": "warning", "customer_class": "industrial"},
     ["customer"], "industrial continues, but nothing else matches"),
    ({"type": "over_capacity_risk", "severity": "warning", "customer_class": "industrial"},
     ["customer", "capacity-mail"], "child of a continuing route"),
    ({"type": "abnormal_consumption", "severity": "info", "customer_class": "industrial",
      "grid_cell": "B"}, ["customer", "am"], "continue lets the cell route match too"),
    ({"type": "abnormal_consumption", "severity": "info", "customer_class": "commercial",
      "tags": ("night_heavy",), "grid_cell": "B"}, ["backup_manager", "am"], "tags any-of"),
    ({"type": "abnormal_consumption", "severity": "info", "customer_class": "commercial",
      "tags": ("daytime",)}, ["cell_manager"], "no tag in common: root"),
    ({"type": "feeder_outage", "severity": "critical", "customer_class": "industrial"},
     ["cell_manager", "ops-webhook"], "first match without continue stops the walk"),
]


@pytest.mark.parametrize("labels, expected, why", CASES, ids=[c[2] for c in CASES])
def test_routing_table(labels: dict, expected: list[str], why: str) -> None:
    tree = RouteTree.parse(yaml.safe_load(TREE))
    assert tree.receivers_for(labels) == expected, why


def test_inherited_receivers_and_names() -> None:
    tree = RouteTree.parse(yaml.safe_load("""
route:
  receivers: [cell_manager, am]
  routes:
    - name: tamper
      match: {type: tamper}
receivers:
  am: {alertmanager: "http://127.0.0.1:9093"}
"""))
    routes = tree.match({"type": "tamper", "severity": "warning"})
    assert [r.name for r in routes] == ["tamper"]
    assert tree.receivers_for({"type": "tamper"}) == ["cell_manager", "am"]


@pytest.mark.parametrize("text, message", [
    ("route: {receivers: [nobody]}", "route: receiver 'nobody' is neither built in"),
    ("route: {receivers: [cell_manager], routes: [{name: x, receivers: [ghost]}]}",
     "route.routes[0] (x): receiver 'ghost'"),
    ("route: {receivers: [cell_manager], routes: [{match: {colour: red}}]}",
     "cannot match on 'colour'"),
    ("route: {receivers: [cell_manager]}\nreceivers: {x: {webhook: 'http://a', email: b}}",
     "exactly one of webhook"),
    ("route: {receivers: [cell_manager]}\nreceivers: {customer: {webhook: 'http://a'}}",
     "is a built-in receiver name"),
])
def test_bad_routes_are_named(text: str, message: str) -> None:
    with pytest.raises(RoutesError, match=re.escape(message)):
        RouteTree.parse(yaml.safe_load(text), "routes.yaml")


def test_shipped_routes_send_industrial_to_customer_and_manager() -> None:
    tree = RouteTree.load(REPO / "config" / "routes.yaml")
    assert tree.receivers_for({"type": "over_capacity_risk", "customer_class": "industrial",
                               "severity": "warning"}) == ["customer", "cell_manager"]
    assert tree.receivers_for({"type": "tamper", "customer_class": "industrial",
                               "severity": "warning"}) == ["cell_manager"]
    assert tree.receivers_for({"type": "outage", "customer_class": "residential",
                               "severity": "critical"}) == ["cell_manager"]
