"""``Guard``: the retrieval path. Plan, push down, re-check, verify, trace, audit.

One retrieval::

    guard = Guard(policy, store)
    hits = guard.search(alice, query_vector, k=5)

1. ``policy.plan(alice)`` (cached) gives the filter for what alice may read;
2. the store runs the filtered nearest-neighbour query (``deny_all``: not at all);
3. every hit is decided again by the compiled predicate, then provenance and screens;
4. if fewer than ``k`` hits survive and more may exist, the guard fetches more in
   bounded, doubling rounds; if those run out, it finishes exactly: it reads every point
   the store's filter admits (``scroll``, up to ``max_scan``), decides each with the
   plan and scores the survivors itself;
5. a span and an audit record say what was released and what was withheld, and why.

Any failure releases nothing: the caller gets an exception from
:mod:`ragguard.exceptions`, never a partial or unfiltered result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from ragguard.budget import ReleaseBudget
from ragguard.exceptions import (
    AuditError,
    BudgetError,
    BudgetExceededError,
    QueryError,
    RagGuardError,
    StoreError,
)
from ragguard.policy import ir
from ragguard.policy._plan import EXPR_TYPES, Decision, Plan
from ragguard.policy._policy import Policy
from ragguard.results import AuditSink, Hit, ProvenanceVerdict, ProvenanceVerifier, Retrieval
from ragguard.screens._base import Screen, run_screens, screen_name
from ragguard.search_params import SearchParams
from ragguard.stores._points import CheckedVector, not_a_vector
from ragguard.stores.base import (
    AsyncScrollingStore,
    AsyncStore,
    Pushdown,
    ScrollingStore,
    ScrollPage,
    Store,
    StoredChunk,
    store_capabilities,
)
from ragguard.subject import Subject, require_subject
from ragguard.tracing import RetrievalTracer

__all__ = [
    "AuditSink",
    "Guard",
    "Hit",
    "ProvenanceVerdict",
    "ProvenanceVerifier",
    "Retrieval",
]

logger = logging.getLogger("ragguard")

DEFAULT_MAX_K = 1000
DEFAULT_MAX_FETCH_ROUNDS = 8
DEFAULT_MAX_SCAN = 100_000
SCAN_PAGE = 1024
SCAN_SWITCH = 1024
"""On a store that can scroll, a round that would ask for more candidates than this is
replaced by the exact finish: reading payloads is cheaper than searching for them."""
T = TypeVar("T")
MAX_FETCH_LIMIT = 10_000
INEXACT_OVERFETCH = 4
"""The first round of a search whose filter the store cannot run exactly asks for
``k * INEXACT_OVERFETCH`` results, until the guard has seen what share of that plan's
results it releases (:class:`_ReleaseRate`)."""
DISTANCE_METRICS = frozenset({"euclid", "manhattan"})
"""Store metrics whose scores are distances: hits are released in ascending score order."""


class _ReleaseRate:
    """What share of one inexact plan's store results the guard released, learnt over
    its searches, to size the first round of the next one.

    A relaxed filter admits chunks the exact re-check then withholds. Asking the store
    for ``k`` results would often need a second round; asking for ``4k`` every time costs
    the engine and payload conversion for results that are mostly never looked at when
    the relaxation rarely matters. The first round asks for ``k`` divided by the observed
    release share (an exponentially weighted mean, 20 % margin; exactly ``k`` while
    nothing has been withheld), within ``k`` .. ``k * 16``. It only sizes rounds: which
    chunks are released, and that the result is the best ``k`` the plan allows, do not
    depend on it (further rounds and the exact finish still run). Updated without a
    lock: a lost update under concurrent searches only makes the estimate a little older.
    """

    __slots__ = ("share",)

    WEIGHT = 0.2
    MARGIN = 1.2
    MOST = 16

    def __init__(self) -> None:
        self.share: float | None = None

    @classmethod
    def first_limit(cls, k: int, share: float | None) -> int:
        """The first round's limit for a plan that released ``share`` of its results
        lately (``None``: not seen yet, or a plan narrowed for one call)."""
        if share is None:
            wanted = k * INEXACT_OVERFETCH
        elif share >= 1.0:
            wanted = k  # nothing withheld lately: the relaxed part has not mattered
        else:
            wanted = math.ceil(k * cls.MARGIN / max(share, 1.0 / cls.MOST))
        return max(k, min(wanted, k * cls.MOST, MAX_FETCH_LIMIT))

    def observe(self, decided: int, released: int) -> None:
        if decided <= 0:
            return
        share = released / decided
        previous = self.share
        self.share = share if previous is None else previous + self.WEIGHT * (share - previous)


@dataclass
class _Fetch:
    """Sans-IO state of one search's fetch/decide loop (shared by sync and async)."""

    guard: Guard
    subject: Subject
    plan: Plan
    pushdown: Pushdown
    k: int
    limit: int
    query: npt.NDArray[np.float64]
    """The checked query vector: its digest goes into the Retrieval record."""
    released: list[Hit] = field(default_factory=list)
    withheld: list[Hit] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    rounds: int = 0
    truncated: bool = False
    done: bool = False
    can_scan: bool = False
    scan: _Scan | None = None
    search_params: SearchParams = field(default_factory=SearchParams)
    release_rate: _ReleaseRate | None = None
    decided: int = 0
    """Store results decided in the rounds (not the exact finish), and released of them."""
    released_in_rounds: int = 0

    def next_limit(self) -> int | None:
        """How many results to ask the store for next, or ``None`` when finished."""
        return None if self.done else self.limit

    def feed(self, results: list[StoredChunk]) -> None:
        """Decide a round of store results and plan the next round."""
        self.rounds += 1
        budget = self.guard.budget
        floor = budget.min_score if budget is not None else None
        below_floor = False
        for stored in results:
            if stored.id in self.seen:
                continue
            self.seen.add(stored.id)
            self.decided += 1
            hit = self.guard._decide_hit(self.plan, stored, self.subject)
            if hit.decision.released:
                self.released.append(hit)
                self.released_in_rounds += 1
            else:
                self.withheld.append(hit)
            if len(self.released) >= self.k:
                self.done = True
                return
            if floor is not None and not stored.score >= floor:
                below_floor = True
        if len(results) < self.limit:
            self.done = True  # the store has nothing more that matches the filter
            return
        if below_floor:
            self.done = True  # results come best first: nothing further meets min_score
            return
        next_limit = min(self.limit * 2, MAX_FETCH_LIMIT)
        if (
            self.rounds >= self.guard.max_fetch_rounds
            or self.limit >= MAX_FETCH_LIMIT
            or (self.can_scan and next_limit > SCAN_SWITCH)
        ):
            self.done = True
            self.truncated = True  # until an exact finish (_Scan) completes
            return
        self.limit = next_limit


