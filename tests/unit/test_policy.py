"""Policy loading, validation, plans and decisions (the compiler's user-visible behaviour)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import casbin
import pytest

import ragguard as rg
from ragguard.policy import ir

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub.id, p.sub, r.obj.tenant) && (p.dept == "*" || r.obj.dept == p.dept) && r.obj.level <= r.sub.clearance && r.act == p.act
"""

POLICY = """\
p, engineer, engineering, read, allow
p, engineer, public, read, allow
p, auditor, *, read, allow
p, engineer, legal, read, deny
g, alice, engineer, acme
g, alice, auditor, globex
"""

ALICE = rg.Subject(id="alice", attributes={"clearance": 2})


@pytest.fixture
def policy() -> rg.Policy:
    return rg.Policy.from_casbin(MODEL, POLICY)


def _abac(matcher: str) -> str:
    return MODEL.replace(MODEL.splitlines()[-1], f"m = {matcher}")


def test_released_chunk_names_the_line_that_allowed_it(policy: rg.Policy) -> None:
    """A released chunk carries the policy line (with its file line number) as the rule."""
    decision = policy.check(ALICE, {"tenant": "acme", "dept": "engineering", "level": 1})
    assert decision.released
    assert decision.rule == "line 1: p, engineer, engineering, read, allow"
    assert decision.policy_version == policy.version


def test_denied_chunk_says_which_condition_failed(policy: rg.Policy) -> None:
    """A chunk above the subject's clearance is denied with the failed comparison."""
    decision = policy.check(ALICE, {"tenant": "acme", "dept": "engineering", "level": 3})
    assert not decision.released
    assert decision.reason is not None
    assert "level 3 > 2 (r.sub.clearance)" in decision.reason


def test_missing_attribute_is_named_in_the_reason(policy: rg.Policy) -> None:
    """An absent attribute denies the chunk and the reason names the attribute."""
    decision = policy.check(ALICE, {"tenant": "acme", "level": 0})
    assert not decision.released
    assert "missing attribute 'dept'" in (decision.reason or "")


def test_role_domain_becomes_a_tenant_filter(policy: rg.Policy) -> None:
    """g(r.sub.id, p.sub, r.obj.tenant) turns into an equality on the tenant attribute."""
    plan = policy.plan(ALICE)
    assert plan.kind == "conditional"
    assert "tenant" in plan.fields
    assert policy.check(ALICE, {"tenant": "globex", "dept": "hr", "level": 0}).released
    assert not policy.check(ALICE, {"tenant": "initech", "dept": "hr", "level": 0}).released


def test_deny_line_overrides_allow_and_is_reported(policy: rg.Policy) -> None:
    """Under allow-and-no-deny, a matching deny line withholds the chunk and is named."""
    auditor_line = {"tenant": "acme", "dept": "legal", "level": 0}
    decision = policy.check(ALICE, auditor_line)
    assert not decision.released
    assert (decision.reason or "").startswith("deny line 4:")


def test_subject_without_roles_gets_deny_all(policy: rg.Policy) -> None:
    """A subject no line applies to gets a deny_all plan with an explanation."""
    plan = policy.plan(rg.Subject(id="mallory"))
    assert plan.kind == "deny_all"
    assert plan.filter == ir.FALSE
    assert "mallory" in (plan.decide({"tenant": "acme"}).reason or "")


def test_plans_are_cached_per_subject_and_version(policy: rg.Policy) -> None:
    """Equal subjects share one cached plan object; different attributes do not."""
    same = rg.Subject(id="alice", attributes={"clearance": 2})
    assert policy.plan(ALICE) is policy.plan(same)
    assert policy.plan(ALICE) is not policy.plan(
        rg.Subject(id="alice", attributes={"clearance": 3})
    )


def test_version_changes_when_a_line_changes() -> None:
    """The policy version is a content hash: one changed line gives a new version."""
    first = rg.Policy.from_casbin(MODEL, POLICY)
    second = rg.Policy.from_casbin(MODEL, POLICY.replace("public", "marketing"))
    assert first.version != second.version
    assert first.version == rg.Policy.from_casbin(MODEL, POLICY).version


