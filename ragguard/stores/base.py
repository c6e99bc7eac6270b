"""The store protocol and the records that cross it.

A store does three things for the guard: turn a plan's filter IR into its native filter
(:meth:`Store.translate`), run a filtered nearest-neighbour query with it
(:meth:`Store.search`), and hand back what it holds (:meth:`Store.get`). Stores never
decide access: they narrow the candidates, the guard re-checks every hit.

What else a store offers is declared, not probed: :class:`StoreCapabilities`, returned by
the store's optional ``capabilities`` attribute and read once, when a ``Guard`` is
built (:func:`store_capabilities`). It says which optional protocols the store
implements and describes it:

* :class:`AsyncStore` (``asearch``): ``Guard.asearch`` awaits it instead of running
  ``search`` in a worker thread;
* :class:`ScrollingStore` (``scroll`` and ``vectors``) lets the guard finish an inexact
  search exactly: when its bounded over-fetch rounds run out, it reads every point
  matching the relaxed filter, decides each one with the plan and scores the survivors
  itself from their stored vectors; :class:`AsyncScrollingStore` (``ascroll``,
  ``avectors``) is its async form. :class:`~ragguard.EdgeStore` and
  :class:`~ragguard.QdrantStore` scroll;
* ``distance`` (how scores order: ``euclid``/``manhattan`` are distances, released
  lowest first), ``db_system_name`` and ``collection`` (trace attributes),
  ``metadata_key`` (the payload key holding the metadata, for adapters).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, runtime_checkable

from ragguard.exceptions import StoreError
from ragguard.policy import ir
from ragguard.policy._index import IndexSpec, PayloadSchema

__all__ = [
    "DISTANCES",
    "AsyncScrollingStore",
    "AsyncStore",
    "Chunk",
    "Distance",
    "IndexSpec",
    "PayloadSchema",
    "Pushdown",
    "ScrollPage",
    "ScrollingStore",
    "Store",
    "StoreCapabilities",
    "StoredChunk",
    "point_id",
    "store_capabilities",
]

Distance = Literal["cosine", "dot", "euclid", "manhattan"]
DISTANCES: frozenset[str] = frozenset({"cosine", "dot", "euclid", "manhattan"})


@dataclass(frozen=True)
class Chunk:
    """A chunk to write: text, metadata, its embedding, and an optional id.

    ``id`` may be a UUID string or a non-negative integer (as a string or int); any
    other string is mapped to a deterministic UUID (``uuid5``) so re-ingesting the same
    id overwrites. ``None`` draws a random UUID.
    """

    text: str
    metadata: Mapping[str, Any]
    vector: Sequence[float]
    id: str | int | None = None


@dataclass(frozen=True)
class StoredChunk:
    """One point as the store returned it.

    ``text`` and ``metadata`` are ``None`` when the payload lacks them or they have the
    wrong type: the guard denies such a hit as malformed, it never guesses.
    """

    id: str
    score: float
    text: str | None
    metadata: Mapping[str, Any] | None


@dataclass(frozen=True)
class Pushdown:
    """A plan filter translated for one store.

    ``native`` is the store's own filter object (``None``: no filter), ``exact`` says
    whether it is equivalent to the IR (``False``: some atoms were relaxed, the store
    returns a superset and the guard's post-check does the real work), ``matches_nothing``
    says the filter can match no point (the store is not queried).
    """

    native: Any
    exact: bool
    matches_nothing: bool = False
    relaxed: tuple[str, ...] = field(default=())


@runtime_checkable
class Store(Protocol):
    """What the guard needs from a vector store."""

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        ...

    def translate(self, expr: ir.Expr) -> Pushdown:
        """Translate filter IR into this store's native filter (pure, no I/O)."""
        ...

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """The ``limit`` nearest points matching ``pushdown``, best first.

        ``exact=True`` asks for exhaustive (non-HNSW) search. Raises ``StoreError``.
        A store that declares ``StoreCapabilities(search_params=True)`` also takes
        ``search_params: ragguard.SearchParams | None = None`` (EdgeStore, QdrantStore
        and PgVectorStore do); the guard refuses parameters beyond ``exact`` for any
        other.
        """
        ...

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks (LangChain payload layout); returns their point ids."""
        ...

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        """The stored points with these ids (missing ids are skipped; score is 0.0)."""
        ...

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Create the payload indexes (idempotent)."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


@dataclass(frozen=True)
class ScrollPage:
    """One page of :meth:`ScrollingStore.scroll`: points (``score`` 0.0), and where the
    next page starts (``None``: this was the last one)."""

    chunks: list[StoredChunk]
    next_offset: str | int | None


@runtime_checkable
class ScrollingStore(Protocol):
    """Optional store capability: read every point matching a filter, and stored vectors.

    The guard uses it to finish an inexact search exactly when the bounded over-fetch
    rounds run out (``Guard(max_scan=)`` bounds how many points it reads); it scores
    the points it keeps in the store's ``distance`` (:class:`StoreCapabilities`). A store
    declares it with ``StoreCapabilities(scroll=True)``; its async form is
    :class:`AsyncScrollingStore`.
    """

    def scroll(self, pushdown: Pushdown, limit: int, offset: str | int | None = None) -> ScrollPage:
        """Up to ``limit`` points matching ``pushdown`` from ``offset`` on, in a stable
        order, with their payloads. Raises ``StoreError``."""
        ...

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of these points, by id (missing ones left out; for a cosine
        collection Qdrant stores them normalised). Raises ``StoreError``."""
        ...


@runtime_checkable
class AsyncScrollingStore(Protocol):
    """Optional: the async form of :class:`ScrollingStore` (``Guard.asearch`` uses it)."""

    async def ascroll(
        self, pushdown: Pushdown, limit: int, offset: str | int | None = None
    ) -> ScrollPage:
        """As :meth:`ScrollingStore.scroll`."""
        ...

    async def avectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """As :meth:`ScrollingStore.vectors`."""
        ...


@runtime_checkable
class AsyncStore(Protocol):
    """Optional: a native async search (``Guard.asearch`` awaits it; without it, the
    guard runs :meth:`Store.search` in a worker thread)."""

    async def asearch(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """As :meth:`Store.search`."""
        ...


@dataclass(frozen=True)
class StoreCapabilities:
    """What a store offers beyond :class:`Store`, declared by the store.

    A store returns one from its ``capabilities`` attribute (a property or a plain
    attribute); the guard reads it once, at construction, and checks that every
    protocol it claims is implemented::

        @property
        def capabilities(self) -> StoreCapabilities:
            return StoreCapabilities(distance=self.distance, scroll=True, collection="docs")

    * ``distance`` — the metric its scores are in: ``cosine``/``dot`` are similarities
      (higher is better), ``euclid``/``manhattan`` distances (lower is better, released
      lowest first); the exact finish scores in it.
    * ``asearch`` — implements :class:`AsyncStore`.
    * ``scroll`` — implements :class:`ScrollingStore` (the exact finish of inexact
      searches); ``ascroll`` — also :class:`AsyncScrollingStore`.
    * ``db_system_name`` / ``collection`` — trace attributes (``db.system.name``,
      ``db.collection.name`` and ``gen_ai.data_source.id``); ``None``: not recorded.
    * ``metadata_key`` — the payload key holding the chunk metadata (LangChain's layout:
      ``"metadata"``); adapters that write filters on payload paths read it.
    * ``search_params`` — ``search`` (and ``asearch``) take
      ``search_params: ragguard.SearchParams | None = None`` (``hnsw_ef``, quantization,
      ``indexed_only``). Without it the guard passes ``exact`` only and refuses any
      other search parameter for this store.
    """

    distance: Distance = "cosine"
    asearch: bool = False
    scroll: bool = False
    ascroll: bool = False
    db_system_name: str | None = None
    collection: str | None = None
    metadata_key: str = "metadata"
    search_params: bool = False

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(
                f"unknown distance {self.distance!r}; choose one of {sorted(DISTANCES)}"
            )
        if self.ascroll and not self.scroll:
            raise ValueError("ascroll=True needs scroll=True (the sync form is the fallback)")
        if not isinstance(self.metadata_key, str) or not self.metadata_key:
            raise ValueError("metadata_key must be a non-empty string")


def store_capabilities(store: object) -> StoreCapabilities:
    """The capabilities ``store`` declares, checked against what it implements.

    A store's ``capabilities`` attribute, when it has one (it must be a
    :class:`StoreCapabilities`); for a store written before capabilities were declared,
    they are inferred once from the optional protocols it implements and its
    ``distance``, ``db_system_name``, ``collection`` and ``metadata_key`` attributes.
    Raises ``TypeError`` when the store claims a protocol it does not implement.
    """
    declared = getattr(store, "capabilities", None)
    if declared is None:
        return _inferred_capabilities(store)
    if not isinstance(declared, StoreCapabilities):
        raise TypeError(
            f"{type(store).__name__}.capabilities must be a ragguard.stores.StoreCapabilities, "
            f"got {type(declared).__name__}"
        )
    claims = (
        ("asearch", AsyncStore),
        ("scroll", ScrollingStore),
        ("ascroll", AsyncScrollingStore),
    )
    for name, protocol in claims:
        if getattr(declared, name) and not isinstance(store, protocol):
            raise TypeError(
                f"{type(store).__name__} declares {name}=True but does not implement "
                f"{protocol.__name__}"
            )
    if declared.search_params and not _takes_search_params(getattr(store, "search", None)):
        raise TypeError(
            f"{type(store).__name__} declares search_params=True but its search takes no "
            "search_params keyword"
        )
    return declared


def _takes_search_params(search: object) -> bool:
    """Whether ``search`` accepts a ``search_params=`` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(search).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):  # not callable, or no signature to read
        return False
    return any(
        p.name == "search_params" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


def _inferred_capabilities(store: object) -> StoreCapabilities:
    def text(name: str) -> str | None:
        value = getattr(store, name, None)
        return value if isinstance(value, str) and value else None

    distance = text("distance") or "cosine"
    scroll = isinstance(store, ScrollingStore)
    return StoreCapabilities(
        distance=cast(Distance, distance),
        asearch=isinstance(store, AsyncStore),
        scroll=scroll,
        ascroll=scroll and isinstance(store, AsyncScrollingStore),
        db_system_name=text("db_system_name"),
        collection=text("collection"),
        metadata_key=text("metadata_key") or "metadata",
    )


_ID_NAMESPACE = uuid.UUID("6f1c5a8e-3c1b-4bb8-9a53-2b7f0e8d4c11")


def point_id(raw: str | int | None) -> str | int:
    """The Qdrant point id for a chunk id (see :class:`Chunk`).

    Raises :class:`~ragguard.StoreError` for an id no store can hold (a boolean, a
    negative integer, any other type): it is called on data, inside ``upsert`` and
    ``get``, where every error is in ragguard's tree.
    """
    if raw is None:
        return str(uuid.uuid4())
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise StoreError(
            f"a chunk id must be a string or a non-negative integer, got a {type(raw).__name__}"
        )
    if isinstance(raw, int):
        if raw < 0:
            raise StoreError(f"integer chunk ids must be non-negative, got {raw}")
        return raw
    if raw.isdigit():
        return int(raw)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return str(uuid.uuid5(_ID_NAMESPACE, raw))
