"""The tag expression language: a tokenizer, a recursive-descent parser and an evaluator.

An expression is text in a tag definition or a route, for example::

    avg(valley_share, 90d) >= 40% and customer_class in ('industrial', 'commercial')
    not has(programs, 'demand_response') and max(peak_kw, 365d) > 0.9 * contracted_kva
    alerts(outage, 90d) >= 3 or tag('hospital')

Grammar (lowest precedence first)::

    expr  := or
    or    := and ('or' and)*
    and   := not ('and' not)*
    not   := 'not' not | cmp
    cmp   := sum [('<' | '<=' | '>' | '>=' | '==' | '!=') sum | ['not'] 'in' list]
    sum   := prod (('+' | '-') prod)*
    prod  := unary (('*' | '/') unary)*
    unary := '-' unary | atom
    atom  := NUMBER ['%'] | DURATION | STRING | 'true' | 'false' | NAME
           | NAME '(' [expr (',' expr)*] ')' | '(' expr ')'
    list  := ('(' | '[') [literal (',' literal)*] (')' | ']')

Nothing is ever handed to Python's ``eval``: the parser builds a small tree of frozen nodes and
the evaluator walks it. Evaluation is vectorised: a name stands for a numpy array with one value
per customer (NaN or None where unknown), and logic is three-valued (Kleene): a comparison with
an unknown operand is unknown, ``False and unknown`` is False, and a tag is given only where its
expression is certainly true.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = [
    "Call",
    "Categorical",
    "Compare",
    "Env",
    "ExprError",
    "Logic",
    "Name",
    "Node",
    "Not",
    "Num",
    "Str",
    "evaluate",
    "parse",
    "render",
    "walk",
]


class ExprError(ValueError):
    """An expression cannot be parsed or checked; ``str()`` says what and where (column)."""


# ------------------------------------------------------------------------------- tokens
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<dur>\d+(?:\.\d+)?[dw](?![A-Za-z0-9_]))
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?%?)
  | (?P<str>'[^'\\]*'|"[^"\\]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
""", re.VERBOSE)

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
MAX_LENGTH = 2000
MAX_DEPTH = 40


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, dur, str, name, op, kw, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; raises ExprError naming the column of an unexpected character."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        kind = m.lastgroup or "ws"
        if kind != "ws":
            value = m.group()
            if kind == "name" and value in _KEYWORDS:
                kind = "kw"
            out.append(Token(kind, value, pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# ------------------------------------------------------------------------------- nodes
class Node:
    """Base of the syntax tree."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Num(Node):
    value: float
    text: str  # as written (``40%``, ``90d``)
    days: float | None = None  # set for a duration


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # < <= > >= == != in notin
    left: Node
    right: Node | tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Logic(Node):
    op: str  # and, or
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    part: Node


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: str  # + - * / neg
    left: Node
    right: Node | None = None


# ------------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, msg: str, tok: Token | None = None) -> ExprError:
        tok = tok or self.peek()
        where = "at the end" if tok.kind == "end" else f"at column {tok.pos + 1}"
        return ExprError(f"{msg} {where}")

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        tok = self.peek()
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, text: str) -> Token:
        tok = self.accept(kind, text)
        if tok is None:
            got = self.peek().text or "the end"
            raise self.error(f"expected {text!r}, found {got!r}")
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return node

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.accept("kw", "or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Logic("or", tuple(parts))

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.accept("kw", "and"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else Logic("and", tuple(parts))

    def not_(self) -> Node:
        if self.accept("kw", "not"):
            self._nest()
            node = Not(self.not_())
            self.depth -= 1
            return node
        return self.cmp()

    def cmp(self) -> Node:
        left = self.sum_()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("<", "<=", ">", ">=", "==", "!="):
            self.take()
            return Compare(tok.text, left, self.sum_())
        if tok.kind == "kw" and tok.text == "in":
            self.take()
            return Compare("in", left, self.literal_list())
        if tok.kind == "kw" and tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.i += 2
            return Compare("notin", left, self.literal_list())
        return left

    def literal_list(self) -> tuple[Node, ...]:
        opener = self.peek()
        if not (self.accept("op", "(") or self.accept("op", "[")):
            raise self.error("expected a list like ('a', 'b')")
        closer = ")" if opener.text == "(" else "]"
        items: list[Node] = []
        if not self.accept("op", closer):
            while True:
                item = self.atom()
                if not isinstance(item, Num | Str | Bool):
                    raise self.error("a list holds numbers and strings only", opener)
                items.append(item)
                if self.accept("op", closer):
                    break
                self.expect("op", ",")
        return tuple(items)

    def sum_(self) -> Node:
        node = self.prod()
        while (tok := self.peek()).kind == "op" and tok.text in ("+", "-"):
            self.take()
            node = Arith(tok.text, node, self.prod())
        return node

    def prod(self) -> Node:
        node = self.unary()
        while (tok := self.peek()).kind == "op" and tok.text in ("*", "/"):
            self.take()
            node = Arith(tok.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("op", "-"):
            self._nest()
            node = self.unary()
            self.depth -= 1
            if isinstance(node, Num) and node.days is None:
                return Num(-node.value, "-" + node.text)
            return Arith("neg", node)
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            text = tok.text
            value = float(text.rstrip("%"))
            if text.endswith("%"):
                value /= 100.0
            if not math.isfinite(value):
                raise self.error(f"number {text!r} is out of range", tok)
            return Num(value, text)
        if tok.kind == "dur":
            n = float(tok.text[:-1])
            days = n * (7 if tok.text.endswith("w") else 1)
            if not 1 <= days <= 3660:
                raise self.error(f"window {tok.text!r} must be 1 day to 10 years", tok)
            return Num(days, tok.text, days)
        if tok.kind == "str":
            return Str(tok.text[1:-1])
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Bool(tok.text == "true")
        if tok.kind == "name":
            if self.accept("op", "("):
                args: list[Node] = []
                if not self.accept("op", ")"):
                    self._nest()
                    while True:
                        args.append(self.or_())
                        if self.accept("op", ")"):
                            break
                        self.expect("op", ",")
                    self.depth -= 1
                return Call(tok.text, tuple(args))
            return Name(tok.text)
        if tok.kind == "op" and tok.text == "(":
            self._nest()
            node = self.or_()
            self.expect("op", ")")
            self.depth -= 1
            return node
        self.i -= 1
        raise self.error(f"expected a value, found {tok.text or 'the end'!r}", tok)


def parse(text: str) -> Node:
    """The syntax tree of ``text``; raises ExprError with the column of the first problem."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty expression")
    return _Parser(text).parse()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents first."""
    yield node
    if isinstance(node, Call):
        for a in node.args:
            yield from walk(a)
    elif isinstance(node, Compare):
        yield from walk(node.left)
        rights = node.right if isinstance(node.right, tuple) else (node.right,)
        for r in rights:
            yield from walk(r)
    elif isinstance(node, Logic):
        for p in node.parts:
            yield from walk(p)
    elif isinstance(node, Not):
        yield from walk(node.part)
    elif isinstance(node, Arith):
        yield from walk(node.left)
        if node.right is not None:
            yield from walk(node.right)


def render(node: Node) -> str:
    """Canonical text of a tree (``parse(render(t)) == t``)."""
    if isinstance(node, Num):
        return node.text
    if isinstance(node, Str):
        return "'" + node.value + "'"
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"{node.func}({', '.join(render(a) for a in node.args)})"
    if isinstance(node, Compare):
        if isinstance(node.right, tuple):
            op = "not in" if node.op == "notin" else "in"
            return f"{_paren(node.left)} {op} ({', '.join(render(x) for x in node.right)})"
        return f"{_paren(node.left)} {node.op} {_paren(node.right)}"
    if isinstance(node, Logic):
        return f" {node.op} ".join(f"({render(p)})" if isinstance(p, Logic) else render(p)
                                   for p in node.parts)
    if isinstance(node, Not):
        return f"not ({render(node.part)})"
    if isinstance(node, Arith):
        if node.op == "neg":
            return f"-({render(node.left)})"
        assert node.right is not None
        return f"({render(node.left)} {node.op} {render(node.right)})"
    raise TypeError(type(node).__name__)


def _paren(node: Node) -> str:
    text = render(node)
    return f"({text})" if isinstance(node, Compare | Logic | Not) else text


# ------------------------------------------------------------------------------- evaluation
class Env(Protocol):
    """What an expression reads: one value per customer, as numpy arrays of equal length."""

    size: int

    def name(self, name: str) -> Any:
        """A numeric (float, NaN = unknown) or string (object, None = unknown) array."""

    def call(self, func: str, args: tuple[Node, ...]) -> Any:
        """A function of the language (windows, ``has``, ``alerts``, ``tag``)."""


_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
    "==": np.equal, "!=": np.not_equal,
}
T, F, U = 1.0, 0.0, math.nan


class Categorical:
    """A text column as integer codes into its distinct values (-1: unknown), so comparing a
    million customers' classes with a literal is one integer comparison."""

    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values: list[str]) -> None:
        self.codes = codes
        self.values = values

    @classmethod
    def of(cls, items: Any) -> Categorical:
        index: dict[str, int] = {}
        codes = np.fromiter((-1 if x is None else index.setdefault(str(x), len(index))
                             for x in items), np.int32)
        return cls(codes, list(index))

    def __len__(self) -> int:
        return len(self.codes)

    def objects(self) -> np.ndarray:
        table = np.asarray([*self.values, None], dtype=object)
        return table[np.where(self.codes < 0, len(self.values), self.codes)]

    def code(self, value: str) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            return -2  # matches no row


