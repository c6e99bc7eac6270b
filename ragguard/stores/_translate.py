"""What every store's filter translator shares: ``translate`` with a bounded,
thread-safe cache of pushdowns in front of the store's own ``_translate``; the walk that
relaxes, by polarity, the atoms a store cannot decide exactly (:func:`relax`,
:func:`relax_inexpressible`); and the :class:`Pushdown` of what is left
(:func:`pushdown`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

from ragguard.policy import ir
from ragguard.policy._predicate import describe_condition
from ragguard.stores.base import Pushdown

__all__ = ["CachingTranslator", "describe_atom", "pushdown", "relax", "relax_inexpressible"]

CACHE_SIZE: Final = 1024
"""Pushdowns kept per translator (least recently used dropped first)."""


class CachingTranslator:
    """Subclasses implement :meth:`_translate` (pure); :meth:`translate` caches it.

    ``key`` turns an expression into its cache key (default: the expression itself).
    """

    def __init__(self, *, key: Callable[[ir.Expr], Hashable] | None = None) -> None:
        self._key: Callable[[ir.Expr], Hashable] = key if key is not None else _itself
        self._cache: OrderedDict[Hashable, Pushdown] = OrderedDict()
        self._lock = threading.Lock()

    def translate(self, expr: ir.Expr) -> Pushdown:
        """The pushdown for ``expr`` (cached, thread-safe)."""
        key = self._key(expr)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        pushdown = self._translate(expr)
        with self._lock:
            self._cache[key] = pushdown
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return pushdown

    def _translate(self, expr: ir.Expr) -> Pushdown:
        raise NotImplementedError


def _itself(expr: ir.Expr) -> Hashable:
    return expr


def relax(
    expr: ir.Expr, atom: Callable[[ir.Expr, bool], ir.Expr], *, positive: bool = True
) -> ir.Expr:
    """``expr`` with every atom replaced by ``atom(atom, positive)``.

    ``positive`` is false under an odd number of negations: there a relaxed atom must
    become ``FALSE`` (its negation admits more), elsewhere ``TRUE``, so the store's
    filter admits a superset. ``And``/``Or``/``Not`` are rebuilt with ``ir.and_``/
    ``ir.or_``/``ir.not_``, which fold the constants relaxing leaves.
    """
    if isinstance(expr, ir.Const):
        return expr
    if isinstance(expr, ir.And):
        return ir.and_(*(relax(i, atom, positive=positive) for i in expr.items))
    if isinstance(expr, ir.Or):
        return ir.or_(*(relax(i, atom, positive=positive) for i in expr.items))
    if isinstance(expr, ir.Not):
        return ir.not_(relax(expr.item, atom, positive=not positive))
    return atom(expr, positive)


def relax_inexpressible(
    expr: ir.Expr, inexpressible: Callable[[ir.Expr], str | None], relaxed: list[str]
) -> ir.Expr:
    """:func:`relax` for a store that either decides an atom exactly or not at all:
    ``inexpressible(atom)`` says why it cannot (``None``: it can); such an atom becomes
    ``TRUE``/``FALSE`` by polarity and ``"<condition> (<why>)"`` is appended to ``relaxed``."""

    def relax_atom(atom: ir.Expr, positive: bool) -> ir.Expr:
        why = inexpressible(atom)
        if why is None:
            return atom
        relaxed.append(f"{describe_atom(atom)} ({why})")
        return ir.TRUE if positive else ir.FALSE

    return relax(expr, relax_atom)


def pushdown(
    narrowed: ir.Expr, relaxed: Sequence[str], build: Callable[[ir.Expr], Any]
) -> Pushdown:
    """The :class:`Pushdown` of a relaxed expression: exact when nothing was relaxed, no
    native filter when it folded to a constant, else ``build(narrowed)``."""
    exact = not relaxed
    if narrowed == ir.FALSE:
        return Pushdown(native=None, exact=exact, matches_nothing=True, relaxed=tuple(relaxed))
    if narrowed == ir.TRUE:
        return Pushdown(native=None, exact=exact, relaxed=tuple(relaxed))
    return Pushdown(native=build(narrowed), exact=exact, relaxed=tuple(relaxed))


def describe_atom(expr: ir.Expr) -> str:
    """``describe_condition(expr)``, or the node's type name for one it does not know."""
    try:
        return describe_condition(expr)
    except Exception:  # an atom describe_condition does not know
        return type(expr).__name__
