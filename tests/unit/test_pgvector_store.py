"""PgVectorStore on a real PostgreSQL with pgvector (``pgvector_url``, tests/conftest.py).

* random filter IR over random metadata: the SQL selects exactly the rows the compiled
  predicate accepts when the pushdown claims to be exact, a superset when relaxed; with
  and without the indexes ``create_payload_indexes`` makes (an index must not change
  which rows match);
* the typed semantics case by case: absent, ``True`` vs ``1``, ``1 == 1.0``, integers
  beyond 64 bits, lists, unicode order, type-mismatched ordering;
* guarded top-k equals numpy brute force (cosine, dot, euclid) with exact search, and an
  HNSW search with a selective filter still fills k (iterative scan);
* an existing langchain-postgres collection, written by langchain-postgres itself;
* errors: StoreError without query values, MissingDependencyError, lazy import.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragguard as rg
from ragguard.policy import ir
from ragguard.policy._predicate import compile_check, normalize_metadata
from ragguard.testing.store_kit import FIELDS, ODD_FIELD, expressions, payloads

psycopg = pytest.importorskip("psycopg", reason="PgVectorStore needs ragguard[pgvector]")
sql = psycopg.sql

DIM = 4
_ids = itertools.count(1)


def _accepts(expr: ir.Expr, metadata: Mapping[str, Any]) -> bool:
    fields = frozenset(ir.fields_of(expr))
    return compile_check(expr)(normalize_metadata(metadata, fields))


@pytest.fixture(scope="module")
def stores(pgvector_url: str) -> Iterator[dict[str, rg.PgVectorStore]]:
    """A plain table and one with every index create_payload_indexes makes."""
    plain = rg.PgVectorStore.create(pgvector_url, table="ir_plain", dim=DIM)
    indexed = rg.PgVectorStore.create(pgvector_url, table="ir_indexed", dim=DIM)
    indexed.create_payload_indexes(
        [
            rg.IndexSpec(FIELDS[0], "keyword"),
            rg.IndexSpec(FIELDS[1], "integer"),
            rg.IndexSpec(FIELDS[2], "float"),
            rg.IndexSpec("b", "float"),
            rg.IndexSpec("c", "integer"),
        ]
    )
    yield {"plain": plain, "indexed": indexed}
    plain.close()
    indexed.close()


@pytest.mark.parametrize("name", ["plain", "indexed"])
def test_sql_filter_equals_predicate_when_exact_and_covers_it_when_relaxed(
    name: str, stores: dict[str, rg.PgVectorStore]
) -> None:
    """Random IR over random metadata: SQL ⊇ predicate, and = when the pushdown is exact."""
    store = stores[name]
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
        store.upsert(
            rg.Chunk(text="t", metadata=md, vector=list(v), id=i)
            for i, md, v in zip(ids, points, vectors, strict=True)
        )
        try:
            pushdown = store.translate(expr)
            found = {h.id for h in store.search([1.0] * DIM, len(points), pushdown, exact=True)}
        finally:
            store.delete(ids)
        accepted = {i for i, md in by_id.items() if _accepts(expr, md)}
        context = f"\nexpr={expr!r}\nexact={pushdown.exact} relaxed={pushdown.relaxed}"
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
    "one-float": {"v": 1.0},
    "true": {"v": True},
    "str-1": {"v": "1"},
    "big": {"v": 2**64 + 1},
    "big-minus": {"v": 2**64},
    "huge": {"v": 10**30},
    "list": {"v": ["a", 5, None]},
    "accent": {"v": "é"},
    "upper": {"v": "Z"},
    "lower": {"v": "a"},
    "neg": {"v": -2.5},
    "float-big": {"v": 2.0**60},
    "decomposed": {"v": "e\u0301"},  # e + combining acute: not the precomposed é
    "emoji": {"v": "\U0001f600"},  # beyond the BMP: four UTF-8 bytes
}
CASES: list[tuple[ir.Expr, set[str]]] = [
    (ir.Eq("v", 1), {"one", "one-float"}),
    (ir.Eq("v", 1.0), {"one", "one-float"}),
    (ir.Eq("v", True), {"true"}),
    (ir.Eq("v", "1"), {"str-1"}),
    (ir.Eq("v", 2**64 + 1), {"big"}),
    (ir.Eq("v", 2**64), {"big-minus"}),
    (ir.Eq("v", 10**30), {"huge"}),
    (ir.Eq("v", 2**60), {"float-big"}),
    (ir.Eq("v", 2.0**60), {"float-big"}),
    (ir.Eq("v", 2**60 + 1), set()),
    (ir.Range("v", gt=2**60 - 1, lt=2**60 + 1), {"float-big"}),
    (ir.Range("v", gt=2.0**60), {"big", "big-minus", "huge"}),
    (ir.Eq("v", 1e30), set()),  # 1e30 is 1000000000000000019884624838656, not 10**30
    (ir.Range("v", gt=1e30), set()),
    (
        ir.Range("v", lt=1e30),
        {"one", "one-float", "big", "big-minus", "huge", "list", "neg", "float-big"},
    ),
    (ir.Eq("v", "a"), {"list", "lower"}),
    (ir.Eq("v", 5), {"list"}),
    (ir.In("v", (True, "a")), {"true", "list", "lower"}),
    (ir.Not(ir.Eq("v", "a")), set(ROWS) - {"list", "lower"}),
    (
        ir.and_(ir.Exists("v"), ir.Not(ir.Eq("v", 1))),
        {
            "true",
            "str-1",
            "big",
            "big-minus",
            "huge",
            "list",
            "accent",
            "upper",
            "lower",
            "neg",
            "float-big",
            "decomposed",
            "emoji",
        },
    ),
    (ir.Exists("v"), set(ROWS) - {"absent", "null", "empty", "nulls"}),
    (ir.Not(ir.Exists("v")), {"absent", "null", "empty", "nulls"}),
    (ir.Range("v", gt=1), {"big", "big-minus", "huge", "list", "float-big"}),
    (ir.Range("v", gt=2**64), {"big", "huge"}),
    (ir.Range("v", gte=-3, lt=1), {"neg"}),
    (ir.Range("v", gte=1, lte=1), {"one", "one-float"}),
    (ir.Range("v", gt=1, lt=5), set()),  # one element must meet every bound
    # code-point order, as Python: "Z" < "a" < "e\u0301" < "é" < "\U0001f600"
    (ir.Range("v", gt="Z"), {"accent", "list", "lower", "decomposed", "emoji"}),
    (ir.Range("v", gt="é"), {"emoji"}),
    (ir.Range("v", gt="e", lt="é"), {"decomposed"}),
    (ir.Eq("v", "é"), {"accent"}),
    # Casbin's `in`: a substring of a string, an element of a list; numbers never
    (ir.Contains("v", "a"), {"lower", "list"}),
    (ir.Contains("v", "\u0301"), {"decomposed"}),
    (ir.Contains("v", ""), {"str-1", "accent", "upper", "lower", "decomposed", "emoji"}),
    (ir.Contains("v", "1"), {"str-1"}),
    (ir.Not(ir.Contains("v", "a")), set(ROWS) - {"lower", "list"}),
    (ir.Within("v", "aZ"), {"lower", "upper", "list"}),
    (ir.Within("v", "é"), {"accent"}),
    (ir.Within("v", "x\U0001f600y1"), {"emoji", "str-1"}),
    (ir.Within("v", ""), set()),
    (ir.Not(ir.Within("v", "aZ")), set(ROWS) - {"lower", "upper", "list"}),
    (ir.Eq("v", "\U0001f600"), {"emoji"}),
    (ir.Range("v", lt="a"), {"upper", "str-1"}),
    (ir.Not(ir.Range("v", gt=1)), set(ROWS) - {"big", "big-minus", "huge", "list", "float-big"}),
]


@pytest.fixture(scope="module")
def typed(pgvector_url: str) -> Iterator[rg.PgVectorStore]:
    store = rg.PgVectorStore.create(pgvector_url, table="typed", dim=DIM)
    store.upsert(
        rg.Chunk(text=name, metadata=md, vector=[1.0, 0.0, 0.0, 0.0], id=name)
        for name, md in ROWS.items()
    )
    yield store
    store.close()


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_typed_semantics_are_exact_in_sql(
    expr: ir.Expr, expected: set[str], typed: rg.PgVectorStore
) -> None:
    """Each case: the rows the SQL selects are the predicate's and the documented ones."""
    pushdown = typed.translate(expr)
    assert pushdown.exact, pushdown.relaxed
    found = {h.text for h in typed.search([1.0, 0, 0, 0], len(ROWS), pushdown, exact=True)}
    by_predicate = {name for name, md in ROWS.items() if _accepts(expr, md)}
    assert by_predicate == expected, "the test's expectation disagrees with ragguard"
    assert found == expected


