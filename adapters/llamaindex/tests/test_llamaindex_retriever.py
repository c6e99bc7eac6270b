"""GuardedRetriever as LlamaIndex uses it: BaseRetriever's contract, query engines, the
subject rule, concurrency, and pushdown on an existing LlamaIndex Qdrant collection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core import QueryBundle
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, TextNode
from qdrant_client import QdrantClient

import ragguard as rg
from ragguard.testing import HashEmbedder
from ragguard_llamaindex import DECISION_KEY, GuardedRetriever

SUBJECTS = [
    rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
    rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
    rg.Subject(id="nadia", attributes={"dept": "hr", "clearance": 2}),
    rg.Subject(id="carol", attributes={"clearance": 0}),
    rg.Subject(id="victor", attributes={"dept": "executive", "clearance": 3}),
    rg.Subject(id="anne", attributes={"dept": "hr", "clearance": 1}),
]
QUESTIONS = [
    "salary bands and compensation review",
    "deploy rollback runbook",
    "acquisition codename and board minutes",
]


class HashEmbedding(BaseEmbedding):
    """``ragguard.testing.HashEmbedder`` as a LlamaIndex ``BaseEmbedding``."""

    dim: int = 64

    def _get_query_embedding(self, query: str) -> list[float]:
        return HashEmbedder(dim=self.dim).embed_query(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return HashEmbedder(dim=self.dim).embed_query(text)


def _ids(nodes: Sequence[NodeWithScore]) -> list[str]:
    return [n.node.node_id for n in nodes]


def _expected(guard: rg.Guard, embedder: HashEmbedder, subject: rg.Subject, q: str) -> list[str]:
    return [h.id for h in guard.search(subject, embedder.embed_query(q), 4)]


def test_it_is_a_llamaindex_retriever_returning_the_guards_hits(
    li_guard: rg.Guard, embedder: HashEmbedder
) -> None:
    retriever = GuardedRetriever(li_guard, embed_model=HashEmbedding(), similarity_top_k=4)
    assert isinstance(retriever, BaseRetriever)
    bob = SUBJECTS[1]
    nodes = retriever.with_subject(bob).retrieve(QUESTIONS[2])
    assert _ids(nodes) == _expected(li_guard, embedder, bob, QUESTIONS[2])
    assert len(nodes) == 4
    for item in nodes:
        assert isinstance(item, NodeWithScore)
        assert isinstance(item.node, TextNode)
        decision = item.node.metadata[DECISION_KEY]
        assert decision["rule"].startswith("line ")
        assert decision["policy_version"] == li_guard.policy.version
        assert decision["provenance"]["status"] == "verified"
        assert decision["score"] == item.score
        assert "tenant" in item.node.metadata
        # the decision is not text for the LLM or the embedding model
        assert DECISION_KEY not in item.node.get_content(metadata_mode=MetadataMode.LLM)
        assert DECISION_KEY not in item.node.get_content(metadata_mode=MetadataMode.EMBED)
    # a QueryBundle, and one that carries its own embedding
    again = retriever.retrieve_for(bob, QueryBundle(QUESTIONS[2]))
    assert _ids(again) == _ids(nodes)
    bundle = QueryBundle("ignored text", embedding=embedder.embed_query(QUESTIONS[2]))
    assert _ids(retriever.retrieve_for(bob, bundle)) == _ids(nodes)


def test_a_query_engine_answers_from_guarded_nodes_only(
    li_guard: rg.Guard, embedder: HashEmbedder
) -> None:
    retriever = GuardedRetriever(li_guard, embed_model=embedder, similarity_top_k=3)
    carol, bob = SUBJECTS[3], SUBJECTS[1]
    for subject in (carol, bob):
        engine = RetrieverQueryEngine.from_args(retriever.with_subject(subject), llm=MockLLM())
        response = engine.query(QUESTIONS[2])
        assert [n.node.node_id for n in response.source_nodes] == _expected(
            li_guard, embedder, subject, QUESTIONS[2]
        )[:3]
        for source in response.source_nodes:
            assert li_guard.check(subject, source.node.metadata).released


def test_no_subject_is_refused_before_any_store_call(
    li_guard: rg.Guard, embedder: HashEmbedder
) -> None:
    calls: list[int] = []
    store = li_guard.store

    class Counting:
        """The real store, counting searches."""

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def search(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return store.search(*args, **kwargs)

    guard = rg.Guard(li_guard.policy, Counting())
    retriever = GuardedRetriever(guard, embed_model=embedder)
    with pytest.raises(rg.SubjectError, match="no subject"):
        retriever.retrieve(QUESTIONS[0])
    with pytest.raises(rg.SubjectError, match="no subject"):
        asyncio.run(retriever.aretrieve(QUESTIONS[0]))
    with pytest.raises(rg.SubjectError):
        retriever.retrieve_for("alice", QUESTIONS[0])  # type: ignore[arg-type]
    bound = retriever.with_subject(SUBJECTS[0])
    with pytest.raises(rg.SubjectError, match="bound to subject 'alice'"):
        bound.retrieve_for(SUBJECTS[1], QUESTIONS[0])
    assert calls == []
    assert bound.retrieve_for(SUBJECTS[0], QUESTIONS[0])  # the same subject is fine
    assert retriever.subject is None  # with_subject left the shared retriever unbound
    assert calls


def test_constructor_arguments_are_checked(li_guard: rg.Guard, embedder: HashEmbedder) -> None:
    with pytest.raises(TypeError, match="embed_model"):
        GuardedRetriever(li_guard, embed_model=object())
    with pytest.raises(ValueError, match="similarity_top_k"):
        GuardedRetriever(li_guard, embed_model=embedder, similarity_top_k=0)
    with pytest.raises(TypeError, match=r"ragguard\.Guard"):
        GuardedRetriever(object(), embed_model=embedder)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="QdrantVectorStore"):
        GuardedRetriever.from_vector_store(object(), li_guard.policy, embed_model=embedder)


def test_threads_and_tasks_with_different_subjects_never_mix(
    li_guard: rg.Guard, embedder: HashEmbedder
) -> None:
    retriever = GuardedRetriever(li_guard, embed_model=embedder, similarity_top_k=4)
    expected = {(s.id, q): _expected(li_guard, embedder, s, q) for s in SUBJECTS for q in QUESTIONS}
    assert len({tuple(v) for v in expected.values()}) > len(QUESTIONS)  # subjects differ
    failures: list[Any] = []
    start = threading.Barrier(len(SUBJECTS))

    def worker(index: int) -> None:
        subject = SUBJECTS[index]
        start.wait()
        for call in range(30):
            question = QUESTIONS[(call + index) % len(QUESTIONS)]
            nodes = (
                retriever.retrieve_for(subject, question)
                if call % 2
                else retriever.with_subject(subject).retrieve(question)
            )
            if _ids(nodes) != expected[(subject.id, question)]:
                failures.append((subject.id, question))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(SUBJECTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    async def tasks() -> list[tuple[str, str, list[str]]]:
        async def one(subject: rg.Subject, question: str) -> tuple[str, str, list[str]]:
            return subject.id, question, _ids(await retriever.aretrieve_for(subject, question))

        return await asyncio.gather(*(one(s, q) for s in SUBJECTS for q in QUESTIONS for _ in "ab"))

    for subject_id, question, ids in asyncio.run(tasks()):
        assert ids == expected[(subject_id, question)]


# -- an existing LlamaIndex Qdrant collection -----------------------------------------------

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
POLICY = "p, alice, legal, read\np, bob, hr, read\np, bob, ops, read\n"


def _llamaindex_collection(*, named: bool = False) -> tuple[Any, Any]:
    """A collection LlamaIndex writes: its default unnamed dense vector, or (as a hybrid
    collection has) the named ``text-dense`` one."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import models

    client = QdrantClient(":memory:")
    if named:
        client.create_collection(
            "li_docs",
            vectors_config={
                "text-dense": models.VectorParams(size=4, distance=models.Distance.COSINE)
            },
        )
    # index_doc_id=False: local mode has no payload indexes (qdrant-client warns)
    vector_store = QdrantVectorStore(client=client, collection_name="li_docs", index_doc_id=False)
    nodes: list[BaseNode] = [
        TextNode(
            id_=f"00000000-0000-0000-0000-00000000000{i}", text=text, metadata=md, embedding=vector
        )
        for i, (text, md, vector) in enumerate(
            [
                ("legal memo", {"dept": "legal", "tags": ["a", "b"]}, [1.0, 0, 0, 0]),
                ("hr memo", {"dept": "hr", "level": 2}, [0.9, 0.1, 0, 0]),
                ("ops memo", {"dept": "ops"}, [0, 1.0, 0, 0]),
                ("eng memo", {"dept": "eng"}, [1.0, 0.05, 0, 0]),
            ]
        )
    ]
    vector_store.add(nodes)
    return client, vector_store


