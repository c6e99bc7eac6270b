"""ragguard.testing's doubles (InMemoryStore, the audit sinks) and the store kit catching
broken stores: a kit that passes every store proves nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings

import ragguard as rg
from ragguard.policy import ir
from ragguard.stores import Pushdown, StoredChunk
from ragguard.testing import FailingAuditSink, InMemoryStore, RecordingAuditSink, StoreSpy
from ragguard.testing.store_kit import StoreConformanceSuite

MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.act == p.act && r.obj.tenant == r.sub.tenant
"""
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme"})


def _store(**options: Any) -> InMemoryStore:
    store = InMemoryStore(2, **options)
    store.upsert(
        rg.Chunk(f"chunk {i}", {"tenant": "acme" if i % 2 else "globex"}, [1.0, i / 10], id=i)
        for i in range(10)
    )
    return store


def test_importing_ragguard_testing_imports_neither_pytest_nor_hypothesis() -> None:
    """Users import ragguard.testing in their apps' tests, whatever their test runner."""
    code = (
        "import sys, ragguard.testing\n"
        "print(sorted(m for m in ('pytest', 'hypothesis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("pushdown", ["exact", "none"])
def test_in_memory_store_serves_a_guard(pushdown: str) -> None:
    """Exact pushdown: the store returns only acme's chunks; none: the re-check withholds."""
    store = _store(pushdown=pushdown)
    sink = RecordingAuditSink()
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, "p, anyone, read\n"), store, audit=sink)
    hits = guard.search(ALICE, [1.0, 0.0], k=3)
    assert [h.id for h in hits] == ["1", "3", "5"]
    assert all(h.metadata["tenant"] == "acme" for h in hits)
    assert guard.plan(ALICE).exact is (pushdown == "exact")
    assert store.translate(guard.plan(ALICE).filter).exact is (pushdown == "exact")
    assert bool(sink.last.withheld) is (pushdown == "none")
    assert store.calls["search"] == len(store.search_limits) >= 1


def test_in_memory_store_scores_like_qdrant() -> None:
    """cosine/dot: higher first; euclid/manhattan: the distance, lower first."""
    expected = {"cosine": 1.0, "dot": 4.0, "euclid": 0.0, "manhattan": 0.0}
    for distance, best in expected.items():
        store = InMemoryStore(2, distance=distance)  # type: ignore[arg-type]
        store.upsert([rg.Chunk("a", {}, [2.0, 0.0], id=1), rg.Chunk("b", {}, [0.0, 2.0], id=2)])
        hits = store.search([2.0, 0.0], 2, store.translate(ir.TRUE))
        assert [h.id for h in hits] == ["1", "2"]
        assert hits[0].score == pytest.approx(best)


def test_in_memory_store_refuses_what_qdrant_refuses() -> None:
    store = InMemoryStore(2)
    for vector in ([1.0], [float("nan"), 0.0]):
        with pytest.raises(rg.StoreError):
            store.upsert([rg.Chunk("t", {}, vector, id=1)])
    with pytest.raises(rg.StoreError, match="outside -2\\*\\*63"):
        store.upsert(
            [rg.Chunk("ok", {}, [1.0, 0.0], id=1), rg.Chunk("t", {"n": 2**64}, [1, 0], id=2)]
        )
    assert store.count() == 0  # all or nothing
    store.close()
    with pytest.raises(rg.StoreError, match="closed"):
        store.search([1.0, 0.0], 1, store.translate(ir.TRUE))


def test_failure_injection_from_the_nth_call_becomes_a_store_error() -> None:
    """fail_on={"search": 2}: the first search works, the second fails; the guard
    raises StoreError with the injected error as cause and audits nothing."""
    error = TimeoutError("deadline exceeded")
    store = _store(fail_on={"search": 2}, error=error)
    sink = RecordingAuditSink()
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, "p, anyone, read\n"), store, audit=sink)
    assert guard.search(ALICE, [1.0, 0.0], k=1)
    with pytest.raises(rg.StoreError, match="TimeoutError") as caught:
        guard.search(ALICE, [1.0, 0.0], k=1)
    assert caught.value.__cause__ is error
    assert len(sink.retrievals) == 1
    assert store.calls["search"] == 2
    with pytest.raises(ValueError, match="unknown methods"):
        InMemoryStore(2, fail_on={"serch": 1})


