"""Tag expressions over one alert's or one customer's labels: what routes (``when:``) and
service strategies match on, in the same language as the catalogue.

Names are the label keys (``type``, ``severity``, ``customer_class``, ``grid_cell``,
``customer_id``, ``meter_id``, ``segment``); ``tag('valley-shifter')`` is true when the labels
carry the tag (in any spelling: ``night_heavy`` is ``night-heavy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gridwatch.tags._catalogue import canonical_tag
from gridwatch.tags._expr import (
    Call,
    Compare,
    ExprError,
    Name,
    Node,
    Str,
    T,
    evaluate,
    parse,
    truth,
    walk,
)

__all__ = ["LABEL_NAMES", "LabelExpr"]

LABEL_NAMES = ("type", "severity", "customer_class", "grid_cell", "customer_id", "meter_id",
               "segment")


class _LabelEnv:
    size = 1

    def __init__(self, labels: Mapping[str, Any], tags: frozenset[str]) -> None:
        self.labels = labels
        self.tags = tags

    def name(self, name: str) -> Any:
        v = self.labels.get(name)
        return np.asarray([None if v is None else str(v)], dtype=object)

    def call(self, func: str, args: tuple[Node, ...]) -> Any:
        if func == "tag":
            return np.asarray([float(canonical_tag(args[0].value) in self.tags)])
        if func == "known":
            return np.asarray([float(self.labels.get(args[0].name) is not None)])
        raise ExprError(f"unknown function {func!r}")


class LabelExpr:
    """A checked expression over labels; ``matches(labels)`` is a pure function."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.node = parse(text)
        for n in walk(self.node):
            if isinstance(n, Name) and n.name not in LABEL_NAMES:
                raise ExprError(f"unknown label {n.name!r} (known: {', '.join(LABEL_NAMES)}; "
                                f"tags as tag('id'))")
            if isinstance(n, Call):
                if n.func not in ("tag", "known") or len(n.args) != 1:
                    raise ExprError(f"{n.func}(): only tag('id') and known(label) are "
                                    f"allowed here")
                if n.func == "tag" and not isinstance(n.args[0], Str):
                    raise ExprError("tag(): takes a quoted tag id")
                if n.func == "known" and not isinstance(n.args[0], Name):
                    raise ExprError("known(): takes a label name")
        for n in walk(self.node):
            if isinstance(n, Compare) and n.op not in ("==", "!=", "in", "notin"):
                raise ExprError("labels are text: compare with ==, != or in")

    def matches(self, labels: Mapping[str, Any]) -> bool:
        raw = labels.get("tags") or ()
        tags = frozenset(canonical_tag(t) for t in ((raw,) if isinstance(raw, str) else raw))
        try:
            v = evaluate(self.node, _LabelEnv(labels, tags))
        except ExprError:
            return False
        return bool(truth(v, 1)[0] == T)

    def __repr__(self) -> str:
        return f"LabelExpr({self.text!r})"
