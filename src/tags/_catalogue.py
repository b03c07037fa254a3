"""The tag catalogue (``config/tags/*.yaml``): tags with names, dimension, description and a
definition in the expression language, checked on load against the names gridwatch knows.

A tag id is one spelling everywhere: lower case words joined by hyphens (``night-heavy``).
Routes and the profiler's older tags are brought to it by :func:`canonical_tag`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gridwatch._registry import AttributeSpec
from gridwatch.tags._expr import (
    Bool,
    Call,
    Compare,
    ExprError,
    Logic,
    Name,
    Node,
    Not,
    Num,
    Str,
    parse,
    walk,
)
from gridwatch.tags._features import ALERT_TYPES, SCALAR_FEATURES, VERDICTS, WINDOW_FEATURES

__all__ = [
    "BUILTIN_ATTRIBUTES",
    "CLASSES",
    "DIMENSIONS",
    "LANGUAGES",
    "NOT_TAGS",
    "Catalogue",
    "CatalogueError",
    "Names",
    "Tag",
    "TagReason",
    "canonical_tag",
]

DIMENSIONS = ("basic", "usage", "value", "needs")
CLASSES = ("residential", "commercial", "industrial", "agricultural")
TAG_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"

#: Attributes every customer has from the registry (kind: number, text, bool, set).
BUILTIN_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "customer_class": ("text", "residential, commercial, industrial or agricultural"),
    "grid_cell": ("text", "the grid cell the customer hangs on"),
    "tariff": ("text", "the tariff code of the registry"),
    "contracted_kva": ("number", "contracted capacity (kVA)"),
    "meters": ("number", "number of meters"),
    "phases": ("number", "most phases of any of its meters"),
    "has_export": ("bool", "a meter of the customer can export (PV)"),
    "notices": ("bool", "the customer receives notices about its own sites"),
    "voltage_v": ("number", "highest nominal voltage of its meters (V)"),
}

#: Figures derived from imported billing records (``gridwatch import billing``).
BILLING_FEATURES: dict[str, str] = {
    "bills_12m": "bills due in the last 12 months",
    "late_payments_12m": "bills of the last 12 months paid after the due date, or not at all",
    "on_time_share": "share of the last 12 months' bills paid by the due date",
    "avg_days_late": "mean days late over the late bills of the last 12 months",
    "arrears": "amount due and unpaid past its due date",
    "unpaid_bills": "bills past their due date and not fully paid",
    "amount_12m": "amount billed in the last 12 months",
}

_KNOWN_FUNCS = {
    "avg": "avg(feature, window): the feature over the window (sums, then the ratio)",
    "min": "min(feature, window): its lowest daily (<= 7d) or monthly value in the window",
    "max": "max(feature, window): its highest daily (<= 7d) or monthly value in the window",
    "alerts": "alerts(type | any, window): alerts raised in the window (at most 90d)",
    "verdicts": "verdicts(acknowledged | closed_by_hand, window): verdicts on its alerts "
                "(at most 90d)",
    "has": "has(set attribute, 'value'): the set holds the value",
    "known": "known(name): the value is known",
    "tag": "tag('id'): the customer carries another tag",
    "abs": "abs(x)",
}


def canonical_tag(text: str) -> str:
    """The one spelling of a tag: lower case, words joined by single hyphens
    (``night_heavy`` and ``Night heavy`` are ``night-heavy``)."""
    return re.sub(r"[^0-9a-z\u4e00-\u9fff]+", "-", str(text).strip().lower()).strip("-")


class CatalogueError(ValueError):
    """The catalogue cannot be used; ``str()`` is one line naming the file, the tag and the
    problem."""


class Names:
    """Every name an expression may use, with its kind (number, text, bool, set)."""

    def __init__(self, schema: Mapping[str, AttributeSpec] | None = None,
                 tag_ids: Iterable[str] = ()) -> None:
        self.schema = dict(schema or {})
        self.kinds: dict[str, str] = {n: "number" for n in WINDOW_FEATURES}
        self.kinds.update({n: "number" for n in SCALAR_FEATURES})
        self.kinds.update({n: "number" for n in BILLING_FEATURES})
        self.kinds.update({n: k for n, (k, _) in BUILTIN_ATTRIBUTES.items()})
        for name, spec in self.schema.items():
            if name in self.kinds:
                raise CatalogueError(f"attribute {name!r} is already a built-in name")
            self.kinds[name] = spec.type
        self.tag_ids = set(tag_ids)

    def _unknown(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.kinds), 1)
        return f"unknown name {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")

    def kind(self, node: Node) -> str:
        """The kind of a node (number, text, bool, set); raises ExprError when it is not
        well formed."""
        if isinstance(node, Num):
            if node.days is not None:
                raise ExprError(f"a window ({node.text}) is only an argument of a function")
            return "number"
        if isinstance(node, Str):
            return "text"
        if isinstance(node, Bool):
            return "bool"
        if isinstance(node, Name):
            if node.name not in self.kinds:
                raise ExprError(self._unknown(node.name))
            k = self.kinds[node.name]
            if k == "set":
                raise ExprError(f"{node.name!r} is a set: use has({node.name}, 'value')")
            return k
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, Not):
            self._truth(node.part)
            return "bool"
        if isinstance(node, Logic):
            for p in node.parts:
                self._truth(p)
            return "bool"
        if isinstance(node, Compare):
            left = self.kind(node.left)
            if isinstance(node.right, tuple):
                for item in node.right:
                    self._same(left, self.kind(item), node)
                if left == "text":
                    self._values(node.left, node.right)
                return "bool"
            right = self.kind(node.right)
            self._same(left, right, node)
            if left == "text" and node.op not in ("==", "!="):
                raise ExprError("text can only be compared with == or !=")
            if left == "text":
                self._values(node.left, (node.right,))
                self._values(node.right, (node.left,))
            return "bool"
        # arithmetic
        for child in (getattr(node, "left", None), getattr(node, "right", None)):
            if child is not None and self.kind(child) != "number":
                raise ExprError("arithmetic needs numbers")
        return "number"

    def _values(self, node: Node, others: tuple[Node, ...]) -> None:
        if isinstance(node, Name):
            if node.name == "customer_class":
                allowed: tuple[str, ...] = CLASSES
            else:
                spec = self.schema.get(node.name)
                allowed = spec.values if spec else ()
            for o in others:
                if allowed and isinstance(o, Str) and o.value not in allowed:
                    raise ExprError(f"{o.value!r} is not a value of {node.name} "
                                    f"({', '.join(allowed)})")

    @staticmethod
    def _same(a: str, b: str, node: Node) -> None:
        num = {"number", "bool"}
        if not (a == b or (a in num and b in num)):
            raise ExprError(f"cannot compare {a} with {b}")

    def _truth(self, node: Node) -> None:
        if self.kind(node) not in ("bool", "number"):
            raise ExprError("and/or/not need conditions, not text")

    def _call(self, node: Call) -> str:
        f, args = node.func, node.args
        if f not in _KNOWN_FUNCS:
            close = difflib.get_close_matches(f, list(_KNOWN_FUNCS), 1)
            raise ExprError(f"unknown function {f!r}" + (f" (did you mean {close[0]!r}?)"
                                                          if close else ""))

        def arity(n: int) -> None:
            if len(args) != n:
                raise ExprError(f"{_KNOWN_FUNCS[f]}: takes {n} argument(s), got {len(args)}")

        if f in ("avg", "min", "max"):
            arity(2)
            feat, win = args
            if not isinstance(feat, Name) or feat.name not in WINDOW_FEATURES:
                got = feat.name if isinstance(feat, Name) else "an expression"
                raise ExprError(f"{f}(): {got!r} is not a window feature "
                                f"({', '.join(WINDOW_FEATURES)})")
            self._window(f, win)
            return "number"
        if f == "alerts":
            arity(2)
            kind, win = args
            name = kind.name if isinstance(kind, Name) else kind.value \
                if isinstance(kind, Str) else None
            if name != "any" and name not in ALERT_TYPES:
                raise ExprError(f"alerts(): unknown alert type {name!r}")
            days = self._window(f, win)
            if days > 92:
                raise ExprError("alerts(): the window is at most 90d")
            return "number"
        if f == "verdicts":
            arity(2)
            kind, win = args
            name = kind.name if isinstance(kind, Name) else kind.value \
                if isinstance(kind, Str) else None
            if name not in VERDICTS:
                raise ExprError(f"verdicts(): unknown verdict {name!r} "
                                f"({', '.join(VERDICTS)})")
            if self._window(f, win) > 92:
                raise ExprError("verdicts(): the window is at most 90d")
            return "number"
        if f == "has":
            arity(2)
            attr, value = args
            if not isinstance(attr, Name) or self.kinds.get(attr.name) != "set":
                raise ExprError(f"has(): the first argument must be a set attribute "
                                f"({', '.join(n for n, k in self.kinds.items() if k == 'set')})")
            if not isinstance(value, Str):
                raise ExprError("has(): the second argument must be a quoted value")
            spec = self.schema[attr.name]
            if spec.values and value.value not in spec.values:
                raise ExprError(f"has(): {value.value!r} is not a value of {attr.name} "
                                f"({', '.join(spec.values)})")
            return "bool"
        if f == "known":
            arity(1)
            if not isinstance(args[0], Name):
                raise ExprError("known(): takes a name")
            if args[0].name not in self.kinds:
                raise ExprError(self._unknown(args[0].name))
            return "bool"
        if f == "tag":
            arity(1)
            if not isinstance(args[0], Str):
                raise ExprError("tag(): takes a quoted tag id")
            if self.tag_ids and args[0].value not in self.tag_ids:
                raise ExprError(f"tag(): unknown tag {args[0].value!r}")
            return "bool"
        arity(1)  # abs
        if self.kind(args[0]) != "number":
            raise ExprError("abs() needs a number")
        return "number"

    @staticmethod
    def _window(f: str, node: Node) -> float:
        if not isinstance(node, Num) or node.days is None:
            raise ExprError(f"{f}(): the second argument must be a window like 90d")
        return node.days

    def check(self, expr: Node) -> None:
        """Raise ExprError unless ``expr`` is a well-formed condition."""
        if self.kind(expr) not in ("bool", "number"):
            raise ExprError("a definition must be a condition, not text")


# ------------------------------------------------------------------------------ the tags
class TagName(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class TagReason(BaseModel):
    """A reason template in each language of the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