@dataclass
class _Scan:
    """Sans-IO state of the exact finish of a search whose rounds ran out.

    1. :meth:`feed` reads every point the store's filter admits (a superset of what the
       plan allows), ``SCAN_PAGE`` at a time up to ``max_scan`` points, payloads only,
       and keeps the ones the plan allows (and malformed ones, which the full decision
       withholds with a reason); points the rounds already decided are skipped.
    2. :meth:`score` scores the kept points and the rounds' released hits exactly, with
       numpy in the store's metric, from their stored vectors (``vector_batches``), so
       every released hit is ranked by one function.
    3. :meth:`finish` walks them best first, deciding each new one fully (provenance,
       screens, budget floor) until ``k`` are released.

    Points the plan denies are counted (``scanned``), not listed: only what the rounds
    saw and what step 3 decided appear among the withheld.
    """

    fetch: _Fetch
    query: npt.NDArray[np.float64]
    metric: str
    max_scan: int
    scanned: int = 0
    offset: str | int | None = None
    done: bool = False
    exhausted: bool = False
    pool: list[StoredChunk] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def next_request(self) -> tuple[int, str | int | None] | None:
        """``(limit, offset)`` of the next page, or ``None`` when finished."""
        if self.done:
            return None
        return min(SCAN_PAGE, self.max_scan - self.scanned), self.offset

    def feed(self, page: ScrollPage) -> None:
        """Decide one page of scrolled points with the plan."""
        plan, seen = self.fetch.plan, self.fetch.seen
        for chunk in page.chunks:
            if chunk.id in seen:
                continue
            if chunk.text is None or chunk.metadata is None or plan.decide(chunk.metadata).released:
                self.pool.append(chunk)
        self.scanned += len(page.chunks)
        self.offset = page.next_offset
        if page.next_offset is None or not page.chunks:
            self.done = True
        elif self.scanned >= self.max_scan:
            self.done = self.exhausted = True

    def vector_batches(self) -> list[list[str]]:
        """The ids whose stored vectors :meth:`score` needs, in batches."""
        ids = [hit.id for hit in self.fetch.released] + [chunk.id for chunk in self.pool]
        return [ids[i : i + SCAN_PAGE] for i in range(0, len(ids), SCAN_PAGE)]

    def score(self, vectors: Mapping[str, Sequence[float]]) -> None:
        """Score points exactly from their stored vectors (one batch, by id)."""
        if vectors:
            ids = list(vectors)
            values = _scores(self.metric, self.query, [vectors[i] for i in ids])
            self.scores.update(zip(ids, values.tolist(), strict=True))

    def finish(self) -> None:
        """Release the best ``k`` in exact score order (see the class docstring)."""
        fetch, guard = self.fetch, self.fetch.guard
        entries: list[tuple[float, Hit | StoredChunk]] = []
        for hit in fetch.released:
            # a hit whose vector is gone now (deleted meanwhile) keeps its store score
            score = self.scores.get(hit.id, hit.score)
            entries.append((score, dataclasses.replace(hit, score=score)))
        entries.extend((self.scores[c.id], c) for c in self.pool if c.id in self.scores)
        entries.sort(key=lambda entry: entry[0], reverse=not guard._lower_score_is_better)
        floor = guard.budget.min_score if guard.budget is not None else None
        released: list[Hit] = []
        for score, entry in entries:
            if len(released) >= fetch.k:
                break
            if isinstance(entry, Hit):
                released.append(entry)
                continue
            if floor is not None and not score >= floor:
                break  # best first: nothing further meets min_score
            stored = dataclasses.replace(entry, score=score)
            hit = guard._decide_hit(fetch.plan, stored, fetch.subject)
            (released if hit.decision.released else fetch.withheld).append(hit)
        fetch.released = released
        fetch.truncated = self.exhausted


