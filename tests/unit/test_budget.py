"""Release budgets: the sliding-window limiter, its thread safety, and the guard raising
BudgetExceededError with nothing released (traced and audited), on a real EdgeStore."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ragguard as rg
from ragguard.audit import read_audit_records
from ragguard.testing import in_memory_tracing


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the in-memory backend -------------------------------------------------------------


def test_window_admits_up_to_the_limit_all_or_nothing() -> None:
    """A request that does not fit records nothing; a smaller one still fits."""
    backend = rg.InMemoryBudgetBackend()
    limit, window = 10, 60.0
    assert backend.consume("alice", 6, 0.0, limit=limit, window_seconds=window)
    assert not backend.consume("alice", 5, 1.0, limit=limit, window_seconds=window)
    assert backend.used("alice", 1.0, window_seconds=60.0) == 6
    assert backend.consume("alice", 4, 2.0, limit=limit, window_seconds=window)
    assert not backend.consume("alice", 1, 3.0, limit=limit, window_seconds=window)
    assert backend.consume("alice", 0, 3.0, limit=limit, window_seconds=window)


def test_window_slides() -> None:
    """Releases older than the window stop counting; at exactly window_seconds they expire."""
    backend = rg.InMemoryBudgetBackend()
    limit, window = 5, 10.0
    assert backend.consume("alice", 3, 0.0, limit=limit, window_seconds=window)
    assert backend.consume("alice", 2, 5.0, limit=limit, window_seconds=window)
    assert not backend.consume("alice", 1, 9.999, limit=limit, window_seconds=window)
    assert backend.consume(
        "alice", 3, 10.0, limit=limit, window_seconds=window
    )  # the 3 at t=0 left the window
    assert backend.used("alice", 10.0, window_seconds=10.0) == 5
    assert not backend.consume("alice", 1, 14.0, limit=limit, window_seconds=window)
    assert backend.consume("alice", 2, 15.0, limit=limit, window_seconds=window)


def test_subjects_are_independent_and_forgotten_when_idle() -> None:
    """One subject's use does not limit another; idle subjects are dropped (bounded memory)."""
    backend = rg.InMemoryBudgetBackend()
    limit, window = 2, 1.0
    for i in range(5000):
        assert backend.consume(f"user-{i}", 2, float(i) * 0.001, limit=limit, window_seconds=window)
    assert backend.consume("late", 1, 100.0, limit=limit, window_seconds=window)
    assert len(backend) < 5000  # the periodic sweep removed the idle ones
    assert backend.used("user-0", 100.0, window_seconds=1.0) == 0


def test_backend_rejects_negative_counts() -> None:
    """n < 0 would give budget back: refused."""
    with pytest.raises(ValueError, match="n must be >= 0"):
        rg.InMemoryBudgetBackend().consume("a", -1, 0.0, limit=5, window_seconds=1.0)


def test_concurrent_consumers_never_exceed_the_limit() -> None:
    """8 threads racing on one subject: exactly `limit` releases are admitted, never more."""
    backend = rg.InMemoryBudgetBackend()
    admitted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        barrier.wait()
        for _ in range(400):
            n = int(rng.integers(1, 4))
            if backend.consume("shared", n, 0.0, limit=1000, window_seconds=60.0):
                with lock:
                    admitted.append(n)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) <= 1000
    assert sum(admitted) >= 1000 - 2  # only requests larger than what was left were refused
    assert backend.used("shared", 0.0, window_seconds=60.0) == sum(admitted)


# -- ReleaseBudget -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs max_chunks, min_score, or both"),
        ({"max_chunks": 0}, "max_chunks must be an integer >= 1"),
        ({"max_chunks": True}, "max_chunks must be an integer >= 1"),
        ({"max_chunks": 2.5}, "max_chunks must be an integer >= 1"),
        ({"max_chunks": 5, "window_seconds": 0}, "window_seconds must be a finite number > 0"),
        (
            {"max_chunks": 5, "window_seconds": math.inf},
            "window_seconds must be a finite number > 0",
        ),
        ({"min_score": math.nan}, "min_score must be a finite number"),
        ({"min_score": "0.3"}, "min_score must be a finite number"),
    ],
)
def test_release_budget_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    """Misconfiguration fails at construction with a message that says what was wrong."""
    with pytest.raises(ValueError, match=message):
        rg.ReleaseBudget(**kwargs)


