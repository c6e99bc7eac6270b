"""Authorised recall@10 against numpy brute force at 50 %, 5 %, 0.5 % and 0.05 % readable.

Run with ``pytest tests/benchmarks/test_perf_recall.py``. Four ways to get the ten
best chunks a subject may read, each timed per query:

* ragguard, exact — ``Guard(..., exact_search=True)``: the filter is pushed down and
  Qdrant scores every matching point;
* ragguard, HNSW — the default ``Guard``: the filter is pushed down into Qdrant's
  filtered HNSW search (Qdrant itself switches to an exact scan of the payload-index
  candidates when few points match);
* top-k then filter — what post-filtering middleware does: the ten nearest chunks of
  the whole corpus, then the (exact) policy check;
* 10x over-fetch then filter — the hundred nearest, checked, the best ten kept.

The truth is numpy brute force over the chunks each probe subject may read according
to its hand-written predicate (not ragguard's). A returned chunk counts when it is
readable and scores at least the k-th true score (minus 1e-5: float32 ties).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _corpus
import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as qe
from _measure import Report, median, ms
from _shards import RECALL_QUERIES, SIZES, Corpora

import ragguard as rg
from ragguard.policy import ir

K = 10
TIE_TOLERANCE = 1e-5
SELECTIVITIES = ("sel50", "sel5", "sel05", "sel005")
NO_FILTER = rg.Pushdown(native=None, exact=True)


def _post_filter(
    store: rg.EdgeStore, plan: rg.Plan, fetch: int
) -> Callable[[list[float]], list[str]]:
    """Nearest ``fetch`` of the whole corpus, then the policy check, best ``K`` kept."""

    def search(vector: list[float]) -> list[str]:
        hits = store.search(vector, fetch, NO_FILTER)
        kept = [hit.id for hit in hits if plan.decide(hit.metadata).released]
        return kept[:K]

    return search


def _guard(guard: rg.Guard, subject: rg.Subject) -> Callable[[list[float]], list[str]]:
    def search(vector: list[float]) -> list[str]:
        return [hit.id for hit in guard.search(subject, vector, K)]

    return search


@pytest.mark.parametrize("size", SIZES)
def test_recall_vs_selectivity(
    benchmark: Any,
    corpora: Corpora,
    policy: rg.Policy,
    probes: dict[str, _corpus.Probe],
    size: int,
) -> None:
    """ragguard (exact) finds every authorised top-10 chunk at every selectivity."""
    corpus = corpora.get(size)
    store = corpus.store
    query_array = _corpus.query_vectors()[:RECALL_QUERIES]
    queries: list[list[float]] = query_array.tolist()
    # Cosine on unit vectors: the dot product (float32, as Qdrant computes it).
    scores = np.asarray(corpus.vectors) @ query_array.T
    exact_guard = rg.Guard(policy, store, exact_search=True)
    hnsw_guard = rg.Guard(policy, store)
    rows: list[dict[str, Any]] = []

    def measure_all() -> None:
        for name in SELECTIVITIES:
            probe = probes[name]
            plan = policy.plan(probe.subject)
            methods = {
                "ragguard (exact)": _guard(exact_guard, probe.subject),
                "ragguard (HNSW, default)": _guard(hnsw_guard, probe.subject),
                "top-k then filter": _post_filter(store, plan, K),
                "10x over-fetch then filter": _post_filter(store, plan, 10 * K),
            }
            mask = corpus.readable_mask(probe)
            rows.extend(_recall_rows(name, probe, mask, scores, queries, methods))

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    report = Report(benchmark, "recall", size=size, k=K, queries=len(queries))
    report.figure("rows", rows)
    report.figure("hnsw_recall_without_filter", _unfiltered_hnsw_recall(store, scores, queries))
    for row in rows:
        if row["method"] == "ragguard (exact)":
            report.check(
                f"ragguard (exact) recall@10 at {row['readable']}", row["recall"], "==", 1.0
            )
    report.assert_checks()


def _recall_rows(
    name: str,
    probe: _corpus.Probe,
    mask: npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float32],
    queries: list[list[float]],
    methods: dict[str, Callable[[list[float]], list[str]]],
) -> list[dict[str, Any]]:
    readable = int(mask.sum())
    wanted = min(K, readable)
    recalls: dict[str, list[float]] = {method: [] for method in methods}
    latencies: dict[str, list[float]] = {method: [] for method in methods}
    for j, vector in enumerate(queries):
        column = np.where(mask, scores[:, j], -np.inf)
        kth = float(np.partition(column, -wanted)[-wanted])
        for method, search in methods.items():
            started = time.perf_counter()
            ids = search(vector)
            latencies[method].append(time.perf_counter() - started)
            found = sum(
                1
                for chunk_id in ids
                if mask[int(chunk_id)] and scores[int(chunk_id), j] >= kth - TIE_TOLERANCE
            )
            recalls[method].append(min(found, wanted) / wanted)
    return [
        {
            "readable": f"{probe.fraction:.2%}",
            "probe": name,
            "readable_chunks": readable,
            "method": method,
            "recall": round(float(np.mean(recalls[method])), 4),
            "min_recall": round(float(np.min(recalls[method])), 4),
            "p50_ms": ms(median(latencies[method])),
        }
        for method in methods
    ]


def _unfiltered_hnsw_recall(
    store: rg.EdgeStore, scores: npt.NDArray[np.float32], queries: list[list[float]]
) -> float:
    """HNSW's own recall@10 on the whole corpus: what no filter can improve on."""
    recalls = []
    for j, vector in enumerate(queries):
        kth = float(np.partition(scores[:, j], -K)[-K])
        hits = store.search(vector, K, NO_FILTER)
        found = sum(1 for hit in hits if scores[int(hit.id), j] >= kth - TIE_TOLERANCE)
        recalls.append(found / K)
    return round(float(np.mean(recalls)), 4)


