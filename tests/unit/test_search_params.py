"""SearchParams: validated, threaded per guard and per call to every store, traced, and
never a change to which chunks may be released."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient
from qdrant_client import models as qm

import ragguard as rg
from ragguard.policy import ir
from ragguard.stores.base import Pushdown, StoredChunk
from ragguard.stores.edge import _edge_params
from ragguard.stores.qdrant import _client_params
from ragguard.testing import in_memory_tracing

DIM = 16
MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj.tenant == r.sub.tenant && r.obj.level <= r.sub.clearance && r.act == p.act
"""
POLICY = rg.Policy.from_casbin(MODEL, "p, anyone, read\n")
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme", "clearance": 1})


def _readable(metadata: dict[str, Any]) -> bool:
    """ALICE's access, written by hand (not by ragguard)."""
    return bool(metadata["tenant"] == "acme" and metadata["level"] <= 1)


def _chunks(count: int = 600, seed: int = 3) -> list[rg.Chunk]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        v = rng.normal(size=DIM)
        metadata = {"tenant": ("acme", "globex")[i % 2], "level": int(rng.integers(0, 4))}
        out.append(rg.Chunk(f"chunk {i}", metadata, [float(x) for x in v], id=i))
    return out


CHUNKS = _chunks()


def _truth(query: Sequence[float], k: int) -> list[str]:
    allowed = [c for c in CHUNKS if _readable(dict(c.metadata))]
    matrix = np.array([c.vector for c in allowed])
    q = np.asarray(query) / np.linalg.norm(query)
    scores = matrix @ q / np.linalg.norm(matrix, axis=1)
    return [str(allowed[i].id) for i in np.argsort(-scores, kind="stable")[:k]]


class RecordingEdgeStore(rg.EdgeStore):
    """The real EdgeStore, noting the search parameters each search was given."""

    seen: list[tuple[bool, rg.SearchParams | None]]

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
        search_params: rg.SearchParams | None = None,
    ) -> list[StoredChunk]:
        self.seen.append((exact, search_params))
        return super().search(vector, limit, pushdown, exact=exact, search_params=search_params)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingEdgeStore]:
    edge = RecordingEdgeStore.create(tmp_path_factory.mktemp("params") / "shard", dim=DIM)
    assert isinstance(edge, RecordingEdgeStore)
    edge.seen = []
    edge.upsert(CHUNKS)
    edge.optimize()
    yield edge
    edge.close()


def _queries(n: int = 5) -> list[list[float]]:
    rng = np.random.default_rng(11)
    return [[float(x) for x in rng.normal(size=DIM)] for _ in range(n)]


# -- the type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"hnsw_ef": 0}, ValueError),
        ({"hnsw_ef": -5}, ValueError),
        ({"hnsw_ef": 70_000}, ValueError),
        ({"hnsw_ef": True}, TypeError),
        ({"hnsw_ef": 64.0}, TypeError),
        ({"exact": 1}, TypeError),
        ({"indexed_only": "yes"}, TypeError),
        ({"rescore": 0}, TypeError),
        ({"oversampling": 0.5}, ValueError),
        ({"oversampling": math.nan}, ValueError),
        ({"oversampling": math.inf}, ValueError),
        ({"oversampling": 1000.0}, ValueError),
        ({"oversampling": True}, TypeError),
        ({"oversampling": "2"}, TypeError),
    ],
)
def test_out_of_range_or_mistyped_parameters_are_refused(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        rg.SearchParams(**kwargs)


def test_search_params_are_frozen_and_coerce_mappings() -> None:
    params = rg.SearchParams(hnsw_ef=128, oversampling=2)
    assert params.oversampling == 2.0
    assert isinstance(params.oversampling, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.hnsw_ef = 1  # type: ignore[misc]
    assert rg.SearchParams.coerce({"hnsw_ef": 128, "oversampling": 2.0}) == params
    assert rg.SearchParams.coerce(None) is None
    with pytest.raises(ValueError, match=r"unknown search parameter.*ef"):
        rg.SearchParams.coerce({"ef": 128})
    with pytest.raises(TypeError, match="SearchParams or a mapping"):
        rg.SearchParams.coerce(128)  # type: ignore[arg-type]
    assert rg.SearchParams().is_default
    assert not params.is_default


def test_the_engine_and_the_client_get_every_field() -> None:
    params = rg.SearchParams(hnsw_ef=200, rescore=True, oversampling=3.0, indexed_only=True)
    edge = _edge_params(False, params)
    assert edge is not None
    assert (edge.hnsw_ef, edge.exact, edge.indexed_only) == (200, False, True)
    assert edge.quantization is not None
    assert (edge.quantization.rescore, edge.quantization.oversampling) == (True, 3.0)
    client = _client_params(False, params)
    assert client == qm.SearchParams(
        hnsw_ef=200,
        exact=False,
        indexed_only=True,
        quantization=qm.QuantizationSearchParams(rescore=True, oversampling=3.0),
    )
    # exact from either side; defaults leave the store's own settings alone
    exact_edge = _edge_params(True, rg.SearchParams(hnsw_ef=64))
    assert exact_edge is not None
    assert exact_edge.exact
    assert exact_edge.quantization is None
    assert _edge_params(False, None) is None
    assert _edge_params(False, rg.SearchParams()) is None
    assert isinstance(_edge_params(True, None), qe.SearchParams)
    assert _client_params(False, rg.SearchParams()) is None
    assert _client_params(False, rg.SearchParams(exact=True)) == qm.SearchParams(exact=True)


# -- through the guard -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        rg.SearchParams(),
        rg.SearchParams(hnsw_ef=1),
        rg.SearchParams(hnsw_ef=512),
        rg.SearchParams(exact=True),
        rg.SearchParams(indexed_only=True),
        rg.SearchParams(rescore=False, oversampling=4.0),
    ],
)
def test_no_parameter_changes_what_may_be_released(
    store: RecordingEdgeStore, params: rg.SearchParams
) -> None:
    guard = rg.Guard(POLICY, store, search_params=params)
    by_id = {str(c.id): c for c in CHUNKS}
    for query in _queries():
        hits = guard.search(ALICE, query, k=10)
        assert hits, "alice may read about a quarter of the corpus"
        assert all(_readable(dict(by_id[h.id].metadata)) for h in hits)
        if params.exact:
            assert [h.id for h in hits] == _truth(query, 10)


