"""Evaluating the catalogue over many customers at once, and the reason of each tag.

``TagEngine.evaluate`` takes the feature rows of n customers (a ``FeatureTable`` or a slice of
it), their attributes (registry, imported customer and CRM attributes, billing figures) and the
day, and returns one boolean array per tag. Every tag is a few numpy operations over all
customers, so a million customers take seconds, not hours (``benchmarks/tags.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from gridwatch.tags._catalogue import Catalogue, Names, Tag
from gridwatch.tags._expr import (
    Call,
    Categorical,
    Compare,
    ExprError,
    Name,
    Node,
    Num,
    Str,
    T,
    evaluate,
    render,
    truth,
    walk,
)
from gridwatch.tags._features import (
    DEFAULT_WINDOW,
    SCALAR_FEATURES,
    WINDOW_FEATURES,
    aggregate,
    alert_count,
    alert_table,
    scalar_feature,
    window_feature,
)

__all__ = ["Attributes", "TagEngine", "TagHit", "format_value"]


class Attributes:
    """Attribute columns of n customers, from one mapping per customer. Numbers become float
    arrays (NaN unknown), text object arrays (None unknown), yes/no 1.0/0.0, sets frozensets."""

    def __init__(self, records: Sequence[Mapping[str, Any]], kinds: Mapping[str, str]) -> None:
        self.size = len(records)
        self.records = records
        self.kinds = kinds
        self._cols: dict[str, np.ndarray] = {}
        self._cats: dict[str, Categorical] = {}
        self._sets: dict[str, tuple[np.ndarray, dict[str, list[int]]]] = {}

    def column(self, name: str) -> np.ndarray:
        col = self._cols.get(name)
        if col is not None:
            return col
        kind = self.kinds.get(name, "number")
        values = [r.get(name) for r in self.records]
        if kind == "set":
            col = np.empty(self.size, dtype=object)
            col[:] = [None if v is None else frozenset(v) for v in values]
        elif kind == "text":
            col = np.asarray([None if v is None else str(v) for v in values], dtype=object)
        else:
            col = np.array(values, dtype=np.float64)  # None becomes NaN
        self._cols[name] = col
        return col

    def text(self, name: str) -> Categorical:
        """A text column as codes (built once)."""
        key = f"\0text:{name}"
        cat = self._cats.get(key)
        if cat is None:
            cat = self._cats[key] = Categorical.of(self.column(name))
        return cat

    def members(self, name: str, value: str) -> np.ndarray:
        """Three-valued ``value in`` the set column ``name`` (built once per column)."""
        sets = self._sets.get(name)
        if sets is None:
            col = self.column(name)
            unknown = np.fromiter((s is None for s in col), bool, self.size)
            index: dict[str, list[int]] = {}
            for i, s in enumerate(col):
                if s:
                    for v in s:
                        index.setdefault(v, []).append(i)
            sets = self._sets[name] = (unknown, index)
        unknown, index = sets
        out = np.zeros(self.size)
        out[index.get(value, [])] = 1.0
        out[unknown] = math.nan
        return out

    def slice(self, rows: Sequence[int]) -> Attributes:
        return Attributes([self.records[i] for i in rows], self.kinds)


class _Env:
    def __init__(self, state: np.ndarray, attrs: Attributes, today: date,
                 names: Names) -> None:
        self.state = state
        self.size = len(state)
        self.attrs = attrs
        self.today = today
        self.names = names
        self.tags: dict[str, np.ndarray] = {}
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}
        self._shared: dict[str, np.ndarray] = {}

    def _cached(self, key: tuple[Any, ...], fn: Any) -> np.ndarray:
        v = self._cache.get(key)
        if v is None:
            v = self._cache[key] = fn()
        return v

    def _agg(self, days: float) -> np.ndarray:
        return self._cached(("agg", days), lambda: aggregate(self.state, self.today, days))

    def name(self, name: str) -> Any:
        if name in WINDOW_FEATURES:
            return self._cached(("avg", name, DEFAULT_WINDOW), lambda: window_feature(
                self.state, name, "avg", self.today, DEFAULT_WINDOW,
                self._agg(DEFAULT_WINDOW)))
        if name in SCALAR_FEATURES:
            return self._cached(("s", name), lambda: scalar_feature(
                self.state, name, self.today, self._shared))
        kind = self.names.kinds.get(name)
        if kind == "text":
            return self.attrs.text(name)
        if kind is not None:
            return self.attrs.column(name)
        raise ExprError(f"unknown name {name!r}")

    def call(self, func: str, args: tuple[Node, ...]) -> Any:
        if func in ("avg", "min", "max"):
            feat, win = args
            assert isinstance(feat, Name) and isinstance(win, Num) and win.days is not None
            days = win.days
            return self._cached((func, feat.name, days), lambda: window_feature(
                self.state, feat.name, func, self.today, days,
                self._agg(days) if func == "avg" else None))
        if func in ("alerts", "verdicts"):
            kind, win = args
            etype = kind.name if isinstance(kind, Name) else kind.value
            assert isinstance(win, Num) and win.days is not None
            days = win.days
            table = self._cached(("alerts", days), lambda: alert_table(
                self.state, self.today, days))
            return alert_count(self.state, None if etype == "any" else etype, self.today,
                               days, table)
        if func == "has":
            attr, value = args
            assert isinstance(attr, Name) and isinstance(value, Str)
            return self.attrs.members(attr.name, value.value)
        if func == "known":
            v = self.name(args[0].name)
            if isinstance(v, Categorical):
                return (v.codes >= 0).astype(np.float64)
            if isinstance(v, np.ndarray) and v.dtype == object:
                return np.fromiter((x is not None for x in v), np.float64, self.size)
            return (~np.isnan(np.broadcast_to(np.asarray(v, np.float64), (self.size,)))
                    ).astype(np.float64)
        if func == "tag":
            ident = args[0].value
            hit = self.tags.get(ident)
            return np.zeros(self.size) if hit is None else hit.astype(np.float64)
        if func == "abs":
            return np.abs(evaluate(args[0], self))
        raise ExprError(f"unknown function {func!r}")


def _unit(node: Node) -> str:
    if isinstance(node, Name):
        f = WINDOW_FEATURES.get(node.name)
        if f:
            return f.unit
        s = SCALAR_FEATURES.get(node.name)
        return s[0] if s else ""
    if isinstance(node, Call) and node.func in ("avg", "min", "max") and node.args \
            and isinstance(node.args[0], Name):
        f = WINDOW_FEATURES.get(node.args[0].name)
        return f.unit if f else ""
    if isinstance(node, Num) and node.text.endswith("%"):
        return "share"
    return ""


#: How each language says that a figure is not known.
UNKNOWN = {"en": "unknown", "zh": "未知"}


def format_value(v: Any, fmt: str = "", unit: str = "", lang: str = "en") -> str:
    """A value as a manager reads it: shares in percent, large numbers without decimals."""
    if v is None:
        return UNKNOWN.get(lang, "unknown")
    if isinstance(v, str):
        return v
    x = float(v)
    if math.isnan(x):
        return UNKNOWN.get(lang, "unknown")
    if fmt == "d":
        return f"{x:,.0f}"
    if fmt == "%" or (not fmt and unit == "share"):
        return f"{x * 100:.0f} %"
    if fmt:
        try:
            return format(x, fmt)
        except ValueError:
            pass
    if unit == "ratio" and abs(x) < 10:
        return f"{x:.2f}"
    if abs(x) >= 100 or x == int(x):
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _at(v: Any, i: int) -> Any:
    if isinstance(v, Categorical):
        c = int(v.codes[i])
        return None if c < 0 else v.values[c]
    if isinstance(v, np.ndarray):
        return v[i]
    return v


def _says(leaf: Node) -> str:
    """A condition that holds, in words: ``is night-heavy``, ``programs include app``."""
    if isinstance(leaf, Call) and leaf.func == "tag" and isinstance(leaf.args[0], Str):
        return f"is {leaf.args[0].value}"
    if isinstance(leaf, Call) and leaf.func == "has" and isinstance(leaf.args[0], Name) \
            and isinstance(leaf.args[1], Str):
        return f"{leaf.args[0].name} include {leaf.args[1].value}"
    if isinstance(leaf, Compare) and isinstance(leaf.right, tuple):
        return render(leaf)
    return render(leaf).replace("_", " ")


@dataclass(frozen=True, slots=True)
class TagHit:
    """A tag a customer carries, with the reason a person reads."""

    tag: str
    reason: str
    dimension: str
    #: The reason in Chinese (the tag's Chinese name, then the reason).
    reason_zh: str = ""

    def text(self, lang: str) -> str:
        """The reason in ``lang`` (English when there is none in that language)."""
        return self.reason_zh if lang == "zh" and self.reason_zh else self.reason


class TagEngine:
    """Evaluates a catalogue: which customers carry which tag, and why."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def env(self, state: np.ndarray, attrs: Attributes, today: date) -> _Env:
        return _Env(state, attrs, today, self.catalogue.names)

    def evaluate(self, state: np.ndarray, attrs: Attributes, today: date,
                 env: _Env | None = None) -> dict[str, np.ndarray]:
        """Tag id -> boolean array over the n customers (rows of ``state``)."""
        env = env or self.env(state, attrs, today)
        cls_col = attrs.text("customer_class")
        class_masks: dict[tuple[str, ...], np.ndarray] = {}
        out: dict[str, np.ndarray] = {}
        for tag in self.catalogue.tags:
            hit = truth(evaluate(tag.expr, env), env.size) == T
            classes = tag.spec.classes
            if classes:
                mask = class_masks.get(classes)
                if mask is None:
                    mask = class_masks[classes] = np.isin(
                        cls_col.codes, [cls_col.code(c) for c in classes])
                hit &= mask
            out[tag.id] = hit
            env.tags[tag.id] = hit
        return out

    def reasons(self, tag: Tag, env: _Env, rows: np.ndarray, lang: str = "en",
                values: dict[str, Any] | None = None) -> list[str]:
        """The reason of ``tag`` in ``lang`` for each of ``rows`` (customers that carry it);
        ``values`` keeps the slots' values between the languages of one tag."""
        found = tag.reason_template(lang)
        if found is not None and not found[1]:
            return [found[0]] * len(rows)
        if found is not None:
            template, slots = found
            memo = values if values is not None else {}
            filled = []
            for text, node, fmt in slots:
                if text not in memo:
                    memo[text] = evaluate(node, env)
                filled.append((text, memo[text], fmt, _unit(node)))
            out = []
            for i in rows:
                s = template
                for text, v, fmt, unit in filled:
                    s = s.replace(text, format_value(_at(v, i), fmt, unit, lang), 1)
                out.append(s)
            return out
        kinds = self.catalogue.names.kinds
        leaves = [n for n in walk(tag.expr) if isinstance(n, Compare)
                  or (isinstance(n, Call) and n.func in ("has", "tag"))
                  or (isinstance(n, Name) and kinds.get(n.name) == "bool")]
        parts = []
        for leaf in leaves:
            try:
                hit = truth(evaluate(leaf, env), env.size)
            except ExprError:
                continue
            if isinstance(leaf, Compare) and not isinstance(leaf.right, tuple):
                left = evaluate(leaf.left, env)
                unit = _unit(leaf.left) or _unit(leaf.right)
                parts.append((leaf, hit, left, unit))
            else:
                parts.append((leaf, hit, None, ""))
        out = []
        for i in rows:
            said = []
            for leaf, hit, left, unit in parts:
                if hit[i] != T:
                    continue
                if left is not None and isinstance(leaf, Compare) \
                        and not isinstance(leaf.right, tuple):
                    said.append(f"{render(leaf.left)} = {format_value(_at(left, i), '', unit)}"
                                f" ({leaf.op} {render(leaf.right)})")
                else:
                    said.append(_says(leaf))
            out.append("; ".join(said) if said else render(tag.expr))
        return out

    def tag_customers(self, state: np.ndarray, attrs: Attributes, today: date
                      ) -> list[list[TagHit]]:
        """Every customer's tags with their reasons, in catalogue order."""
        env = self.env(state, attrs, today)
        hits = self.evaluate(state, attrs, today, env)
        per: list[list[TagHit]] = [[] for _ in range(env.size)]
        for tag in self.catalogue.tags:
            rows = np.flatnonzero(hits[tag.id])
            if len(rows) == 0:
                continue
            memo: dict[str, Any] = {}
            en = self.reasons(tag, env, rows, "en", memo)
            zh = self.reasons(tag, env, rows, "zh", memo)
            name = tag.name("zh")
            for i, why, why_zh in zip(rows, en, zh, strict=True):
                per[i].append(TagHit(tag.id, f"tagged {tag.id}: {why}", tag.dimension,
                                     f"{name}：{why_zh}"))
        return per
