"""Naive vs guarded: what one broad question leaks without a guard, and what the guard returns.

Three fictional companies share one vector store (the demo corpus). carol is a contractor
at globex with clearance 0: she may read globex's public chunks and nothing else. She
asks a deliberately broad question. The plain vector query returns the nearest chunks of
everyone's documents; this script lists the ones carol may not read (title, tenant,
department, level, label: never their text) and counts them. Then the same question goes
through the guard, which pushes carol's policy into the Qdrant query: every chunk it
returns is one she may read, and she still gets k of them (filtering the plain top-k
afterwards would have left her almost nothing). No server, no network, no model download.

    python examples/naive_vs_guarded.py
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"  # the demo policy: roles per tenant, clearances
QUESTION = (
    "What are the salary bands, the acquisition offer price and the details of the "
    "security incident?"
)
K = 10
NO_FILTER = rg.Pushdown(native=None, exact=True)  # what a plain vector query sends


def describe(metadata: Mapping[str, Any]) -> str:
    """A chunk as its labels and title; the text stays out of the output."""
    label = f", {metadata['label']}" if "label" in metadata else ""
    where = f"{metadata['tenant']}/{metadata['dept']}/L{metadata['level']}{label}"
    return f"[{where}] {metadata['title']}"


def main() -> None:
    embedder = HashEmbedder(dim=384)
    policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
    documents = sample_corpus()
    carol = rg.Subject(id="carol", attributes={"dept": "engineering", "clearance": 0})

    with (
        tempfile.TemporaryDirectory() as tmp,
        rg.EdgeStore.create(Path(tmp) / "shard", dim=384, distance="cosine") as store,
    ):
        vectors = embedder.embed_documents([doc.text for doc in documents])
        store.upsert(doc.to_chunk(vector) for doc, vector in zip(documents, vectors, strict=True))
        store.optimize()
        guard = rg.Guard(policy, store)
        readable = sum(guard.check(carol, doc.metadata).released for doc in documents)
        print(f"{len(documents)} chunks from 3 companies; carol (globex contractor, clearance 0)")
        print(f"may read {readable} of them.\n")
        print(f"carol asks: {QUESTION!r} (k={K})\n")
        vector = embedder.embed_query(QUESTION)

        naive = store.search(vector, K, NO_FILTER)
        leaked = [
            (chunk.score, chunk.metadata or {})
            for chunk in naive
            if not guard.check(carol, chunk.metadata or {}).released
        ]
        print(f"== naive: a plain vector query returns {len(naive)} chunks, {len(leaked)} of")
        print("   which carol may not read:")
        for score, metadata in leaked:
            print(f"   LEAK {score:.2f} {describe(metadata)}")

        guarded = guard.search(carol, vector, k=K)
        print(f"\n== guarded: carol's policy is pushed into the query; {len(guarded)} chunks,")
        print("   every one released by a policy line:")
        for hit in guarded:
            print(f"   ok   {hit.score:.2f} {describe(hit.metadata)}")
        guarded_leaks = sum(not guard.check(carol, hit.metadata).released for hit in guarded)

        other_tenants = sum(m.get("tenant") != "globex" for _, m in leaked)
        above_clearance = sum(m.get("level", 0) > 0 for _, m in leaked)
        on_hold = sum(m.get("label") == "legal_hold" for _, m in leaked)
        print("\nSummary")
        print(
            f"  naive:   {len(leaked)} of {len(naive)} chunks leak ({other_tenants} from other "
            f"companies, {above_clearance} above level 0, {on_hold} under legal hold)"
        )
        print(f"  post-filtering the naive top {K} would leave carol {len(naive) - len(leaked)}")
        print(
            f"  guarded: {guarded_leaks} of {len(guarded)} chunks leak; carol gets {len(guarded)}"
        )


if __name__ == "__main__":
    main()
