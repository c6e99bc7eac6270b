"""Faults around the guard: stores that fail, audit sinks that fail, exporters that fail.

The rules (DESIGN.md, fail closed): store problems release nothing and raise
``StoreError`` naming the cause; audit problems fail the retrieval when
``audit_required=True`` and are noted on the span otherwise; tracing problems never
break retrieval.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode
from qdrant_client import QdrantClient

import ragguard as rg
from ragguard.audit import verify_audit_log
from ragguard.stores import Pushdown, StoredChunk
from ragguard.testing import InMemoryStore, RecordingAuditSink, in_memory_tracing

DIM = 4
ALICE = rg.Subject(id="alice", attributes={"dept": "eng"})
QUERY = [1.0, 0.0, 0.0, 0.0]


@pytest.fixture
def policy(dept_policy: rg.Policy) -> rg.Policy:
    return dept_policy


CHUNKS = [
    rg.Chunk(
        text=f"chunk {i}",
        metadata={"dept": "eng" if i % 10 == 0 else "hr"},
        vector=[1.0, i / 100, 0.0, 0.0],
        id=i + 1,
    )
    for i in range(200)
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[rg.EdgeStore]:
    with rg.EdgeStore.create(tmp_path / "shard", dim=DIM) as edge:
        edge.upsert(CHUNKS)
        yield edge


def _failing_store(error: BaseException, fail_on: int) -> InMemoryStore:
    """The chunks in a store that pushes nothing down (so the guard fetches in several
    rounds) and whose ``search`` fails from call number ``fail_on`` (1-based) on."""
    failing = InMemoryStore(DIM, pushdown="none", fail_on={"search": fail_on}, error=error)
    failing.upsert(CHUNKS)
    return failing


@pytest.mark.parametrize(
    ("error", "fail_on", "cause"),
    [
        (ConnectionError("connection reset by peer"), 1, "ConnectionError: connection reset"),
        (TimeoutError("search timed out after 5 s"), 1, "TimeoutError: search timed out"),
        # Not an OS error: its message might quote content, so only its type is named.
        (RuntimeError("segment is corrupted"), 2, r"RuntimeError \(message not quoted"),
    ],
)
def test_a_failing_store_releases_nothing_and_names_the_cause(
    policy: rg.Policy, error: BaseException, fail_on: int, cause: str
) -> None:
    failing = _failing_store(error, fail_on)
    provider, exporter = in_memory_tracing()
    sink = RecordingAuditSink()
    guard = rg.Guard(policy, failing, tracer_provider=provider, audit=sink, max_fetch_rounds=4)
    # 1 chunk in 10 is readable: a first round of 4k candidates holds about 4 of the 10
    with pytest.raises(rg.StoreError, match=cause) as caught:
        guard.search(ALICE, QUERY, k=10)
    assert caught.value.__cause__ is error
    assert failing.calls["search"] == fail_on
    assert sink.retrievals == []  # no record claims a release
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ragguard.exceptions.StoreError"
    assert not [e for e in span.events if e.name == "ragguard.chunk.released"]


async def test_a_failing_store_releases_nothing_in_async_either(policy: rg.Policy) -> None:
    guard = rg.Guard(policy, _failing_store(TimeoutError("deadline exceeded"), 2))
    with pytest.raises(rg.StoreError, match="TimeoutError: deadline exceeded"):
        await guard.asearch(ALICE, QUERY, k=10)


def test_an_unreachable_qdrant_server_is_a_store_error(policy: rg.Policy) -> None:
    client = QdrantClient(
        url="http://127.0.0.1:9", timeout=1, check_compatibility=False
    )  # nothing listens on port 9
    store = rg.QdrantStore(client=client, collection="docs", dim=DIM)
    guard = rg.Guard(policy, store)
    with pytest.raises(rg.StoreError, match="docs") as caught:
        guard.search(ALICE, QUERY, k=3)
    assert isinstance(caught.value.__cause__, (httpx.HTTPError, OSError, Exception))
    client.close()


def test_a_qdrant_timeout_is_a_store_error(
    policy: rg.Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = QdrantClient(":memory:")
    store = rg.QdrantStore.create(client, "docs", dim=DIM)

    def timeout(*args: Any, **kwargs: Any) -> Any:
        raise httpx.ReadTimeout("timed out")

    monkeypatch.setattr(client, "query_points", timeout)
    with pytest.raises(rg.StoreError, match="timed out"):
        rg.Guard(policy, store).search(ALICE, QUERY, k=3)


class _GarbageStore(InMemoryStore):
    """Returns points whose payloads are malformed in every way a store can get them."""

    def search(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        return [
            StoredChunk("1", 0.9, None, {"dept": "eng"}),  # no text
            StoredChunk("2", 0.8, "text", None),  # no metadata
            StoredChunk("3", 0.7, "text", {"dept": {"$ne": "x"}}),  # a dict where a scalar goes
            StoredChunk("4", 0.6, "text", {"dept": ["eng", {"nested": 1}]}),  # a dict in a list
            StoredChunk("5", 0.5, "text", {"dept": float("nan")}),  # not JSON
            StoredChunk("6", 0.4, "fine", {"dept": "eng"}),  # the only good one
        ]


def test_malformed_payloads_are_withheld_with_reasons(policy: rg.Policy) -> None:
    sink = RecordingAuditSink()
    hits = rg.Guard(policy, _GarbageStore(DIM), audit=sink).search(ALICE, QUERY, k=5)
    assert [h.id for h in hits] == ["6"]
    (retrieval,) = sink.retrievals
    reasons = {h.id: h.decision.reason for h in retrieval.withheld}
    assert set(reasons) == {"1", "2", "3", "4", "5"}
    assert "page_content" in (reasons["1"] or "")
    assert "metadata" in (reasons["2"] or "")
    assert all(reason for reason in reasons.values())


def test_a_full_disk_fails_a_required_audit_and_releases_nothing(
    policy: rg.Policy, store: rg.EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = rg.JsonlAuditLog(tmp_path / "audit.jsonl")
    guard = rg.Guard(policy, store, audit=log, audit_required=True)
    assert guard.search(ALICE, QUERY, k=2)  # the log works
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        if fd == log._fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(rg.AuditError, match="No space left on device"):
        guard.search(ALICE, QUERY, k=2)
    monkeypatch.undo()
    log.close()
    assert verify_audit_log(tmp_path / "audit.jsonl").ok  # nothing half-written


def test_a_full_disk_without_audit_required_is_noted_and_retrieval_continues(
    policy: rg.Policy,
    store: rg.EdgeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = rg.JsonlAuditLog(tmp_path / "audit.jsonl")
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(policy, store, audit=log, tracer_provider=provider)
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        if fd == log._fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full)
    hits = guard.search(ALICE, QUERY, k=2)
    monkeypatch.undo()
    log.close()
    assert len(hits) == 2
    assert "audit write failed" in caplog.text
    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events if "audit" in e.name] == ["ragguard.audit.failed"]


class _BrokenExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.calls += 1
        raise OSError("collector unreachable")

    def shutdown(self) -> None:
        pass


def test_a_failing_exporter_never_breaks_retrieval(policy: rg.Policy, store: rg.EdgeStore) -> None:
    exporter = _BrokenExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    guard = rg.Guard(policy, store, tracer_provider=provider)
    assert len(guard.search(ALICE, QUERY, k=3)) == 3
    assert exporter.calls == 1
