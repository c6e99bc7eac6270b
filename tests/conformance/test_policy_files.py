"""``Policy.from_casbin(model.conf, policy.csv)`` reads the files exactly as Casbin does.

The oracle in the other conformance tests takes its policy lines through Casbin's API;
here the *files* are the input: ``casbin.Enforcer(model_path, policy_path)`` (pycasbin's
file adapter) and ragguard must hold the same lines, and so decide the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import casbin
import pytest
from _casbin_oracle import CasbinOracle
from _conformance import conformance_settings
from hypothesis import given
from hypothesis import strategies as st

import ragguard as rg

MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (r.sub.id == p.sub || g(r.sub.id, p.sub)) && r.obj.dept == p.obj && r.act == p.act
"""

EVAL_MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, rule, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.id == p.sub && eval(p.rule) && r.act == p.act
"""

# Pieces of a value: plain words, quotes, commas inside and outside brackets, spaces.
_piece = st.sampled_from(
    ["alice", "eng", "a b", '"', '"alice"', "'x'", "(a, b)", "[1,2]", "(", ")", ",", " ", "#", "é"]
)
_value = st.lists(_piece, min_size=1, max_size=4).map("".join)


def _write(tmp: Path, policy_text: str) -> tuple[Path, Path]:
    model_path, policy_path = tmp / "model.conf", tmp / "policy.csv"
    model_path.write_text(MODEL, encoding="utf-8")
    policy_path.write_text(policy_text, encoding="utf-8")
    return model_path, policy_path


def _casbin_lines(model_path: Path, policy_path: Path) -> tuple[Any, Any] | None:
    """The p and g lines as pycasbin's file adapter reads them, or None if it fails."""
    try:
        enforcer = casbin.Enforcer(str(model_path), str(policy_path))
    except Exception:
        return None
    return enforcer.get_policy(), enforcer.get_grouping_policy()


def test_policy_lines_are_read_as_casbin_reads_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Quotes stay part of a value, commas split only outside ()/[]: as in pycasbin."""
    tmp = tmp_path_factory.mktemp("files")

    @conformance_settings(300)
    @given(
        rows=st.lists(
            st.tuples(st.sampled_from(["p", "g"]), st.lists(_value, min_size=1, max_size=4)),
            min_size=1,
            max_size=4,
        ),
        separator=st.sampled_from([", ", ",", " , "]),
    )
    def same_lines(rows: list[tuple[str, list[str]]], separator: str) -> None:
        text = "".join(separator.join([key, *values]) + "\n" for key, values in rows)
        model_path, policy_path = _write(tmp, text)
        expected = _casbin_lines(model_path, policy_path)
        if expected is None or any(len(line) != 3 for line in expected[0]):
            # Casbin fails on this file (or holds p lines of the wrong length, which fail
            # at enforce time): ragguard refuses it when loading. (Longer g lines are
            # truncated to the role definition by both.)
            with pytest.raises(rg.PolicyLoadError):
                rg.Policy.from_casbin(model_path, policy_path)
            return
        policy = rg.Policy.from_casbin(model_path, policy_path)
        got = (policy.enforcer.get_policy(), policy.enforcer.get_grouping_policy())
        assert got == expected, text

    same_lines()


def test_a_quoted_value_grants_what_casbin_grants(tmp_path: Path) -> None:
    """Regression: ragguard read ``"alice"`` as ``alice`` (CSV) and released chunks that
    ``casbin.enforce`` on the same files denies; Casbin keeps the quotes."""
    text = 'p, "alice", eng, read\np, bob, "eng", read\n'
    model_path, policy_path = _write(tmp_path, text)
    policy = rg.Policy.from_casbin(model_path, policy_path)
    oracle = CasbinOracle(MODEL, text)
    for who in ("alice", "bob", '"alice"'):
        decision = policy.check(rg.Subject(id=who), {"dept": "eng"})
        assert decision.released is oracle.enforce(who, {}, {"dept": "eng"}), who
    assert policy.check(rg.Subject(id='"alice"'), {"dept": "eng"}).released
    assert not policy.check(rg.Subject(id="alice"), {"dept": "eng"}).released


def test_an_eval_rule_with_a_tuple_is_one_value(tmp_path: Path) -> None:
    """Regression: ``r.obj.dept in ("eng", "hr")`` in a policy line is one value to
    Casbin; ragguard split it at the comma and refused a valid policy."""
    (tmp_path / "model.conf").write_text(EVAL_MODEL, encoding="utf-8")
    text = 'p, alice, r.obj.dept in ("eng", "hr") && r.obj.level <= 2, read\n'
    (tmp_path / "policy.csv").write_text(text, encoding="utf-8")
    policy = rg.Policy.from_casbin(tmp_path / "model.conf", tmp_path / "policy.csv")
    enforcer = casbin.Enforcer(str(tmp_path / "model.conf"), str(tmp_path / "policy.csv"))
    assert policy.enforcer.get_policy() == enforcer.get_policy()
    oracle = CasbinOracle(EVAL_MODEL, text)
    alice = rg.Subject(id="alice")
    for metadata in ({"dept": "hr", "level": 1}, {"dept": "eng", "level": 3}, {"dept": "x"}):
        assert policy.check(alice, metadata).released is oracle.enforce("alice", {}, metadata)
    assert policy.check(alice, {"dept": "hr", "level": 1}).released


def test_a_quoted_eval_rule_is_refused_not_read_as_a_rule(tmp_path: Path) -> None:
    """A quoted rule is a string to Casbin (truthy: it would grant everything);
    ragguard refuses it at load time instead of guessing either way."""
    with pytest.raises(rg.UnsupportedPolicyError, match="policy line 1"):
        rg.Policy.from_casbin(EVAL_MODEL, 'p, alice, "r.obj.level <= 1", read\n')
