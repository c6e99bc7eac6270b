"""``SearchParams``: how hard the store searches (recall against latency), never what it may return.

::

    guard = rg.Guard(policy, store, search_params=rg.SearchParams(hnsw_ef=256))
    hits = guard.search(subject, vector, k=10, search_params=rg.SearchParams(exact=True))

The fields are Qdrant's search parameters:

* ``hnsw_ef`` — the size of HNSW's candidate list (``None``: the collection's ``ef``,
  by default 100 or ``k``). Larger finds more of the true nearest neighbours and costs
  more time; see the measured table in ``docs/stores.md``.
* ``exact`` — score every point the filter admits (no HNSW): recall 1.0, the slowest.
  ``Guard(exact_search=True)`` is the shorthand for ``SearchParams(exact=True)``.
* ``rescore`` / ``oversampling`` — for quantized collections: re-score the candidates
  with the original vectors, and fetch ``oversampling * limit`` candidates before
  re-scoring (``None``: the collection's setting).
* ``indexed_only`` — search only segments whose HNSW index is built: faster while an
  ingest is still indexing, at the price of missing the newest points.

They change ranking and recall only. The guard pushes the same filter down and
re-checks every hit whatever they say, so no parameter can release a chunk the policy
does not allow. Per store: EdgeStore and QdrantStore pass them all to Qdrant;
PgVectorStore maps ``hnsw_ef`` to ``hnsw.ef_search`` and ``exact`` to an exhaustive
scan, and ignores the rest (pgvector has no quantization re-scoring and builds its
index synchronously).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

__all__ = ["MAX_HNSW_EF", "SearchParams"]

MAX_HNSW_EF: Final = 65_536
"""The largest ``hnsw_ef`` accepted (a bound on what one query may cost)."""

MAX_OVERSAMPLING: Final = 100.0

_Native = TypeVar("_Native")


@dataclass(frozen=True)
class SearchParams:
    """Qdrant's search parameters, typed and validated (``ValueError``/``TypeError``)."""

    hnsw_ef: int | None = None
    exact: bool = False
    rescore: bool | None = None
    oversampling: float | None = None
    indexed_only: bool = False

    def __post_init__(self) -> None:
        ef = self.hnsw_ef
        if ef is not None:
            if isinstance(ef, bool) or not isinstance(ef, int):
                raise TypeError(f"hnsw_ef must be an integer or None, got {type(ef).__name__}")
            if not 1 <= ef <= MAX_HNSW_EF:
                raise ValueError(f"hnsw_ef must be between 1 and {MAX_HNSW_EF}, got {ef}")
        for name in ("exact", "indexed_only"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if self.rescore is not None and not isinstance(self.rescore, bool):
            raise TypeError(f"rescore must be a bool or None, got {type(self.rescore).__name__}")
        over = self.oversampling
        if over is not None:
            if isinstance(over, bool) or not isinstance(over, (int, float)):
                raise TypeError(f"oversampling must be a number or None, got {type(over).__name__}")
            if not math.isfinite(over) or not 1.0 <= over <= MAX_OVERSAMPLING:
                raise ValueError(
                    f"oversampling must be between 1.0 and {MAX_OVERSAMPLING:g}, got {over!r}"
                )
            object.__setattr__(self, "oversampling", float(over))

    @classmethod
    def coerce(cls, value: SearchParams | Mapping[str, Any] | None) -> SearchParams | None:
        """``value`` as ``SearchParams``: a mapping of its fields is accepted (LangChain's
        ``search_kwargs``, a configuration file); unknown keys are a ``ValueError``."""
        if value is None or isinstance(value, SearchParams):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(str(key) for key in value if key not in known)
            if unknown:
                raise ValueError(
                    f"unknown search parameter(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known))}"
                )
            return cls(**value)
        raise TypeError(
            f"search_params must be a ragguard.SearchParams or a mapping, "
            f"got {type(value).__name__}"
        )

    @property
    def is_default(self) -> bool:
        """Whether every field is at its default (the store's own settings apply)."""
        return self == _DEFAULT

    @property
    def beyond_exact(self) -> bool:
        """Whether anything besides ``exact`` is set (what only stores that declare
        ``StoreCapabilities(search_params=True)`` can take)."""
        return (
            self.hnsw_ef is not None
            or self.rescore is not None
            or self.oversampling is not None
            or self.indexed_only
        )

    @property
    def quantization(self) -> bool:
        """Whether a quantization field (``rescore``, ``oversampling``) is set."""
        return self.rescore is not None or self.oversampling is not None

    def span_attributes(self) -> dict[str, Any]:
        """The span attributes (``ragguard.search.*``): ``exact`` always, the rest when set."""
        attributes: dict[str, Any] = {"ragguard.search.exact": self.exact}
        if self.hnsw_ef is not None:
            attributes["ragguard.search.hnsw_ef"] = self.hnsw_ef
        if self.rescore is not None:
            attributes["ragguard.search.rescore"] = self.rescore
        if self.oversampling is not None:
            attributes["ragguard.search.oversampling"] = self.oversampling
        if self.indexed_only:
            attributes["ragguard.search.indexed_only"] = True
        return attributes


_DEFAULT: Final = SearchParams()


def qdrant_search_params(
    exact: bool,
    params: SearchParams | None,
    search_params: Callable[..., _Native],
    quantization_params: Callable[..., object],
) -> _Native | None:
    """Qdrant's search parameters for one query, built with one front end's classes.

    ``qdrant-edge-py`` (EdgeStore) and ``qdrant_client.models`` (QdrantStore) name the
    same fields on different classes: each store passes its ``SearchParams`` and
    ``QuantizationSearchParams``. ``exact`` is the store's own exact search
    (``Guard(exact_search=True)``), or-ed with ``params.exact``. ``None`` when nothing is
    set: the collection's defaults apply.
    """
    if params is None or params.is_default:
        return search_params(exact=True) if exact else None
    quantization = (
        quantization_params(rescore=params.rescore, oversampling=params.oversampling)
        if params.quantization
        else None
    )
    return search_params(
        hnsw_ef=params.hnsw_ef,
        exact=exact or params.exact,
        quantization=quantization,
        indexed_only=params.indexed_only,
    )
