"""``QdrantStore(layout="llamaindex")``: LlamaIndex's Qdrant payload, read and written.

The adapter's tests (adapters/llamaindex/tests) check it against LlamaIndex itself; these
need only qdrant-client: metadata at the top level, filters on top-level keys, the text
from ``_node_content`` (or a legacy top-level ``text``), unreadable text as ``None``.
"""

from __future__ import annotations

import json

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

import ragguard as rg
from ragguard.policy import ir


@pytest.fixture
def client() -> QdrantClient:
    client = QdrantClient(":memory:")
    client.create_collection(
        "li", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.COSINE)
    )
    return client


def test_round_trip_and_filters_on_top_level_keys(client: QdrantClient) -> None:
    store = rg.QdrantStore(client=client, collection="li", layout="llamaindex")
    store.upsert(
        [
            rg.Chunk("legal text", {"dept": "legal", "level": 2}, [1.0, 0.0], id=1),
            rg.Chunk("hr text", {"dept": "hr"}, [0.0, 1.0], id=2),
        ]
    )
    [point] = client.retrieve("li", [1], with_payload=True)
    payload = point.payload or {}
    assert (payload["dept"], payload["_node_type"]) == ("legal", "TextNode")
    assert json.loads(payload["_node_content"])["text"] == "legal text"
    hits = store.search([1.0, 0.0], 5, store.translate(ir.Eq("dept", "legal")))
    assert [(h.text, h.metadata) for h in hits] == [
        (
            "legal text",
            {
                "dept": "legal",
                "level": 2,
                "document_id": "None",
                "doc_id": "None",
                "ref_doc_id": "None",
            },
        )
    ]
    assert store.search([1.0, 0.0], 5, store.translate(ir.Range("level", gte=3))) == []


def test_legacy_and_unreadable_payloads(client: QdrantClient) -> None:
    client.upsert(
        "li",
        points=[
            qm.PointStruct(id=1, vector=[1.0, 0.0], payload={"text": "old", "dept": "x"}),
            qm.PointStruct(
                id=2, vector=[1.0, 0.0], payload={"_node_content": "{not json", "dept": "x"}
            ),
        ],
    )
    store = rg.QdrantStore(client=client, collection="li", layout="llamaindex")
    found = {c.id: (c.text, c.metadata) for c in store.get([1, 2])}
    assert found == {"1": ("old", {"dept": "x"}), "2": (None, {"dept": "x"})}
    with pytest.raises(ValueError, match="unknown layout"):
        rg.QdrantStore(client=client, collection="li", layout="other")  # type: ignore[arg-type]
