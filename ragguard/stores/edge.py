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

Crashes and full disks (docs/stores.md): :meth:`EdgeStore.create` builds the shard in a
hidden sibling directory and renames it into place, so a killed create leaves no
half-made shard under the name; the engine writes through memory maps, where a full
disk is a SIGBUS that kills the process, so ``create``, ``open``, ``upsert``,
``optimize`` and ``create_payload_indexes`` first check the free space against what the
engine will need and raise :class:`StoreError` naming the shortfall.

Serving from several processes (docs/stores.md "Serving with several worker
processes"): ``EdgeShard.query`` holds the GIL for the whole search and a shard
directory opens in one process only, so one process searches on one core. The
ingesting process (the *primary*) publishes snapshots with :meth:`EdgeStore.snapshot`;
each worker process serves its own read-only copy, :meth:`EdgeStore.open_replica`, and
swaps in the newest snapshot with :meth:`EdgeStore.refresh`. ::

    primary.snapshot("data/snapshots")                       # after ingesting
    replica = rg.EdgeStore.open_replica("data/replicas/w1", source="data/snapshots")
    replica.refresh()                                        # later: True if it changed
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

import numpy as np
import qdrant_edge as qe

from ragguard.exceptions import ReplicaInUseError, StoreError
from ragguard.policy import ir
from ragguard.search_params import SearchParams, qdrant_search_params
from ragguard.stores._points import as_payload, as_vector, dense_vector, stored_chunk
from ragguard.stores._qdrant_filter import FilterTranslator
from ragguard.stores.base import (
    Chunk,
    Distance,
    IndexSpec,
    Pushdown,
    ScrollPage,
    StoreCapabilities,
    StoredChunk,
    point_id,
)

__all__ = ["EdgeStore"]

logger = logging.getLogger("ragguard")

CONTENT_KEY: Final = "page_content"
METADATA_KEY: Final = "metadata"

_MIB: Final = 1 << 20
# Free space the engine needs (qdrant-edge-py 0.9, measured on tmpfs and ext4; see
# docs/stores.md "Crashes and full disks"). Writes go through memory maps: on a full
# disk the kernel answers a write to a map with SIGBUS, which no caller can catch.
# A new shard allocates about 1.05 MiB.
_CREATE_BYTES: Final = 3 * _MIB // 2
# Opening populates the vector storage maps (32 MiB chunk files): their holes (apparent
# size minus allocated blocks) become allocated on tmpfs; on disk filesystems the
# next writes fill them. Replaying the write-ahead log adds up to about 1 MiB per 8,000
# points in it (measured: 21.3 MiB for 20.3 MiB of holes and an 18 MiB log).
_OPEN_MARGIN_BYTES: Final = 2 * _MIB
# An upsert grows the shard by 1.2-2.9x the raw size of its points (payload JSON +
# 4 bytes per dimension): write-ahead log, payload pages, vectors, id trackers.
_UPSERT_FACTOR: Final = 3
_UPSERT_POINT_BYTES: Final = 256
_WRITE_MARGIN_BYTES: Final = _MIB
# A payload index: measured 2.0 MiB each plus 32 (keyword) or 48 (integer) bytes per
# point (60,000 points).
_INDEX_BYTES: Final = 5 * _MIB // 2
_INDEX_POINT_BYTES: Final = 64
# The directory a create builds the shard in, next to the final one; a marker file
# flags a shard being created in place (the target is a mount point, so a rename
# from a sibling cannot work).
_STAGING_INFIX: Final = ".creating-"
_CREATING_MARKER: Final = ".ragguard-creating"
# Snapshots (EdgeStore.snapshot) live in a directory of version-named shard copies,
# each with a manifest, and a LATEST file naming the newest; a replica directory holds
# the copy it serves, a lock file (one process per replica directory), and staging
# directories while a copy is made.
_SNAPSHOT_MANIFEST: Final = "ragguard-snapshot.json"
_SNAPSHOT_LATEST: Final = "LATEST"
_SNAPSHOT_PREFIX: Final = "snapshot-"
_REPLICA_LOCK: Final = ".ragguard-replica.lock"
_COPY_INFIX: Final = ".copying-"

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

    def match_prefix(self, key: str, prefix: str) -> Any:
        return qe.FieldCondition(key, match=qe.MatchPrefix(prefix))

    def match_substring(self, key: str, substring: str) -> Any:
        return qe.FieldCondition(key, match=qe.MatchSubstring(substring))

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
        # Reads (search, get, count) share the shard; writes, close() and a replica's
        # handle swap (refresh) wait for the reads in progress and run alone. (The
        # engine holds the GIL while it searches, so threads do not search in
        # parallel; the shared mode keeps a slow call from blocking the others' Python.)
        self._access = _SharedExclusiveLock()
        self._closed = False
        # Set on replicas (open_replica): read-only, serving a snapshot version.
        self._replica: _ReplicaState | None = None
        self._served = threading.local()
        self._snapshotting = threading.Lock()

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, *, dim: int, distance: str = "cosine") -> EdgeStore:
        """Create a new, empty shard directory at ``path``.

        ``distance`` is ``"cosine"``, ``"dot"``, ``"euclid"`` or ``"manhattan"``. Raises
        :class:`StoreError` if ``path`` already holds files (use :meth:`open`), or when
        the disk lacks the space a new shard needs.

        The shard is built in a hidden sibling (``.<name>.creating-<pid>-<random>``) and
        renamed into place, so ``path`` never holds half a shard: a create killed
        midway leaves ``path`` as it was, and the next create removes the sibling. When
        ``path`` is an empty mount point (no rename can reach it) the shard is built in
        place under a marker file instead. A directory left by an interrupted create
        (the marker, or no ``edge_config.json`` and only the engine's empty skeleton) is
        recognised, holds no points, and is replaced.
        """
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        metric = _DISTANCES.get(distance)
        if metric is None:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        where = Path(path)
        if where.exists() and not where.is_dir():
            raise StoreError(f"{where} already exists and is not empty (it is a file)")
        if where.is_dir() and any(where.iterdir()):
            if not _interrupted_creation(where):
                raise StoreError(
                    f"{where} already exists and is not empty; open it with EdgeStore.open"
                )
            logger.warning(
                "ragguard: %s holds an interrupted EdgeStore.create (no points); replacing it",
                where,
            )
            _empty_directory(where)
        # A symlink to a directory: build next to the directory it points to.
        target = where.resolve() if where.is_symlink() else where
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(target)
        room = target if target.is_dir() else target.parent
        _require_space(room, _CREATE_BYTES, f"creating an edge shard at {where}")
        config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=metric))
        try:
            if target.is_dir() and _is_mount_point(target):
                raise _NoRename
            _create_and_rename(target, config)
        except _NoRename:  # a mount point (bind mounts show up as EBUSY or EXDEV)
            _create_in_place(target, config)
        return cls._load(where, dim, distance)

    @classmethod
    def open(cls, path: str | Path) -> EdgeStore:
        """Open an existing shard directory (made by :meth:`create` or ``qdrant-edge``).

        Raises :class:`StoreError` when the disk lacks the space opening needs (see
        docs/stores.md), and names a directory left by an interrupted create.
        """
        where = Path(path)
        if not where.is_dir():
            raise StoreError(f"{where} is not an edge shard directory (it does not exist)")
        if _interrupted_creation(where):
            raise StoreError(
                f"{where} holds an interrupted EdgeStore.create, not a shard (it holds no "
                "points); EdgeStore.create on this path replaces it"
            )
        dim, distance = _read_vector_config(where)
        return cls._load(where, dim, distance)

    @classmethod
    def _load(cls, where: Path, dim: int, distance: str) -> EdgeStore:
        _require_space(where, _open_bytes(where), f"opening the edge shard at {where}")
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

    @property
    def capabilities(self) -> StoreCapabilities:
        """Scrolls (the guard's exact finish); searches synchronously (the engine is
        in-process: ``Guard.asearch`` uses a worker thread)."""
        return StoreCapabilities(
            distance=cast(Distance, self.distance),
            scroll=True,
            db_system_name=self.db_system_name,
            metadata_key=METADATA_KEY,
            search_params=True,
        )

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
        search_params: SearchParams | None = None,
    ) -> list[StoredChunk]:
        """The ``limit`` nearest points matching ``pushdown``, best first.

        ``search_params`` are passed to the engine as its ``SearchParams`` (``exact=True``
        or ``search_params.exact`` makes the search exhaustive).
        """
        if pushdown.matches_nothing or limit <= 0:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(as_vector(vector, self._dim)),
            filter=pushdown.native,
            with_payload=True,
            with_vector=False,
            params=_edge_params(exact, search_params),
        )
        with self._open_shard("search", shared=True) as shard:
            points = shard.query(request)
            if self._replica is not None:
                self._served.version = self._replica.version
        return [stored_chunk(p.id, p.score, p.payload) for p in points]

    def scroll(self, pushdown: Pushdown, limit: int, offset: str | int | None = None) -> ScrollPage:
        """Up to ``limit`` points matching ``pushdown`` from ``offset`` on, with their
        payloads (see :class:`~ragguard.stores.base.ScrollingStore`)."""
        if pushdown.matches_nothing or limit <= 0:
            return ScrollPage([], None)
        request = qe.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=pushdown.native,
            with_payload=True,
            with_vector=False,
        )
        with self._open_shard("scroll", shared=True) as shard:
            records, next_offset = shard.scroll(request)
        chunks = [stored_chunk(r.id, 0.0, r.payload) for r in records]
        offset = str(next_offset) if isinstance(next_offset, uuid.UUID) else next_offset
        return ScrollPage(chunks, offset)

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of these points, by id (cosine shards store them
        normalised; missing points left out)."""
        if not ids:
            return {}
        with self._open_shard("vectors", shared=True) as shard:
            records = shard.retrieve([point_id(i) for i in ids], False, True)
        return {str(r.id): dense_vector(r.vector, None, r.id) for r in records}

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks; returns their point ids as strings (see :func:`point_id`)."""
        points: list[qe.Point] = []
        ids: list[str] = []
        raw_bytes = 0
        for chunk in chunks:
            pid = point_id(chunk.id)
            payload = as_payload(chunk.text, chunk.metadata, chunk.id)
            points.append(qe.Point(pid, as_vector(chunk.vector, self._dim), payload))
            ids.append(str(pid))
            raw_bytes += _payload_bytes(payload) + 4 * self._dim
        if points:
            need = (
                _UPSERT_FACTOR * raw_bytes + _UPSERT_POINT_BYTES * len(points) + _WRITE_MARGIN_BYTES
            )
            with self._open_shard("upsert") as shard:
                _require_space(self.path, need, f"upserting {len(points)} points into {self.path}")
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
        specs = list(specs)
        with self._open_shard("create_payload_indexes") as shard:
            points = int(shard.info().points_count)
            need = (_INDEX_BYTES + _INDEX_POINT_BYTES * points) * len(specs) + _WRITE_MARGIN_BYTES
            _require_space(self.path, need, f"creating payload indexes in {self.path}")
            for spec in specs:
                schema: Any = _SCHEMAS[spec.schema]
                if spec.is_tenant and spec.schema == "keyword":
                    schema = qe.KeywordIndexParams(is_tenant=True)
                key = f"{METADATA_KEY}.{spec.field}"
                shard.update(qe.UpdateOperation.create_field_index(key, schema))

    def close(self) -> None:
        """Flush and release the shard (idempotent); a replica also releases its directory."""
        with self._access.exclusive():
            if self._closed:
                return
            self._closed = True
            try:
                self.shard.close()
            except Exception as exc:
                raise StoreError(f"closing the edge shard at {self.path} failed: {exc}") from exc
            finally:
                if self._replica is not None:
                    self._replica.release()

    # -- snapshots and read replicas ------------------------------------------------------

    def snapshot(self, directory: str | Path, *, keep: int = 3) -> str:
        """Publish a consistent copy of this shard into ``directory``; returns its version.

        Writes wait while the shard is flushed and copied (searches go on). The copy is
        made in a hidden staging directory, gets a manifest, and is renamed to
        ``directory/<version>``; then ``directory/LATEST`` names it (replaced
        atomically), so :meth:`open_replica` and :meth:`refresh` only ever see whole
        snapshots. Versions are ``snapshot-<sequence>-<UTC time>``, increasing. Only the
        ``keep`` newest snapshots are kept (``keep >= 2``, so a replica copying the
        previous one is not cut off; one that is fails its refresh and keeps serving).
        Raises :class:`StoreError` on a replica, or when the disk lacks room for the copy.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
            raise ValueError(f"keep must be an integer >= 2, got {keep!r}")
        if self._replica is not None:
            raise StoreError(f"snapshot on a read-only replica ({self.path}); snapshot the primary")
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        # Shared access keeps writes (exclusive) out while searches go on; the snapshot
        # lock keeps two snapshots of this store from taking the same sequence number.
        with self._snapshotting:
            with self._open_shard("snapshot", shared=True) as shard:
                shard.flush()
                sequence = _latest_sequence(target) + 1
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                version = f"{_SNAPSHOT_PREFIX}{sequence:08d}-{stamp}"
                manifest = {
                    "version": version,
                    "created_at": datetime.now(timezone.utc).isoformat(),
                    "points": int(shard.info().points_count),
                    "dim": self._dim,
                    "distance": self.distance,
                }
                _copy_shard(self.path, target / version, f"snapshotting {self.path} into {target}")
            _write_atomically(
                target / version / _SNAPSHOT_MANIFEST, json.dumps(manifest, sort_keys=True)
            )
            # Publishing: LATEST names only whole snapshots, newest last.
            _write_atomically(target / _SNAPSHOT_LATEST, version + "\n")
            _prune_snapshots(target, keep)
        return version

    @classmethod
    def open_replica(cls, path: str | Path, *, source: str | Path) -> EdgeStore:
        """A read-only copy of the newest snapshot in ``source``, served from ``path``.

        ``path`` is this replica's own directory (one process at a time: a lock file
        says so; a second opener gets :class:`StoreError`); the snapshot is copied into
        it, since the engine opens a shard directory in one process only. Writes raise
        :class:`StoreError`; :attr:`data_version` names the snapshot served;
        :meth:`refresh` moves to a newer one.
        """
        where = Path(path)
        origin = Path(source)
        where.mkdir(parents=True, exist_ok=True)
        state = _ReplicaState(where, origin)
        try:
            version = _read_latest(origin)
            shard_dir = state.fetch(version)
            dim, distance = _read_vector_config(shard_dir)
            store = cls._load(shard_dir, dim, distance)
        except BaseException:
            state.release()
            raise
        state.version = version
        state.remove_others(keep=shard_dir)
        store._replica = state
        return store

    @property
    def is_replica(self) -> bool:
        """Whether this store is a read-only replica (:meth:`open_replica`)."""
        return self._replica is not None

    @property
    def replica_dir(self) -> Path | None:
        """The directory this replica was opened in (``open_replica(path, ...)``; the
        shard it serves is a version folder inside it), ``None`` for a primary."""
        return None if self._replica is None else self._replica.path

    @property
    def data_version(self) -> str | None:
        """The snapshot version this store serves: ``None`` for a primary (not a replica).

        On a replica, the version that answered this thread's latest search (so a
        refresh between a search and this read does not mislabel it), or the current
        one before this thread searched. The guard copies it into traces
        (``ragguard.data_version``) and audit records (``data_version``).
        """
        if self._replica is None:
            return None
        served = getattr(self._served, "version", None)
        return served if isinstance(served, str) else self._replica.version

    def refresh(self) -> bool:
        """Serve the newest snapshot in the replica's source; ``True`` if it changed.

        The new snapshot is copied and opened beside the old one, then the handle is
        swapped while no search runs (searches in progress finish on the old data,
        later ones see the new): a search sees one version, never a mixture. The old
        copy is then closed and removed. On any failure the replica keeps serving the
        old version and :class:`StoreError` says why. Safe to call from a timer thread.
        """
        state = self._replica
        if state is None:
            raise StoreError(f"refresh on {self.path}: not a replica (see EdgeStore.open_replica)")
        with state.refreshing:
            if self._closed:
                raise StoreError(f"refresh on a closed EdgeStore ({self.path})")
            version = _read_latest(state.source)
            if version == state.version:
                return False
            shard_dir = state.fetch(version)
            try:
                dim, distance = _read_vector_config(shard_dir)
                if (dim, distance) != (self._dim, self.distance):
                    raise StoreError(
                        f"snapshot {version} in {state.source} holds dim={dim} {distance} "
                        f"vectors, this replica serves dim={self._dim} {self.distance}"
                    )
                fresh = type(self)._load(shard_dir, dim, distance)
            except BaseException:
                shutil.rmtree(shard_dir, ignore_errors=True)
                raise
            with self._access.exclusive():
                if self._closed:
                    fresh.shard.close()
                    shutil.rmtree(shard_dir, ignore_errors=True)
                    raise StoreError(f"refresh on a closed EdgeStore ({self.path})")
                old_shard, old_path = self.shard, self.path
                self.shard, self.path = fresh.shard, shard_dir
                state.version = version
            fresh._closed = True  # the handle now belongs to self
            try:
                old_shard.close()
            except Exception as exc:
                logger.warning("ragguard: closing the replaced replica at %s: %s", old_path, exc)
            shutil.rmtree(old_path, ignore_errors=True)
            return True

    # -- beyond the protocol --------------------------------------------------------------

    def optimize(self) -> None:
        """Build the HNSW and payload indexes; call after bulk upserts."""
        with self._open_shard("optimize") as shard:
            # Optimizing rewrites segments into a new one: room for a copy of the vectors
            # (twice, for the index) and of the payload pages, then the old ones go.
            points = int(shard.info().points_count)
            need = (
                2 * 4 * self._dim * points
                + _allocated_bytes(self.path / "segments", "payload_storage")
                + _WRITE_MARGIN_BYTES
            )
            _require_space(self.path, need, f"optimizing the edge shard at {self.path}")
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
        if self._replica is not None:
            state += f", replica of {self._replica.version}"
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
        if not self._shared and self._store._replica is not None:
            raise StoreError(
                f"{self._operation} on a read-only replica ({self._store.path}); write to "
                "the primary and publish a snapshot (EdgeStore.snapshot)"
            )
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


# -- creating atomically --------------------------------------------------------------


class _NoRename(Exception):
    """No rename can put a directory at the shard path: build in place."""


def _create_and_rename(where: Path, config: qe.EdgeConfig) -> None:
    """Build the shard in a hidden sibling, then rename it onto ``where``."""
    staging = where.with_name(f".{where.name}{_STAGING_INFIX}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        _create_shard(staging, where, config)
        # Opening right after needs this much; checked before the name is taken.
        _require_space(staging, _open_bytes(staging), f"creating an edge shard at {where}")
        try:
            os.rename(staging, where)  # replaces an empty directory, atomically
        except OSError as exc:
            occupied = where.is_dir() and any(where.iterdir())
            if exc.errno in (errno.EBUSY, errno.EXDEV) and where.is_dir() and not occupied:
                raise _NoRename from exc
            if occupied:
                raise StoreError(
                    f"{where} already exists and is not empty (created concurrently); "
                    "open it with EdgeStore.open"
                ) from None
            raise StoreError(
                f"cannot create an edge shard at {where}: {exc.strerror or exc}"
            ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _fsync_directory(where.parent)


def _create_in_place(where: Path, config: qe.EdgeConfig) -> None:
    """Build the shard inside ``where`` (a mount point) under a marker file."""
    marker = where / _CREATING_MARKER
    try:
        marker.touch()
        _fsync_directory(where)
    except OSError as exc:
        raise StoreError(f"cannot create an edge shard at {where}: {exc.strerror or exc}") from exc
    try:
        _create_shard(where, where, config)
        _require_space(where, _open_bytes(where), f"creating an edge shard at {where}")
    except BaseException:
        _empty_directory(where)
        raise
    marker.unlink()
    _fsync_directory(where)


def _create_shard(directory: Path, where: Path, config: qe.EdgeConfig) -> None:
    try:
        shard = qe.EdgeShard.create(str(directory), config)
        shard.close()
    except Exception as exc:
        raise StoreError(f"cannot create an edge shard at {where}: {exc}") from exc


def _interrupted_creation(path: Path) -> bool:
    """Whether ``path`` is what an interrupted create left: never a shard with points.

    Either the in-place marker is there, or (creates by earlier versions built in
    place) there is no ``edge_config.json`` and nothing but the engine's skeleton: a
    ``wal`` directory, an empty ``segments`` directory, its temporary ``.atomicwrite*``
    entries. The engine writes ``edge_config.json`` before any segment, so such a
    directory never held a point.
    """
    try:
        names = os.listdir(path)
    except OSError:
        return False
    if _CREATING_MARKER in names:
        return True
    if not names or "edge_config.json" in names:
        return False
    for name in names:
        if name.startswith(".atomicwrite") or name == "wal":
            continue
        if name == "segments" and not any((path / name).iterdir()):
            continue
        return False
    return True


def _empty_directory(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _remove_dead_staging(where: Path) -> None:
    """Remove staging siblings of ``where`` whose creating process is gone."""
    prefix = f".{where.name}{_STAGING_INFIX}"
    try:
        names = os.listdir(where.parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].partition("-")[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            shutil.rmtree(where.parent / name, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _is_mount_point(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# -- snapshots and replicas -----------------------------------------------------------


class _ReplicaState:
    """A replica's directory, its lock, its source and the version it serves."""

    def __init__(self, path: Path, source: Path) -> None:
        self.path = path
        self.source = source
        self.version = ""
        self.refreshing = threading.Lock()
        lock_path = path / _REPLICA_LOCK
        try:
            self._lock_fd: int | None = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError(f"cannot open the replica lock {lock_path}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise ReplicaInUseError(
                f"the replica directory {path} is in use by another process or store; "
                "give each worker its own replica directory"
            ) from None

    def fetch(self, version: str) -> Path:
        """Copy snapshot ``version`` of the source into this replica's directory."""
        origin = self.source / version
        if not (origin / _SNAPSHOT_MANIFEST).is_file():
            raise StoreError(f"snapshot {version} in {self.source} is missing or incomplete")
        final = self.path / version
        if final.exists():  # left by an earlier process that served it: copy afresh
            shutil.rmtree(final)
        _copy_shard(origin, final, f"copying snapshot {version} into the replica {self.path}")
        return final

    def remove_others(self, *, keep: Path) -> None:
        """Remove shard copies and staging directories other than ``keep``."""
        for entry in self.path.iterdir():
            if entry != keep and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None


