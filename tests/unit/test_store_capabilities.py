"""Declared store capabilities (``StoreCapabilities``), read once at ``Guard`` construction
(issue 14, item 5): the guard, the tracer and the adapter never probe a store with
``getattr`` at query time."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ragguard as rg
from ragguard.policy import ir
from ragguard.stores import (
    AsyncScrollingStore,
    AsyncStore,
    Chunk,
    IndexSpec,
    Pushdown,
    ScrollingStore,
    StoreCapabilities,
    StoredChunk,
    store_capabilities,
)

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.id == p.sub && r.obj.dept == p.dept && r.act == p.act
"""
POLICY = "p, alice, eng, read\n"
ALICE = rg.Subject(id="alice")


class PlainStore:
    """A minimal store: two points, brute-force cosine, no pushdown (always inexact)."""

    def __init__(self) -> None:
        self.points = {
            "1": ([1.0, 0.0], "eng text", {"dept": "eng"}),
            "2": ([0.0, 1.0], "hr text", {"dept": "hr"}),
        }
        self.searches = 0

    @property
    def dim(self) -> int:
        return 2

    def translate(self, expr: ir.Expr) -> Pushdown:
        return Pushdown(native=None, exact=expr in (ir.TRUE, ir.FALSE))

    def search(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        self.searches += 1
        norm = math.sqrt(sum(x * x for x in vector))
        scored = sorted(
            (
                (sum(a * b for a, b in zip(vector, point, strict=True)) / norm, key, text, md)
                for key, (point, text, md) in self.points.items()
            ),
            reverse=True,
        )
        return [StoredChunk(key, score, text, md) for score, key, text, md in scored[:limit]]

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        raise NotImplementedError

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        return []

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        return None

    def close(self) -> None:
        return None


class DeclaringStore(PlainStore):
    """Declares its capabilities, counts how often they are read, and has an ``asearch``
    that it may or may not declare."""

    def __init__(self, declared: StoreCapabilities) -> None:
        super().__init__()
        self.declared = declared
        self.reads = 0
        self.asearches = 0

    @property
    def capabilities(self) -> StoreCapabilities:
        self.reads += 1
        return self.declared

    async def asearch(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        self.asearches += 1
        return self.search(vector, limit, pushdown, exact=exact)


def test_capabilities_are_read_once_at_construction() -> None:
    store = DeclaringStore(StoreCapabilities(asearch=True, db_system_name="x"))
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store)
    assert store.reads == 1
    assert guard.capabilities == store.declared
    for _ in range(3):
        assert [h.id for h in guard.search(ALICE, [1.0, 0.2], k=1)] == ["1"]
        assert [h.id for h in asyncio.run(guard.asearch(ALICE, [1.0, 0.2], k=1))] == ["1"]
    assert store.reads == 1


def test_asearch_follows_the_declaration_not_the_attribute() -> None:
    """A store that has ``asearch`` but does not declare it is searched in a thread."""
    undeclared = DeclaringStore(StoreCapabilities())
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), undeclared)
    asyncio.run(guard.asearch(ALICE, [1.0, 0.0], k=1))
    assert undeclared.asearches == 0
    assert undeclared.searches >= 1

    declared = DeclaringStore(StoreCapabilities(asearch=True))
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), declared)
    asyncio.run(guard.asearch(ALICE, [1.0, 0.0], k=1))
    assert declared.asearches >= 1


def test_a_claim_the_store_cannot_keep_fails_at_construction() -> None:
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    with pytest.raises(TypeError, match="scroll=True but does not implement ScrollingStore"):
        rg.Guard(policy, DeclaringStore(StoreCapabilities(scroll=True)))

    class NoAsync(PlainStore):
        capabilities = StoreCapabilities(asearch=True)

    with pytest.raises(TypeError, match="asearch=True but does not implement AsyncStore"):
        rg.Guard(policy, NoAsync())

    class Wrong(PlainStore):
        capabilities = "asearch"

    with pytest.raises(TypeError, match=r"must be a ragguard\.stores\.StoreCapabilities"):
        rg.Guard(policy, Wrong())


def test_capabilities_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="unknown distance"):
        StoreCapabilities(distance="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ascroll=True needs scroll=True"):
        StoreCapabilities(ascroll=True)
    with pytest.raises(ValueError, match="metadata_key"):
        StoreCapabilities(metadata_key="")


def test_a_store_without_declarations_is_inferred_once() -> None:
    """Stores written before capabilities existed keep working: protocols and the old
    optional attributes are read once."""

    class Legacy(PlainStore):
        distance = "euclid"
        db_system_name = "legacy-db"
        collection = "docs"
        metadata_key = "meta"

        async def asearch(
            self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
        ) -> list[StoredChunk]:
            return self.search(vector, limit, pushdown, exact=exact)

    assert store_capabilities(Legacy()) == StoreCapabilities(
        distance="euclid",
        asearch=True,
        db_system_name="legacy-db",
        collection="docs",
        metadata_key="meta",
    )
    assert store_capabilities(PlainStore()) == StoreCapabilities()


def test_traces_name_what_the_store_declares() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = DeclaringStore(StoreCapabilities(db_system_name="mydb", collection="kb"))
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store, tracer_provider=provider)
    guard.search(ALICE, [1.0, 0.0], k=1)
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["db.system.name"] == "mydb"
    assert attributes["db.collection.name"] == "kb"
    assert attributes["gen_ai.data_source.id"] == "kb"


def test_edge_store_declares_scroll(tmp_path: Path) -> None:
    store = rg.EdgeStore.create(tmp_path / "shard", dim=2, distance="euclid")
    try:
        caps = store.capabilities
        assert caps == StoreCapabilities(
            distance="euclid", scroll=True, db_system_name="qdrant", search_params=True
        )
        assert isinstance(store, ScrollingStore)
        assert not isinstance(store, AsyncStore)
        assert rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store).capabilities == caps
    finally:
        store.close()


def test_qdrant_store_declares_async_and_scroll() -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    store = rg.QdrantStore.create(client, "docs", dim=2, distance="dot", metadata_key="meta")
    try:
        caps = store.capabilities
        assert caps == StoreCapabilities(
            distance="dot",
            asearch=True,
            scroll=True,
            ascroll=True,
            db_system_name="qdrant",
            collection="docs",
            metadata_key="meta",
            search_params=True,
        )
        assert isinstance(store, AsyncScrollingStore)
        assert rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store).capabilities == caps
    finally:
        store.close()


def test_chroma_store_declares_async_and_scroll() -> None:
    chromadb = pytest.importorskip("chromadb")
    client = chromadb.EphemeralClient()
    store = rg.ChromaStore(
        client, "capabilities-test", dim=2, create_if_missing=True, distance="euclid"
    )
    try:
        caps = store.capabilities
        assert caps == StoreCapabilities(
            distance="euclid",
            asearch=True,
            scroll=True,
            ascroll=True,
            db_system_name="chroma",
            collection="capabilities-test",
        )
        assert rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store).capabilities == caps
    finally:
        store.close()
