"""Filter IR → a Chroma ``where`` document, with ragguard's typed semantics where Chroma has them.

Pure: builds plain dicts, never touches a client. Values are operands of Chroma's
operators, never spliced into keys; metadata keys are validated (:data:`SAFE_KEY`).
What was measured on chromadb 1.5 (``tests/unit/test_chroma_store.py`` keeps checking it
on the real engine):

* scalar ``$eq``/``$ne``/``$in``/``$nin`` are typed: ``True`` is not ``1``, ``"1"`` is not
  ``1``; ``1`` equals ``1.0``; 64-bit integers are exact (``2**53 + 1`` is not
  ``2**53``). An integer operand beyond 64 bits is silently clamped, and from about
  ``2**63 - 1024`` on (in either sign) integers and floats meet stored values of the other
  type inexactly (``ChromaStore.upsert`` writes floats beyond the 64-bit integers as
  floats), so atoms on such numbers are relaxed.
* an absent key fails ``$eq``/``$in``/``$contains`` and passes ``$ne``/``$nin``/
  ``$not_contains``: two-valued, as ragguard's absent rule needs.
* list metadata (homogeneous, non-empty) is compared by ``$contains``/``$not_contains``
  per element, typed *and* strict between ``int`` and ``float`` (``$contains 1.0`` does not
  find ``[1, 2]``): a number is asked for in both forms. ``$eq``/``$ne`` ignore lists.
* ``$gt``/``$gte``/``$lt``/``$lte`` take numbers only and skip list values; there is no
  ``$exists``, no substring operator on metadata.

So ``Eq``/``In`` and their negations push down exactly (any nesting of ``And``/``Or``/
``Not``: negation is pushed to the atoms, which Chroma decides two-valued). ``Range``,
``Exists``, ``Contains``, ``Within``, Casbin matching functions, attribute names that are
not :data:`SAFE_KEY`, integers beyond 64 bits and non-finite numbers are relaxed by
polarity (the store returns a superset and the guard's re-check decides).

Values Chroma cannot hold exactly (integers beyond 64 bits, lists mixing types, objects)
are refused by ``ChromaStore.upsert``, so what it wrote is decided exactly. A collection
written by others may hold anything Chroma takes; it is read the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Final

from ragguard.policy import ir
from ragguard.stores._translate import CachingTranslator, pushdown, relax_inexpressible
from ragguard.stores.base import Pushdown

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "RESERVED_PREFIX",
    "SAFE_KEY",
    "ChromaFilterTranslator",
]

SAFE_KEY: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}")
"""Metadata keys the ``where`` document addresses; others are relaxed."""
RESERVED_PREFIX: Final = "ragguard:"
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_COMPARED_EXACTLY: Final = 2.0**63 - 1024
"""Numbers Chroma compares exactly: below this as a float. Measured on chromadb 1.5: an
integer that rounds to the float ``2.0**63`` equals a stored float ``2.0**63``; the float
``2.0**63 - 1024`` and larger ones equal the stored integer ``2**63 - 1``; a float beyond
the 64-bit integers saturates when compared with a stored integer."""

_FAN_OUT: Final = 32
MAX_VALUES: Final = 1024
"""``In`` lists longer than this are relaxed: each value is a ``$contains`` clause (lists
match any element) and SQLite holds at most 32,766 bound values per query."""

Where = dict[str, Any]


def _is_int64(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    )


class ChromaFilterTranslator(CachingTranslator):
    """Compiles plan filters to ``where`` documents; results cached per expression."""

    def __init__(self) -> None:
        # Keyed by repr: values IR equality takes as one (1 and 1.0) keep their own where.
        super().__init__(key=repr)

    def _translate(self, expr: ir.Expr) -> Pushdown:
        # Phase 1 replaces what Chroma cannot decide exactly (_inexpressible), by
        # polarity; phase 2 builds the where document from the rest.
        relaxed: list[str] = []
        narrowed = relax_inexpressible(expr, _inexpressible, relaxed)
        return pushdown(narrowed, relaxed, self._where)

    def _where(self, narrowed: ir.Expr) -> Where:
        return self._build(narrowed, False)

    # -- phase 2: the where document, negations pushed to the atoms ----------------------------

    def _build(self, expr: ir.Expr, negated: bool) -> Where:
        if isinstance(expr, ir.Not):
            return self._build(expr.item, not negated)
        if isinstance(expr, (ir.And, ir.Or)):
            conjunction = isinstance(expr, ir.And) != negated
            parts = [self._build(item, negated) for item in expr.items]
            return _join("$and" if conjunction else "$or", parts)
        if isinstance(expr, ir.Const):  # pragma: no cover - ir.and_/or_/not_ fold constants
            raise AssertionError("constants are folded before building")
        if isinstance(expr, ir.Eq):
            return _equals(expr.field, (expr.value,), negated)
        if isinstance(expr, ir.In):
            return _equals(expr.field, expr.values, negated)
        raise AssertionError(f"unexpected filter node {expr!r}")  # pragma: no cover


def _inexpressible(atom: ir.Expr) -> str | None:
    if isinstance(atom, ir.Match):
        return f"{atom.function} is decided after the search"
    if not isinstance(atom, (ir.Eq, ir.In)):
        return f"{type(atom).__name__} has no Chroma operator with ragguard's semantics"
    if not SAFE_KEY.fullmatch(atom.field) or atom.field.startswith(RESERVED_PREFIX):
        return "attribute name is not a plain key"
    values = (atom.value,) if isinstance(atom, ir.Eq) else atom.values
    if len(values) > MAX_VALUES:
        return f"more than {MAX_VALUES} values: Chroma's query cannot hold them all"
    for value in values:
        if isinstance(value, float) and not math.isfinite(value):
            return "not a finite number"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and not _is_int64(value):
                return "Chroma holds integers of 64 bits"
            if abs(float(value)) >= _COMPARED_EXACTLY:
                return "Chroma compares numbers this close to 2**63 inexactly"
    return None


def _join(operator: str, parts: list[Where]) -> Where:
    """``{operator: parts}``, nested as a tree of at most :data:`_FAN_OUT` clauses each.

    Chroma's ``$and``/``$or`` take two or more clauses; it compiles a flat list of ``n``
    clauses to SQL nested ``n`` deep, and SQLite refuses a depth beyond 1,000 (measured:
    1,000 ``$contains`` clauses in one ``$or`` fail, 10,000 crash the process). A tree
    keeps the depth logarithmic.
    """
    flat: list[Where] = []
    for part in parts:
        flat.extend(part[operator] if set(part) == {operator} else [part])
    while len(flat) > _FAN_OUT:
        flat = [
            {operator: flat[i : i + _FAN_OUT]} if len(flat[i : i + _FAN_OUT]) > 1 else flat[i]
            for i in range(0, len(flat), _FAN_OUT)
        ]
    return flat[0] if len(flat) == 1 else {operator: flat}


def _equals(field: str, values: Sequence[ir.Scalar], negated: bool) -> Where:
    """``field`` equals one of ``values`` (scalar or any list element); or its negation."""
    groups: dict[str, list[Any]] = {}
    elements: list[Any] = []
    seen: set[tuple[str, Any]] = set()
    for value in values:
        for typed in _forms(value):
            key = (type(typed).__name__, typed)
            if key in seen:
                continue
            seen.add(key)
            groups.setdefault(key[0], []).append(typed)
            elements.append(typed)
    scalar_op, list_op, joiner = (
        ("$nin", "$not_contains", "$and") if negated else ("$in", "$contains", "$or")
    )
    parts: list[Where] = [{field: {scalar_op: group}} for group in groups.values()]
    parts.extend({field: {list_op: element}} for element in elements)
    return _join(joiner, parts)


def _forms(value: ir.Scalar) -> list[Any]:
    """The operands that find ``value``: a number as an int and as a float where each
    equals it exactly (``$contains`` is strict between the two)."""
    if isinstance(value, (bool, str)):
        return [value]
    forms: list[Any] = []
    if isinstance(value, int):
        forms.append(value)
        as_float = float(value)
        if int(as_float) == value:
            forms.append(as_float)
        return forms
    forms.append(value)
    if value.is_integer() and _is_int64(int(value)):
        forms.append(int(value))
    return forms