def _is_text(v: Any) -> bool:
    return isinstance(v, str | Categorical) or (isinstance(v, np.ndarray) and v.dtype == object)


def truth(v: Any, size: int) -> np.ndarray:
    """A three-valued array (1.0, 0.0, NaN) from a boolean, numeric or truth value."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(size, float(arr))
    return np.where(np.isnan(arr), U, np.where(arr != 0, T, F))


def evaluate(node: Node, env: Env) -> Any:
    """The value of ``node`` for every customer of ``env``: a float array (numbers and
    three-valued truths), or an object array (text)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Bool):
        return T if node.value else F
    if isinstance(node, Name):
        return env.name(node.name)
    if isinstance(node, Call):
        return env.call(node.func, node.args)
    if isinstance(node, Not):
        return 1.0 - _condition(node.part, env)
    if isinstance(node, Logic):
        vals = [_condition(p, env) for p in node.parts]
        if node.op == "and":
            # Kleene and: the minimum, where an unknown counts between false and true
            low = vals[0] == F
            high = vals[0] == T
            for v in vals[1:]:
                low |= v == F
                high &= v == T
            return np.where(low, F, np.where(high, T, U))
        high = vals[0] == T
        low = vals[0] == F
        for v in vals[1:]:
            high |= v == T
            low &= v == F
        return np.where(high, T, np.where(low, F, U))
    if isinstance(node, Compare):
        return _compare(node, env)
    if isinstance(node, Arith):
        a = _number(evaluate(node.left, env), node.left)
        if node.op == "neg":
            return -a
        assert node.right is not None
        b = _number(evaluate(node.right, env), node.right)
        with np.errstate(all="ignore"):
            if node.op == "+":
                return a + b
            if node.op == "-":
                return a - b
            if node.op == "*":
                return a * b
            out = np.divide(a, b)
            return np.where(np.isfinite(out), out, np.nan) if isinstance(out, np.ndarray) \
                else (out if math.isfinite(out) else math.nan)
    raise ExprError(f"cannot evaluate {type(node).__name__}")


