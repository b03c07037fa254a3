"""Who may see what: pure functions of the registry and the account.

A manager sees exactly the grid cells the registry names them primary or backup of; a
customer contact sees its own customer's meters, and the alerts the router sent to that
customer as notices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridwatch.alerts._registry import Registry
from gridwatch.web._accounts import User

__all__ = ["can_see_alert", "can_see_cell", "can_see_customer", "cells_of", "is_notice_for"]


def cells_of(registry: Registry, user: User) -> list[str]:
    """The cells ``user`` manages (primary or backup), in registry order; none for customers."""
    if user.role != "manager":
        return []
    return [c.id for c in registry.cells if user.subject in (c.primary, c.backup)]


def can_see_cell(registry: Registry, user: User, cell_id: str) -> bool:
    return cell_id in cells_of(registry, user)


def can_see_customer(registry: Registry, user: User, customer_id: str) -> bool:
    cust = registry.customer(customer_id)
    if cust is None:
        return False
    if user.role == "customer":
        return user.subject == customer_id
    return can_see_cell(registry, user, cust.grid_cell)


def is_notice_for(alert: Mapping[str, Any], customer_id: str) -> bool:
    """The router addressed this alert to the customer (it opted in to notices)."""
    import json

    return f"customer:{customer_id}" in json.loads(alert.get("receivers") or "[]")


def can_see_alert(registry: Registry, user: User, alert: Mapping[str, Any]) -> bool:
    if user.role == "manager":
        cell = alert.get("grid_cell")
        return isinstance(cell, str) and can_see_cell(registry, user, cell)
    return alert.get("customer_id") == user.subject and is_notice_for(alert, user.subject)
