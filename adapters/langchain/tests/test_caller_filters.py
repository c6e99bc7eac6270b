"""A caller's ``filter=`` narrows on every vector store: pushed down or post-filtered.

The reference is written here in plain Python per filter (the policy grants alice her
tenant, the filter narrows it); top-k is numpy brute force over the documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

import ragguard as rg
from ragguard_langchain import GuardedRetriever, HashEmbeddings, PostFilterWarning

DIM = 32
MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj.tenant == r.sub.tenant && r.act == "read"
"""
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme"})
QUESTION = "quarterly planning notes"
WORDS = ("planning", "budget", "roadmap", "incident", "hiring", "quarterly", "notes")


def _documents() -> list[Document]:
    documents = []
    for i in range(90):
        text = f"{WORDS[i % 7]} {WORDS[(i * 3) % 7]} document {i}"
        metadata = {
            "tenant": "acme" if i % 4 else "globex",
            "project": f"p{i % 2}",
            "n": i,
            "dept-x": "a" if i % 3 == 0 else "b",
        }
        documents.append(Document(id=f"doc-{i}", page_content=text, metadata=metadata))
    return documents


DOCUMENTS = _documents()

# filter= as a caller passes it, and the same condition in plain Python.
FILTERS: dict[str, tuple[Any, Callable[[Mapping[str, Any]], bool]]] = {
    "dict equality": ({"project": "p1"}, lambda md: md["project"] == "p1"),
    "dict with a dashed name": ({"dept-x": "a"}, lambda md: md["dept-x"] == "a"),
    "qdrant MatchValue": (
        models.Filter(
            must=[
                models.FieldCondition(key="metadata.project", match=models.MatchValue(value="p1"))
            ]
        ),
        lambda md: md["project"] == "p1",
    ),
    "qdrant long numeric MatchAny": (
        models.Filter(
            must=[
                models.FieldCondition(
                    key="metadata.n", match=models.MatchAny(any=list(range(0, 300, 3)))
                )
            ]
        ),
        lambda md: md["n"] % 3 == 0,
    ),
    "qdrant must_not on a dashed name": (
        models.Filter(
            must_not=[
                models.FieldCondition(key="metadata.dept-x", match=models.MatchValue(value="a"))
            ]
        ),
        lambda md: md["dept-x"] != "a",
    ),
    "qdrant Range": (
        models.Filter(must=[models.FieldCondition(key="metadata.n", range=models.Range(lt=40))]),
        lambda md: md["n"] < 40,
    ),
}


@pytest.fixture(scope="module")
def embeddings() -> HashEmbeddings:
    return HashEmbeddings(DIM)


@pytest.fixture(scope="module", params=["in-memory (post-filter)", "langchain-qdrant"])
def vectorstore(request: pytest.FixtureRequest, embeddings: HashEmbeddings) -> VectorStore:
    if request.param == "langchain-qdrant":
        client = QdrantClient(":memory:")
        client.create_collection(
            "docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
        )
        qdrant = QdrantVectorStore(client=client, collection_name="docs", embedding=embeddings)
        qdrant.add_documents(DOCUMENTS, ids=[int(str(d.id)[4:]) for d in DOCUMENTS])
        return qdrant
    in_memory = InMemoryVectorStore(embeddings)
    in_memory.add_documents(DOCUMENTS)
    return in_memory


def _retriever(vectorstore: VectorStore, **options: Any) -> GuardedRetriever:
    policy = rg.Policy.from_casbin(MODEL)
    if isinstance(vectorstore, QdrantVectorStore):
        return GuardedRetriever.from_vectorstore(vectorstore, policy, **options)
    with pytest.warns(PostFilterWarning):
        return GuardedRetriever.from_vectorstore(vectorstore, policy, **options)


def _expected(
    embeddings: HashEmbeddings, holds: Callable[[Mapping[str, Any]], bool], k: int
) -> list[str]:
    allowed = [d for d in DOCUMENTS if d.metadata["tenant"] == "acme" and holds(d.metadata)]
    matrix = np.asarray(embeddings.embed_documents([d.page_content for d in allowed]))
    query = np.asarray(embeddings.embed_query(QUESTION))
    scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    return [str(allowed[i].metadata["n"]) for i in np.argsort(-scores, kind="stable")[:k]]


def test_the_issue_reproduction_returns_only_the_filtered_project(
    embeddings: HashEmbeddings,
) -> None:
    """Regression: ``from_vectorstore(InMemoryVectorStore(...), policy).invoke(q,
    filter={"project": "p1"})`` returned p0 documents (the post-filter re-checked the
    policy only)."""
    vectorstore = InMemoryVectorStore(embeddings)
    vectorstore.add_documents(DOCUMENTS)
    with pytest.warns(PostFilterWarning):
        retriever = GuardedRetriever.from_vectorstore(
            vectorstore, rg.Policy.from_casbin(MODEL), subject=ALICE, k=10
        )
    docs = retriever.invoke(QUESTION, filter={"project": "p1"})
    assert len(docs) == 10
    assert {d.metadata["project"] for d in docs} == {"p1"}
    assert {d.metadata["tenant"] for d in docs} == {"acme"}
    unfiltered = retriever.invoke(QUESTION, k=40)  # the retriever itself is unchanged
    assert {d.metadata["project"] for d in unfiltered} == {"p0", "p1"}


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("k", [4, 90])
def test_caller_filter_holds_on_every_vectorstore(
    vectorstore: VectorStore, embeddings: HashEmbeddings, name: str, k: int
) -> None:
    """Per call and in search_kwargs, every filter shape: exactly the brute-force top-k
    of the documents the policy and the filter both allow."""
    caller_filter, holds = FILTERS[name]
    expected = _expected(embeddings, holds, k)
    per_call = _retriever(vectorstore, subject=ALICE, k=k)
    docs = per_call.invoke(QUESTION, filter=caller_filter)
    assert all(holds(d.metadata) and d.metadata["tenant"] == "acme" for d in docs), name
    assert [str(d.metadata["n"]) for d in docs] == expected, name
    bound = _retriever(vectorstore, subject=ALICE, k=k, search_kwargs={"filter": caller_filter})
    docs = asyncio.run(bound.ainvoke(QUESTION))
    assert [str(d.metadata["n"]) for d in docs] == expected, name


def test_two_filters_both_hold(vectorstore: VectorStore) -> None:
    """search_kwargs' filter and the call's filter are ANDed: both narrow."""
    retriever = _retriever(
        vectorstore, subject=ALICE, k=90, search_kwargs={"filter": {"project": "p1"}}
    )
    docs = retriever.invoke(QUESTION, filter={"dept-x": "a"})
    assert docs
    assert all(d.metadata["project"] == "p1" and d.metadata["dept-x"] == "a" for d in docs)
    assert len(docs) == sum(
        1
        for d in DOCUMENTS
        if d.metadata["tenant"] == "acme"
        and d.metadata["project"] == "p1"
        and d.metadata["dept-x"] == "a"
    )