def test_relaxed_atoms_are_reported_and_never_narrow(typed: rg.PgVectorStore) -> None:
    """Matching functions, odd names, non-finite numbers: relaxed (a superset), said so."""
    relaxed: list[ir.Expr] = [
        ir.Match("keyMatch", "v", "a*", True),
        ir.Eq(ODD_FIELD + "'; DROP TABLE typed; --", "x"),
        ir.Eq("v", float("inf")),
        ir.Range("v", gt="a\x00"),
        ir.Contains("v", "\x00"),
    ]
    for expr in relaxed:
        pushdown = typed.translate(expr)
        assert not pushdown.exact
        assert pushdown.relaxed
        found = {h.text for h in typed.search([1.0, 0, 0, 0], 100, pushdown)}
        assert found == set(ROWS)
    assert len(typed.get(list(ROWS))) == len(ROWS)  # nothing was dropped
    [big] = typed.get(["float-big"])
    assert big.metadata == {"v": 2**60}  # the float's exact value, as an integer
    assert (typed.db_system_name, typed.collection) == ("postgresql", "public.typed")  # traces


# -- guarded top-k against numpy ------------------------------------------------------------


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid"])
def test_guarded_top_k_equals_brute_force(distance: str, pgvector_url: str, pg_table: str) -> None:
    """Exact search: the released top-k is numpy's among the authorised, scores included."""
    rng = np.random.default_rng(7)
    n, k = 400, 10
    vectors = rng.standard_normal((n, DIM))
    depts = rng.choice(["eng", "hr", "ops", "legal"], size=n, p=[0.6, 0.3, 0.09, 0.01])
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    with rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM, distance=distance) as st_:
        st_.create_payload_indexes(policy.index_specs())
        st_.upsert(
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
            guard = rg.Guard(policy, st_, exact_search=exact)
            for user, allowed in [("alice", {"legal"}), ("bob", {"hr", "ops"})]:
                hits = guard.search(rg.Subject(id=user), list(query), k)
                authorised = [i for i in range(n) if depts[i] in allowed]
                best = sorted(authorised, key=lambda i: -scores[i])[:k]
                assert all(depts[int(h.id)] in allowed for h in hits)
                assert [int(h.id) for h in hits] == best, (distance, exact, user)
                sign = -1.0 if distance == "euclid" else 1.0
                for h in hits:
                    assert abs(sign * h.score - scores[int(h.id)]) < 1e-4


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


def _run_on_hnsw(
    store: rg.PgVectorStore,
    url: str,
    vector: list[float],
    k: int,
    pushdown: rg.Pushdown,
    *,
    iterative: bool,
) -> tuple[list[str], str]:
    """The store's own SQL and settings, with sequential scans off: the HNSW plan, as a
    large table gets it (the planner prefers a scan for a few thousand rows)."""
    settings, query, params = store._query(vector, k, pushdown, exact=False)
    with psycopg.connect(url) as conn:
        conn.execute(settings[0], settings[1])
        conn.execute("SET LOCAL enable_seqscan = off")
        if not iterative:
            conn.execute("SET LOCAL hnsw.iterative_scan = off")
        plan = "\n".join(str(r[0]) for r in conn.execute(sql.SQL("EXPLAIN ") + query, params))
        ids = [str(row[0]) for row in conn.execute(query, params).fetchall()]
    return ids, plan


def test_hnsw_iterative_scan_fills_k_under_a_selective_filter(
    pgvector_url: str, pg_table: str
) -> None:
    """0.5 % readable, HNSW search: iterative scan keeps going until k rows match;
    without it the graph's first ef_search candidates hold almost none."""
    rng = np.random.default_rng(3)
    n, k = 4000, 10
    vectors = rng.standard_normal((n, 16))
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=16)
    try:
        store.upsert(
            rg.Chunk(text="t", metadata={"dept": "legal" if i % 200 == 0 else "eng"},
                     vector=list(v), id=i)
            for i, v in enumerate(vectors)
        )  # fmt: skip
        with psycopg.connect(pgvector_url, autocommit=True) as conn:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(pg_table)))
        pushdown = store.translate(ir.Eq("dept", "legal"))
        query = list(vectors[1])
        ids, plan = _run_on_hnsw(store, pgvector_url, query, k, pushdown, iterative=True)
        assert "_rg_hnsw_" in plan, plan
        exact = [h.id for h in store.search(query, k, pushdown, exact=True)]
        assert len(ids) == k
        assert set(ids) <= {str(i) for i in range(0, n, 200)}
        assert len(set(ids) & set(exact)) >= k - 1
        without, _ = _run_on_hnsw(store, pgvector_url, query, k, pushdown, iterative=False)
        assert len(without) < k  # what iterative scan is for
    finally:
        store.close()


