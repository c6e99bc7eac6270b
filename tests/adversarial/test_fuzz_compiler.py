"""Differential fuzzing of the policy compiler: casbin.enforce = check = EdgeStore filter.

Every generated case (``_matcher_grammar.fuzz_cases``) is decided three ways for every
(subject, chunk) pair:

1. the oracle, ``casbin.enforce`` with request values wrapped to DESIGN.md's semantics
   (``tests/conformance/_casbin_oracle.py``);
2. ragguard: ``policy.check(subject, metadata).released`` and the plan's filter
   evaluated by the compiled predicate;
3. the real Qdrant engine: the plan's filter translated for an ``EdgeStore`` and run
   over all the case's chunks at once; the points it returns must be exactly the
   released ones when the pushdown claims to be exact, a superset otherwise.

Cases ragguard refuses must be refused when the policy is loaded (and only cases that
hold a construct outside the documented language). A chunk with a malformed value in
an attribute the plan reads is denied; otherwise the malformed attribute plays no part
and the oracle decides the chunk without it. A subject with a malformed attribute is
refused when built (``SubjectError``).

CI: derandomised, ``DEFAULT_EXAMPLES`` cases. Nightly / by hand:
``RAGGUARD_FUZZ_EXAMPLES=20000 pytest tests/adversarial/test_fuzz_compiler.py`` runs
that many fresh random cases. See docs/fuzzing.md.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
from _casbin_oracle import MATCHING_FUNCTIONS, CasbinOracle, Val, _ordered
from _conformance import DIM, EdgeBackend, _null_list
from _matcher_grammar import FuzzCase, fuzz_cases, is_malformed, storable
from _policy_families import ALLOW_EFFECT, DENY_EFFECT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragguard as rg
from ragguard.policy import ir
from ragguard.policy._predicate import compile_check, normalize_metadata

EXAMPLES_ENV = "RAGGUARD_FUZZ_EXAMPLES"
DEFAULT_EXAMPLES = 400
FILE_EXAMPLES = 150  # the same cases again, as files with other bytes


def _fuzz_settings(default: int = DEFAULT_EXAMPLES) -> settings:
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    examples = int(raw) if raw else default
    if examples < 1:
        raise ValueError(f"{EXAMPLES_ENV} must be a positive integer, got {raw!r}")
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
        derandomize=not raw,  # CI: the same cases every run; long mode: fresh ones
        print_blob=True,
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeBackend]:
    """One EdgeStore for the whole module; each case upserts and deletes its chunks."""
    edge = EdgeBackend(tmp_path_factory.mktemp("fuzz-edge") / "shard")
    yield edge
    edge.close()


_ids = itertools.count(1)
_rng = np.random.default_rng(7)


def _build_subject(subject_id: str, attributes: Mapping[str, Any]) -> rg.Subject | None:
    """The Subject, or None when a malformed attribute makes ragguard refuse it."""
    malformed = any(is_malformed(value) for value in attributes.values())
    if malformed:
        with pytest.raises(rg.SubjectError):
            rg.Subject(id=subject_id, attributes=dict(attributes))
        return None
    return rg.Subject(id=subject_id, attributes=dict(attributes))


def holds(expr: ir.Expr, metadata: Mapping[str, Any]) -> bool:
    """A caller's filter decided from the IR's documented meaning (ragguard/policy/ir.py),
    with the oracle's typed values (``Val``), not ragguard's compiled predicate."""
    if isinstance(expr, ir.Const):
        return expr.value
    if isinstance(expr, ir.Not):
        return not holds(expr.item, metadata)
    if isinstance(expr, ir.And):
        return all(holds(item, metadata) for item in expr.items)
    if isinstance(expr, ir.Or):
        return any(holds(item, metadata) for item in expr.items)
    value = Val(metadata.get(expr.field))
    if isinstance(expr, ir.Exists):
        return bool(value.items)
    if isinstance(expr, ir.Eq):
        return value == expr.value
    if isinstance(expr, ir.In):
        return any(value == item for item in expr.values)
    if isinstance(expr, ir.Range):
        # One element must satisfy every bound (Qdrant's range on an array).
        return any(
            all(_ordered(op, item, bound) for op, bound in expr.bounds()) for item in value.items
        )
    if isinstance(expr, ir.Match):
        function = MATCHING_FUNCTIONS[expr.function]
        strings = [item for item in value.items if isinstance(item, str)]
        if expr.field_first:
            return any(function(item, expr.other) for item in strings)
        return any(function(expr.other, item) for item in strings)
    raise TypeError(f"no reference for {expr!r}")


def _expected(
    oracle: CasbinOracle,
    subject_id: str,
    attributes: Mapping[str, Any],
    metadata: Mapping[str, Any],
    action: str,
    fields: frozenset[str],
    where: ir.Expr | None = None,
) -> bool | None:
    """The oracle's verdict; a malformed attribute the plan reads denies the chunk.

    ``None`` when Casbin has no verdict: it raises on a keyMatch2 pattern that is not a
    regular expression even in a line the effect ignores (a deny line under the allow
    effect) or that a short-circuit would skip; ragguard never looks at such a line.
    """
    broken = {name for name, value in metadata.items() if is_malformed(value)}
    if broken & fields:
        return False
    clean = {name: value for name, value in metadata.items() if name not in broken}
    try:
        allowed = oracle.enforce(subject_id, attributes, clean, action)
    except re.error:
        return None
    return allowed and (where is None or holds(where, clean))


def _load(
    case: FuzzCase, load: Callable[[], rg.Policy] | None = None
) -> rg.Policy | rg.UnsupportedPolicyError | rg.PolicyLoadError:
    """The policy, or the refusal, or a pattern Casbin cannot use (the only errors
    loading may raise here)."""
    try:
        if load is not None:
            return load()
        return rg.Policy.from_casbin(case.model, case.policy_text)
    except (rg.UnsupportedPolicyError, rg.PolicyLoadError) as error:
        return error


def _casbin_refusal_of(oracle: Callable[[], CasbinOracle]) -> Exception | None:
    try:
        oracle()
    except Exception as error:  # whatever Casbin raises on these files
        return error
    return None


def _plan(policy: rg.Policy, subject: rg.Subject, action: str) -> rg.Plan | rg.PolicyError:
    """The plan, or a PolicyError that is not a load-time refusal."""
    try:
        return policy.plan(subject, action)
    except rg.UnsupportedPolicyError:
        raise  # refusals belong to load time, never to a query
    except rg.PolicyError as error:
        return error


def _casbin_refusal(case: FuzzCase) -> Exception | None:
    """What ``casbin.Enforcer`` raises when it is built on the case, if anything (an
    effect string it does not know)."""
    try:
        CasbinOracle(case.model, case.policy_text)
    except Exception as error:  # Casbin raises RuntimeError, ValueError, ...
        return error
    return None


_RAGGUARD_EFFECTS = (ALLOW_EFFECT, DENY_EFFECT)


def _effect_of(model: str) -> str:
    """The ``e = ...`` value of a model as Casbin's config reader sees it (stripped)."""
    [line] = [line for line in model.splitlines() if line.startswith("e =")]
    return line.split("=", 1)[1].strip()


