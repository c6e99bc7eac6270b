"""The same guard on a Qdrant server or cluster, via ``rg.QdrantStore``.

Nothing in the guard changes when the store moves from the embedded shard to a Qdrant
server: the policy is compiled into the same Qdrant filter and sent with the query, and
Qdrant's own sharding and replication do the scaling. The script creates a uniquely named
collection, creates the payload indexes the policy needs (``tenant`` as Qdrant's tenant
index), ingests the demo corpus signed, asks one question as three users, and deletes
the collection again. The embedder is local and deterministic: no model download.

It needs a running server, named by ``QDRANT_URL`` (and ``QDRANT_API_KEY`` if the server
wants one); without ``QDRANT_URL`` it says so and exits with status 2::

    docker run -p 6333:6333 qdrant/qdrant      # or any Qdrant server or cluster
    QDRANT_URL=http://localhost:6333 python examples/qdrant_server.py
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from qdrant_client import QdrantClient

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"  # the demo policy: roles per tenant, clearances
SIGNING_KEY = b"example-signing-key-from-your-kms"
QUESTION = "What is the codename of the acquisition we are planning, and what is the offer price?"
USERS = [
    rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
    rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
    rg.Subject(id="carol", attributes={"dept": "engineering", "clearance": 0}),
]


def main() -> int:
    url = os.environ.get("QDRANT_URL")
    if not url:
        print(
            "QDRANT_URL is not set: start a Qdrant server and run\n"
            "  QDRANT_URL=http://localhost:6333 python examples/qdrant_server.py",
            file=sys.stderr,
        )
        return 2

    embedder = HashEmbedder(dim=384)
    policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
    client = QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"))
    collection = f"ragguard-example-{uuid.uuid4().hex[:12]}"
    try:
        store = rg.QdrantStore.create(client, collection, dim=384, distance="cosine")
        print(f"Created collection {collection!r} on {url}")
        store.create_payload_indexes(policy.index_specs(types={"level": "integer"}))
        signer = rg.Signer(key=SIGNING_KEY, key_id="2026-11")
        ids = rg.Ingestor(store, signer=signer, embeddings=embedder, progress=False).ingest(
            sample_corpus()
        )
        print(f"Ingested and signed {len(ids)} chunks\n")

        check = rg.ProvenanceCheck(keys={"2026-11": SIGNING_KEY}, mode="require")
        guard = rg.Guard(policy, store, provenance=check)
        vector = embedder.embed_query(QUESTION)
        print(f"Question: {QUESTION}")
        for user in USERS:
            print(f"== {user.id} (plan: {guard.plan(user).kind})")
            for hit in guard.search(user, vector, k=3):
                m = hit.metadata
                print(f"   {hit.score:.2f} [{m['tenant']}/{m['dept']}/L{m['level']}] {m['title']}")
    finally:
        if client.collection_exists(collection):
            client.delete_collection(collection)
            print(f"\nDeleted collection {collection!r}")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
