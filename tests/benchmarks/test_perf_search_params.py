"""Recall@10 and p50 latency per search parameter (``rg.SearchParams``), guarded searches.

Run with ``pytest tests/benchmarks/test_perf_search_params.py``. Uniform vectors: dim 64,
independent Gaussian coordinates normalised to the unit sphere (cosine), the hardest case
for HNSW (no cluster structure to exploit). Every chunk has ``group`` ``"a"`` or ``"b"``
(alternating) with a keyword payload index. Two guards over one optimised EdgeStore:

* unfiltered — a policy that lets the subject read everything (``allow_all``: no filter);
* 50 % — ``r.obj.group == r.sub.group``: the filter is pushed down into Qdrant's
  filtered HNSW search.

For each of Qdrant's defaults (no ``hnsw_ef``), ``hnsw_ef`` 64, 128, 256, 512 and
``exact=True``: recall@10 against numpy brute force over the chunks the subject may
read (a returned chunk counts when it scores at least the true 10th score minus 1e-5),
and the median latency of ``guard.search`` (k=10), measured interleaved (each round
runs every variant once, in rotating order).

Scale knobs: ``RAGGUARD_BENCH_PARAMS_SIZE`` (default 100,000 chunks),
``RAGGUARD_BENCH_QUERIES`` (queries, default 50), ``RAGGUARD_BENCH_PARAMS_REPEATS``
(timed passes over the queries, default 3). The shard is cached under
``RAGGUARD_BENCH_CACHE`` like the other corpora.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from _measure import Report, env_int, median, ms
from _shards import RECALL_QUERIES, cache_root

import ragguard as rg

SIZE = env_int("RAGGUARD_BENCH_PARAMS_SIZE", 100_000)
REPEATS = env_int("RAGGUARD_BENCH_PARAMS_REPEATS", 3)
DIM = 64
K = 10
TIE_TOLERANCE = 1e-5
SEED = 15
VARIANTS: dict[str, rg.SearchParams] = {
    "default": rg.SearchParams(),
    "hnsw_ef=64": rg.SearchParams(hnsw_ef=64),
    "hnsw_ef=128": rg.SearchParams(hnsw_ef=128),
    "hnsw_ef=256": rg.SearchParams(hnsw_ef=256),
    "hnsw_ef=512": rg.SearchParams(hnsw_ef=512),
    "exact": rg.SearchParams(exact=True),
}
ANYONE_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.act == p.act
"""
GROUP_MODEL = ANYONE_MODEL.replace(
    "m = r.act == p.act", "m = r.obj.group == r.sub.group && r.act == p.act"
)
SUBJECT = rg.Subject(id="u", attributes={"group": "a"})


def _unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _group(i: int) -> str:
    return "ab"[i % 2]


def _build(directory: Path) -> dict[str, float]:
    vectors = _unit(np.random.default_rng(SEED), SIZE)
    started = time.perf_counter()
    store = rg.EdgeStore.create(directory / "shard", dim=DIM, distance="cosine")
    try:
        store.create_payload_indexes([rg.IndexSpec("group", "keyword")])
        for start in range(0, SIZE, 2000):
            store.upsert(
                rg.Chunk("", {"group": _group(i)}, vectors[i].tolist(), id=i)
                for i in range(start, min(start + 2000, SIZE))
            )
        upserted = time.perf_counter()
        store.optimize()
        optimized = time.perf_counter()
    finally:
        store.close()
    np.save(directory / "vectors.npy", vectors)
    info = {"upsert_s": upserted - started, "optimize_s": optimized - upserted}
    (directory / "build_info.json").write_text(json.dumps(info), encoding="utf-8")
    return info


@pytest.fixture(scope="module")
def shard() -> Iterator[tuple[rg.EdgeStore, npt.NDArray[np.float32], dict[str, float]]]:
    directory = cache_root() / f"search-params-uniform{DIM}-{SIZE}-{SEED}"
    if not (directory / "build_info.json").exists():
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        _build(directory)
    info = json.loads((directory / "build_info.json").read_text(encoding="utf-8"))
    vectors = np.load(directory / "vectors.npy")
    store = rg.EdgeStore.open(directory / "shard")
    yield store, vectors, info
    store.close()


def _recall(
    hits: list[rg.Hit], scores: npt.NDArray[np.float32], readable: npt.NDArray[np.bool_]
) -> float:
    masked = np.where(readable, scores, -np.inf)
    kth = np.partition(masked, -K)[-K]
    good = sum(1 for h in hits if readable[int(h.id)] and scores[int(h.id)] >= kth - TIE_TOLERANCE)
    return good / K


def test_recall_and_latency_per_search_parameter(
    benchmark: Any, shard: tuple[rg.EdgeStore, npt.NDArray[np.float32], dict[str, float]]
) -> None:
    store, vectors, info = shard
    report = Report(benchmark, "search_params", size=SIZE, dim=DIM, k=K, queries=RECALL_QUERIES)
    report.figure("build upsert (s)", info["upsert_s"])
    report.figure("build optimize (s)", info["optimize_s"])
    queries = _unit(np.random.default_rng(SEED + 1), RECALL_QUERIES)
    groups = np.array([_group(i) for i in range(SIZE)])
    filters = {
        "unfiltered": (
            rg.Policy.from_casbin(ANYONE_MODEL, "p, anyone, read\n"),
            np.ones(SIZE, bool),
        ),
        "50 %": (rg.Policy.from_casbin(GROUP_MODEL, "p, anyone, read\n"), groups == "a"),
    }
    guards = {
        (fname, vname): rg.Guard(policy, store, search_params=params)
        for fname, (policy, _) in filters.items()
        for vname, params in VARIANTS.items()
    }
    truth_scores = vectors @ queries.T  # (SIZE, Q)
    recalls: dict[tuple[str, str], list[float]] = {key: [] for key in guards}
    latencies: dict[tuple[str, str], list[float]] = {key: [] for key in guards}
    names = list(guards)

    def one_pass() -> None:
        for q in range(len(queries)):
            query = queries[q].tolist()
            shift = q % len(names)
            for key in names[shift:] + names[:shift]:
                started = time.perf_counter()
                hits = guards[key].search(SUBJECT, query, k=K)
                latencies[key].append(time.perf_counter() - started)
                if len(recalls[key]) < len(queries):
                    recalls[key].append(_recall(hits, truth_scores[:, q], filters[key[0]][1]))

    one_pass()  # warm-up pass: its recall counts, its latency does not
    for key in latencies:
        latencies[key].clear()

    def timed_passes() -> None:
        for _ in range(REPEATS):
            one_pass()

    benchmark.pedantic(timed_passes, rounds=1, iterations=1)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (fname, vname), values in recalls.items():
        row = table.setdefault(vname, {})
        row[fname] = {
            "recall@10": round(float(np.mean(values)), 4),
            "p50 ms": round(ms(median(latencies[(fname, vname)])), 3),
        }
    report.figure("table", table)
    for fname in filters:
        report.check(f"exact recall@10, {fname}", table["exact"][fname]["recall@10"], ">=", 1.0)
        report.check(
            f"hnsw_ef=512 recall@10 >= default, {fname}",
            table["hnsw_ef=512"][fname]["recall@10"] - table["default"][fname]["recall@10"],
            ">=",
            0.0,
        )
    report.assert_checks()
