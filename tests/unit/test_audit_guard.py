"""The guard and its audit sink: one record per search, and audit_required fails closed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_tracing import ALICE, CORPUS, EMBEDDER, QUESTION, corpus_store

import ragguard as rg
from ragguard.audit import JsonlAuditLog, read_audit_records, verify_audit_log
from ragguard.results import ProvenanceVerdict
from ragguard.testing import FailingAuditSink, InMemoryStore, in_memory_tracing


@pytest.fixture(scope="module")
def store() -> InMemoryStore:
    return corpus_store()


@pytest.fixture
def policy(clearance_policy: rg.Policy) -> rg.Policy:
    return clearance_policy


class StatusByLevel:
    """A provenance verifier: level 0 unsigned, level 1 tampered, others verified."""

    def verify(self, text: str, metadata: Mapping[str, Any]) -> ProvenanceVerdict:
        level = metadata.get("level")
        if level == 0:
            return ProvenanceVerdict("unsigned", True, "no provenance tag")
        if level == 1:
            return ProvenanceVerdict("tampered", False, "text hash mismatch")
        return ProvenanceVerdict("verified", True)


def test_every_search_leaves_one_record_matching_what_was_returned(
    tmp_path: Path, store: InMemoryStore, policy: rg.Policy
) -> None:
    """Released ids in the record are the hits returned; denied are what was withheld."""
    provider, exporter = in_memory_tracing()
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=b"k") as audit:
        guard = rg.Guard(policy, store, audit=audit, tracer_provider=provider)
        results = [guard.search(ALICE, EMBEDDER.embed_query(q), k=3) for q in (QUESTION, "pay")]
    entries = list(read_audit_records(path))
    assert len(entries) == 2
    spans = exporter.get_finished_spans()
    for hits, entry, span in zip(results, entries, spans, strict=True):
        record = entry.record
        assert [c.id for c in record.released] == [h.id for h in hits]
        assert [c.rule for c in record.released] == [h.decision.rule for h in hits]
        denied_events = [e for e in span.events if e.name == "ragguard.chunk.withheld"]
        assert [c.id for c in record.withheld] == [
            e.attributes["ragguard.chunk.id"]  # type: ignore[index]
            for e in denied_events
        ]
        assert record.subject_digest == ALICE.fingerprint
        assert record.policy_version == policy.version
        assert record.k == 3
    assert verify_audit_log(path, key=b"k").ok


def test_audit_file_holds_no_chunk_text_and_no_query(
    tmp_path: Path, store: InMemoryStore, policy: rg.Policy
) -> None:
    """Nothing a user typed or a chunk said ends up in the audit file."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as audit:
        guard = rg.Guard(policy, store, audit=audit)
        guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=5)
    content = path.read_text()
    assert QUESTION not in content
    assert "billing service" not in content
    for doc in CORPUS:
        assert doc.text not in content
        assert doc.text[:40] not in content


def test_audit_required_turns_a_failed_write_into_an_error_and_releases_nothing(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """audit_required=True: no record, no results; the caller gets AuditError."""
    sink = FailingAuditSink()
    guard = rg.Guard(policy, store, audit=sink, audit_required=True)
    with pytest.raises(rg.AuditError, match="nothing released"):
        guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)
    assert sink.calls == 1


def test_audit_required_with_a_closed_log_fails_closed(
    tmp_path: Path, store: InMemoryStore, policy: rg.Policy
) -> None:
    """A closed JsonlAuditLog is a failed write like any other."""
    audit = JsonlAuditLog(tmp_path / "audit.jsonl")
    audit.close()
    guard = rg.Guard(policy, store, audit=audit, audit_required=True)
    with pytest.raises(rg.AuditError):
        guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)


async def test_audit_required_holds_for_async_searches(
    store: InMemoryStore, policy: rg.Policy
) -> None:
    """asearch fails closed on a failed audit write too."""
    guard = rg.Guard(policy, store, audit=FailingAuditSink(), audit_required=True)
    with pytest.raises(rg.AuditError):
        await guard.asearch(ALICE, EMBEDDER.embed_query(QUESTION), k=3)


def test_audit_failure_is_traced_and_logged_when_not_required(
    store: InMemoryStore, policy: rg.Policy, caplog: pytest.LogCaptureFixture
) -> None:
    """audit_required=False: hits are returned, the failure is logged and on the span."""
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, audit=FailingAuditSink(), tracer_provider=provider)
    with caplog.at_level(logging.WARNING, logger="ragguard"):
        hits = guard.search(ALICE, EMBEDDER.embed_query(QUESTION), k=3)
    assert len(hits) == 3
    assert "audit write failed" in caplog.text
    [span] = exporter.get_finished_spans()
    [failure] = [e for e in span.events if e.name == "ragguard.audit.failed"]
    assert (failure.attributes or {})["error.type"] == "OSError"


def test_provenance_results_are_recorded_per_chunk(
    tmp_path: Path, store: InMemoryStore, policy: rg.Policy
) -> None:
    """Released chunks carry their provenance status; tampered ones are denied with it."""
    path = tmp_path / "audit.jsonl"
    bob = rg.Subject(id="bob", attributes={"tenant": "acme", "clearance": 3})
    with JsonlAuditLog(path) as audit:
        guard = rg.Guard(policy, store, audit=audit, provenance=StatusByLevel())
        guard.search(bob, EMBEDDER.embed_query(QUESTION), k=8)
    [entry] = read_audit_records(path)
    statuses = {c.provenance for c in entry.record.released}
    assert statuses <= {"unsigned", "verified"}
    assert statuses
    tampered = [c for c in entry.record.withheld if c.provenance == "tampered"]
    assert tampered
    assert all(c.reason == "provenance: text hash mismatch" for c in tampered)
