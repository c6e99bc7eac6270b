"""``EdgeStore``: the real Qdrant engine in-process, through ``qdrant-edge-py``.

No server to start: a shard is a directory. ::

    store = rg.EdgeStore.create("data/shard", dim=384, distance="cosine")
    store.upsert(chunks)
    store.optimize()                 # build the HNSW index after bulk writes
    ...
    store = rg.EdgeStore.open("data/shard")   # later, or in another process

Points use the LangChain payload layout ``{"page_content": text, "metadata": {...}}`` so
the policy's attributes are filterable as ``metadata.<name>``. One process may hold a
shard directory open at a time (Qdrant locks its write-ahead log); within a process one
``EdgeStore`` is safe to share between threads.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import qdrant_edge as qe

from ragguard.exceptions import StoreError
from ragguard.policy import ir
from ragguard.stores._points import as_payload, as_vector, stored_chunk
from ragguard.stores._qdrant_filter import FilterTranslator
from ragguard.stores.base import Chunk, IndexSpec, Pushdown, StoredChunk, point_id

__all__ = ["EdgeStore"]

CONTENT_KEY: Final = "page_content"
METADATA_KEY: Final = "metadata"

_DISTANCES: Final = {
    "cosine": qe.Distance.Cosine,
    "dot": qe.Distance.Dot,
    "euclid": qe.Distance.Euclid,
    "manhattan": qe.Distance.Manhattan,
}
_SCHEMAS: Final = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}


class _EdgeFilters:
    """``qdrant_edge``'s filter classes behind :class:`FilterBuilder`."""

    def match_value(self, key: str, value: str | bool | int) -> Any:
        # qdrant-edge-py 0.9 reads a Python bool as the integer 1/0 (so True would match
        # the number 1 and not the boolean true); numpy's bool keeps its type.
        native: Any = np.bool_(value) if isinstance(value, bool) else value
        return qe.FieldCondition(key, match=qe.MatchValue(native))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    def range(
        self,
        key: str,
        *,
        gt: float | None = None,
        gte: float | None = None,
        lt: float | None = None,
        lte: float | None = None,
    ) -> Any:
        return qe.FieldCondition(key, range=qe.RangeFloat(gt=gt, gte=gte, lt=lt, lte=lte))

    def is_empty(self, key: str) -> Any:
        return qe.IsEmptyCondition(key)

    def is_null(self, key: str) -> Any:
        return qe.IsNullCondition(key)

    def filter(
        self,
        *,
        must: Sequence[Any] | None = None,
        should: Sequence[Any] | None = None,
        must_not: Sequence[Any] | None = None,
    ) -> Any:
        return qe.Filter(
            must=list(must) if must else None,
            should=list(should) if should else None,
            must_not=list(must_not) if must_not else None,
        )


