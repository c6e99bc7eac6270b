"""Guard.search on a real EdgeStore: exact authorised top-k, bounded fetching, fail-closed input."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_edge import Point, UpdateOperation

import ragguard as rg
from ragguard.testing import RecordingAuditSink, StoreSpy

DIM = 16
TENANTS = ("acme", "globex")
DEPTS = ("engineering", "hr", "legal")

ABAC_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj.tenant == r.sub.tenant && r.obj.level <= r.sub.clearance && r.act == "read"
"""

DEPT_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && r.obj.dept == "eng"
"""

PATH_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.id == p.sub && regexMatch(r.obj.path, p.obj) && r.act == p.act
"""
# regexMatch cannot be pushed into Qdrant: the store returns a superset (here every path
# under its literal prefix "/docs/"). keyMatch with a '*' is an exact MatchPrefix.
PATH_POLICY = "p, alice, ^/docs/(engineering)/1, read\n"

ALICE = rg.Subject(id="alice", attributes={"tenant": "acme", "clearance": 1})


def _vector(rng: np.random.Generator) -> list[float]:
    v = rng.normal(size=DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def _chunks(count: int = 240, seed: int = 7) -> list[rg.Chunk]:
    rng = np.random.default_rng(seed)
    chunks = []
    for i in range(count):
        dept = DEPTS[i % 3]
        metadata: dict[str, Any] = {
            "tenant": TENANTS[i % 2],
            "dept": dept,
            "level": int(rng.integers(0, 4)),
            "path": f"/docs/{dept}/{i}.md",
        }
        chunks.append(rg.Chunk(text=f"chunk {i}", metadata=metadata, vector=_vector(rng), id=i))
    return chunks


CHUNKS = _chunks()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rg.EdgeStore]:
    edge = rg.EdgeStore.create(tmp_path_factory.mktemp("guard") / "shard", dim=DIM)
    edge.upsert(CHUNKS)
    edge.optimize()
    yield edge
    edge.close()


def _brute_force_top_k(
    policy: rg.Policy, subject: rg.Subject, query: Sequence[float], k: int
) -> list[str]:
    """The oracle: cosine over every authorised chunk, numpy, no store."""
    allowed = [c for c in CHUNKS if policy.check(subject, c.metadata).released]
    if not allowed:
        return []
    matrix = np.array([c.vector for c in allowed])
    q = np.asarray(query) / np.linalg.norm(query)
    scores = matrix @ q / np.linalg.norm(matrix, axis=1)
    order = np.argsort(-scores, kind="stable")[:k]
    return [str(allowed[i].id) for i in order]