def test_search_params_set_ef_search_and_exact_and_the_rest_is_ignored(
    pgvector_url: str, pg_table: str
) -> None:
    """hnsw_ef -> hnsw.ef_search (at least limit, at most 1000), exact -> no index scans;
    the quantization fields and indexed_only have no pgvector meaning and change nothing."""
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    try:
        _check_search_params(store)
    finally:
        store.close()


def _check_search_params(store: rg.PgVectorStore) -> None:
    pushdown = store.translate(ir.TRUE)

    def settings(limit: int, params: rg.SearchParams | None) -> dict[str, str]:
        (_, values), _, _ = store._query([1.0] * DIM, limit, pushdown, False, params)
        return dict(zip(values[::2], values[1::2], strict=True))

    assert settings(10, None)["hnsw.ef_search"] == str(max(store.ef_search, 10))
    assert settings(10, rg.SearchParams(hnsw_ef=256))["hnsw.ef_search"] == "256"
    assert settings(50, rg.SearchParams(hnsw_ef=8))["hnsw.ef_search"] == "50"
    assert settings(10, rg.SearchParams(hnsw_ef=5000))["hnsw.ef_search"] == "1000"
    assert "enable_indexscan" not in settings(10, rg.SearchParams(hnsw_ef=64))
    assert settings(10, rg.SearchParams(exact=True))["enable_indexscan"] == "off"
    ignored = rg.SearchParams(rescore=True, oversampling=3.0, indexed_only=True)
    assert settings(10, ignored) == settings(10, None)
    # and through a guard, sync and async (no policy filter: allow_all)
    guard = rg.Guard(
        rg.Policy.from_casbin(_ANY_READ_MODEL, "p, anyone, read\n"),
        store,
        search_params=rg.SearchParams(hnsw_ef=64),
    )
    store.upsert(rg.Chunk("t", {}, [float(i), 1.0, 0.5, -1.0], id=f"sp{i}") for i in range(5))
    subject = rg.Subject(id="anyone")
    hits = guard.search(subject, [1.0] * DIM, k=3, search_params={"exact": True, "hnsw_ef": 9})
    assert len(hits) == 3
    assert [h.id for h in hits] == [
        h.id for h in store.search([1.0] * DIM, 3, pushdown, exact=True)
    ]