def test_failing_audit_sink_fails_a_required_audit() -> None:
    sink = FailingAuditSink()
    policy = rg.Policy.from_casbin(MODEL, "p, anyone, read\n")
    guard = rg.Guard(policy, _store(), audit=sink, audit_required=True)
    with pytest.raises(rg.AuditError):
        guard.search(ALICE, [1.0, 0.0], k=1)
    assert sink.calls == 1
    assert rg.Guard(policy, _store(), audit=sink).search(ALICE, [1.0, 0.0], k=1)
    assert sink.calls == 2


# -- the kit fails broken stores ------------------------------------------------------------------


class _Kit(StoreConformanceSuite):
    examples = 30

    def _settings(self) -> settings:
        # A broken store fails on an early example; shrinking it would take ~40 s.
        return settings(super()._settings(), phases=[Phase.explicit, Phase.generate])

    def make_store(self, dim: int, distance: str) -> rg.Store:
        return InMemoryStore(dim, distance=distance)  # type: ignore[arg-type]


class _IgnoresFilterClaimsExact(InMemoryStore):
    def translate(self, expr: ir.Expr) -> Pushdown:
        return Pushdown(native=None, exact=True, matches_nothing=expr == ir.FALSE)


class _DropsListFields(InMemoryStore):
    """Treats a list-valued attribute as absent: drops authorised points."""

    def search(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        hits = super().search(vector, limit, pushdown, exact=exact)
        return [
            h for h in hits if not any(isinstance(v, list) for v in (h.metadata or {}).values())
        ]


class _RaisesValueError(InMemoryStore):
    def upsert(self, chunks: Any) -> list[str]:
        chunks = list(chunks)
        if any(len(c.vector) != self.dim for c in chunks):
            raise ValueError("bad vector")
        return super().upsert(chunks)


class _LeaksAcrossThreads(InMemoryStore):
    """Returns the previous caller's results now and then (a shared buffer)."""

    last: list[StoredChunk] | None = None

    def search(
        self, vector: Sequence[float], limit: int, pushdown: Pushdown, *, exact: bool = False
    ) -> list[StoredChunk]:
        hits = super().search(vector, limit, pushdown, exact=exact)
        previous, self.last = self.last, hits
        return previous if previous is not None and self.calls["search"] % 5 == 0 else hits


@pytest.mark.parametrize(
    ("broken", "check", "message"),
    [
        (
            _IgnoresFilterClaimsExact,
            "test_edge_values_agree_with_the_compiled_predicate",
            "exact pushdown let through",
        ),
        (
            _IgnoresFilterClaimsExact,
            "test_random_ir_agrees_with_the_compiled_predicate",
            "exact pushdown let through",
        ),
        (
            _DropsListFields,
            "test_edge_values_agree_with_the_compiled_predicate",
            "dropped authorised",
        ),
        (
            _DropsListFields,
            "test_random_ir_agrees_with_the_compiled_predicate",
            "dropped authorised",
        ),
        (
            _IgnoresFilterClaimsExact,
            "test_in_lists_of_1_to_10000_values",
            "exact pushdown let through",
        ),
        (_RaisesValueError, "test_wrong_vectors_are_store_errors", "bad vector"),
        (
            _LeaksAcrossThreads,
            "test_concurrent_subjects_never_see_each_others_chunks",
            "another tenant|different hits",
        ),
    ],
)
def test_the_kit_fails_broken_stores(broken: type[InMemoryStore], check: str, message: str) -> None:
    kit = _Kit()
    store = broken(kit.dim)
    arguments: dict[str, Any] = {"size": 100} if "in_lists" in check else {}
    with pytest.raises((AssertionError, ValueError), match=message):
        getattr(kit, check)(store, **arguments)


def test_the_kit_fails_a_store_whose_search_ignores_the_metric() -> None:
    """A dot-product store reporting cosine scores: the top-k check catches it."""

    class _CosineAlways(_Kit):
        distances = ("dot",)

        def make_store(self, dim: int, distance: str) -> rg.Store:
            return InMemoryStore(dim, distance="cosine")

    with pytest.raises(AssertionError, match=r"numpy|top-"):
        _CosineAlways().test_guarded_top_k_matches_numpy_brute_force()


def test_the_testing_page_runs_top_to_bottom() -> None:
    """docs/testing.md's python blocks run as written (the kit's sketch is marked notest)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "testing.md", "exec"), namespace)
    assert isinstance(namespace["spy"], StoreSpy)
