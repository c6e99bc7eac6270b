"""Vector stores the guard pushes filters down into.

* :class:`EdgeStore` — the embedded default: Qdrant's engine in-process (``qdrant-edge-py``).
* :class:`QdrantStore` — a Qdrant server or cluster through ``qdrant-client``.

Both implement the :class:`Store` protocol (``ragguard.stores.base``); a store narrows
candidates with the pushed-down filter, the guard decides.
"""

from ragguard.stores.base import Chunk, IndexSpec, Pushdown, Store, StoredChunk, point_id
from ragguard.stores.edge import EdgeStore
from ragguard.stores.qdrant import QdrantStore

__all__ = [
    "Chunk",
    "EdgeStore",
    "IndexSpec",
    "Pushdown",
    "QdrantStore",
    "Store",
    "StoredChunk",
    "point_id",
]