_ANY_READ_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.act == p.act
"""


# -- langchain-postgres --------------------------------------------------------------------


def test_an_existing_langchain_postgres_collection_works_without_migration(
    pgvector_url: str,
) -> None:
    """langchain-postgres writes two collections; the store reads one, filtered, and its
    own upserts read back through langchain-postgres."""
    pytest.importorskip("langchain_postgres")
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_postgres import PGVector

    url = pgvector_url.replace("postgresql://", "postgresql+psycopg://", 1)
    embeddings = DeterministicFakeEmbedding(size=DIM)
    docs = PGVector(embeddings, connection=url, collection_name="docs", use_jsonb=True)
    other = PGVector(embeddings, connection=url, collection_name="other", use_jsonb=True)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((6, DIM)).tolist()
    metas: list[dict[str, Any]] = [
        {"dept": "hr", "level": 1},
        {"dept": "eng", "level": 2},
        {"dept": ["eng", "hr"], "level": 3},
        {"level": 4},
        {"dept": "hr", "level": 5.0},
        {"dept": "legal", "level": 2**70},
    ]
    docs.add_embeddings(
        [f"doc {i}" for i in range(6)], vectors, metas, ids=[f"d{i}" for i in range(6)]
    )
    other.add_embeddings(["x"], [vectors[0]], [{"dept": "hr"}], ids=["o0"])
    store = rg.PgVectorStore.langchain(pgvector_url, collection="docs")
    try:
        assert store.dim == DIM
        hits = store.search(vectors[0], 10, store.translate(ir.Eq("dept", "hr")), exact=True)
        assert {h.id for h in hits} == {"d0", "d2", "d4"}
        assert hits[0].id == "d0"
        assert abs(hits[0].score - 1.0) < 1e-5
        assert hits[0].text == "doc 0"
        ranged = store.translate(ir.and_(ir.Exists("dept"), ir.Range("level", gt=2)))
        assert {h.id for h in store.search(vectors[0], 10, ranged)} == {"d2", "d4", "d5"}
        assert [c.id for c in store.get(["d5", "o0"])] == ["d5"]  # not another collection's
        store.upsert([rg.Chunk("new", {"dept": "hr"}, vectors[3], id="7")])
        found = docs.similarity_search_by_vector(vectors[3], k=1, filter={"dept": "hr"})
        assert found[0].page_content == "new"
        assert other.similarity_search_by_vector(vectors[3], k=5)[0].page_content == "x"
    finally:
        store.close()
        docs.delete_collection()
        other.delete_collection()
        for vectorstore in (docs, other):
            if vectorstore._engine is not None:
                vectorstore._engine.dispose()


# -- async ---------------------------------------------------------------------------------


def test_asearch_with_an_async_pool_equals_search(pgvector_url: str, pg_table: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    store.upsert(
        rg.Chunk("t", {"dept": d}, [float(i), 1.0, 0.0, 0.0], id=i)
        for i, d in enumerate(["hr", "eng", "hr"])
    )
    pushdown = store.translate(ir.Eq("dept", "hr"))

    async def run() -> list[rg.StoredChunk]:
        async with AsyncConnectionPool(pgvector_url, min_size=1, max_size=2) as pool:
            native = rg.PgVectorStore(pool=store.pool, async_pool=pool, table=pg_table)
            return await native.asearch([1.0, 1.0, 0.0, 0.0], 5, pushdown)

    try:
        assert asyncio.run(run()) == store.search([1.0, 1.0, 0.0, 0.0], 5, pushdown)
        assert [c.id for c in asyncio.run(run())] == ["2", "0"]
    finally:
        store.close()


# -- errors ----------------------------------------------------------------------------------


def test_sql_errors_are_store_errors_without_query_values(pgvector_url: str, pg_table: str) -> None:
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    try:
        with psycopg.connect(pgvector_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {pg_table}")
        secret = ir.Eq("dept", "salary-of-bob")
        with pytest.raises(rg.StoreError) as raised:
            store.search([0.123456, 0, 0, 0], 3, store.translate(secret))
        message = str(raised.value)
        assert "UndefinedTable" in message
        assert pg_table in message
        assert "salary" not in message
        assert "0.123456" not in message
    finally:
        store.close()


def test_wrong_input_is_refused(pgvector_url: str, pg_table: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        rg.PgVectorStore.create(pgvector_url, table='x"; DROP TABLE y; --', dim=DIM)
    with pytest.raises(ValueError, match="identifier"):
        rg.PgVectorStore(pgvector_url, table="ok", schema="bad schema", dim=DIM)
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    try:
        with pytest.raises(rg.StoreError, match="already exists"):
            rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
        with pytest.raises(rg.StoreError, match="dimension"):
            store.search([1.0, 2.0], 3, store.translate(ir.TRUE))
        with pytest.raises(rg.StoreError, match=r"cannot store chunk bad metadata.level"):
            store.upsert([rg.Chunk("t", {"level": float("nan")}, [1.0] * DIM, id="bad")])
        with pytest.raises(rg.StoreError, match="collection 'missing' does not exist"):
            rg.PgVectorStore.langchain(pgvector_url, collection="missing", dim=DIM)
    finally:
        store.close()


def test_an_unreachable_server_is_a_store_error_with_the_connection_hint() -> None:
    with pytest.raises(rg.StoreError, match="connection string"):
        rg.PgVectorStore("postgresql://nobody@127.0.0.1:1/x", dim=DIM, open_timeout=1.0)


def test_import_ragguard_never_imports_psycopg_and_a_missing_one_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "import ragguard as rg\n"
        "assert 'psycopg' not in sys.modules\n"
        "sys.modules['psycopg'] = None\n"
        "try:\n"
        "    rg.PgVectorStore\n"
        "except rg.MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install ragguard[pgvector]" in out


# -- indexes the filter uses -----------------------------------------------------------------


def _plan(store: rg.PgVectorStore, url: str, expr: ir.Expr, *, exact: bool = True) -> str:
    dim = store.dim
    settings, query, params = store._query([1.0] * dim, 10, store.translate(expr), exact=exact)
    with psycopg.connect(url) as conn:
        conn.execute(settings[0], settings[1])
        conn.execute("SET LOCAL enable_seqscan = off")
        rows = conn.execute(sql.SQL("EXPLAIN ") + query, params).fetchall()
    return "\n".join(str(row[0]) for row in rows)


def test_payload_indexes_serve_equality_and_range_filters(pgvector_url: str, pg_table: str) -> None:
    """create_payload_indexes makes indexes the compiled SQL can use (planner's word)."""
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    try:
        store.upsert(
            rg.Chunk("t", {"dept": f"d{i % 50}", "level": i % 7, "tags": [i, "x"]},
                     [1.0, float(i), 0.0, 0.0], id=i)
            for i in range(500)
        )  # fmt: skip
        store.create_payload_indexes(
            [rg.IndexSpec("dept", "keyword"), rg.IndexSpec("level", "integer")]
        )
        store.create_payload_indexes([rg.IndexSpec("level", "integer")])  # idempotent
        with psycopg.connect(pgvector_url, autocommit=True) as conn:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(pg_table)))
        equality = _plan(store, pgvector_url, ir.In("dept", ("d1", "d2")))
        assert "_rg_gin_" in equality, equality
        ranged = _plan(store, pgvector_url, ir.Range("level", gte=6))
        assert "_rg_num_" in ranged, ranged
        assert "_rg_type_" in ranged, ranged
        hits = store.search([1.0] * DIM, 500, store.translate(ir.Range("level", gte=6)), exact=True)
        assert {int(h.id) for h in hits} == {i for i in range(500) if i % 7 >= 6}
    finally:
        store.close()


