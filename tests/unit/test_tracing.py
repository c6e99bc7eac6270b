"""Spans: one per search, one event per considered chunk, and no content unless asked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import ragguard as rg
from ragguard.audit import JsonlAuditLog, read_audit_records
from ragguard.stores import StoreCapabilities
from ragguard.stores.base import Pushdown
from ragguard.testing import HashEmbedder, InMemoryStore, in_memory_tracing, sample_corpus
from ragguard.tracing import RetrievalTracer, pseudonymize

DIM = 128
QUESTION = "how do I restart the billing service safely after a bad deploy"
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme", "clearance": 1})


def list_store(**failure: Any) -> InMemoryStore:
    """An exact in-memory store that pushes nothing down (the guard's re-check decides);
    ``failure``: InMemoryStore's ``fail_on``/``error``."""
    return InMemoryStore(DIM, pushdown="none", **failure)


EMBEDDER = HashEmbedder(dim=DIM)
CORPUS = sample_corpus()


def corpus_store(store: InMemoryStore | None = None) -> InMemoryStore:
    """The sample corpus in a store."""
    store = list_store() if store is None else store
    vectors = EMBEDDER.embed_documents([doc.text for doc in CORPUS])
    store.upsert(doc.to_chunk(vector) for doc, vector in zip(CORPUS, vectors, strict=True))
    return store


@pytest.fixture(scope="module")
def store() -> InMemoryStore:
    return corpus_store()


@pytest.fixture
def policy(clearance_policy: rg.Policy) -> rg.Policy:
    return clearance_policy


def all_strings(span: ReadableSpan) -> list[str]:
    """Every string a span would export: name, status, attributes, event names and attributes."""
    strings = [span.name, span.status.description or ""]
    attribute_sets = [span.attributes or {}] + [event.attributes or {} for event in span.events]
    strings += [event.name for event in span.events]
    for attributes in attribute_sets:
        for key, value in attributes.items():
            strings.append(key)
            values = value if isinstance(value, (list, tuple)) else [value]
            strings += [str(v) for v in values]
    return strings


def test_one_span_per_search_with_the_retrieval_attributes(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """Each search makes exactly one ragguard.retrieve span with GenAI retrieval naming."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider)
    vector = EMBEDDER.embed_query(QUESTION)
    guard.search(ALICE, vector, k=3)
    guard.search(ALICE, vector, k=5)
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["ragguard.retrieve", "ragguard.retrieve"]
    first = spans[0]
    assert first.kind is SpanKind.INTERNAL
    attributes = first.attributes or {}
    assert attributes["gen_ai.operation.name"] == "retrieval"
    assert attributes["gen_ai.request.top_k"] == 3.0
    assert attributes["enduser.id"] == "alice"
    assert attributes["ragguard.policy.version"] == policy.version
    assert attributes["ragguard.plan.kind"] == "conditional"
    assert attributes["ragguard.plan.exact"] is False
    assert attributes["ragguard.plan.digest"] == guard.plan(ALICE).digest
    assert first.status.status_code is StatusCode.UNSET


def test_one_event_per_considered_chunk_and_counts_equal_the_hits(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """Released events are exactly the returned hits; denied events the withheld chunks."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider)
    hits = guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=4)
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    released = [e for e in span.events if e.name == "ragguard.chunk.released"]
    denied = [e for e in span.events if e.name == "ragguard.chunk.withheld"]
    assert len(hits) == 4
    assert attributes["ragguard.released.count"] == len(hits) == len(released)
    assert attributes["ragguard.withheld.count"] == len(denied) > 0
    assert len(span.events) == len(released) + len(denied)
    assert [e.attributes["ragguard.chunk.id"] for e in released] == [h.id for h in hits]  # type: ignore[index]
    assert [e.attributes["ragguard.rule"] for e in released] == [h.decision.rule for h in hits]  # type: ignore[index]
    assert [e.attributes["ragguard.chunk.score"] for e in released] == [h.score for h in hits]  # type: ignore[index]
    assert all(e.attributes["ragguard.reason"] for e in denied)  # type: ignore[index]
    assert attributes["ragguard.fetch.rounds"] >= 1  # type: ignore[operator]


def test_no_chunk_text_or_query_text_anywhere_in_spans_by_default(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """Search every exported string of every span for the corpus texts and the question."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider)
    bob = rg.Subject(id="bob", attributes={"tenant": "globex", "clearance": 3})
    for subject in (ALICE, bob):
        for question in (QUESTION, "salary bands for senior engineers"):
            guard.search(subject, EMBEDDER.embed_query(question), k=5)
    texts = [doc.text for doc in CORPUS]
    strings = [s for span in exporter.get_finished_spans() for s in all_strings(span)]
    assert len(exporter.get_finished_spans()) == 4
    for value in strings:
        assert value not in (QUESTION, "salary bands for senior engineers")
        assert "restart the billing" not in value
        if len(value) >= 16:
            assert not any(value in text or text in value for text in texts), value


def test_capture_content_opts_in_to_chunk_text(store: InMemoryStore, policy: rg.Policy) -> None:
    """With capture_content=True each event carries the chunk text, and the span the list."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider, capture_content=True)
    hits = guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=2)
    [span] = exporter.get_finished_spans()
    released = [e for e in span.events if e.name == "ragguard.chunk.released"]
    assert [e.attributes["ragguard.chunk.text"] for e in released] == [h.text for h in hits]  # type: ignore[index]
    documents = json.loads(str((span.attributes or {})["gen_ai.retrieval.documents"]))
    assert documents == [{"id": h.id, "score": h.score} for h in hits]


def test_a_failed_search_sets_error_status_type_and_exception_event(policy: rg.Policy) -> None:
    """A store failure marks the span as an error with error.type and the exception."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(
        policy,
        corpus_store(list_store(fail_on={"search": 1}, error=ConnectionError("store unreachable"))),
        tracer_provider=provider,
    )
    with pytest.raises(rg.StoreError):
        guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ragguard.exceptions.StoreError"
    assert [e.name for e in span.events] == ["exception"]


def test_a_deny_all_plan_traces_an_empty_retrieval(store: InMemoryStore, policy: rg.Policy) -> None:
    """A subject the policy grants nothing gets a span with zero counts and no events."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider, action="write")
    assert guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3) == []
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["ragguard.plan.kind"] == "deny_all"
    assert attributes["ragguard.released.count"] == 0
    assert attributes["ragguard.fetch.rounds"] == 0
    assert span.events == ()


