"""ChromaStore on the real embedded Chroma engine (chromadb's in-process client).

* random filter IR over random metadata: Chroma's ``where`` selects exactly the rows the
  compiled predicate accepts when the pushdown claims to be exact, a superset when relaxed;
* the typed semantics case by case: absent, ``True`` vs ``1``, ``1 == 1.0``, 64-bit
  integers, lists (typed, int/float), floats beyond the 64-bit integers;
* values Chroma cannot hold exactly are refused at upsert, and nothing of the call is written;
* guarded top-k equals numpy brute force (cosine, dot, euclid) with exact search, and the
  HNSW search's recall under a selective filter, measured;
* an existing langchain-chroma collection, written by langchain-chroma itself;
* errors: StoreError without query values, MissingDependencyError, lazy import.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragguard as rg
from ragguard.policy import ir
from ragguard.policy._predicate import compile_check, normalize_metadata
from ragguard.testing.store_kit import expressions, fit_metadata, payloads

chromadb = pytest.importorskip("chromadb", reason="ChromaStore needs ragguard[chroma]")

DIM = 4
_ids = itertools.count(1)


def _accepts(expr: ir.Expr, metadata: Mapping[str, Any]) -> bool:
    fields = frozenset(ir.fields_of(expr))
    return compile_check(expr)(normalize_metadata(metadata, fields))


def _storable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Random metadata as Chroma holds it: 64-bit integers, lists of one type."""
    return fit_metadata(metadata, integer_range=(-(2**63), 2**63 - 1), mixed_lists=False)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def client() -> Any:
    return chromadb.EphemeralClient()