class Guard:
    """Guarded retrieval over a store, for any subject.

    ::

        guard = Guard(policy, store, tracer_provider=provider)
        hits = guard.search(Subject(id="alice", attributes={"clearance": 2}), vector, k=5)

    Returns ``min(k, authorised chunks in the store)`` hits, best first, each released
    by a policy line (``hit.decision.rule``): exactly, unless an inexact plan's search
    needed to read more than ``max_scan`` points (then the retrieval is marked
    ``truncated`` and may be short; see below). Parameters:

    * ``action`` — the ``r.act`` value (default ``"read"``).
    * ``provenance`` — a verifier run on each authorised hit (``ragguard.ProvenanceCheck``).
    * ``audit`` / ``audit_required`` — an audit sink; with ``audit_required=True`` a
      failed audit write fails the retrieval (nothing released).
    * ``tracer_provider`` / ``capture_content`` — OpenTelemetry; chunk and query text are
      never recorded unless ``capture_content=True``; with ``pseudonymize_subject_key``
      spans carry a keyed pseudonym (``enduser.pseudo.id``) instead of the subject id.
    * ``screens`` — content screens run on each authorised hit before release
      (``ragguard.PromptInjectionScreen``, ``ragguard.SecretsScreen`` or any callable
      ``screen(hit) -> ScreenResult``); they deny or flag, and a screen that raises
      withholds the hit.
    * ``budget`` — a ``ragguard.ReleaseBudget``: per-subject release limits and a
      minimum similarity score; a search over budget raises ``BudgetExceededError``.
    * ``search_params`` — a ``ragguard.SearchParams`` (or a mapping of its fields):
      Qdrant's ``hnsw_ef``, ``exact``, quantization ``rescore``/``oversampling`` and
      ``indexed_only`` for every search; ``search(..., search_params=)`` replaces it for
      one call. They trade recall for latency and never change which chunks may be
      released (the guard re-checks every hit).
    * ``exact_search`` — ask the store for exhaustive (non-HNSW) search: the shorthand
      for ``search_params=SearchParams(exact=True)`` (with ``search_params`` given too,
      it sets that ``exact``).
    * ``max_k`` — the largest ``k`` accepted; ``max_fetch_rounds`` — how many doubling
      rounds to fetch when hits are withheld after the store's filter.
    * ``max_scan`` — when those rounds run out, the guard finishes exactly on a store
      that can ``scroll`` (EdgeStore, QdrantStore): it reads every point the store's
      filter admits, with its vector, up to ``max_scan`` points (default 100,000),
      decides each with the plan and scores the survivors with numpy. If the budget is
      hit, the result is the best found so far, ``Retrieval.truncated`` is true and the
      span gets a ``ragguard.scan.budget_exhausted`` event. ``0`` turns the finish off.

    A guard holds no per-call state: one instance serves any number of threads.
    """

    def __init__(
        self,
        policy: Policy,
        store: Store,
        *,
        action: str = "read",
        provenance: ProvenanceVerifier | None = None,
        audit: AuditSink | None = None,
        audit_required: bool = False,
        tracer_provider: Any = None,
        capture_content: bool = False,
        pseudonymize_subject_key: bytes | str | None = None,
        exact_search: bool = False,
        search_params: SearchParams | Mapping[str, Any] | None = None,
        max_k: int = DEFAULT_MAX_K,
        max_fetch_rounds: int = DEFAULT_MAX_FETCH_ROUNDS,
        max_scan: int = DEFAULT_MAX_SCAN,
        screens: Sequence[Screen] = (),
        budget: ReleaseBudget | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a ragguard.Policy, got {type(policy).__name__}")
        if not isinstance(store, Store):
            raise TypeError(f"store must implement ragguard.Store, got {type(store).__name__}")
        if max_k < 1 or max_fetch_rounds < 1:
            raise ValueError("max_k and max_fetch_rounds must be at least 1")
        if isinstance(max_scan, bool) or not isinstance(max_scan, int) or max_scan < 0:
            raise ValueError(f"max_scan must be a non-negative integer, got {max_scan!r}")
        if isinstance(screens, (str, bytes)) or not all(callable(s) for s in screens):
            raise TypeError("screens must be a sequence of callables screen(hit) -> ScreenResult")
        if budget is not None and not isinstance(budget, ReleaseBudget):
            raise TypeError(f"budget must be a ragguard.ReleaseBudget, got {type(budget).__name__}")
        self.policy = policy
        self.store = store
        self.action = action
        self.provenance = provenance
        self.audit = audit
        self.audit_required = audit_required
        self.max_k = max_k
        self.max_fetch_rounds = max_fetch_rounds
        self.max_scan = max_scan
        self.screens: tuple[Screen, ...] = tuple(screens)
        self._screens = tuple((screen_name(screen), screen) for screen in self.screens)
        self.budget = budget
        # What the store offers beyond Store, declared once (see StoreCapabilities).
        self.capabilities = store_capabilities(store)
        params = SearchParams.coerce(search_params) or SearchParams()
        if exact_search:
            params = dataclasses.replace(params, exact=True)
        self.search_params: SearchParams = self._usable_params(params, ValueError)
        self.exact_search = params.exact
        # Qdrant scores euclid/manhattan results by distance (lower is better).
        metric = self.capabilities.distance
        self._lower_score_is_better = metric in DISTANCE_METRICS
        if budget is not None and budget.min_score is not None and self._lower_score_is_better:
            raise ValueError(
                "ReleaseBudget(min_score=) is a minimum similarity; this store scores by "
                f"{metric} distance (lower is better), so min_score cannot apply"
            )
        self._tracer = RetrievalTracer(
            tracer_provider,
            capture_content=capture_content,
            pseudonymize_key=pseudonymize_subject_key,
            data_source=self.capabilities,
        )
        self._pushdowns: weakref.WeakKeyDictionary[
            Plan, tuple[Plan, Pushdown, _ReleaseRate | None]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # -- planning ------------------------------------------------------------------------

    def plan(self, subject: Subject, action: str | None = None) -> Plan:
        """The plan for ``subject``, with ``exact`` saying whether this store can push
        the whole filter down."""
        return self._plan_and_pushdown(subject, action)[0]

    def _plan_and_pushdown(
        self, subject: Subject, action: str | None
    ) -> tuple[Plan, Pushdown, _ReleaseRate | None]:
        policy_plan = self.policy.plan(subject, action or self.action)
        entry = self._pushdowns.get(policy_plan)
        if entry is not None:
            return entry
        pushdown = self._pushdown_for(policy_plan)
        plan = dataclasses.replace(policy_plan, exact=pushdown.exact)
        rate = None if pushdown.exact else _ReleaseRate()
        with self._lock:
            # Keyed weakly on the policy's plan: the entry lives as long as the policy
            # keeps that plan cached, and goes with it.
            entry = self._pushdowns.setdefault(policy_plan, (plan, pushdown, rate))
        return entry

    def _pushdown_for(self, plan: Plan) -> Pushdown:
        if plan.kind == "deny_all":
            return Pushdown(native=None, exact=True, matches_nothing=True)
        return self._translate(plan.filter)

    def _translate(self, expr: ir.Expr) -> Pushdown:
        try:
            return self.store.translate(expr)
        except RagGuardError:
            raise
        except Exception as exc:
            raise StoreError(f"the store could not translate the plan filter: {exc}") from exc

    def check(
        self, subject: Subject, metadata: Mapping[str, Any], action: str | None = None
    ) -> Decision:
        """Decide one chunk's metadata for ``subject`` (policy only, no store)."""
        return self.policy.check(require_subject(subject), metadata, action or self.action)

    # -- searching -----------------------------------------------------------------------

    def search(
        self,
        subject: Subject,
        vector: Sequence[float],
        k: int = 5,
        *,
        action: str | None = None,
        where: ir.Expr | Mapping[str, Any] | None = None,
        search_params: SearchParams | Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks ``subject`` may read, best first.

        ``where`` narrows further: an IR expression or a mapping of metadata equalities
        (a list value means any of them). It becomes part of the plan
        (:meth:`Plan.narrow`): pushed into the store where the store can run it and
        re-checked on every hit, so it holds on every store and never widens access.
        ``search_params`` replaces the guard's :class:`SearchParams` for this call
        (ranking and recall only; a bad value is a ``QueryError``).
        """
        started = time.perf_counter()
        with self._tracer.retrieval(subject, k) as span:
            fetch, query = self._start(span, subject, vector, k, action, where, search_params)
            while (limit := fetch.next_limit()) is not None:
                fetch.feed(self._store_search(query, limit, fetch.pushdown, fetch.search_params))
            scan = self._scan(fetch, query)
            if scan is not None:
                store = cast(ScrollingStore, self.store)
                while (request := scan.next_request()) is not None:
                    scan.feed(self._store_call("scroll", store.scroll, fetch.pushdown, *request))
                for ids in scan.vector_batches():
                    scan.score(self._store_call("vectors", store.vectors, ids))
                self._finish_scan(scan)
            return self._finish(fetch, started, span)

    async def asearch(
        self,
        subject: Subject,
        vector: Sequence[float],
        k: int = 5,
        *,
        action: str | None = None,
        where: ir.Expr | Mapping[str, Any] | None = None,
        search_params: SearchParams | Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """Async :meth:`search`: uses the store's ``asearch`` if it has one, else a thread."""
        started = time.perf_counter()
        with self._tracer.retrieval(subject, k) as span:
            fetch, query = self._start(span, subject, vector, k, action, where, search_params)
            while (limit := fetch.next_limit()) is not None:
                if self.capabilities.asearch:
                    results = await self._store_asearch(
                        query, limit, fetch.pushdown, fetch.search_params
                    )
                else:
                    import asyncio  # here, not at module level: ~15 ms off `import ragguard`

                    results = await asyncio.to_thread(
                        self._store_search, query, limit, fetch.pushdown, fetch.search_params
                    )
                fetch.feed(results)
            scan = self._scan(fetch, query)
            if scan is not None:
                while (request := scan.next_request()) is not None:
                    scan.feed(await self._store_ascroll(fetch.pushdown, *request))
                for ids in scan.vector_batches():
                    scan.score(await self._store_avectors(ids))
                self._finish_scan(scan)
            return self._finish(fetch, started, span)

    # -- the pipeline's steps ----------------------------------------------------------

    def _start(
        self,
        span: Any,
        subject: Subject,
        vector: Sequence[float],
        k: int,
        action: str | None,
        where: ir.Expr | Mapping[str, Any] | None,
        search_params: SearchParams | Mapping[str, Any] | None = None,
    ) -> tuple[_Fetch, list[float]]:
        subject = require_subject(subject)
        k = self._check_k(k)
        array = self._check_vector(vector)
        params = self._call_params(search_params)
        plan, pushdown, rate = self._plan_and_pushdown(subject, action)
        if where is not None:
            # A new plan: the cached one stays as it is for every other search.
            narrowed = plan.narrow(_where_expr(where))
            if narrowed is not plan:
                pushdown = self._pushdown_for(narrowed)
                plan = dataclasses.replace(narrowed, exact=pushdown.exact)
                rate = None  # the narrowed plan releases a share of its own
        self._tracer.planned(span, plan)
        self._tracer.searching(span, params)
        if pushdown.exact:
            limit = k
        else:
            limit = _ReleaseRate.first_limit(k, None if rate is None else rate.share)
        fetch = _Fetch(self, subject, plan, pushdown, k, limit, array)
        fetch.search_params = params
        fetch.release_rate = rate
        fetch.can_scan = self.max_scan > 0 and self.capabilities.scroll
        if pushdown.matches_nothing:
            fetch.done = True  # deny_all: the store is never touched
        # Checked above (finite, the store's dimension): stores do not convert it again.
        query: list[float] = CheckedVector(array.tolist())
        return fetch, query

    def _scan(self, fetch: _Fetch, query: list[float]) -> _Scan | None:
        """The exact finish, when the rounds ran out and the store can scroll."""
        if not fetch.truncated or not fetch.can_scan or fetch.pushdown.matches_nothing:
            return None
        metric = self.capabilities.distance
        return _Scan(fetch, np.asarray(query, dtype=np.float64), metric, self.max_scan)

    def _finish_scan(self, scan: _Scan) -> None:
        scan.finish()
        scan.fetch.scan = scan  # traced after the per-chunk events (see _finish)
        if scan.exhausted:
            logger.warning(
                "ragguard: the exact finish of an inexact search stopped at max_scan=%d "
                "points; the result may be short (truncated)",
                self.max_scan,
            )

    def _store_call(self, operation: str, method: Callable[..., T], *args: Any) -> T:
        """``method(*args)``, the store's ``scroll`` or ``vectors``; failures: StoreError."""
        try:
            return method(*args)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"the store failed during {operation}: {self._describe(exc)}") from exc

    async def _store_acall(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"the store failed during {operation}: {self._describe(exc)}") from exc

    async def _store_ascroll(
        self, pushdown: Pushdown, limit: int, offset: str | int | None
    ) -> ScrollPage:
        """The store's ``ascroll`` when it declares one, else ``scroll`` in a thread."""
        if self.capabilities.ascroll:
            store = cast(AsyncScrollingStore, self.store)
            return await self._store_acall("scroll", store.ascroll(pushdown, limit, offset))
        scroll = cast(ScrollingStore, self.store).scroll
        import asyncio  # see asearch

        return await asyncio.to_thread(self._store_call, "scroll", scroll, pushdown, limit, offset)

    async def _store_avectors(self, ids: list[str]) -> dict[str, list[float]]:
        """The store's ``avectors`` when it declares ``ascroll``, else ``vectors`` in a thread."""
        if self.capabilities.ascroll:
            store = cast(AsyncScrollingStore, self.store)
            return await self._store_acall("vectors", store.avectors(ids))
        vectors = cast(ScrollingStore, self.store).vectors
        import asyncio  # see asearch

        return await asyncio.to_thread(self._store_call, "vectors", vectors, ids)

    def _call_params(self, search_params: SearchParams | Mapping[str, Any] | None) -> SearchParams:
        """This call's search parameters: the guard's, or the call's in their place."""
        if search_params is None:
            return self.search_params
        try:
            params = SearchParams.coerce(search_params)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"search_params: {exc}") from exc
        assert params is not None
        return self._usable_params(params, QueryError)

    def _usable_params(self, params: SearchParams, error: type[Exception]) -> SearchParams:
        """``params``, unless they need a store that takes only ``exact``."""
        if not self.capabilities.search_params and params.beyond_exact:
            raise error(
                f"{type(self.store).__name__} takes no search_params (only exact): "
                "hnsw_ef, rescore, oversampling and indexed_only cannot apply"
            )
        return params

    def _store_kwargs(self, params: SearchParams) -> dict[str, Any]:
        # A store that does not declare StoreCapabilities(search_params=True) gets
        # `exact` only; _usable_params refused anything more.
        if self.capabilities.search_params and params.beyond_exact:
            return {"exact": params.exact, "search_params": params}
        return {"exact": params.exact}

    def _store_search(
        self, query: list[float], limit: int, pushdown: Pushdown, params: SearchParams
    ) -> list[StoredChunk]:
        try:
            return self.store.search(query, limit, pushdown, **self._store_kwargs(params))
        except StoreError:
            raise
        except Exception as exc:  # any store failure: release nothing, say what happened
            raise self._store_failed(exc) from exc

    async def _store_asearch(
        self, query: list[float], limit: int, pushdown: Pushdown, params: SearchParams
    ) -> list[StoredChunk]:
        store = cast(AsyncStore, self.store)
        try:
            results = await store.asearch(query, limit, pushdown, **self._store_kwargs(params))
        except StoreError:
            raise
        except Exception as exc:
            raise self._store_failed(exc) from exc
        return results

    def _store_failed(self, error: Exception) -> StoreError:
        return StoreError(f"the store failed during search: {self._describe(error)}")

    def _describe(self, error: BaseException) -> str:
        """A foreign exception for a message that can reach traces and logs.

        Its message may quote what the store or sink was given (the query vector, chunk
        text): only ragguard's own errors and OS errors (errno text, addresses) are
        quoted, anything else by type unless ``capture_content=True``. The exception
        itself stays on ``__cause__``.
        """
        if self._tracer.capture_content or isinstance(error, (RagGuardError, OSError)):
            return f"{type(error).__name__}: {error}"
        return f"{type(error).__name__} (message not quoted: see __cause__)"

    def _decide_hit(self, plan: Plan, stored: StoredChunk, subject: Subject | None = None) -> Hit:
        text, metadata = stored.text, stored.metadata
        if text is None or metadata is None:
            missing = "page_content" if text is None else "metadata"
            decision = Decision(
                False, None, f"malformed payload: no usable {missing}", plan.policy_version
            )
            return Hit(
                stored.id, stored.score, text or "", metadata or {}, decision, subject=subject
            )
        decision = plan.decide(metadata)
        if decision.released and self.budget is not None:
            shortfall = self.budget.score_shortfall(stored.score)
            if shortfall is not None:
                decision = decision.withheld(shortfall)
        verdict: ProvenanceVerdict | None = None
        if decision.released and self.provenance is not None:
            try:
                verdict = self.provenance.verify(text, metadata)
            except Exception as exc:  # a verifier crash is a failed verification
                verdict = ProvenanceVerdict(
                    "error", False, f"provenance check failed: {type(exc).__name__}"
                )
            if not verdict.released:
                decision = decision.withheld(f"provenance: {verdict.reason or verdict.status}")
        hit = Hit(stored.id, stored.score, text, metadata, decision, verdict, subject=subject)
        if decision.released and self._screens:
            hit = run_screens(self._screens, hit)
        return hit

    def _finish(self, fetch: _Fetch, started: float, span: Any) -> list[Hit]:
        if fetch.release_rate is not None:
            fetch.release_rate.observe(fetch.decided, fetch.released_in_rounds)
        released = sorted(
            fetch.released, key=lambda h: h.score, reverse=not self._lower_score_is_better
        )[: fetch.k]
        withheld = fetch.withheld
        budget_error: BudgetError | None = None
        if self.budget is not None and released:
            try:
                self.budget.charge(fetch.subject.id, len(released))
            except BudgetError as exc:  # over budget (or unknown): release nothing, record why
                budget_error = exc
                reason = (
                    "release budget exceeded"
                    if isinstance(exc, BudgetExceededError)
                    else "release budget unavailable"
                )
                withheld = withheld + [
                    dataclasses.replace(hit, decision=hit.decision.withheld(reason))
                    for hit in released
                ]
                released = []
        if self.audit is not None or span.is_recording():
            # The record is for tracing and audit: with neither, nothing would read it.
            self._record(fetch, started, span, released, withheld)
        if budget_error is not None:
            self._tracer.budget_exceeded(span, budget_error)
            raise budget_error
        return released

    def _record(
        self,
        fetch: _Fetch,
        started: float,
        span: Any,
        released: list[Hit],
        withheld: list[Hit],
    ) -> None:
        """The Retrieval record of one search, to the span and the audit sink."""
        retrieval = Retrieval(
            decision_id=str(uuid.uuid4()),
            started_at=datetime.now(timezone.utc),
            subject=fetch.subject,
            plan=fetch.plan,
            k=fetch.k,
            query_digest=_query_digest(fetch.query),
            released=tuple(released),
            withheld=tuple(withheld),
            rounds=fetch.rounds,
            truncated=fetch.truncated,
            duration_s=time.perf_counter() - started,
            data_version=_data_version(self.store),
        )
        self._tracer.finished(span, retrieval)
        if fetch.scan is not None:
            self._tracer.scanned(span, fetch.scan.scanned, self.max_scan, fetch.scan.exhausted)
        if self.audit is not None:
            try:
                self.audit.record(retrieval)
            except Exception as exc:
                detail = self._describe(exc)
                if self.audit_required:
                    raise AuditError(
                        f"audit write failed, nothing released (audit_required=True): {detail}"
                    ) from exc
                logger.warning("ragguard: audit write failed (%s); retrieval continues", detail)
                self._tracer.audit_failed(span, exc)

    # -- input checks ----------------------------------------------------------------------

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int):
            raise QueryError(f"k must be an integer, got {type(k).__name__}")
        if k < 1 or k > self.max_k:
            raise QueryError(f"k must be between 1 and {self.max_k}, got {k}")
        return k

    def _check_vector(self, vector: Sequence[float]) -> npt.NDArray[np.float64]:
        try:
            array = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError):
            # Never numpy's message: it quotes the value (the query text passed by mistake).
            raise QueryError(f"the query vector {not_a_vector(vector)}") from None
        if array.ndim != 1 or array.shape[0] != self.store.dim:
            raise QueryError(
                f"the query vector has shape {array.shape}, the store holds vectors of "
                f"dimension {self.store.dim}"
            )
        if not np.isfinite(array).all():
            raise QueryError("the query vector contains NaN or infinity")
        if not array.any():
            raise QueryError("the query vector is all zeros; it has no direction to search")
        return array