#: The languages a tag has a name and a reason in.
LANGUAGES = ("zh", "en")


class TagSpec(BaseModel):
    """One tag as written in the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=TAG_ID, max_length=64)
    name: TagName
    dimension: Literal["basic", "usage", "value", "needs"]
    description: str = Field(min_length=8)
    #: The definition: a condition of the expression language.
    when: str
    #: Customer classes the tag applies to (all when empty).
    classes: tuple[Literal["residential", "commercial", "industrial", "agricultural"], ...] = ()
    #: A sentence with {expression} or {expression:format} slots, shown as the reason: one
    #: per language (``{zh: ..., en: ...}``), or one text for every language.
    reason: str | TagReason | None = None
    group: str | None = None

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, v: Any) -> Any:
        if isinstance(v, dict):
            missing = [k for k in LANGUAGES if not v.get(k)]
            extra = sorted(str(k) for k in v if k not in LANGUAGES)
            if missing or extra:
                raise ValueError(
                    f"a reason per language has {' and '.join(LANGUAGES)}"
                    + (f" (missing: {', '.join(missing)})" if missing else "")
                    + (f" (unknown: {', '.join(extra)})" if extra else ""))
            return TagReason.model_validate(v)
        return v

    @field_validator("classes", mode="before")
    @classmethod
    def _one_class(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v


_SLOT = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class Tag:
    """A checked tag: its spec, its parsed definition and the parsed slots of its reason."""

    spec: TagSpec
    expr: Node
    source: str
    slots: tuple[tuple[str, Node, str], ...] = field(default=())  # (text, node, format), en
    #: Per language: the reason template and its parsed slots (absent: no reason written).
    templates: Mapping[str, tuple[str, tuple[tuple[str, Node, str], ...]]] = field(
        default_factory=dict, compare=False)

    def reason_template(self, lang: str) -> tuple[str, tuple[tuple[str, Node, str], ...]] | None:
        """The reason template of ``lang`` (English when the language is not known) and its
        slots, or None when the catalogue gives no reason."""
        return self.templates.get(lang) or self.templates.get("en")

    def name(self, lang: str) -> str:
        """The tag's name in ``lang`` (the id for a language the catalogue does not know)."""
        return getattr(self.spec.name, lang, None) or self.id

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def dimension(self) -> str:
        return self.spec.dimension

    def deps(self) -> set[str]:
        return {n.args[0].value for n in walk(self.expr)
                if isinstance(n, Call) and n.func == "tag" and n.args
                and isinstance(n.args[0], Str)}


