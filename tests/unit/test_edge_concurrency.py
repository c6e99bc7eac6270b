"""EdgeStore and Guard under threads: searches run side by side, close waits for them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
import qdrant_edge as qe

import ragguard as rg
from ragguard.testing import clustered_vectors

DIM = 16


class GatedShard:
    """Wraps an EdgeShard; ``query`` waits at a gate before searching."""

    def __init__(self, shard: Any, gate: threading.Barrier | threading.Event) -> None:
        self._shard = shard
        self._gate = gate
        self.entered = threading.Event()

    def query(self, request: Any) -> Any:
        self.entered.set()
        if isinstance(self._gate, threading.Barrier):
            self._gate.wait()
        else:
            assert self._gate.wait(timeout=10)
        return self._shard.query(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shard, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[rg.EdgeStore]:
    edge = rg.EdgeStore.create(tmp_path / "shard", dim=DIM)
    vectors = clustered_vectors(200, DIM, seed=3)
    edge.upsert(
        rg.Chunk(text=f"chunk {i}", metadata={"tenant": f"t{i % 2}"}, vector=v.tolist(), id=i)
        for i, v in enumerate(vectors)
    )
    edge.optimize()
    yield edge
    edge.close()


def test_two_searches_are_inside_the_engine_at_the_same_time(
    store: rg.EdgeStore, tenant_policy: rg.Policy
) -> None:
    """No store-wide or guard-wide lock: two threads' queries overlap in the engine.

    Each query waits until the other one has also entered the engine; a lock around
    the query would leave the second thread outside and break the barrier.
    """
    guard = rg.Guard(tenant_policy, store)
    store.shard = cast(qe.EdgeShard, GatedShard(store.shard, threading.Barrier(2, timeout=10)))
    vector = clustered_vectors(1, DIM, seed=9)[0].tolist()
    subjects = [rg.Subject(id=f"u{t}", attributes={"tenant": f"t{t}"}) for t in (0, 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: guard.search(s, vector, k=5), subjects))
    for subject, hits in zip(subjects, results, strict=True):
        assert len(hits) == 5
        assert {hit.metadata["tenant"] for hit in hits} == {subject.attributes["tenant"]}


def test_close_waits_for_a_search_in_progress(
    store: rg.EdgeStore, tenant_policy: rg.Policy
) -> None:
    """close() blocks until a running search has finished; later searches fail cleanly."""
    release = threading.Event()
    gated = GatedShard(store.shard, release)
    store.shard = cast(qe.EdgeShard, gated)
    vector = clustered_vectors(1, DIM, seed=9)[0].tolist()
    tenant0 = store.translate(
        tenant_policy.plan(rg.Subject(id="a", attributes={"tenant": "t0"})).filter
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        searching = pool.submit(store.search, vector, 5, tenant0)
        assert gated.entered.wait(timeout=10)
        closing = pool.submit(store.close)
        with pytest.raises(TimeoutError):
            closing.result(timeout=0.3)
        release.set()
        assert len(searching.result(timeout=10)) == 5
        closing.result(timeout=10)
    with pytest.raises(rg.StoreError, match="closed"):
        store.search(vector, 5, tenant0)


def test_concurrent_searches_return_what_sequential_ones_do(
    store: rg.EdgeStore, tenant_policy: rg.Policy
) -> None:
    """Eight threads searching at once get exactly the sequential answers."""
    guard = rg.Guard(tenant_policy, store)
    queries = clustered_vectors(40, DIM, seed=5).tolist()
    subjects = [rg.Subject(id=f"u{i}", attributes={"tenant": f"t{i % 2}"}) for i in range(40)]
    expected = [
        [hit.id for hit in guard.search(s, q, k=7)] for s, q in zip(subjects, queries, strict=True)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(
            pool.map(
                lambda sq: [hit.id for hit in guard.search(sq[0], sq[1], k=7)],
                zip(subjects, queries, strict=True),
            )
        )
    assert got == expected
