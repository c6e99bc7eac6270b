"""``HashEmbeddings``: ragguard's deterministic embedder in a form LangChain accepts."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from ragguard.testing import HashEmbedder
from ragguard_langchain import HashEmbeddings


def test_is_a_langchain_embeddings_with_the_core_embedders_vectors() -> None:
    embeddings = HashEmbeddings(dim=32, seed=3)
    core = HashEmbedder(dim=32, seed=3)
    assert isinstance(embeddings, Embeddings)
    assert embeddings.dim == 32
    texts = ["salary bands", "deploy rollback runbook", ""]
    assert embeddings.embed_documents(texts) == core.embed_documents(texts)
    assert embeddings.embed_query("salary") == core.embed_query("salary")
    assert asyncio.run(embeddings.aembed_query("salary")) == core.embed_query("salary")
    assert asyncio.run(embeddings.aembed_documents(texts)) == core.embed_documents(texts)
    assert repr(embeddings) == "HashEmbeddings(dim=32, seed=3)"


def test_langchain_qdrant_accepts_it_and_rejects_the_core_embedder() -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "kb", vectors_config={"": qm.VectorParams(size=32, distance=qm.Distance.COSINE)}
    )
    store = QdrantVectorStore(client=client, collection_name="kb", embedding=HashEmbeddings(32))
    store.add_texts(["salary bands"], metadatas=[{"dept": "hr"}], ids=[1])
    [document] = store.similarity_search("salary", k=1)
    assert document.page_content == "salary bands"
    # the core embedder is duck-typed only: this is why the adapter ships HashEmbeddings
    with pytest.raises(TypeError, match="embeddings"):
        QdrantVectorStore(client=client, collection_name="kb", embedding=HashEmbedder(32))  # type: ignore[arg-type]


def test_the_core_package_does_not_import_langchain() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ragguard, ragguard.testing; "
        "print(any(m.startswith('langchain') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
