"""Deterministic synthetic corpora and policies for the performance benchmarks.

Everything here depends only on its arguments (sizes and seeds): the same call gives the
same chunks, vectors, signatures and policy text on every machine, so a figure in
``docs/performance.md`` can be reproduced.

The corpus (``n`` chunks, dimension 384)
----------------------------------------
Metadata is realistic for a multi-tenant B2B knowledge base and laid out so that the
readable fractions the benchmarks need are *exact*, not approximate:

* ``tenant`` — 20 tenants (``t00`` … ``t19``), each exactly 5 % of the corpus;
* ``dept`` — 10 departments per tenant, each (tenant, dept) team exactly 0.5 %;
* ``owner`` — 10 owners per team (``t03-engineering-u0``), each exactly 0.05 %;
* ``level`` — clearance level 0-3, each exactly a quarter, independent of the above;
* ``project`` (200 projects), ``labels`` (``pii`` on ~10 %, ``legal_hold`` on ~2 %),
  ``doc_id``, ``chunk_index``, ``source``; and a provenance tag signed with
  :data:`SIGNING_KEY` at a fixed ingestion time.

Exact fractions need ``n`` to be a multiple of 2,000 (:data:`CORPUS_UNIT`).

Vectors come from :func:`ragguard.testing.clustered_vectors` in blocks of 100,000
(32 clusters each, ``spread=0.5``: within a cluster, cosine similarities crowd around
0.8, the hard case for HNSW). Query vectors are drawn around the first block's
centres with fresh noise, so they are near the corpus but never equal to a chunk.
Metadata is independent of the vectors: a cluster (topic) spans every tenant.

The policy (RBAC with domains + an ``eval`` ABAC family)
---------------------------------------------------------
``g(user, role, tenant)`` role links, and ``p`` lines ``role, dept, rule, act, eft``
whose ``rule`` is an ABAC expression spliced in by ``eval(p.rule)``. A handful of
fixed lines give the probe subjects below their exact access; filler lines
(``role0000`` …) bring the policy to the requested size, spread over four rule
templates, with a deny line every tenth. Filler users hold the filler roles.

Run as a script to build a shard (used by the benchmarks' session fixture so that the
build's time and peak RSS are measured in a process of their own)::

    python tests/benchmarks/_corpus.py build <directory> <n> [--seed S]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

import ragguard as rg
from ragguard.testing import clustered_vectors

DIM = 384
TENANTS = tuple(f"t{i:02d}" for i in range(20))
DEPARTMENTS = (
    "engineering",
    "research",
    "finance",
    "hr",
    "legal",
    "sales",
    "marketing",
    "support",
    "operations",
    "security",
)
OWNERS_PER_TEAM = 10
PROJECTS = tuple(f"p{i:03d}" for i in range(200))
CORPUS_UNIT = len(TENANTS) * len(DEPARTMENTS) * OWNERS_PER_TEAM
VECTOR_BLOCK = 100_000
CLUSTERS_PER_BLOCK = 32
SPREAD = 0.5
QUERY_COUNT = 200

SIGNING_KEY = "ragguard-benchmark-signing-key-2025"
SIGNING_KEY_ID = "bench-2025"
INGESTED_AT = datetime(2025, 1, 1, tzinfo=timezone.utc)

# fmt: off
_WORDS = (
    "quarterly", "review", "incident", "runbook", "onboarding", "salary", "roadmap",
    "contract", "invoice", "forecast", "escalation", "policy", "latency", "migration",
    "audit", "customer", "renewal", "pipeline", "headcount", "budget", "vendor", "outage",
    "deploy", "rollback", "training", "compliance", "retention", "pricing", "churn",
    "capacity", "benchmark", "encryption", "backup", "dashboard", "ticket",
)
# fmt: on


# -- corpus -----------------------------------------------------------------------------


def chunk_metadata(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The (unsigned) metadata of ``n`` chunks; exact fractions, see the module doc."""
    if n % CORPUS_UNIT:
        raise ValueError(f"n must be a multiple of {CORPUS_UNIT} for exact fractions, got {n}")
    rng = np.random.default_rng([seed, 1])
    team_order = rng.permutation(n)
    level_order = rng.permutation(n)
    projects = rng.integers(0, len(PROJECTS), size=n)
    label_draw = rng.random(n)
    records: list[dict[str, Any]] = []
    for i in range(n):
        slot = int(team_order[i])
        tenant = TENANTS[slot % len(TENANTS)]
        slot //= len(TENANTS)
        dept = DEPARTMENTS[slot % len(DEPARTMENTS)]
        slot //= len(DEPARTMENTS)
        owner = f"{tenant}-{dept}-u{slot % OWNERS_PER_TEAM}"
        draw = float(label_draw[i])
        labels = ["legal_hold", "pii"] if draw < 0.02 else ["pii"] if draw < 0.12 else []
        records.append(
            {
                "tenant": tenant,
                "dept": dept,
                "owner": owner,
                "level": int(level_order[i]) % 4,
                "project": PROJECTS[int(projects[i])],
                "labels": labels,
                "doc_id": f"{tenant}/{dept}/doc-{i // 8}",
                "chunk_index": i % 8,
                "source": f"s3://{tenant}-kb/{dept}/doc-{i // 8}.md",
            }
        )
    return records