@pytest.mark.parametrize("k", [1, 5, 20, 200])
def test_search_returns_exactly_the_authorised_top_k(store: rg.EdgeStore, k: int) -> None:
    """Exactly min(k, authorised) hits, the brute-force top-k, in score order."""
    policy = rg.Policy.from_casbin(ABAC_MODEL)
    guard = rg.Guard(policy, store, exact_search=True)
    rng = np.random.default_rng(k)
    for _ in range(5):
        query = _vector(rng)
        hits = guard.search(ALICE, query, k=k)
        expected = _brute_force_top_k(policy, ALICE, query, k)
        assert [h.id for h in hits] == expected
        assert all(h.decision.released and h.metadata["tenant"] == "acme" for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_inexact_plan_fetches_more_rounds_until_k_authorised(store: rg.EdgeStore) -> None:
    """A relaxed regexMatch filter over-fetches in doubling rounds and still gets the exact top-k."""
    policy = rg.Policy.from_casbin(PATH_MODEL, PATH_POLICY)
    counting = StoreSpy(store)
    recorder = RecordingAuditSink()
    guard = rg.Guard(policy, counting, audit=recorder, exact_search=True)
    assert guard.plan(ALICE).exact is False
    query = _vector(np.random.default_rng(1))
    hits = guard.search(ALICE, query, k=20)
    assert [h.id for h in hits] == _brute_force_top_k(policy, ALICE, query, 20)
    assert all(h.metadata["path"].startswith("/docs/engineering/1") for h in hits)
    assert len(counting.search_limits) > 1
    assert counting.search_limits == sorted(counting.search_limits)
    [retrieval] = recorder.retrievals
    assert retrieval.rounds == len(counting.search_limits)
    assert retrieval.withheld  # the superset's extra chunks were re-checked and withheld


def test_inexact_plan_sizes_its_first_round_by_what_it_released(store: rg.EdgeStore) -> None:
    """An inexact plan's first round asks for 4k until the guard has seen what share of
    that plan's results it releases, then k / share (k while nothing was withheld);
    the answers are the exact top-k either way."""
    rng = np.random.default_rng(4)

    def first_rounds(policy: rg.Policy, k: int, searches: int) -> list[int]:
        spy = StoreSpy(store)
        guard = rg.Guard(policy, spy, exact_search=True)
        assert guard.plan(ALICE).exact is False  # a regex: relaxed to its prefix
        limits = []
        for _ in range(searches):
            query = _vector(rng)
            spy.search_limits.clear()
            hits = guard.search(ALICE, query, k=k)
            limits.append(spy.search_limits[0])
            assert [h.id for h in hits] == _brute_force_top_k(policy, ALICE, query, k)
        return limits

    # Every chunk the relaxed filter admits is released: k from the second search on.
    everything = rg.Policy.from_casbin(PATH_MODEL, "p, alice, ^/docs/, read\n")
    assert first_rounds(everything, 10, 3) == [40, 10, 10]
    # A plan that withholds most of what the store admits asks for more up front.
    limits = first_rounds(rg.Policy.from_casbin(PATH_MODEL, PATH_POLICY), 5, 4)
    assert limits[0] == 20
    assert all(20 < limit <= 80 for limit in limits[1:]), limits


def test_bounded_rounds_mark_the_retrieval_truncated(store: rg.EdgeStore) -> None:
    """When the fetch budget runs out and the exact finish is off (max_scan=0), fewer hits
    come back and the audit says truncated; with the finish on, the top-k is exact."""
    policy = rg.Policy.from_casbin(PATH_MODEL, PATH_POLICY)
    recorder = RecordingAuditSink()
    query = _vector(np.random.default_rng(2))
    guard = rg.Guard(
        policy, store, audit=recorder, max_fetch_rounds=1, exact_search=True, max_scan=0
    )
    hits = guard.search(ALICE, query, k=20)
    assert len(hits) < 20
    assert recorder.retrievals[0].truncated
    finishing = rg.Guard(policy, store, audit=recorder, max_fetch_rounds=1)
    hits = finishing.search(ALICE, query, k=20)
    assert [h.id for h in hits] == _brute_force_top_k(policy, ALICE, query, 20)
    assert not recorder.retrievals[1].truncated


def test_deny_all_never_touches_the_store(store: rg.EdgeStore) -> None:
    """A subject the policy grants nothing gets [] without a store query."""
    policy = rg.Policy.from_casbin(PATH_MODEL, PATH_POLICY)
    counting = StoreSpy(store)
    guard = rg.Guard(policy, counting)
    mallory = rg.Subject(id="mallory")
    assert guard.plan(mallory).kind == "deny_all"
    assert guard.search(mallory, _vector(np.random.default_rng(3)), k=5) == []
    assert counting.search_limits == []


def test_injection_shaped_attribute_is_data_not_syntax(store: rg.EdgeStore) -> None:
    """A tenant value like `acme" || "1" == "1` matches no chunk instead of all chunks."""
    policy = rg.Policy.from_casbin(ABAC_MODEL)
    guard = rg.Guard(policy, store)
    sneaky = rg.Subject(id="eve", attributes={"tenant": 'acme" || "1" == "1', "clearance": 9})
    assert guard.search(sneaky, _vector(np.random.default_rng(4)), k=10) == []


def test_where_narrows_and_never_widens(store: rg.EdgeStore) -> None:
    """where= ANDs with the policy: a foreign tenant in where yields nothing."""
    guard = rg.Guard(rg.Policy.from_casbin(ABAC_MODEL), store, exact_search=True)
    query = _vector(np.random.default_rng(5))
    hr = guard.search(ALICE, query, k=10, where={"dept": "hr"})
    assert hr
    assert all(h.metadata["dept"] == "hr" and h.metadata["tenant"] == "acme" for h in hr)
    assert guard.search(ALICE, query, k=10, where={"tenant": "globex"}) == []


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        (None, "subject"),
        ("alice", "Subject"),
    ],
)
def test_missing_or_wrong_subject_is_refused(
    store: rg.EdgeStore, subject: Any, message: str
) -> None:
    """No subject (or a bare string) raises SubjectError; nothing is searched."""
    guard = rg.Guard(rg.Policy.from_casbin(ABAC_MODEL), store)
    with pytest.raises(rg.SubjectError, match=message):
        guard.search(subject, _vector(np.random.default_rng(6)), k=3)