def parse_slots(template: str, names: Names) -> tuple[tuple[str, Node, str], ...]:
    out = []
    for m in _SLOT.finditer(template):
        body = m.group(1)
        text, fmt = body, ""
        head, sep, tail = body.rpartition(":")
        if sep and re.fullmatch(r"%|\.\d+f|d|,\.?\d*f?", tail.strip()):
            text, fmt = head, tail.strip()
        node = parse(text)
        if names.kind(node) not in ("number", "text", "bool"):
            raise ExprError(f"reason slot {{{body}}} is not a value")
        out.append((m.group(0), node, fmt))
    return tuple(out)


class Catalogue:
    """The checked tags, in dependency order (a tag after the tags its definition names)."""

    def __init__(self, tags: list[Tag], names: Names) -> None:
        self.tags = tags
        self.names = names
        self.by_id = {t.id: t for t in tags}

    def __len__(self) -> int:
        return len(self.tags)

    def __iter__(self) -> Any:
        return iter(self.tags)

    @classmethod
    def from_data(cls, docs: list[tuple[str, Any]],
                  schema: Mapping[str, AttributeSpec] | None = None) -> Catalogue:
        """From ``(source, data)`` pairs, each data a mapping with ``tags:`` (and optionally a
        file-wide ``dimension:``)."""
        specs: list[tuple[str, int, TagSpec]] = []
        for source, data in docs:
            if not isinstance(data, dict) or not isinstance(data.get("tags"), list):
                raise CatalogueError(f"{source}: expected a mapping with a list under 'tags'")
            default_dim = data.get("dimension")
            for i, raw in enumerate(data["tags"]):
                ident = raw.get("id") if isinstance(raw, dict) else None
                shown = ident if isinstance(ident, str) and ident.isprintable() else repr(ident)
                where = f"{source}: tags[{i}]" + (f" ({shown})" if ident else "")
                if not isinstance(raw, dict):
                    raise CatalogueError(f"{where}: a tag is a mapping")
                if default_dim and "dimension" not in raw:
                    raw = {**raw, "dimension": default_dim}
                try:
                    specs.append((source, i, TagSpec.model_validate(raw)))
                except ValidationError as exc:
                    e = exc.errors(include_url=False)[0]
                    loc = ".".join(str(x) for x in e["loc"])
                    msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
                    raise CatalogueError(f"{where}: {loc}: {msg}") from None
        seen: dict[str, str] = {}
        for source, _, spec in specs:
            if spec.id in seen:
                raise CatalogueError(f"{source}: tag {spec.id}: duplicate id (also in "
                                     f"{seen[spec.id]})")
            seen[spec.id] = source
        names = Names(schema, seen)
        tags: list[Tag] = []
        for source, _, spec in specs:
            try:
                expr = parse(spec.when)
                names.check(expr)
            except ExprError as exc:
                raise CatalogueError(f"{source}: tag {spec.id}: when: {exc}") from None
            templates: dict[str, tuple[str, tuple[tuple[str, Node, str], ...]]] = {}
            for lang in LANGUAGES:
                text = spec.reason if isinstance(spec.reason, str) \
                    else getattr(spec.reason, lang) if spec.reason is not None else None
                if text is None:
                    continue
                try:
                    templates[lang] = (text, parse_slots(text, names))
                except ExprError as exc:
                    where = "reason" if isinstance(spec.reason, str) else f"reason.{lang}"
                    raise CatalogueError(f"{source}: tag {spec.id}: {where}: {exc}") from None
            slots = templates["en"][1] if "en" in templates else ()
            tags.append(Tag(spec, expr, source, slots, templates))
        return cls(_order(tags), names)

    @classmethod
    def load(cls, path: str | Path, schema: Mapping[str, AttributeSpec] | None = None
             ) -> Catalogue:
        """A catalogue file, or every ``*.yaml`` of a folder except ``attributes.yaml`` and
        ``strategies.yaml``; the declared attributes come from ``attributes.yaml`` beside them
        (and ``schema``)."""
        path = Path(path)
        files = sorted(p for p in path.glob("*.yaml")
                       if p.name not in NOT_TAGS) \
            if path.is_dir() else [path]
        folder = path if path.is_dir() else path.parent
        full = dict(load_schema(folder / "attributes.yaml")) \
            if (folder / "attributes.yaml").exists() else {}
        full.update(schema or {})
        docs = [(str(f), _read_yaml(f)) for f in files]
        return cls.from_data(docs, full)

    def for_class(self, customer_class: str) -> list[Tag]:
        return [t for t in self.tags if not t.spec.classes or customer_class in t.spec.classes]


