"""The notify decision as a pure stage, table-driven: which transition a message reports for
each alert, and what kind of message a recipient gets."""

from __future__ import annotations

import pytest

from gridwatch.alerts._stages import most_telling, notify_decision


@pytest.mark.parametrize(("items", "expected"), [
    ([("a", "firing"), ("a", "resolved")], {"a": "resolved"}),
    ([("a", "repeat"), ("a", "update"), ("b", "firing")], {"a": "update", "b": "firing"}),
    ([("a", "escalation"), ("a", "firing")], {"a": "escalation"}),
    ([("b", "repeat"), ("a", "repeat")], {"b": "repeat", "a": "repeat"}),
])
def test_most_telling(items, expected) -> None:
    got = most_telling(items)
    assert got == expected and list(got) == list(expected)


@pytest.mark.parametrize(("audience", "states", "kinds", "expected"), [
    ("manager", ["firing"], ["firing"], ("manager", "alert", "firing", 1)),
    ("manager", ["resolved", "resolved"], ["resolved", "resolved"],
     ("manager", "resolved", "resolved", 0)),
    ("manager", ["firing", "resolved"], ["firing", "resolved"], ("manager", "alert", "firing", 1)),
    ("manager", ["firing"], ["escalation"], ("manager", "escalation", "firing", 1)),
    ("manager", ["firing"] * 3, ["firing"] * 3, ("storm", "storm", "firing", 3)),
    ("manager", ["firing", "firing", "resolved"], ["firing"] * 3,
     ("manager", "alert", "firing", 2)),
    ("customer", ["firing"] * 5, ["firing"] * 5, ("customer", "notice", "firing", 5)),
    ("customer", ["resolved"], ["resolved"], ("customer", "resolved", "resolved", 0)),
])
def test_notify_decision(audience, states, kinds, expected) -> None:
    d = notify_decision(audience, states, kinds, storm_threshold=3)
    assert (d.audience, d.kind, d.status, d.firing) == expected