@pytest.mark.parametrize(
    "attributes",
    [{"tenant": {"nested": "dict"}}, {"clearance": float("nan")}, {"tenant": object()}],
)
def test_subject_attributes_must_be_json_scalars_or_lists(attributes: dict[str, Any]) -> None:
    """Non-JSON-like subject attributes are rejected when the subject is built."""
    with pytest.raises(rg.SubjectError):
        rg.Subject(id="alice", attributes=attributes)


def test_subject_without_id_is_refused() -> None:
    """An empty subject id is rejected."""
    with pytest.raises(rg.SubjectError):
        rg.Subject(id="")


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([0.1] * (DIM - 1), "dimension"),
        ([math.nan] + [0.1] * (DIM - 1), "NaN"),
        ([math.inf] + [0.1] * (DIM - 1), "NaN or infinity"),
        ([0.0] * DIM, "all zeros"),
        (["a"] * DIM, "not a sequence of numbers"),
    ],
)
def test_bad_query_vectors_raise_query_error(
    store: rg.EdgeStore, vector: list[Any], message: str
) -> None:
    """Wrong dimension, NaN, inf, zero or non-numbers: QueryError naming the problem."""
    guard = rg.Guard(rg.Policy.from_casbin(ABAC_MODEL), store)
    with pytest.raises(rg.QueryError, match=message):
        guard.search(ALICE, vector, k=3)


@pytest.mark.parametrize("k", [0, -1, True, 2.5, 10**9])
def test_bad_k_raises_query_error(store: rg.EdgeStore, k: Any) -> None:
    """k below 1, above max_k, or not an integer is refused."""
    guard = rg.Guard(rg.Policy.from_casbin(ABAC_MODEL), store)
    with pytest.raises(rg.QueryError, match="k must be"):
        guard.search(ALICE, _vector(np.random.default_rng(7)), k=k)


def test_store_failing_mid_search_releases_nothing(store: rg.EdgeStore) -> None:
    """A store error in the second fetch round raises StoreError; no partial result."""
    policy = rg.Policy.from_casbin(PATH_MODEL, PATH_POLICY)
    guard = rg.Guard(
        policy,
        StoreSpy(store, fail_on={"search": 2}, error=ConnectionError("qdrant went away")),
        exact_search=True,
    )
    with pytest.raises(rg.StoreError, match="qdrant went away"):
        guard.search(ALICE, _vector(np.random.default_rng(8)), k=20)


def test_malformed_stored_payloads_are_withheld_with_a_reason(tmp_path: Path) -> None:
    """A list holding an object, or a point without page_content, is denied as malformed."""
    with rg.EdgeStore.create(tmp_path / "shard", dim=DIM) as edge:
        rng = np.random.default_rng(9)
        edge.upsert(
            [
                # Qdrant matches the "acme" element; ragguard refuses the object next to it.
                rg.Chunk("bad", {"tenant": ["acme", {"$ne": 1}], "level": 0}, _vector(rng), id=1),
                rg.Chunk("good", {"tenant": "acme", "level": 0}, _vector(rng), id=2),
            ]
        )
        no_text = {"metadata": {"tenant": "acme", "level": 0}}
        edge.shard.update(UpdateOperation.upsert_points([Point(3, _vector(rng), no_text)]))
        recorder = RecordingAuditSink()
        guard = rg.Guard(rg.Policy.from_casbin(ABAC_MODEL), edge, audit=recorder)
        hits = guard.search(ALICE, _vector(rng), k=5)
        assert [h.text for h in hits] == ["good"]
        reasons = sorted(h.decision.reason or "" for h in recorder.retrievals[0].withheld)
        assert len(reasons) == 2
        assert reasons[0].startswith("malformed metadata: metadata attribute 'tenant' holds a dict")
        assert reasons[1] == "malformed payload: no usable page_content"


