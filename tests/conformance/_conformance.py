"""Run one generated :class:`Case` against ``casbin.enforce`` and numpy brute force.

For every (subject, chunk) pair: ``guard.check`` and the plan's filter, evaluated by the
compiled predicate, must both equal the oracle. On a real store (``EdgeStore`` or
``QdrantStore``), for every subject:

* the raw store query with the pushed-down filter returns a superset of the authorised
  chunks, and exactly them when the pushdown claims to be exact (up to the one
  documented superset: lists holding ``null``);
* ``guard.search`` releases no unauthorised chunk and exactly the authorised top-k by
  cosine similarity computed with numpy, for a small ``k`` and for ``k`` = the corpus.

Exactness of the store's nearest-neighbour search: the corpora here have at most a few
dozen points, far below Qdrant's indexing and full-scan thresholds (thousands of points),
so Qdrant answers every query, filtered or not, by scanning the segment: no HNSW
approximation is involved. Cases also draw ``Guard(exact_search=True)`` half the time,
which asks Qdrant for an exhaustive search explicitly. Scores are compared with a
tolerance of 1e-5 (Qdrant scores in float32); ids may differ from numpy's order only
between chunks whose scores are equal within that tolerance (exact ties are generated
on purpose).

Stores are created once per family and test (creating payload indexes costs ~0.15 s per
index on disk); each case upserts its chunks under fresh ids and deletes them afterwards.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe
from _casbin_oracle import CasbinOracle
from _policy_families import Case
from hypothesis import HealthCheck, settings
from qdrant_client import QdrantClient
from qdrant_client import models as qm

import ragguard as rg
from ragguard.policy import ir
from ragguard.policy._predicate import compile_check, normalize_metadata
from ragguard.testing import clustered_vectors
from ragguard.testing.store_kit import fit_metadata

__all__ = [
    "DIM",
    "EXAMPLES_PER_FAMILY",
    "ChromaBackend",
    "EdgeBackend",
    "PgVectorBackend",
    "QdrantBackend",
    "StoreBackend",
    "check_decisions",
    "check_store",
    "conformance_settings",
    "run_case",
]

DIM = 8
EXAMPLES_PER_FAMILY = {
    "abac": 150,
    "department": 120,
    "rbac": 120,
    "eval": 120,
    "deny": 120,
    "paths": 120,
}
"""Examples per family for the EdgeStore and Qdrant server runs (~30 s CPU in all)."""
SCORE_TOLERANCE = 1e-5
EXAMPLES_ENV = "RAGGUARD_CONFORMANCE_EXAMPLES"


def conformance_settings(default_examples: int) -> settings:
    """Hypothesis settings: ``default_examples`` unless RAGGUARD_CONFORMANCE_EXAMPLES is set.

    The nightly run sets RAGGUARD_CONFORMANCE_EXAMPLES (say 1000) for every family.
    """
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    examples = int(raw) if raw else default_examples
    if examples < 1:
        raise ValueError(f"{EXAMPLES_ENV} must be a positive integer, got {raw!r}")
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=not raw,  # CI: the same examples every run; nightly: fresh ones
        print_blob=True,
    )


# -- stores ------------------------------------------------------------------------------


class StoreBackend(Protocol):
    """A store the harness can fill with one case's chunks and empty again."""

    @property
    def store(self) -> rg.Store:
        """The store under test."""
        ...

    @property
    def exact_search_param(self) -> bool:
        """Whether ``Guard(exact_search=True)`` means anything to this store."""
        ...

    def load(self, chunks: Sequence[rg.Chunk], indexes: Sequence[rg.IndexSpec]) -> None:
        """Create missing payload indexes, upsert ``chunks``, make them searchable."""
        ...

    def clear(self, ids: Sequence[int]) -> None:
        """Delete these points."""
        ...


@dataclass
class _IndexBook:
    """Which payload index each field has, so each is created only once per store."""

    created: dict[str, rg.IndexSpec] = field(default_factory=dict)

    def missing(self, specs: Sequence[rg.IndexSpec]) -> list[rg.IndexSpec]:
        wanted = [s for s in specs if self.created.get(s.field) != s]
        for spec in wanted:
            self.created[spec.field] = spec
        return wanted


