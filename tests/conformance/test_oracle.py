"""The oracle itself: where Python's operators already agree with DESIGN.md, it is Casbin.

The oracle wraps request values and replaces Casbin's generated ``g()`` and matching
functions (see ``_casbin_oracle.py``). On clean values (every attribute present, one
type per attribute) none of that may change a single decision of the unmodified
``casbin.Enforcer``. And a few hand-checked decisions pin the wrapped semantics.
"""

from __future__ import annotations

import pytest
from _casbin_oracle import CasbinOracle, PlainCasbin
from _conformance import conformance_settings
from _policy_families import Case, cases, model_text
from hypothesis import given


@pytest.mark.parametrize("family", ["department", "rbac", "deny", "paths"])
def test_oracle_equals_plain_casbin_on_clean_values(family: str) -> None:
    """Wrapping values and re-routing g()/keyMatch() changes nothing on clean values."""

    @conformance_settings(60)
    @given(case=cases(family, clean=True))
    def agrees(case: Case) -> None:
        oracle = CasbinOracle(case.model, case.policy_text)
        plain = PlainCasbin(case.model, case.policy_text)
        for subject_id, attributes in case.subjects:
            for metadata in case.chunks:
                expected = plain.enforce(subject_id, attributes, metadata, case.action)
                got = oracle.enforce(subject_id, attributes, metadata, case.action)
                assert got is expected, (case.describe(), subject_id, attributes, metadata)

    agrees()


ABAC = model_text(
    'r.obj.dept != "hr" && r.obj.level <= r.sub.clearance && r.obj.public == True'
    ' && "x" in r.obj.tags'
)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"dept": "eng", "level": 1, "public": True, "tags": ["x"]}, True),
        ({"level": 1, "public": True, "tags": ["x"]}, False),  # absent dept: != is false
        ({"dept": None, "level": 1, "public": True, "tags": ["x"]}, False),
        ({"dept": [], "level": 1, "public": True, "tags": ["x"]}, False),
        ({"dept": ["hr", "eng"], "level": 1, "public": True, "tags": ["x"]}, False),
        ({"dept": "eng", "level": 1.0, "public": True, "tags": ["x"]}, True),  # 1.0 is 1
        ({"dept": "eng", "level": "1", "public": True, "tags": ["x"]}, False),  # "1" <= 2
        ({"dept": "eng", "level": True, "public": True, "tags": ["x"]}, False),  # no order
        ({"dept": "eng", "level": 1, "public": 1, "tags": ["x"]}, False),  # 1 is not True
        ({"dept": "eng", "level": [5, 1], "public": True, "tags": ["x"]}, True),  # any element
        ({"dept": "eng", "level": 1, "public": True, "tags": "x"}, True),
        ({"dept": "eng", "level": 1, "public": True, "tags": "xyz"}, True),  # substring, as Casbin
        ({"dept": "eng", "level": 1, "public": True, "tags": ["xyz"]}, False),  # list: element
        ({"dept": "eng", "level": 1, "public": True, "tags": 5}, False),  # not a string
        ({"dept": "eng", "level": 1, "public": True, "tags": "abc"}, False),
    ],
)
def test_oracle_applies_the_documented_value_semantics(
    metadata: dict[str, object], expected: bool
) -> None:
    """Absent compares false, typed equality, any-element lists (DESIGN.md, Semantics)."""
    oracle = CasbinOracle(ABAC)
    assert oracle.enforce("alice", {"clearance": 2}, metadata) is expected


def test_oracle_role_domains_are_typed_strings() -> None:
    """g() with a chunk's tenant: any string element names a domain, a number none."""
    model = model_text("g(r.sub.id, p.sub, r.obj.tenant) && r.act == p.act", roles="_, _, _")
    oracle = CasbinOracle(model, "p, reader, x, read\ng, alice, reader, 5\n")
    assert oracle.enforce("alice", {}, {"tenant": "5"})
    assert oracle.enforce("alice", {}, {"tenant": ["1", "5"]})
    assert not oracle.enforce("alice", {}, {"tenant": 5})
    assert not oracle.enforce("alice", {}, {})
    assert not oracle.enforce("bob", {}, {"tenant": "5"})


@pytest.mark.parametrize(
    ("matcher", "policy", "subject", "metadata"),
    [
        # Casbin tests substrings when a string is on the right of in / not in.
        (
            "r.obj.dept not in p.obj && r.act == p.act",
            "p, x, hr-restricted, read\n",
            {},
            {"dept": "hr"},
        ),
        (
            "r.obj.dept in p.obj && r.act == p.act",
            "p, x, hr-restricted, read\n",
            {},
            {"dept": "hr"},
        ),
        ("r.sub.id not in r.obj.blocked", "", {}, {"blocked": "alice,bob"}),
        ("r.sub.id in r.obj.blocked", "", {}, {"blocked": "malice"}),
        ("r.obj.dept in r.sub.dept", "", {"dept": "eng-platform"}, {"dept": "eng"}),
        ('r.obj.dept in "eng-platform"', "", {}, {"dept": "platform"}),
        ('r.obj.dept in "eng-platform"', "", {}, {"dept": "ops"}),
        ("r.sub.id in r.obj.blocked", "", {}, {"blocked": ["alice,bob"]}),
    ],
)
def test_oracle_membership_in_a_string_is_casbins_substring_test(
    matcher: str, policy: str, subject: dict[str, object], metadata: dict[str, object]
) -> None:
    """``in`` with a string on the right: the oracle decides as unmodified Casbin."""
    model = model_text(matcher)
    expected = PlainCasbin(model, policy).enforce("alice", subject, metadata)
    assert CasbinOracle(model, policy).enforce("alice", subject, metadata) is expected
