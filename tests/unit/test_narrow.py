"""A caller's narrowing filter (``where=``, ``Plan.narrow``) holds on every store and shape.

The reference for "may read" is written here in plain Python per filter shape, never
taken from ragguard; top-k is numpy brute force. Stores: EdgeStore, QdrantStore in
qdrant-client's local mode, and a store that ignores the filter altogether (and claims
the opposite), so nothing but the guard's re-check stands between the caller's filter
and the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

import ragguard as rg
from ragguard.policy import ir
from ragguard.policy._plan import OUTSIDE_CALLER_FILTER
from ragguard.stores.base import IndexSpec, Pushdown, StoredChunk
from ragguard.testing import RecordingAuditSink

DIM = 16
MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj.tenant == r.sub.tenant && r.act == "read"
"""
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme"})
PROJECTS = ("p0", "p1", "p2")
CODES = ("a", "b", "c", "d", "e")


def _chunks() -> list[rg.Chunk]:
    rng = np.random.default_rng(13)
    chunks = []
    for i in range(150):
        vector = rng.normal(size=DIM)
        project = PROJECTS[i % 3]
        metadata: dict[str, Any] = {
            "tenant": "acme" if i % 5 else "globex",
            "project": project,
            "n": i,
            "dept-x": "a" if i % 4 == 0 else "b",
            "code": CODES[i % 5] + str(i),
            "path": f"/docs/{project}/{i}.md",
        }
        chunks.append(
            rg.Chunk(f"chunk {i}", metadata, [float(x) for x in vector / np.linalg.norm(vector)], i)
        )
    return chunks


CHUNKS = _chunks()

# Each shape: the caller's filter, and the same condition written in plain Python.
SHAPES: dict[str, tuple[ir.Expr | Mapping[str, Any], Callable[[Mapping[str, Any]], bool]]] = {
    "mapping equality": ({"project": "p1"}, lambda md: md["project"] == "p1"),
    "mapping list": ({"project": ["p0", "p2"]}, lambda md: md["project"] in ("p0", "p2")),
    "long numeric In": (ir.in_("n", range(0, 300, 2)), lambda md: md["n"] % 2 == 0),
    "attribute name with a dash": (ir.Eq("dept-x", "a"), lambda md: md["dept-x"] == "a"),
    "string range": (ir.Range("code", gte="b", lt="d"), lambda md: "b" <= md["code"] < "d"),
    "negation": (ir.not_(ir.Eq("project", "p0")), lambda md: md["project"] != "p0"),
    "keyMatch": (
        ir.Match("keyMatch", "path", "/docs/p2/*"),
        lambda md: md["path"].startswith("/docs/p2/"),
    ),
    "or of relaxed atoms": (
        ir.or_(ir.Eq("dept-x", "a"), ir.Range("code", lt="b")),
        lambda md: md["dept-x"] == "a" or md["code"] < "b",
    ),
}


