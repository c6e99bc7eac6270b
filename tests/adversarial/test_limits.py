"""Hostile sizes get a clear error, quickly: never a hang, a crash or a memory blow-up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import ragguard as rg
from ragguard.policy._snapshot import RoleGraph

MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = {matcher}
"""
EVAL_MODEL = MODEL.format(matcher="r.act == p.act && eval(p.sub)")


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        ("(" * 5_000 + 'r.obj.a == "x"' + ")" * 5_000, "too many nested parentheses"),
        ("!" * 20_000 + 'r.obj.a == "x"', "nested too deeply"),
        ("!" * 200 + 'r.obj.a == "x"', "too large"),  # parses, but deeper than 64
        (" || ".join(f'r.obj.a == "{i}"' for i in range(3_000)), "too large"),
        ('r.obj.a == "' + "x" * 1_000_000 + '"', "1000013 characters"),
    ],
    ids=["parentheses", "negations-parser", "negations-depth", "alternatives", "long-literal"],
)
def test_oversized_matchers_fail_at_load_time(matcher: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(rg.UnsupportedPolicyError, match=message) as caught:
        rg.Policy.from_casbin(MODEL.format(matcher=matcher), "p, anyone, read\n")
    # Generous: these fail in ~0.03 s; a parser that backtracked would take minutes.
    assert time.perf_counter() - started < 60
    assert len(str(caught.value)) < 400  # the message quotes an excerpt, not the input


def test_oversized_eval_rules_fail_at_load_time_naming_the_line() -> None:
    rule = " || ".join(f"r.obj.level == {i}" for i in range(3_000))
    with pytest.raises(rg.UnsupportedPolicyError, match="too large"):
        rg.Policy.from_casbin(EVAL_MODEL, f"p, {rule}, read\n")


def test_k_beyond_the_maximum_is_refused(tmp_path: Path) -> None:
    policy = rg.Policy.from_casbin(MODEL.format(matcher="r.act == p.act"), "p, anyone, read\n")
    with rg.EdgeStore.create(tmp_path / "shard", dim=2) as store:
        guard = rg.Guard(policy, store, max_k=50)
        alice = rg.Subject(id="alice")
        for k in (51, 10**9):
            with pytest.raises(rg.QueryError, match="between 1 and 50"):
                guard.search(alice, [1.0, 0.0], k=k)
        assert rg.Guard(policy, store).max_k == 1000  # the default bound


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({f"a{i}": i for i in range(257)}, "at most 256 attributes"),
        ({"groups": ["g"] * 4_097}, "more than 4096 items"),
        ({"bio": "x" * 5_000}, "longer than 4096"),
        ({"groups": ["x" * 5_000]}, "longer than 4096"),
    ],
    ids=["attributes", "list", "string", "string-in-list"],
)
def test_oversized_subjects_are_refused(attributes: dict[str, object], message: str) -> None:
    with pytest.raises(rg.SubjectError, match=message):
        rg.Subject(id="alice", attributes=attributes)


def test_an_oversized_subject_id_is_refused() -> None:
    with pytest.raises(rg.SubjectError, match="longer than 4096"):
        rg.Subject(id="a" * 5_000)


def test_a_subject_in_many_domains_gets_one_in_filter_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10,000 tenant memberships compile to one In over 10,000 tenants, walking each once.

    Counts role-graph walks rather than timing (a timing bound breaks on a loaded
    machine): one walk per (subject, domain) is linear; a walk per (role, domain) pair
    or Casbin's manager scanning every role per lookup is what made this take seconds.
    """
    walks: list[tuple[str, str]] = []
    walk = RoleGraph._walk

    def counting(self: RoleGraph, name: str, domain: str) -> frozenset[str]:
        walks.append((name, domain))
        return walk(self, name, domain)

    monkeypatch.setattr(RoleGraph, "_walk", counting)
    model = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub.id, p.sub, r.obj.tenant) && r.act == p.act
"""
    lines = ["p, member, read"] + [f"g, alice, member, tenant{i}" for i in range(10_000)]
    policy = rg.Policy.from_casbin(model, "\n".join(lines) + "\n")
    walks.clear()
    plan = policy.plan(rg.Subject(id="alice"))
    assert len(walks) == len(set(walks)) == 10_000
    assert {name for name, _ in walks} == {"alice"}
    assert plan.kind == "conditional"
    assert policy.check(rg.Subject(id="alice"), {"tenant": "tenant9999"}).released
    assert not policy.check(rg.Subject(id="alice"), {"tenant": "tenant10000"}).released