def run_fuzz_case(
    case: FuzzCase,
    backend: EdgeBackend,
    *,
    load: Callable[[], rg.Policy] | None = None,
    oracle: Callable[[], CasbinOracle] | None = None,
    refused: Callable[[rg.PolicyLoadError], bool] | None = None,
) -> None:
    """The three-way agreement for every (subject, chunk) of ``case``.

    ``load`` and ``oracle`` build the policy and the oracle (default: from the case's
    text); the file tests pass loaders that read the same bytes from disk. ``refused``
    tells which PolicyLoadErrors the caller expects besides the documented ones.
    """
    refusal = _casbin_refusal_of(oracle) if oracle else _casbin_refusal(case)
    policy = _load(case, load)
    if refusal is not None:
        # Casbin cannot even build an enforcer (e.g. an effect string with other
        # spacing): ragguard must refuse the policy when loading, saying why.
        assert isinstance(policy, rg.PolicyLoadError), (
            f"casbin refuses ({refusal!r}), ragguard loaded {policy!r}\n{case.describe()}"
        )
        return
    if _effect_of(case.model) not in _RAGGUARD_EFFECTS:
        # An effect Casbin runs that is outside ragguard's language.
        assert isinstance(policy, rg.UnsupportedPolicyError), (
            f"accepted an effect outside the language: {policy!r}\n{case.describe()}"
        )
        return
    if isinstance(policy, rg.PolicyLoadError) and refused is not None and refused(policy):
        return
    if isinstance(policy, rg.PolicyLoadError):
        # Documented: a pattern a policy line or the matcher gives keyMatch2 that is not
        # a valid regular expression fails loading (Casbin raises on every enforce).
        assert "invalid regular expression" in str(policy), str(policy)
        assert "keyMatch2(" in case.describe(), str(policy)
        return
    if isinstance(policy, rg.UnsupportedPolicyError):
        assert case.unsupported, f"refused a supported policy: {policy}\n{case.describe()}"
        return
    assert not case.unsupported, f"accepted an unsupported construct\n{case.describe()}"
    if oracle is None:
        reference = CasbinOracle(case.model, case.policy_text)
        intended = ([list(line) for line in case.p_lines], [list(link) for link in case.g_lines])
        assert reference.lines == intended, "Casbin reads the generated policy text differently"
    else:
        reference = oracle()

    people = [
        (subject_id, attributes, subject)
        for subject_id, attributes in case.subjects
        if (subject := _build_subject(subject_id, attributes)) is not None
    ]
    if not people:
        return
    ids = [next(_ids) for _ in case.chunks]
    vectors = _rng.normal(size=(len(case.chunks), DIM)) + 0.1
    # Qdrant payloads are JSON: NaN and infinities cannot be stored, only decided.
    stored = {pid for pid, metadata in zip(ids, case.chunks, strict=True) if storable(metadata)}
    chunks = [
        rg.Chunk(text=f"chunk {i}", metadata=dict(metadata), vector=list(row), id=pid)
        for i, (metadata, row, pid) in enumerate(zip(case.chunks, vectors, ids, strict=True))
        if pid in stored
    ]
    by_id = {str(pid): metadata for pid, metadata in zip(ids, case.chunks, strict=True)}
    backend.load(chunks, policy.index_specs())
    query = list(_rng.normal(size=DIM) + 0.1)
    try:
        for subject_id, attributes, subject in people:
            plan = _plan(policy, subject, case.action)
            if isinstance(plan, rg.PolicyError):
                # Documented: a keyMatch2 pattern that is not a valid regular expression
                # fails the plan that needs it (nothing is released).
                assert "invalid regular expression" in str(plan), str(plan)
                assert "keyMatch2(" in case.describe(), str(plan)
                continue
            if case.where is not None:
                plan = plan.narrow(case.where)
            fields = frozenset(ir.fields_of(plan.filter))
            # Malformed values deny a chunk when any line's residual reads them
            # (plan.fields), even if the combined filter folded them away (allow_all).
            read = plan.fields | fields
            predicate = compile_check(plan.filter)
            authorised: set[str] = set()
            undecided: set[str] = set()
            for pid, metadata in zip(ids, case.chunks, strict=True):
                expected = _expected(
                    reference, subject_id, attributes, metadata, case.action, read, case.where
                )
                decision = plan.decide(metadata)
                if case.where is None:
                    assert policy.check(subject, metadata, case.action) == decision
                if expected is None:
                    assert "keyMatch2(" in case.describe()
                    undecided.add(str(pid))
                    continue
                context = (
                    f"\n{case.describe()}--- subject {subject_id!r} {dict(attributes)!r}\n"
                    f"--- chunk {dict(metadata)!r}\n--- plan {plan.kind} {plan.filter!r}\n"
                    f"--- decision {decision}"
                )
                assert decision.released is expected, "policy.check disagrees with casbin" + context
                if not any(is_malformed(metadata.get(name)) for name in read):
                    by_filter = predicate(normalize_metadata(metadata, fields))
                    assert by_filter is expected, "the plan filter disagrees with casbin" + context
                if expected and pid in stored:
                    authorised.add(str(pid))
            if plan.kind == "deny_all":
                assert not authorised, f"deny_all plan, yet casbin releases {authorised}"
                continue
            pushdown = backend.store.translate(plan.filter)
            found = {h.id for h in backend.store.search(query, len(ids), pushdown)}
            context = (
                f"\n{case.describe()}--- subject {subject_id!r} {dict(attributes)!r}\n"
                f"--- plan {plan.kind} exact={pushdown.exact} {plan.filter!r}"
            )
            dropped = sorted(authorised - found)
            assert not dropped, (
                f"the EdgeStore filter dropped released chunks "
                f"{[dict(by_id[i]) for i in dropped]}" + context
            )
            if pushdown.exact:
                extra = [
                    dict(by_id[i])
                    for i in sorted(found - authorised - undecided)
                    if not _null_list(by_id[i], fields)
                    and not any(is_malformed(by_id[i].get(name)) for name in read)
                ]
                assert not extra, f"an exact EdgeStore filter let through {extra}" + context
    finally:
        backend.clear(ids)