class EdgeBackend:
    """An ``EdgeStore`` in a directory, reused across cases."""

    def __init__(self, path: Path) -> None:
        self.store: rg.EdgeStore = rg.EdgeStore.create(path, dim=DIM, distance="cosine")
        self.exact_search_param = True
        self._indexes = _IndexBook()

    def load(self, chunks: Sequence[rg.Chunk], indexes: Sequence[rg.IndexSpec]) -> None:
        self.store.create_payload_indexes(self._indexes.missing(indexes))
        self.store.upsert(chunks)
        self.store.optimize()

    def clear(self, ids: Sequence[int]) -> None:
        self.store.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def close(self) -> None:
        self.store.close()


class QdrantBackend:
    """A ``QdrantStore`` collection (local ``:memory:`` mode or a server), reused.

    ``local=True`` for local mode, which has no payload indexes and always searches
    exhaustively: qdrant-client warns when given either, and the suite runs with
    warnings as errors.
    """

    def __init__(self, client: QdrantClient, collection: str, *, local: bool) -> None:
        self.client = client
        self.collection = collection
        self.store: rg.QdrantStore = rg.QdrantStore.create(
            client, collection, dim=DIM, distance="cosine"
        )
        self._payload_indexes = not local
        self.exact_search_param = not local
        self._indexes = _IndexBook()

    def load(self, chunks: Sequence[rg.Chunk], indexes: Sequence[rg.IndexSpec]) -> None:
        if self._payload_indexes:
            self.store.create_payload_indexes(self._indexes.missing(indexes))
        self.store.upsert(chunks)

    def clear(self, ids: Sequence[int]) -> None:
        self.client.delete(
            self.collection, points_selector=qm.PointIdsList(points=list(ids)), wait=True
        )


# -- one case ----------------------------------------------------------------------------

_ids = itertools.count(1)


@dataclass(frozen=True)
class Outcome:
    """What a case exercised (for hypothesis events and sanity checks)."""

    released: int
    denied: int
    plan_kinds: tuple[str, ...]
    exact: tuple[bool, ...]


def _subject(subject_id: str, attributes: Mapping[str, Any]) -> rg.Subject:
    return rg.Subject(id=subject_id, attributes=dict(attributes))


def check_decisions(case: Case, policy: rg.Policy, oracle: CasbinOracle) -> list[list[bool]]:
    """``guard.check`` and the plan filter's predicate equal ``casbin.enforce``, pairwise.

    Returns the oracle's verdicts, one row per subject.
    """
    verdicts: list[list[bool]] = []
    for subject_id, attributes in case.subjects:
        subject = _subject(subject_id, attributes)
        plan = policy.plan(subject, case.action)
        fields = frozenset(ir.fields_of(plan.filter))
        predicate = compile_check(plan.filter)
        row: list[bool] = []
        for metadata in case.chunks:
            expected = oracle.enforce(subject_id, attributes, metadata, case.action)
            decision = policy.check(subject, metadata, case.action)
            context = (
                f"\n{case.describe()}--- subject {subject_id!r} {dict(attributes)!r}\n"
                f"--- chunk {dict(metadata)!r}\n--- plan {plan.kind} {plan.filter!r}\n"
                f"--- decision {decision}"
            )
            assert decision.released is expected, "guard.check disagrees with casbin" + context
            by_filter = predicate(normalize_metadata(metadata, fields))
            assert by_filter is expected, "the plan filter disagrees with casbin" + context
            if expected:
                assert decision.rule, "a release names the rule that allowed it" + context
            else:
                assert decision.reason, "a denial says why" + context
            row.append(expected)
        verdicts.append(row)
    return verdicts


def case_vectors(case: Case) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Unit vectors for the case's chunks (with the generated exact ties) and a query."""
    n = len(case.chunks)
    vectors = clustered_vectors(n + 1, DIM, clusters=3, seed=case.seed, spread=0.6)
    matrix = vectors[:n].astype(np.float64)
    for source, target in case.ties:
        matrix[target] = matrix[source]
    query = vectors[n].astype(np.float64)
    return matrix, query


