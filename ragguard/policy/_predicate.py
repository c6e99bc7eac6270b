"""The compiled predicate: decides one chunk's metadata in microseconds.

Each residual IR expression becomes a closure over the chunk's *normalized* metadata
(only the attributes the plan reads are normalized). The semantics are those of
:mod:`ragguard._values`, identical to what the stores push down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from casbin import util as casbin_util

from ragguard._values import (
    ABSENT,
    MAX_INT_BITS,
    ORDERING_OPERATORS,
    describe,
    elements,
    kind_of,
    normalize_value,
    scalar_order,
)
from ragguard.policy import ir

__all__ = [
    "MATCH_FUNCTIONS",
    "Check",
    "LineIndex",
    "compile_check",
    "describe_condition",
    "explain_failure",
    "normalize_metadata",
    "required_equalities",
    "unsatisfiable",
]

Metadata: TypeAlias = Mapping[str, object]
Check: TypeAlias = Callable[[Metadata], bool]

MATCH_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "keyMatch": casbin_util.key_match,
    "keyMatch2": casbin_util.key_match2,
    "keyMatch3": casbin_util.key_match3,
    "keyMatch4": casbin_util.key_match4,
    "keyMatch5": casbin_util.key_match5,
    "regexMatch": casbin_util.regex_match,
    "globMatch": casbin_util.glob_match,
}
"""Casbin's own matching functions, called directly (exact Casbin semantics)."""


def normalize_metadata(metadata: Mapping[str, Any], fields: frozenset[str]) -> dict[str, object]:
    """Normalize the attributes a plan reads; raises MalformedValueError if one is unusable."""
    out: dict[str, object] = {}
    for name in fields:
        value = metadata.get(name)
        kind = type(value)
        if (
            kind is str
            or kind is bool
            or (type(value) is int and value.bit_length() <= MAX_INT_BITS)
        ):
            out[name] = value  # already normal: skip the general path (and its message)
        else:
            out[name] = normalize_value(value, where=f"metadata attribute {name!r}")
    return out


def compile_check(expr: ir.Expr, shared: dict[ir.Expr, Check] | None = None) -> Check:
    """A closure deciding ``expr`` on normalized metadata.

    The closures run once per retrieved hit, so they avoid generators and dispatch on
    the exact built-in type first; anything unusual takes the general path of
    :mod:`ragguard._values`. ``shared`` memoises sub-expressions, so the lines of one
    plan that repeat a condition (the same tenant list on every line) share one closure.
    """
    if shared is None:
        shared = {}
    check = shared.get(expr)
    if check is None:
        check = shared[expr] = _compile(expr, shared)
    return check


def _compile(expr: ir.Expr, shared: dict[ir.Expr, Check]) -> Check:
    if isinstance(expr, ir.Const):
        result = expr.value
        return lambda md: result
    if isinstance(expr, ir.And):
        return _all_of(tuple(compile_check(item, shared) for item in expr.items))
    if isinstance(expr, ir.Or):
        return _any_of(tuple(compile_check(item, shared) for item in expr.items))
    if isinstance(expr, ir.Not):
        inner = compile_check(expr.item, shared)
        return lambda md: not inner(md)
    if isinstance(expr, ir.Eq):
        return _equality_check(expr.field, (expr.value,))
    if isinstance(expr, ir.In):
        return _equality_check(expr.field, expr.values)
    if isinstance(expr, ir.Exists):
        name = expr.field
        return lambda md: md[name] is not ABSENT
    if isinstance(expr, ir.Range):
        return _range_check(expr)
    if isinstance(expr, ir.Contains):
        return _contains_check(expr)
    if isinstance(expr, ir.Within):
        return _within_check(expr)
    return _match_check(expr)


def _all_of(parts: tuple[Check, ...]) -> Check:
    if len(parts) == 2:
        first, second = parts
        return lambda md: first(md) and second(md)

    def all_of(md: Metadata) -> bool:
        for part in parts:  # noqa: SIM110 (a loop: all() over a generator is slower here)
            if not part(md):
                return False
        return True

    return all_of


def _any_of(parts: tuple[Check, ...]) -> Check:
    if len(parts) == 2:
        first, second = parts
        return lambda md: first(md) or second(md)

    def any_of(md: Metadata) -> bool:
        for part in parts:  # noqa: SIM110 (a loop: any() over a generator is slower here)
            if part(md):
                return True
        return False

    return any_of


_NO_VALUES: frozenset[Any] = frozenset()
_TYPE_OF_KIND = {"str": str, "number": int, "bool": bool}


