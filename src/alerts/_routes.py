"""The routing tree (``config/routes.yaml``): which receivers an alert goes to.

It follows Prometheus Alertmanager's routing tree: an alert enters at the root and walks the
child routes in order; a matching child is descended into, and the walk stops at the first
matching child unless that child says ``continue: true``. A route without matching children is a
result. Matching is a pure function of the alert's labels.

Receivers are either one of the built-in recipients (``cell_manager``: the primary manager of the
customer's grid cell, escalated to the backup when not acknowledged; ``backup_manager``;
``customer``: the customer itself, when it opted in to notices) or a name defined under
``receivers:`` with one external channel (webhook, email, alertmanager, apprise, mqtt).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridwatch._schemas import Severity
from gridwatch.alerts._registry import RegistryError, describe
from gridwatch.alerts._stages import DEFAULT_INHIBIT, InhibitRule
from gridwatch.tags._catalogue import canonical_tag
from gridwatch.tags._expr import ExprError
from gridwatch.tags._labels import LabelExpr

BUILTIN_RECEIVERS = ("cell_manager", "backup_manager", "customer")
MATCH_KEYS = ("type", "severity", "customer_class", "grid_cell", "customer_id", "meter_id", "tags",
              "segment")

Labels = Mapping[str, str | tuple[str, ...] | None]


class RoutesError(RegistryError):
    """The routes file cannot be used; ``str()`` names the bad route or receiver."""


class Route(BaseModel):
    """One node of the routing tree: what it matches, where it sends, and its children."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    #: label -> value or list of values (any of them). ``tags`` matches when the alert carries
    #: at least one of the listed tags.
    match: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: A tag expression over the alert's labels, e.g. ``tag('valley-shifter') and
    #: customer_class == 'industrial'`` (docs/tags.md); the route matches when it is true.
    when: str | None = None
    min_severity: Severity | None = None
    receivers: tuple[str, ...] | None = None
    continue_: bool = Field(False, alias="continue")
    routes: tuple[Route, ...] = ()

    @field_validator("match", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for key, val in v.items():
                if key not in MATCH_KEYS:
                    raise ValueError(f"cannot match on {key!r} (known: {', '.join(MATCH_KEYS)})")
                out[key] = (str(val),) if isinstance(val, str | int | float) else \
                    tuple(str(x) for x in val)
                if key == "tags":  # one spelling: night_heavy is night-heavy
                    out[key] = tuple(canonical_tag(x) for x in out[key])
            return out
        return v

    @field_validator("when")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                _label_expr(v)
            except ExprError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("receivers", mode="before")
    @classmethod
    def _one_receiver(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    def matches(self, labels: Labels) -> bool:
        if self.min_severity is not None:
            sev = labels.get("severity")
            if not isinstance(sev, str) or Severity(sev).rank < self.min_severity.rank:
                return False
        for key, wanted in self.match.items():
            have = labels.get(key)
            if key == "tags":
                tags = have if isinstance(have, tuple) else ()
                if not {canonical_tag(t) for t in tags} & set(wanted):
                    return False
            elif have not in wanted:
                return False
        return self.when is None or _label_expr(self.when).matches(labels)


@lru_cache(maxsize=1024)
def _label_expr(text: str) -> LabelExpr:
    return LabelExpr(text)


class ReceiverSpec(BaseModel):
    """A named external receiver: exactly one channel with its target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: Annotated[str, Field(pattern=r"^https?://")] | None = None
    email: tuple[str, ...] | None = None
    #: An Alertmanager base URL, or ``default`` for the ``alerts.alertmanager_url`` setting.
    alertmanager: Annotated[str, Field(pattern=r"^(https?://.+|default)$")] | None = None
    apprise: tuple[str, ...] | None = None
    mqtt: str | None = None
    language: str | None = None

    @field_validator("email", "apprise", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _exactly_one(self) -> ReceiverSpec:
        set_ = [k for k in ("webhook", "email", "alertmanager", "apprise", "mqtt")
                if getattr(self, k)]
        if len(set_) != 1:
            raise ValueError(
                f"a receiver needs exactly one of webhook, email, alertmanager, apprise, mqtt "
                f"(got {', '.join(set_) or 'none'})")
        return self

    @property
    def channel(self) -> str:
        return next(k for k in ("webhook", "email", "alertmanager", "apprise", "mqtt")
                    if getattr(self, k))


class RouteTree(BaseModel):
    """The whole routes file: the routing tree, named receivers and inhibition rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: Route = Field(
        default_factory=lambda: Route.model_validate({"receivers": ["cell_manager"]}))
    receivers: dict[str, ReceiverSpec] = Field(default_factory=dict)
    #: An open source alert mutes new target alerts (see ``_stages.InhibitRule``).
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT

    @model_validator(mode="after")
    def _known_receivers(self) -> RouteTree:
        for name in self.receivers:
            if name in BUILTIN_RECEIVERS:
                raise ValueError(f"receivers.{name}: {name!r} is a built-in receiver name")
        if not self.route.receivers:
            raise ValueError("route: the root route needs receivers")

        def walk(route: Route, path: str) -> None:
            for r in route.receivers or ():
                if r not in BUILTIN_RECEIVERS and r not in self.receivers:
                    raise ValueError(f"{path}: receiver {r!r} is neither built in "
                                     f"({', '.join(BUILTIN_RECEIVERS)}) nor under receivers")
            for i, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{i}]" + (f" ({child.name})" if child.name else ""))

        walk(self.route, "route")
        return self

    @classmethod
    def load(cls, path: str | Path) -> RouteTree:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise RoutesError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise RoutesError(f"{path}: not valid YAML: {exc}") from None
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, source: str = "routes") -> RouteTree:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RoutesError(f"{source}: {describe(exc, data)}") from None

    def match(self, labels: Labels) -> list[Route]:
        """The routes an alert with ``labels`` ends at, in tree order (pure)."""
        return _match(self.route, labels, self.route.receivers or ())[0]

    def receivers_for(self, labels: Labels) -> list[str]:
        """The receiver names, in order and without repeats."""
        out: list[str] = []
        for route in self.match(labels):
            for r in route.receivers or ():
                if r not in out:
                    out.append(r)
        return out


def _match(route: Route, labels: Labels, inherited: tuple[str, ...]
           ) -> tuple[list[Route], bool]:
    receivers = route.receivers if route.receivers is not None else inherited
    resolved = route if route.receivers is not None else route.model_copy(
        update={"receivers": receivers})
    found: list[Route] = []
    for child in route.routes:
        if not child.matches(labels):
            continue
        sub, _ = _match(child, labels, receivers)
        found.extend(sub)
        if not child.continue_:
            break
    if not found:
        found = [resolved]
    return found, True
