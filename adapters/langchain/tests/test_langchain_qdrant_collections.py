"""``from_vectorstore`` on collections made by langchain-qdrant itself, the default way.

langchain-qdrant's constructors create a vectors *map* whose unnamed vector is keyed
``""`` (or the ``vector_name`` given); ``from_texts``/``from_documents`` and
``add_documents`` write the payload under ``content_payload_key`` and
``metadata_payload_key``. Every combination is wrapped with
``GuardedRetriever.from_vectorstore`` and must give exactly the numpy brute-force
authorised top-k (and nothing unauthorised) for every subject and question, with caller
filters, async, batch and 16 threads. In memory and on disk always; on a Qdrant server
when ``QDRANT_URL`` is set.

References: ``policy.check`` (itself checked against ``casbin.enforce`` by the
conformance suite) for "may read", numpy for the nearest neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
from qdrant_client import models as qm

import ragguard as rg
from ragguard.testing import sample_corpus
from ragguard_langchain import GuardedRetriever, HashEmbeddings

from lc_support import SUBJECTS

DIM = 64
K = 6
QDRANT_URL = os.environ.get("QDRANT_URL")
QUESTIONS = [
    "salary bands and compensation review",
    "deploy rollback runbook",
    "acquisition codename and board minutes",
    "security incident legal hold",
]
CONSTRUCTORS = ["from_documents", "from_texts", "from_existing_collection", "add_documents"]
LOCATIONS = [
    "memory",
    "disk",
    pytest.param(
        "server",
        marks=pytest.mark.skipif(
            QDRANT_URL is None, reason="QDRANT_URL is not set (no Qdrant server to test on)"
        ),
    ),
]


@dataclass(frozen=True)
class Layout:
    """langchain-qdrant's naming options; ``{}`` is its default layout."""

    name: str
    options: Mapping[str, str]

    @property
    def metadata_key(self) -> str:
        return self.options.get("metadata_payload_key", "metadata")


DEFAULT = Layout("default", {})
CUSTOM = Layout(
    "custom",
    {"vector_name": "dense", "content_payload_key": "text", "metadata_payload_key": "meta"},
)


@pytest.fixture(scope="module")
def embeddings() -> HashEmbeddings:
    return HashEmbeddings(DIM)


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return [
        Document(id=d.id, page_content=d.text, metadata=dict(d.metadata)) for d in sample_corpus()
    ]


@pytest.fixture(scope="module")
def reference(
    documents: list[Document], embeddings: HashEmbeddings
) -> Callable[[rg.Policy, rg.Subject, str, Callable[[Mapping[str, Any]], bool]], list[str]]:
    matrix = np.asarray(embeddings.embed_documents([d.page_content for d in documents]))

    def top_k(
        policy: rg.Policy,
        subject: rg.Subject,
        question: str,
        narrow: Callable[[Mapping[str, Any]], bool],
    ) -> list[str]:
        """The authorised top-k by exact cosine similarity over every document."""
        query = np.asarray(embeddings.embed_query(question))
        scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        readable = [
            i
            for i, d in enumerate(documents)
            if policy.check(subject, d.metadata).released and narrow(d.metadata)
        ]
        return [str(documents[i].id) for i in sorted(readable, key=lambda i: -scores[i])[:K]]

    return top_k


def _connection(location: str, tmp_path: Path) -> dict[str, Any]:
    if location == "memory":
        return {"location": ":memory:"}
    if location == "disk":
        return {"path": str(tmp_path / "qdrant")}
    assert QDRANT_URL is not None
    return {"url": QDRANT_URL}


def _build(
    constructor: str,
    layout: Layout,
    location: str,
    tmp_path: Path,
    documents: list[Document],
    embeddings: HashEmbeddings,
) -> Iterator[QdrantVectorStore]:
    """A vector store made the langchain-qdrant way; yields it, then cleans up."""
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    connection = _connection(location, tmp_path)
    ids = [str(d.id) for d in documents]
    options: dict[str, Any] = dict(layout.options)  # keyword arguments of several types
    if constructor == "from_texts":
        store = QdrantVectorStore.from_texts(
            [d.page_content for d in documents],
            embeddings,
            metadatas=[d.metadata for d in documents],
            ids=ids,
            collection_name=collection,
            **connection,
            **options,
        )
    elif constructor == "add_documents":
        store = QdrantVectorStore.from_documents(
            documents[:1], embeddings, collection_name=collection, **connection, **options
        )
        store.add_documents(documents[1:])
    else:
        store = QdrantVectorStore.from_documents(
            documents, embeddings, collection_name=collection, **connection, **options
        )
        if constructor == "from_existing_collection":
            if location == "memory":
                # ":memory:" lives in one client: reattach through it, as an app would.
                store = QdrantVectorStore(
                    client=store.client, collection_name=collection, embedding=embeddings, **options
                )
            else:
                store.client.close()  # a local path is locked by one client at a time
                store = QdrantVectorStore.from_existing_collection(
                    collection_name=collection, embedding=embeddings, **connection, **options
                )
    try:
        yield store
    finally:
        if location == "server":
            store.client.delete_collection(collection)
        store.client.close()


@pytest.fixture(
    params=[(c, layout) for c in CONSTRUCTORS for layout in (DEFAULT, CUSTOM)],
    ids=lambda p: f"{p[0]}-{p[1].name}",
)
def made(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    documents: list[Document],
    embeddings: HashEmbeddings,
    location: str,
) -> Iterator[tuple[QdrantVectorStore, Layout]]:
    constructor, layout = request.param
    for store in _build(constructor, layout, location, tmp_path, documents, embeddings):
        yield store, layout