def test_charge_raises_with_the_limit_and_records_nothing() -> None:
    """BudgetExceededError carries subject, request and limit; a failed charge is free."""
    clock = FakeClock()
    budget = rg.ReleaseBudget(max_chunks=5, window_seconds=60, clock=clock)
    budget.charge("alice", 3)
    with pytest.raises(rg.BudgetExceededError) as caught:
        budget.charge("alice", 3)
    error = caught.value
    assert (error.subject_id, error.requested, error.max_chunks, error.window_seconds) == (
        "alice",
        3,
        5,
        60.0,
    )
    assert "nothing was released" in str(error)
    assert isinstance(error, rg.BudgetError)
    assert isinstance(error, rg.RagGuardError)
    budget.charge("alice", 2)  # the refused 3 were not recorded
    clock.now += 60
    budget.charge("alice", 5)


class BrokenBackend:
    def consume(
        self, subject_id: str, n: int, now: float, *, limit: int, window_seconds: float
    ) -> bool:
        raise ConnectionError("redis down")


class SloppyBackend:
    def consume(
        self, subject_id: str, n: int, now: float, *, limit: int, window_seconds: float
    ) -> bool:
        return 1  # type: ignore[return-value]


def test_backend_failures_fail_closed() -> None:
    """A backend that raises or answers a non-bool means 'not admitted', never 'unlimited'."""
    with pytest.raises(rg.BudgetError, match="backend failed \\(ConnectionError: redis down\\)"):
        rg.ReleaseBudget(max_chunks=5, backend=BrokenBackend()).charge("alice", 1)
    with pytest.raises(rg.BudgetError, match="returned int, not a bool"):
        rg.ReleaseBudget(max_chunks=5, backend=SloppyBackend()).charge("alice", 1)
    with pytest.raises(TypeError, match="BudgetBackend"):
        rg.ReleaseBudget(max_chunks=5, backend=object())  # type: ignore[arg-type]


def test_score_shortfall() -> None:
    """Below min_score (or NaN) is withheld with a reason; at or above passes."""
    budget = rg.ReleaseBudget(min_score=0.3)
    assert budget.score_shortfall(0.3) is None
    assert budget.score_shortfall(0.9) is None
    assert budget.score_shortfall(0.2999) == "release budget: score 0.2999 below min_score 0.3"
    assert budget.score_shortfall(math.nan) is not None
    assert rg.ReleaseBudget(max_chunks=3).score_shortfall(-5.0) is None


# -- the guard, on a real EdgeStore -------------------------------------------------------

DIM = 16
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme"})
BOB = rg.Subject(id="bob", attributes={"tenant": "acme"})


def _unit(rng: np.random.Generator) -> list[float]:
    v = rng.normal(size=DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rg.EdgeStore]:
    rng = np.random.default_rng(11)
    edge = rg.EdgeStore.create(tmp_path_factory.mktemp("budget") / "shard", dim=DIM)
    edge.upsert(
        rg.Chunk(
            text=f"chunk {i}",
            metadata={"tenant": "acme" if i % 4 else "globex"},
            vector=_unit(rng),
            id=i,
        )
        for i in range(200)
    )
    edge.optimize()
    yield edge
    edge.close()


@pytest.fixture(scope="module")
def policy(tenant_policy: rg.Policy) -> rg.Policy:
    return tenant_policy


QUERY = _unit(np.random.default_rng(5))


