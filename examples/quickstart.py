"""Quickstart: from nothing to a guarded search in about ten lines.

An embedded Qdrant shard in a temporary directory, the demo corpus (three fictional
companies, clearance levels 0-3) embedded with a deterministic local embedder, the demo's
Casbin policy, and one question asked as alice, an engineer at acme with clearance 1.
Every hit names the policy line that released it. No server, no network, no model
download.

    python examples/quickstart.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"  # the demo's model.conf and policy.csv


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
        embedder = HashEmbedder(dim=384)
        documents = sample_corpus()
        vectors = embedder.embed_documents([doc.text for doc in documents])
        with rg.EdgeStore.create(Path(tmp) / "shard", dim=384, distance="cosine") as store:
            store.upsert(
                doc.to_chunk(vector) for doc, vector in zip(documents, vectors, strict=True)
            )
            store.optimize()  # build the HNSW index after bulk writes

            guard = rg.Guard(policy, store)
            alice = rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1})
            question = "How do I roll back a bad deploy when I am on call?"
            hits = guard.search(alice, embedder.embed_query(question), k=3)

            print(f"alice asks: {question}")
            for hit in hits:
                m = hit.metadata
                print(f"  {hit.score:.2f} [{m['tenant']}/{m['dept']}/L{m['level']}] {m['title']}")
                print(f"       released by {hit.decision.rule}")


if __name__ == "__main__":
    main()