def test_reload_from_enforcer_swaps_the_policy_and_invalidates_plans() -> None:
    """After the enforcer changes, reload() bumps the version and no stale plan is used."""
    enforcer, *_ = _enforcer()
    policy = rg.Policy.from_enforcer(enforcer)
    chunk = {"tenant": "acme", "dept": "sales", "level": 0}
    assert not policy.check(ALICE, chunk).released
    old_version = policy.version
    enforcer.add_policy("engineer", "sales", "read", "allow")
    assert policy.reload() is True
    assert policy.version != old_version
    assert policy.check(ALICE, chunk).released
    assert policy.reload() is False


def test_reload_rereads_policy_files(tmp_path: Path) -> None:
    """from_casbin on paths re-reads the files on reload()."""
    model_path, policy_path = tmp_path / "model.conf", tmp_path / "policy.csv"
    model_path.write_text(MODEL)
    policy_path.write_text(POLICY)
    policy = rg.Policy.from_casbin(model_path, policy_path)
    chunk = {"tenant": "acme", "dept": "sales", "level": 0}
    assert not policy.check(ALICE, chunk).released
    policy_path.write_text(POLICY + "p, engineer, sales, read, allow\n")
    assert policy.reload()
    assert policy.check(ALICE, chunk).released


def test_failed_reload_keeps_the_old_policy(tmp_path: Path) -> None:
    """A policy file broken on disk raises on reload and the previous version stays."""
    model_path, policy_path = tmp_path / "model.conf", tmp_path / "policy.csv"
    model_path.write_text(MODEL)
    policy_path.write_text(POLICY)
    policy = rg.Policy.from_casbin(model_path, policy_path)
    version = policy.version
    policy_path.write_text("p, only-two-values\n")
    with pytest.raises(rg.PolicyLoadError):
        policy.reload()
    assert policy.version == version
    assert policy.check(ALICE, {"tenant": "acme", "dept": "engineering", "level": 1}).released


