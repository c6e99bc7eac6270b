"""``ragguard.testing.store_kit`` on ChromaStore, in chromadb's in-process engine.

Chroma keeps integers of 64 bits (signed) and lists of one type: the store refuses the
rest at upsert (``integer_range``, ``mixed_lists``), so every pushdown it calls exact is
exact. Skipped, with the reason, when chromadb is not installed.
"""

from __future__ import annotations

import itertools

import pytest

import ragguard as rg
from ragguard.testing.store_kit import StoreConformanceSuite

chromadb = pytest.importorskip("chromadb", reason="chromadb is not installed (ragguard[chroma])")

_names = itertools.count()


class TestChromaConformance(StoreConformanceSuite):
    distances = ("cosine", "dot", "euclid")
    integer_range = (-(2**63), 2**63 - 1)  # Chroma's integers are signed 64-bit
    mixed_lists = False  # Chroma keeps lists of one type

    @pytest.fixture(autouse=True)
    def _client(self) -> None:
        self.client = chromadb.EphemeralClient()

    def make_store(self, dim: int, distance: str) -> rg.ChromaStore:
        return rg.ChromaStore.create(self.client, f"kit_{next(_names)}", dim=dim, distance=distance)

    def break_store(self, store: rg.Store) -> None:
        # close() leaves the caller's client usable: drop the collection under the store.
        assert isinstance(store, rg.ChromaStore)
        self.client.delete_collection(store.collection)