def _null_list(metadata: Mapping[str, Any], fields: frozenset[str]) -> bool:
    """Whether a field the filter reads is a list holding ``null``.

    ragguard reads ``[None]`` as absent and ``[None, "a"]`` as ``["a"]``; Qdrant's
    ``IsNull``/``IsEmpty`` see the null. The translator's documented superset.
    """
    return any(isinstance(metadata.get(name), list) and None in metadata[name] for name in fields)


def _documented_superset(
    store: rg.Store, metadata: Mapping[str, Any], fields: frozenset[str]
) -> bool:
    """Whether an exact pushdown may admit this chunk anyway, as its store documents:
    a list holding ``null`` (the Qdrant stores). ChromaStore has no such superset: it
    writes lists without their nulls and refuses what it cannot hold."""
    if type(store).__name__ == "ChromaStore":
        return False
    return _null_list(metadata, fields)


def _assert_top_k(
    hits: Sequence[rg.Hit],
    k: int,
    truth: Mapping[str, float],
    authorised: set[str],
    context: str,
) -> None:
    ids = [hit.id for hit in hits]
    assert len(set(ids)) == len(ids), "a chunk was released twice" + context
    leaked = [i for i in ids if i not in authorised]
    assert not leaked, f"unauthorised chunks released: {leaked}" + context
    assert len(hits) == min(k, len(authorised)), (
        f"released {len(hits)}, expected min(k={k}, authorised={len(authorised)})" + context
    )
    for hit in hits:
        assert hit.decision.released, context
        assert abs(hit.score - truth[hit.id]) <= SCORE_TOLERANCE, (
            f"store score {hit.score} for {hit.id}, numpy says {truth[hit.id]}" + context
        )
    scores = [hit.score for hit in hits]
    assert all(a >= b - SCORE_TOLERANCE for a, b in itertools.pairwise(scores)), (
        "hits are not in score order" + context
    )
    if not hits:
        return
    ranked = sorted((truth[i] for i in authorised), reverse=True)
    boundary = ranked[len(hits) - 1]
    for position, hit in enumerate(hits):
        assert abs(truth[hit.id] - ranked[position]) <= SCORE_TOLERANCE, (
            f"hit {position} has score {truth[hit.id]}, the authorised top-k has "
            f"{ranked[position]}" + context
        )
    missing = [i for i in authorised if truth[i] > boundary + SCORE_TOLERANCE and i not in ids]
    assert not missing, f"authorised chunks above the k-th score were not returned: {missing}" + (
        context
    )


def check_store(
    case: Case,
    policy: rg.Policy,
    backend: StoreBackend,
    verdicts: list[list[bool]],
) -> Outcome:
    """Guarded searches on ``backend`` release exactly the authorised top-k."""
    matrix, query = case_vectors(case)
    ids = [next(_ids) for _ in case.chunks]
    chunks = [
        rg.Chunk(text=f"chunk {position}", metadata=dict(metadata), vector=list(row), id=pid)
        for position, (metadata, row, pid) in enumerate(zip(case.chunks, matrix, ids, strict=True))
    ]
    truth_scores = matrix @ (query / np.linalg.norm(query))
    truth = {str(pid): float(score) for pid, score in zip(ids, truth_scores, strict=True)}
    by_id = {str(pid): metadata for pid, metadata in zip(ids, case.chunks, strict=True)}
    backend.load(chunks, policy.index_specs())
    kinds: list[str] = []
    exactness: list[bool] = []
    try:
        exact_search = case.exact_search and backend.exact_search_param
        guard = rg.Guard(policy, backend.store, action=case.action, exact_search=exact_search)
        for (subject_id, attributes), row in zip(case.subjects, verdicts, strict=True):
            subject = _subject(subject_id, attributes)
            authorised = {str(pid) for pid, ok in zip(ids, row, strict=True) if ok}
            plan = guard.plan(subject)
            kinds.append(plan.kind)
            exactness.append(plan.exact)
            context = (
                f"\n{case.describe()}--- subject {subject_id!r} {dict(attributes)!r}\n"
                f"--- plan {plan.kind} exact={plan.exact} {plan.filter!r}\n"
                f"--- exact_search={exact_search} authorised={sorted(authorised)}"
            )
            if plan.kind != "deny_all":
                _check_pushdown(backend.store, plan.filter, query, by_id, authorised, context)
            for k in sorted({case.k, len(chunks)}):
                hits = guard.search(subject, list(query), k)
                _assert_top_k(hits, k, truth, authorised, f"\n--- k={k}{context}")
                for hit in hits:
                    assert dict(hit.metadata) == dict(by_id[hit.id]), context
    finally:
        backend.clear(ids)
    released = sum(sum(row) for row in verdicts)
    total = sum(len(row) for row in verdicts)
    return Outcome(released, total - released, tuple(kinds), tuple(exactness))