def test_pseudonymised_subject_ids_never_export_the_id(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """With a pseudonymisation key the span has enduser.pseudo.id and the id appears nowhere."""
    provider, exporter = in_memory_tracing()
    tracer = RetrievalTracer(provider, pseudonymize_key=b"trace-key")
    with tracer.retrieval(ALICE, 5):
        pass
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["enduser.pseudo.id"] == pseudonymize("alice", b"trace-key")
    assert "enduser.id" not in attributes
    assert "alice" not in all_strings(span)
    assert pseudonymize("alice", b"trace-key") != pseudonymize("alice", b"other-key")
    assert len(pseudonymize("alice", b"trace-key")) == 32


def test_guard_pseudonymises_subject_ids_on_request(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """Guard(pseudonymize_subject_key=...) exports pseudonyms instead of subject ids."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider, pseudonymize_subject_key=b"k")
    guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=2)
    [span] = exporter.get_finished_spans()
    assert (span.attributes or {})["enduser.pseudo.id"] == pseudonymize("alice", b"k")
    assert "alice" not in all_strings(span)


def test_store_names_become_data_source_attributes() -> None:
    """A store's db_system_name and collection become db.* and gen_ai.data_source.id."""
    provider, exporter = in_memory_tracing()

    class NamedStore(InMemoryStore):
        @property
        def capabilities(self) -> StoreCapabilities:
            return StoreCapabilities(db_system_name="qdrant", collection="docs")

    tracer = RetrievalTracer(provider, data_source=NamedStore(DIM))
    with tracer.retrieval(ALICE, 5):
        pass
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["db.system.name"] == "qdrant"
    assert attributes["db.collection.name"] == "docs"
    assert attributes["gen_ai.data_source.id"] == "docs"


def test_span_decision_id_is_the_audit_record_id(
    tmp_path: Path, store: InMemoryStore, policy: rg.Policy
) -> None:
    """ragguard.decision.id joins a trace to its audit record."""
    provider, exporter = in_memory_tracing()
    with JsonlAuditLog(tmp_path / "audit.jsonl") as audit:
        guard = rg.Guard(policy, store, tracer_provider=provider, audit=audit)
        guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=2)
    [span] = exporter.get_finished_spans()
    [entry] = read_audit_records(tmp_path / "audit.jsonl")
    assert (span.attributes or {})["ragguard.decision.id"] == entry.record.decision_id


def test_a_failing_exporter_never_fails_a_search(store: InMemoryStore, policy: rg.Policy) -> None:
    """Exporter errors stay inside OpenTelemetry; the caller still gets its hits."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

    class BrokenExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> Any:
            raise RuntimeError("collector down")

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(BrokenExporter()))
    guard = rg.Guard(policy, store, tracer_provider=provider)
    assert len(guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)) == 3


def test_no_tracer_provider_means_no_spans_and_no_cost(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """Without a provider (and none installed globally) searches work and build no span:
    the tracer hands out one shared non-recording context and touches no OTel context."""
    guard = rg.Guard(policy, store)
    tracer = guard._tracer
    assert tracer.recording() is False
    assert tracer.retrieval(ALICE, 3) is tracer.retrieval(ALICE, 3)
    assert len(guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)) == 3


def test_a_noop_provider_never_writes_to_the_callers_span(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """A guard told not to trace (NoOp provider) inside an application's recording span
    leaves that span as it was: no ragguard attributes or events on someone else's span."""
    from opentelemetry.trace import NoOpTracerProvider

    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=NoOpTracerProvider())
    with provider.get_tracer("app").start_as_current_span("app.request"):
        assert len(guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)) == 3
    [span] = exporter.get_finished_spans()
    assert span.name == "app.request"
    assert not any(key.startswith(("ragguard.", "gen_ai.")) for key in span.attributes or {})
    assert not span.events


