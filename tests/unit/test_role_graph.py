"""The plan compiler's role graph answers exactly as Casbin's own role managers do."""

from __future__ import annotations

from typing import Any

import pytest
from casbin.rbac.default_role_manager.role_manager import DomainManager, RoleManager
from hypothesis import given, settings
from hypothesis import strategies as st

import ragguard as rg
from ragguard.policy._snapshot import RoleGraph

NAMES = st.sampled_from(["alice", "bob", "admin", "editor", "viewer", "x"])
DOMAINS = st.sampled_from(["t1", "t2", "t3"])


@settings(max_examples=300, deadline=None)
@given(
    links=st.lists(st.tuples(NAMES, NAMES, DOMAINS), max_size=14),
    depth=st.integers(min_value=0, max_value=4),
)
def test_has_link_with_domains_matches_casbin(
    links: list[tuple[str, str, str]], depth: int
) -> None:
    """g(a, b, d) agrees with Casbin's DomainManager: cycles, depth limits, unknown names."""
    casbin_manager = DomainManager(depth)
    for link in links:
        casbin_manager.add_link(*link)
    graph = RoleGraph("g", links, with_domain=True, max_depth=depth)
    for a in ["alice", "bob", "admin", "editor", "viewer", "x", "nobody"]:
        for b in ["alice", "bob", "admin", "editor", "viewer", "x", "nobody"]:
            for d in ["t1", "t2", "t3", "t9"]:
                assert graph.has_link(a, b, d) == casbin_manager.has_link(a, b, d), (a, b, d)


@settings(max_examples=300, deadline=None)
@given(
    links=st.lists(st.tuples(NAMES, NAMES), max_size=12),
    depth=st.integers(min_value=0, max_value=4),
)
def test_has_link_without_domains_matches_casbin(links: list[tuple[str, str]], depth: int) -> None:
    """g(a, b) agrees with Casbin's RoleManager, including at the hierarchy depth limit."""
    casbin_manager = RoleManager(depth)
    for link in links:
        casbin_manager.add_link(*link)
    graph = RoleGraph("g", links, with_domain=False, max_depth=depth)
    for a in ["alice", "bob", "admin", "editor", "viewer", "x", "nobody"]:
        for b in ["alice", "bob", "admin", "editor", "viewer", "x", "nobody"]:
            assert graph.has_link(a, b) == casbin_manager.has_link(a, b), (a, b)


def test_domains_of_names_the_domains_where_a_user_has_links() -> None:
    """domains_of lists exactly the domains in which the name has a link of its own."""
    graph = RoleGraph(
        "g",
        [("alice", "editor", "t1"), ("alice", "viewer", "t2"), ("editor", "admin", "t3")],
        with_domain=True,
        max_depth=10,
    )
    assert graph.domains_of("alice") == frozenset({"t1", "t2"})
    assert graph.domains_of("admin") == frozenset()


MODEL = """
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


def test_first_plan_of_a_large_rbac_policy_walks_only_the_subjects_domains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 roles in 50 tenants: the first plan walks alice's two domains, nothing else.

    Casbin's DomainManager creates a role entry per looked-up name and scans every role
    of the domain to do so; querying it per (role, tenant) made this take seconds. The
    work is counted (role-graph walks, Casbin manager lookups), not timed, so a loaded
    machine cannot fail it.
    """
    walks: list[tuple[str, str]] = []
    walk = RoleGraph._walk

    def counting(self: RoleGraph, name: str, domain: str) -> frozenset[str]:
        walks.append((name, domain))
        return walk(self, name, domain)

    casbin_lookups = [0]

    def spy(original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            casbin_lookups[0] += 1
            return original(*args, **kwargs)

        return counted

    monkeypatch.setattr(RoleGraph, "_walk", counting)
    lines = [f"p, role{j}, read" for j in range(1000)]
    lines += [f"g, user{j}, role{j}, t{j % 50}" for j in range(1000)]
    lines += ["g, alice, role7, t3", "g, alice, role8, t4"]
    policy = rg.Policy.from_casbin(MODEL, "\n".join(lines) + "\n")
    walks.clear()
    for manager in (RoleManager, DomainManager):
        monkeypatch.setattr(manager, "has_link", spy(manager.has_link))
        monkeypatch.setattr(manager, "get_roles", spy(manager.get_roles))
    plan = policy.plan(rg.Subject(id="alice"))
    assert sorted(walks) == [("alice", "t3"), ("alice", "t4")]
    assert casbin_lookups[0] == 0
    monkeypatch.undo()
    assert policy.check(rg.Subject(id="alice"), {"tenant": "t3"}).released
    assert policy.check(rg.Subject(id="alice"), {"tenant": "t4"}).released
    assert not policy.check(rg.Subject(id="alice"), {"tenant": "t5"}).released
    assert plan.kind == "conditional"