def chunk_text(index: int, metadata: dict[str, Any]) -> str:
    """About 600 characters of deterministic text for chunk ``index``."""
    words = [_WORDS[(index * 7 + j * j) % len(_WORDS)] for j in range(80)]
    return f"{metadata['dept']} note {metadata['doc_id']} part {metadata['chunk_index']}: " + (
        " ".join(words)
    )


def corpus_vectors(n: int, seed: int = 0) -> Iterator[npt.NDArray[np.float32]]:
    """The corpus vectors, in blocks of at most :data:`VECTOR_BLOCK` rows."""
    for block, start in enumerate(range(0, n, VECTOR_BLOCK)):
        size = min(VECTOR_BLOCK, n - start)
        yield clustered_vectors(
            size, DIM, clusters=CLUSTERS_PER_BLOCK, seed=seed * 1000 + block, spread=SPREAD
        )


def query_vectors(count: int = QUERY_COUNT, seed: int = 0) -> npt.NDArray[np.float32]:
    """Query vectors around the first block's cluster centres (never equal to a chunk)."""
    # Same seed as block 0: same centres; a different count draws different noise.
    if count == VECTOR_BLOCK:
        raise ValueError("the query count must differ from the block size")
    return clustered_vectors(
        count, DIM, clusters=CLUSTERS_PER_BLOCK, seed=seed * 1000, spread=SPREAD
    )


def signed_chunks(
    metadata: Sequence[dict[str, Any]], vectors: npt.NDArray[np.float32], offset: int
) -> list[rg.Chunk]:
    """Chunks ``offset`` … ``offset + len(vectors)``, signed for provenance ``verify``."""
    signer = rg.Signer(key=SIGNING_KEY, key_id=SIGNING_KEY_ID)
    chunks: list[rg.Chunk] = []
    for row, vector in enumerate(vectors):
        index = offset + row
        md = metadata[index]
        text = chunk_text(index, md)
        signed = signer.sign(
            text,
            md,
            source=md["source"],
            doc_id=md["doc_id"],
            chunk_index=md["chunk_index"],
            ingested_at=INGESTED_AT,
        )
        chunks.append(rg.Chunk(text=text, metadata=signed, vector=vector.tolist(), id=index))
    return chunks


@dataclass(frozen=True)
class BuildInfo:
    """How long building a shard took and how much memory it needed."""

    n: int
    upsert_s: float
    optimize_s: float
    total_s: float
    peak_rss_mib: float

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "upsert_s": self.upsert_s,
            "optimize_s": self.optimize_s,
            "total_s": self.total_s,
            "peak_rss_mib": self.peak_rss_mib,
        }