def _condition(node: Node, env: Env) -> np.ndarray:
    """A sub-expression as a three-valued array (comparisons and logic are one already)."""
    v = evaluate(node, env)
    if isinstance(node, Compare | Logic | Not) and isinstance(v, np.ndarray) \
            and v.shape == (env.size,):
        return v
    return truth(v, env.size)


def _number(v: Any, node: Node) -> Any:
    if _is_text(v):
        raise ExprError(f"{render(node)} is text, not a number")
    return np.asarray(v, dtype=np.float64) if isinstance(v, np.ndarray) else float(v)


def _unknown_text(a: Any, size: int) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return np.fromiter((x is None for x in a), bool, len(a))
    return np.full(size, a is None)


def _compare(node: Compare, env: Env) -> np.ndarray:
    size = env.size
    left = evaluate(node.left, env)
    if isinstance(node.right, tuple) and isinstance(left, Categorical):
        codes = [left.code(x.value) for x in node.right if isinstance(x, Str)]
        hit = np.isin(left.codes, codes)
        if node.op == "notin":
            hit = ~hit
        return np.where(left.codes < 0, U, np.where(hit, T, F))
    if isinstance(left, Categorical) and isinstance(node.right, Node):
        right0 = evaluate(node.right, env)
        if isinstance(right0, str) and node.op in ("==", "!="):
            hit = left.codes == left.code(right0)
            if node.op == "!=":
                hit = ~hit
            return np.where(left.codes < 0, U, np.where(hit, T, F))
    if isinstance(left, Categorical):
        left = left.objects()
    if isinstance(node.right, tuple):
        values = [evaluate(x, env) for x in node.right]
        if _is_text(left):
            arr = np.asarray(left, dtype=object) if isinstance(left, np.ndarray) \
                else np.full(size, left, dtype=object)
            hit = np.isin(arr, np.asarray(values, dtype=object))
            unknown = _unknown_text(arr, size)
        else:
            num = np.broadcast_to(np.asarray(left, dtype=np.float64), (size,))
            hit = np.isin(num, np.asarray(values, dtype=np.float64))
            unknown = np.isnan(num)
        if node.op == "notin":
            hit = ~hit
        return np.where(unknown, U, np.where(hit, T, F))
    right = evaluate(node.right, env)
    if isinstance(right, Categorical):
        right = right.objects()
    if _is_text(left) or _is_text(right):
        if node.op not in ("==", "!="):
            raise ExprError(f"text can only be compared with == or != "
                            f"({render(node)})")
        la = left if isinstance(left, np.ndarray) else np.full(size, left, dtype=object)
        ra = right if isinstance(right, np.ndarray) else np.full(size, right, dtype=object)
        eq = np.fromiter((x == y for x, y in zip(la, ra, strict=True)), bool, size)
        unknown = _unknown_text(la, size) | _unknown_text(ra, size)
        hit = eq if node.op == "==" else ~eq
        return np.where(unknown, U, np.where(hit, T, F))
    a = np.broadcast_to(np.asarray(left, dtype=np.float64), (size,))
    b = np.broadcast_to(np.asarray(right, dtype=np.float64), (size,))
    with np.errstate(invalid="ignore"):
        hit = _CMP[node.op](a, b)
    return np.where(np.isnan(a) | np.isnan(b), U, np.where(hit, T, F))
