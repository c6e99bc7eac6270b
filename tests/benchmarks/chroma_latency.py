"""Guarded search latency and recall: ChromaStore next to EdgeStore, at one scale.

Not a test; run it by hand::

    .venv/bin/python tests/benchmarks/chroma_latency.py --chunks 100000 --queries 20 --dim 384

Both stores hold the same clustered unit vectors (``ragguard.testing.clustered_vectors``)
and a ``dept`` attribute that makes 50 %, 5 %, 0.5 % and 0.05 % of the corpus readable for
four subjects (the corpus and policy of ``pgvector_latency.py``). For each subject and store,
``guard.search`` runs ``--queries`` times with the store's approximate search and with
``exact_search=True``; the table gives the median and 95th percentile latency and the
recall of the released top-k against numpy brute force over the authorised chunks.
``--exact-queries`` caps the exact searches per cell; a cell whose search raises a
``RagGuardError`` prints the error class (Chroma's exact search over 50,000 admitted
chunks does).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from pgvector_latency import MODEL, POLICY, SUBJECTS, _dept

import ragguard as rg
from ragguard.testing import clustered_vectors


def main() -> None:
    import chromadb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exact-queries", type=int, default=None, help="cap on exact searches")
    parser.add_argument("--subjects", default=",".join(SUBJECTS), help="comma-separated")
    args = parser.parse_args()
    n, k = args.chunks, args.k
    vectors = clustered_vectors(n + args.queries, args.dim, clusters=64, seed=11)
    corpus, queries = vectors[:n], vectors[n:]
    depts = [_dept(i) for i in range(n)]
    chunks = [
        rg.Chunk(text="t", metadata={"dept": d}, vector=v.tolist(), id=i)
        for i, (d, v) in enumerate(zip(depts, corpus, strict=True))
    ]
    policy = rg.Policy.from_casbin(MODEL, POLICY)

    started = time.perf_counter()
    client = chromadb.PersistentClient(path=tempfile.mkdtemp())
    chroma = rg.ChromaStore.create(client, "bench", dim=args.dim)
    chroma.upsert(chunks)
    print(
        f"chroma: loaded and indexed {n} chunks in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    started = time.perf_counter()
    edge = rg.EdgeStore.create(tempfile.mkdtemp() + "/shard", dim=args.dim)
    edge.upsert(chunks)
    edge.create_payload_indexes(policy.index_specs())
    edge.optimize()
    print(
        f"edge:   loaded and indexed {n} chunks in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    print(f"\n| readable | store | search | p50 ms | p95 ms | recall@{k} | queries |")
    print("|---|---|---|---|---|---|---|")
    for user in args.subjects.split(","):
        allowed = SUBJECTS[user]
        authorised = np.array([d in allowed for d in depts])
        subject = rg.Subject(id=user)
        for name, store in (("EdgeStore", edge), ("ChromaStore", chroma)):
            for exact in (False, True):
                guard = rg.Guard(policy, store, exact_search=exact)
                try:
                    guard.search(subject, queries[0].tolist(), k)
                except rg.RagGuardError as exc:  # reported in the table, not hidden
                    print(
                        f"| {authorised.mean() * 100:g} % | {name} | "
                        f"{'exact' if exact else 'HNSW'} | fails: {type(exc).__name__} | | | |",
                        flush=True,
                    )
                    continue
                latencies, recalls = [], []
                cell = queries[: args.exact_queries] if exact else queries
                for query in cell:
                    t0 = time.perf_counter()
                    hits = guard.search(subject, query.tolist(), k)
                    latencies.append(time.perf_counter() - t0)
                    scores = corpus @ query
                    scores[~authorised] = -np.inf
                    best = set(np.argsort(-scores)[:k].tolist())
                    recalls.append(len(best & {int(h.id) for h in hits}) / k)
                latencies.sort()
                print(
                    f"| {authorised.mean() * 100:g} % | {name} | "
                    f"{'exact' if exact else 'HNSW'} | {statistics.median(latencies) * 1e3:.2f} | "
                    f"{latencies[int(0.95 * (len(latencies) - 1))] * 1e3:.2f} | "
                    f"{statistics.mean(recalls):.3f} | {len(cell)} |",
                    flush=True,
                )
    edge.close()


if __name__ == "__main__":
    main()