def test_a_10000_value_in_list_is_one_parameter_and_exact(typed: rg.PgVectorStore) -> None:
    """In lists of any length: one bound array, exact, typed (10,000 numbers plus "a")."""
    expr = ir.In("v", (*range(2, 10_002), "a"))
    pushdown = typed.translate(expr)
    assert pushdown.exact
    assert len(pushdown.native.params) == 1
    found = {h.text for h in typed.search([1.0, 0, 0, 0], len(ROWS), pushdown, exact=True)}
    assert found == {name for name, md in ROWS.items() if _accepts(expr, md)} == {"list", "lower"}


def test_concurrent_guarded_searches_never_mix_subjects(pgvector_url: str, pg_table: str) -> None:
    """Threads share one store (one pool): each subject gets only its department."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    depts = ["legal", "hr", "ops"]
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM, pool_size=4)
    policy = rg.Policy.from_casbin(
        MODEL, "p, alice, legal, read\np, bob, hr, read\np, carol, ops, read\n"
    )
    guard = rg.Guard(policy, store)
    owner = {"alice": "legal", "bob": "hr", "carol": "ops"}
    try:
        store.upsert(
            rg.Chunk("t", {"dept": depts[i % 3]}, list(rng.standard_normal(DIM)), id=i)
            for i in range(300)
        )

        def one(turn: int) -> bool:
            user = ["alice", "bob", "carol"][turn % 3]
            hits = guard.search(rg.Subject(id=user), list(rng.standard_normal(DIM)), 5)
            return len(hits) == 5 and all(h.metadata["dept"] == owner[user] for h in hits)

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert all(pool.map(one, range(120)))
    finally:
        store.close()


def test_guard_asearch_uses_the_async_pool(pgvector_url: str, pg_table: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    store.upsert(
        rg.Chunk("t", {"dept": d}, [float(i), 1.0, 0.0, 0.0], id=i)
        for i, d in enumerate(["hr", "legal", "hr", "legal"])
    )
    policy = rg.Policy.from_casbin(MODEL, POLICY)

    async def run() -> list[str]:
        async with AsyncConnectionPool(pgvector_url, min_size=1, max_size=2) as pool:
            native = rg.PgVectorStore(async_pool=pool, table=pg_table, dim=DIM)
            hits = await rg.Guard(policy, native).asearch(rg.Subject(id="bob"), [1.0] * DIM, 5)
            # read on the first asearch: pgvector 0.8 here, so the HNSW scan is iterative
            assert native._iterative_scan is True
            return [h.id for h in hits]

    try:
        assert asyncio.run(run()) == ["2", "0"]
    finally:
        store.close()


def test_constructor_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="collection"):
        rg.PgVectorStore.langchain("postgresql://x", collection="")
    with pytest.raises(ValueError, match="a conninfo string, a pool or an async_pool"):
        rg.PgVectorStore(dim=DIM)
    with pytest.raises(ValueError, match="conninfo or a pool"):
        rg.PgVectorStore(async_pool=object(), layout="langchain", collection="docs", dim=DIM)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distance"):
        rg.PgVectorStore("postgresql://x", distance="hamming", dim=DIM)
    with pytest.raises(ValueError, match="hnsw_m"):
        rg.PgVectorStore.create("postgresql://x", dim=DIM, hnsw_m=0)


def test_a_stored_zero_vector_scores_zero_not_nan(pgvector_url: str, pg_table: str) -> None:
    """Cosine distance to a zero vector is NaN in pgvector; no NaN reaches the guard
    (exact search ranks such a row last, with score 0)."""
    store = rg.PgVectorStore.create(pgvector_url, table=pg_table, dim=DIM)
    try:
        store.upsert(
            [rg.Chunk("zero", {}, [0.0] * DIM, id=1), rg.Chunk("x", {}, [1.0, 0, 0, 0], id=2)]
        )
        hits = store.search([1.0, 0, 0, 0], 5, store.translate(ir.TRUE), exact=True)
        assert [(h.id, h.score) for h in hits] == [("2", 1.0), ("1", 0.0)]
        # pgvector's HNSW index leaves zero vectors out under cosine: not found, no NaN
        approximate = store.search([1.0, 0, 0, 0], 5, store.translate(ir.TRUE))
        assert all(h.score == h.score for h in approximate)
    finally:
        store.close()
