"""The registry: who owns which meter, which grid cell a customer hangs on, and who manages it.

Loaded from one flat YAML file (``customers``, ``cells``, ``managers``) or from CSV, validated on
load with errors that name the bad entry, and indexed for the lookups the router and the
dataflow make on every event (``customer_for_meter``, ``meter_meta``).

It sits beside the other shared value types, outside any package: the alert router, the tag
system and the dataflow all read it, and none of them needs another to do so. Its public home
stays ``gridwatch.alerts`` (``gridwatch.alerts.Registry``; ``gridwatch.alerts._registry`` names
the same objects).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from gridwatch._schemas import ID_PATTERN, CustomerClass, MeterMeta
from gridwatch.devices._registry import Device, check_devices

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

# libyaml's loader is about twice as fast on a fleet-sized registry.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
Channel = Literal["mqtt", "email", "webhook", "apprise"]
Language = Literal["zh", "en"]

_FROZEN = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class RegistryError(ValueError):
    """The registry cannot be used; ``str()`` names the file, the entry and the problem."""


class Meter(BaseModel):
    """One meter of a customer. A bare string in YAML is a meter id with default properties."""

    model_config = _FROZEN

    id: Ident
    phases: Annotated[int, Field(ge=1, le=3)] = 1
    has_export: bool = False
    #: Per-meter contracted capacity; the customer's when unset.
    contracted_kva: Annotated[float, Field(gt=0)] | None = None
    nominal_voltage_v: Annotated[float, Field(gt=0)] | None = None
    interval_s: Annotated[int, Field(ge=60, le=86_400)] | None = None


class Contacts(BaseModel):
    model_config = _FROZEN

    email: str | None = None
    phone: str | None = None
    webhook: str | None = None
    apprise: tuple[str, ...] = ()


class AttributeSpec(BaseModel):
    """A utility's own customer attribute, declared once (``attribute_schema``) and then
    allowed on every customer (``attributes``), and usable in tag expressions."""

    model_config = _FROZEN

    type: Literal["number", "text", "bool", "set"]
    description: str = ""
    #: Where imports bring it from: ``customers`` or ``crm`` CSV files (``registry``: only here).
    source: Literal["registry", "customers", "crm"] = "registry"
    #: Allowed values of a text or set attribute (any when empty).
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None

    def check(self, value: Any) -> Any:
        """The value in its stored form; raises ValueError saying what is wrong with it."""
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"{value!r} is not a number")
            try:
                x = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a number") from None
            if x != x or x in (float("inf"), float("-inf")):
                raise ValueError(f"{value!r} is not a finite number")
            if self.min is not None and x < self.min:
                raise ValueError(f"{x:g} is below the minimum {self.min:g}")
            if self.max is not None and x > self.max:
                raise ValueError(f"{x:g} is above the maximum {self.max:g}")
            return x
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "y"):
                return True
            if text in ("0", "false", "no", "n"):
                return False
            raise ValueError(f"{value!r} is not yes/no")
        if self.type == "text":
            if isinstance(value, list | tuple | dict) or not str(value).strip():
                raise ValueError(f"{value!r} is not one text value")
            items = [str(value).strip()]
        else:
            items = [str(v).strip() for v in value] if isinstance(value, list | tuple) else \
                [v.strip() for v in str(value).replace(";", "|").split("|") if v.strip()]
        for item in items:
            if self.values and item not in self.values:
                raise ValueError(f"{item!r} is not one of {', '.join(self.values)}")
        return items[0] if self.type == "text" else tuple(sorted(set(items)))


class Customer(BaseModel):
    id: Ident
    name: str = ""
    customer_class: CustomerClass = Field(CustomerClass.RESIDENTIAL, alias="class")
    contracted_kva: Annotated[float, Field(gt=0)] | None = None
    tariff: str | None = None
    grid_cell: Ident
    meters: tuple[Meter, ...] = ()
    contacts: Contacts = Contacts()
    #: The customer agreed to receive notices about its own sites.
    notices: bool = False
    #: Channels customer notices go out on (the MQTT notices topic by default).
    channels: tuple[Channel, ...] = ("mqtt",)
    language: Language = "zh"
    #: The utility's own attributes, each declared in the registry's ``attribute_schema``.
    attributes: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _meter_strings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("meters"), list | tuple):
            data = dict(data)
            data["meters"] = [{"id": m} if isinstance(m, str) else m for m in data["meters"]]
        return data


class Cell(BaseModel):
    model_config = _FROZEN

    id: Ident
    name: str = ""
    primary: Ident
    backup: Ident | None = None
    #: Local time of the cell's customers (IANA name) and their public holidays (country
    #: code); unset: ``detection.timezone`` / ``detection.holiday_country``.
    timezone: str | None = None
    holiday_country: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Manager(BaseModel):
    model_config = _FROZEN

    id: Ident
    name: str = ""
    channels: tuple[Channel, ...] = ("mqtt",)
    email: str | None = None
    webhook: str | None = None
    apprise: tuple[str, ...] = ()
    language: Language = "zh"


class Registry(BaseModel):
    """Customers, grid cells and managers, cross-checked: every reference points somewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: tuple[Customer, ...] = ()
    cells: tuple[Cell, ...] = ()
    managers: tuple[Manager, ...] = ()
    #: Declared customer attributes (name -> type and allowed values).
    attribute_schema: dict[str, AttributeSpec] = Field(default_factory=dict)
    devices: tuple[Device, ...] = ()

    _devices: dict[str, Device] = PrivateAttr(default_factory=dict)
    _by_meter: dict[str, tuple[Customer, Meter]] = PrivateAttr(default_factory=dict)
    _customers: dict[str, Customer] = PrivateAttr(default_factory=dict)
    _cells: dict[str, Cell] = PrivateAttr(default_factory=dict)
    _managers: dict[str, Manager] = PrivateAttr(default_factory=dict)
    _meta: dict[str, MeterMeta] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_check(self) -> Registry:
        def unique(kind: str, ids: list[str]) -> None:
            seen: set[str] = set()
            for i, ident in enumerate(ids):
                if ident in seen:
                    raise ValueError(f"{kind}[{i}]: duplicate id {ident!r}")
                seen.add(ident)

        unique("customers", [c.id for c in self.customers])
        unique("cells", [c.id for c in self.cells])
        unique("managers", [m.id for m in self.managers])
        managers = {m.id: m for m in self.managers}
        cells = {c.id: c for c in self.cells}
        for i, cell in enumerate(self.cells):
            for role in ("primary", "backup"):
                mid = getattr(cell, role)
                if mid is not None and mid not in managers:
                    raise ValueError(
                        f"cells[{i}] (id {cell.id!r}): {role} manager {mid!r} is not in managers"
                    )
            if cell.backup == cell.primary:
                raise ValueError(
                    f"cells[{i}] (id {cell.id!r}): backup manager is the primary ({cell.primary!r})"
                )
        for i, mgr in enumerate(self.managers):
            if "email" in mgr.channels and not mgr.email:
                raise ValueError(f"managers[{i}] (id {mgr.id!r}): channel email needs 'email'")
            if "webhook" in mgr.channels and not mgr.webhook:
                raise ValueError(f"managers[{i}] (id {mgr.id!r}): channel webhook needs 'webhook'")
            if "apprise" in mgr.channels and not mgr.apprise:
                raise ValueError(f"managers[{i}] (id {mgr.id!r}): channel apprise needs 'apprise'")
        by_meter: dict[str, tuple[Customer, Meter]] = {}
        for i, cust in enumerate(self.customers):
            where = f"customers[{i}] (id {cust.id!r})"
            if cust.grid_cell not in cells:
                raise ValueError(f"{where}: grid_cell {cust.grid_cell!r} is not in cells")
            for ch in cust.channels:
                if ch != "mqtt" and not getattr(cust.contacts, ch):
                    raise ValueError(f"{where}: channel {ch} needs contacts.{ch}")
            for name, value in cust.attributes.items():
                spec = self.attribute_schema.get(name)
                if spec is None:
                    raise ValueError(f"{where}: attribute {name!r} is not declared in "
                                     f"attribute_schema")
                try:
                    cust.attributes[name] = spec.check(value)
                except ValueError as exc:
                    raise ValueError(f"{where}: attribute {name}: {exc}") from None
            for meter in cust.meters:
                if meter.id in by_meter:
                    other = by_meter[meter.id][0].id
                    raise ValueError(f"{where}: meter {meter.id!r} also belongs to {other!r}")
                by_meter[meter.id] = (cust, meter)
        self._by_meter = by_meter
        self._customers = {c.id: c for c in self.customers}
        devices = check_devices(self.devices, self._customers, cells, by_meter)
        self._devices = {d.id: d for d in devices}
        self._cells = cells
        self._managers = managers
        return self

    # ----------------------------------------------------------------------------- lookups
    def customer_for_meter(self, meter_id: str) -> Customer | None:
        """The customer owning ``meter_id``, or None for a meter the registry does not know."""
        hit = self._by_meter.get(meter_id)
        return hit[0] if hit else None

    def meter_meta(self, meter_id: str) -> MeterMeta | None:
        """What the dataflow needs to judge the meter's readings, or None when unknown."""
        return self.meta_table().get(meter_id)

    def meta_table(self) -> Mapping[str, MeterMeta]:
        """Every meter's :class:`MeterMeta` by meter id, built in one pass on first use and
        kept for the life of this registry (a reload builds a new registry). Its ``get`` is
        the dataflow's lookup: one dict access per reading, where going through the model's
        private attributes costs microseconds."""
        table = self._meta
        if table or not self._by_meter:
            return table
        cells = self._cells
        built: dict[str, MeterMeta] = {}
        for meter_id, (cust, meter) in self._by_meter.items():
            cell = cells.get(cust.grid_cell) if cust.grid_cell else None
            built[meter_id] = MeterMeta(
                meter_id=meter.id,
                customer_id=cust.id,
                customer_class=cust.customer_class,
                grid_cell=cust.grid_cell,
                contracted_kva=meter.contracted_kva or cust.contracted_kva,
                has_export=meter.has_export,
                phases=meter.phases,
                nominal_voltage_v=meter.nominal_voltage_v,
                interval_s=meter.interval_s,
                timezone=cell.timezone if cell else None,
                holiday_country=cell.holiday_country if cell else None,
            )
        table.update(built)
        return table

    def device(self, device_id: str) -> Device | None:
        """A device with its grid cell filled in (a customer's device: the customer's)."""
        return self._devices.get(device_id)

    def meter_ids(self) -> list[str]:
        return list(self._by_meter)

    def customer(self, customer_id: str) -> Customer | None:
        return self._customers.get(customer_id)

    def cell(self, cell_id: str) -> Cell | None:
        return self._cells.get(cell_id)

    def manager(self, manager_id: str) -> Manager | None:
        return self._managers.get(manager_id)

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> Registry:
        """Read a YAML registry, a CSV of customer meters (with ``cells.csv`` and
        ``managers.csv`` beside it), or a directory holding those three CSV files."""
        path = Path(path)
        if path.is_dir():
            data = _read_csv_dir(path, path / "customers.csv")
        elif path.suffix.lower() == ".csv":
            data = _read_csv_dir(path.parent, path)
        elif path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None
            except json.JSONDecodeError as exc:
                raise RegistryError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}"
                                    ) from None
            if not isinstance(data, dict):
                raise RegistryError(f"{path}: the top level must be an object "
                                    f"(customers, cells, managers)")
        else:
            try:
                data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader) or {}
            except OSError as exc:
                raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" line {mark.line + 1}" if mark else ""
                raise RegistryError(f"{path}:{where}: not valid YAML: {exc}") from None
            if not isinstance(data, dict):
                raise RegistryError(f"{path}: the top level must be a mapping "
                                    f"(customers, cells, managers)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RegistryError(f"{path}: {describe(exc, data)}") from None


def describe(exc: ValidationError, data: Any) -> str:
    """One line naming the first bad entry (by index and id) and the problem."""
    err = exc.errors(include_url=False)[0]
    loc = list(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    parts: list[str] = []
    node = data
    for i, key in enumerate(loc):
        if isinstance(key, int) and parts:
            parts[-1] += f"[{key}]"
            if isinstance(node, list) and key < len(node) and isinstance(node[key], dict):
                ident = node[key].get("id")
                if ident is not None and i < len(loc) - 1:
                    parts[-1] += f" (id {ident!r})"
        else:
            parts.append(str(key))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    where = ".".join(parts)
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling)"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or err["type"] == "extra_forbidden" \
        else f" (got {value!r})"
    more = len(exc.errors()) - 1
    head = f"{where}: {msg}{shown}" if where else f"{msg}{shown}"
    return head + (f"; and {more} more problem(s)" if more else "")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(";", "|").split("|") if v.strip()]


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k}
                    for row in csv.DictReader(fh)]
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read_csv_dir(folder: Path, customers_csv: Path) -> dict[str, Any]:
    """CSV form: one row per meter (customer columns repeat), plus cells and managers files.

    customers.csv: customer_id, name, class, contracted_kva, tariff, grid_cell, meter_id,
    phases, has_export, notices, language, email, channels (``|`` separated).
    cells.csv: id, name, primary, backup. managers.csv: id, name, channels, email, language.
    """
    customers: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(_read_csv(customers_csv), start=2):
        cid = row.get("customer_id") or row.get("id")
        if not cid:
            raise RegistryError(f"{customers_csv}: line {n}: customer_id is empty")
        cust = customers.setdefault(cid, {"id": cid, "meters": []})
        for key in ("name", "class", "tariff", "grid_cell", "language"):
            if row.get(key):
                cust[key] = row[key]
        if row.get("contracted_kva"):
            cust["contracted_kva"] = row["contracted_kva"]
        if row.get("notices"):
            cust["notices"] = row["notices"].lower() in ("1", "true", "yes", "y")
        if row.get("email"):
            cust["contacts"] = {"email": row["email"]}
        if row.get("channels"):
            cust["channels"] = _split(row["channels"])
        if row.get("meter_id"):
            meter: dict[str, Any] = {"id": row["meter_id"]}
            if row.get("phases"):
                meter["phases"] = row["phases"]
            if row.get("has_export"):
                meter["has_export"] = row["has_export"].lower() in ("1", "true", "yes", "y")
            cust["meters"].append(meter)
    data: dict[str, Any] = {"customers": list(customers.values()), "cells": [], "managers": []}
    cells_csv, managers_csv = folder / "cells.csv", folder / "managers.csv"
    if cells_csv.exists():
        data["cells"] = [{k: v for k, v in r.items() if v} for r in _read_csv(cells_csv)]
    if managers_csv.exists():
        for r in _read_csv(managers_csv):
            m: dict[str, Any] = {k: v for k, v in r.items() if v}
            if "channels" in m:
                m["channels"] = _split(m["channels"])
            if "apprise" in m:
                m["apprise"] = _split(m["apprise"])
            data["managers"].append(m)
    return data