def test_guard_raises_when_the_budget_is_spent_and_releases_nothing(
    tmp_path: Path, store: rg.EdgeStore, policy: rg.Policy
) -> None:
    """max_chunks=7, k=3: two searches pass, the third raises; its hits are audited as
    withheld 'release budget exceeded', the span records the event and the error."""
    clock = FakeClock()
    provider, exporter = in_memory_tracing()
    budget = rg.ReleaseBudget(max_chunks=7, window_seconds=600, clock=clock)
    with rg.JsonlAuditLog(tmp_path / "audit.jsonl") as audit:
        guard = rg.Guard(policy, store, budget=budget, audit=audit, tracer_provider=provider)
        first = guard.search(ALICE, QUERY, k=3)
        assert len(first) == 3
        assert len(guard.search(ALICE, QUERY, k=3)) == 3
        with pytest.raises(rg.BudgetExceededError, match=r"'alice'.*3 chunk.*7 per 600 s"):
            guard.search(ALICE, QUERY, k=3)
        assert len(guard.search(BOB, QUERY, k=3)) == 3  # bob has his own budget
        assert len(guard.search(ALICE, QUERY, k=1)) == 1  # 7 of 7 used now
        with pytest.raises(rg.BudgetExceededError):
            guard.search(ALICE, QUERY, k=1)
        clock.now += 600
        assert len(guard.search(ALICE, QUERY, k=3)) == 3  # the window moved on
    records = [entry.record for entry in read_audit_records(tmp_path / "audit.jsonl")]
    assert len(records) == 7  # denied searches are audited too
    refused = records[2]
    assert refused.released == ()
    assert [c.id for c in refused.withheld] == [h.id for h in first]
    assert {c.reason for c in refused.withheld} == {"release budget exceeded"}
    spans = exporter.get_finished_spans()
    refused_span = spans[2]
    assert refused_span.attributes is not None
    assert refused_span.attributes["ragguard.released.count"] == 0
    assert refused_span.attributes["error.type"] == "ragguard.exceptions.BudgetExceededError"
    [event] = [e for e in refused_span.events if e.name == "ragguard.budget.exceeded"]
    assert event.attributes is not None
    assert event.attributes["ragguard.budget.requested"] == 3


def test_backend_failure_in_the_guard_releases_nothing(
    tmp_path: Path, store: rg.EdgeStore, policy: rg.Policy
) -> None:
    """A budget backend that is down: BudgetError, nothing released, audited as unavailable."""
    with rg.JsonlAuditLog(tmp_path / "audit.jsonl") as audit:
        guard = rg.Guard(
            policy,
            store,
            budget=rg.ReleaseBudget(max_chunks=50, backend=BrokenBackend()),
            audit=audit,
        )
        with pytest.raises(rg.BudgetError, match="backend failed"):
            guard.search(ALICE, QUERY, k=4)
    [entry] = list(read_audit_records(tmp_path / "audit.jsonl"))
    assert entry.record.released == ()
    assert {c.reason for c in entry.record.withheld} == {"release budget unavailable"}


def test_min_score_withholds_low_scores_and_stops_fetching(
    store: rg.EdgeStore, policy: rg.Policy
) -> None:
    """Hits under min_score are withheld with the reason; the guard does not keep doubling
    its fetch looking for better ones (results come best first)."""
    plain = rg.Guard(policy, store, exact_search=True).search(ALICE, QUERY, k=40)
    floor = plain[5].score  # six hits reach it
    provider, exporter = in_memory_tracing()
    guard = rg.Guard(
        policy,
        store,
        budget=rg.ReleaseBudget(min_score=floor),
        tracer_provider=provider,
        exact_search=True,
    )
    hits = guard.search(ALICE, QUERY, k=40)
    assert [h.id for h in hits] == [h.id for h in plain[:6]]
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["ragguard.fetch.rounds"] == 1
    assert span.attributes["ragguard.fetch.truncated"] is False
    reasons = [
        str(e.attributes["ragguard.reason"])
        for e in span.events
        if e.name == "ragguard.chunk.withheld" and e.attributes is not None
    ]
    assert reasons
    below = [r for r in reasons if r.startswith("release budget: score ")]
    assert below
    assert all(r.endswith(f"below min_score {floor:g}") for r in below)


def test_budget_counts_only_released_chunks(store: rg.EdgeStore, policy: rg.Policy) -> None:
    """Withheld hits (min_score, policy) cost nothing; a search releasing 0 costs nothing."""
    budget = rg.ReleaseBudget(max_chunks=4, min_score=0.99)
    guard = rg.Guard(policy, store, budget=budget, exact_search=True)
    for _ in range(10):
        assert guard.search(ALICE, QUERY, k=5) == []
    backend = budget.backend
    assert isinstance(backend, rg.InMemoryBudgetBackend)
    assert backend.used("alice", budget.clock(), window_seconds=budget.window_seconds) == 0


def test_threads_never_release_more_than_the_budget(store: rg.EdgeStore, policy: rg.Policy) -> None:
    """8 threads searching for one subject: released chunks never exceed max_chunks, every
    search either returns k hits or raises BudgetExceededError."""
    budget = rg.ReleaseBudget(max_chunks=100, window_seconds=3600)
    guard = rg.Guard(policy, store, budget=budget)
    released: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            try:
                hits = guard.search(ALICE, QUERY, k=3)
            except rg.BudgetExceededError:
                with lock:
                    refused.append(1)
            except BaseException as exc:
                errors.append(exc)
            else:
                with lock:
                    released.append(len(hits))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(released) == {3}
    assert sum(released) == 99  # 33 searches fit in 100; the 34th would make 102
    assert len(refused) == 80 - 33