def _equality_check(name: str, values: tuple[ir.Scalar, ...]) -> Check:
    # Split by kind so set lookups cannot confuse True with 1 or "1" with 1.
    strings = frozenset(v for v in values if kind_of(v) == "str") or _NO_VALUES
    numbers = frozenset(v for v in values if kind_of(v) == "number") or _NO_VALUES
    bools = frozenset(v for v in values if kind_of(v) == "bool") or _NO_VALUES
    by_type: dict[type, frozenset[Any]] = {
        str: strings,
        int: numbers,
        float: numbers,
        bool: bools,
    }

    def check(md: Metadata) -> bool:
        value = md[name]
        group = by_type.get(type(value))
        if group is not None:
            return value in group
        return _equal_to_any(value, by_type)  # a list, ABSENT, or a scalar subclass

    return check


def _equal_to_any(value: object, by_type: dict[type, frozenset[Any]]) -> bool:
    """The general path of an equality check: each element of a list, by its kind."""
    for item in value if type(value) is tuple else (value,):
        kind = _TYPE_OF_KIND.get(kind_of(item))
        if kind is not None and item in by_type[kind]:
            return True
    return False


def _range_check(expr: ir.Range) -> Check:
    name = expr.field
    bounds = tuple((ORDERING_OPERATORS[op], bound, kind_of(bound)) for op, bound in expr.bounds())

    def within(value: Any) -> bool:
        kind = kind_of(value)
        if kind != "number" and kind != "str":
            return False  # booleans and absent values have no order
        for compare, bound, bound_kind in bounds:
            if kind != bound_kind or not compare(value, bound):
                return False
        return True

    def check(md: Metadata) -> bool:
        value = md[name]
        if type(value) is tuple:
            return any(within(item) for item in value)
        return within(value)

    return check


def _contains_check(expr: ir.Contains) -> Check:
    """``text in value``: a substring of a string, an element of a list (Casbin's ``in``)."""
    name, text = expr.field, expr.text

    def check(md: Metadata) -> bool:
        value: Any = md[name]
        if type(value) is tuple:
            return any(kind_of(item) == "str" and item == text for item in value)
        return kind_of(value) == "str" and text in value  # a number is never in it

    return check


def _within_check(expr: ir.Within) -> Check:
    """``value in text``: some string element of the value is a substring of ``text``."""
    name, text = expr.field, expr.text

    def check(md: Metadata) -> bool:
        value: Any = md[name]
        if type(value) is str:
            return value in text
        items: tuple[Any, ...] = elements(value)
        return any(kind_of(item) == "str" and item in text for item in items)

    return check


def _match_check(expr: ir.Match) -> Check:
    function = MATCH_FUNCTIONS[expr.function]
    name, other, field_first = expr.field, expr.other, expr.field_first

    def check(md: Metadata) -> bool:
        for value in elements(md[name]):
            if isinstance(value, str) and _matches(function, value, other, field_first):
                return True
        return False

    return check


def _matches(
    function: Callable[[str, str], bool], value: str, other: str, field_first: bool
) -> bool:
    # Patterns from the policy are checked when the plan is compiled; a pattern taken
    # from chunk metadata can still be one Casbin cannot use (an invalid regular
    # expression, or keyMatch4's "number of tokens" error). Casbin raises there; the
    # chunk simply does not match, so a bad value in one chunk cannot fail a search.
    try:
        return bool(function(value, other) if field_first else function(other, value))
    except Exception:  # any failure inside Casbin's function is "no match"
        return False


# -- which lines can hold on a chunk ---------------------------------------------------------


def unsatisfiable(expr: ir.Expr) -> bool:
    """Whether no chunk at all can satisfy ``expr`` (a sound, partial test).

    ``True`` only for what holds on no value whatever: ``FALSE``, an empty ``In``, a
    ``Range`` whose bounds exclude every value or mix kinds (one element must meet all
    bounds of one ``Range``), a conjunction with such a part, a disjunction of them.
    Two equalities on one attribute (``tenant == 't7' && tenant == 't0'``) are *not*
    unsatisfiable: a list ``["t0", "t7"]`` meets both, each with another element.
    """
    if isinstance(expr, ir.Const):
        return not expr.value
    if isinstance(expr, ir.In):
        return not expr.values
    if isinstance(expr, ir.Range):
        return _empty_range(expr)
    if isinstance(expr, ir.And):
        return any(unsatisfiable(item) for item in expr.items)
    if isinstance(expr, ir.Or):
        return all(unsatisfiable(item) for item in expr.items)
    return False