def build_shard(directory: Path, n: int, seed: int = 0) -> BuildInfo:
    """Create, fill (signed chunks, payload indexes) and optimise a shard of ``n`` chunks.

    Also writes ``vectors.npy`` beside the shard (for numpy brute force) and
    ``build_info.json`` last, which marks the build as complete.
    """
    directory.mkdir(parents=True, exist_ok=True)
    metadata = chunk_metadata(n, seed)
    started = time.perf_counter()
    store = rg.EdgeStore.create(directory / "shard", dim=DIM, distance="cosine")
    try:
        store.create_payload_indexes(index_specs())
        all_vectors = np.lib.format.open_memmap(
            directory / "vectors.partial.npy", mode="w+", dtype=np.float32, shape=(n, DIM)
        )
        offset = 0
        for block in corpus_vectors(n, seed):
            for start in range(0, len(block), 2000):
                part = block[start : start + 2000]
                store.upsert(signed_chunks(metadata, part, offset + start))
            all_vectors[offset : offset + len(block)] = block
            offset += len(block)
        all_vectors.flush()
        del all_vectors
        upserted = time.perf_counter()
        store.optimize()
        optimized = time.perf_counter()
    finally:
        store.close()
    (directory / "vectors.partial.npy").rename(directory / "vectors.npy")
    info = BuildInfo(
        n=n,
        upsert_s=upserted - started,
        optimize_s=optimized - upserted,
        total_s=optimized - started,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    (directory / "build_info.json").write_text(json.dumps(info.to_json()), encoding="utf-8")
    return info


def index_specs() -> list[rg.IndexSpec]:
    """The payload indexes the benchmark policy needs (as ``ragguard index`` would make)."""
    return rg.Policy.from_casbin(MODEL, policy_text(1000)).index_specs()


def cache_key(n: int, seed: int) -> str:
    """Identifies a build: the generating code, the engine version, ``n`` and ``seed``."""
    from importlib.metadata import version

    digest = hashlib.sha256(version("qdrant-edge-py").encode())
    for function in (chunk_metadata, chunk_text, corpus_vectors, signed_chunks, build_shard):
        digest.update(inspect.getsource(function).encode())
    digest.update(repr((DIM, TENANTS, DEPARTMENTS, OWNERS_PER_TEAM, PROJECTS, _WORDS)).encode())
    digest.update(repr((VECTOR_BLOCK, CLUSTERS_PER_BLOCK, SPREAD, SIGNING_KEY)).encode())
    digest.update(repr(index_specs()).encode())
    return f"n{n}-s{seed}-{digest.hexdigest()[:12]}"


# -- policy -----------------------------------------------------------------------------

MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, rule, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub.id, p.sub, r.obj.tenant) && (p.dept == "*" || r.obj.dept == p.dept) && eval(p.rule) && r.act == p.act
"""

# The fixed lines: the probe subjects' access, and realistic ABAC rules.
_FIXED_LINES = (
    ("reader", "*", "r.obj.level >= 0", "allow"),
    ("dept_reader", "engineering", "r.obj.level >= 0", "allow"),
    ("self_reader", "*", "r.obj.owner == r.sub.id", "allow"),
    ("low_reader", "*", "r.obj.level <= 1", "allow"),
    ("engineer", "engineering", "r.obj.level <= r.sub.clearance", "allow"),
    ("engineer", "research", "r.obj.level <= r.sub.clearance", "allow"),
    ("analyst", "finance", "r.obj.level <= r.sub.clearance && r.obj.level < 3", "allow"),
    ("project_member", "*", "r.obj.project in r.sub.projects", "allow"),
    ("engineer", "*", "'legal_hold' in r.obj.labels && r.obj.level >= 3", "deny"),
    ("contractor", "*", "'legal_hold' in r.obj.labels", "deny"),
)

# Rules are written unquoted and without commas: Casbin's line reader splits at commas
# outside brackets and keeps quotes as part of the value.
_FILLER_RULES = (
    "r.obj.level <= {level}",
    "r.obj.project == 'p{project:03d}' && r.obj.level <= r.sub.clearance",
    "r.obj.owner == r.sub.id || r.obj.level == 0",
    "r.obj.level <= r.sub.clearance && r.obj.project != 'p{project:03d}'",
)


@dataclass(frozen=True)
class Probe:
    """A subject whose access is known exactly, stated twice by hand.

    ``readable`` is the plain-Python truth (the oracle for recall, independent of
    ragguard) and ``qdrant_filter`` the Qdrant filter a developer would write for the
    same access (the baseline for the search overhead). ``fraction`` is the share of
    the corpus it may read.
    """

    name: str
    subject: rg.Subject
    fraction: float
    readable: Callable[[dict[str, Any]], bool]
    qdrant_filter: Callable[[], qe.Filter]


def _match(field: str, *values: str) -> qe.FieldCondition:
    key = f"metadata.{field}"
    if len(values) == 1:
        return qe.FieldCondition(key, match=qe.MatchValue(values[0]))
    return qe.FieldCondition(key, match=qe.MatchAny(list(values)))


def _at_most(field: str, bound: int) -> qe.FieldCondition:
    return qe.FieldCondition(f"metadata.{field}", range=qe.RangeFloat(lte=float(bound)))


def probe_subjects() -> dict[str, Probe]:
    """The subjects the benchmarks search as, by name.

    ``sel50`` / ``sel5`` / ``sel05`` / ``sel005`` read exactly 50 %, 5 %, 0.5 % and
    0.05 % of the corpus; ``bob`` (engineer in five tenants, clearance 2, the subject of
    the search-overhead figures) reads about 3.75 %.
    """
    bob_tenants = TENANTS[:5]
    owner = "t03-engineering-u0"
    return {
        "sel50": Probe(
            "sel50",
            rg.Subject(id="sel50"),
            0.5,
            lambda md: md["level"] <= 1,
            lambda: qe.Filter(must=[_at_most("level", 1)]),
        ),
        "sel5": Probe(
            "sel5",
            rg.Subject(id="sel5"),
            0.05,
            lambda md: md["tenant"] == "t03",
            lambda: qe.Filter(must=[_match("tenant", "t03")]),
        ),
        "sel05": Probe(
            "sel05",
            rg.Subject(id="sel05"),
            0.005,
            lambda md: md["tenant"] == "t03" and md["dept"] == "engineering",
            lambda: qe.Filter(must=[_match("tenant", "t03"), _match("dept", "engineering")]),
        ),
        "sel005": Probe(
            "sel005",
            rg.Subject(id=owner),
            0.0005,
            lambda md: md["owner"] == owner,
            lambda: qe.Filter(must=[_match("owner", owner)]),
        ),
        "bob": Probe(
            "bob",
            rg.Subject(id="bob", attributes={"clearance": 2}),
            0.0375,
            lambda md: (
                md["tenant"] in bob_tenants
                and md["dept"] in ("engineering", "research")
                and md["level"] <= 2
            ),
            lambda: qe.Filter(
                must=[
                    _match("tenant", *bob_tenants),
                    _match("dept", "engineering", "research"),
                    _at_most("level", 2),
                ]
            ),
        ),
    }


ALICE = rg.Subject(
    id="alice",
    attributes={"clearance": 2, "projects": ["p001", "p002", "p003", "p004", "p005"]},
)
"""The busy subject: engineer in four tenants, analyst, project member, contractor, and
twenty filler roles; her plan keeps about two dozen policy lines."""


def alice_clone(index: int) -> rg.Subject:
    """Another user with alice's roles and attributes (``index`` 0 is alice herself)."""
    name = "alice" if index == 0 else f"alice-{index}"
    return rg.Subject(id=name, attributes=ALICE.attributes)