# -- path grants: the kb-paths policy set ----------------------------------------------------

KB_PATHS = Path(__file__).resolve().parents[2] / "policies" / "kb-paths"
TEAM_OWNER = "t03-engineering-u0"
# (probe, readable share, keyMatch prefix grants, keyMatch2 pattern grants, truth)
KB_PROBES: tuple[tuple[str, float, list[str], list[str], Callable[[dict[str, Any]], bool]], ...] = (
    (
        "sel50",
        0.5,
        ["/kb/t0*"],
        ["/kb/t0:n/*"],  # keyMatch2: ":n" is the rest of one segment (t00 ... t09)
        lambda md: md["tenant"] < "t10",
    ),
    ("sel5", 0.05, ["/kb/t03/*"], ["/kb/t03/:dept/*"], lambda md: md["tenant"] == "t03"),
    (
        "sel05",
        0.005,
        ["/kb/t03/engineering/*"],
        ["/kb/t03/engineering/:owner/*"],
        lambda md: md["tenant"] == "t03" and md["dept"] == "engineering",
    ),
    (
        "sel005",
        0.0005,
        [f"/kb/t03/engineering/{TEAM_OWNER}/*"],
        [f"/kb/:tenant/engineering/{TEAM_OWNER}/*"],
        lambda md: md["owner"] == TEAM_OWNER,
    ),
)
GRANTS = {"keyMatch prefix (exact pushdown)": "kp", "keyMatch2 pattern (relaxed)": "k2"}