def test_exact_search_is_the_shorthand_and_sets_exact_on_given_params(
    store: RecordingEdgeStore,
) -> None:
    assert rg.Guard(POLICY, store, exact_search=True).search_params == rg.SearchParams(exact=True)
    guard = rg.Guard(POLICY, store, exact_search=True, search_params={"hnsw_ef": 64})
    assert guard.search_params == rg.SearchParams(hnsw_ef=64, exact=True)
    assert guard.exact_search
    query = _queries(1)[0]
    store.seen.clear()
    assert [h.id for h in guard.search(ALICE, query, k=10)] == _truth(query, 10)
    assert store.seen[0] == (True, rg.SearchParams(hnsw_ef=64, exact=True))


async def test_per_call_parameters_replace_the_guards_sync_and_async(
    store: RecordingEdgeStore,
) -> None:
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(
        POLICY, store, search_params=rg.SearchParams(hnsw_ef=32), tracer_provider=provider
    )
    query = _queries(1)[0]
    store.seen.clear()
    guard.search(ALICE, query, k=5)
    guard.search(ALICE, query, k=5, search_params=rg.SearchParams(hnsw_ef=300))
    await guard.asearch(ALICE, query, k=5, search_params={"exact": True})
    await guard.asearch(ALICE, query, k=5)
    assert store.seen == [
        (False, rg.SearchParams(hnsw_ef=32)),
        (False, rg.SearchParams(hnsw_ef=300)),
        (True, None),  # exact alone travels as exact=True
        (False, rg.SearchParams(hnsw_ef=32)),
    ]
    spans = exporter.get_finished_spans()
    attrs = [
        {k: v for k, v in (s.attributes or {}).items() if k.startswith("ragguard.search.")}
        for s in spans
    ]
    assert attrs == [
        {"ragguard.search.exact": False, "ragguard.search.hnsw_ef": 32},
        {"ragguard.search.exact": False, "ragguard.search.hnsw_ef": 300},
        {"ragguard.search.exact": True},
        {"ragguard.search.exact": False, "ragguard.search.hnsw_ef": 32},
    ]


def test_quantization_and_indexed_only_reach_the_span(store: RecordingEdgeStore) -> None:
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(POLICY, store, tracer_provider=provider)
    params = rg.SearchParams(rescore=True, oversampling=2.5, indexed_only=True)
    guard.search(ALICE, _queries(1)[0], k=3, search_params=params)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["ragguard.search.rescore"] is True
    assert span.attributes["ragguard.search.oversampling"] == 2.5
    assert span.attributes["ragguard.search.indexed_only"] is True


def test_a_bad_per_call_parameter_is_a_query_error_and_nothing_is_searched(
    store: RecordingEdgeStore,
) -> None:
    guard = rg.Guard(POLICY, store)
    store.seen.clear()
    for bad in ({"hnsw_ef": 0}, {"nope": 1}, 5, {"exact": "yes"}):
        with pytest.raises(rg.QueryError, match="search_params"):
            guard.search(ALICE, _queries(1)[0], k=3, search_params=bad)  # type: ignore[arg-type]
    assert store.seen == []
    with pytest.raises(ValueError, match="hnsw_ef"):
        rg.Guard(POLICY, store, search_params={"hnsw_ef": -1})


