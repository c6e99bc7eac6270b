"""Audit and tracing cost: append throughput, verification speed, tracing per search.

Not part of the default run; run with::

    pytest tests/benchmarks/test_audit_bench.py --benchmark-columns=min,mean,max,rounds

Each appended record describes a retrieval of ten chunks (five released, five
withheld), the size of a typical ``k=5`` search with some withheld hits.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import ragguard as rg
from ragguard.audit import JsonlAuditLog, verify_audit_log
from ragguard.policy._plan import Decision
from ragguard.results import Hit, ProvenanceVerdict, Retrieval
from ragguard.testing import in_memory_tracing
from ragguard.tracing import RetrievalTracer

REQUIRED_RECORDS_PER_SECOND = 20_000
BATCH = 2_000

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.dept == p.dept && r.obj.dept == p.dept && r.act == p.act
"""


def ten_chunk_retrieval() -> Retrieval:
    """A retrieval with five released and five withheld chunks."""
    policy = rg.Policy.from_casbin(MODEL, "p, eng, eng, read\n")
    subject = rg.Subject(id="alice", attributes={"dept": "eng", "clearance": 2})
    plan = policy.plan(subject)
    version = plan.policy_version
    verified = ProvenanceVerdict("verified", True)
    released = tuple(
        Hit(
            str(uuid.uuid4()),
            0.83 - i / 97,
            "text",
            {"dept": "eng"},
            Decision(True, "line 1: p, eng, eng, read", None, version),
            verified,
        )
        for i in range(5)
    )
    withheld = tuple(
        Hit(
            str(uuid.uuid4()),
            0.61 - i / 89,
            "text",
            {"dept": "hr"},
            Decision(False, None, "dept 'hr' != 'eng'", version),
        )
        for i in range(5)
    )
    return Retrieval(
        decision_id=str(uuid.uuid4()),
        started_at=datetime.now(timezone.utc),
        subject=subject,
        plan=plan,
        k=5,
        query_digest="5d" * 32,
        released=released,
        withheld=withheld,
        rounds=1,
        truncated=False,
        duration_s=0.0012,
    )


def _append_batch(log: JsonlAuditLog, retrieval: Retrieval) -> None:
    for _ in range(BATCH):
        log.record(retrieval)


def _report(benchmark: Any, label: str, per_round: int) -> float:
    rate = per_round / float(benchmark.stats.stats.mean)
    benchmark.extra_info["records_per_second"] = round(rate)
    print(f"\n{label}: {rate:,.0f} records/s", file=sys.stderr)
    return rate


@pytest.mark.parametrize("key", [None, b"audit-key"], ids=["sha256", "hmac"])
def test_append_throughput_with_batched_fsync(
    benchmark: Any, tmp_path: Path, key: bytes | None
) -> None:
    """Appends with fsync="batch" reach at least 20,000 ten-chunk records per second."""
    retrieval = ten_chunk_retrieval()
    with JsonlAuditLog(tmp_path / "audit.jsonl", key=key, fsync="batch") as log:
        benchmark.pedantic(_append_batch, args=(log, retrieval), rounds=10, warmup_rounds=1)
    rate = _report(benchmark, f"append ({'hmac' if key else 'sha256'}, fsync=batch)", BATCH)
    assert rate >= REQUIRED_RECORDS_PER_SECOND
    assert verify_audit_log(tmp_path / "audit.jsonl", key=key).ok


def test_append_throughput_with_rotation(benchmark: Any, tmp_path: Path) -> None:
    """Rotation every ~1 MB costs little on top of plain appends."""
    retrieval = ten_chunk_retrieval()
    with JsonlAuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 20) as log:
        benchmark.pedantic(_append_batch, args=(log, retrieval), rounds=10, warmup_rounds=1)
    _report(benchmark, "append with rotation every 1 MB", BATCH)
    assert verify_audit_log(tmp_path / "audit.jsonl").ok


def test_verification_throughput(benchmark: Any, tmp_path: Path) -> None:
    """Verifying a keyed chain of 10,000 records."""
    path = tmp_path / "audit.jsonl"
    retrieval = ten_chunk_retrieval()
    with JsonlAuditLog(path, key=b"audit-key") as log:
        for _ in range(10_000):
            log.record(retrieval)
    result = benchmark.pedantic(
        verify_audit_log, args=(path,), kwargs={"key": b"audit-key"}, rounds=3
    )
    assert result.ok
    _report(benchmark, "verify (hmac)", 10_000)


def _trace_one(tracer: RetrievalTracer, retrieval: Retrieval) -> None:
    with tracer.retrieval(retrieval.subject, retrieval.k) as span:
        tracer.planned(span, retrieval.plan)
        tracer.finished(span, retrieval)


@pytest.mark.parametrize("provider", ["none", "sdk"])
def test_tracing_overhead_per_search(benchmark: Any, provider: str) -> None:
    """The tracing work one ten-chunk search adds: no-op API vs. the SDK with an exporter."""
    tracer_provider = None if provider == "none" else in_memory_tracing()[0]
    tracer = RetrievalTracer(tracer_provider)
    retrieval = ten_chunk_retrieval()
    benchmark(_trace_one, tracer, retrieval)
    mean_us = benchmark.stats.stats.mean * 1e6
    benchmark.extra_info["microseconds_per_search"] = round(mean_us, 1)
    print(f"\ntracing overhead ({provider}): {mean_us:.1f} µs per search", file=sys.stderr)