def _empty_range(expr: ir.Range) -> bool:
    bounds = expr.bounds()
    kinds = {kind_of(bound) for _, bound in bounds}
    if len(kinds) > 1 or not kinds <= {"number", "str"}:
        return bool(kinds)  # booleans have no order; one element cannot be of two kinds
    lows = [(bound, op == ">") for op, bound in bounds if op in (">", ">=")]
    highs = [(bound, op == "<") for op, bound in bounds if op in ("<", "<=")]
    for low, low_strict in lows:
        for high, high_strict in highs:
            if low > high or (low == high and (low_strict or high_strict)):  # type: ignore[operator]
                return True
    return False


def required_equalities(expr: ir.Expr) -> list[ir.Eq | ir.In]:
    """The equalities ``expr`` cannot hold without: its ``Eq``/``In`` conjuncts.

    ``expr`` holds on a chunk only if, for each of them, some element of the chunk's
    attribute equals one of its values (typed equality).
    """
    return [
        item
        for item in (expr.items if isinstance(expr, ir.And) else (expr,))
        if isinstance(item, (ir.Eq, ir.In))
    ]


def _values_of(atom: ir.Eq | ir.In) -> tuple[ir.Scalar, ...]:
    return (atom.value,) if isinstance(atom, ir.Eq) else atom.values


_KINDS = ("str", "number", "bool")
_Buckets: TypeAlias = dict[type, dict[Any, tuple[int, ...]]]


class LineIndex:
    """Which of a plan's lines can hold on a chunk, found by the chunk's values.

    Built from the lines' residuals in evaluation order. A line that requires an
    equality (:func:`required_equalities`) is filed under each value it accepts, keyed
    by kind then value (Python's ``==`` within a kind is exactly ragguard's typed
    equality: ``1 == 1.0``, integers compared as integers at any size, ``True`` apart
    from ``1``, ``"1"`` apart from both); a line without one is a candidate for every
    chunk; a line no chunk can satisfy (:func:`unsatisfiable`) for none.
    :meth:`candidates` returns the positions to evaluate, ascending: the lines that are
    left out are false on that chunk, so evaluating the candidates in order reaches the
    same first true line as evaluating them all.
    """

    __slots__ = ("_always", "_single", "_tables")

    def __init__(self, residuals: Sequence[ir.Expr]) -> None:
        tables: dict[str, dict[str, dict[Any, list[int]]]] = {}
        always: list[int] = []
        live = [(p, r) for p, r in enumerate(residuals) if not unsatisfiable(r)]
        options = {position: required_equalities(residual) for position, residual in live}
        # A line is filed under one of its equalities: the one that puts the fewest lines
        # in front of a chunk (the lines sharing it, times the values it accepts). Under
        # g(r.sub.id, p.sub, r.obj.tenant) && r.obj.tenant == p.dom, every line of a role
        # shares "tenant == <the role's tenant>" and only its own "tenant == p.dom".
        shared: dict[ir.Eq | ir.In, int] = {}
        for atoms in options.values():
            for atom in atoms:
                shared[atom] = shared.get(atom, 0) + 1
        for position, _ in live:
            atoms = options[position]
            if not atoms:
                always.append(position)
                continue
            best = min(atoms, key=lambda atom: shared[atom] * len(_values_of(atom)))
            by_kind = tables.setdefault(best.field, {kind: {} for kind in _KINDS})
            for value in _values_of(best):
                kind = kind_of(value)
                if kind in by_kind:
                    bucket = by_kind[kind].setdefault(value, [])
                    if not bucket or bucket[-1] != position:
                        bucket.append(position)
        self._always: tuple[int, ...] = tuple(always)
        self._tables: tuple[tuple[str, _Buckets], ...] = tuple(
            (name, _by_type({kind: _frozen(d) for kind, d in by_kind.items()}))
            for name, by_kind in tables.items()
        )
        self._single = self._tables[0] if len(self._tables) == 1 else None

    def candidates(self, md: Metadata) -> Sequence[int]:
        """Positions of the lines that can hold on normalized metadata ``md``, ascending."""
        single = self._single
        if single is not None:
            name, by_type = single
            value = md[name]
            table = by_type.get(type(value))
            if table is not None:  # a scalar of an exact built-in type: one lookup
                bucket = table.get(value)
                if bucket is None:
                    return self._always
                return sorted(bucket + self._always) if self._always else bucket
        return self._general(md)

    def _general(self, md: Metadata) -> Sequence[int]:
        hits: list[tuple[int, ...]] = []
        for name, by_type in self._tables:
            for item in elements(md[name]):
                table = by_type.get(_TYPE_OF_KIND.get(kind_of(item), object))
                bucket = table.get(item) if table is not None else None
                if bucket is not None:
                    hits.append(bucket)
        if not hits:
            return self._always
        if len(hits) == 1 and not self._always:
            return hits[0]
        merged: set[int] = set(self._always)
        for bucket in hits:
            merged.update(bucket)
        return sorted(merged)


