"""Service strategies (``config/tags/strategies.yaml``): for a segment or a group of tags, which
route, which template and which advice a customer manager follows."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridwatch.tags._catalogue import CatalogueError, TagName
from gridwatch.tags._expr import ExprError, Name, Str, walk
from gridwatch.tags._labels import LabelExpr

__all__ = ["Strategies", "Strategy"]


class Advice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Strategy(BaseModel):
    """One strategy: who it is for (a label expression over tags, segment and class) and what
    to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
    name: TagName
    when: str
    #: Receiver the customer's alerts and offers go to (a route receiver name).
    route: str = "cell_manager"
    #: Message template (``config/templates/<template>.<lang>.j2``).
    template: str = "manager"
    advice: Advice
    priority: int = 100


class Strategies:
    """The strategies in priority order, each with its checked expression."""

    def __init__(self, items: list[Strategy], tag_ids: Iterable[str] = ()) -> None:
        known = set(tag_ids)
        self.items = sorted(items, key=lambda s: (s.priority, s.id))
        self.exprs: dict[str, LabelExpr] = {}
        for s in self.items:
            try:
                expr = LabelExpr(s.when)
            except ExprError as exc:
                raise CatalogueError(f"strategy {s.id}: when: {exc}") from None
            for n in walk(expr.node):
                if known and isinstance(n, Str) and n.value not in known \
                        and _is_tag_arg(expr, n):
                    raise CatalogueError(f"strategy {s.id}: when: unknown tag {n.value!r}")
                if isinstance(n, Name) and n.name not in ("customer_class", "segment"):
                    raise CatalogueError(f"strategy {s.id}: when: a strategy matches on "
                                         f"tags, segment and customer_class, not {n.name!r}")
            self.exprs[s.id] = expr

    @classmethod
    def load(cls, path: str | Path, tag_ids: Iterable[str] = ()) -> Strategies:
        path = Path(path)
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogueError(f"{path}: cannot read: {exc}") from None
        items = []
        for i, raw in enumerate(data.get("strategies") or []):
            try:
                items.append(Strategy.model_validate(raw))
            except ValidationError as exc:
                e = exc.errors(include_url=False)[0]
                loc = ".".join(str(x) for x in e["loc"])
                raise CatalogueError(f"{path}: strategies[{i}]: {loc}: {e['msg']}") from None
        try:
            return cls(items, tag_ids)
        except CatalogueError as exc:
            raise CatalogueError(f"{path}: {exc}") from None

    def for_customer(self, tags: Iterable[str], segment: str | None = None,
                     customer_class: str | None = None) -> list[Strategy]:
        """The strategies that apply, highest priority (lowest number) first."""
        labels = {"tags": tuple(tags), "segment": segment, "customer_class": customer_class}
        return [s for s in self.items if self.exprs[s.id].matches(labels)]


def _is_tag_arg(expr: LabelExpr, node: Str) -> bool:
    from gridwatch.tags._expr import Call

    return any(isinstance(n, Call) and n.func == "tag" and node in n.args
               for n in walk(expr.node))
