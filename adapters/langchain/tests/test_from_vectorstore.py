"""GuardedRetriever.from_vectorstore: pushdown on langchain-qdrant, honest post-filter elsewhere.

References: the policy's own decision for "may read" and numpy brute force for top-k.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

import ragguard as rg
from ragguard.testing import sample_corpus
from ragguard_langchain import GuardedRetriever, HashEmbeddings, PostFilterStore, PostFilterWarning

from lc_support import SUBJECTS

DIM = 64
QUESTIONS = ["salary bands and compensation review", "deploy rollback runbook"]


@pytest.fixture(scope="module")
def embeddings() -> HashEmbeddings:
    return HashEmbeddings(DIM)


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return [
        Document(id=d.id, page_content=d.text, metadata=dict(d.metadata)) for d in sample_corpus()
    ]


def _brute_force_ids(
    policy: rg.Policy,
    subject: rg.Subject,
    documents: list[Document],
    embeddings: Embeddings,
    question: str,
    k: int,
) -> list[str]:
    """The authorised top-k by exact cosine similarity over every document."""
    matrix = np.asarray(embeddings.embed_documents([d.page_content for d in documents]))
    query = np.asarray(embeddings.embed_query(question))
    scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    readable = [i for i, d in enumerate(documents) if policy.check(subject, d.metadata).released]
    ranked = sorted(readable, key=lambda i: -scores[i])[:k]
    return [str(documents[i].id) for i in ranked]


def test_qdrant_vectorstore_gets_pushdown_on_the_same_collection(
    policy: rg.Policy, embeddings: HashEmbeddings, documents: list[Document]
) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    vectorstore = QdrantVectorStore(client=client, collection_name="docs", embedding=embeddings)
    vectorstore.add_documents(documents, ids=[d.id for d in documents])
    retriever = GuardedRetriever.from_vectorstore(vectorstore, policy, k=6)
    store = retriever.guard.store
    assert isinstance(store, rg.QdrantStore)
    assert store.client is client
    assert store.collection == "docs"
    for subject in SUBJECTS:
        assert retriever.guard.plan(subject).exact  # the whole filter runs inside Qdrant
        for question in QUESTIONS:
            docs = retriever.with_subject(subject).invoke(question)
            expected = _brute_force_ids(policy, subject, documents, embeddings, question, 6)
            assert [d.id for d in docs] == expected, (subject.id, question)


@pytest.fixture(scope="module")
def in_memory(embeddings: HashEmbeddings, documents: list[Document]) -> InMemoryVectorStore:
    vectorstore = InMemoryVectorStore(embeddings)
    vectorstore.add_documents(documents)
    return vectorstore


def test_other_vectorstores_warn_and_post_filter(
    policy: rg.Policy, in_memory: InMemoryVectorStore
) -> None:
    with pytest.warns(PostFilterWarning, match="recall and cost depend"):
        retriever = GuardedRetriever.from_vectorstore(in_memory, policy, subject=SUBJECTS[0])
    assert isinstance(retriever.guard.store, PostFilterStore)
    assert not retriever.guard.plan(SUBJECTS[0]).exact


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.id)
def test_post_filter_still_returns_the_exact_authorised_top_k(
    policy: rg.Policy,
    in_memory: InMemoryVectorStore,
    embeddings: HashEmbeddings,
    documents: list[Document],
    subject: rg.Subject,
) -> None:
    readable = sum(policy.check(subject, d.metadata).released for d in documents)
    assert 0 < readable < len(documents) / 2  # selective enough for over-fetch to matter
    with pytest.warns(PostFilterWarning):
        retriever = GuardedRetriever.from_vectorstore(in_memory, policy, subject=subject, k=8)
    for question in QUESTIONS:
        docs = retriever.invoke(question)
        expected = _brute_force_ids(policy, subject, documents, embeddings, question, 8)
        assert [d.id for d in docs] == expected


def test_post_filter_store_reads_by_id_and_refuses_writes(
    in_memory: InMemoryVectorStore, documents: list[Document]
) -> None:
    store = PostFilterStore(in_memory, dim=DIM)
    wanted = [str(documents[3].id), str(documents[7].id)]
    assert sorted(c.id for c in store.get(wanted)) == sorted(wanted)
    with pytest.raises(rg.StoreError, match="read-only"):
        store.upsert([])


def test_a_failing_vectorstore_releases_nothing(
    policy: rg.Policy, in_memory: InMemoryVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.warns(PostFilterWarning):
        retriever = GuardedRetriever.from_vectorstore(in_memory, policy, subject=SUBJECTS[0])

    def broken(*args: Any, **kwargs: Any) -> list[Document]:
        raise ConnectionError("vector database unreachable")

    monkeypatch.setattr(in_memory, "similarity_search_by_vector", broken)
    with pytest.raises(rg.StoreError, match=r"similarity_search_by_vector failed.*unreachable"):
        retriever.invoke("deploy rollback runbook")


class _NoIdVectorStore(VectorStore):
    """Returns fixed documents without ids, best first, as some vector stores do."""

    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return self.documents[:k]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return self.documents[:k]

    def add_texts(
        self, texts: Iterable[str], metadatas: list[dict[Any, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        raise NotImplementedError

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> _NoIdVectorStore:
        raise NotImplementedError


@pytest.mark.parametrize("readable_first", [True, False])
def test_documents_without_ids_are_decided_one_by_one(
    policy: rg.Policy, embeddings: HashEmbeddings, readable_first: bool
) -> None:
    alice = SUBJECTS[0]
    acme = {"tenant": "acme", "dept": "engineering", "level": 0}
    globex = {"tenant": "globex", "dept": "engineering", "level": 0}
    pair = [
        Document(page_content="quarterly roadmap", metadata=acme),
        Document(page_content="quarterly roadmap", metadata=globex),
    ]
    if not readable_first:
        pair.reverse()
    vectorstore = _NoIdVectorStore([*pair, Document(page_content="deploy notes", metadata=acme)])
    with pytest.warns(PostFilterWarning):
        retriever = GuardedRetriever.from_vectorstore(
            vectorstore, policy, subject=alice, embeddings=embeddings, k=5
        )
    docs = retriever.invoke("quarterly roadmap")
    assert [(d.page_content, d.metadata["tenant"]) for d in docs] == [
        ("quarterly roadmap", "acme"),
        ("deploy notes", "acme"),
    ]
    assert all(d.id and d.id.startswith("sha256:") for d in docs)
    assert docs[0].id != docs[1].id


def test_a_vectorstore_without_embeddings_needs_them(policy: rg.Policy) -> None:
    with pytest.raises(ValueError, match="pass embeddings="):
        GuardedRetriever.from_vectorstore(_NoIdVectorStore([]), policy)


def test_post_filter_store_declares_its_capabilities(
    policy: rg.Policy, in_memory: InMemoryVectorStore
) -> None:
    """Rank scores (a similarity), no native async search, no scroll: the guard searches
    it in a thread and cannot finish exactly."""
    store = PostFilterStore(in_memory, dim=DIM)
    assert store.capabilities == rg.StoreCapabilities(db_system_name="langchain")
    assert rg.Guard(policy, store).capabilities == store.capabilities
