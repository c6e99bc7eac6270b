"""The filter IR: what a policy leaves to decide once the subject is known.

A plan's filter is a small boolean expression over *chunk metadata attributes* only:

========================  ===================================================
``TRUE`` / ``FALSE``      constants
``And(items)``            all hold
``Or(items)``             at least one holds
``Not(item)``             two-valued negation
``Eq(field, value)``      the attribute equals ``value`` (a list: any element)
``In(field, values)``     the attribute equals one of ``values``
``Range(field, ...)``     ``gt``/``gte``/``lt``/``lte`` bounds (numbers or strings)
``Exists(field)``         the attribute is present (not absent/None/empty)
``Match(function, ...)``  a Casbin matching function (``keyMatch``, ``regexMatch``...)
``Contains(field, text)``  ``text in attribute`` as Casbin evaluates it: a substring
                          of a string attribute, an element of a list
``Within(field, text)``   ``attribute in text``: some string element of the
                          attribute is a substring of ``text``
========================  ===================================================

Every atom is false when its attribute is absent; ``Not`` is plain boolean negation.
So Casbin's ``r.obj.dept != "hr"`` is ``And(Exists("dept"), Not(Eq("dept", "hr")))``
and ``!(r.obj.dept == "hr")`` is ``Not(Eq("dept", "hr"))``.

The builders :func:`and_`, :func:`or_` and :func:`not_` simplify as they build
(constants fold, duplicates vanish, equalities on one field merge into ``In``,
conditions shared by every branch of an ``Or`` are factored out of it, branches that
share one are grouped), so the same policy always yields the same, smallest expression. Nodes are frozen and hashable.
This module is pure: no I/O, no store types.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from ragguard._values import kind_of

__all__ = [
    "FALSE",
    "TRUE",
    "And",
    "Const",
    "Contains",
    "Eq",
    "Exists",
    "Expr",
    "In",
    "Match",
    "Not",
    "Or",
    "Range",
    "Within",
    "and_",
    "fields_of",
    "not_",
    "or_",
    "to_json",
]

Scalar: TypeAlias = "str | int | float | bool"


ValueKey: TypeAlias = "tuple[str, Scalar]"


def _value_key(value: Scalar) -> ValueKey:
    """The identity of a value under ragguard's typed equality (``ragguard._values``).

    The kind keeps ``True`` apart from ``1`` and ``"1"``; within a kind, Python's own
    ``==`` and ``hash`` decide, and Python compares an int with an int, or an int with a
    float, exactly: ``1`` and ``1.0`` share a key, ``2**53`` and ``2**53 + 1`` do not
    (no conversion to float, which would round them together or overflow for
    ``10**400``). Keys of one kind sort among themselves.
    """
    return (kind_of(value), value)


@dataclass(frozen=True)
class Const:
    """``TRUE`` or ``FALSE``."""

    value: bool

    def __repr__(self) -> str:
        return "TRUE" if self.value else "FALSE"


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True)
class Eq:
    """``metadata[field] == value`` (any element of a list)."""

    field: str
    value: Scalar
    _key: tuple[str, ValueKey] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", (self.field, _value_key(self.value)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Eq) and other._key == self._key

    def __hash__(self) -> int:
        return hash(("Eq", self._key))


@dataclass(frozen=True)
class In:
    """``metadata[field]`` equals one of ``values`` (any element of a list)."""

    field: str
    values: tuple[Scalar, ...]
    # Computed once: plans compare and hash their atoms often, and In lists can be long.
    _key: tuple[str, tuple[ValueKey, ...]] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.field, tuple(_value_key(v) for v in self.values))
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(("In", key)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, In) and other._hash == self._hash and other._key == self._key

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class Range:
    """Ordering bounds on one attribute; all given bounds must hold.

    Bounds are numbers or strings (never mixed); a string bound compares strings only.
    ``origin`` records where a bound came from (e.g. ``"r.sub.clearance"``) for reasons.
    """

    field: str
    gt: Scalar | None = None
    gte: Scalar | None = None
    lt: Scalar | None = None
    lte: Scalar | None = None
    origin: str = ""

    def bounds(self) -> list[tuple[str, Scalar]]:
        """The given bounds as ``(operator, value)`` pairs."""
        pairs: list[tuple[str, Scalar | None]] = [
            (">", self.gt),
            (">=", self.gte),
            ("<", self.lt),
            ("<=", self.lte),
        ]
        return [(op, v) for op, v in pairs if v is not None]


@dataclass(frozen=True)
class Exists:
    """The attribute is present: not absent, not ``None``, not an empty list."""

    field: str


@dataclass(frozen=True)
class Match:
    """A Casbin matching function applied to an attribute and a known string.

    ``function(metadata[field], other)`` when ``field_first`` else
    ``function(other, metadata[field])``. Qdrant cannot express these in general, so
    stores relax them and the compiled predicate decides exactly.
    """

    function: str
    field: str
    other: str
    field_first: bool = True


@dataclass(frozen=True)
class Contains:
    """``text in metadata[field]`` under Casbin's (Python's) ``in``.

    A string attribute holds ``text`` as a substring (``"alice" in "alice,bob"``); a list
    attribute holds it as an element (``"alice" in ["alice", "bob"]``); a number or a
    boolean never does. Which applies is known only per chunk, so stores push down a
    bound and the compiled predicate decides exactly.
    """

    field: str
    text: str


@dataclass(frozen=True)
class Within:
    """``metadata[field] in text`` with a known string ``text``: some string element of
    the attribute is a substring of ``text`` (``"hr" in "hr-restricted"``)."""

    field: str
    text: str


@dataclass(frozen=True)
class Not:
    """Boolean negation."""

    item: Expr


@dataclass(frozen=True)
class And:
    """Conjunction of two or more items."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """Disjunction of two or more items."""

    items: tuple[Expr, ...]


Atom: TypeAlias = "Eq | In | Range | Exists | Match | Contains | Within"
Expr: TypeAlias = "Const | Eq | In | Range | Exists | Match | Contains | Within | Not | And | Or"


def _dedupe(items: Iterable[Expr]) -> list[Expr]:
    seen: set[Expr] = set()
    out: list[Expr] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def and_(*items: Expr) -> Expr:
    """Conjunction, simplified: FALSE absorbs, TRUE vanishes, nested Ands flatten, a
    negated conjunction drops what its siblings already require."""
    flat: list[Expr] = []
    for item in items:
        if item == FALSE:
            return FALSE
        if item == TRUE:
            continue
        flat.extend(item.items if isinstance(item, And) else (item,))
    flat = _dedupe(flat)
    if any(Not(x) in flat for x in flat):
        return FALSE
    if not flat:
        return TRUE
    if any(isinstance(x, Not) and isinstance(x.item, And) for x in flat):
        known = _without_known(flat)
        if known != flat:
            return and_(*known)
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _without_known(conjuncts: list[Expr]) -> list[Expr]:
    """``A && !(A && B)`` as ``A && !B``: inside one conjunction, a negated conjunction
    need not test again what its siblings already require (plain boolean logic)."""
    required = {x for x in conjuncts if not isinstance(x, Not)}
    out: list[Expr] = []
    for item in conjuncts:
        if isinstance(item, Not) and isinstance(item.item, And):
            inner = item.item.items
            if any(x in required for x in inner):
                item = not_(and_(*(x for x in inner if x not in required)))
        out.append(item)
    return out


def or_(*items: Expr) -> Expr:
    """Disjunction, simplified: TRUE absorbs, FALSE vanishes, equalities merge into In,
    conditions every branch shares are factored out, branches sharing a condition are
    grouped."""
    flat: list[Expr] = []
    for item in items:
        if item == TRUE:
            return TRUE
        if item == FALSE:
            continue
        flat.extend(item.items if isinstance(item, Or) else (item,))
    flat = _merge_equalities(_dedupe(flat))
    if any(Not(x) in flat for x in flat):
        return TRUE
    if not flat:
        return FALSE
    if len(flat) == 1:
        return flat[0]
    factored = _factor(flat)
    if factored is not None:
        return factored
    grouped = _group(flat)
    return or_(*grouped) if grouped is not None else Or(tuple(flat))


def _conjuncts(item: Expr) -> tuple[Expr, ...]:
    return item.items if isinstance(item, And) else (item,)


def _factor(items: list[Expr]) -> Expr | None:
    """``(A && B) || (A && C)`` as ``A && (B || C)``, or ``None`` if nothing is shared.

    Policy lines that differ in one condition (the same tenants and clearance, another
    department) otherwise reach the store as an OR repeating every shared condition,
    which costs the engine a scan per branch. Plain boolean distribution: it holds
    whatever the attributes hold (lists included), so the filter's meaning is unchanged.
    """
    conjuncts = [_conjuncts(item) for item in items]
    shared = [c for c in conjuncts[0] if all(c in others for others in conjuncts[1:])]
    if not shared:
        return None
    rests = [and_(*(c for c in item if c not in shared)) for item in conjuncts]
    return and_(*shared, or_(*rests))


_GROUPING_LIMIT = 64
"""Disjunctions with more branches are left as they are (grouping is quadratic)."""


def _group(items: list[Expr]) -> list[Expr] | None:
    """The branches that share the most common condition, grouped into one, or ``None``.

    ``a || (g && x) || (g && y)`` becomes ``a || (g && (x || y))``: a subject with
    several lines in one tenant and others elsewhere gets each tenant's condition once.
    Ties go to the condition met first; ``or_`` repeats this until no condition is shared
    by two branches. Plain boolean distribution, like :func:`_factor`.
    """
    if len(items) > _GROUPING_LIMIT:
        return None
    conjuncts = [_conjuncts(item) for item in items]
    counts: dict[Expr, int] = {}
    for parts in conjuncts:
        for part in parts:
            if not isinstance(part, Or):  # grouping by an Or could re-expand the branches
                counts[part] = counts.get(part, 0) + 1
    if not counts:
        return None
    best = max(counts, key=counts.__getitem__)
    if counts[best] < 2:
        return None
    members = [i for i, parts in enumerate(conjuncts) if best in parts]
    grouped = and_(best, or_(*(and_(*(c for c in conjuncts[i] if c != best)) for i in members)))
    first, others = members[0], set(members[1:])
    return [grouped if i == first else item for i, item in enumerate(items) if i not in others]


def not_(item: Expr) -> Expr:
    """Negation, simplified: constants flip, double negation cancels."""
    if isinstance(item, Const):
        return FALSE if item.value else TRUE
    if isinstance(item, Not):
        return item.item
    return Not(item)


def in_(field: str, values: Iterable[Scalar]) -> Expr:
    """``In`` with duplicates removed; one value becomes ``Eq``, none becomes FALSE."""
    unique: dict[ValueKey, Scalar] = {}
    for value in values:
        unique.setdefault(_value_key(value), value)
    ordered = [unique[key] for key in sorted(unique)]
    if not ordered:
        return FALSE
    if len(ordered) == 1:
        return Eq(field, ordered[0])
    return In(field, tuple(ordered))


def _merge_equalities(items: list[Expr]) -> list[Expr]:
    """Merge ``Eq``/``In`` atoms on the same field inside one disjunction."""
    by_field: dict[str, list[Scalar]] = {}
    first_position: dict[str, int] = {}
    rest: list[tuple[int, Expr]] = []
    for position, item in enumerate(items):
        if isinstance(item, (Eq, In)):
            values = [item.value] if isinstance(item, Eq) else list(item.values)
            by_field.setdefault(item.field, []).extend(values)
            first_position.setdefault(item.field, position)
        else:
            rest.append((position, item))
    merged = [(first_position[f], in_(f, vals)) for f, vals in by_field.items()]
    return [item for _, item in sorted(merged + rest, key=lambda pair: pair[0])]


def fields_of(expr: Expr) -> set[str]:
    """Every metadata attribute the expression reads."""
    if isinstance(expr, Const):
        return set()
    if isinstance(expr, Not):
        return fields_of(expr.item)
    if isinstance(expr, (And, Or)):
        out: set[str] = set()
        for item in expr.items:
            out |= fields_of(item)
        return out
    return {expr.field}


def to_json(expr: Expr) -> Any:
    """A JSON-able rendering of the expression (stable: used for plan digests)."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Not):
        return {"not": to_json(expr.item)}
    if isinstance(expr, And):
        return {"and": [to_json(i) for i in expr.items]}
    if isinstance(expr, Or):
        return {"or": [to_json(i) for i in expr.items]}
    if isinstance(expr, Eq):
        return {"eq": [expr.field, expr.value]}
    if isinstance(expr, In):
        return {"in": [expr.field, list(expr.values)]}
    if isinstance(expr, Range):
        return {"range": [expr.field, dict(expr.bounds())]}
    if isinstance(expr, Exists):
        return {"exists": expr.field}
    if isinstance(expr, Contains):
        return {"contains": [expr.field, expr.text]}
    if isinstance(expr, Within):
        return {"within": [expr.field, expr.text]}
    return {
        "match": [
            expr.function,
            expr.field,
            expr.other,
            "field_first" if expr.field_first else "field_second",
        ]
    }