def _alice_links(name: str, fillers: int) -> list[tuple[str, str, str]]:
    links = [(name, "engineer", t) for t in TENANTS[:4]]
    links += [
        (name, "analyst", "t04"),
        (name, "project_member", "t05"),
        (name, "contractor", "t06"),
    ]
    links += [(name, f"role{j:04d}", TENANTS[7 + j % 3]) for j in range(min(20, fillers))]
    return links


def policy_text(lines: int, *, seed: int = 0, alice_clones: int = 1) -> str:
    """A policy of exactly ``lines`` ``p`` lines (at least 10) and about twice as many ``g`` links.

    Filler role ``role{j:04d}`` gets one line; alice holds the first twenty filler roles
    (when the policy has them), filler users ``user{k:05d}`` hold two filler roles each.
    ``alice_clones`` users in all hold alice's roles (see :func:`alice_clone`).
    """
    if lines < len(_FIXED_LINES):
        raise ValueError(f"a benchmark policy has at least {len(_FIXED_LINES)} lines")
    rng = np.random.default_rng([seed, 2])
    out: list[str] = [
        f"p, {role}, {dept}, {rule}, read, {effect}" for role, dept, rule, effect in _FIXED_LINES
    ]
    fillers = lines - len(_FIXED_LINES)
    for j in range(fillers):
        template = _FILLER_RULES[j % len(_FILLER_RULES)]
        rule = template.format(level=j % 4, project=int(rng.integers(0, len(PROJECTS))))
        dept = "*" if j % 3 == 0 else DEPARTMENTS[int(rng.integers(0, len(DEPARTMENTS)))]
        effect = "deny" if j % 10 == 9 else "allow"
        if effect == "deny":
            rule = "'pii' in r.obj.labels && r.obj.level >= 2"
        out.append(f"p, role{j:04d}, {dept}, {rule}, read, {effect}")
    links: list[tuple[str, str, str]] = [("sel50", "low_reader", t) for t in TENANTS]
    links += [("sel5", "reader", "t03"), ("sel05", "dept_reader", "t03")]
    links += [("t03-engineering-u0", "self_reader", "t03")]
    links += [("bob", "engineer", t) for t in TENANTS[:5]]
    for index in range(alice_clones):
        links += _alice_links(alice_clone(index).id, fillers)
    for k in range(fillers):
        for _ in range(2):
            role = f"role{int(rng.integers(0, fillers)):04d}"
            links.append((f"user{k:05d}", role, TENANTS[int(rng.integers(0, len(TENANTS)))]))
    out += [f"g, {user}, {role}, {tenant}" for user, role, tenant in links]
    return "\n".join(out) + "\n"


def wide_policy(domains: int) -> tuple[str, rg.Subject]:
    """A subject with the ``reader`` role in ``domains`` tenants, three of them real.

    The plan filter is ``tenant in [<domains> values]``: the readable fraction stays at
    15 % whatever the list length, so only the cost of the ``In`` list changes.
    """
    real = list(TENANTS[:3])
    fake = [f"x{i:05d}" for i in range(max(0, domains - len(real)))]
    # The rule folds to true for a read: the plan filter is the tenant list alone.
    text = "p, reader, *, r.act == 'read', read, allow\n" + "".join(
        f"g, wide, reader, {tenant}\n" for tenant in (real + fake)[:domains]
    )
    return text, rg.Subject(id="wide")


# -- the build script -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a benchmark shard")
    build.add_argument("directory", type=Path)
    build.add_argument("n", type=int)
    build.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = build_shard(args.directory, args.n, args.seed)
    json.dump(info.to_json(), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
