"""A caller's narrowing filter, from JSON: equalities or filter IR, bounded in size.

Two forms are accepted:

* a mapping of metadata equalities, ``{"project": "p1", "dept": ["eng", "ops"]}`` (a
  list means any of them), exactly what ``guard.search(where=...)`` takes;
* filter IR as :func:`ragguard.policy.ir.to_json` writes it: an object with one key,
  ``and`` / ``or`` (a list), ``not``, ``eq`` (``[field, value]``), ``in``
  (``[field, [values]]``), ``range`` (``[field, {">=": 1, "<": 3}]``) or ``exists``
  (``field``).

A filter only ever narrows: ``guard.search`` ANDs it with the caller's plan and
re-checks it on every hit. Error messages name the position, never the values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ragguard.exceptions import QueryError
from ragguard.policy import ir

__all__ = ["IR_OPERATORS", "parse_filter"]

IR_OPERATORS = frozenset({"and", "or", "not", "eq", "in", "range", "exists"})
MAX_DEPTH = 16
_RANGE_KEYS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def parse_filter(value: Any, *, max_bytes: int, max_atoms: int) -> ir.Expr | dict[str, Any] | None:
    """The ``where`` argument for ``guard.search`` from a request's ``filter``.

    Raises :class:`~ragguard.QueryError` for a malformed or oversized filter.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise QueryError("filter must be a JSON object")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise QueryError(f"filter is {size} bytes; the limit is {max_bytes}")
    counter = [0]
    if len(value) == 1 and next(iter(value)) in IR_OPERATORS:
        return _expr(value, "filter", 0, counter, max_atoms)
    where: dict[str, Any] = {}
    for name, item in value.items():
        _count(counter, max_atoms)
        _field(name, "filter")
        if isinstance(item, list):
            if not item:
                raise QueryError(f"filter[{name!r}] is an empty list")
            for element in item:
                _scalar(element, f"filter[{name!r}]")
            _count(counter, max_atoms, len(item) - 1)
        else:
            _scalar(item, f"filter[{name!r}]")
        where[name] = item
    return where


def _count(counter: list[int], limit: int, n: int = 1) -> None:
    counter[0] += n
    if counter[0] > limit:
        raise QueryError(f"filter has more than {limit} atoms")


def _field(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 256:
        raise QueryError(f"{where}: field names must be strings of 1 to 256 characters")
    return name


def _scalar(value: Any, where: str) -> ir.Scalar:
    if isinstance(value, (str, bool, int, float)):
        return value
    raise QueryError(f"{where}: values must be strings, numbers or booleans")


def _expr(node: Any, where: str, depth: int, counter: list[int], max_atoms: int) -> ir.Expr:
    if depth > MAX_DEPTH:
        raise QueryError(f"filter is nested deeper than {MAX_DEPTH}")
    if not isinstance(node, Mapping) or len(node) != 1:
        raise QueryError(f"{where}: expected an object with one operator key")
    operator, body = next(iter(node.items()))
    at = f"{where}.{operator}"
    if operator in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise QueryError(f"{at}: expected a non-empty list")
        items = [_expr(item, at, depth + 1, counter, max_atoms) for item in body]
        return ir.and_(*items) if operator == "and" else ir.or_(*items)
    if operator == "not":
        return ir.not_(_expr(body, at, depth + 1, counter, max_atoms))
    _count(counter, max_atoms)
    if operator == "exists":
        return ir.Exists(_field(body, at))
    if not isinstance(body, list) or len(body) != 2:
        raise QueryError(f"{at}: expected [field, value]")
    field = _field(body[0], at)
    if operator == "eq":
        return ir.Eq(field, _scalar(body[1], at))
    if operator == "in":
        if not isinstance(body[1], list) or not body[1]:
            raise QueryError(f"{at}: expected [field, [values]]")
        _count(counter, max_atoms, len(body[1]) - 1)
        return ir.in_(field, [_scalar(v, at) for v in body[1]])
    if operator == "range":
        bounds = body[1]
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - set(_RANGE_KEYS):
            raise QueryError(f"{at}: expected [field, {{'>=': n, '<': m, ...}}]")
        values: dict[str, Any] = {_RANGE_KEYS[op]: _scalar(v, at) for op, v in bounds.items()}
        kinds = {isinstance(v, str) for v in values.values()}
        if len(kinds) > 1 or any(isinstance(v, bool) for v in values.values()):
            raise QueryError(f"{at}: bounds must be all numbers or all strings")
        return ir.Range(field, **values)
    raise QueryError(f"{where}: unknown operator (use one of {sorted(IR_OPERATORS)})")