def test_a_global_provider_set_later_is_used_from_the_next_search() -> None:
    """tracer_provider=None follows the global provider: set after the guard was made
    (as applications often do), the next search records its span. In a fresh process:
    OpenTelemetry lets the global provider be set once."""
    import subprocess
    import sys
    import textwrap

    program = textwrap.dedent(
        """
        import ragguard as rg
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from ragguard.testing import HashEmbedder, InMemoryStore, sample_corpus

        embedder = HashEmbedder(dim=32)
        store = InMemoryStore(32, pushdown="none")
        docs = sample_corpus()
        vectors = embedder.embed_documents([d.text for d in docs])
        store.upsert(d.to_chunk(v) for d, v in zip(docs, vectors))
        policy = rg.Policy.from_casbin(
            "[request_definition]\\nr = sub, obj, act\\n[policy_definition]\\np = sub, act\\n"
            "[policy_effect]\\ne = some(where (p.eft == allow))\\n"
            "[matchers]\\nm = r.act == p.act\\n",
            "p, anyone, read\\n",
        )
        guard = rg.Guard(policy, store)
        alice = rg.Subject(id="alice")
        query = embedder.embed_query("billing")
        guard.search(alice, query, k=2)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        guard.search(alice, query, k=2)
        names = [span.name for span in exporter.get_finished_spans()]
        print(names)
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['ragguard.retrieve']"


def test_empty_pseudonymisation_key_is_rejected() -> None:
    """An empty key would make pseudonyms trivially reversible by anyone: refused."""
    with pytest.raises(ValueError, match="empty"):
        RetrievalTracer(None, pseudonymize_key=b"")


# -- errors carry no query or chunk content into spans -----------------------------------

SECRET_QUERY = "salary of bob smith"


def echoing_store() -> InMemoryStore:
    """A store whose failure quotes a query and what it holds (a careless client
    library), as third-party exceptions may."""
    error = ValueError(f"bad request [0.1, 0.2, 0.3] near chunk {CORPUS[0].text!r}")
    return list_store(fail_on={"search": 1}, error=error)


def _exception_strings(span: ReadableSpan) -> list[str]:
    """Every exported string, the exception event's stack trace included."""
    return all_strings(span)


@pytest.mark.parametrize(
    "vector",
    [SECRET_QUERY, [SECRET_QUERY] * DIM, [0.5] * (DIM - 1) + [SECRET_QUERY], (SECRET_QUERY,)],
    ids=["str", "list of str", "one str item", "tuple"],
)
def test_a_query_string_passed_as_vector_stays_out_of_the_error_and_span(
    store: InMemoryStore, policy: rg.Policy, vector: Any
) -> None:
    """Regression: the QueryError quoted numpy's message, "could not convert string to
    float: 'salary of bob smith'", and the span recorded it (event, status)."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, tracer_provider=provider)
    with pytest.raises(rg.QueryError, match="not a sequence of numbers") as raised:
        guard.search(ALICE, vector, k=3)
    assert "bob" not in str(raised.value)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    [event] = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"] == "ragguard.exceptions.QueryError"
    assert "not a sequence of numbers" in str((event.attributes or {})["exception.message"])
    for value in _exception_strings(span):
        assert "bob smith" not in value, value
        assert "salary" not in value, value


def test_the_error_names_what_to_do_with_a_query_string(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """A str instead of a vector: the message says to embed it first, and a str item is
    named by position and type."""
    guard = rg.Guard(policy, store)
    with pytest.raises(rg.QueryError, match="embed the query text first"):
        guard.search(ALICE, SECRET_QUERY, k=3)  # type: ignore[arg-type]
    with pytest.raises(rg.QueryError, match="item 2 is a str"):
        guard.search(ALICE, [0.1, 0.2, SECRET_QUERY], k=3)  # type: ignore[list-item]


def test_a_store_failure_quoting_content_stays_out_of_the_span(policy: rg.Policy) -> None:
    """A foreign store exception's message (here quoting the vector and a chunk) is kept on
    the StoreError's cause, not in its message, the span's event or its status."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, corpus_store(echoing_store()), tracer_provider=provider)
    vector = EMBEDDER.embed_query(QUESTION)
    with pytest.raises(rg.StoreError, match="ValueError") as raised:
        guard.search(ALICE, vector, k=3)
    assert "bad request" in str(raised.value.__cause__)  # for logs, not for traces
    assert "bad request" not in str(raised.value)
    [span] = exporter.get_finished_spans()
    for value in _exception_strings(span):
        assert "bad request" not in value, value
        assert CORPUS[0].text[:20] not in value, value
        assert repr(vector[0]) not in value, value


def test_a_foreign_exception_is_recorded_by_type_only(policy: rg.Policy) -> None:
    """An exception outside ragguard's tree (a bug, a callback) may carry anything: the
    span records its type, not its message, unless capture_content=True."""

    class Interrupted(BaseException):
        """Escapes the guard's store error handling (like KeyboardInterrupt)."""

    for capture in (False, True):
        provider, exporter = in_memory_tracing()
        error = Interrupted(f"interrupted while searching for {SECRET_QUERY!r}")
        store = corpus_store(list_store(fail_on={"search": 1}, error=error))
        guard = rg.Guard(policy, store, tracer_provider=provider, capture_content=capture)
        with pytest.raises(Interrupted):
            guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)
        [span] = exporter.get_finished_spans()
        assert str((span.attributes or {})["error.type"]).endswith("Interrupted")
        assert span.status.status_code is StatusCode.ERROR
        leaked = any("bob smith" in value for value in _exception_strings(span))
        assert leaked is capture