class _Unnarrowed:
    """The same shard, with every conditional filter fully relaxed (``TRUE``): the
    worst case for the guard's exact finish, a pattern with no literal the store can
    use (every search that runs out of rounds reads the whole corpus)."""

    def __init__(self, store: rg.EdgeStore) -> None:
        self._store = store
        self.distance = store.distance

    @property
    def dim(self) -> int:
        return self._store.dim

    def translate(self, expr: Any) -> rg.Pushdown:
        return self._store.translate(expr) if expr in (ir.TRUE, ir.FALSE) else UNNARROWED

    def search(self, *args: Any, **kwargs: Any) -> list[rg.StoredChunk]:
        return self._store.search(*args, **kwargs)

    def scroll(self, *args: Any) -> Any:
        return self._store.scroll(*args)

    def vectors(self, ids: Any) -> dict[str, list[float]]:
        return self._store.vectors(ids)

    def upsert(self, chunks: Any) -> list[str]:
        raise NotImplementedError

    def get(self, ids: Any) -> list[rg.StoredChunk]:
        return self._store.get(ids)

    def create_payload_indexes(self, specs: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


UNNARROWED = rg.Pushdown(native=None, exact=False, relaxed=("benchmark: nothing pushed",))


def kb_path(index: int, md: dict[str, Any]) -> str:
    """A chunk's knowledge-base path: tenant, department and owner folders."""
    return f"/kb/{md['tenant']}/{md['dept']}/{md['owner']}/doc-{index // 8}-{md['chunk_index']}.md"


def kb_paths_policy() -> rg.Policy:
    """policies/kb-paths with one prefix subject and one pattern subject per probe."""
    lines = [(KB_PATHS / "policy.csv").read_text(encoding="utf-8")]
    for name, _, prefixes, patterns, _ in KB_PROBES:
        lines += [f"p, kp-{name}, {p}, keyMatch, read" for p in prefixes]
        lines += [f"p, k2-{name}, {p}, keyMatch2, read" for p in patterns]
    return rg.Policy.from_casbin(KB_PATHS / "model.conf", "\n".join(lines) + "\n")


@pytest.mark.parametrize("size", SIZES)
def test_recall_vs_selectivity_kb_paths(benchmark: Any, tmp_path: Path, size: int) -> None:
    """The kb-paths set at the same four selectivities: keyMatch prefixes (pushed down
    exactly) and keyMatch2 patterns (relaxed; the guard finishes exactly)."""
    metadata = [{"path": kb_path(i, md)} for i, md in enumerate(_corpus.chunk_metadata(size))]
    truth_metadata = _corpus.chunk_metadata(size)
    vectors = np.concatenate(list(_corpus.corpus_vectors(size)))
    policy = kb_paths_policy()
    store = rg.EdgeStore.create(tmp_path / "shard", dim=_corpus.DIM)
    batch = 2000
    for start in range(0, size, batch):
        store.upsert(
            rg.Chunk(f"chunk {i}", metadata[i], vectors[i].tolist(), id=i)
            for i in range(start, min(start + batch, size))
        )
    store.create_payload_indexes(policy.index_specs())
    store.optimize()
    query_array = _corpus.query_vectors()[:RECALL_QUERIES]
    queries: list[list[float]] = query_array.tolist()
    scores = vectors @ query_array.T
    exact_guard = rg.Guard(policy, store, exact_search=True)
    hnsw_guard = rg.Guard(policy, store)
    worst_guard = rg.Guard(policy, _Unnarrowed(store), exact_search=True)
    rows: list[dict[str, Any]] = []

    def measure_all() -> None:
        for name, fraction, _, _, readable in KB_PROBES:
            mask = np.fromiter((readable(md) for md in truth_metadata), bool, size)
            assert mask.mean() == fraction
            for grant, prefix in GRANTS.items():
                subject = rg.Subject(id=f"{prefix}-{name}")
                plan = policy.plan(subject)
                assert exact_guard.plan(subject).exact == (prefix == "kp")
                probe = _corpus.Probe(name, subject, fraction, readable, qe.Filter)
                methods = {
                    "ragguard (exact)": _guard(exact_guard, subject),
                    "ragguard (HNSW, default)": _guard(hnsw_guard, subject),
                    "top-k then filter": _post_filter(store, plan, K),
                    "10x over-fetch then filter": _post_filter(store, plan, 10 * K),
                }
                if prefix == "k2":
                    methods["ragguard (exact), nothing pushed"] = _guard(worst_guard, subject)
                for row in _recall_rows(name, probe, mask, scores, queries, methods):
                    rows.append({"grant": grant, **row})

    try:
        benchmark.pedantic(measure_all, rounds=1, iterations=1)
    finally:
        store.close()
    report = Report(benchmark, "recall_kb_paths", size=size, k=K, queries=len(queries))
    report.figure("rows", rows)
    for row in rows:
        if row["method"] in ("ragguard (exact)", "ragguard (exact), nothing pushed"):
            report.check(
                f"kb-paths {row['grant'].split(' ')[0]} {row['method']} recall@10 at "
                f"{row['readable']}",
                row["recall"],
                "==",
                1.0,
            )
    report.assert_checks()