def _frozen(table: dict[Any, list[int]]) -> dict[Any, tuple[int, ...]]:
    return {value: tuple(positions) for value, positions in table.items()}


def _by_type(by_kind: dict[str, dict[Any, tuple[int, ...]]]) -> _Buckets:
    return {
        str: by_kind["str"],
        int: by_kind["number"],
        float: by_kind["number"],
        bool: by_kind["bool"],
    }


_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def explain_failure(expr: ir.Expr, md: Metadata) -> str:
    """Why ``expr`` is false on ``md``: the first failing condition, in words."""
    if isinstance(expr, ir.Const):
        return "the policy grants nothing here"
    if isinstance(expr, ir.And):
        for item in expr.items:
            if not compile_check(item)(md):
                return explain_failure(item, md)
        return "all conditions hold"
    if isinstance(expr, ir.Or):
        reasons = [explain_failure(item, md) for item in expr.items[:3]]
        more = f" (+{len(expr.items) - 3} more)" if len(expr.items) > 3 else ""
        return "none of: " + "; ".join(reasons) + more
    if isinstance(expr, ir.Not):
        return f"{describe_condition(expr.item)} holds, which the policy excludes"
    value = md.get(expr.field, ABSENT)
    if value is ABSENT:
        return f"missing attribute {expr.field!r}"
    shown = describe(value)
    if isinstance(expr, ir.Eq):
        return f"{expr.field} {shown} != {describe(expr.value)}"
    if isinstance(expr, ir.In):
        return f"{expr.field} {shown} not in {describe(expr.values)}"
    if isinstance(expr, ir.Range):
        for op, bound in expr.bounds():
            if not any(scalar_order(op, v, bound) for v in elements(value)):
                origin = f" ({expr.origin})" if expr.origin and expr.origin != repr(bound) else ""
                if not any(kind_of(v) == kind_of(bound) for v in elements(value)):
                    # "level '1' > 2" would be false: a string has no order against a number
                    return (
                        f"{expr.field} {shown} cannot be ordered against {describe(bound)}{origin}"
                    )
                return f"{expr.field} {shown} {_NEGATED[op]} {describe(bound)}{origin}"
        return f"{expr.field} {shown} is out of range"
    if isinstance(expr, ir.Exists):
        return f"missing attribute {expr.field!r}"
    if isinstance(expr, ir.Contains):
        return f"{expr.field} {shown} does not contain {describe(expr.text)}"
    if isinstance(expr, ir.Within):
        return f"{expr.field} {shown} is not within {describe(expr.text)}"
    return f"{expr.field} {shown} does not match {expr.function}({expr.other!r})"


def describe_condition(expr: ir.Expr) -> str:
    """A compact human rendering of a condition (for reasons and CLI output)."""
    if isinstance(expr, ir.Const):
        return "true" if expr.value else "false"
    if isinstance(expr, ir.And):
        return " && ".join(_wrap(describe_condition(i)) for i in expr.items)
    if isinstance(expr, ir.Or):
        return " || ".join(_wrap(describe_condition(i)) for i in expr.items)
    if isinstance(expr, ir.Not):
        return f"!({describe_condition(expr.item)})"
    if isinstance(expr, ir.Eq):
        return f"{expr.field} == {describe(expr.value)}"
    if isinstance(expr, ir.In):
        return f"{expr.field} in {describe(expr.values)}"
    if isinstance(expr, ir.Range):
        return " && ".join(f"{expr.field} {op} {describe(v)}" for op, v in expr.bounds())
    if isinstance(expr, ir.Exists):
        return f"{expr.field} exists"
    if isinstance(expr, ir.Contains):
        return f"{describe(expr.text)} in {expr.field}"
    if isinstance(expr, ir.Within):
        return f"{expr.field} in {describe(expr.text)}"
    return f"{expr.function}({expr.field}, {expr.other!r})"


def _wrap(text: str) -> str:
    return f"({text})" if " && " in text or " || " in text else text