def _where_expr(where: ir.Expr | Mapping[str, Any]) -> ir.Expr:
    if isinstance(where, Mapping):
        atoms: list[ir.Expr] = []
        for name, value in where.items():
            if isinstance(value, (list, tuple, set, frozenset)):
                atoms.append(ir.in_(name, list(value)))
            elif isinstance(value, (str, int, float, bool)):
                atoms.append(ir.Eq(name, value))
            else:
                raise QueryError(f"where[{name!r}] must be a scalar or a list of scalars")
        return ir.and_(*atoms)
    if not isinstance(where, EXPR_TYPES):
        raise QueryError(
            "where must be a filter IR expression or a mapping of metadata equalities, "
            f"got {type(where).__name__}"
        )
    return where


def _scores(
    metric: str, query: npt.NDArray[np.float64], vectors: Sequence[Sequence[float]]
) -> npt.NDArray[np.float64]:
    """Qdrant's score of each vector for ``query`` in ``metric``, computed with numpy.

    ``cosine`` is the cosine similarity, ``dot`` the dot product (higher is better);
    ``euclid`` the Euclidean and ``manhattan`` the L1 distance (lower is better).
    Raises :class:`StoreError` for vectors of the wrong dimension.
    """
    try:
        matrix = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"the store returned vectors that are not numbers ({type(exc).__name__})"
        ) from None
    if matrix.ndim != 2 or matrix.shape[1] != query.shape[0]:
        raise StoreError(
            f"the store returned vectors of shape {matrix.shape}, expected (n, {query.shape[0]})"
        )
    if metric == "euclid":
        result: npt.NDArray[np.float64] = np.linalg.norm(matrix - query, axis=1)
    elif metric == "manhattan":
        result = np.abs(matrix - query).sum(axis=1)
    elif metric == "dot":
        result = matrix @ query
    elif metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1)
        norms[norms == 0.0] = 1.0
        result = (matrix @ (query / np.linalg.norm(query))) / norms
    else:
        raise StoreError(f"cannot score vectors in the unknown metric {metric!r}")
    return result


def _query_digest(vector: npt.NDArray[np.float64]) -> str:
    """SHA-256 of the query vector as float32 bytes (what the audit records, never the text)."""
    return hashlib.sha256(vector.astype(np.float32).tobytes()).hexdigest()


def _data_version(store: object) -> str | None:
    """The store's optional ``data_version`` attribute (e.g. an EdgeStore replica's
    snapshot), for traces and audit records; anything but a non-empty string is None."""
    try:
        version = getattr(store, "data_version", None)
    except Exception:  # a failing property must not fail a retrieval that already ran
        return None
    return version if isinstance(version, str) and version else None
