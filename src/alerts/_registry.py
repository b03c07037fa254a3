"""The registry, as the alert router knows it. The model lives in :mod:`gridwatch._registry`
(read by the router, the dataflow and the tag system alike); this module names the same
objects for the code and the users that import them from here."""

from __future__ import annotations

from gridwatch._registry import (
    AttributeSpec,
    Cell,
    Channel,
    Contacts,
    Customer,
    Ident,
    Language,
    Manager,
    Meter,
    Registry,
    RegistryError,
    describe,
)

__all__ = [
    "AttributeSpec",
    "Cell",
    "Channel",
    "Contacts",
    "Customer",
    "Ident",
    "Language",
    "Manager",
    "Meter",
    "Registry",
    "RegistryError",
    "describe",
]