def _copy_shard(origin: Path, final: Path, operation: str) -> None:
    """Copy a shard directory to ``final`` through a hidden staging sibling (sparse
    files stay sparse); ``final`` appears whole or not at all."""
    need = _allocated_bytes(origin) + _open_bytes(origin)
    final.parent.mkdir(parents=True, exist_ok=True)
    _require_space(final.parent, need, operation)
    staging = final.with_name(f".{final.name}{_COPY_INFIX}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        shutil.copytree(origin, staging, copy_function=_copy_sparse, ignore=_copy_ignored)
        os.rename(staging, final)
    except OSError as exc:
        raise StoreError(f"{operation} failed: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _fsync_directory(final.parent)


def _copy_ignored(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n == _REPLICA_LOCK or n.startswith(".atomicwrite")}


def _copy_sparse(src: str, dst: str) -> str:
    """Copy the data regions of ``src`` only (holes stay holes), then fsync."""
    with open(src, "rb") as source, open(dst, "wb") as target:
        size = os.fstat(source.fileno()).st_size
        fd_in, fd_out = source.fileno(), target.fileno()
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd_in, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole remains
                    break
                raise
            end = os.lseek(fd_in, start, os.SEEK_HOLE)
            os.lseek(fd_in, start, os.SEEK_SET)
            os.lseek(fd_out, start, os.SEEK_SET)
            remaining = end - start
            while remaining > 0:
                block = source.read(min(remaining, 8 * _MIB))
                if not block:
                    break
                target.write(block)
                remaining -= len(block)
            target.flush()
            offset = end
        target.truncate(size)
        target.flush()
        os.fsync(fd_out)
    shutil.copystat(src, dst)
    return dst


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(staging, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
    _fsync_directory(path.parent)


def _read_latest(source: Path) -> str:
    try:
        version = (source / _SNAPSHOT_LATEST).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StoreError(
            f"{source} holds no snapshot (no {_SNAPSHOT_LATEST}); publish one with "
            "EdgeStore.snapshot on the primary"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot read {source / _SNAPSHOT_LATEST}: {exc}") from exc
    if not version.startswith(_SNAPSHOT_PREFIX) or "/" in version or os.sep in version:
        raise StoreError(f"{source / _SNAPSHOT_LATEST} names no snapshot ({version[:80]!r})")
    return version


def _snapshot_names(directory: Path) -> list[str]:
    return sorted(
        name
        for name in os.listdir(directory)
        if name.startswith(_SNAPSHOT_PREFIX) and (directory / name).is_dir()
    )


def _latest_sequence(directory: Path) -> int:
    sequences = [
        int(name[len(_SNAPSHOT_PREFIX) :].partition("-")[0])
        for name in _snapshot_names(directory)
        if name[len(_SNAPSHOT_PREFIX) :].partition("-")[0].isdigit()
    ]
    return max(sequences, default=0)


def _prune_snapshots(directory: Path, keep: int) -> None:
    names = _snapshot_names(directory)
    for name in names[:-keep]:
        shutil.rmtree(directory / name, ignore_errors=True)
    # staging copies left by a killed snapshot
    for name in os.listdir(directory):
        if _COPY_INFIX in name and name.startswith("."):
            pid_text = name.partition(_COPY_INFIX)[2].partition("-")[0]
            if pid_text.isdigit() and not _process_alive(int(pid_text)):
                shutil.rmtree(directory / name, ignore_errors=True)


# -- free space -----------------------------------------------------------------------


def _require_space(where: Path, need: int, operation: str) -> None:
    """Raise StoreError unless the filesystem holding ``where`` has ``need`` bytes free."""
    try:
        stat = os.statvfs(where)
    except OSError as exc:
        raise StoreError(f"{operation}: cannot read the free disk space: {exc}") from exc
    free = stat.f_bavail * stat.f_frsize
    if free < need:
        raise StoreError(
            f"{operation} needs about {_mib(need)} of free disk space, {_mib(free)} is free "
            f"(short by {_mib(need - free)}); nothing was written. The engine writes "
            "through memory maps, and a full disk would kill the process (SIGBUS): free "
            "some space or move the shard (docs/stores.md)"
        )


def _mib(size: int) -> str:
    return f"{size / _MIB:.1f} MiB"


def _open_bytes(path: Path) -> int:
    """What opening the shard at ``path`` may allocate: see _OPEN_MARGIN_BYTES."""
    segments = path / "segments"
    return (
        _hole_bytes(segments, "vector_storage")
        + _allocated_bytes(path / "wal") // 8
        + _OPEN_MARGIN_BYTES
    )


def _file_stats(root: Path, part: str | None) -> Iterator[os.stat_result]:
    for directory, _, files in os.walk(root):
        if part is not None and part not in Path(directory).parts:
            continue
        for name in files:
            with contextlib.suppress(OSError):
                yield os.stat(os.path.join(directory, name))


def _hole_bytes(root: Path, part: str | None = None) -> int:
    """Bytes of the files under ``root`` (in a ``part`` directory) not yet allocated."""
    return sum(max(0, st.st_size - st.st_blocks * 512) for st in _file_stats(root, part))


def _allocated_bytes(root: Path, part: str | None = None) -> int:
    return sum(st.st_blocks * 512 for st in _file_stats(root, part))


def _payload_bytes(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), default=str))


def _edge_params(exact: bool, params: SearchParams | None) -> qe.SearchParams | None:
    """The engine's ``SearchParams`` (``None``: its defaults)."""
    return qdrant_search_params(exact, params, qe.SearchParams, qe.QuantizationSearchParams)
