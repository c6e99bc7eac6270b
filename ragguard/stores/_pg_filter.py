"""Filter IR → a SQL ``WHERE`` over a JSONB metadata column, with ragguard's typed semantics.

Pure: builds ``psycopg.sql`` objects and a parameter list, never touches a connection.
Values are always bound parameters; metadata keys are validated (:data:`SAFE_KEY`) and
quoted as SQL literals, never interpolated raw. Exactness (see docs/stores.md, PgVectorStore):

* ``Eq``/``In`` are JSONB containment, ``m @> ANY($1)`` with ``$1`` holding
  ``{"f": v}`` and ``{"f": [v]}`` for each value: JSONB equality is typed (``true`` is
  not ``1``, ``"1"`` is not ``1``), numeric for numbers (``1 = 1.0``, integers exact at
  any size), and the array form matches any element of a list. A GIN
  ``jsonb_path_ops`` index on the column (langchain-postgres creates one) serves it.
* ``Range`` compares numbers as ``numeric`` and strings in code-point order
  (``COLLATE "C"`` on a UTF-8 database), per element of a list, one element meeting
  every bound; other types never order.
* ``Exists``: a value that is not ``null`` and not a list holding only ``null`` s.
* ``Contains`` (``text in value``): ``strpos`` on a string value, containment of
  ``{"f": [text]}`` for a list; ``Within`` (``value in text``): ``strpos`` of each
  string element in ``text``. Both compare code points (``COLLATE "C"``).
* An absent attribute makes every atom false; negations are two-valued (``COALESCE``).

Relaxed (by polarity, like the Qdrant translator: the store returns a superset and the
guard's re-check decides): Casbin matching functions, attribute names that are not
:data:`SAFE_KEY`, non-finite numbers, strings holding NUL (PostgreSQL text cannot), string ranges on a database whose encoding is not
UTF-8, and any atom this module does not know.

Numbers are exact against metadata the store wrote (canonical JSON numbers: integers
exact, integral floats as integers, other floats as their shortest decimal text), and
against ``json.dumps`` output in general; see :func:`_number_param`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from psycopg import sql
from psycopg.types.json import Jsonb

from ragguard._values import kind_of
from ragguard.policy import ir
from ragguard.stores._translate import CachingTranslator, pushdown, relax_inexpressible
from ragguard.stores.base import Pushdown

__all__ = ["SAFE_KEY", "PgFilter", "PgFilterTranslator"]

SAFE_KEY: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}")
"""Metadata keys the SQL addresses (``metadata -> 'key'``); others are relaxed."""

_SQL_OPERATORS: Final = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


@dataclass(frozen=True)
class PgFilter:
    """A compiled ``WHERE`` condition: SQL with ``%s`` placeholders and their values."""

    condition: sql.Composable
    params: tuple[Any, ...]


class PgFilterTranslator(CachingTranslator):
    """Compiles plan filters for one metadata column; results cached per expression."""

    def __init__(self, column: sql.Composable, *, utf8: bool = True) -> None:
        self._column = column
        self._utf8 = utf8
        # Keyed by repr: values IR equality takes as one (1 and 1.0) keep their own SQL.
        super().__init__(key=repr)

    def _translate(self, expr: ir.Expr) -> Pushdown:
        # Phase 1 replaces what SQL here cannot decide exactly, by polarity; phase 2
        # compiles the rest.
        relaxed: list[str] = []
        narrowed = relax_inexpressible(expr, self._inexpressible, relaxed)
        return pushdown(narrowed, relaxed, self._where)

    def _where(self, narrowed: ir.Expr) -> PgFilter:
        params: list[Any] = []
        condition = self._build(narrowed, negated=False, params=params)
        return PgFilter(condition, tuple(params))

    # -- phase 1: what SQL here cannot decide exactly --------------------------------------

    def _inexpressible(self, atom: ir.Expr) -> str | None:
        if not isinstance(atom, (ir.Eq, ir.In, ir.Range, ir.Exists, ir.Contains, ir.Within)):
            if isinstance(atom, ir.Match):
                return f"{atom.function} is decided after the search"
            return f"{type(atom).__name__} is decided after the search"
        if not SAFE_KEY.fullmatch(atom.field):
            return "attribute name is not a plain key"
        if any(isinstance(v, str) and "\x00" in v for v in _values(atom)):
            return "PostgreSQL text cannot hold a NUL character"
        if isinstance(atom, ir.Eq):
            return _number_problem([atom.value])
        if isinstance(atom, ir.In):
            return _number_problem(atom.values)
        if isinstance(atom, ir.Range):
            values = [v for _, v in atom.bounds()]
            if not self._utf8 and any(kind_of(v) == "str" for v in values):
                return "string order needs a UTF-8 database"
            return _number_problem(values)
        return None

    # -- phase 2: SQL -----------------------------------------------------------------------

    def _build(self, expr: ir.Expr, *, negated: bool, params: list[Any]) -> sql.Composable:
        if isinstance(expr, ir.Const):
            return sql.SQL("TRUE" if expr.value else "FALSE")
        if isinstance(expr, (ir.And, ir.Or)):
            joiner = sql.SQL(" AND " if isinstance(expr, ir.And) else " OR ")
            parts = [self._build(i, negated=negated, params=params) for i in expr.items]
            return sql.SQL("({})").format(joiner.join(parts))
        if isinstance(expr, ir.Not):
            return sql.SQL("(NOT {})").format(self._build(expr.item, negated=True, params=params))
        atom = self._atom(expr, params)
        # Under a negation an atom must be two-valued: SQL's NULL (an absent attribute)
        # would make NOT(NULL) NULL and drop the row. In a negation-free context NULL and
        # FALSE select the same rows, and the bare atom keeps its index usable.
        return sql.SQL("COALESCE({}, FALSE)").format(atom) if negated else atom

    def _atom(self, expr: ir.Expr, params: list[Any]) -> sql.Composable:
        if isinstance(expr, ir.Eq):
            return self._contains_any(expr.field, (expr.value,), params)
        if isinstance(expr, ir.In):
            return self._contains_any(expr.field, expr.values, params)
        if isinstance(expr, ir.Range):
            return self._range(expr, params)
        if isinstance(expr, ir.Exists):
            return self._exists(expr.field)
        if isinstance(expr, ir.Contains):
            return self._contains(expr, params)
        if isinstance(expr, ir.Within):
            return self._within(expr, params)
        raise AssertionError(f"unexpected filter node {expr!r}")  # pragma: no cover

    def _value(self, field: str) -> sql.Composable:
        return sql.SQL("({} -> {})").format(self._column, sql.Literal(field))

    def _contains_any(
        self, field: str, values: Sequence[ir.Scalar], params: list[Any]
    ) -> sql.Composable:
        documents: list[Jsonb] = []
        for value in values:
            stored = _json_value(value)
            documents.append(Jsonb({field: stored}, dumps=_dumps))
            documents.append(Jsonb({field: [stored]}, dumps=_dumps))
        params.append(documents)
        return sql.SQL("({} @> ANY(%s::jsonb[]))").format(self._column)

    def _range(self, expr: ir.Range, params: list[Any]) -> sql.Composable:
        bounds = expr.bounds()
        kinds = {kind_of(v) for _, v in bounds}
        if len(kinds) > 1 or kinds - {"number", "str"}:
            return sql.SQL("FALSE")  # no value orders against a boolean or two kinds at once
        value = self._value(expr.field)
        element = sql.SQL("e.x")
        scalar: sql.Composable
        each: sql.Composable
        if not kinds:  # no bounds: any number or string
            kinds_sql = sql.SQL("IN ('number', 'string')")
            scalar = sql.SQL("jsonb_typeof({}) {}").format(value, kinds_sql)
            each = sql.SQL("jsonb_typeof({}) {}").format(element, kinds_sql)
        else:
            kind = kinds.pop()
            scalar = self._bounded(value, kind, bounds, params)
            each = self._bounded(element, kind, bounds, params)
        return sql.SQL(
            "({scalar} OR (jsonb_typeof({v}) = 'array' AND EXISTS ("
            "SELECT 1 FROM jsonb_array_elements({v}) AS e(x) WHERE {each})))"
        ).format(scalar=scalar, v=value, each=each)

    @staticmethod
    def _bounded(
        value: sql.Composable,
        kind: str,
        bounds: list[tuple[str, ir.Scalar]],
        params: list[Any],
    ) -> sql.Composable:
        if kind == "number":
            typed = sql.SQL("(CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric END)")
            placeholder = sql.SQL("%s::numeric")
        else:
            typed = sql.SQL("(CASE WHEN jsonb_typeof({v}) = 'string' THEN ({v} #>> '{{}}') END)")
            placeholder = sql.SQL('%s::text COLLATE "C"')
        left = typed.format(v=value)
        if kind == "str":
            left = sql.SQL('{} COLLATE "C"').format(left)
        parts: list[sql.Composable] = []
        for op, bound in bounds:
            params.append(_number_param(bound) if kind == "number" else bound)
            parts.append(sql.SQL("{} {} {}").format(left, sql.SQL(_SQL_OPERATORS[op]), placeholder))
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))

    def _contains(self, expr: ir.Contains, params: list[Any]) -> sql.Composable:
        """``text in value``: a substring of a string value, an element of a list."""
        value = self._value(expr.field)
        params.append(expr.text)
        params.append(Jsonb({expr.field: [expr.text]}, dumps=_dumps))
        return sql.SQL(
            "((jsonb_typeof({v}) = 'string' AND "
            'strpos(({v} #>> \'{{}}\') COLLATE "C", %s::text COLLATE "C") > 0) '
            "OR {m} @> %s::jsonb)"
        ).format(v=value, m=self._column)

    def _within(self, expr: ir.Within, params: list[Any]) -> sql.Composable:
        """``value in text``: some string element of the value is a substring of text."""
        value = self._value(expr.field)
        params.extend((expr.text, expr.text))
        return sql.SQL(
            "((jsonb_typeof({v}) = 'string' AND "
            'strpos(%s::text COLLATE "C", ({v} #>> \'{{}}\') COLLATE "C") > 0) '
            "OR (jsonb_typeof({v}) = 'array' AND EXISTS (SELECT 1 FROM "
            "jsonb_array_elements({v}) AS e(x) WHERE jsonb_typeof(e.x) = 'string' AND "
            'strpos(%s::text COLLATE "C", (e.x #>> \'{{}}\') COLLATE "C") > 0)))'
        ).format(v=value)

    def _exists(self, field: str) -> sql.Composable:
        value = self._value(field)
        return sql.SQL(
            "(jsonb_typeof({v}) NOT IN ('null', 'array') OR (jsonb_typeof({v}) = 'array' "
            "AND EXISTS (SELECT 1 FROM jsonb_array_elements({v}) AS e(x) "
            "WHERE jsonb_typeof(e.x) <> 'null')))"
        ).format(v=value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _values(
    atom: ir.Eq | ir.In | ir.Range | ir.Exists | ir.Contains | ir.Within,
) -> Sequence[ir.Scalar]:
    if isinstance(atom, (ir.Contains, ir.Within)):
        return (atom.text,)
    if isinstance(atom, ir.Eq):
        return (atom.value,)
    if isinstance(atom, ir.In):
        return atom.values
    if isinstance(atom, ir.Range):
        return [v for _, v in atom.bounds()]
    return ()


def _json_value(value: ir.Scalar) -> ir.Scalar:
    """A policy value as the store writes numbers (``ragguard._canonical``): a float with
    an integral value as that integer (``2.0**60`` is 1152921504606846976, exactly)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number_param(value: ir.Scalar) -> int | Decimal:
    # An int binds as itself (exact at any size), an integral float as that integer; any
    # other float as its shortest decimal text, the form the stored metadata holds it in:
    # no integer lies between a float below 2**53 and that text, and the text keeps the
    # floats' order, so comparisons come out as in Python.
    value = _json_value(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return int(value)


def _number_problem(values: Sequence[ir.Scalar]) -> str | None:
    for value in values:
        if isinstance(value, float) and not math.isfinite(value):
            return "not a finite number"
    return None
