"""Policy performance: the compiled predicate against ``casbin.enforce``, plan compile
and cache, and how both grow with the number of policy lines.

Run with ``pytest tests/benchmarks/test_perf_policy.py`` (see ``conftest.py`` for the
scale knobs). The policy is the 1,000-line RBAC-with-domains + ``eval`` ABAC policy of
``_corpus.py``; ``casbin.enforce`` runs on the same ``casbin.Enforcer`` ragguard loaded.
"""

from __future__ import annotations

import time
import tracemalloc
from types import SimpleNamespace
from typing import Any

import _corpus
import numpy as np
import pytest
from _measure import Report, env_int, interleaved, median, ms, paired_ratio, per_call, us

import ragguard as rg

# casbin.enforce under 10,000 lines took about 70 s per call in a trial (calls in tenants
# not seen before: Casbin builds that tenant's role manager, quadratic in its links), so
# it is measured there only with RAGGUARD_BENCH_SLOW=1.
ENFORCE_MAX_LINES = 10_000 if env_int("RAGGUARD_BENCH_SLOW", 0) else 3000


def casbin_subject(subject: rg.Subject) -> SimpleNamespace:
    """The subject as casbin.enforce sees it: ``r.sub.id``, ``r.sub.<attribute>``."""
    return SimpleNamespace(id=subject.id, **subject.attributes)


def sample_chunks(count: int) -> list[dict[str, Any]]:
    """Chunk metadata from the benchmark corpus (a deterministic spread)."""
    metadata = _corpus.chunk_metadata(_corpus.CORPUS_UNIT)
    step = len(metadata) // count
    return [metadata[i * step] for i in range(count)]