@pytest.mark.parametrize("named", [False, True])
def test_from_vector_store_pushes_the_filter_into_llamaindexs_collection(named: bool) -> None:
    client, vector_store = _llamaindex_collection(named=named)
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    embed = {"memo": [1.0, 0, 0, 0]}

    class Table:
        def embed_query(self, text: str) -> list[float]:
            return embed[text]

        async def aembed_query(self, text: str) -> list[float]:
            return embed[text]

    retriever = GuardedRetriever.from_vector_store(vector_store, policy, embed_model=Table())
    store = retriever.guard.store
    assert isinstance(store, rg.QdrantStore)
    assert (store.collection, store.layout) == ("li_docs", "llamaindex")
    assert store.vector_name == ("text-dense" if named else None)
    pushdown = store.translate(retriever.guard.plan(rg.Subject(id="bob")).filter)
    assert pushdown.exact
    assert pushdown.native is not None  # the policy runs inside Qdrant
    nodes = retriever.retrieve_for(rg.Subject(id="bob"), "memo")
    assert [n.node.get_content() for n in nodes] == ["hr memo", "ops memo"]
    hr = nodes[0].node.metadata
    assert (hr["dept"], hr["level"], hr[DECISION_KEY]["rule"]) == (
        "hr",
        2,
        "line 2: p, bob, hr, read",
    )
    assert "_node_content" not in hr
    alice = retriever.retrieve_for(rg.Subject(id="alice"), "memo")
    assert [(n.node.get_content(), n.node.metadata["tags"]) for n in alice] == [
        ("legal memo", ["a", "b"])
    ]
    # the raw store search with the pushdown alone returns only bob's departments
    raw = store.search([1.0, 0, 0, 0], 10, pushdown)
    assert sorted(c.text or "" for c in raw) == ["hr memo", "ops memo"]
    client.close()


def test_chunks_ragguard_writes_in_the_llamaindex_layout_are_read_by_llamaindex() -> None:
    from llama_index.core.vector_stores import VectorStoreQuery

    client, vector_store = _llamaindex_collection()
    store = rg.QdrantStore(client=client, collection="li_docs", layout="llamaindex")
    store.upsert([rg.Chunk("new memo", {"dept": "legal"}, [0, 0, 1.0, 0], id="new")])
    [stored] = store.get(["new"])
    assert stored.metadata is not None
    assert (stored.text, stored.metadata["dept"]) == ("new memo", "legal")
    result = vector_store.query(
        VectorStoreQuery(query_embedding=[0, 0, 1.0, 0], similarity_top_k=1)
    )
    assert result.nodes is not None
    assert result.nodes[0].get_content() == "new memo"
    assert result.nodes[0].metadata["dept"] == "legal"
    with pytest.raises(rg.StoreError, match="LlamaIndex's layout keeps"):
        store.upsert([rg.Chunk("x", {"_node_content": "x"}, [0, 0, 1.0, 0], id="bad")])
    client.close()