_ALLOW_ONLY_EVAL_MODEL = (
    "[request_definition]\nr = sub, obj, act\n\n"
    "[policy_definition]\np = sub, obj, act, rule, eft\n\n"
    "[policy_effect]\ne = some(where (p.eft == allow))\n\n"
    '[matchers]\nm = eval(p.rule) && (r.act == "eng")\n'
)
# Shrunk cases found by the fuzzer, kept as regressions.
REGRESSIONS = (
    # Casbin raises re.error on a deny line's invalid keyMatch2 pattern even under the
    # allow-only effect (it evaluates every line); ragguard used to ignore the line and
    # decide. Now every line's patterns are checked when the policy loads: refused.
    FuzzCase(
        model=_ALLOW_ONLY_EVAL_MODEL,
        p_lines=(
            ("eng", "eng", "eng", 'r.act == "eng"', "allow"),
            ("eng", "eng", "eng", 'keyMatch2(r.obj.path, "/docs/**")', "deny"),
        ),
        g_lines=(),
        subjects=(("alice", {}),),
        chunks=({}, {"path": "/docs/eng/1.md"}),
        uses_eval=True,
    ),
    # A NaN in metadata the plan does not read: decided, never stored (Qdrant payloads
    # are JSON); the stores refuse it with a StoreError naming the attribute.
    FuzzCase(
        model=_ALLOW_ONLY_EVAL_MODEL.replace(
            'eval(p.rule) && (r.act == "eng")', '!(r.act == "eng")'
        ),
        p_lines=(),
        g_lines=(),
        subjects=(("alice", {}),),
        chunks=({}, {"path": math.nan}),
    ),
    # An allow_all plan (filter TRUE) whose first line reads a malformed attribute: the
    # decision denies (malformed metadata), the store returns it, the guard withholds it.
    FuzzCase(
        model=_ALLOW_ONLY_EVAL_MODEL.replace(
            'eval(p.rule) && (r.act == "eng")',
            'eval(p.rule) || (!(!(r.act == "eng") && r.obj.dept == r.act))',
        ),
        p_lines=(
            ("eng", "eng", "eng", 'r.act == "eng"', "allow"),
            ("eng", "eng", "eng", '!(r.act == "eng")', "allow"),
        ),
        g_lines=(),
        subjects=(("alice", {}),),
        chunks=({}, {"dept": {"b": 1}}),
        uses_eval=True,
    ),
    # g(x, x, domain) holds in every domain (Casbin), but a chunk without the domain
    # attribute names none: released to alice by TRUE before the fix, now Exists(tenant).
    FuzzCase(
        model=(
            "[request_definition]\nr = sub, obj, act\n\n"
            "[policy_definition]\np = sub, obj, act, rule, eft\n\n"
            "[role_definition]\ng = _, _, _\n\n"
            "[policy_effect]\ne = some(where (p.eft == allow))\n\n"
            '[matchers]\nm = (g(r.sub.id, p.sub, r.obj.tenant) || r.act == "eng")\n'
        ),
        p_lines=(("alice", "eng", "eng", "-", "allow"),),
        g_lines=(),
        subjects=(("alice", {}),),
        chunks=({}, {"tenant": "acme"}, {"tenant": 5}, {"tenant": []}),
    ),
    # The same self-link with a known, non-string domain (a subject attribute 0): Casbin
    # holds it; ragguard used to find no string domain and deny.
    FuzzCase(
        model=_ALLOW_ONLY_EVAL_MODEL.replace(
            "[policy_effect]", "[role_definition]\ng = _, _, _\n\n[policy_effect]"
        ).replace(
            'eval(p.rule) && (r.act == "eng")', "eval(p.rule) && (r.obj.dept not in (r.sub.dept,))"
        ),
        p_lines=(("eng", "eng", "eng", 'g(r.sub.id, "admin", r.sub.tenant)', "allow"),),
        g_lines=(),
        subjects=(("admin", {"tenant": 0}), ("admin", {})),
        chunks=({}, {"dept": "eng"}),
        uses_eval=True,
    ),
    # The same key read by the plan: malformed, denied.
    FuzzCase(
        model=_ALLOW_ONLY_EVAL_MODEL.replace(
            'eval(p.rule) && (r.act == "eng")', '!(r.obj.path == "x")'
        ),
        p_lines=(),
        g_lines=(),
        subjects=(("alice", {}),),
        chunks=({"path": "/docs"}, {"path": math.inf}, {"path": {"b": 1}}, {"path": [["x"]]}),
    ),
)


