"""A LlamaIndex query engine where two users ask the same question and get different sources.

The retriever is ``ragguard_llamaindex.GuardedRetriever`` bound to each user; the query
engine is LlamaIndex's own ``RetrieverQueryEngine`` with its ``MockLLM`` (no network, no
model download). Each released node carries the policy line that released it.

    python examples/llamaindex_retriever.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus
from ragguard_llamaindex import DECISION_KEY, GuardedRetriever

DEMO = Path(rg.__file__).parent / "_demo"  # the demo's policy: roles per tenant, clearances
QUESTION = "What is the codename of the acquisition we are planning, and what is the offer price?"


def main() -> None:
    embedder = HashEmbedder(dim=384)
    policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
    with (
        tempfile.TemporaryDirectory() as tmp,
        rg.EdgeStore.create(Path(tmp) / "shard", dim=384, distance="cosine") as store,
    ):
        key = b"example-signing-key-32-bytes-lon"
        signer = rg.Signer(key=key, key_id="example")
        rg.Ingestor(store, signer=signer, embeddings=embedder, progress=False).ingest(
            sample_corpus()
        )
        store.optimize()
        guard = rg.Guard(policy, store, provenance=rg.ProvenanceCheck(keys={"example": key}))
        retriever = GuardedRetriever(guard, embed_model=embedder)

        try:
            retriever.retrieve(QUESTION)
        except rg.SubjectError:
            print("An unbound retriever refuses to search: SubjectError\n")

        print(f"Question: {QUESTION}\n")
        for user in [
            rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
            rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
        ]:
            engine = RetrieverQueryEngine.from_args(retriever.with_subject(user), llm=MockLLM())
            response = engine.query(QUESTION)
            print(
                f"== {user.id} ({user.attributes['dept']}, clearance {user.attributes['clearance']})"
            )
            for source in response.source_nodes:
                metadata = source.node.metadata
                decision = metadata[DECISION_KEY]
                print(f"   [{metadata['title']}] {decision['provenance']['status']}, released by")
                print(f"      {decision['rule']}")
            print()


if __name__ == "__main__":
    main()
