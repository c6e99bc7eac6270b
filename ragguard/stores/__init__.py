"""Vector stores the guard pushes filters down into.

* :class:`EdgeStore` — the embedded default: Qdrant's engine in-process (``qdrant-edge-py``).
* :class:`QdrantStore` — a Qdrant server or cluster through ``qdrant-client`` (imported
  on first use).
* :class:`PgVectorStore` — PostgreSQL with pgvector (``ragguard[pgvector]``, imported
  on first use).
* :class:`ChromaStore` — a Chroma collection, embedded or a server (``ragguard[chroma]``,
  imported on first use).

All implement the :class:`Store` protocol (``ragguard.stores.base``) and declare what
else they offer in a :class:`StoreCapabilities` (``store.capabilities``): the optional
:class:`AsyncStore` and :class:`ScrollingStore` protocols (``EdgeStore`` and
``QdrantStore`` scroll: the guard's exact finish of inexact searches), the metric, and
what traces name. A store narrows candidates with the pushed-down filter,
the guard decides.
"""

from typing import TYPE_CHECKING, Any

from ragguard.stores.base import (
    AsyncScrollingStore,
    AsyncStore,
    Chunk,
    IndexSpec,
    Pushdown,
    ScrollingStore,
    ScrollPage,
    Store,
    StoreCapabilities,
    StoredChunk,
    point_id,
    store_capabilities,
)
from ragguard.stores.edge import EdgeStore

if TYPE_CHECKING:
    from ragguard.stores.chroma import ChromaStore
    from ragguard.stores.pgvector import PgVectorStore
    from ragguard.stores.qdrant import QdrantStore


def __getattr__(name: str) -> Any:
    if name == "PgVectorStore":  # psycopg is imported only when the store is named
        from ragguard.stores.pgvector import PgVectorStore

        return PgVectorStore
    if name == "ChromaStore":  # chromadb likewise
        from ragguard.stores.chroma import ChromaStore

        return ChromaStore
    if name == "QdrantStore":  # qdrant-client is imported only when the store is named
        from ragguard.stores.qdrant import QdrantStore

        return QdrantStore
    raise AttributeError(f"module 'ragguard.stores' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AsyncScrollingStore",
    "AsyncStore",
    "ChromaStore",
    "Chunk",
    "EdgeStore",
    "IndexSpec",
    "PgVectorStore",
    "Pushdown",
    "QdrantStore",
    "ScrollPage",
    "ScrollingStore",
    "Store",
    "StoreCapabilities",
    "StoredChunk",
    "point_id",
    "store_capabilities",
]