class ExactOnlyStore:
    """A store written against the Store protocol before SearchParams: `exact` only."""

    def __init__(self, inner: rg.EdgeStore) -> None:
        self.inner = inner
        self.exact: list[bool] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def translate(self, expr: ir.Expr) -> Pushdown:
        return self.inner.translate(expr)

    def search(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        self.exact.append(exact)
        return self.inner.search(vector, limit, pushdown, exact=exact)

    def upsert(self, chunks: Any) -> list[str]:
        return self.inner.upsert(chunks)

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        return self.inner.get(ids)

    def create_payload_indexes(self, specs: Any) -> None:
        self.inner.create_payload_indexes(specs)

    def close(self) -> None:
        pass


def test_a_store_without_search_params_gets_exact_and_refuses_the_rest(
    store: RecordingEdgeStore,
) -> None:
    legacy = ExactOnlyStore(store)
    with pytest.raises(ValueError, match="takes no search_params"):
        rg.Guard(POLICY, legacy, search_params=rg.SearchParams(hnsw_ef=64))
    guard = rg.Guard(POLICY, legacy, search_params=rg.SearchParams(exact=True))
    query = _queries(1)[0]
    assert [h.id for h in guard.search(ALICE, query, k=10)] == _truth(query, 10)
    with pytest.raises(rg.QueryError, match="takes no search_params"):
        guard.search(ALICE, query, k=3, search_params={"indexed_only": True})
    guard.search(ALICE, query, k=3, search_params={"exact": False})
    assert legacy.exact == [True, False]


# qdrant-client's local mode is exhaustive and warns (once) that it ignores search_params.
@pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")
async def test_qdrant_store_takes_the_parameters_sync_and_async(tmp_path: Path) -> None:
    client = QdrantClient(":memory:")
    store = rg.QdrantStore.create(client, "docs", dim=DIM)
    store.upsert(CHUNKS)
    request = store._query(
        [1.0] * DIM, 10, store.translate(ir.TRUE), False, rg.SearchParams(hnsw_ef=77)
    )
    assert request["search_params"] == qm.SearchParams(hnsw_ef=77, exact=False)
    guard = rg.Guard(POLICY, store, search_params=rg.SearchParams(hnsw_ef=128, rescore=True))
    by_id = {str(c.id): c for c in CHUNKS}
    query = _queries(1)[0]
    hits = guard.search(ALICE, query, k=10)
    assert [h.id for h in hits] == _truth(query, 10)  # local mode is exhaustive
    hits = await guard.asearch(ALICE, query, k=10, search_params={"exact": True, "hnsw_ef": 8})
    assert [h.id for h in hits] == _truth(query, 10)
    assert all(_readable(dict(by_id[h.id].metadata)) for h in hits)


def test_a_store_spy_forwards_search_params_to_the_store_it_wraps(
    store: RecordingEdgeStore,
) -> None:
    from ragguard.testing import StoreSpy

    spy = StoreSpy(store)
    guard = rg.Guard(POLICY, spy, search_params=rg.SearchParams(hnsw_ef=48))
    assert guard.capabilities.search_params
    store.seen.clear()
    guard.search(ALICE, _queries(1)[0], k=3)
    assert store.seen == [(False, rg.SearchParams(hnsw_ef=48))]
    assert spy.calls["search"] == 1


def test_declaring_search_params_without_the_keyword_is_refused(
    store: RecordingEdgeStore,
) -> None:
    class Claims(ExactOnlyStore):
        capabilities = rg.StoreCapabilities(search_params=True)

    with pytest.raises(TypeError, match="declares search_params=True"):
        rg.Guard(POLICY, Claims(store))


@pytest.mark.parametrize(
    ("params", "beyond"),
    [
        (rg.SearchParams(), False),
        (rg.SearchParams(exact=True), False),
        (rg.SearchParams(hnsw_ef=64), True),
        (rg.SearchParams(rescore=False), True),
        (rg.SearchParams(oversampling=2.0), True),
        (rg.SearchParams(indexed_only=True), True),
    ],
)
def test_beyond_exact_is_every_field_but_exact(params: rg.SearchParams, beyond: bool) -> None:
    """The guard asks this on every search (a store without search_params gets exact only)."""
    assert params.beyond_exact is beyond
    # The same as "anything but exact differs from the defaults", over every field.
    others = {f.name for f in dataclasses.fields(params)} - {"exact"}
    default = rg.SearchParams()
    assert beyond == any(getattr(params, n) != getattr(default, n) for n in others)
