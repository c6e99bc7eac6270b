"""Claims in the docs that the code must make true (issue 19, item 4)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import casbin

import ragguard as rg

ROOT = Path(__file__).resolve().parents[2]

DOMAIN_MODEL = """
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
DOMAIN_POLICY = "p, member, read\ng, alice, member, acme\ng, gina, member, globex\n"


def test_list_valued_role_domain_row_matches_ragguard_and_casbin(tmp_path: Path) -> None:
    """The "Differences from plain casbin.enforce" table has the list-valued role domain
    row, and both columns are what the two actually do."""
    text = (ROOT / "docs" / "policy-language.md").read_text(encoding="utf-8")
    table = text.split("## Differences from plain `casbin.enforce`", 1)[1].split("\n## ", 1)[0]
    [row] = [line for line in table.splitlines() if "role domain from a list" in line]
    assert '["acme", "globex"]' in row
    assert "denied" in row
    assert "released" in row

    chunk = {"tenant": ["acme", "globex"]}
    policy = rg.Policy.from_casbin(DOMAIN_MODEL, DOMAIN_POLICY)
    model = tmp_path / "model.conf"
    model.write_text(DOMAIN_MODEL, encoding="utf-8")
    csv = tmp_path / "policy.csv"
    csv.write_text(DOMAIN_POLICY, encoding="utf-8")
    enforcer = casbin.Enforcer(str(model), str(csv))
    obj = types.SimpleNamespace(**chunk)
    for user in ("alice", "gina"):
        assert policy.check(rg.Subject(id=user), chunk).released  # any element: released
        assert not enforcer.enforce(types.SimpleNamespace(id=user), obj, "read")  # str(list)
    assert not policy.check(rg.Subject(id="mallory"), chunk).released


def test_conformance_readme_points_to_the_projects_own_docs() -> None:
    """tests/conformance/README.md cites documents that exist in this repository."""
    path = ROOT / "tests" / "conformance" / "README.md"
    text = path.read_text(encoding="utf-8")
    assert "DESIGN.md" not in text
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    assert all((path.parent / link).exists() for link in links), links