def test_where_equals_predicate_when_exact_and_covers_it_when_relaxed(client: Any) -> None:
    """Random IR over random metadata: Chroma ⊇ predicate, and = when the pushdown is exact."""
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    rng = np.random.default_rng(0)

    @settings(
        max_examples=int(os.environ.get("RAGGUARD_CONFORMANCE_EXAMPLES") or 150),
        deadline=None,
        derandomize=not os.environ.get("RAGGUARD_CONFORMANCE_EXAMPLES"),
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(expr=expressions, points=st.lists(payloads.map(_storable), min_size=1, max_size=16))
    def agrees(expr: ir.Expr, points: list[dict[str, Any]]) -> None:
        ids = [next(_ids) for _ in points]
        by_id = {str(i): md for i, md in zip(ids, points, strict=True)}
        vectors = rng.standard_normal((len(points), DIM)) + 0.1
        store.upsert(
            rg.Chunk(text="t", metadata=md, vector=list(v), id=i)
            for i, md, v in zip(ids, points, vectors, strict=True)
        )
        try:
            pushdown = store.translate(expr)
            found = {h.id for h in store.search([1.0] * DIM, len(points), pushdown, exact=True)}
            stored = {c.id: c.metadata for c in store.get(ids)}
        finally:
            store.delete(ids)
        assert stored == by_id, "metadata did not come back as written"
        accepted = {i for i, md in by_id.items() if _accepts(expr, md)}
        context = f"\nexpr={expr!r}\nexact={pushdown.exact} where={pushdown.native}"
        missing = accepted - found
        assert not missing, f"filter dropped {[by_id[i] for i in missing]}" + context
        if pushdown.exact:
            extra = [by_id[i] for i in found - accepted]
            assert not extra, f"exact filter let through {extra}" + context

    agrees()


# -- the typed semantics, case by case ----------------------------------------------------

ROWS: dict[str, dict[str, Any]] = {
    "absent": {},
    "null": {"v": None},
    "empty": {"v": []},
    "nulls": {"v": [None]},
    "one": {"v": 1},
    "one-float": {"v": 1.5 - 0.5},
    "true": {"v": True},
    "str-1": {"v": "1"},
    "big53": {"v": 2**53 + 1},
    "max64": {"v": 2**63 - 1},
    "near64": {"v": 2**63 - 2048},
    "float64": {"v": 2.0**63},
    "huge": {"v": 1e300},
    "ints": {"v": [1, 2]},
    "floats": {"v": [1.5, 2.5]},
    "bools": {"v": [True]},
    "strs": {"v": ["a", "é"]},
    "numbers": {"v": [1, 2.5, None]},
    "with-null": {"v": [None, "b"]},
    "half": {"v": 0.5},
}
CASES: list[tuple[ir.Expr, set[str]]] = [
    (ir.Eq("v", 1), {"one", "one-float", "ints", "numbers"}),
    (ir.Eq("v", 1.0), {"one", "one-float", "ints", "numbers"}),
    (ir.Eq("v", True), {"true", "bools"}),
    (ir.Eq("v", "1"), {"str-1"}),
    (ir.Eq("v", 2**53), set()),
    (ir.Eq("v", 2**53 + 1), {"big53"}),
    (ir.Eq("v", 2.0**53), set()),
    (ir.Eq("v", 2**63 - 2048), {"near64"}),
    (ir.Eq("v", 2**63 - 1537), set()),  # its nearest float is 2**63 - 2048
    (ir.Eq("v", 2.0**63 - 2048), {"near64"}),
    (ir.Eq("v", 2.5), {"floats", "numbers"}),
    (ir.Eq("v", "é"), {"strs"}),
    (ir.Eq("v", "b"), {"with-null"}),
    (ir.In("v", (2, "a", False)), {"ints", "strs"}),
    (ir.Not(ir.Eq("v", 1)), set(ROWS) - {"one", "one-float", "ints", "numbers"}),
    (ir.Not(ir.Eq("v", True)), set(ROWS) - {"true", "bools"}),
    (ir.Not(ir.In("v", ("a", 0.5))), set(ROWS) - {"strs", "half"}),
    (
        ir.Not(ir.Or((ir.Eq("v", 1), ir.Eq("v", "1")))),
        set(ROWS) - {"one", "one-float", "ints", "numbers", "str-1"},
    ),
]


@pytest.fixture(scope="module")
def typed(client: Any) -> rg.ChromaStore:
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    store.upsert(
        rg.Chunk(text=name, metadata=md, vector=[1.0, 0.0, 0.0, 0.0], id=name)
        for name, md in ROWS.items()
    )
    return store


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_typed_semantics_are_exact_in_chroma(
    expr: ir.Expr, expected: set[str], typed: rg.ChromaStore
) -> None:
    """Each case: Chroma selects exactly the predicate's rows."""
    pushdown = typed.translate(expr)
    assert pushdown.exact, pushdown.relaxed
    by_predicate = {name for name, md in ROWS.items() if _accepts(expr, md)}
    assert by_predicate == expected, "the test's expectation disagrees with ragguard"
    for exact in (True, False):
        found = {h.text for h in typed.search([1.0, 0, 0, 0], len(ROWS), pushdown, exact=exact)}
        assert found == expected


def test_relaxed_atoms_are_reported_and_never_narrow(typed: rg.ChromaStore) -> None:
    """Ranges, Exists, substrings, matching functions, odd names, numbers Chroma compares
    inexactly: integers beyond 64 bits, those it rounds to the float 2**63 against a stored
    float, floats beyond the 64-bit integers (it saturates them against a stored integer)."""
    relaxed: list[ir.Expr] = [
        ir.Match("keyMatch", "v", "a*", True),
        ir.Eq("$and", "x"),
        ir.Eq("#document", "x"),
        ir.Eq("ragguard:metadata", "v"),
        ir.Eq("v", float("inf")),
        ir.Eq("v", 2**64 + 1),
        ir.Eq("v", 2**63 - 1),
        ir.Not(ir.Eq("v", 2**63 - 1024)),
        ir.Eq("v", 2.0**63 - 1024),
        ir.Eq("v", 2.0**63),
        ir.Eq("v", -(2**63)),
        ir.In("v", (1e300, "a")),
        ir.Eq("v", -1e300),
        ir.Range("v", gt=1),
        ir.Not(ir.Range("v", gt=1)),
        ir.Exists("v"),
        ir.Contains("v", "a"),
        ir.Within("v", "ab"),
    ]
    for expr in relaxed:
        pushdown = typed.translate(expr)
        assert not pushdown.exact, expr
        assert pushdown.relaxed, expr
        found = {h.text for h in typed.search([1.0, 0, 0, 0], 100, pushdown)}
        assert found == set(ROWS)
    got = {c.text: c.metadata for c in typed.get(list(ROWS))}
    assert got == ROWS  # every value comes back as written
    raw_ids = [c.id for c in typed.get(["float64", "huge"])]
    raw = typed.client.get_collection(typed.collection).get(ids=raw_ids)
    metadatas = raw["metadatas"]
    assert metadatas is not None
    assert [type(md["v"]) for md in metadatas] == [float, float]  # Chroma holds floats
    assert (typed.db_system_name, typed.collection) == ("chroma", typed.collection)


def test_long_in_lists_are_exact_up_to_the_limit_and_relaxed_beyond(typed: rg.ChromaStore) -> None:
    """1,000 values: exact (a tree of clauses: SQLite refuses 1,000 in one flat ``$or``);
    10,000: relaxed (too many bound values for SQLite), never an error or a crash."""
    for size, exact in [(1_000, True), (10_000, False)]:
        expr = ir.In("v", (*range(2, size + 2), "a"))
        pushdown = typed.translate(expr)
        assert pushdown.exact is exact
        found = {h.text for h in typed.search([1.0, 0, 0, 0], len(ROWS), pushdown)}
        accepted = {name for name, md in ROWS.items() if _accepts(expr, md)}
        assert accepted == {"ints", "strs"}
        assert found == (accepted if exact else set(ROWS))


# -- guarded top-k against numpy ------------------------------------------------------------

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
POLICY = "p, alice, legal, read\np, bob, hr, read\np, bob, ops, read\n"


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
def test_guarded_top_k_equals_brute_force(distance: str, client: Any) -> None:
    """Exact search: the released top-k is numpy's among the authorised, scores included."""
    rng = np.random.default_rng(7)
    n, k = 400, 10
    vectors = rng.standard_normal((n, DIM))
    depts = rng.choice(["eng", "hr", "ops", "legal"], size=n, p=[0.6, 0.3, 0.09, 0.01])
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    store = rg.ChromaStore.create(client, _name(), dim=DIM, distance=distance)
    assert store.distance == distance
    store.upsert(
        rg.Chunk(text=f"c{i}", metadata={"dept": str(d)}, vector=list(v), id=i)
        for i, (d, v) in enumerate(zip(depts, vectors, strict=True))
    )
    query = rng.standard_normal(DIM)
    if distance == "cosine":
        scores = (vectors / np.linalg.norm(vectors, axis=1)[:, None]) @ (
            query / np.linalg.norm(query)
        )
    elif distance == "dot":
        scores = vectors @ query
    else:
        scores = -np.linalg.norm(vectors - query, axis=1)
    for exact in (True, False):
        guard = rg.Guard(policy, store, exact_search=exact)
        for user, allowed in [("alice", {"legal"}), ("bob", {"hr", "ops"})]:
            hits = guard.search(rg.Subject(id=user), list(query), k)
            authorised = [i for i in range(n) if depts[i] in allowed]
            best = sorted(authorised, key=lambda i: -scores[i])[:k]
            assert all(depts[int(h.id)] in allowed for h in hits)
            assert [int(h.id) for h in hits] == best, (distance, exact, user)
            sign = -1.0 if distance == "euclid" else 1.0
            for h in hits:
                assert abs(sign * h.score - scores[int(h.id)]) < 1e-4


def test_hnsw_recall_under_a_selective_filter(client: Any) -> None:
    """3,000 points, a filter admitting 0.5 %: Chroma's HNSW search with the filter still
    returns the authorised top-10 (measured recall: 1.0 on this corpus)."""
    rng = np.random.default_rng(11)
    n, k, dim = 3000, 10, 16
    vectors = rng.standard_normal((n, dim))
    store = rg.ChromaStore.create(client, _name(), dim=dim)
    store.upsert(
        rg.Chunk(
            text="t", metadata={"dept": "legal" if i % 200 == 0 else "eng"}, vector=list(v), id=i
        )
        for i, v in enumerate(vectors)
    )
    pushdown = store.translate(ir.Eq("dept", "legal"))
    recalls = []
    for _ in range(5):
        query = rng.standard_normal(dim)
        approximate = {h.id for h in store.search(list(query), k, pushdown)}
        exact = {h.id for h in store.search(list(query), k, pushdown, exact=True)}
        assert len(exact) == k
        recalls.append(len(approximate & exact) / k)
    assert min(recalls) == 1.0, recalls


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
def test_exact_search_reads_in_pages_and_equals_numpy(
    client: Any, distance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact search reads admitted rows a page at a time (one get of every row failed in
    Chroma at 50,000 readable chunks: "too many SQL variables") and keeps only the best:
    the result equals numpy brute force whatever the page size, ties included."""
    import ragguard.stores.chroma as chroma_module

    rng = np.random.default_rng(11)
    n, k = 230, 12
    vectors = rng.standard_normal((n, DIM))
    vectors[40] = vectors[7]  # a tie across pages
    store = rg.ChromaStore.create(client, _name(), dim=DIM, distance=distance)
    store.upsert(
        rg.Chunk(text=f"t{i}", metadata={"even": i % 2 == 0}, vector=list(v), id=i)
        for i, v in enumerate(vectors)
    )
    pushdown = store.translate(ir.Eq("even", True))
    query = rng.standard_normal(DIM)
    admitted = np.arange(0, n, 2)
    rows = vectors[admitted]
    if distance == "cosine":
        scores = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    elif distance == "dot":
        scores = rows @ query
    else:
        scores = -np.linalg.norm(rows - query, axis=1)
    expected = [int(admitted[i]) for i in np.argsort(-scores, kind="stable")[:k]]
    results = {}
    for page in (1_000, 7, 1):
        monkeypatch.setattr(chroma_module, "_EXACT_PAGE", page)
        hits = store.search(list(query), k, pushdown, exact=True)
        results[page] = [h.id for h in hits]
        assert sorted(map(int, results[page])) == sorted(expected), page
    assert results[7] == results[1_000] == results[1]


# -- an existing langchain-chroma collection ------------------------------------------------


def test_an_existing_langchain_chroma_collection_works_as_it_is(client: Any) -> None:
    """langchain-chroma writes the collection; ragguard searches it with pushdown."""
    langchain_chroma = pytest.importorskip("langchain_chroma")
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    table = {"legal memo": [1.0, 0, 0, 0], "hr memo": [0.9, 0.1, 0, 0], "ops memo": [0, 1.0, 0, 0]}

    class Fixed(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [table[t] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return table[text]

    name = _name()
    vectorstore = langchain_chroma.Chroma(
        collection_name=name,
        embedding_function=Fixed(),
        client=client,
        collection_metadata={"hnsw:space": "cosine"},
    )
    vectorstore.add_documents(
        [
            Document(page_content="legal memo", metadata={"dept": "legal", "tags": ["a", "b"]}),
            Document(page_content="hr memo", metadata={"dept": "hr"}),
            Document(page_content="ops memo", metadata={"dept": "ops"}),
        ]
    )
    store = rg.ChromaStore(client, name)
    assert (store.dim, store.distance) == (4, "cosine")
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store)
    hits = guard.search(rg.Subject(id="bob"), [1.0, 0, 0, 0], 5)
    assert [h.text for h in hits] == ["hr memo", "ops memo"]
    assert hits[0].metadata == {"dept": "hr"}
    assert abs(hits[0].score - 0.9 / np.linalg.norm([0.9, 0.1])) < 1e-5
    legal = guard.search(rg.Subject(id="alice"), [1.0, 0, 0, 0], 5)
    assert [(h.text, dict(h.metadata)) for h in legal] == [
        ("legal memo", {"dept": "legal", "tags": ["a", "b"]})
    ]


# -- errors, laziness, concurrency ----------------------------------------------------------


def test_chroma_errors_are_store_errors_without_query_values(client: Any) -> None:
    name = _name()
    store = rg.ChromaStore.create(client, name, dim=DIM)
    store.upsert([rg.Chunk("t", {"dept": "x"}, [1.0, 0, 0, 0], id=1)])
    client.delete_collection(name)
    secret = ir.Eq("dept", "salary-of-bob")
    with pytest.raises(rg.StoreError) as raised:
        store.search([0.123456, 0, 0, 0], 3, store.translate(secret))
    message = str(raised.value)
    assert name in message
    assert "salary" not in message
    assert "0.123456" not in message
    with pytest.raises(rg.StoreError, match="search"):
        store.search([0.123456, 0, 0, 0], 3, store.translate(secret), exact=True)


def test_wrong_input_is_refused(client: Any) -> None:
    name = _name()
    store = rg.ChromaStore.create(client, name, dim=DIM)
    with pytest.raises(rg.StoreError, match="cannot create"):
        rg.ChromaStore.create(client, name, dim=DIM)
    with pytest.raises(rg.StoreError, match="cannot open"):
        rg.ChromaStore(client, _name(), dim=DIM)
    with pytest.raises(rg.StoreError, match="is empty: pass dim="):
        rg.ChromaStore(client, name)
    with pytest.raises(rg.StoreError, match="dimension"):
        store.search([1.0, 2.0], 3, store.translate(ir.TRUE))
    with pytest.raises(rg.StoreError, match=r"cannot store chunk .* metadata.level"):
        store.upsert([rg.Chunk("t", {"level": float("nan")}, [1.0] * DIM, id="bad")])
    with pytest.raises(rg.StoreError, match="ChromaStore's own"):
        store.upsert([rg.Chunk("t", {"ragguard:metadata": "{}"}, [1.0] * DIM, id="bad")])
    with pytest.raises(rg.StoreError, match="not made by a ChromaStore"):
        store.search([1.0] * DIM, 3, rg.Pushdown(native="x", exact=True))
    with pytest.raises(ValueError, match="unknown distance"):
        rg.ChromaStore.create(client, _name(), dim=DIM, distance="manhattan")


UNHOLDABLE: list[tuple[dict[str, Any], str]] = [
    ({"v": 2**63}, "metadata.v"),
    ({"v": 2**64 - 1}, "metadata.v"),
    ({"v": -(2**63) - 1}, "metadata.v"),
    ({"v": 10**30}, "metadata.v"),
    ({"v": [5, 2**63]}, r"metadata.v\[1\]"),
    ({"v": ["a", 5, None]}, "metadata.v"),
    ({"v": [True, 1]}, "metadata.v"),
    ({"v": [2**53 + 1, 2.5]}, "metadata.v"),  # 2**53 + 1 is no float: no common type
    ({"v": {"k": 1}}, "metadata.v"),
    ({"v": [{"k": 1}]}, r"metadata.v\[0\]"),
    ({"v": [[1]]}, r"metadata.v\[0\]"),
]


@pytest.mark.parametrize(("metadata", "path"), UNHOLDABLE, ids=[repr(m) for m, _ in UNHOLDABLE])
def test_values_chroma_cannot_hold_exactly_are_refused_and_nothing_is_written(
    client: Any, metadata: dict[str, Any], path: str
) -> None:
    """StoreError naming the chunk and the attribute (not the value), with the hint; no
    chunk of the call is written, not even the batches before the bad one."""
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    good = [rg.Chunk("fine", {"v": i}, [1.0, 0, 0, 0], id=f"good-{i}") for i in range(300)]
    with pytest.raises(rg.StoreError, match=rf"cannot store chunk 999 {path}: ") as raised:
        store.upsert([*good, rg.Chunk("t", metadata, [1.0, 0, 0, 0], id=999)])
    message = str(raised.value)
    assert "store it as a string" in message
    assert not any(str(n) in message for n in (2**63, 2**64 - 1, 2**63 + 1, 10**30, 2**53 + 1))
    assert store.get([*(f"good-{i}" for i in range(300)), 999]) == []
    assert store.scroll(store.translate(ir.TRUE), 10).chunks == []


def test_absent_values_and_float_lists_are_kept(client: Any) -> None:
    """``None``, ``[]``, ``[None]`` are absent; a list of integers and floats that are all
    floats exactly is written as floats and found by either form."""
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    rows: dict[str, dict[str, Any]] = {
        "none": {"v": None},
        "empty": {"v": []},
        "nulls": {"v": [None]},
        "numbers": {"v": [1, 2.5]},
        "edges": {"v": [-(2**63), 2**63 - 1, 2**62 + 1]},
    }
    store.upsert(rg.Chunk(k, md, [1.0, 0, 0, 0], id=k) for k, md in rows.items())
    assert {c.text: c.metadata for c in store.get(list(rows))} == rows
    cases: list[tuple[ir.Expr, set[str]]] = [
        (ir.Eq("v", 1), {"numbers"}),
        (ir.Eq("v", 2.5), {"numbers"}),
        (ir.Eq("v", 2**62 + 1), {"edges"}),
        (ir.Not(ir.Eq("v", 1)), set(rows) - {"numbers"}),
    ]
    for expr, expected in cases:
        pushdown = store.translate(expr)
        assert pushdown.exact, expr
        found = {h.text for h in store.search([1.0, 0, 0, 0], 10, pushdown)}
        assert found == expected, expr


def test_an_unreachable_server_is_a_store_error_with_the_connection_hint() -> None:
    with pytest.raises(rg.StoreError, match="server is up"):
        rg.ChromaStore.http("127.0.0.1", 1, collection="docs", dim=DIM)


def test_persistent_store_reopens_what_it_wrote(tmp_path: Any) -> None:
    path = str(tmp_path / "chroma")
    store = rg.ChromaStore.persistent(path, "docs", dim=DIM, create_if_missing=True)
    store.upsert([rg.Chunk("kept", {"dept": "hr", "n": None}, [1.0, 0, 0, 0], id="a")])
    again = rg.ChromaStore.persistent(path, "docs")
    [chunk] = again.get(["a"])
    assert (chunk.text, chunk.metadata, again.dim) == ("kept", {"dept": "hr", "n": None}, DIM)


def test_import_ragguard_never_imports_chromadb_and_a_missing_one_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "import ragguard as rg\n"
        "assert 'chromadb' not in sys.modules\n"
        "sys.modules['chromadb'] = None\n"
        "try:\n"
        "    rg.ChromaStore\n"
        "except rg.MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install ragguard[chroma]" in out


def test_concurrent_guarded_searches_never_mix_subjects(client: Any) -> None:
    """Threads share one store: each subject gets only its department."""
    rng = np.random.default_rng(5)
    depts = ["legal", "hr", "ops"]
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    policy = rg.Policy.from_casbin(
        MODEL, "p, alice, legal, read\np, bob, hr, read\np, carol, ops, read\n"
    )
    guard = rg.Guard(policy, store)
    owner = {"alice": "legal", "bob": "hr", "carol": "ops"}
    store.upsert(
        rg.Chunk("t", {"dept": depts[i % 3]}, list(rng.standard_normal(DIM)), id=i)
        for i in range(300)
    )
    queries = [list(rng.standard_normal(DIM)) for _ in range(60)]

    def one(turn: int) -> bool:
        user = ["alice", "bob", "carol"][turn % 3]
        hits = guard.search(rg.Subject(id=user), queries[turn], 5)
        return len(hits) == 5 and all(h.metadata["dept"] == owner[user] for h in hits)

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(one, range(60)))


async def test_guard_asearch_equals_search(client: Any) -> None:
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    store.upsert(
        rg.Chunk("t", {"dept": ["hr", "legal"][i % 2]}, [1.0, i / 10, 0, 0], id=i)
        for i in range(20)
    )
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store)
    subject = rg.Subject(id="bob")
    sync = guard.search(subject, [1.0, 0, 0, 0], 4)
    asynchronous = await guard.asearch(subject, [1.0, 0, 0, 0], 4)
    assert [h.id for h in asynchronous] == [h.id for h in sync]
    assert len(sync) == 4


def test_scroll_pages_cover_the_filter_once_and_vectors_come_back(client: Any) -> None:
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    assert isinstance(store, rg.stores.ScrollingStore)
    store.upsert(
        rg.Chunk("t", {"dept": ["hr", "legal"][i % 2]}, [1.0, i, 0, 0], id=i) for i in range(25)
    )
    pushdown = store.translate(ir.Eq("dept", "hr"))
    seen: list[str] = []
    offset: str | int | None = None
    while True:
        page = store.scroll(pushdown, 4, offset)
        seen.extend(c.id for c in page.chunks)
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert sorted(seen, key=int) == [str(i) for i in range(0, 25, 2)]
    vectors = store.vectors(["3", "missing"])
    assert list(vectors) == ["3"]
    assert vectors["3"] == pytest.approx([1.0, 3.0, 0.0, 0.0])


RANGE_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = role, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.obj.level <= r.sub.clearance && r.act == p.act
"""


def test_a_relaxed_pushdown_is_finished_exactly_by_scanning(client: Any) -> None:
    """Range is relaxed in Chroma: the guard scrolls the store (ScrollingStore) and still
    releases exactly numpy's authorised top-k for a subject who may read 0.5 %."""
    rng = np.random.default_rng(3)
    n, k = 2000, 10
    vectors = rng.standard_normal((n, DIM))
    levels = [0 if i % 200 == 0 else 5 for i in range(n)]
    store = rg.ChromaStore.create(client, _name(), dim=DIM)
    store.upsert(
        rg.Chunk("t", {"level": level}, list(v), id=i)
        for i, (level, v) in enumerate(zip(levels, vectors, strict=True))
    )
    # one over-fetch round: only the scan (ScrollingStore) can find the 10 authorised rows
    policy = rg.Policy.from_casbin(RANGE_MODEL, "p, any, read\n")
    guard = rg.Guard(policy, store, max_fetch_rounds=1)
    assert (
        rg.Guard(policy, store, max_fetch_rounds=1, max_scan=0).search(
            rg.Subject(id="low", attributes={"clearance": 1}), [1.0, 0, 0, 0], k
        )
        == []
    )
    subject = rg.Subject(id="low", attributes={"clearance": 1})
    assert not store.translate(guard.plan(subject).filter).exact  # the Range is relaxed
    query = rng.standard_normal(DIM)
    scores = (vectors / np.linalg.norm(vectors, axis=1)[:, None]) @ (query / np.linalg.norm(query))
    best = sorted((i for i in range(n) if levels[i] == 0), key=lambda i: -scores[i])[:k]
    hits = guard.search(subject, list(query), k)
    assert [int(h.id) for h in hits] == best


# -- a Chroma server (chromadb's own `chroma run`) -----------------------------------------


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``chroma run`` in a subprocess on a free port; skipped, with the reason, without it."""
    import shutil
    import socket
    import time

    executable = shutil.which("chroma", path=os.path.dirname(sys.executable)) or shutil.which(
        "chroma"
    )
    if executable is None:
        pytest.skip("chromadb's `chroma` command is not installed: no server to test on")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path_factory.mktemp("chroma-server")
    server = subprocess.Popen(
        [executable, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.skip("`chroma run` did not come up within 30 s")
                time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_chroma_server_has_the_embedded_engines_semantics(
    chroma_server: tuple[str, int],
) -> None:
    """``ChromaStore.http``: the typed cases and a guarded search, through the server."""
    host, port = chroma_server
    name = _name()
    rg.ChromaStore.create(chromadb.HttpClient(host=host, port=port), name, dim=DIM)
    store = rg.ChromaStore.http(host, port, collection=name, dim=DIM)
    store.upsert(
        rg.Chunk(text=key, metadata=md, vector=[1.0, 0.0, 0.0, 0.0], id=key)
        for key, md in ROWS.items()
    )
    for expr, expected in CASES:
        pushdown = store.translate(expr)
        for exact in (True, False):
            found = {h.text for h in store.search([1.0, 0, 0, 0], len(ROWS), pushdown, exact=exact)}
            assert found == expected, expr
    assert {c.text: c.metadata for c in store.get(list(ROWS))} == ROWS
    assert (store.dim, store.distance) == (DIM, "cosine")