def test_capture_content_keeps_foreign_messages_for_debugging(policy: rg.Policy) -> None:
    """Opted in, the store's own message is in the StoreError and on the span."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(
        policy, corpus_store(echoing_store()), tracer_provider=provider, capture_content=True
    )
    with pytest.raises(rg.StoreError, match="ValueError: bad request"):
        guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)
    [span] = exporter.get_finished_spans()
    assert any("bad request" in value for value in _exception_strings(span))


def test_a_store_given_a_query_string_does_not_quote_it() -> None:
    """The stores' own vector check names types only (StoreError, no query text)."""
    from qdrant_client import QdrantClient

    store = rg.QdrantStore.create(QdrantClient(":memory:"), "docs", dim=4)
    for vector in (SECRET_QUERY, [0.1, 0.2, 0.3, SECRET_QUERY]):
        with pytest.raises(rg.StoreError, match="not a sequence of numbers") as raised:
            store.search(vector, 3, Pushdown(native=None, exact=True))  # type: ignore[arg-type]
        assert "bob" not in str(raised.value)
    store.close()


def test_a_failing_audit_sink_is_named_by_type_only(
    store: InMemoryStore, policy: rg.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    """An audit sink's exception (it was handed the hits, text included) is not quoted in
    the AuditError, the span or the warning log."""

    class LeakySink:
        def record(self, retrieval: rg.Retrieval) -> None:
            raise ValueError(f"cannot write {retrieval.released[0].text!r}")

    vector = EMBEDDER.embed_query(QUESTION)
    provider, exporter = in_memory_tracing()
    required = rg.Guard(
        policy, store, audit=LeakySink(), audit_required=True, tracer_provider=provider
    )
    with pytest.raises(rg.AuditError, match="ValueError") as raised:
        required.search(ALICE, vector, k=2)
    assert "cannot write" not in str(raised.value)
    [span] = exporter.get_finished_spans()
    assert not any("cannot write" in value for value in _exception_strings(span))
    optional = rg.Guard(policy, store, audit=LeakySink())
    with caplog.at_level("WARNING", logger="ragguard"):
        assert optional.search(ALICE, vector, k=2)
    assert "audit write failed (ValueError" in caplog.text
    assert "cannot write" not in caplog.text