class EdgeStore:
    """An embedded Qdrant shard (``qdrant-edge-py``) as a ragguard :class:`~ragguard.stores.base.Store`.

    Build it with :meth:`create` or :meth:`open`; close it (or use ``with``) to release
    the shard's lock. ``shard`` is the underlying ``qdrant_edge.EdgeShard`` for what this
    class does not wrap; writes made through it bypass nothing the guard relies on (every
    hit is re-checked), but they are not signed.
    """

    db_system_name: Final = "qdrant"

    def __init__(self, shard: qe.EdgeShard, *, path: Path, dim: int, distance: str) -> None:
        self.shard = shard
        self.path = path
        self._dim = dim
        self.distance = distance
        self._filters = FilterTranslator(_EdgeFilters(), key_prefix=METADATA_KEY + ".")
        # Reads (search, get, count) run concurrently: the engine releases the GIL while
        # it searches, so a store-wide lock would serialise every thread's queries.
        # Writes and close() wait for the reads in progress and run alone.
        self._access = _SharedExclusiveLock()
        self._closed = False

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, *, dim: int, distance: str = "cosine") -> EdgeStore:
        """Create a new, empty shard directory at ``path``.

        ``distance`` is ``"cosine"``, ``"dot"``, ``"euclid"`` or ``"manhattan"``. Raises
        :class:`StoreError` if ``path`` already holds files (use :meth:`open`).
        """
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        metric = _DISTANCES.get(distance)
        if metric is None:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        where = Path(path)
        if where.exists() and (not where.is_dir() or any(where.iterdir())):
            raise StoreError(
                f"{where} already exists and is not empty; open it with EdgeStore.open"
            )
        where.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=metric))
        try:
            shard = qe.EdgeShard.create(str(where), config)
        except Exception as exc:
            raise StoreError(f"cannot create an edge shard at {where}: {exc}") from exc
        return cls(shard, path=where, dim=dim, distance=distance)

    @classmethod
    def open(cls, path: str | Path) -> EdgeStore:
        """Open an existing shard directory (made by :meth:`create` or ``qdrant-edge``)."""
        where = Path(path)
        if not where.is_dir():
            raise StoreError(f"{where} is not an edge shard directory (it does not exist)")
        dim, distance = _read_vector_config(where)
        try:
            shard = qe.EdgeShard.load(str(where))
        except Exception as exc:
            hint = " (is it open in another process or store?)" if "WouldBlock" in str(exc) else ""
            raise StoreError(f"cannot open the edge shard at {where}{hint}: {exc}") from exc
        return cls(shard, path=where, dim=dim, distance=distance)

    # -- the Store protocol ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        return self._dim

    def translate(self, expr: ir.Expr) -> Pushdown:
        """The Qdrant filter for a plan's filter IR (see ``ragguard.stores._qdrant_filter``)."""
        return self._filters.translate(expr)

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """The ``limit`` nearest points matching ``pushdown``, best first."""
        if pushdown.matches_nothing or limit <= 0:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(as_vector(vector, self._dim)),
            filter=pushdown.native,
            with_payload=True,
            with_vector=False,
            params=qe.SearchParams(exact=True) if exact else None,
        )
        with self._open_shard("search", shared=True) as shard:
            points = shard.query(request)
        return [stored_chunk(p.id, p.score, p.payload) for p in points]

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks; returns their point ids as strings (see :func:`point_id`)."""
        points: list[qe.Point] = []
        ids: list[str] = []
        for chunk in chunks:
            pid = point_id(chunk.id)
            payload = as_payload(chunk.text, chunk.metadata, chunk.id)
            points.append(qe.Point(pid, as_vector(chunk.vector, self._dim), payload))
            ids.append(str(pid))
        if points:
            with self._open_shard("upsert") as shard:
                shard.update(qe.UpdateOperation.upsert_points(points))
        return ids

    def get(self, ids: Sequence[str | int]) -> list[StoredChunk]:
        """The stored points with these chunk ids, in the order asked (missing ones skipped)."""
        if not ids:
            return []
        with self._open_shard("get", shared=True) as shard:
            records = shard.retrieve([point_id(i) for i in ids], True, False)
        return [stored_chunk(r.id, 0.0, r.payload) for r in records]

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Create payload indexes on ``metadata.<field>`` (idempotent)."""
        with self._open_shard("create_payload_indexes") as shard:
            for spec in specs:
                schema: Any = _SCHEMAS[spec.schema]
                if spec.is_tenant and spec.schema == "keyword":
                    schema = qe.KeywordIndexParams(is_tenant=True)
                key = f"{METADATA_KEY}.{spec.field}"
                shard.update(qe.UpdateOperation.create_field_index(key, schema))

    def close(self) -> None:
        """Flush and release the shard (idempotent)."""
        with self._access.exclusive():
            if self._closed:
                return
            self._closed = True
            try:
                self.shard.close()
            except Exception as exc:
                raise StoreError(f"closing the edge shard at {self.path} failed: {exc}") from exc

    # -- beyond the protocol --------------------------------------------------------------

    def optimize(self) -> None:
        """Build the HNSW and payload indexes; call after bulk upserts."""
        with self._open_shard("optimize") as shard:
            shard.optimize()

    def count(self) -> int:
        """Number of points in the shard."""
        with self._open_shard("count", shared=True) as shard:
            return int(shard.info().points_count)

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"EdgeStore({str(self.path)!r}, dim={self._dim}, distance={self.distance!r}, {state})"
        )

    # -- helpers --------------------------------------------------------------------------

    def _open_shard(self, operation: str, *, shared: bool = False) -> _ShardCall:
        return _ShardCall(self, operation, shared=shared)


class _SharedExclusiveLock:
    """Many shared holders at once, or one exclusive holder; a waiting exclusive caller
    keeps new shared callers out, so close() is not starved by a stream of searches.
    Not reentrant."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    def acquire(self, *, shared: bool) -> None:
        with self._condition:
            if shared:
                while self._exclusive or self._waiting_exclusive:
                    self._condition.wait()
                self._shared += 1
                return
            self._waiting_exclusive += 1
            try:
                while self._exclusive or self._shared:
                    self._condition.wait()
            finally:
                self._waiting_exclusive -= 1
            self._exclusive = True

    def release(self, *, shared: bool) -> None:
        with self._condition:
            if shared:
                self._shared -= 1
            else:
                self._exclusive = False
            self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        self.acquire(shared=False)
        try:
            yield
        finally:
            self.release(shared=False)


class _ShardCall:
    """One call into the shard (shared or exclusive, see EdgeStore.__init__); turns
    engine failures into StoreError."""

    def __init__(self, store: EdgeStore, operation: str, *, shared: bool) -> None:
        self._store = store
        self._operation = operation
        self._shared = shared

    def __enter__(self) -> qe.EdgeShard:
        self._store._access.acquire(shared=self._shared)
        if self._store._closed:
            self._store._access.release(shared=self._shared)
            raise StoreError(f"{self._operation} on a closed EdgeStore ({self._store.path})")
        return self._store.shard

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store._access.release(shared=self._shared)
        if exc is not None and not isinstance(exc, (StoreError, ValueError, TypeError)):
            raise StoreError(
                f"edge shard {self._operation} failed at {self._store.path}: {exc}"
            ) from exc


def _read_vector_config(path: Path) -> tuple[int, str]:
    config_file = path / "edge_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        vectors = config["vectors"][""]
        dim = int(vectors["size"])
        distance = str(vectors["distance"]).lower()
    except FileNotFoundError:
        raise StoreError(f"{path} is not an edge shard directory (no edge_config.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"cannot read the vector configuration in {config_file}: {exc!r}") from exc
    return dim, distance
