"""Stores: the pushed-down filter agrees with the compiled predicate; opening and errors.

The property: for a random filter IR expression and random payloads, the points a store
returns under the translated filter are exactly those the compiled predicate accepts
when the translation claims to be exact, and a superset when it relaxed something
(``Pushdown.exact`` is False). The one documented exception: a list holding ``null`` is
absent/shorter to ragguard but not to Qdrant's ``IsEmpty``/``IsNull``, so such points may
come back even from an exact filter (the guard's re-check denies them).

Checked on EdgeStore without payload indexes, EdgeStore with payload indexes of every
type (an index must not change which points match), and QdrantStore in local mode.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient
from qdrant_client import models as qm

import ragguard as rg
from ragguard.policy import ir
from ragguard.stores._qdrant_filter import MAX_NUMERIC_ALTERNATIVES, MAX_SUBSTRING_TEXT
from ragguard.testing.store_kit import FIELDS, ODD_FIELD, expressions, payloads, predicate_accepts

DIM = 4
# The random IR and payloads are the store kit's (ragguard.testing.store_kit), which every
# store runs; here they run longer, on EdgeStore with and without payload indexes.

# -- stores --------------------------------------------------------------------------------


@dataclass
class Backend:
    """A store plus how to empty it between examples."""

    store: rg.Store
    delete: Callable[[list[int]], None]


def _edge(path: Path, indexes: Sequence[rg.IndexSpec]) -> tuple[Backend, Callable[[], None]]:
    store = rg.EdgeStore.create(path, dim=DIM)
    store.create_payload_indexes(indexes)

    def delete(ids: list[int]) -> None:
        store.shard.update(qe.UpdateOperation.delete_points(list[int | uuid.UUID | str](ids)))

    return Backend(store, delete), store.close


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Backend]]:
    """Stores that live for the module: each example upserts, queries, deletes."""
    index_sets: dict[str, list[rg.IndexSpec]] = {
        "edge": [],
        "edge-indexed": [
            rg.IndexSpec("a", "keyword"),
            rg.IndexSpec("b", "integer"),
            rg.IndexSpec("c", "float"),
        ],
        "edge-indexed-other-types": [
            rg.IndexSpec("a", "bool"),
            rg.IndexSpec("b", "float"),
            rg.IndexSpec("c", "keyword", is_tenant=True),
        ],
    }
    out: dict[str, Backend] = {}
    closers: list[Callable[[], None]] = []
    for name, indexes in index_sets.items():
        backend, close = _edge(tmp_path_factory.mktemp(name) / "shard", indexes)
        out[name] = backend
        closers.append(close)
    client = QdrantClient(":memory:")
    local = rg.QdrantStore.create(client, "ir", dim=DIM)

    def delete_local(ids: list[int]) -> None:
        client.delete("ir", points_selector=qm.PointIdsList(points=list(ids)), wait=True)

    out["qdrant-local"] = Backend(local, delete_local)
    closers.append(client.close)
    yield out
    for close in closers:
        close()


_ids = itertools.count(1)


_predicate_accepts = predicate_accepts


def _holds_null_list(metadata: Mapping[str, Any], fields: set[str]) -> bool:
    return any(isinstance(metadata.get(f), list) and None in metadata[f] for f in fields)


@pytest.mark.parametrize(
    "name", ["edge", "edge-indexed", "edge-indexed-other-types", "qdrant-local"]
)
def test_store_filter_equals_predicate_when_exact_and_covers_it_when_relaxed(
    name: str, backends: dict[str, Backend]
) -> None:
    """Random IR over random payloads: store ⊇ predicate, and = when the pushdown is exact."""
    backend = backends[name]
    rng = np.random.default_rng(0)

    @settings(
        max_examples=int(os.environ.get("RAGGUARD_CONFORMANCE_EXAMPLES") or 150),
        deadline=None,
        derandomize=not os.environ.get("RAGGUARD_CONFORMANCE_EXAMPLES"),
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(expr=expressions, points=st.lists(payloads, min_size=1, max_size=16))
    def agrees(expr: ir.Expr, points: list[dict[str, Any]]) -> None:
        ids = [next(_ids) for _ in points]
        by_id = {str(i): md for i, md in zip(ids, points, strict=True)}
        vectors = rng.standard_normal((len(points), DIM)) + 0.1
        backend.store.upsert(
            rg.Chunk(text="t", metadata=md, vector=list(v), id=i)
            for i, md, v in zip(ids, points, vectors, strict=True)
        )
        try:
            pushdown = backend.store.translate(expr)
            found = {hit.id for hit in backend.store.search([1.0] * DIM, len(points), pushdown)}
        finally:
            backend.delete(ids)
        accepted = {i for i, md in by_id.items() if _predicate_accepts(expr, md)}
        context = f"\nexpr={expr!r}\nexact={pushdown.exact} relaxed={pushdown.relaxed}"
        missing = accepted - found
        assert not missing, f"filter dropped {[by_id[i] for i in missing]}" + context
        if pushdown.exact:
            fields = ir.fields_of(expr)
            extra = [by_id[i] for i in found - accepted if not _holds_null_list(by_id[i], fields)]
            assert not extra, f"exact filter let through {extra}" + context

    agrees()


_BIG_NUMBERS: list[Any] = [
    *(2**53 - 1, 2**53, 2**53 + 1, 2**53 + 2, 2.0**53, 2.0**53 + 2, -(2**53) - 1),
    *(2**60, 2**60 + 1, 2.0**60, 1234567890123456789, 1234567890123456790),
    *(2**63 - 2, 2**63 - 1, 2**63, 2.0**63, -(2**63) + 1, -(2**63), 2**64 + 1, 10**30),
]


@pytest.mark.parametrize(
    "name", ["edge", "edge-indexed", "edge-indexed-other-types", "qdrant-local"]
)
def test_big_number_equalities_are_exact_or_relaxed_on_every_pair(
    name: str, backends: dict[str, Backend]
) -> None:
    """Every equality on a number around 2**53/2**63 against every such payload (and
    True, 1): the store never drops a match and, when it claims exactness, adds none."""
    backend = backends[name]
    storable = [n for n in _BIG_NUMBERS if not isinstance(n, int) or -(2**63) <= n < 2**64]
    payloads: list[Any] = [*storable, 2**64 - 1, True, 1, [2**53 + 1, 5], "2"]
    ids = [next(_ids) for _ in payloads]
    by_id = {str(i): dict.fromkeys(FIELDS, value) for i, value in zip(ids, payloads, strict=True)}
    backend.store.upsert(
        rg.Chunk(text="t", metadata=md, vector=[1.0] * DIM, id=int(i)) for i, md in by_id.items()
    )
    try:
        for field in FIELDS:
            for value in _BIG_NUMBERS:
                for expr in (
                    ir.Eq(field, value),
                    ir.in_(field, [value, 5]),
                    ir.not_(ir.Eq(field, value)),
                ):
                    pushdown = backend.store.translate(expr)
                    found = {h.id for h in backend.store.search([1.0] * DIM, len(ids), pushdown)}
                    accepted = {i for i, md in by_id.items() if _predicate_accepts(expr, md)}
                    assert accepted <= found, (expr, sorted(accepted - found))
                    if pushdown.exact:
                        assert found == accepted, (expr, sorted(found - accepted))
    finally:
        backend.delete(ids)


def test_relaxed_atoms_are_reported() -> None:
    """Matching functions, string ranges, huge numbers, odd names, long numeric In relax."""
    store_filter = rg.QdrantStore(client=QdrantClient(":memory:"), collection="x", dim=DIM)
    relaxed: list[ir.Expr] = [
        ir.Match("regexMatch", "a", "^x", True),
        ir.Range("a", gt="m"),
        ir.Eq("a", 2**53),  # a float can equal it: 2.0**53
        ir.Eq("a", 2**63 - 1),  # an integer index saturates larger payloads to it
        ir.Eq("a", 2**64 + 1),  # not a 64-bit integer
        ir.Range("a", gt=2**53 + 1),
        ir.Eq(ODD_FIELD, "s"),
        ir.In("a", tuple(range(MAX_NUMERIC_ALTERNATIVES + 1))),
        ir.Contains("a", "s"),
        ir.not_(ir.Contains("a", "s")),
        ir.Within("a", "s" * (MAX_SUBSTRING_TEXT + 1)),
    ]
    for expr in relaxed:
        pushdown = store_filter.translate(expr)
        assert not pushdown.exact, expr
        assert pushdown.relaxed, expr
    exact: list[ir.Expr] = [
        ir.and_(ir.Eq("a", "s"), ir.Range("b", lte=2)),
        ir.Eq("a", 2**53 + 1),
        ir.In("a", (1234567890123456789, 1234567890123456790, 5, "s")),
        ir.Within("a", "s" * MAX_SUBSTRING_TEXT),
    ]
    for expr in exact:
        assert store_filter.translate(expr).exact, expr


# -- opening shards another program wrote ----------------------------------------------------


def _write_foreign_shard(path: Path) -> dict[str, tuple[str, dict[str, Any], list[float]]]:
    """A shard written with qdrant-edge directly, as langchain or another tool would."""
    path.mkdir(parents=True)
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine))
    shard = qe.EdgeShard.create(str(path), config)
    rng = np.random.default_rng(3)
    points: dict[str, tuple[str, dict[str, Any], list[float]]] = {}
    for n in range(12):
        pid = str(uuid.UUID(int=int(rng.integers(1, 2**62)) * 7919 + n))
        metadata = {"dept": "eng" if n % 2 else "hr", "n": n}
        points[pid] = (f"text {n}", metadata, [float(x) for x in rng.standard_normal(DIM)])
    shard.update(
        qe.UpdateOperation.upsert_points(
            [
                qe.Point(pid, vector, {"page_content": text, "metadata": metadata})
                for pid, (text, metadata, vector) in points.items()
            ]
        )
    )
    shard.close()
    return points


def test_edge_store_opens_a_shard_written_by_qdrant_edge(tmp_path: Path) -> None:
    """UUID ids and LangChain payloads written elsewhere: read, filtered, guarded, extended."""
    path = tmp_path / "foreign"
    points = _write_foreign_shard(path)
    policy = rg.Policy.from_casbin(
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n"
        "[policy_effect]\ne = some(where (p.eft == allow))\n"
        "[matchers]\nm = r.obj.dept == r.sub.dept\n"
    )
    with rg.EdgeStore.open(path) as store:
        assert (store.dim, store.distance, store.count()) == (DIM, "cosine", len(points))
        some_id = next(iter(points))
        [got] = store.get([some_id])
        assert (got.id, got.text, got.metadata) == (some_id, *points[some_id][:2])
        query = [1.0, 0.5, -0.25, 0.0]
        hits = rg.Guard(policy, store).search(
            rg.Subject(id="alice", attributes={"dept": "eng"}), query, k=len(points)
        )
        eng = {pid for pid, (_, md, _) in points.items() if md["dept"] == "eng"}
        assert {hit.id for hit in hits} == eng
        q = np.asarray(query) / np.linalg.norm(query)
        expected = sorted(
            eng, key=lambda pid: -float(np.dot(points[pid][2], q) / np.linalg.norm(points[pid][2]))
        )
        assert [hit.id for hit in hits] == expected
        assert all(hit.text == points[hit.id][0] for hit in hits)
        store.upsert([rg.Chunk("new", {"dept": "eng"}, query, id="new-chunk")])
        assert store.count() == len(points) + 1
    with rg.EdgeStore.open(path) as reopened:  # the lock is released on close
        assert reopened.count() == len(points) + 1


# -- errors ----------------------------------------------------------------------------------


def test_second_open_of_the_same_shard_is_a_store_error(tmp_path: Path) -> None:
    """One handle per shard directory; the second says why it cannot open."""
    with (
        rg.EdgeStore.create(tmp_path / "shard", dim=DIM),
        pytest.raises(rg.StoreError, match="open in another process or store"),
    ):
        rg.EdgeStore.open(tmp_path / "shard")


def test_opening_what_is_not_a_shard_is_a_store_error(tmp_path: Path) -> None:
    """A missing directory, or one without edge_config.json, is named in the error."""
    with pytest.raises(rg.StoreError, match="does not exist"):
        rg.EdgeStore.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(rg.StoreError, match=r"no edge_config\.json"):
        rg.EdgeStore.open(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(rg.StoreError, match="already exists and is not empty"):
        rg.EdgeStore.create(tmp_path / "file", dim=DIM)


def test_creating_over_an_existing_shard_is_a_store_error(tmp_path: Path) -> None:
    """create() never reuses (or wipes) a directory that holds data."""
    rg.EdgeStore.create(tmp_path / "shard", dim=DIM).close()
    with pytest.raises(rg.StoreError, match=r"open it with EdgeStore\.open"):
        rg.EdgeStore.create(tmp_path / "shard", dim=DIM)


def _edge_store(tmp_path: Path) -> rg.EdgeStore:
    return rg.EdgeStore.create(tmp_path / "shard", dim=DIM)


def _qdrant_store(tmp_path: Path) -> rg.QdrantStore:
    return rg.QdrantStore.create(QdrantClient(":memory:"), "docs", dim=DIM)


@pytest.mark.parametrize("make", [_edge_store, _qdrant_store], ids=["edge", "qdrant"])
@pytest.mark.parametrize("vector", [[1.0, 2.0], [1.0] * (DIM + 1), [float("nan")] * DIM])
def test_wrong_vectors_are_store_errors(
    make: Callable[[Path], rg.Store], vector: list[float], tmp_path: Path
) -> None:
    """A vector of the wrong dimension or with NaN: StoreError naming the problem."""
    store = make(tmp_path)
    try:
        with pytest.raises(rg.StoreError, match=r"dimension|non-finite"):
            store.upsert([rg.Chunk("t", {}, vector, id=1)])
        with pytest.raises(rg.StoreError, match=r"dimension|non-finite"):
            store.search(vector, 3, store.translate(ir.TRUE))
    finally:
        store.close()


@pytest.mark.parametrize("make", [_edge_store, _qdrant_store], ids=["edge", "qdrant"])
@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"level": float("nan")}, "metadata.level"),
        ({"tags": ["a", float("inf")]}, r"metadata.tags\[1\]"),
        ({"owner": {1: "x"}}, "metadata.owner"),
        ({"labels": {"a", "b"}}, "metadata.labels"),
        # Integers Qdrant cannot keep exactly: qdrant-edge turned 2**64 into a float
        # silently (so 2**64 and 2**64 + 1 became one value) and raised a bare
        # TypeError for 10**400.
        ({"acct": 2**64}, "metadata.acct"),
        ({"acct": -(2**63) - 1}, "metadata.acct"),
        ({"ids": [1, 10**400]}, r"metadata.ids\[1\]"),
    ],
)
def test_metadata_without_a_json_form_is_a_store_error(
    make: Callable[[Path], rg.Store], metadata: dict[str, object], where: str, tmp_path: Path
) -> None:
    """Qdrant payloads are JSON with 64-bit integers: the store refuses, naming the chunk
    and the attribute (not the value); neither chunk of the call is written."""
    store = make(tmp_path)
    try:
        good = rg.Chunk("fine", {"level": 1}, [1.0] + [0.0] * (DIM - 1), id="good")
        bad = rg.Chunk("t", metadata, [0.0, 1.0] + [0.0] * (DIM - 2), id="bad")
        with pytest.raises(rg.StoreError, match=rf"cannot store chunk bad {where}"):
            store.upsert([good, bad])
        assert store.get(["good", "bad"]) == []
    finally:
        store.close()


@pytest.mark.parametrize("make", [_edge_store, _qdrant_store], ids=["edge", "qdrant"])
def test_integers_at_the_64_bit_edges_are_stored_exactly(
    make: Callable[[Path], rg.Store], tmp_path: Path
) -> None:
    """The largest and smallest integers Qdrant keeps read back as the same integers."""
    store = make(tmp_path)
    values = [2**64 - 1, 2**63, 2**63 - 1, 2**53 + 1, -(2**63)]
    try:
        store.upsert([rg.Chunk("t", {"acct": values}, [1.0] + [0.0] * (DIM - 1), id="c")])
        [chunk] = store.get(["c"])
        assert chunk.metadata is not None
        assert chunk.metadata["acct"] == values
        assert all(type(item) is int for item in chunk.metadata["acct"])
    finally:
        store.close()


def test_a_closed_edge_store_refuses_every_operation(tmp_path: Path) -> None:
    """After close(): StoreError saying the store is closed; close() again is harmless."""
    store = _edge_store(tmp_path)
    store.upsert([rg.Chunk("t", {"a": 1}, [1.0] * DIM, id=1)])
    store.close()
    store.close()
    calls: list[Callable[[], object]] = [
        lambda: store.search([1.0] * DIM, 3, store.translate(ir.TRUE)),
        lambda: store.upsert([rg.Chunk("t", {}, [1.0] * DIM, id=2)]),
        lambda: store.get(["1"]),
        store.count,
        store.optimize,
        lambda: store.create_payload_indexes([rg.IndexSpec("a", "integer")]),
    ]
    for call in calls:
        with pytest.raises(rg.StoreError, match="closed EdgeStore"):
            call()


def test_qdrant_store_on_a_missing_or_existing_collection_is_a_store_error() -> None:
    """A collection that is not there cannot be read; one that is cannot be created."""
    client = QdrantClient(":memory:")
    with pytest.raises(rg.StoreError, match="'missing'"):
        rg.QdrantStore(client=client, collection="missing")
    rg.QdrantStore.create(client, "docs", dim=DIM)
    with pytest.raises(rg.StoreError, match="already exists"):
        rg.QdrantStore.create(client, "docs", dim=DIM)
    client.close()


@pytest.mark.parametrize(
    "expr",
    [
        ir.Range("a", gt=2**53),  # 2**53 + 1 is a float 2**53: the store would drop it
        ir.Not(ir.Eq("a", 2**53)),  # ... and so equal it, then exclude it
        ir.Range("a", lte=-(2**53)),
    ],
)
def test_a_bound_of_two_to_the_53_is_relaxed_not_claimed_exact(
    expr: ir.Expr, backends: dict[str, Backend]
) -> None:
    """Regression: ±2**53 itself was pushed down as exact, but integers just beyond it
    compare equal to it as floats in Qdrant, so authorised chunks went missing."""
    store = backends["edge"].store
    values = [2**53 + 1, -(2**53) - 1, 2**53]
    ids = [next(_ids) for _ in values]
    points = {str(i): {"a": v} for i, v in zip(ids, values, strict=True)}
    store.upsert(rg.Chunk("t", md, [1.0] * DIM, id=int(i)) for i, md in points.items())
    try:
        pushdown = store.translate(expr)
        found = {hit.id for hit in store.search([1.0] * DIM, 10, pushdown)}
    finally:
        backends["edge"].delete(ids)
    accepted = {i for i, md in points.items() if _predicate_accepts(expr, md)}
    assert accepted <= found
    assert not pushdown.exact