class SharedCounts:
    """A BudgetBackend two guards share, as processes would share Redis."""

    def __init__(self) -> None:
        self.inner = rg.InMemoryBudgetBackend()
        self.calls: list[tuple[str, int]] = []

    def consume(
        self, subject_id: str, n: int, now: float, *, limit: int, window_seconds: float
    ) -> bool:
        self.calls.append((subject_id, n))
        return self.inner.consume(subject_id, n, now, limit=limit, window_seconds=window_seconds)


def test_a_shared_backend_enforces_one_budget_across_guards(
    store: rg.EdgeStore, policy: rg.Policy
) -> None:
    """Two guards (two 'processes') with one backend share alice's budget."""
    shared = SharedCounts()
    assert isinstance(shared, rg.BudgetBackend)
    first = rg.Guard(policy, store, budget=rg.ReleaseBudget(max_chunks=5, backend=shared))
    second = rg.Guard(policy, store, budget=rg.ReleaseBudget(max_chunks=5, backend=shared))
    assert len(first.search(ALICE, QUERY, k=3)) == 3
    with pytest.raises(rg.BudgetExceededError):
        second.search(ALICE, QUERY, k=3)
    assert len(second.search(ALICE, QUERY, k=2)) == 2
    assert shared.calls == [("alice", 3), ("alice", 3), ("alice", 2)]


def test_async_search_is_budgeted_too(store: rg.EdgeStore, policy: rg.Policy) -> None:
    """asearch goes through the same release step."""
    import asyncio

    guard = rg.Guard(policy, store, budget=rg.ReleaseBudget(max_chunks=4))

    async def run() -> None:
        assert len(await guard.asearch(ALICE, QUERY, k=4)) == 4
        with pytest.raises(rg.BudgetExceededError):
            await guard.asearch(ALICE, QUERY, k=1)

    asyncio.run(run())


def test_guard_rejects_a_budget_of_the_wrong_type(store: rg.EdgeStore, policy: rg.Policy) -> None:
    """budget= takes a ReleaseBudget; a bare number is a configuration mistake."""
    with pytest.raises(TypeError, match="ReleaseBudget"):
        rg.Guard(policy, store, budget=100)  # type: ignore[arg-type]


# -- faults around the budget ------------------------------------------------------------


class FullDisk:
    """An audit sink whose disk is full."""

    def record(self, retrieval: rg.Retrieval) -> None:
        raise OSError(28, "No space left on device")


def test_over_budget_with_a_failing_required_audit_raises_audit_error(
    store: rg.EdgeStore, policy: rg.Policy
) -> None:
    """Both failures release nothing; with audit_required the audit failure is reported."""
    guard = rg.Guard(
        policy, store, budget=rg.ReleaseBudget(max_chunks=2), audit=FullDisk(), audit_required=True
    )
    with pytest.raises(rg.AuditError, match="nothing released"):
        guard.search(ALICE, QUERY, k=3)


def test_a_failing_trace_exporter_does_not_change_budget_or_screen_outcomes(
    store: rg.EdgeStore, policy: rg.Policy
) -> None:
    """Tracing problems never break retrieval: hits come back, the budget still raises."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class BrokenExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            raise ConnectionError("collector unreachable")

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(BrokenExporter()))
    guard = rg.Guard(
        policy,
        store,
        budget=rg.ReleaseBudget(max_chunks=4),
        screens=[rg.PromptInjectionScreen()],
        tracer_provider=provider,
    )
    assert len(guard.search(ALICE, QUERY, k=4)) == 4
    with pytest.raises(rg.BudgetExceededError):
        guard.search(ALICE, QUERY, k=1)
    provider.shutdown()


def test_in_memory_backends_are_per_process() -> None:
    """The default backend's scope is this process: two instances never share a count."""
    first, second = rg.InMemoryBudgetBackend(), rg.InMemoryBudgetBackend()
    assert first.scope == "process"
    assert first.consume("alice", 5, 0.0, limit=5, window_seconds=60)
    assert second.consume("alice", 5, 0.0, limit=5, window_seconds=60)
