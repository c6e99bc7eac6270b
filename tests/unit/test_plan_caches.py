"""Per-plan caches: the plan's digest is computed once; the guard's pushdowns are held
weakly by plan, never by ``id()`` (issue 14, item 4)."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

import ragguard as rg
from ragguard.policy import ir

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.id == p.sub && r.obj.dept == p.dept && r.act == p.act
"""
POLICY = "p, alice, eng, read\np, bob, hr, read\n"


def test_plan_digest_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    plan = policy.plan(rg.Subject(id="alice"))
    calls = 0
    real_dumps = json.dumps

    def counting_dumps(*args: object, **kwargs: object) -> str:
        nonlocal calls
        calls += 1
        return real_dumps(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("ragguard.policy._plan.json.dumps", counting_dumps)
    first = plan.digest
    assert [plan.digest for _ in range(5)] == [first] * 5
    assert calls == 1


def test_plan_digest_follows_the_filter_not_the_object() -> None:
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    plan = policy.plan(rg.Subject(id="alice"))
    narrowed = plan.narrow(ir.Eq("project", "p1"))
    assert plan.digest != narrowed.digest
    assert policy.plan(rg.Subject(id="bob")).digest != plan.digest
    assert rg.Policy.from_casbin(MODEL, POLICY).plan(rg.Subject(id="alice")).digest == plan.digest


def test_pushdowns_are_held_weakly_by_plan(tmp_path: Path) -> None:
    """A plan the policy dropped leaves the guard's cache; its replacement gets its own
    pushdown (an id() key could hand a new plan the old plan's pushdown)."""
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    store = rg.EdgeStore.create(tmp_path / "shard", dim=2)
    try:
        guard = rg.Guard(policy, store)
        alice, bob = rg.Subject(id="alice"), rg.Subject(id="bob")
        first = guard.plan(alice)
        assert guard.plan(alice) is first  # cached
        guard.plan(bob)
        assert len(guard._pushdowns) == 2
        policy._cache.clear()  # what a reload or a full cache does
        gc.collect()
        assert len(guard._pushdowns) == 0
        again = guard.plan(alice)
        assert again is not first
        assert again.filter == first.filter
        assert len(guard._pushdowns) == 1
    finally:
        store.close()
