"""Replay: recorded retrievals re-decided under another policy version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_tracing import CORPUS, EMBEDDER, corpus_store

import ragguard as rg
from ragguard.audit import JsonlAuditLog, read_audit_records, replay_audit_log
from ragguard.results import ProvenanceVerdict
from ragguard.testing import InMemoryStore

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.obj.tenant == r.sub.tenant && r.obj.level <= r.sub.clearance && (p.dept == "*" || r.obj.dept == p.dept) && r.act == p.act
"""
EVERYTHING = "p, anyone, *, read, allow\n"
NO_HR = EVERYTHING + "p, anyone, hr, read, deny\n"
ENGINEERING_ONLY = "p, anyone, engineering, read, allow\n"
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme", "clearance": 3})
QUESTIONS = ("salary bands and compensation review", "restart the billing service", "hiring plan")


@pytest.fixture(scope="module")
def store() -> InMemoryStore:
    return corpus_store()


def record_searches(
    path: Path, store: InMemoryStore, policy_text: str, **guard: Any
) -> list[rg.Hit]:
    """Run the questions as alice under ``policy_text``, audited to ``path``."""
    policy = rg.Policy.from_casbin(MODEL, policy_text)
    hits: list[rg.Hit] = []
    with JsonlAuditLog(path) as audit:
        rg_guard = rg.Guard(policy, store, audit=audit, **guard)
        for question in QUESTIONS:
            hits += rg_guard.search(ALICE, EMBEDDER.embed_query(question), k=6)
    return hits


def replay(path: Path, store: Any, policy_text: str, subjects: Mapping[str, rg.Subject]) -> Any:
    """Replay the log at ``path`` under ``policy_text``."""
    policy = rg.Policy.from_casbin(MODEL, policy_text)
    return replay_audit_log(read_audit_records(path), policy, store, subjects)


def dept_of(chunk_id: str) -> object:
    """The department of a corpus chunk."""
    return next(doc.metadata["dept"] for doc in CORPUS if doc.id == chunk_id)


def test_a_narrower_policy_reports_what_would_now_be_withheld(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """Adding a deny line for hr: exactly the released hr chunks flip to withheld."""
    path = tmp_path / "audit.jsonl"
    hits = record_searches(path, store, EVERYTHING)
    released_hr = {h.id for h in hits if h.metadata["dept"] == "hr"}
    assert released_hr
    report = replay(path, store, NO_HR, {"alice": ALICE})
    assert report.records == len(QUESTIONS)
    assert {c.chunk_id for c in report.newly_withheld} == released_hr
    assert report.newly_released == []
    assert all(c.after_detail.startswith("deny line 2") for c in report.newly_withheld)
    assert report.policy_version == rg.Policy.from_casbin(MODEL, NO_HR).version


def test_a_wider_policy_reports_what_would_now_be_released(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """Withheld-by-policy chunks the wider policy allows show up as newly released."""
    path = tmp_path / "audit.jsonl"
    record_searches(path, store, ENGINEERING_ONLY)
    report = replay(path, store, EVERYTHING, {"alice": ALICE})
    assert report.newly_released
    assert all(dept_of(c.chunk_id) != "engineering" for c in report.newly_released)
    assert all(c.before == "withheld" for c in report.newly_released)
    assert report.newly_withheld == []


def test_the_same_policy_changes_nothing(tmp_path: Path, store: InMemoryStore) -> None:
    """Replaying under the recorded policy reproduces every decision."""
    path = tmp_path / "audit.jsonl"
    record_searches(path, store, NO_HR)
    report = replay(path, store, NO_HR, {"alice": ALICE})
    assert report.changes == []
    assert report.chunks > 0


def test_subjects_without_attributes_are_skipped_and_reported(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """The log holds only a digest of the attributes: without them, replay skips, loudly."""
    path = tmp_path / "audit.jsonl"
    record_searches(path, store, EVERYTHING)
    report = replay(path, store, NO_HR, {})
    assert report.records == 0
    assert report.skipped == {"alice": len(QUESTIONS)}
    assert any("no attributes supplied" in line for line in report.summary_lines())


def test_changed_attributes_are_flagged_but_replayed(tmp_path: Path, store: InMemoryStore) -> None:
    """Supplied attributes that do not match the recorded digest are used, and noted."""
    path = tmp_path / "audit.jsonl"
    record_searches(path, store, EVERYTHING)
    demoted = rg.Subject(id="alice", attributes={"tenant": "acme", "clearance": 0})
    report = replay(path, store, EVERYTHING, {"alice": demoted})
    assert report.attributes_changed == {"alice"}
    assert report.newly_withheld
    assert all("level" in (c.after_detail or "") for c in report.newly_withheld)


def test_chunks_gone_from_the_store_are_reported_missing(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """A recorded chunk the store no longer holds is listed, not silently dropped."""
    path = tmp_path / "audit.jsonl"
    hits = record_searches(path, store, EVERYTHING)
    gone = hits[0].id

    forgetful = corpus_store()
    forgetful.delete([gone])
    report = replay(path, forgetful, NO_HR, {"alice": ALICE})
    assert gone in {chunk for _, chunk in report.missing}


def test_provenance_denials_stay_denied(tmp_path: Path, store: InMemoryStore) -> None:
    """A chunk withheld for bad provenance is not released by a wider policy."""

    class RejectEverything:
        def verify(self, text: str, metadata: Mapping[str, Any]) -> ProvenanceVerdict:
            return ProvenanceVerdict("tampered", False, "signature mismatch")

    path = tmp_path / "audit.jsonl"
    record_searches(path, store, EVERYTHING, provenance=RejectEverything())
    report = replay(path, store, EVERYTHING, {"alice": ALICE})
    assert report.changes == []
    assert report.not_policy > 0
    assert report.to_json()["not_policy"] == report.not_policy


def test_a_failing_store_is_a_store_error(tmp_path: Path, store: InMemoryStore) -> None:
    """Replay cannot guess metadata: a store failure stops it with StoreError."""
    path = tmp_path / "audit.jsonl"
    record_searches(path, store, EVERYTHING)

    down = InMemoryStore(store.dim, fail_on={"get": 1}, error=ConnectionError("store down"))
    with pytest.raises(rg.StoreError, match="replay"):
        replay(path, down, NO_HR, {"alice": ALICE})


def test_chunks_outside_the_callers_filter_stay_withheld(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """A chunk withheld by where= (not by the policy) is not reported as newly released:
    the caller did not ask for it."""
    path = tmp_path / "audit.jsonl"
    policy = rg.Policy.from_casbin(MODEL, EVERYTHING)
    with JsonlAuditLog(path) as audit:
        guard = rg.Guard(policy, store, audit=audit)
        for question in QUESTIONS:
            guard.search(ALICE, EMBEDDER.embed_query(question), k=6, where={"dept": "hr"})
    [denied_reasons] = [
        {d.reason for d in entry.record.withheld} for entry in list(read_audit_records(path))[:1]
    ]
    assert any(
        reason and reason.startswith("outside the caller's filter") for reason in denied_reasons
    )
    report = replay(path, store, EVERYTHING, {"alice": ALICE})
    assert report.changes == []
    assert report.not_policy > 0
