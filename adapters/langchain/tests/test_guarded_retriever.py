"""GuardedRetriever on a real EdgeStore: subjects, k, caller filters, documents, LCEL."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel
from qdrant_client import models as qm

import ragguard as rg
from ragguard.testing import HashEmbedder
from ragguard_langchain import GuardedRetriever

from lc_support import SUBJECTS

QUESTION = "what are the salary bands and the deploy rollback steps?"
ALICE, BOB, CAROL = SUBJECTS[0], SUBJECTS[1], SUBJECTS[3]


@pytest.fixture
def retriever(guard: rg.Guard, embedder: HashEmbedder) -> GuardedRetriever:
    return GuardedRetriever(guard=guard, embeddings=embedder, k=5)


def _config(subject: Any) -> RunnableConfig:
    return {"configurable": {"ragguard_subject": subject}}


def _expected(guard: rg.Guard, embedder: HashEmbedder, subject: rg.Subject, k: int) -> list[str]:
    return [hit.id for hit in guard.search(subject, embedder.embed_query(QUESTION), k)]


def _assert_readable(guard: rg.Guard, subject: rg.Subject, docs: list[Document]) -> None:
    for doc in docs:
        metadata = {key: value for key, value in doc.metadata.items() if key != "ragguard"}
        assert guard.check(subject, metadata).released, (subject.id, doc.id)


# -- who is asking ----------------------------------------------------------------------


def test_no_subject_anywhere_is_an_error_and_nothing_is_searched(
    retriever: GuardedRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the store must not be queried without a subject")

    monkeypatch.setattr(retriever.guard.store, "search", fail)
    with pytest.raises(rg.SubjectError, match="no subject"):
        retriever.invoke(QUESTION)
    with pytest.raises(rg.SubjectError, match="no subject"):
        retriever.batch([QUESTION, QUESTION])


async def test_no_subject_is_an_error_in_async_too(retriever: GuardedRetriever) -> None:
    with pytest.raises(rg.SubjectError, match="no subject"):
        await retriever.ainvoke(QUESTION)


def test_subject_from_config_constructor_and_with_subject_agree(
    retriever: GuardedRetriever, guard: rg.Guard, embedder: HashEmbedder
) -> None:
    expected = _expected(guard, embedder, ALICE, 5)
    assert len(expected) == 5
    by_config = retriever.invoke(QUESTION, config=_config(ALICE))
    bound = retriever.with_subject(ALICE)
    by_constructor = GuardedRetriever(guard=guard, embeddings=embedder, subject=ALICE, k=5)
    assert [d.id for d in by_config] == expected
    assert [d.id for d in bound.invoke(QUESTION)] == expected
    assert [d.id for d in by_constructor.invoke(QUESTION)] == expected


def test_with_subject_returns_a_new_retriever_and_never_mutates(
    retriever: GuardedRetriever,
) -> None:
    bound = retriever.with_subject(BOB)
    assert bound is not retriever
    assert retriever.subject is None
    assert bound.subject == BOB
    with pytest.raises(rg.SubjectError):
        retriever.invoke(QUESTION)
    with pytest.raises(Exception, match="frozen"):
        retriever.subject = ALICE


def test_subjects_of_different_tenants_get_disjoint_documents(
    retriever: GuardedRetriever, guard: rg.Guard
) -> None:
    alice_docs = retriever.invoke(QUESTION, config=_config(ALICE))
    carol_docs = retriever.invoke(QUESTION, config=_config(CAROL))
    assert {d.metadata["tenant"] for d in alice_docs} == {"acme"}
    assert {d.metadata["tenant"] for d in carol_docs} == {"globex"}
    _assert_readable(guard, ALICE, alice_docs)
    _assert_readable(guard, CAROL, carol_docs)


def test_a_subject_mapping_in_config_is_accepted(
    retriever: GuardedRetriever, guard: rg.Guard, embedder: HashEmbedder
) -> None:
    mapping = {"id": "alice", "attributes": {"dept": "engineering", "clearance": 1}}
    docs = retriever.invoke(QUESTION, config=_config(mapping))
    assert [d.id for d in docs] == _expected(guard, embedder, ALICE, 5)


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("alice", "must be a ragguard.Subject"),
        ({"id": "alice", "role": "admin"}, "not \\['role'\\]"),
        ({"id": ""}, "non-empty"),
        ({"id": "x", "attributes": {"clearance": {"nested": 1}}}, "attribute"),
    ],
)
def test_malformed_subjects_are_refused(
    retriever: GuardedRetriever, subject: Any, message: str
) -> None:
    with pytest.raises(rg.SubjectError, match=message):
        retriever.invoke(QUESTION, config=_config(subject))


def test_a_bound_retriever_refuses_another_subject_in_config(
    retriever: GuardedRetriever, guard: rg.Guard, embedder: HashEmbedder
) -> None:
    bound = retriever.with_subject(ALICE)
    with pytest.raises(rg.SubjectError, match=r"bound to subject 'alice'.*'bob'"):
        bound.invoke(QUESTION, config=_config(BOB))
    same = bound.invoke(QUESTION, config=_config(ALICE))
    assert [d.id for d in same] == _expected(guard, embedder, ALICE, 5)


def test_subject_given_twice_in_one_call_is_refused(retriever: GuardedRetriever) -> None:
    with pytest.raises(rg.SubjectError, match="given twice"):
        retriever.invoke(QUESTION, config=_config(ALICE), ragguard_subject=ALICE)


# -- k and caller filters --------------------------------------------------------------


def test_k_in_constructor_search_kwargs_and_per_call(
    guard: rg.Guard, embedder: HashEmbedder
) -> None:
    by_kwargs = GuardedRetriever(guard=guard, embeddings=embedder, search_kwargs={"k": 2})
    assert by_kwargs.k == 2
    assert len(by_kwargs.invoke(QUESTION, config=_config(BOB))) == 2
    assert len(by_kwargs.invoke(QUESTION, config=_config(BOB), k=7)) == 7
    with pytest.raises(ValueError, match="disagree"):
        GuardedRetriever(guard=guard, embeddings=embedder, k=3, search_kwargs={"k": 2})
    with pytest.raises(ValueError, match="unsupported search_kwargs"):
        GuardedRetriever(guard=guard, embeddings=embedder, search_kwargs={"fetch_k": 20})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        GuardedRetriever(guard=guard, embeddings=embedder, k=0)
    with pytest.raises(rg.QueryError, match="k must be between"):
        by_kwargs.invoke(QUESTION, config=_config(BOB), k=0)


@pytest.mark.parametrize(
    "caller_filter",
    [
        {"dept": "finance"},
        qm.Filter(
            must=[qm.FieldCondition(key="metadata.dept", match=qm.MatchValue(value="finance"))]
        ),
    ],
)
def test_a_caller_filter_narrows(
    guard: rg.Guard, embedder: HashEmbedder, caller_filter: Any
) -> None:
    retriever = GuardedRetriever(
        guard=guard, embeddings=embedder, k=5, search_kwargs={"filter": caller_filter}
    )
    docs = retriever.invoke(QUESTION, config=_config(BOB))
    assert len(docs) == 5
    assert {d.metadata["dept"] for d in docs} == {"finance"}
    _assert_readable(guard, BOB, docs)


@pytest.mark.parametrize(
    "widening",
    [
        {"tenant": "globex"},  # another tenant
        {"dept": "hr", "level": 3},  # a department alice has no grant for
        qm.Filter(
            should=[
                qm.FieldCondition(
                    key="metadata.tenant", match=qm.MatchAny(any=["acme", "globex", "initech"])
                )
            ]
        ),
        qm.Filter(must_not=[qm.FieldCondition(key="metadata.level", range=qm.Range(lte=1))]),
    ],
)
def test_a_caller_filter_never_widens(
    guard: rg.Guard, embedder: HashEmbedder, widening: Any
) -> None:
    retriever = GuardedRetriever(guard=guard, embeddings=embedder, k=50)
    docs = retriever.invoke(QUESTION, config=_config(ALICE), filter=widening)
    unfiltered = {d.id for d in retriever.invoke(QUESTION, config=_config(ALICE))}
    assert {d.id for d in docs} <= unfiltered
    _assert_readable(guard, ALICE, docs)


def test_constructor_and_per_call_filters_are_both_applied(
    guard: rg.Guard, embedder: HashEmbedder
) -> None:
    retriever = GuardedRetriever(
        guard=guard, embeddings=embedder, k=20, search_kwargs={"filter": {"dept": "finance"}}
    )
    docs = retriever.invoke(QUESTION, config=_config(BOB), filter={"level": 3})
    assert docs
    assert {(d.metadata["dept"], d.metadata["level"]) for d in docs} == {("finance", 3)}


@pytest.mark.parametrize(
    ("caller_filter", "message"),
    [
        (qm.Filter(must=[qm.HasIdCondition(has_id=[1])]), "HasIdCondition is not supported"),
        (
            qm.Filter(must=[qm.FieldCondition(key="dept", match=qm.MatchValue(value="x"))]),
            "metadata.<attribute>",
        ),
        (
            qm.Filter(must=[qm.FieldCondition(key="metadata.t", match=qm.MatchText(text="x"))]),
            "MatchText is not supported",
        ),
        (
            qm.Filter(must=[qm.FieldCondition(key="metadata.level", range=qm.Range())]),
            "at least one bound",
        ),
        ({"dept": {"$in": ["hr"]}}, "must be a string, number"),
        ("dept == 'hr'", "must be a qdrant_client.models.Filter or a dict"),
    ],
)
def test_unsupported_caller_filters_are_refused_not_approximated(
    retriever: GuardedRetriever, caller_filter: Any, message: str
) -> None:
    with pytest.raises(rg.QueryError, match=message):
        retriever.invoke(QUESTION, config=_config(BOB), filter=caller_filter)


def test_a_bad_constructor_filter_fails_at_construction(
    guard: rg.Guard, embedder: HashEmbedder
) -> None:
    with pytest.raises(rg.QueryError, match=r"metadata\.<attribute>"):
        GuardedRetriever(
            guard=guard,
            embeddings=embedder,
            search_kwargs={
                "filter": qm.Filter(must=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key="x"))])
            },
        )


# -- what comes back ---------------------------------------------------------------------


def test_documents_carry_id_and_the_decision(
    retriever: GuardedRetriever, guard: rg.Guard, embedder: HashEmbedder
) -> None:
    hits = guard.search(ALICE, embedder.embed_query(QUESTION), 5)
    docs = retriever.invoke(QUESTION, config=_config(ALICE))
    assert len(docs) == len(hits) == 5
    for doc, hit in zip(docs, hits, strict=True):
        assert doc.id == hit.id
        UUID(doc.id)  # the demo corpus' point ids
        assert doc.page_content == hit.text
        decision = doc.metadata["ragguard"]
        assert decision["rule"] == hit.decision.rule
        assert decision["rule"].startswith("line ")
        assert decision["score"] == pytest.approx(hit.score)
        assert decision["policy_version"] == guard.policy.version
        assert decision["provenance"]["status"] == "verified"
        assert decision["provenance"]["tag"]["source"] == doc.metadata["source"]
        assert decision["flags"] == []
        assert {k: v for k, v in doc.metadata.items() if k != "ragguard"} == dict(hit.metadata)


async def test_ainvoke_and_abatch_match_invoke(retriever: GuardedRetriever) -> None:
    sync_docs = retriever.invoke(QUESTION, config=_config(BOB))
    async_docs = await retriever.ainvoke(QUESTION, config=_config(BOB))
    assert [d.id for d in async_docs] == [d.id for d in sync_docs]
    batched = await retriever.abatch([QUESTION, QUESTION], config=[_config(BOB), _config(CAROL)])
    assert [d.id for d in batched[0]] == [d.id for d in sync_docs]
    assert {d.metadata["tenant"] for d in batched[1]} == {"globex"}


def test_batch_with_one_config_per_input(retriever: GuardedRetriever, guard: rg.Guard) -> None:
    results = retriever.batch([QUESTION] * 3, config=[_config(ALICE), _config(BOB), _config(CAROL)])
    for subject, docs in zip([ALICE, BOB, CAROL], results, strict=True):
        assert docs
        _assert_readable(guard, subject, docs)
    assert {d.metadata["tenant"] for d in results[2]} == {"globex"}


# -- inside LCEL -------------------------------------------------------------------------


class _RetrieverEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        self.events.append(("start", query))

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.events.append(("end", len(documents)))

    def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("error", type(error).__name__))


def test_works_in_an_lcel_chain_and_callbacks_see_the_run(retriever: GuardedRetriever) -> None:
    def titles(docs: list[Document]) -> list[str]:
        return [d.metadata["tenant"] for d in docs]

    chain = RunnableParallel(
        tenants=retriever | RunnableLambda(titles), question=RunnableLambda(lambda q: q)
    )
    events = _RetrieverEvents()
    out = chain.invoke(QUESTION, config={**_config(CAROL), "callbacks": [events]})
    assert out["question"] == QUESTION
    assert set(out["tenants"]) == {"globex"}
    assert events.events == [("start", QUESTION), ("end", 5)]

    failing = _RetrieverEvents()
    with pytest.raises(rg.SubjectError):
        chain.invoke(QUESTION, config={"callbacks": [failing]})
    assert failing.events == [("start", QUESTION), ("error", "SubjectError")]


def test_embeddings_must_embed(guard: rg.Guard) -> None:
    with pytest.raises(TypeError, match="lacks embed_query, aembed_query"):
        GuardedRetriever(guard=guard, embeddings=object())  # type: ignore[arg-type]


def test_screen_flags_reach_the_document(guard: rg.Guard, embedder: HashEmbedder) -> None:
    def flag_everything(hit: rg.Hit) -> rg.ScreenResult:
        return rg.ScreenResult(flagged=True, reason="reviewed", action="flag")

    screened = rg.Guard(guard.policy, guard.store, screens=[flag_everything])
    retriever = GuardedRetriever(guard=screened, embeddings=embedder, subject=BOB, k=2)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 2
    assert all(d.metadata["ragguard"]["flags"] == ["flag_everything: reviewed"] for d in docs)


# -- search parameters --------------------------------------------------------------------


async def test_search_params_from_search_kwargs_and_per_call_reach_the_guard(
    guard: rg.Guard, embedder: HashEmbedder
) -> None:
    from ragguard.testing import in_memory_tracing

    provider, exporter = in_memory_tracing()
    traced = rg.Guard(guard.policy, guard.store, tracer_provider=provider)
    retriever = GuardedRetriever(
        guard=traced, embeddings=embedder, k=5, search_kwargs={"search_params": {"hnsw_ef": 64}}
    )
    assert retriever.search_kwargs["search_params"] == rg.SearchParams(hnsw_ef=64)
    docs = retriever.invoke(QUESTION, config=_config(BOB))
    _assert_readable(guard, BOB, docs)
    exact = retriever.invoke(QUESTION, config=_config(BOB), search_params={"exact": True})
    assert [d.id for d in exact] == _expected(guard, embedder, BOB, 5)
    await retriever.ainvoke(
        QUESTION, config=_config(BOB), search_params=rg.SearchParams(hnsw_ef=300)
    )
    spans = exporter.get_finished_spans()
    assert [s.attributes.get("ragguard.search.hnsw_ef") for s in spans if s.attributes] == [
        64,
        None,
        300,
    ]
    assert [s.attributes.get("ragguard.search.exact") for s in spans if s.attributes] == [
        False,
        True,
        False,
    ]
    with pytest.raises(ValueError, match="hnsw_ef must be between"):
        GuardedRetriever(
            guard=guard, embeddings=embedder, search_kwargs={"search_params": {"hnsw_ef": 0}}
        )
    with pytest.raises(ValueError, match="search_params must be"):
        GuardedRetriever(guard=guard, embeddings=embedder, search_kwargs={"search_params": 64})
    with pytest.raises(rg.QueryError, match="search_params"):
        retriever.invoke(QUESTION, config=_config(BOB), search_params={"ef": 1})
