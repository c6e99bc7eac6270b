"""Audit records written before the rename (schema v1, key ``denied``) stay readable.

Version 2 records name the chunks the guard withheld ``withheld``; version 1 records
called them ``denied``. The chain hash covers each line's own bytes, so an old record
verifies as written, and every reader presents its chunks as ``AuditRecord.withheld``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_audit_log import KEY, MODEL, POLICY, make_retrieval

import ragguard as rg
from ragguard.audit import (
    AuditRecord,
    JsonlAuditLog,
    export_records,
    read_audit_records,
    replay_audit_log,
    verify_audit_log,
)
from ragguard.audit._record import GENESIS_HASH, canonical_json, chain_hash, record_line


def _as_v1(path: Path, key: bytes | None) -> list[dict[str, object]]:
    """Rewrite a v2 log as the v1 writer wrote it: key ``denied``, ``v: 1``, re-chained."""
    out: list[bytes] = []
    bodies: list[dict[str, object]] = []
    prev = GENESIS_HASH
    for line in path.read_text().splitlines():
        body = json.loads(line)
        del body["hash"]
        body["denied"] = body.pop("withheld")
        body["v"] = 1
        body["prev_hash"] = prev
        canonical = canonical_json(body)
        prev = chain_hash(canonical, key)
        out.append(record_line(canonical, prev))
        bodies.append(body)
    path.write_bytes(b"".join(out))
    return bodies


def test_new_records_name_withheld_chunks_withheld(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as log:
        log.record(make_retrieval(withheld=2))
    [body] = [json.loads(line) for line in path.read_text().splitlines()]
    assert body["v"] == 2
    assert "denied" not in body
    assert [c["reason"] for c in body["withheld"]] == ["dept 'hr' != 'eng'"] * 2


@pytest.mark.parametrize("key", [None, KEY])
def test_v1_records_verify_read_and_export(tmp_path: Path, key: bytes | None) -> None:
    path = tmp_path / "audit.jsonl"
    retrievals = [make_retrieval(withheld=3), make_retrieval("bob", released=0, withheld=2)]
    with JsonlAuditLog(path, key=key) as log:
        for retrieval in retrievals:
            log.record(retrieval)
    bodies = _as_v1(path, key)
    assert all("denied" in body and "withheld" not in body for body in bodies)

    result = verify_audit_log(path, key=key)
    assert result, result.error
    assert result.records == 2

    entries = list(read_audit_records(path))
    for entry, retrieval in zip(entries, retrievals, strict=True):
        assert entry.record.v == 1
        assert [(c.id, c.reason) for c in entry.record.withheld] == [
            (h.id, h.decision.reason) for h in retrieval.withheld
        ]

    out = io.StringIO()
    export_records(entries, out, "csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sum(row["outcome"] == "withheld" for row in rows) == 5
    assert not any(row["outcome"] == "denied" for row in rows)

    out = io.StringIO()
    export_records(entries, out, "ocsf")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [len(e["unmapped"]["ragguard"]["withheld"]) for e in events] == [3, 2]


def test_a_v1_log_continued_by_the_new_writer_is_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as log:
        log.record(make_retrieval())
    _as_v1(path, None)
    with JsonlAuditLog(path) as log:
        log.record(make_retrieval())
    result = verify_audit_log(path)
    assert result, result.error
    assert [e.record.v for e in read_audit_records(path)] == [1, 2]


def test_a_v1_record_edited_after_it_was_written_still_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as log:
        log.record(make_retrieval(withheld=1))
    _as_v1(path, None)
    text = path.read_text()
    path.write_text(text.replace('"denied":', '"withheld":'))
    result = verify_audit_log(path)
    assert not result
    assert "hash mismatch" in str(result.error)


def test_a_record_with_both_keys_is_rejected() -> None:
    record = {
        "v": 1,
        "seq": 0,
        "alg": "sha256",
        "decision_id": "d",
        "time": "2026-01-01T00:00:00Z",
        "subject_id": "alice",
        "subject_digest": "x",
        "action": "read",
        "policy_version": "p",
        "plan": {"kind": "allow_all", "exact": True, "digest": "d"},
        "k": 1,
        "query_digest": "q",
        "released": [],
        "rounds": 1,
        "truncated": False,
        "duration_ms": 1.0,
        "prev_hash": GENESIS_HASH,
        "hash": "0" * 64,
    }
    chunk = {"id": "c", "reason": "r", "provenance": None}
    assert AuditRecord.model_validate({**record, "denied": [chunk]}).withheld[0].id == "c"
    assert AuditRecord.model_validate({**record, "withheld": [chunk]}).withheld[0].id == "c"
    with pytest.raises(ValidationError):
        AuditRecord.model_validate({**record, "denied": [chunk], "withheld": []})


def test_replay_reads_v1_records(tmp_path: Path) -> None:
    """Replay re-decides the withheld chunks of a v1 record under another policy."""
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    store = rg.EdgeStore.create(tmp_path / "shard", dim=2)
    try:
        [eng, hr] = store.upsert(
            [
                rg.Chunk("eng text", {"dept": "eng"}, [1.0, 0.0], "e1"),
                rg.Chunk("hr text", {"dept": "hr"}, [0.0, 1.0], "h1"),
            ]
        )
        alice = rg.Subject(id="alice", attributes={"team": "core"})
        plan = policy.plan(alice)
        base = make_retrieval(released=0, withheld=0, policy=policy)
        retrieval = dataclasses.replace(
            base,
            subject=alice,
            plan=plan,
            released=(rg.Hit(eng, 0.9, "", {"dept": "eng"}, plan.decide({"dept": "eng"})),),
            withheld=(rg.Hit(hr, 0.5, "", {"dept": "hr"}, plan.decide({"dept": "hr"})),),
        )
        path = tmp_path / "audit.jsonl"
        with JsonlAuditLog(path) as log:
            log.record(retrieval)
        _as_v1(path, None)
        wider = rg.Policy.from_casbin(MODEL, POLICY + "p, alice, hr, read\n")
        report = replay_audit_log(read_audit_records(path), wider, store, {"alice": alice})
        assert [(c.chunk_id, c.before, c.after) for c in report.changes] == [
            (hr, "withheld", "released")
        ]
        assert report.to_json()["newly_released"] == 1
    finally:
        store.close()
