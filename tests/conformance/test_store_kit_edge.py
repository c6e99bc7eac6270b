"""``ragguard.testing.store_kit`` on EdgeStore (the embedded Qdrant engine) and InMemoryStore."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import ragguard as rg
from ragguard.testing import InMemoryStore
from ragguard.testing.store_kit import StoreConformanceSuite

_shards = itertools.count()


class TestEdgeStoreConformance(StoreConformanceSuite):
    """Each store is a fresh shard directory under the test's tmp_path."""

    distances = ("cosine", "dot", "euclid")

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self, dim: int, distance: str) -> rg.EdgeStore:
        return rg.EdgeStore.create(
            self.directory / f"shard-{next(_shards)}", dim=dim, distance=distance
        )


class TestInMemoryStoreConformance(StoreConformanceSuite):
    """The test double passes the kit too: what users test against behaves like a store."""

    distances = ("cosine", "dot", "euclid", "manhattan")

    def make_store(self, dim: int, distance: str) -> InMemoryStore:
        return InMemoryStore(dim, distance=distance)  # type: ignore[arg-type]