class FilterIgnoringStore:
    """Returns the nearest chunks of the whole corpus, whatever the filter, and claims
    an exact pushdown: a custom store with a broken (or missing) filter translation."""

    distance = "cosine"

    def __init__(self, chunks: Sequence[rg.Chunk]) -> None:
        self._chunks = list(chunks)
        self._matrix = np.array([c.vector for c in chunks])

    @property
    def dim(self) -> int:
        return DIM

    def translate(self, expr: ir.Expr) -> Pushdown:
        return Pushdown(native=None, exact=True, matches_nothing=expr == ir.FALSE)

    def search(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        scores = self._matrix @ np.asarray(vector)
        order = np.argsort(-scores, kind="stable")[:limit]
        return [
            StoredChunk(
                str(self._chunks[i].id),
                float(scores[i]),
                self._chunks[i].text,
                dict(self._chunks[i].metadata),
            )
            for i in order
        ]

    def upsert(self, chunks: Iterable[rg.Chunk]) -> list[str]:
        raise NotImplementedError

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        return []

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Nothing to index."""

    def close(self) -> None:
        """Nothing to close."""


@pytest.fixture(scope="module", params=["edge", "qdrant-local", "filter-ignoring"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    if request.param == "edge":
        edge = rg.EdgeStore.create(tmp_path_factory.mktemp("narrow") / "shard", dim=DIM)
        edge.upsert(CHUNKS)
        edge.optimize()
        yield edge
        edge.close()
    elif request.param == "qdrant-local":
        qdrant = rg.QdrantStore.create(QdrantClient(":memory:"), "narrow", dim=DIM)
        qdrant.upsert(CHUNKS)
        yield qdrant
        qdrant.close()
    else:
        yield FilterIgnoringStore(CHUNKS)


def _expected_ids(
    holds: Callable[[Mapping[str, Any]], bool], query: Sequence[float], k: int
) -> list[str]:
    """Brute force: alice's tenant and the caller's condition, ranked by cosine."""
    allowed = [c for c in CHUNKS if c.metadata["tenant"] == "acme" and holds(c.metadata)]
    scores = np.array([c.vector for c in allowed]) @ np.asarray(query)
    return [str(allowed[i].id) for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("k", [5, 150])
def test_caller_filter_holds_on_every_store_and_shape(store: Any, shape: str, k: int) -> None:
    """Regression: a where= the store could not push down exactly (or at all) was
    ignored by the re-check, and chunks outside the caller's filter were released."""
    where, holds = SHAPES[shape]
    # qdrant-client's local mode is exact already (and warns about search_params).
    exact = not isinstance(store, rg.QdrantStore)
    guard = rg.Guard(rg.Policy.from_casbin(MODEL), store, exact_search=exact)
    query = CHUNKS[7].vector
    hits = guard.search(ALICE, query, k=k, where=where)
    assert all(holds(h.metadata) and h.metadata["tenant"] == "acme" for h in hits), shape
    assert [h.id for h in hits] == _expected_ids(holds, query, k), shape


def test_withheld_reason_names_the_caller_filter() -> None:
    """A chunk the policy releases but the caller's filter excludes says so in its reason."""
    recorder = RecordingAuditSink()
    guard = rg.Guard(rg.Policy.from_casbin(MODEL), FilterIgnoringStore(CHUNKS), audit=recorder)
    hits = guard.search(ALICE, CHUNKS[3].vector, k=5, where={"project": "p1"})
    assert hits
    assert all(h.metadata["project"] == "p1" for h in hits)
    [retrieval] = recorder.retrievals
    by_reason = {
        h.metadata["tenant"]: h.decision.reason or ""
        for h in retrieval.withheld
        if h.metadata["project"] != "p1"
    }
    assert by_reason["acme"].startswith(OUTSIDE_CALLER_FILTER)
    assert "project" in by_reason["acme"]
    assert not by_reason["globex"].startswith(OUTSIDE_CALLER_FILTER)  # the policy's reason
    assert retrieval.plan.to_json()["caller_filter"] == ir.to_json(ir.Eq("project", "p1"))


def test_narrowing_does_not_change_the_cached_plan() -> None:
    """Plans are cached per subject: a narrowed search leaves the cached plan as it was."""
    policy = rg.Policy.from_casbin(MODEL)
    guard = rg.Guard(policy, FilterIgnoringStore(CHUNKS))
    cached, guarded = policy.plan(ALICE), guard.plan(ALICE)
    query = CHUNKS[3].vector
    narrowed = guard.search(ALICE, query, k=20, where={"project": "p1"})
    assert {h.metadata["project"] for h in narrowed} == {"p1"}
    assert policy.plan(ALICE) is cached
    assert cached.filter == ir.Eq("tenant", "acme")
    assert guard.plan(ALICE).filter == guarded.filter == cached.filter
    assert {h.metadata["project"] for h in guard.search(ALICE, query, k=20)} == set(PROJECTS)
    assert policy.check(ALICE, {"tenant": "acme", "project": "p0"}).released


def test_narrow_combines_filter_decide_and_kind() -> None:
    """narrow(): the filter is the AND, the kind follows it, decide re-checks it."""
    policy = rg.Policy.from_casbin(MODEL)
    plan = policy.plan(ALICE)
    narrowed = plan.narrow(ir.Eq("project", "p1"))
    assert narrowed.filter == ir.and_(plan.filter, ir.Eq("project", "p1"))
    assert narrowed.kind == "conditional"
    assert narrowed.digest != plan.digest
    assert narrowed.decide({"tenant": "acme", "project": "p1"}).released
    denied = narrowed.decide({"tenant": "acme", "project": "p0"})
    assert not denied.released
    assert denied.reason is not None
    assert denied.reason.startswith(OUTSIDE_CALLER_FILTER)
    missing = narrowed.decide({"tenant": "acme"})
    assert not missing.released
    assert "missing attribute 'project'" in (missing.reason or "")
    assert plan.narrow(ir.TRUE) is plan
    twice = narrowed.narrow(ir.Eq("code", "b1"))
    assert not twice.decide({"tenant": "acme", "project": "p1", "code": "c2"}).released
    assert twice.decide({"tenant": "acme", "project": "p1", "code": "b1"}).released
    assert twice.fields >= {"tenant", "project", "code"}


def test_narrow_never_widens() -> None:
    """A filter that contradicts the policy, or a plan that grants nothing, stays nothing."""
    policy = rg.Policy.from_casbin(MODEL)
    contradiction = policy.plan(ALICE).narrow(ir.not_(ir.Eq("tenant", "acme")))
    assert contradiction.kind == "deny_all"
    assert not contradiction.decide({"tenant": "globex"}).released
    # Not a contradiction (a list-valued tenant may hold both) but never wider either.
    other = policy.plan(ALICE).narrow(ir.Eq("tenant", "globex"))
    assert not other.decide({"tenant": "globex"}).released
    assert other.decide({"tenant": ["acme", "globex"]}).released
    reason = contradiction.decide({"tenant": "acme"}).reason or ""
    assert reason.startswith(OUTSIDE_CALLER_FILTER)
    nobody = policy.plan(rg.Subject(id="bob"))
    assert nobody.kind == "deny_all"
    for where in (ir.TRUE, ir.Exists("tenant"), ir.not_(ir.Eq("tenant", "acme"))):
        assert nobody.narrow(where).kind == "deny_all"
        assert not nobody.narrow(where).decide({"tenant": "acme"}).released
    everything = rg.Policy.from_casbin(MODEL.replace("r.obj.tenant == r.sub.tenant && ", ""))
    assert everything.plan(ALICE).kind == "allow_all"
    project = everything.plan(ALICE).narrow(ir.Eq("project", "p1"))
    assert project.kind == "conditional"
    assert not project.decide({"project": "p2"}).released


def test_narrow_refuses_what_is_not_a_filter() -> None:
    """A caller filter of the wrong type is an error, never an ignored filter."""
    plan = rg.Policy.from_casbin(MODEL).plan(ALICE)
    with pytest.raises(TypeError):
        plan.narrow({"project": "p1"})  # type: ignore[arg-type]
    guard = rg.Guard(rg.Policy.from_casbin(MODEL), FilterIgnoringStore(CHUNKS))
    with pytest.raises(rg.QueryError, match="where"):
        guard.search(ALICE, CHUNKS[0].vector, k=3, where="project == 'p1'")  # type: ignore[arg-type]


def test_narrowed_search_async_rechecks_too() -> None:
    """asearch takes the same narrowed plan."""
    import asyncio

    guard = rg.Guard(rg.Policy.from_casbin(MODEL), FilterIgnoringStore(CHUNKS))
    hits = asyncio.run(guard.asearch(ALICE, CHUNKS[3].vector, k=150, where={"project": "p2"}))
    assert hits
    assert {h.metadata["project"] for h in hits} == {"p2"}
    assert len(hits) == sum(
        1 for c in CHUNKS if c.metadata["tenant"] == "acme" and c.metadata["project"] == "p2"
    )