def balanced_chunks(policy: rg.Policy, subject: rg.Subject, count: int) -> list[dict[str, Any]]:
    """``count`` chunks, half of them readable by ``subject``, interleaved."""
    metadata = _corpus.chunk_metadata(_corpus.CORPUS_UNIT)
    readable = [md for md in metadata if policy.check(subject, md).released]
    unreadable = [md for md in metadata if not policy.check(subject, md).released]
    half = count // 2
    pairs = zip(
        readable[:: len(readable) // half][:half],
        unreadable[:: len(unreadable) // half][:half],
        strict=True,
    )
    return [md for pair in pairs for md in pair]


@pytest.mark.parametrize("who", ["alice", "sel5"])
def test_decision_vs_casbin_enforce(benchmark: Any, policy: rg.Policy, who: str) -> None:
    """Deciding one chunk: the compiled predicate is at least 100x faster than enforce.

    alice's plan keeps 26 of the 1,000 lines (the predicate's worst case here); sel5's
    keeps one. Half the sampled chunks are readable. casbin.enforce evaluates every
    line, splicing and parsing its eval rule; the verdicts are compared.
    """
    subject = _corpus.ALICE if who == "alice" else _corpus.probe_subjects()[who].subject
    plan = policy.plan(subject)
    enforcer = policy.enforcer
    chunks = balanced_chunks(policy, subject, 40)
    objects = [SimpleNamespace(**md) for md in chunks]
    sub = casbin_subject(subject)
    repeat = 200
    casbin_verdicts: dict[int, bool] = {}
    our_verdicts: dict[int, bool] = {}

    def enforce(i: int) -> None:
        index = i % len(chunks)
        casbin_verdicts[index] = bool(enforcer.enforce(sub, objects[index], "read"))

    def predicate(i: int) -> None:
        index = i % len(chunks)
        md = chunks[index]
        for _ in range(repeat):
            decision = plan.decide(md)
        our_verdicts[index] = decision.released

    samples = interleaved(
        benchmark, {"casbin.enforce": enforce, "predicate": predicate}, rounds=40, warmup=2
    )
    enforce_s = samples["casbin.enforce"]
    predicate_s = [t / repeat for t in samples["predicate"]]
    check_s = per_call(lambda: [policy.check(subject, md) for md in chunks], repeat=100) / len(
        chunks
    )

    report = Report(benchmark, "decision", subject=who, policy_lines=1000)
    report.figure("casbin_enforce_us", us(median(enforce_s)))
    report.figure("predicate_us", us(median(predicate_s)))
    report.figure("policy_check_us", us(check_s))
    report.figure(
        "plan_lines", len(plan.to_json()["allow_lines"]) + len(plan.to_json()["deny_lines"])
    )
    report.figure("released_in_sample", sum(casbin_verdicts.values()))
    speedup = paired_ratio(enforce_s, predicate_s)
    report.figure("speedup", round(speedup, 1))
    report.check(f"enforce / predicate ({who})", speedup, ">=", 100)
    disagreements = [i for i in casbin_verdicts if our_verdicts[i] != casbin_verdicts[i]]
    report.check("decisions that differ from casbin.enforce", len(disagreements), "==", 0)
    report.assert_checks()


TENANT_MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dom, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub.id, p.sub, r.obj.tenant) && r.obj.tenant == p.dom && r.act == p.act
"""
TENANT_ROLES = ("reader", "editor", "auditor", "admin")
TENANT_USER = rg.Subject(id="tina")
# tina's roles: three tenants released by an allow line, t042 withheld by a deny line
# (line k is a deny when k % 10 == 9, counting from 0: editor in t042 is k = 169).
TENANT_LINKS = (
    ("tina", "reader", "t007"),
    ("tina", "editor", "t042"),
    ("tina", "auditor", "t099"),
    ("tina", "admin", "t150"),
)


def tenant_policy(lines: int, *, seed: int = 0) -> str:
    """Tenant-per-line RBAC with domains: ``lines`` ``p`` lines, two links per line.

    Line ``k`` grants role ``TENANT_ROLES[k % 4]`` in tenant ``t{k // 4:03d}``; one line
    in ten is a deny. tina holds four roles in four tenants, so her plan keeps every
    line of those roles (a list-valued ``tenant`` could meet any of them), although a
    scalar ``tenant`` can only meet the lines of its own tenant.
    """
    rng = np.random.default_rng([seed, 13])
    tenants = max(1, lines // len(TENANT_ROLES))
    out = [
        f"p, {TENANT_ROLES[k % 4]}, t{k // 4:03d}, read, {'deny' if k % 10 == 9 else 'allow'}"
        for k in range(lines)
    ]
    links = list(TENANT_LINKS)
    for k in range(2 * lines):
        role = TENANT_ROLES[int(rng.integers(0, 4))]
        links.append((f"user{k // 2:05d}", role, f"t{int(rng.integers(0, tenants)):03d}"))
    out += [f"g, {user}, {role}, {tenant}" for user, role, tenant in links]
    return "\n".join(out) + "\n"


def tenant_chunks(released: bool, count: int) -> list[dict[str, Any]]:
    """Chunks tina may read (her three allowed tenants) or may not (the others)."""
    # Withheld: t042 by a deny line, the others for want of a role there.
    tenants = ["t007", "t099", "t150"] if released else ["t042", "t003", "t200", "t041", "t151"]
    return [
        {"tenant": tenants[i % len(tenants)], "dept": f"d{i % 7}", "level": i % 4}
        for i in range(count)
    ]


@pytest.mark.parametrize("outcome", ["released", "denied"])
def test_tenant_lines_decision_vs_casbin_enforce(benchmark: Any, outcome: str) -> None:
    """One role per tenant line, 1,000 lines: policy.check >= 300x faster than enforce.

    tina's plan keeps about 780 of the 1,000 lines (every line of her four roles; the
    filter is ``tenant in [4 tenants]``). decide() evaluates only the lines whose
    required tenant equals the chunk's (one or two), and a denial's reason is worded
    only when read, so the decision does not grow with the plan; casbin.enforce
    evaluates every line. Measured interleaved; the verdicts are compared.
    """
    lines = env_int("RAGGUARD_BENCH_TENANT_LINES", 1000)
    policy = rg.Policy.from_casbin(TENANT_MODEL, tenant_policy(lines))
    plan = policy.plan(TENANT_USER)
    enforcer = policy.enforcer
    chunks = tenant_chunks(outcome == "released", 20)
    objects = [SimpleNamespace(**md) for md in chunks]
    sub = casbin_subject(TENANT_USER)
    repeat = 200
    casbin_verdicts: dict[int, bool] = {}
    our_verdicts: dict[int, bool] = {}

    def enforce(i: int) -> None:
        index = i % len(chunks)
        casbin_verdicts[index] = bool(enforcer.enforce(sub, objects[index], "read"))

    def check(i: int) -> None:
        index = i % len(chunks)
        md = chunks[index]
        for _ in range(repeat):
            decision = policy.check(TENANT_USER, md)
        our_verdicts[index] = decision.released

    rounds = env_int("RAGGUARD_BENCH_TENANT_ROUNDS", 40)
    samples = interleaved(
        benchmark, {"casbin.enforce": enforce, "policy.check": check}, rounds=rounds, warmup=2
    )
    enforce_s = samples["casbin.enforce"]
    check_s = [t / repeat for t in samples["policy.check"]]
    candidates = [len(plan.candidate_lines(md)) for md in chunks]

    report = Report(benchmark, "tenant_decision", outcome=outcome, policy_lines=lines)
    report.figure("casbin_enforce_us", us(median(enforce_s)))
    report.figure("policy_check_us", us(median(check_s)))
    report.figure(
        "plan_lines", len(plan.to_json()["allow_lines"]) + len(plan.to_json()["deny_lines"])
    )
    report.figure("max_lines_evaluated", max(candidates))
    report.figure("released_in_sample", sum(casbin_verdicts.values()))
    speedup = paired_ratio(enforce_s, check_s)
    report.figure("speedup", round(speedup, 1))
    report.check(f"enforce / policy.check (tenant lines, {outcome})", speedup, ">=", 300)
    expected = len(chunks) if outcome == "released" else 0
    report.check(f"{outcome} chunks in the sample", sum(our_verdicts.values()), "==", expected)
    disagreements = [i for i in casbin_verdicts if our_verdicts[i] != casbin_verdicts[i]]
    report.check("decisions that differ from casbin.enforce", len(disagreements), "==", 0)
    report.assert_checks()


def test_plan_compile_cold(benchmark: Any) -> None:
    """A cold plan for a new user under the 1,000-line policy compiles in <= 50 ms.

    Every round plans a different user (alice's roles and attributes, another id), so
    neither the plan cache nor the role-lookup cache helps. Interleaved with one
    casbin.enforce call for the same user, for scale.
    """
    rounds, warmup = 30, 2
    started = time.perf_counter()
    policy = rg.Policy.from_casbin(
        _corpus.MODEL, _corpus.policy_text(1000, alice_clones=rounds + warmup + 1)
    )
    load_s = time.perf_counter() - started
    chunk = SimpleNamespace(**sample_chunks(1)[0])
    started = time.perf_counter()
    first = policy.plan(_corpus.alice_clone(rounds + warmup))
    first_s = time.perf_counter() - started

    def compile_plan(i: int) -> None:
        policy.plan(_corpus.alice_clone(i))

    def enforce(i: int) -> None:
        policy.enforcer.enforce(casbin_subject(_corpus.alice_clone(i)), chunk, "read")

    samples = interleaved(
        benchmark,
        {"compile": compile_plan, "casbin.enforce": enforce},
        rounds=rounds,
        warmup=warmup,
    )
    report = Report(benchmark, "plan_compile", policy_lines=1000, subject="alice clones")
    compile_median = median(samples["compile"])
    report.figure("policy_load_ms", ms(load_s))
    report.figure("first_plan_after_load_ms", ms(first_s))
    report.figure("cold_compile_ms", ms(compile_median))
    report.figure("cold_compile_max_ms", ms(max(samples["compile"])))
    report.figure("casbin_enforce_ms", ms(median(samples["casbin.enforce"])))
    report.figure(
        "compile_per_enforce", round(paired_ratio(samples["compile"], samples["casbin.enforce"]), 3)
    )
    report.figure(
        "plan_lines", len(first.to_json()["allow_lines"]) + len(first.to_json()["deny_lines"])
    )
    report.check("cold compile, median (ms)", compile_median * 1e3, "<=", 50)
    report.assert_checks()


def test_plan_cache_lookup_and_memory(benchmark: Any, policy: rg.Policy, tmp_path: Any) -> None:
    """A cached plan is found in <= 20 us; the memory a cached plan holds is reported."""
    subject = _corpus.ALICE
    policy.plan(subject)
    guard = rg.Guard(policy, rg.EdgeStore.create(tmp_path / "shard", dim=_corpus.DIM))
    guard.plan(subject)
    lookup_s = [per_call(lambda: policy.plan(subject), repeat=20_000) for _ in range(5)]
    benchmark.pedantic(policy.plan, args=(subject,), rounds=2000, iterations=10)
    fresh_subject_s = per_call(
        lambda: policy.plan(rg.Subject(id="alice", attributes=_corpus.ALICE.attributes)),
        repeat=5000,
    )
    guard_s = per_call(lambda: guard.plan(subject), repeat=20_000)
    guard.store.close()

    memory_policy = rg.Policy.from_casbin(
        _corpus.MODEL, _corpus.policy_text(1000, alice_clones=101)
    )
    memory_policy.plan(_corpus.alice_clone(100))  # warm everything that is per policy
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(100):
        memory_policy.plan(_corpus.alice_clone(i))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_plan = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / 100

    report = Report(benchmark, "plan_cache", policy_lines=1000, subject="alice")
    lookup = median(lookup_s)
    report.figure("cached_lookup_us", us(lookup))
    report.figure("lookup_with_new_subject_object_us", us(fresh_subject_s))
    report.figure("guard_plan_lookup_us", us(guard_s))
    report.figure("bytes_per_cached_plan", round(per_plan))
    report.check("cached plan lookup (us)", lookup * 1e6, "<=", 20)
    report.assert_checks()


def test_policy_lines_scaling(benchmark: Any) -> None:
    """Policy size 10 -> 10,000 lines: load, cold compile, decision, casbin.enforce.

    The plan of a subject depends on the lines that apply to it, not on the others:
    the cold compile grows linearly (every line is partially evaluated once) and the
    decision does not grow at all, while casbin.enforce grows with every line (faster
    than linearly: its role lookups slow down as the role manager fills up).
    """
    rows: list[dict[str, Any]] = []
    chunks = [md for md in _corpus.chunk_metadata(_corpus.CORPUS_UNIT) if md["tenant"] == "t00"][
        :20
    ]

    def measure_all() -> None:
        rows.extend(_policy_size_row(lines, chunks) for lines in (10, 100, 1000, 3000, 10_000))

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    report = Report(benchmark, "policy_lines", subject="alice")
    report.figure("rows", rows)
    by_lines = {row["lines"]: row for row in rows}
    growth = by_lines[10_000]["cold_compile_ms"] / by_lines[1000]["cold_compile_ms"]
    report.figure("compile_growth_1k_to_10k", round(growth, 2))
    report.check("cold compile 10,000 / 1,000 lines (linear: ~10)", growth, "<=", 15)
    report.check(
        "cold compile at 10,000 lines (ms)", by_lines[10_000]["cold_compile_ms"], "<=", 500
    )
    report.assert_checks()


def _policy_size_row(lines: int, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    policy = rg.Policy.from_casbin(_corpus.MODEL, _corpus.policy_text(lines, alice_clones=8))
    load_s = time.perf_counter() - started
    compile_s = []
    for i in range(1, 8):
        started = time.perf_counter()
        policy.plan(_corpus.alice_clone(i))
        compile_s.append(time.perf_counter() - started)
    plan = policy.plan(_corpus.ALICE)
    decide_s = per_call(lambda: [plan.decide(md) for md in chunks], repeat=50) / len(chunks)
    plan_json = plan.to_json()
    row: dict[str, Any] = {
        "lines": lines,
        "load_ms": ms(load_s),
        "cold_compile_ms": ms(median(compile_s)),
        "plan_lines": len(plan_json["allow_lines"]) + len(plan_json["deny_lines"]),
        "predicate_us": us(decide_s),
        "casbin_first_enforce_ms": None,
        "casbin_enforce_ms": None,
    }
    if lines > ENFORCE_MAX_LINES:
        return row
    # One tenant: Casbin builds a domain's role manager on first use (quadratic in its
    # links), reported apart from the warm calls.
    sub = casbin_subject(_corpus.ALICE)
    enforce_s = []
    for md in [md for md in chunks if md["tenant"] == "t00"][:4]:
        obj = SimpleNamespace(**md)
        started = time.perf_counter()
        policy.enforcer.enforce(sub, obj, "read")
        enforce_s.append(time.perf_counter() - started)
    row["casbin_first_enforce_ms"] = ms(enforce_s[0])
    row["casbin_enforce_ms"] = ms(median(enforce_s[1:]))
    return row
