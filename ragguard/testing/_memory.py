"""An in-memory :class:`~ragguard.Store` and audit sinks that record or fail, for tests."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from ragguard._values import MalformedValueError
from ragguard.exceptions import StoreError
from ragguard.policy import ir
from ragguard.policy._predicate import Check, compile_check, normalize_metadata
from ragguard.search_params import SearchParams
from ragguard.stores._points import as_payload, as_vector
from ragguard.stores.base import (
    Chunk,
    IndexSpec,
    Pushdown,
    Store,
    StoreCapabilities,
    StoredChunk,
    point_id,
    store_capabilities,
)

if TYPE_CHECKING:
    from ragguard.results import Retrieval

__all__ = ["FailingAuditSink", "InMemoryStore", "RecordingAuditSink", "StoreSpy"]

Distance = Literal["cosine", "dot", "euclid", "manhattan"]
PushdownMode = Literal["exact", "none"]

_DISTANCES: frozenset[str] = frozenset({"cosine", "dot", "euclid", "manhattan"})
_METHODS: frozenset[str] = frozenset(
    {"translate", "search", "upsert", "get", "delete", "create_payload_indexes", "close"}
)
_SPIED: frozenset[str] = _METHODS | {"scroll", "vectors", "asearch", "ascroll", "avectors"}
_NOTHING_PUSHED = "the in-memory store was asked to push nothing down (pushdown='none')"


class _Filter:
    """The native filter of an :class:`InMemoryStore`: the IR and its compiled predicate."""

    __slots__ = ("check", "expr", "fields")

    def __init__(self, expr: ir.Expr) -> None:
        self.expr = expr
        self.fields = frozenset(ir.fields_of(expr))
        self.check: Check = compile_check(expr)

    def accepts(self, metadata: Mapping[str, Any]) -> bool:
        try:
            return bool(self.check(normalize_metadata(metadata, self.fields)))
        except MalformedValueError:
            return False  # a value no comparison is defined on matches nothing

    def __repr__(self) -> str:
        return f"_Filter({self.expr!r})"


class InMemoryStore:
    """A :class:`~ragguard.Store` held in a Python dict: exact search over numpy.

    For testing code built on ragguard without a vector database (as httpx ships
    ``MockTransport``). Everything a real store promises holds here, so a test that
    passes on it exercises the guard for real:

    * ``translate`` pushes the plan's filter down *exactly* (``pushdown="exact"``, the
      default): ``search`` evaluates it with the same compiled predicate the guard's
      re-check uses, so the store returns exactly the authorised points. With
      ``pushdown="none"`` it pushes nothing (``Pushdown(native=None, exact=False)``) and
      the guard's re-check decides alone, fetching in rounds, like a store that cannot
      filter.
    * ``search`` is exhaustive and exact in ``distance`` (``cosine``, ``dot``: higher is
      better; ``euclid``, ``manhattan``: the distance, lower is better), ties in
      insertion order.
    * ``upsert`` refuses what Qdrant refuses (a vector of the wrong dimension or not
      finite, metadata without a JSON form, integers outside ``-2**63..2**64-1``) with
      :class:`~ragguard.StoreError`; ids follow :class:`~ragguard.Chunk` (UUIDs,
      non-negative integers, other strings mapped to a UUID).

    Failure injection and call counting, for testing what your code does when the store
    misbehaves::

        store = InMemoryStore(dim=4, fail_on={"search": 2}, error=TimeoutError("slow"))
        ...                          # the second search (and every later one) raises
        store.calls["search"]        # how many times search was called
        store.search_limits          # the limit of each search call, in order
        store.upserts                # each successful upsert's chunks, as given

    ``fail_on`` maps a method name (``search``, ``upsert``, ``get``, ``translate``,
    ``delete``, ``create_payload_indexes``, ``close``) to the 1-based call number from
    which it raises ``error`` (default: ``ConnectionError("injected store failure")``);
    both are plain attributes, change them at any time. The store is thread-safe.
    """

    def __init__(
        self,
        dim: int,
        *,
        distance: Distance = "cosine",
        pushdown: PushdownMode = "exact",
        fail_on: Mapping[str, int] | None = None,
        error: BaseException | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if distance not in _DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        if pushdown not in ("exact", "none"):
            raise ValueError(f"pushdown must be 'exact' or 'none', got {pushdown!r}")
        self._dim = dim
        self._distance: Distance = distance
        self.pushdown: PushdownMode = pushdown
        self.fail_on: dict[str, int] = dict(fail_on or {})
        unknown = sorted(set(self.fail_on) - _METHODS)
        if unknown:
            raise ValueError(f"fail_on names unknown methods {unknown}; known: {sorted(_METHODS)}")
        self.error: BaseException = error or ConnectionError("injected store failure")
        self.calls: Counter[str] = Counter()
        self.search_limits: list[int] = []
        self.indexes: list[IndexSpec] = []
        self.upserts: list[list[Chunk]] = []
        self.closed = False
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._vectors: list[npt.NDArray[np.float64]] = []
        self._payloads: list[tuple[str, dict[str, Any]]] = []
        self._position: dict[str, int] = {}

    # -- bookkeeping ----------------------------------------------------------------------

    def _call(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1
            threshold = self.fail_on.get(method)
            if threshold is not None and self.calls[method] >= threshold:
                raise self.error

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        return self._dim

    @property
    def distance(self) -> Distance:
        """The metric ``search`` scores in."""
        return self._distance

    @property
    def capabilities(self) -> StoreCapabilities:
        """Its metric; no async, scroll or trace names (``db.system.name`` ``memory``)."""
        return StoreCapabilities(distance=self._distance, db_system_name="memory")

    def count(self) -> int:
        """How many points the store holds."""
        return len(self._ids)

    def __repr__(self) -> str:
        return (
            f"InMemoryStore(dim={self._dim}, distance={self._distance!r}, "
            f"pushdown={self.pushdown!r}, points={len(self._ids)})"
        )

    # -- the Store protocol -----------------------------------------------------------------

    def translate(self, expr: ir.Expr) -> Pushdown:
        """The plan filter as this store's native filter (exact unless ``pushdown="none"``)."""
        self._call("translate")
        if self.pushdown == "none":
            return Pushdown(native=None, exact=False, relaxed=(_NOTHING_PUSHED,))
        if expr == ir.FALSE:
            return Pushdown(native=None, exact=True, matches_nothing=True)
        if expr == ir.TRUE:
            return Pushdown(native=None, exact=True)
        return Pushdown(native=_Filter(expr), exact=True)

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """The ``limit`` nearest points matching ``pushdown``, best first (always exact)."""
        with self._lock:
            self.search_limits.append(limit)
        self._call("search")
        with self._lock:
            if self.closed:
                raise StoreError("this InMemoryStore is closed")
            query = np.asarray(as_vector(vector, self._dim), dtype=np.float64)
            if pushdown.matches_nothing or limit <= 0 or not self._ids:
                return []
            native = pushdown.native
            if native is not None and not isinstance(native, _Filter):
                raise StoreError(
                    f"not a filter this store translated (got a {type(native).__name__})"
                )
            rows = [
                i
                for i, (_, metadata) in enumerate(self._payloads)
                if native is None or native.accepts(metadata)
            ]
            if not rows:
                return []
            scores = self._score(query, np.stack([self._vectors[i] for i in rows]))
            lower_is_better = self._distance in ("euclid", "manhattan")
            order = np.argsort(scores if lower_is_better else -scores, kind="stable")[:limit]
            return [self._stored(rows[i], float(scores[i])) for i in order]

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks (all or none of them); returns their point ids."""
        self._call("upsert")
        batch = list(chunks)
        prepared: list[tuple[str, npt.NDArray[np.float64], tuple[str, dict[str, Any]]]] = []
        for chunk in batch:
            key = str(point_id(chunk.id))
            vector = np.asarray(as_vector(chunk.vector, self._dim), dtype=np.float64)
            checked = as_payload(chunk.text, chunk.metadata, key)
            prepared.append((key, vector, (chunk.text, copy.deepcopy(checked["metadata"]))))
        with self._lock:
            if self.closed:
                raise StoreError("this InMemoryStore is closed")
            self.upserts.append(batch)
            for key, vector, payload in prepared:
                position = self._position.get(key)
                if position is None:
                    self._position[key] = len(self._ids)
                    self._ids.append(key)
                    self._vectors.append(vector)
                    self._payloads.append(payload)
                else:
                    self._vectors[position] = vector
                    self._payloads[position] = payload
        return [key for key, _, _ in prepared]

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        """The stored points with these ids (missing ids skipped; score 0.0)."""
        self._call("get")
        with self._lock:
            out: list[StoredChunk] = []
            for raw in ids:
                position = self._position.get(str(point_id(raw)))
                if position is not None:
                    out.append(self._stored(position, 0.0))
            return out

    def delete(self, ids: Sequence[str | int]) -> None:
        """Remove these points (missing ids are ignored)."""
        self._call("delete")
        with self._lock:
            doomed = {str(point_id(raw)) for raw in ids}
            keep = [i for i, key in enumerate(self._ids) if key not in doomed]
            self._ids = [self._ids[i] for i in keep]
            self._vectors = [self._vectors[i] for i in keep]
            self._payloads = [self._payloads[i] for i in keep]
            self._position = {key: i for i, key in enumerate(self._ids)}

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Remember the specs (in :attr:`indexes`); an in-memory scan needs no index."""
        self._call("create_payload_indexes")
        with self._lock:
            for spec in specs:
                if spec not in self.indexes:
                    self.indexes.append(spec)

    def close(self) -> None:
        """Mark the store closed: later reads and writes raise ``StoreError``."""
        self._call("close")
        self.closed = True

    # -- helpers --------------------------------------------------------------------------------

    def _stored(self, position: int, score: float) -> StoredChunk:
        text, metadata = self._payloads[position]
        return StoredChunk(self._ids[position], score, text, copy.deepcopy(metadata))

    def _score(
        self, query: npt.NDArray[np.float64], matrix: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        if self._distance == "euclid":
            result: npt.NDArray[np.float64] = np.linalg.norm(matrix - query, axis=1)
        elif self._distance == "manhattan":
            result = np.abs(matrix - query).sum(axis=1)
        elif self._distance == "dot":
            result = matrix @ query
        else:
            norms = np.linalg.norm(matrix, axis=1)
            norms[norms == 0.0] = 1.0
            qnorm = float(np.linalg.norm(query)) or 1.0
            result = (matrix @ (query / qnorm)) / norms
        return result


class StoreSpy:
    """Wraps any :class:`~ragguard.Store`: counts its calls and injects failures.

    The same switches as :class:`InMemoryStore` (``fail_on``, ``error``, ``calls``,
    ``search_limits``) around a real store, so a test keeps the real engine (its filter
    translation, its search) and still sees how often the guard called it or what the
    guard does when the second fetch round fails::

        spy = StoreSpy(edge_store, fail_on={"search": 2})
        guard = Guard(policy, spy)
        ...
        assert spy.search_limits == [40]      # the first round's limit

    Other attributes (``distance``, ``scroll``, ``collection``...) are the wrapped
    store's; its ``scroll``, ``vectors`` and async methods are counted and can fail too.
    ``close`` is forwarded to the wrapped store.
    """

    def __init__(
        self,
        inner: Store,
        *,
        fail_on: Mapping[str, int] | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.inner = inner
        self.fail_on: dict[str, int] = dict(fail_on or {})
        unknown = sorted(set(self.fail_on) - _SPIED)
        if unknown:
            raise ValueError(f"fail_on names unknown methods {unknown}; known: {sorted(_SPIED)}")
        self.error: BaseException = error or ConnectionError("injected store failure")
        self.calls: Counter[str] = Counter()
        self.search_limits: list[int] = []
        self._lock = threading.Lock()

    def _call(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1
            threshold = self.fail_on.get(method)
            if threshold is not None and self.calls[method] >= threshold:
                raise self.error

    @property
    def dim(self) -> int:
        """The wrapped store's dimension."""
        return self.inner.dim

    @property
    def capabilities(self) -> StoreCapabilities:
        """The wrapped store's (declared or inferred); its optional methods are counted."""
        return store_capabilities(self.inner)

    def translate(self, expr: ir.Expr) -> Pushdown:
        """Counted, then the wrapped store's translation."""
        self._call("translate")
        return self.inner.translate(expr)

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
        search_params: SearchParams | None = None,
    ) -> list[StoredChunk]:
        """Counted (limit in :attr:`search_limits`), then the wrapped store's search
        (``search_params`` forwarded when given: the guard gives it only to a store that
        declares ``search_params``, and the spy declares what the wrapped store does)."""
        with self._lock:
            self.search_limits.append(limit)
        self._call("search")
        if search_params is None:
            return self.inner.search(vector, limit, pushdown, exact=exact)
        search: Any = self.inner.search
        results: list[StoredChunk] = search(
            vector, limit, pushdown, exact=exact, search_params=search_params
        )
        return results

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Counted, then forwarded."""
        self._call("upsert")
        return self.inner.upsert(chunks)

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        """Counted, then forwarded."""
        self._call("get")
        return self.inner.get(ids)

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Counted, then forwarded."""
        self._call("create_payload_indexes")
        self.inner.create_payload_indexes(specs)

    def close(self) -> None:
        """Counted, then forwarded."""
        self._call("close")
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name not in _SPIED or not callable(value):
            return value
        if name.startswith("a"):

            async def counted_async(*args: Any, **kwargs: Any) -> Any:
                self._call(name)
                return await value(*args, **kwargs)

            return counted_async

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._call(name)
            return value(*args, **kwargs)

        return counted

    def __repr__(self) -> str:
        return f"StoreSpy({self.inner!r})"


class RecordingAuditSink:
    """An audit sink that keeps every :class:`~ragguard.Retrieval` in memory, in order.

    As ``structlog.testing`` captures log entries: pass it as ``Guard(audit=...)`` and
    assert on what the guard recorded::

        sink = RecordingAuditSink()
        guard = Guard(policy, store, audit=sink)
        guard.search(alice, vector, k=5)
        [retrieval] = sink.retrievals
        assert not retrieval.truncated
    """

    def __init__(self) -> None:
        self.retrievals: list[Retrieval] = []
        self._lock = threading.Lock()

    def record(self, retrieval: Retrieval) -> None:
        """Keep the retrieval."""
        with self._lock:
            self.retrievals.append(retrieval)

    @property
    def last(self) -> Retrieval:
        """The latest retrieval recorded (``IndexError`` when there is none)."""
        return self.retrievals[-1]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self.retrievals.clear()


class FailingAuditSink:
    """An audit sink whose storage is gone: every ``record`` raises ``error``.

    For testing ``Guard(audit_required=True)`` (the retrieval fails, nothing is
    released) and the best-effort default (the failure is noted on the span).
    ``calls`` counts the attempts. The default error is ``OSError("disk full")``.
    """

    def __init__(self, error: BaseException | None = None) -> None:
        self.error: BaseException = error or OSError("disk full")
        self.calls = 0

    def record(self, retrieval: Retrieval) -> None:
        """Count the attempt and raise."""
        self.calls += 1
        raise self.error
