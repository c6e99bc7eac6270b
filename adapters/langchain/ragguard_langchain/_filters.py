"""Caller-supplied filters (``search_kwargs={"filter": ...}``) as ragguard filter IR.

LangChain users already filter their Qdrant retrievers with ``qdrant_client.models.Filter``
objects over the LangChain payload layout (``metadata.<attr>`` keys) or with a dict of
metadata equalities. The retriever passes the IR to ``Guard.search(where=...)``, which
narrows the subject's plan with it (``Plan.narrow``): the filter is ANDed into what the
store is asked for *and* re-checked on every hit before release. So it narrows what a
subject sees, never widens it, and holds on every store: pushed into Qdrant where it can
be, decided after the search where it cannot (an attribute name that is not a plain
word, a long numeric ``MatchAny``, a string ``Range``) and on a ``PostFilterStore``,
which pushes nothing down. A chunk withheld by the caller's filter is audited with a
reason that starts with ``"outside the caller's filter"``.

Only conditions with an exact IR equivalent are accepted; anything else (geo, full-text,
``values_count``, ``has_id``, ``min_should``, ``is_null``, ``except``) is refused with a
:class:`~ragguard.QueryError` rather than approximated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qdrant_client import models as qm

from ragguard import QueryError
from ragguard.policy import ir

__all__ = ["caller_filter_to_ir"]


def caller_filter_to_ir(caller_filter: Any, metadata_key: str = "metadata") -> ir.Expr:
    """The IR for a caller's filter: a Qdrant ``Filter`` or a mapping of equalities.

    A mapping ``{"dept": "eng", "level": [1, 2]}`` means ``dept == "eng"`` and
    ``level`` in ``(1, 2)``. Qdrant keys must name metadata attributes
    (``metadata.dept`` with the default ``metadata_key``).
    """
    if isinstance(caller_filter, qm.Filter):
        return _filter(caller_filter, metadata_key + ".")
    if isinstance(caller_filter, Mapping):
        atoms: list[ir.Expr] = []
        for name, value in caller_filter.items():
            if not isinstance(name, str) or not name:
                raise QueryError(f"filter keys must be attribute names, got {name!r}")
            if isinstance(value, (list, tuple)):
                atoms.append(ir.in_(name, [_scalar(name, v) for v in value]))
            else:
                atoms.append(ir.Eq(name, _scalar(name, value)))
        return ir.and_(*atoms)
    raise QueryError(
        "filter must be a qdrant_client.models.Filter or a dict of metadata equalities, "
        f"got {type(caller_filter).__name__}"
    )


def _scalar(name: str, value: Any) -> str | int | float | bool:
    if isinstance(value, (str, int, float, bool)):
        return value
    raise QueryError(
        f"filter[{name!r}] must be a string, number, boolean or a list of them, "
        f"got {type(value).__name__}"
    )


def _conditions(items: Any) -> list[Any]:
    if items is None:
        return []
    if isinstance(items, Sequence):
        return list(items)
    return [items]  # qdrant-client accepts a single condition in place of a list


def _filter(flt: qm.Filter, prefix: str) -> ir.Expr:
    if flt.min_should is not None:
        raise QueryError("filter: min_should is not supported in a ragguard caller filter")
    parts: list[ir.Expr] = [_condition(c, prefix) for c in _conditions(flt.must)]
    should = _conditions(flt.should)
    if should:
        parts.append(ir.or_(*(_condition(c, prefix) for c in should)))
    parts.extend(ir.not_(_condition(c, prefix)) for c in _conditions(flt.must_not))
    return ir.and_(*parts)


def _condition(condition: Any, prefix: str) -> ir.Expr:
    if isinstance(condition, qm.Filter):
        return _filter(condition, prefix)
    if isinstance(condition, qm.IsEmptyCondition):
        return ir.not_(ir.Exists(_field(condition.is_empty.key, prefix)))
    if isinstance(condition, qm.FieldCondition):
        return _field_condition(condition, prefix)
    raise QueryError(
        f"filter: {type(condition).__name__} is not supported in a ragguard caller filter "
        "(use FieldCondition with MatchValue, MatchAny or Range, IsEmptyCondition, or a "
        "nested Filter)"
    )


def _field_condition(condition: qm.FieldCondition, prefix: str) -> ir.Expr:
    name = _field(condition.key, prefix)
    others = [
        label
        for label, value in (
            ("geo_bounding_box", condition.geo_bounding_box),
            ("geo_radius", condition.geo_radius),
            ("geo_polygon", condition.geo_polygon),
            ("values_count", condition.values_count),
            ("is_empty", condition.is_empty),
            ("is_null", condition.is_null),
        )
        if value is not None
    ]
    match, bounds = condition.match, condition.range
    if others or (match is None) == (bounds is None):
        raise QueryError(
            f"filter on {condition.key!r}: only one match or range per FieldCondition is "
            f"supported in a ragguard caller filter (got {', '.join(others) or 'none'})"
        )
    if isinstance(match, qm.MatchValue):
        return ir.Eq(name, match.value)
    if isinstance(match, qm.MatchAny):
        return ir.in_(name, list(match.any))
    if isinstance(bounds, qm.Range):
        if all(b is None for b in (bounds.gt, bounds.gte, bounds.lt, bounds.lte)):
            raise QueryError(f"filter on {condition.key!r}: a Range needs at least one bound")
        return ir.Range(name, gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte)
    kind = type(match if match is not None else bounds).__name__
    raise QueryError(
        f"filter on {condition.key!r}: {kind} is not supported in a ragguard caller filter "
        "(MatchValue, MatchAny and numeric Range are)"
    )


def _field(key: str, prefix: str) -> str:
    if not key.startswith(prefix) or len(key) == len(prefix):
        raise QueryError(
            f"filter key {key!r} does not name a metadata attribute; "
            f"use {prefix}<attribute> (LangChain's payload layout)"
        )
    return key[len(prefix) :]
