"""A plan remembers decisions by the typed values it reads (issue 15: the guard's cost
per hit). The memo must never hand one chunk the decision of another that Python calls
equal but Casbin does not (``1``, ``1.0``, ``True``, ``"1"``; ``0.0`` and ``-0.0``;
``[1]`` and ``[True]``): every memoised decision equals a fresh one and Casbin's."""

from __future__ import annotations

import random
from typing import Any

import pytest
from _casbin_oracle import CasbinOracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragguard as rg
from ragguard.policy import _plan
from ragguard.policy._plan import memo_key

MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, rule, act, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub.id == p.sub && eval(p.rule) && r.act == p.act
"""

# Rules that tell the lookalike values apart (or not), as Casbin does.
RULES = [
    "r.obj.n == 1",
    "r.obj.n == True",
    "r.obj.n == '1'",
    "r.obj.n > 0",
    "r.obj.n >= 1.5",
    "r.obj.n == 0",
    "r.obj.n != 0",
    "'1' in r.obj.s",
    "r.obj.s == 'a'",
    "r.obj.n in ('a', 1)",
    "r.obj.n == 9007199254740993",
]

# Values Python's == conflates (1 == 1.0 == True, 0.0 == -0.0, [1] == [True]) and
# their neighbours, integers beyond 2**53, strings that look like numbers.
LOOKALIKES: list[Any] = [
    1,
    1.0,
    True,
    "1",
    0,
    0.0,
    -0.0,
    False,
    "",
    None,
    [],
    [1],
    [True],
    [1.0],
    ["1"],
    [1, "a"],
    2**53 + 1,
    float(2**53),
    2**64,
    "True",
    "x1x",
    "a",
    1.5,
    2,
]


def _policy_text(rules: list[tuple[str, str]]) -> str:
    return "".join(f"p, tina, {rule}, read, {effect}\n" for rule, effect in rules)


def _chunks(values: list[Any]) -> list[dict[str, Any]]:
    return [{"n": n, "s": s} for n in values for s in ("a", "x1x", 1, ["a", "1"], None)]


lines = st.lists(
    st.tuples(st.sampled_from(RULES), st.sampled_from(["allow", "allow", "deny"])),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, st.randoms(use_true_random=False))
def test_memoised_decisions_equal_fresh_ones_and_casbin(
    rules: list[tuple[str, str]], rng: random.Random
) -> None:
    text = _policy_text(rules)
    policy = rg.Policy.from_casbin(MODEL, text)
    oracle = CasbinOracle(MODEL, text)
    plan = policy.plan(rg.Subject(id="tina"))
    chunks = _chunks(LOOKALIKES)
    # Twice, in two orders: the second pass is answered from the memo, and a lookalike
    # decided first must not answer for another.
    for order in (chunks, rng.sample(chunks, len(chunks))):
        for chunk in order:
            decision = plan.decide(chunk)
            if plan.kind == "deny_all":
                continue
            fresh = plan._decide(chunk, plan.policy_version)
            assert (decision.released, decision.rule, decision.reason) == (
                fresh.released,
                fresh.rule,
                fresh.reason,
            ), (text, chunk)
            assert decision.released == oracle.enforce("tina", {}, chunk), (text, chunk)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (1, True),
        (1, 1.0),
        (1, "1"),
        (0.0, -0.0),
        ([1], [True]),
        ([1], [1.0]),
        (2**53, float(2**53)),
    ],
)
def test_lookalikes_get_different_keys(first: Any, second: Any) -> None:
    assert first == second or str(first) == str(second)  # what a naive memo would conflate
    assert memo_key({"n": first}, ("n",)) != memo_key({"n": second}, ("n",))


def test_absent_none_and_empty_list_are_distinct_keys() -> None:
    keys = {
        memo_key({}, ("n",)),
        memo_key({"n": None}, ("n",)),
        memo_key({"n": []}, ("n",)),
    }
    assert len(keys) == 3


@pytest.mark.parametrize(
    "value", [{"a": 1}, [[1]], [{"a": 1}], (1,), b"1", type("S", (str,), {})("a")]
)
def test_values_it_cannot_key_are_decided_afresh(value: Any) -> None:
    assert memo_key({"n": value}, ("n",)) is None


def test_only_the_fields_the_plan_reads_are_keyed() -> None:
    policy = rg.Policy.from_casbin(MODEL, _policy_text([("r.obj.n == 1", "allow")]))
    plan = policy.plan(rg.Subject(id="tina"))
    first = plan.decide({"n": 1, "other": "x"})
    # Another value of an attribute the plan never reads: the same decision object.
    assert plan.decide({"n": 1, "other": "y"}) is first
    assert plan.decide({"n": 1.5, "other": "x"}).released is False


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_plan, "DECISION_MEMO_SIZE", 8)
    policy = rg.Policy.from_casbin(MODEL, _policy_text([("r.obj.n > 0", "allow")]))
    plan = policy.plan(rg.Subject(id="tina"))
    for n in range(100):
        assert plan.decide({"n": n}).released is (n > 0)
        assert len(plan._memo) <= 8
