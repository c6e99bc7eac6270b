"""Inexact plans still return exactly ``min(k, authorised)``: the exact finish (issue 19).

A plan the store cannot run exactly (a ``keyMatch2`` or ``regexMatch`` grant) makes the
store return a superset; when the guard's bounded over-fetch rounds run out before
``k`` authorised chunks are found, it reads every point the relaxed filter admits
(``scroll``), decides each with the plan and scores the survivors with numpy. The
references: ``policy.check`` for "may read" (checked against ``casbin.enforce`` by the
conformance suite) and numpy brute force for the top-k, on the real engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from qdrant_client import QdrantClient

import ragguard as rg
from ragguard.testing import RecordingAuditSink, in_memory_tracing

DIM = 16
POLICIES = Path(__file__).resolve().parents[2] / "policies"

KEYMATCH2_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub.id == p.sub && keyMatch2(r.obj.path, p.obj) && r.act == p.act
"""
KEYMATCH2_POLICY = "p, alice, /kb/:space/runbooks/*, read\n"

# Relaxed grants of several shapes for the property test: keyMatch2 segments, regexMatch,
# keyMatch prefixes (now pushed down exactly) mixed with exact equality on `kind`.
MIXED_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, fn, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub.id == p.sub && r.act == p.act && ((p.fn == "keyMatch2" && keyMatch2(r.obj.path, p.obj)) || (p.fn == "regexMatch" && regexMatch(r.obj.path, p.obj)) || (p.fn == "keyMatch" && keyMatch(r.obj.path, p.obj)) || (p.fn == "kind" && r.obj.kind == p.obj))
"""
MIXED_POLICY = """
p, u1, /kb/:space/runbooks/*, keyMatch2, read
p, u2, ^/kb/s1[0-9]/notes/, regexMatch, read
p, u3, /kb/s7/*, keyMatch, read
p, u3, runbook, kind, read
p, u4, /kb/s3:x/*, keyMatch2, read
p, u4, 9\\.md$, regexMatch, read
p, u5, /kb/s1/notes/1*, keyMatch, read
p, u5, /kb/:space/notes/2*, keyMatch2, read
p, u6, /kb/*, keyMatch, read
"""
SUBJECTS = [rg.Subject(id=f"u{i}") for i in range(1, 8)]  # u7 may read nothing


def _vectors(count: int, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(count, DIM))
    normalised: npt.NDArray[np.float64] = matrix / np.linalg.norm(matrix, axis=1)[:, None]
    return normalised


def _store(kind: str, tmp_path: Path, distance: str = "cosine") -> rg.Store:
    if kind == "edge":
        return rg.EdgeStore.create(tmp_path / "shard", dim=DIM, distance=distance)
    name = "dense" if kind == "qdrant-named" else None
    return rg.QdrantStore.create(
        QdrantClient(":memory:"), "kb", dim=DIM, distance=distance, vector_name=name
    )


@pytest.fixture(params=["edge", "qdrant"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- the reproduction: 3,000 chunks, one readable -----------------------------------


def _one_readable(store: rg.Store, readable_path: str, other_path: str) -> tuple[list[float], str]:
    """3,000 chunks the relaxed filter admits, one of them readable and far from the query.

    For the keyMatch2 grant ``/kb/:space/runbooks/*`` the others are decoys like
    ``/kb/s7/x/runbooks/7.md``: they start with ``/kb/`` and contain ``/runbooks/`` (what
    the store can be told), but ``:space`` is one segment, so none matches.
    """
    vectors = _vectors(3000, seed=7)
    query = vectors[0]
    readable_index = int(np.argmin(vectors @ query))  # the least similar chunk of all
    chunks = [
        rg.Chunk(
            text=f"chunk {i}",
            metadata={"path": readable_path if i == readable_index else other_path.format(i=i)},
            vector=vectors[i].tolist(),
            id=i,
        )
        for i in range(3000)
    ]
    store.upsert(chunks)
    return query.tolist(), str(readable_index)


@pytest.mark.parametrize("k", [1, 5])
def test_one_readable_chunk_among_3000_behind_a_relaxed_keymatch2_grant(
    store_kind: str, tmp_path: Path, k: int
) -> None:
    store = _store(store_kind, tmp_path)
    query, readable = _one_readable(
        store, "/kb/ops/runbooks/restart.md", "/kb/s{i}/x/runbooks/{i}.md"
    )
    policy = rg.Policy.from_casbin(KEYMATCH2_MODEL, KEYMATCH2_POLICY)
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider)
    alice = rg.Subject(id="alice")
    assert not guard.plan(alice).exact  # keyMatch2 stays relaxed: the store returns a superset
    hits = guard.search(alice, query, k=k)
    assert [h.id for h in hits] == [readable]
    span = exporter.get_finished_spans()[-1]
    assert span.attributes is not None
    assert span.attributes["ragguard.fetch.truncated"] is False
    assert span.attributes["ragguard.fetch.scanned"] == 3000
    assert asyncio.run(guard.asearch(alice, query, k=k))[0].id == readable
    store.close()


@pytest.mark.parametrize("k", [1, 5])
def test_one_readable_chunk_among_3000_behind_a_keymatch_prefix_grant(
    store_kind: str, tmp_path: Path, k: int
) -> None:
    """kb-paths: guest reads /kb/public/*; keyMatch with '*' is now an exact prefix match."""
    store = _store(store_kind, tmp_path)
    query, readable = _one_readable(store, "/kb/public/welcome.md", "/kb/eng/doc-{i}.md")
    policy = rg.Policy.from_casbin(
        POLICIES / "kb-paths" / "model.conf", POLICIES / "kb-paths" / "policy.csv"
    )
    guest = rg.Subject(id="guest")
    # The whole plan runs inside the store (MatchPrefix), even with the scan turned off.
    guard = rg.Guard(policy, store, max_scan=0)
    assert guard.plan(guest).exact
    assert [h.id for h in guard.search(guest, query, k=k)] == [readable]
    store.close()


def test_the_scan_budget_marks_and_traces_a_short_result(tmp_path: Path) -> None:
    store = _store("edge", tmp_path)
    query, readable = _one_readable(
        store, "/kb/ops/runbooks/restart.md", "/kb/s{i}/x/runbooks/{i}.md"
    )
    policy = rg.Policy.from_casbin(KEYMATCH2_MODEL, KEYMATCH2_POLICY)
    provider, exporter = in_memory_tracing()
    sink = RecordingAuditSink()
    guard = rg.Guard(policy, store, tracer_provider=provider, audit=sink, max_scan=1500)
    hits = guard.search(rg.Subject(id="alice"), query, k=1)
    assert len(hits) <= 1
    assert sink.last.truncated
    span = exporter.get_finished_spans()[-1]
    assert span.attributes is not None
    assert span.attributes["ragguard.fetch.truncated"] is True
    assert span.attributes["ragguard.fetch.scanned"] == 1500
    [event] = [e for e in span.events if e.name == "ragguard.scan.budget_exhausted"]
    assert event.attributes == {"ragguard.fetch.scanned": 1500, "ragguard.scan.max": 1500}
    # without the finish, the old behaviour: rounds only, short and truncated
    off = rg.Guard(policy, store, audit=sink, max_scan=0)
    assert off.search(rg.Subject(id="alice"), query, k=1) == []
    assert sink.last.truncated
    # and with enough budget the one readable chunk is found
    assert [h.id for h in rg.Guard(policy, store).search(rg.Subject(id="alice"), query, 1)] == [
        readable
    ]
    store.close()


def test_max_scan_must_be_a_non_negative_integer(tmp_path: Path) -> None:
    store = _store("qdrant", tmp_path)
    policy = rg.Policy.from_casbin(KEYMATCH2_MODEL, KEYMATCH2_POLICY)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_scan"):
            rg.Guard(policy, store, max_scan=bad)  # type: ignore[arg-type]


# -- property: exact top-k vs numpy brute force on relaxed policies --------------------------

SPACES = [f"s{i}" for i in range(20)]
FOLDERS = ["runbooks", "notes", "hr"]


def _corpus(count: int, seed: int) -> tuple[list[rg.Chunk], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    vectors = _vectors(count, seed)
    chunks = []
    for i in range(count):
        space = SPACES[int(rng.integers(len(SPACES)))]
        folder = FOLDERS[int(rng.integers(len(FOLDERS)))]
        metadata: dict[str, Any] = {
            "path": f"/kb/{space}/{folder}/{int(rng.integers(100))}.md",
            "kind": "runbook" if folder == "runbooks" else "page",
        }
        if i % 97 == 0:
            metadata["path"] = [metadata["path"], f"/kb/s7/extra/{i}.md"]  # a list of paths
        chunks.append(
            rg.Chunk(text=f"chunk {i}", metadata=metadata, vector=vectors[i].tolist(), id=i)
        )
    return chunks, vectors


def _scores(distance: str, vectors: npt.NDArray[np.float64], query: npt.NDArray[np.float64]) -> Any:
    if distance == "euclid":
        return -np.linalg.norm(vectors - query, axis=1)  # negated: higher is better here
    if distance == "manhattan":
        return -np.abs(vectors - query).sum(axis=1)
    return vectors @ query


@pytest.fixture(
    params=[
        ("edge", "cosine"),
        ("qdrant", "cosine"),
        ("edge", "euclid"),
        ("edge", "manhattan"),
        ("qdrant-named", "dot"),
    ],
    ids=str,
)
def relaxed_corpus(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[rg.Store, list[rg.Chunk], npt.NDArray[np.float64], str]]:
    kind, distance = request.param
    store = _store(kind, tmp_path, distance)
    chunks, vectors = _corpus(1200, seed=11)
    store.upsert(chunks)
    yield store, chunks, vectors, distance
    store.close()


def test_relaxed_plans_give_the_brute_force_top_k(
    relaxed_corpus: tuple[rg.Store, list[rg.Chunk], npt.NDArray[np.float64], str],
) -> None:
    store, chunks, vectors, distance = relaxed_corpus
    policy = rg.Policy.from_casbin(MIXED_MODEL, MIXED_POLICY)
    # One round only: most searches need the exact finish, the rest end in the rounds.
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, max_fetch_rounds=1, tracer_provider=provider)
    queries = _vectors(12, seed=5)
    wheres: list[dict[str, Any] | None] = [None, {"kind": "page"}]
    shares = set()
    checked = 0
    for subject in SUBJECTS:
        readable = np.array([policy.check(subject, c.metadata).released for c in chunks])
        shares.add(round(float(readable.mean()), 3))
        for where in wheres:
            narrowed = readable & np.array(
                [where is None or c.metadata["kind"] == where["kind"] for c in chunks]
            )
            for q, query in enumerate(queries):
                k = (1, 5, 10)[q % 3]
                truth = _scores(distance, vectors, query)
                allowed = np.flatnonzero(narrowed)
                best = allowed[np.argsort(-truth[allowed], kind="stable")][:k]
                search = (
                    guard.search(subject, query.tolist(), k, where=where)
                    if q % 2
                    else asyncio.run(guard.asearch(subject, query.tolist(), k, where=where))
                )
                got = [int(h.id) for h in search]
                assert all(narrowed[i] for i in got), (subject.id, "leak")
                assert len(got) == len(best), (subject.id, where, q)
                if len(best):
                    kth = truth[best[-1]]
                    assert all(truth[i] >= kth - 1e-5 for i in got), (subject.id, where, q)
                    assert sorted(got) == sorted(int(i) for i in best)
                checked += len(best)
    assert 0.0 in shares  # one subject reads nothing
    assert len(shares) >= 5  # many readable shares
    assert checked > 300
    spans = exporter.get_finished_spans()
    finished = [s for s in spans if s.attributes and "ragguard.fetch.scanned" in s.attributes]
    assert 0 < len(finished) < len(spans)  # both paths ran: rounds only, and the finish
    assert not any(s.attributes and s.attributes["ragguard.fetch.truncated"] for s in spans)


def test_the_exact_finish_uses_the_async_client() -> None:
    """A QdrantStore with only an AsyncQdrantClient finishes through ascroll/avectors."""
    from qdrant_client import AsyncQdrantClient
    from qdrant_client import models as qm

    async def run() -> tuple[list[str], str]:
        client = AsyncQdrantClient(":memory:")
        await client.create_collection(
            "kb", vectors_config=qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)
        )
        vectors = _vectors(3000, seed=7)
        readable = int(np.argmin(vectors @ vectors[0]))
        await client.upsert(
            "kb",
            points=[
                qm.PointStruct(
                    id=i,
                    vector=vectors[i].tolist(),
                    payload={
                        "page_content": f"chunk {i}",
                        "metadata": {
                            "path": "/kb/ops/runbooks/x.md"
                            if i == readable
                            else f"/kb/s{i}/x/runbooks/{i}.md"
                        },
                    },
                )
                for i in range(3000)
            ],
        )
        store = rg.QdrantStore(async_client=client, collection="kb", dim=DIM)
        policy = rg.Policy.from_casbin(KEYMATCH2_MODEL, KEYMATCH2_POLICY)
        guard = rg.Guard(policy, store, tracer_provider=provider)
        hits = await guard.asearch(rg.Subject(id="alice"), vectors[0].tolist(), k=5)
        await client.close()
        return [h.id for h in hits], str(readable)

    provider, exporter = in_memory_tracing()
    got, readable = asyncio.run(run())
    assert got == [readable]
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["ragguard.fetch.scanned"] == 3000
