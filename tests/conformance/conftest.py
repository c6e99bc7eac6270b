"""Stores shared by the conformance tests: one per family and test, reused across cases."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from _conformance import ChromaBackend, EdgeBackend, PgVectorBackend, QdrantBackend
from qdrant_client import QdrantClient


@pytest.fixture(scope="module")
def edge_backend(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], EdgeBackend]]:
    """``edge_backend(name)``: an ``EdgeStore`` in a fresh directory, created on first use."""
    backends: dict[str, EdgeBackend] = {}

    def get(name: str) -> EdgeBackend:
        if name not in backends:
            backends[name] = EdgeBackend(tmp_path_factory.mktemp(f"edge-{name}") / "shard")
        return backends[name]

    yield get
    for backend in backends.values():
        backend.close()


@pytest.fixture(scope="module")
def local_qdrant_backend() -> Iterator[Callable[[str], QdrantBackend]]:
    """``local_qdrant_backend(name)``: a ``QdrantStore`` collection in qdrant-client's local mode."""
    client = QdrantClient(":memory:")
    backends: dict[str, QdrantBackend] = {}

    def get(name: str) -> QdrantBackend:
        if name not in backends:
            backends[name] = QdrantBackend(client, f"conformance_{name}", local=True)
        return backends[name]

    yield get
    client.close()


@pytest.fixture(scope="module")
def pgvector_backend(pgvector_url: str) -> Iterator[Callable[[str], PgVectorBackend]]:
    """``pgvector_backend(name)``: a ``PgVectorStore`` table in a fresh, uniquely named table."""
    backends: dict[str, PgVectorBackend] = {}

    def get(name: str) -> PgVectorBackend:
        if name not in backends:
            backends[name] = PgVectorBackend(
                pgvector_url, f"conformance_{name}_{uuid.uuid4().hex[:8]}"
            )
        return backends[name]

    yield get
    for backend in backends.values():
        backend.close()


@pytest.fixture(scope="module")
def chroma_backend() -> Callable[[str], ChromaBackend]:
    """``chroma_backend(name)``: a ``ChromaStore`` collection in chromadb's in-process engine."""
    chromadb = pytest.importorskip("chromadb", reason="ChromaStore needs ragguard[chroma]")
    client = chromadb.EphemeralClient()
    backends: dict[str, ChromaBackend] = {}

    def get(name: str) -> ChromaBackend:
        if name not in backends:
            backends[name] = ChromaBackend(client, f"conformance-{name}-{uuid.uuid4().hex[:8]}")
        return backends[name]

    return get
