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
from typing import Any

import _corpus
import numpy as np
import numpy.typing as npt
import pytest
from _measure import Report, median, ms
from _shards import RECALL_QUERIES, SIZES, Corpora

import ragguard as rg

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