@pytest.mark.parametrize(
    "case",
    REGRESSIONS,
    ids=[
        "ignored-deny-regex",
        "nan-unread",
        "malformed-line-read",
        "self-link-absent-domain",
        "self-link-numeric-domain",
        "malformed-read",
    ],
)
def test_fuzz_regressions(case: FuzzCase, backend: EdgeBackend) -> None:
    run_fuzz_case(case, backend)


@_fuzz_settings()
@given(case=fuzz_cases())
def test_compiler_agrees_with_casbin_and_edge_store(case: FuzzCase, backend: EdgeBackend) -> None:
    run_fuzz_case(case, backend)


# -- the same cases as files: bytes a user's editor may write ------------------------------

_BOM: Final = b"\xef\xbb\xbf"
_NOT_UTF8: Final = (b"\xff", b"\xc3(", b"\xe9t\xe9", b"\xed\xa0\x80")  # latin-1, cut, surrogate


@st.composite
def _policy_bytes(draw: st.DrawFn, case: FuzzCase) -> bytes:
    """The case's policy file as bytes: CRLF or LF per line, blank lines, spaces around
    values, comments holding a lone CR before a policy-looking line, a BOM, a byte that
    is not UTF-8 (Casbin's file adapter splits on LF only and decodes strictly)."""
    out: list[bytes] = []
    if draw(st.integers(0, 5)) == 0:
        out.append(_BOM)
    rows = [("p", *line) for line in case.p_lines] + [("g", *link) for link in case.g_lines]
    for row in rows:
        if draw(st.integers(0, 4)) == 0:
            # Casbin reads a comment up to LF: the "line" after the CR stays a comment.
            hidden = ", ".join(draw(st.sampled_from(rows)) if rows else ("p", "alice"))
            out.append(b"# revoked:\r" + hidden.encode() + b"\n")
        if draw(st.integers(0, 6)) == 0:
            out.append(draw(st.sampled_from((b"\n", b"  \n", b"\r\n", b"\t\r\n"))))
        separator = draw(st.sampled_from((", ", ",", " , ", ",  ")))
        text = separator.join(row) + draw(st.sampled_from(("", "", " ", "\t")))
        out.append(text.encode() + draw(st.sampled_from((b"\n", b"\n", b"\r\n"))))
    if draw(st.integers(0, 9)) == 0:
        out.insert(draw(st.integers(0, len(out))), b"# " + draw(st.sampled_from(_NOT_UTF8)) + b"\n")
    return b"".join(out)