#: Files of a catalogue folder that hold no tags.
NOT_TAGS = ("attributes.yaml", "strategies.yaml", "relevance.yaml")


def _order(tags: list[Tag]) -> list[Tag]:
    by_id = {t.id: t for t in tags}
    done: dict[str, bool] = {}
    out: list[Tag] = []

    def visit(t: Tag, path: tuple[str, ...]) -> None:
        if done.get(t.id):
            return
        if t.id in path:
            cycle = " -> ".join((*path[path.index(t.id):], t.id))
            raise CatalogueError(f"{t.source}: tag {t.id}: definitions refer to each other "
                                 f"({cycle})")
        for d in sorted(t.deps()):
            visit(by_id[d], (*path, t.id))
        done[t.id] = True
        out.append(t)

    for t in tags:
        visit(t, ())
    return out


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise CatalogueError(f"{path}:{where} not valid YAML") from None


def load_schema(path: str | Path) -> dict[str, AttributeSpec]:
    """Declared attributes (``attributes:`` name -> type, source, values, min, max)."""
    path = Path(path)
    data = _read_yaml(path) or {}
    raw = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: expected a mapping under 'attributes'")
    out: dict[str, AttributeSpec] = {}
    for name, spec in raw.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            raise CatalogueError(f"{path}: attribute {name!r}: names are lower_snake_case")
        try:
            out[name] = AttributeSpec.model_validate(spec)
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            raise CatalogueError(f"{path}: attribute {name}: "
                                 f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}") from None
    return out