def _check_pushdown(
    store: rg.Store,
    expr: ir.Expr,
    query: npt.NDArray[np.float64],
    by_id: Mapping[str, Mapping[str, Any]],
    authorised: set[str],
    context: str,
) -> None:
    """The store's filter alone: a superset of the authorised chunks, exact if it says so."""
    pushdown = store.translate(expr)
    found = {hit.id for hit in store.search(list(query), len(by_id), pushdown)}
    dropped = sorted(authorised - found)
    assert not dropped, f"the pushed-down filter dropped authorised chunks {dropped}" + context
    if pushdown.exact:
        fields = frozenset(ir.fields_of(expr))
        extra = sorted(
            i for i in found - authorised if not _documented_superset(store, by_id[i], fields)
        )
        assert not extra, (
            f"an exact pushdown let through unauthorised chunks {extra}: "
            f"{[dict(by_id[i]) for i in extra]}" + context
        )


def run_case(case: Case, backend: StoreBackend | None) -> Outcome:
    """Decisions against casbin; then, with a backend, the store checks."""
    policy = rg.Policy.from_casbin(case.model, case.policy_text)
    oracle = CasbinOracle(case.model, case.policy_text)
    intended = ([list(line) for line in case.p_lines], [list(link) for link in case.g_lines])
    assert oracle.lines == intended, "Casbin reads the generated policy text differently"
    fit = getattr(backend, "fit", None)  # a store that refuses some values the cases hold
    if fit is not None:
        case = replace(case, chunks=tuple(fit(metadata) for metadata in case.chunks))
    verdicts = check_decisions(case, policy, oracle)
    if backend is None:
        released = sum(sum(row) for row in verdicts)
        total = sum(len(row) for row in verdicts)
        return Outcome(released, total - released, (), ())
    return check_store(case, policy, backend, verdicts)


class PgVectorBackend:
    """A ``PgVectorStore`` table (with its HNSW index) in a real PostgreSQL, reused."""

    def __init__(self, url: str, table: str) -> None:
        self.store: rg.PgVectorStore = rg.PgVectorStore.create(
            url, table=table, dim=DIM, distance="cosine"
        )
        self.exact_search_param = True
        self._indexes = _IndexBook()

    def load(self, chunks: Sequence[rg.Chunk], indexes: Sequence[rg.IndexSpec]) -> None:
        self.store.create_payload_indexes(self._indexes.missing(indexes))
        self.store.upsert(chunks)

    def clear(self, ids: Sequence[int]) -> None:
        self.store.delete(list(ids))

    def close(self) -> None:
        self.store.close()


class ChromaBackend:
    """A ``ChromaStore`` collection in chromadb's in-process engine, reused.

    Chroma cannot be told to search exhaustively; ``ChromaStore.search(exact=True)`` ranks
    the filtered rows with numpy itself, so ``exact_search`` is meaningful here too. Cases
    without it check Chroma's own HNSW answer on their few dozen points against numpy.
    """

    def __init__(self, client: Any, collection: str) -> None:
        self.store: rg.ChromaStore = rg.ChromaStore.create(
            client, collection, dim=DIM, distance="cosine"
        )
        self.exact_search_param = True

    def load(self, chunks: Sequence[rg.Chunk], indexes: Sequence[rg.IndexSpec]) -> None:
        self.store.create_payload_indexes(indexes)
        self.store.upsert(chunks)

    def clear(self, ids: Sequence[int]) -> None:
        self.store.delete(list(ids))

    @staticmethod
    def fit(metadata: Mapping[str, Any]) -> dict[str, Any]:
        """A case's chunk as Chroma holds it (the store refuses the rest): integers of
        64 bits, lists of one type."""
        return fit_metadata(metadata, integer_range=(-(2**63), 2**63 - 1), mixed_lists=False)