@st.composite
def _model_bytes(draw: st.DrawFn, case: FuzzCase) -> bytes:
    """The case's model file as bytes: LF, CRLF or a lone CR between lines (Casbin's
    config reader opens the file in text mode: all three end a line), trailing spaces,
    a BOM, a comment that is not UTF-8."""
    out: list[bytes] = []
    if draw(st.integers(0, 7)) == 0:
        out.append(_BOM)
    for line in case.model.split("\n"):
        if not line:
            out.append(draw(st.sampled_from((b"\n", b"\r\n", b"\r"))))
            continue
        trailing = draw(st.sampled_from(("", "", " ", "\t")))
        ending = draw(st.sampled_from((b"\n", b"\n", b"\r\n", b"\r")))
        out.append((line + trailing).encode() + ending)
    if draw(st.integers(0, 11)) == 0:
        out.insert(1, b"# " + draw(st.sampled_from(_NOT_UTF8)) + b"\n")
    return b"".join(out)


@_fuzz_settings(FILE_EXAMPLES)
@given(data=st.data(), case=fuzz_cases())
def test_policy_files_read_as_casbin_reads_them(
    data: st.DataObject, case: FuzzCase, backend: EdgeBackend
) -> None:
    """The same case written as files with CRLF, lone CRs, BOMs, blank lines, spaces and
    bytes that are not UTF-8: ragguard loads them to the decisions Casbin's own
    ``Enforcer(model_path, policy_path)`` makes, or refuses them with PolicyLoadError
    exactly when Casbin cannot read them."""
    model_bytes = data.draw(_model_bytes(case), label="model bytes")
    policy_bytes = data.draw(_policy_bytes(case), label="policy bytes")
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.conf"
        policy_path = Path(folder) / "policy.csv"
        model_path.write_bytes(model_bytes)
        policy_path.write_bytes(policy_bytes)
        note = f"--- model bytes {model_bytes!r}\n--- policy bytes {policy_bytes!r}\n"

        def refused(error: rg.PolicyLoadError) -> bool:
            # Documented difference: Casbin silently skips a rule whose first value has a
            # byte order mark glued to it ("\ufeffp" is no line type); ragguard refuses
            # the file, naming the line.
            return policy_bytes.startswith(_BOM) and "byte order mark" in str(error)

        try:
            run_fuzz_case(
                case,
                backend,
                load=lambda: rg.Policy.from_casbin(model_path, policy_path),
                oracle=lambda: CasbinOracle.from_files(str(model_path), str(policy_path)),
                refused=refused,
            )
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{note}") from None