@pytest.fixture(params=LOCATIONS)
def location(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _everything(_: Mapping[str, Any]) -> bool:
    return True


def test_from_vectorstore_is_exact_on_every_langchain_qdrant_collection(
    made: tuple[QdrantVectorStore, Layout], policy: rg.Policy, reference: Any
) -> None:
    vectorstore, layout = made
    retriever = GuardedRetriever.from_vectorstore(vectorstore, policy, k=K)
    store = retriever.guard.store
    assert isinstance(store, rg.QdrantStore)
    assert (store.content_key, store.metadata_key) == (
        vectorstore.content_payload_key,
        vectorstore.metadata_payload_key,
    )
    # rg.QdrantStore reads the same collection directly too (docs/stores.md).
    direct = rg.QdrantStore(
        client=vectorstore.client,
        collection=vectorstore.collection_name,
        vector_name=layout.options.get("vector_name"),
    )
    assert direct.dim == DIM
    for subject in SUBJECTS:
        assert retriever.guard.plan(subject).exact  # the whole filter runs inside Qdrant
        bound = retriever.with_subject(subject)
        for question in QUESTIONS:
            got = [d.id for d in bound.invoke(question)]
            assert got == reference(policy, subject, question, _everything), (subject.id, question)


@pytest.mark.parametrize("layout", [DEFAULT, CUSTOM], ids=lambda layout: layout.name)
def test_caller_filters_async_batch_and_sixteen_threads_stay_exact(
    layout: Layout,
    location: str,
    tmp_path: Path,
    documents: list[Document],
    embeddings: HashEmbeddings,
    policy: rg.Policy,
    reference: Any,
) -> None:
    with contextlib.contextmanager(_build)(
        "from_documents", layout, location, tmp_path, documents, embeddings
    ) as vectorstore:
        retriever = GuardedRetriever.from_vectorstore(vectorstore, policy, k=K)
        key = layout.metadata_key
        filters: list[tuple[Any, Callable[[Mapping[str, Any]], bool]]] = [
            (None, _everything),
            ({"dept": "finance"}, lambda md: md.get("dept") == "finance"),
            (
                qm.Filter(must=[qm.FieldCondition(key=f"{key}.level", range=qm.Range(lte=1))]),
                lambda md: md.get("level", 99) <= 1,
            ),
            (
                qm.Filter(
                    should=[
                        qm.FieldCondition(
                            key=f"{key}.tenant", match=qm.MatchAny(any=["acme", "globex"])
                        )
                    ]
                ),
                lambda md: md.get("tenant") in ("acme", "globex"),
            ),
        ]
        expected: dict[tuple[str, str, int], list[str]] = {}
        checked = 0
        for subject in SUBJECTS:
            for question in QUESTIONS:
                for index, (caller_filter, narrow) in enumerate(filters):
                    want = reference(policy, subject, question, narrow)
                    expected[(subject.id, question, index)] = want
                    got = retriever.with_subject(subject).invoke(question, filter=caller_filter)
                    assert [d.id for d in got] == want, (subject.id, question, index)
                    checked += len(want)
        assert checked > len(SUBJECTS) * len(QUESTIONS) * K  # the filters leave real work

        # async and batch give the same answers
        async def run_async() -> list[list[str | None]]:
            calls = [
                retriever.with_subject(s).ainvoke(q, filter=filters[1][0])
                for s in SUBJECTS
                for q in QUESTIONS
            ]
            return [[d.id for d in docs] for docs in await asyncio.gather(*calls)]

        pairs = [(s, q) for s in SUBJECTS for q in QUESTIONS]
        assert asyncio.run(run_async()) == [expected[(s.id, q, 1)] for s, q in pairs]
        batched = retriever.batch(
            [q for _, q in pairs],
            config=[{"configurable": {"ragguard_subject": s}} for s, _ in pairs],
        )
        assert [[d.id for d in docs] for docs in batched] == [
            expected[(s.id, q, 0)] for s, q in pairs
        ]

        # 16 threads share the retriever, two per subject, mixing filters
        failures: list[Any] = []
        start = threading.Barrier(16)

        def worker(index: int) -> None:
            subject = SUBJECTS[index % len(SUBJECTS)]
            start.wait()
            for call in range(24):
                question = QUESTIONS[(call + index) % len(QUESTIONS)]
                which = (call + index) % len(filters)
                docs = retriever.invoke(
                    question,
                    config={"configurable": {"ragguard_subject": subject}},
                    filter=filters[which][0],
                )
                if [d.id for d in docs] != expected[(subject.id, question, which)]:
                    failures.append((subject.id, question, which))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []


def test_qdrant_store_names_the_vector_it_cannot_find(tmp_path: Path) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "named", vectors_config={"dense": qm.VectorParams(size=4, distance=qm.Distance.DOT)}
    )
    client.create_collection(
        "plain", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT)
    )
    with pytest.raises(rg.StoreError, match=r"has no unnamed vector '' \(it has \['dense'\]\)"):
        rg.QdrantStore(client=client, collection="named")
    assert rg.QdrantStore(client=client, collection="named", vector_name="dense").dim == 4
    with pytest.raises(rg.StoreError, match="only the unnamed vector"):
        rg.QdrantStore(client=client, collection="plain", vector_name="dense")
    assert rg.QdrantStore(client=client, collection="plain", vector_name="").dim == 4
