"""``ragguard.testing.store_kit`` on QdrantStore: local mode, and a server when QDRANT_URL is set."""

from __future__ import annotations

import itertools
import os

import pytest
from qdrant_client import QdrantClient

import ragguard as rg
from ragguard.testing.store_kit import StoreConformanceSuite

QDRANT_URL = os.environ.get("QDRANT_URL", "").strip()
_collections = itertools.count()


class TestQdrantLocalConformance(StoreConformanceSuite):
    """qdrant-client's local mode (``:memory:``): exhaustive search, no payload indexes."""

    distances = ("cosine", "dot", "euclid")
    exact_search = False  # local mode always searches exhaustively (and warns when asked)

    def make_store(self, dim: int, distance: str) -> rg.QdrantStore:
        client = QdrantClient(":memory:")
        return rg.QdrantStore.create(
            client, f"kit_{next(_collections)}", dim=dim, distance=distance
        )

    def close_store(self, store: rg.Store) -> None:
        assert isinstance(store, rg.QdrantStore)
        assert store.client is not None
        store.client.close()  # QdrantStore.close leaves the client to its owner


@pytest.mark.skipif(not QDRANT_URL, reason="set QDRANT_URL to run the kit on a Qdrant server")
class TestQdrantServerConformance(StoreConformanceSuite):
    """A Qdrant server: each store is a fresh collection, deleted afterwards."""

    distances = ("cosine", "euclid")

    def make_store(self, dim: int, distance: str) -> rg.QdrantStore:
        client = QdrantClient(url=QDRANT_URL)
        return rg.QdrantStore.create(
            client, f"ragguard_kit_{os.getpid()}_{next(_collections)}", dim=dim, distance=distance
        )

    def close_store(self, store: rg.Store) -> None:
        assert isinstance(store, rg.QdrantStore)
        assert store.client is not None
        store.client.delete_collection(store.collection)
        store.client.close()