def test_concurrent_reloads_never_mix_versions() -> None:
    """Plans compiled while another thread reloads come from exactly one version."""
    enforcer, *_ = _enforcer()
    policy = rg.Policy.from_enforcer(enforcer)
    versions: set[str] = set()
    errors: list[BaseException] = []

    reloads_done = threading.Event()

    def plan_repeatedly() -> None:
        try:
            i = 0
            # Plan until every reload is over (and at least 300 times), so that the
            # planning threads overlap the reloads however the scheduler runs them; the
            # last plan is made after the final reload.
            while True:
                finished = reloads_done.is_set() and i >= 300
                i += 1
                subject = rg.Subject(id="alice", attributes={"clearance": i % 4})
                plan = policy.plan(subject)
                assert plan.decide({"tenant": "acme", "dept": "x", "level": 0}).policy_version == (
                    plan.policy_version
                )
                versions.add(plan.policy_version)
                if finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    versions.add(policy.plan(rg.Subject(id="alice")).policy_version)
    threads = [threading.Thread(target=plan_repeatedly) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(20):
        enforcer.add_policy("engineer", f"dept{i}", "read", "allow")
        policy.reload()
    reloads_done.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(versions) >= 2


@pytest.mark.parametrize(
    ("matcher", "construct"),
    [
        ("r.obj.a == r.obj.b", "comparing two chunk attributes"),
        ("r.obj.public", "chunk attribute used as a boolean"),
        ("timeMatch(r.obj.t, p.dept)", "unknown function timeMatch"),
        ("r.obj.a.b == 1", "one level of attribute access"),
        ("1 < r.obj.level < 3", "chained comparisons"),
        ("r.obj.level + 1 > 2", "unsupported expression"),
        ("r.obj == p.sub", "use a chunk attribute"),
        ("r.sub.x == undefined_name", "unknown name"),
    ],
)
def test_unsupported_constructs_fail_at_load_time(matcher: str, construct: str) -> None:
    """Anything outside the supported language raises UnsupportedPolicyError when loading."""
    with pytest.raises(rg.UnsupportedPolicyError, match=construct) as info:
        rg.Policy.from_casbin(_abac(matcher), POLICY)
    assert "line 15" in str(info.value)  # names where the matcher is


def test_unsupported_effect_is_rejected() -> None:
    """Priority and other effects are refused with the supported alternatives."""
    model = MODEL.replace(
        "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
        "e = priority(p.eft) || deny",
    )
    with pytest.raises(rg.UnsupportedPolicyError, match="policy effect"):
        rg.Policy.from_casbin(model, POLICY)


def test_request_must_have_three_fields() -> None:
    """A request definition other than sub, obj, act is refused."""
    model = MODEL.replace("r = sub, obj, act", "r = sub, dom, obj, act")
    with pytest.raises(rg.UnsupportedPolicyError, match="exactly three"):
        rg.Policy.from_casbin(model, POLICY)


def test_malformed_files_raise_policy_load_error(tmp_path: Path) -> None:
    """Missing files, missing sections and wrong line widths are PolicyLoadErrors."""
    with pytest.raises(rg.PolicyLoadError, match="cannot read"):
        rg.Policy.from_casbin(tmp_path / "missing.conf")
    with pytest.raises(rg.PolicyLoadError, match="matchers"):
        rg.Policy.from_casbin(MODEL.split("[matchers]")[0], POLICY)
    with pytest.raises(rg.PolicyLoadError, match=r"policy text:2: p line has 2 values"):
        rg.Policy.from_casbin(MODEL, "p, engineer, public, read, allow\np, a, b\n")
    with pytest.raises(rg.PolicyLoadError, match="not defined in the model"):
        rg.Policy.from_casbin(MODEL, "g2, a, b\n")


def test_subject_values_are_data_not_syntax() -> None:
    """A subject attribute holding matcher syntax is compared as a plain string."""
    policy = rg.Policy.from_casbin(_abac("r.obj.dept == r.sub.dept"))
    attacker = rg.Subject(id="eve", attributes={"dept": 'eng" || "1" == "1'})
    assert not policy.check(attacker, {"dept": "eng"}).released
    assert policy.check(attacker, {"dept": 'eng" || "1" == "1'}).released


@pytest.mark.parametrize(
    ("chunk", "released"),
    [
        ({"dept": "eng"}, False),
        ({"dept": "hr"}, True),
        ({}, False),  # absent: != is false, never an exception
        ({"dept": None}, False),
        ({"dept": []}, False),
        ({"dept": ["eng", "hr"]}, False),  # any element equal → not different
        ({"dept": 3}, True),  # different types are different
    ],
)
def test_not_equal_is_false_for_absent_attributes(chunk: dict[str, object], released: bool) -> None:
    """`!=` releases only chunks that have the attribute and differ (DESIGN semantics)."""
    policy = rg.Policy.from_casbin(_abac('r.obj.dept != "eng"'))
    assert policy.check(ALICE, chunk).released is released


def test_negated_equality_releases_absent_attributes() -> None:
    """`!(a == b)` is two-valued negation: an absent attribute makes it true."""
    policy = rg.Policy.from_casbin(_abac('!(r.obj.label == "legal_hold")'))
    assert policy.check(ALICE, {}).released
    assert not policy.check(ALICE, {"label": "legal_hold"}).released


@pytest.mark.parametrize(
    ("value", "released"),
    [(True, True), (1, False), ("True", False), (1.0, False), ([False, True], True)],
)
def test_booleans_are_not_numbers(value: object, released: bool) -> None:
    """`== True` matches booleans only, not 1 or "True" (Qdrant semantics)."""
    policy = rg.Policy.from_casbin(_abac("r.obj.public == True"))
    assert policy.check(ALICE, {"public": value}).released is released


def test_ints_and_floats_compare_as_numbers_and_strings_do_not_order_with_them() -> None:
    """1 == 1.0, and "3" <= 2 is false rather than an error."""
    policy = rg.Policy.from_casbin(_abac("r.obj.level <= r.sub.clearance"))
    assert policy.check(ALICE, {"level": 2.0}).released
    assert not policy.check(ALICE, {"level": "1"}).released
    assert policy.check(ALICE, {"level": [5, 1]}).released  # any element


def test_malformed_metadata_is_denied_not_raised() -> None:
    """A nested object where a scalar is expected denies the chunk with a reason."""
    policy = rg.Policy.from_casbin(_abac('r.obj.dept == "eng"'))
    decision = policy.check(ALICE, {"dept": {"name": "eng"}})
    assert not decision.released
    assert "malformed metadata" in (decision.reason or "")
    assert not policy.check(ALICE, {"dept": float("nan")}).released


def test_policy_without_lines_is_evaluated_once_with_empty_values() -> None:
    """A pure ABAC matcher with no policy lines still compiles to a filter."""
    policy = rg.Policy.from_casbin(_abac("r.obj.owner == r.sub.id || r.obj.public == True"))
    plan = policy.plan(ALICE)
    assert plan.kind == "conditional"
    assert policy.check(ALICE, {"owner": "alice"}).released
    assert policy.check(ALICE, {"public": True}).released
    assert not policy.check(ALICE, {"owner": "bob"}).released


def test_eval_rules_are_compiled_per_line() -> None:
    """eval(p.rule) splices each line's rule exactly as Casbin does."""
    model = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = rule, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = eval(p.rule) && r.act == p.act
"""
    policy_text = (
        "p, r.sub.dept == r.obj.dept && r.obj.level <= 1, read\np, r.obj.public == True, read\n"
    )
    policy = rg.Policy.from_casbin(model, policy_text)
    eng = rg.Subject(id="x", attributes={"dept": "eng"})
    assert policy.check(eng, {"dept": "eng", "level": 1}).rule == (
        "line 1: p, r.sub.dept == r.obj.dept && r.obj.level <= 1, read"
    )
    assert policy.check(eng, {"public": True}).released
    assert not policy.check(eng, {"dept": "eng", "level": 2}).released
    with pytest.raises(rg.UnsupportedPolicyError, match="policy line 1"):
        rg.Policy.from_casbin(model, "p, r.obj.a == r.obj.b, read\n")


def test_key_match_without_wildcard_becomes_equality() -> None:
    """keyMatch on a literal path is pushed down as equality; with '*' it is a Match atom."""
    policy = rg.Policy.from_casbin(
        _abac("keyMatch(r.obj.path, p.dept)"), "p, x, /docs/public/*, read, allow\n"
    )
    plan = policy.plan(ALICE)
    assert isinstance(plan.filter, ir.Match)
    assert policy.check(ALICE, {"path": "/docs/public/a.md"}).released
    assert not policy.check(ALICE, {"path": "/docs/private/a.md"}).released
    exact = rg.Policy.from_casbin(_abac('keyMatch(r.obj.path, "/docs/a.md")'))
    assert exact.plan(ALICE).filter == ir.Eq("path", "/docs/a.md")


def test_index_specs_follow_the_matcher(policy: rg.Policy) -> None:
    """Payload indexes: keyword for equality, float for ranges, is_tenant for role domains."""
    specs = {spec.field: spec for spec in policy.index_specs()}
    assert specs["tenant"] == rg.IndexSpec("tenant", "keyword", is_tenant=True)
    assert specs["level"].schema == "float"
    assert specs["dept"].schema == "keyword"
    assert policy.index_specs(types={"level": "integer"})[1].schema == "integer"


@pytest.mark.parametrize(
    ("subject_args", "message"),
    [
        ({"id": ""}, "non-empty string"),
        ({"id": 42}, "non-empty string"),
        ({"id": "a", "attributes": {"x": {"nested": 1}}}, "dict"),
        ({"id": "a", "attributes": {"x": float("inf")}}, "finite"),
        ({"id": "a", "attributes": {"id": "b"}}, "reserved"),
        ({"id": "a", "attributes": {"x": [object()]}}, "lists may hold only"),
        ({"id": "a", "attributes": ["x"]}, "mapping"),
    ],
)
def test_malformed_subjects_are_rejected(subject_args: dict[str, object], message: str) -> None:
    """Subjects that are not JSON-like raise SubjectError with what was wrong."""
    with pytest.raises(rg.SubjectError, match=message):
        rg.Subject(**subject_args)  # type: ignore[arg-type]


def test_no_subject_is_an_error(policy: rg.Policy) -> None:
    """plan(None) raises SubjectError: there is no unfiltered fallback."""
    with pytest.raises(rg.SubjectError, match="no subject"):
        policy.plan(None)  # type: ignore[arg-type]


def test_non_boolean_subject_flag_is_an_error_not_a_release() -> None:
    """A subject attribute used as a boolean must be true/false, else SubjectError."""
    policy = rg.Policy.from_casbin(_abac("r.sub.admin || r.obj.public == True"))
    assert policy.plan(rg.Subject(id="a", attributes={"admin": True})).kind == "allow_all"
    with pytest.raises(rg.SubjectError, match="used as a boolean"):
        policy.plan(rg.Subject(id="a", attributes={"admin": "yes"}))


def test_role_manager_pattern_functions_are_unsupported() -> None:
    """Enforcers with role pattern matching cannot be enumerated and are refused."""
    enforcer, *_ = _enforcer()
    enforcer.add_named_domain_matching_func("g", casbin.util.key_match2)
    with pytest.raises(rg.UnsupportedPolicyError, match="pattern matching"):
        rg.Policy.from_enforcer(enforcer)


def _enforcer() -> tuple[casbin.Enforcer, None]:
    from ragguard.policy._snapshot import load_enforcer

    enforcer, *_ = load_enforcer(MODEL, POLICY)
    return enforcer, None


@pytest.mark.parametrize("function", ["regexMatch", "keyMatch2", "keyMatch3", "keyMatch5"])
def test_an_invalid_pattern_in_a_policy_line_fails_loading(function: str) -> None:
    """keyMatch2-5 and regexMatch build a regex from the policy's pattern: a broken one
    fails loading with PolicyLoadError naming the line and the pattern, even on a line
    the effect ignores (Casbin evaluates every line, so it would raise on every enforce)."""
    for effect in ("allow", "deny", "indeterminate"):
        with pytest.raises(
            rg.PolicyLoadError,
            match=rf"policy line 2: invalid regular expression '/kb/open/\?\*' in {function}\(\)",
        ):
            rg.Policy.from_casbin(
                _abac(f"{function}(r.obj.path, p.dept)"),
                f"p, x, /kb/ok, read, allow\np, x, /kb/open/?*, read, {effect}\n",
            )


def test_an_invalid_literal_pattern_fails_loading_in_the_matcher_and_in_eval_rules() -> None:
    """A literal pattern is checked where it is written: the matcher, or an eval rule."""
    with pytest.raises(rg.PolicyLoadError, match=r"matcher.*invalid regular expression '\('"):
        rg.Policy.from_casbin(_abac('regexMatch(r.obj.path, "(")'), "p, x, y, read, allow\n")
    eval_model = _abac("eval(p.dept) && r.act == p.act")
    with pytest.raises(
        rg.PolicyLoadError, match=r"policy line 2 \(eval rule\): invalid regular expression"
    ):
        rg.Policy.from_casbin(
            eval_model,
            "p, x, r.obj.level < 3, read, allow\np, x, regexMatch(r.obj.path, 'a**'), read, allow\n",
        )


def test_a_user_named_like_a_role_holds_it_in_every_present_domain_only() -> None:
    """Casbin's g(x, x, domain) holds for any domain; ragguard needs one to be there: a
    chunk without the domain attribute is withheld, any present value (a number too) will
    do, and the plan's branch for the line is 'tenant exists'."""
    policy = rg.Policy.from_casbin(MODEL, POLICY + "p, alice, engineering, read, allow\n")
    # alice's own line: "tenant exists" (any tenant), not TRUE
    filter_json = json.dumps(ir.to_json(policy.plan(ALICE).filter))
    assert '{"and": [{"exists": "tenant"}, {"eq": ["dept", "engineering"]}]}' in filter_json
    chunk = {"dept": "engineering", "level": 1}
    assert policy.check(ALICE, {**chunk, "tenant": "initech"}).released
    assert policy.check(ALICE, {**chunk, "tenant": 7}).released
    assert policy.check(ALICE, {**chunk, "tenant": ["x"]}).released
    absents: tuple[dict[str, object], ...] = ({}, {"tenant": None}, {"tenant": []})
    for absent in absents:
        decision = policy.check(ALICE, {**chunk, **absent})
        assert not decision.released
        assert "missing attribute 'tenant'" in (decision.reason or "")


def test_an_invalid_pattern_from_a_subject_attribute_is_a_policy_error_at_plan_time() -> None:
    """A pattern only the subject supplies is checked when a plan needs it: PolicyError
    naming the pattern, never re.error from a search."""
    policy = rg.Policy.from_casbin(
        _abac("regexMatch(r.obj.path, r.sub.paths)"), "p, x, y, read, allow\n"
    )
    subject = rg.Subject(id="alice", attributes={"paths": "/kb/open/?*"})
    with pytest.raises(rg.PolicyError, match=r"invalid regular expression '/kb/open/\?\*'"):
        policy.check(subject, {"path": "/kb/(open/a"})


def test_an_unusable_pattern_in_chunk_metadata_denies_that_chunk() -> None:
    """A pattern taken from the chunk that Casbin cannot use (an invalid regex, keyMatch4's
    token-count error) means 'no match' for that chunk, not an exception at query time."""
    policy = rg.Policy.from_casbin(
        _abac("regexMatch(p.dept, r.obj.pattern)"), "p, x, /kb/open/a, read, allow\n"
    )
    assert not policy.check(ALICE, {"pattern": "[unclosed"}).released
    assert policy.check(ALICE, {"pattern": "^/kb/open/"}).released
    groups = rg.Policy.from_casbin(
        _abac("keyMatch4(p.dept, r.obj.pattern)"), "p, x, /a/b/1, read, allow\n"
    )
    assert not groups.check(ALICE, {"pattern": "/a/(b)/{id}"}).released
    assert groups.check(ALICE, {"pattern": "/a/{x}/{id}"}).released


def test_a_reason_never_claims_an_order_between_a_string_and_a_number() -> None:
    """'level '1' > 2' would be false: the reason says the values cannot be ordered."""
    policy = rg.Policy.from_casbin(
        _abac("r.obj.level <= r.sub.clearance"), "p, x, y, read, allow\n"
    )
    assert policy.check(ALICE, {"level": "1"}).reason == (
        "level '1' cannot be ordered against 2 (r.sub.clearance)"
    )
    assert policy.check(ALICE, {"level": True}).reason == (
        "level True cannot be ordered against 2 (r.sub.clearance)"
    )
    assert policy.check(ALICE, {"level": 3}).reason == "level 3 > 2 (r.sub.clearance)"


@pytest.mark.parametrize(
    "matcher", ['r.obj.a == ("x", "y")', '["x"] != r.obj.a', "r.obj.level <= (1, 2)"]
)
def test_comparing_with_a_list_literal_is_refused(matcher: str) -> None:
    """Casbin compares the whole tuple (never equal to a value): ragguard refuses, says `in`."""
    with pytest.raises(rg.UnsupportedPolicyError, match="use 'in'"):
        rg.Policy.from_casbin(_abac(matcher))
