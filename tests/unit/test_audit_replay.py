"""Replay: recorded retrievals re-decided under another policy version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_audit_v1_records import _as_v1
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


def _withhold_everything(hit: rg.Hit) -> rg.ScreenResult:
    return rg.ScreenResult(True, "mentions a legal hold")


@pytest.mark.parametrize("version", [2, 1])
def test_chunks_a_screen_withheld_are_not_policy_changes(
    tmp_path: Path, store: InMemoryStore, version: int
) -> None:
    """A screen withheld chunks the policy allowed: replaying under the same (or any)
    policy must not report them as newly released (v1 records, key ``denied``, too)."""
    path = tmp_path / "audit.jsonl"
    hits = record_searches(path, store, EVERYTHING, screens=[_withhold_everything])
    assert hits == []
    if version == 1:
        _as_v1(path, None)
    assert {e.record.v for e in read_audit_records(path)} == {version}
    screened = [
        c.id
        for e in read_audit_records(path)
        for c in e.record.withheld
        if c.reason == "screen _withhold_everything: mentions a legal hold"
    ]
    assert screened
    report = replay(path, store, EVERYTHING, {"alice": ALICE})
    assert report.changes == []
    assert report.not_policy == len(screened)
    assert report.not_policy_reasons == {"screen": len(screened)}
    assert report.to_json()["not_policy_reasons"] == {"screen": len(screened)}
    assert any("screen" in line and "not a policy" in line for line in report.summary_lines())


def test_chunks_below_the_budgets_min_score_are_not_policy_changes(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """``min_score`` withholds chunks the policy allowed: not a policy decision either."""
    path = tmp_path / "audit.jsonl"
    budget = rg.ReleaseBudget(min_score=2.0)  # above every similarity: nothing qualifies
    assert record_searches(path, store, EVERYTHING, budget=budget) == []
    below = [
        c.id
        for e in read_audit_records(path)
        for c in e.record.withheld
        if (c.reason or "").startswith("release budget: score")
    ]
    assert below
    report = replay(path, store, EVERYTHING, {"alice": ALICE})
    assert report.changes == []
    assert report.not_policy_reasons == {"release budget": len(below)}


def test_chunks_over_the_release_budget_are_not_policy_changes(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """A search over budget withholds everything it would have released ("release budget
    exceeded"); under a narrower policy replay reports only the policy's own changes."""
    path = tmp_path / "audit.jsonl"
    policy = rg.Policy.from_casbin(MODEL, ENGINEERING_ONLY)
    budget = rg.ReleaseBudget(max_chunks=1, window_seconds=3600)
    with JsonlAuditLog(path) as audit:
        guard = rg.Guard(policy, store, audit=audit, budget=budget)
        with pytest.raises(rg.BudgetExceededError):
            guard.search(ALICE, EMBEDDER.embed_query(QUESTIONS[1]), k=6)
    [entry] = read_audit_records(path)
    over = {c.id for c in entry.record.withheld if c.reason == "release budget exceeded"}
    by_policy = {c.id for c in entry.record.withheld} - over
    assert over
    assert by_policy
    report = replay(path, store, EVERYTHING, {"alice": ALICE})
    newly_released = {c.chunk_id for c in report.newly_released}
    assert newly_released
    assert newly_released <= by_policy
    assert all(dept_of(chunk) != "engineering" for chunk in newly_released)
    assert report.newly_withheld == []
    assert report.not_policy_reasons == {"release budget": len(over)}


def test_a_policy_reason_about_a_field_named_screen_is_still_a_policy_denial() -> None:
    """Reasons are classified by the exact forms the guard writes: a policy's reason
    about a metadata field called ``screen`` is not mistaken for a screen's."""
    from ragguard.audit._replay import withheld_by

    assert withheld_by("screen {'a': 1} != {'b': 2}") is None
    assert withheld_by("screen 'x: y' != 'z'") is None
    assert withheld_by("screen == 'a: b' holds, which the policy excludes") is None
    assert withheld_by("release 3 != 4") is None
    assert withheld_by("deny line 2: p, anyone, hr, read, deny") is None
    assert withheld_by(None) is None
    assert withheld_by("screen secrets: contains an API key") == "screen"
    assert withheld_by("screen judge failed (TimeoutError); withheld") == "screen"
    assert withheld_by("screen judge returned dict, not a ScreenResult; withheld") == "screen"
    assert withheld_by("release budget exceeded") == "release budget"
    assert withheld_by("release budget unavailable") == "release budget"
    assert withheld_by("release budget: score 0.1000 below min_score 0.3") == "release budget"
    assert withheld_by("provenance: signature mismatch") == "provenance"
    assert withheld_by("malformed payload: no usable metadata") == "malformed payload"
    assert withheld_by("outside the caller's filter: dept 'x' != 'y'") == (
        "outside the caller's filter"
    )