def test_async_search_matches_sync_search(store: rg.EdgeStore) -> None:
    """asearch (EdgeStore: in a worker thread) returns what search returns."""
    guard = rg.Guard(rg.Policy.from_casbin(ABAC_MODEL), store, exact_search=True)
    query = _vector(np.random.default_rng(10))
    assert [h.id for h in asyncio.run(guard.asearch(ALICE, query, k=7))] == [
        h.id for h in guard.search(ALICE, query, k=7)
    ]


def test_qdrant_store_async_client_gives_the_same_top_k() -> None:
    """QdrantStore with only an AsyncQdrantClient (local mode) agrees with the oracle."""
    policy = rg.Policy.from_casbin(ABAC_MODEL)
    query = _vector(np.random.default_rng(11))

    async def run() -> list[str]:
        client = AsyncQdrantClient(":memory:")
        try:
            await client.create_collection(
                "docs",
                vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            )
            await client.upsert(
                "docs",
                points=[
                    models.PointStruct(
                        id=i,
                        vector=list(c.vector),
                        payload={"page_content": c.text, "metadata": dict(c.metadata)},
                    )
                    for i, c in enumerate(CHUNKS)
                ],
            )
            store = rg.QdrantStore(async_client=client, collection="docs", dim=DIM)
            hits = await rg.Guard(policy, store).asearch(ALICE, query, k=9)
            return [h.id for h in hits]
        finally:
            await client.close()

    assert asyncio.run(run()) == _brute_force_top_k(policy, ALICE, query, 9)


@pytest.mark.parametrize("distance", ["euclid", "manhattan", "dot", "cosine"])
def test_hits_come_nearest_first_for_every_distance(tmp_path: Path, distance: str) -> None:
    """Qdrant scores euclid/manhattan by distance (lower is better): the guard must not
    release the farthest chunks first. Reference: numpy over the readable chunks."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(120, 8))
    readable = [i % 3 != 0 for i in range(120)]
    policy = rg.Policy.from_casbin(DEPT_MODEL, "p, anyone, read\n")
    query = rng.normal(size=8)
    with rg.EdgeStore.create(tmp_path / "shard", dim=8, distance=distance) as store:
        store.upsert(
            rg.Chunk(
                text=f"c{i}",
                metadata={"dept": "eng" if readable[i] else "hr"},
                vector=vectors[i].tolist(),
                id=i + 1,
            )
            for i in range(120)
        )
        hits = rg.Guard(policy, store, exact_search=True).search(
            rg.Subject(id="alice"), query.tolist(), k=10
        )
    if distance == "euclid":
        key = np.linalg.norm(vectors - query, axis=1)
    elif distance == "manhattan":
        key = np.abs(vectors - query).sum(axis=1)
    elif distance == "dot":
        key = -(vectors @ query)
    else:
        key = -(vectors @ query) / np.linalg.norm(vectors, axis=1)
    expected = [str(i + 1) for i in np.argsort(key) if readable[i]][:10]
    assert [h.id for h in hits] == expected


def test_min_score_is_refused_on_distance_stores(tmp_path: Path) -> None:
    policy = rg.Policy.from_casbin(DEPT_MODEL, "p, anyone, read\n")
    with (
        rg.EdgeStore.create(tmp_path / "shard", dim=2, distance="euclid") as store,
        pytest.raises(ValueError, match="lower is better"),
    ):
        rg.Guard(policy, store, budget=rg.ReleaseBudget(min_score=0.5))


def test_qdrant_store_reads_its_distance_from_the_collection() -> None:
    client = QdrantClient(":memory:")
    rg.QdrantStore.create(client, "near", dim=4, distance="manhattan")
    assert rg.QdrantStore(client=client, collection="near").distance == "manhattan"
    given = rg.QdrantStore(client=client, collection="near", dim=4, distance="manhattan")
    assert given.distance == "manhattan"
    with pytest.raises(ValueError, match="unknown distance"):
        rg.QdrantStore(client=client, collection="near", distance="hamming")
