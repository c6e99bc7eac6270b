"""The part every store's filter translator shares: ``translate`` with a bounded,
thread-safe cache of pushdowns in front of the store's own ``_translate``."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

from ragguard.policy import ir
from ragguard.stores.base import Pushdown

__all__ = ["CachingTranslator"]

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
