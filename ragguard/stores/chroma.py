"""``ChromaStore``: a Chroma collection (embedded ``PersistentClient`` or a server).

The plan filter becomes Chroma's ``where`` (see ``ragguard.stores._chroma_filter``); the
collection keeps documents and flat metadata, the layout langchain-chroma writes, so a
langchain-chroma collection works as it is::

    store = rg.ChromaStore.persistent("./chroma", collection="docs")       # embedded
    store = rg.ChromaStore.http("localhost", 8000, collection="docs")      # a server
    store = rg.ChromaStore.create(client, "chunks", dim=384)               # a new one

Install with ``pip install 'ragguard[chroma]'``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from ragguard._canonical import CanonicalizationError, canonical_value
from ragguard.exceptions import MissingDependencyError, StoreError
from ragguard.policy import ir
from ragguard.stores._points import as_vector
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

try:
    import chromadb
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependencyError("ragguard[chroma]", "ChromaStore") from exc

from ragguard.stores._chroma_filter import (
    INT64_MAX,
    INT64_MIN,
    RESERVED_PREFIX,
    ChromaFilterTranslator,
)

__all__ = ["ChromaStore"]

UPSERT_BATCH: Final = 256
METADATA_KEY: Final = "ragguard:metadata"
"""The chunk's whole metadata as JSON, written only when some value is not held as is."""

# ragguard distance -> Chroma space, and the score from Chroma's distance (as the
# Qdrant stores score: cosine similarity, inner product, euclidean distance).
_SPACES: Final = {"cosine": "cosine", "dot": "ip", "euclid": "l2"}
_DISTANCES: Final = {space: name for name, space in _SPACES.items()}
# Rows read per request by exact search: one ``get`` of tens of thousands of rows fails
# in Chroma (SQLite's limit on bound variables).
_EXACT_PAGE: Final = 1_000


class ChromaStore:
    """One Chroma collection as a ragguard store.

    ``client`` is any chromadb client (``PersistentClient``, ``HttpClient``,
    ``EphemeralClient``); :meth:`persistent` and :meth:`http` open one. The collection must
    exist (:meth:`create` makes one); its space (``hnsw:space``: ``cosine``, ``ip``,
    ``l2``) gives ``distance``: ``cosine`` (score: cosine similarity, higher is better),
    ``dot`` (inner product) or ``euclid`` (euclidean distance, lower is better), as for the
    Qdrant stores. ``dim`` is read from a stored embedding when not given.

    Chroma searches its HNSW index; ``exact=True`` ranks every row the filter selects
    exhaustively instead (the rows' embeddings are fetched and scored with numpy). It is a
    :class:`~ragguard.stores.base.ScrollingStore`, so the guard finishes a relaxed
    pushdown's search exactly. Errors
    become :class:`~ragguard.exceptions.StoreError` naming the collection and the operation,
    never the query, its vector or a metadata value.
    """

    db_system_name: Final = "chroma"

    def __init__(
        self,
        client: ClientAPI,
        collection: str,
        *,
        dim: int | None = None,
        create_if_missing: bool = False,
        distance: str = "cosine",
    ) -> None:
        if distance not in _SPACES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_SPACES)}")
        self.client = client
        self.collection: str = collection
        try:
            if create_if_missing:
                self._collection: Collection = client.get_or_create_collection(
                    collection,
                    embedding_function=None,
                    configuration=_configuration(distance),
                )
            else:
                self._collection = client.get_collection(collection, embedding_function=None)
        except Exception as exc:
            raise StoreError(
                f"cannot open Chroma collection {collection!r}: {_named(exc)}"
            ) from exc
        self.distance: str = _DISTANCES.get(self._space(), "")
        if not self.distance:
            raise StoreError(
                f"Chroma collection {collection!r} uses a space ragguard does not know"
            )
        if dim is None:
            dim = self._read_dim()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self._dim = dim
        self._filters = ChromaFilterTranslator()

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def create(
        cls, client: ClientAPI, collection: str, *, dim: int, distance: str = "cosine"
    ) -> ChromaStore:
        """Create the collection (it must not exist) with this distance; a store on it."""
        if distance not in _SPACES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_SPACES)}")
        try:
            client.create_collection(
                collection,
                embedding_function=None,
                configuration=_configuration(distance),
            )
        except Exception as exc:
            raise StoreError(
                f"cannot create Chroma collection {collection!r}: {_named(exc)}"
            ) from exc
        return cls(client, collection, dim=dim)

    @classmethod
    def persistent(cls, path: str, collection: str, **options: Any) -> ChromaStore:
        """A store on a collection in an embedded Chroma database at ``path``."""
        try:
            client = chromadb.PersistentClient(path=str(path))
        except Exception as exc:
            raise StoreError(
                f"cannot open the Chroma database at {path}: {type(exc).__name__}"
            ) from exc
        return cls(client, collection, **options)

    @classmethod
    def http(
        cls, host: str, port: int = 8000, *, collection: str, ssl: bool = False, **options: Any
    ) -> ChromaStore:
        """A store on a collection of a Chroma server (``chromadb.HttpClient``)."""
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl)
        except Exception as exc:
            raise StoreError(
                f"cannot connect to the Chroma server at {host}:{port}: {type(exc).__name__} "
                "(check the address and that the server is up)"
            ) from exc
        return cls(client, collection, **options)

    # -- the Store protocol ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        return self._dim

    @property
    def capabilities(self) -> StoreCapabilities:
        """Async search and scroll (Chroma's async client if given, else a thread)."""
        return StoreCapabilities(
            distance=cast(Distance, self.distance),
            asearch=True,
            scroll=True,
            ascroll=True,
            db_system_name=self.db_system_name,
            collection=self.collection,
        )

    def translate(self, expr: ir.Expr) -> Pushdown:
        """The ``where`` document for a plan's filter IR (``ragguard.stores._chroma_filter``)."""
        return self._filters.translate(expr)

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """The ``limit`` nearest rows matching ``pushdown``, best first."""
        if pushdown.matches_nothing or limit <= 0:
            return []
        query = as_vector(vector, self._dim)
        where = self._where(pushdown)
        if exact:
            return self._exhaustive(query, limit, where)
        try:
            result = self._collection.query(
                query_embeddings=cast(Any, [query]),
                n_results=limit,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        except Exception as exc:
            raise self._error("search", exc) from exc
        ids = result["ids"][0]
        documents = _column(result.get("documents"), len(ids), nested=True)
        metadatas = _column(result.get("metadatas"), len(ids), nested=True)
        distances = _column(result.get("distances"), len(ids), nested=True)
        hits = [
            self._stored(i, doc, md, self._score(d))
            for i, doc, md, d in zip(ids, documents, metadatas, distances, strict=True)
        ]
        return _best_first(hits, lower_is_better=self.distance == "euclid")

    async def asearch(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """Async :meth:`search` (in a worker thread: chromadb's client is synchronous)."""
        return await asyncio.to_thread(self.search, vector, limit, pushdown, exact=exact)

    def scroll(self, pushdown: Pushdown, limit: int, offset: str | int | None = None) -> ScrollPage:
        """Up to ``limit`` rows matching ``pushdown`` from ``offset`` (a row count) on, in
        Chroma's storage order (see :class:`~ragguard.stores.base.ScrollingStore`)."""
        if pushdown.matches_nothing or limit <= 0:
            return ScrollPage([], None)
        where = self._where(pushdown)
        start = offset if isinstance(offset, int) and not isinstance(offset, bool) else 0
        try:
            result = self._collection.get(
                where=where, limit=limit, offset=start, include=["documents", "metadatas"]
            )
        except Exception as exc:
            raise self._error("scroll", exc) from exc
        ids = result["ids"]
        documents = _column(result.get("documents"), len(ids))
        metadatas = _column(result.get("metadatas"), len(ids))
        chunks = [
            self._stored(i, doc, md, 0.0)
            for i, doc, md in zip(ids, documents, metadatas, strict=True)
        ]
        return ScrollPage(chunks, start + len(ids) if len(ids) == limit else None)

    async def ascroll(
        self, pushdown: Pushdown, limit: int, offset: str | int | None = None
    ) -> ScrollPage:
        """Async :meth:`scroll` (in a worker thread)."""
        return await asyncio.to_thread(self.scroll, pushdown, limit, offset)

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored embeddings of these rows, by id (missing ones left out)."""
        if not ids:
            return {}
        try:
            result = self._collection.get(ids=list(dict.fromkeys(ids)), include=["embeddings"])
        except Exception as exc:
            raise self._error("vectors", exc) from exc
        embeddings = result.get("embeddings")
        if embeddings is None:
            return {}
        return {
            str(i): [float(x) for x in vector]
            for i, vector in zip(result["ids"], embeddings, strict=True)
        }

    async def avectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """Async :meth:`vectors` (in a worker thread)."""
        return await asyncio.to_thread(self.vectors, ids)

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks (insert or overwrite by id) in batches; returns their ids.

        Metadata goes in flat, as langchain-chroma writes it. ``None``, ``[]`` and
        ``[None]`` are absent (left out: a missing key to Chroma, as ragguard reads them);
        a list holding ``None`` is written without them. A value Chroma cannot
        hold exactly (an integer outside -2**63..2**63-1, a list mixing types, a nested
        object) is refused with :class:`~ragguard.exceptions.StoreError` naming the chunk
        and the attribute (never the value), and nothing of the call is written: every
        chunk is checked before the first write. A list of integers and floats is written
        as floats when every integer is one exactly. Where the flat metadata differs from
        what ragguard reads, the whole metadata is also kept as JSON under
        ``ragguard:metadata``, which is what :meth:`search` and :meth:`get` return.
        """
        rows: list[tuple[str, str, dict[str, Any], list[float]]] = []
        for chunk in chunks:
            pid = str(point_id(chunk.id))
            if not isinstance(chunk.text, str):
                raise StoreError(f"chunk {pid} text must be a string")
            metadata = _flat_metadata(chunk.metadata, pid)
            rows.append((pid, chunk.text, metadata, as_vector(chunk.vector, self._dim)))
        for start in range(0, len(rows), UPSERT_BATCH):
            batch = rows[start : start + UPSERT_BATCH]
            self._write(
                [row[0] for row in batch],
                [row[1] for row in batch],
                [row[2] for row in batch],
                [row[3] for row in batch],
            )
        return [row[0] for row in rows]

    def get(self, ids: Sequence[str | int]) -> list[StoredChunk]:
        """The stored rows with these chunk ids (missing ones skipped; score 0.0)."""
        if not ids:
            return []
        wanted = sorted({str(point_id(raw)) for raw in ids} | {str(raw) for raw in ids})
        try:
            result = self._collection.get(ids=wanted, include=["documents", "metadatas"])
        except Exception as exc:
            raise self._error("get", exc) from exc
        found = result["ids"]
        documents = _column(result.get("documents"), len(found))
        metadatas = _column(result.get("metadatas"), len(found))
        return [
            self._stored(i, doc, md, 0.0)
            for i, doc, md in zip(found, documents, metadatas, strict=True)
        ]

    def delete(self, ids: Sequence[str | int]) -> None:
        """Delete the rows with these chunk ids."""
        if not ids:
            return
        wanted = sorted({str(point_id(raw)) for raw in ids} | {str(raw) for raw in ids})
        try:
            self._collection.delete(ids=wanted)
        except Exception as exc:
            raise self._error("delete", exc) from exc

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Nothing to do: Chroma indexes every metadata key itself."""
        for _ in specs:
            pass

    def close(self) -> None:
        """Nothing to release: the chromadb client belongs to the caller."""

    def __enter__(self) -> ChromaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChromaStore(collection={self.collection!r}, dim={self._dim})"

    # -- helpers --------------------------------------------------------------------------

    def _space(self) -> str:
        configuration = getattr(self._collection, "configuration_json", None) or {}
        hnsw = configuration.get("hnsw") or {}
        space = hnsw.get("space")
        if space is None:  # an older collection: the legacy metadata key
            space = (self._collection.metadata or {}).get("hnsw:space", "l2")
        return str(space)

    @staticmethod
    def _where(pushdown: Pushdown) -> dict[str, Any] | None:
        where = pushdown.native
        if where is not None and not isinstance(where, dict):
            raise StoreError("the pushdown was not made by a ChromaStore")
        return where

    def _read_dim(self) -> int:
        try:
            sample = self._collection.peek(1)
        except Exception as exc:
            raise self._error("reading the vector size of", exc) from exc
        embeddings = sample.get("embeddings")
        if embeddings is None or len(embeddings) == 0:
            raise StoreError(f"Chroma collection {self.collection!r} is empty: pass dim=")
        return len(embeddings[0])

    def _score(self, distance: Any) -> float:
        d = float(distance)
        if self.distance == "euclid":  # Chroma's l2 is the squared distance
            return math.sqrt(max(d, 0.0))
        return 1.0 - d  # cosine: 1 - cos; ip: 1 - dot

    def _exhaustive(
        self, query: list[float], limit: int, where: dict[str, Any] | None
    ) -> list[StoredChunk]:
        """Rank every row ``where`` admits with numpy, reading them a page at a time.

        One ``get`` of every admitted row fails in Chroma once it holds tens of thousands
        (SQLite's "too many SQL variables"); pages of :data:`_EXACT_PAGE` rows keep each
        request small, and only the best ``limit`` rows are kept between pages.
        """
        q = np.asarray(query, dtype=np.float64)
        kept: list[tuple[str, str | None, Any]] = []
        kept_scores = np.empty(0, dtype=np.float64)
        offset = 0
        while True:
            try:
                result = self._collection.get(
                    where=where,
                    include=["documents", "metadatas", "embeddings"],
                    limit=_EXACT_PAGE,
                    offset=offset,
                )
            except Exception as exc:
                raise self._error("search", exc) from exc
            ids = result["ids"]
            if not ids:
                break
            documents = _column(result.get("documents"), len(ids))
            metadatas = _column(result.get("metadatas"), len(ids))
            page = np.asarray(result["embeddings"], dtype=np.float64)
            rows: list[tuple[str, str | None, Any]] = kept + list(
                zip(ids, documents, metadatas, strict=True)
            )
            scores = np.concatenate([kept_scores, self._exact_scores(page, q)])
            # Stable: among equal scores the row read first stays first, as in one pass.
            order = np.argsort(scores if self.distance == "euclid" else -scores, kind="stable")
            best = order[:limit]
            kept = [rows[i] for i in best]
            kept_scores = scores[best]
            offset += len(ids)
            if len(ids) < _EXACT_PAGE:
                break
        return [
            self._stored(row_id, document, metadata, float(score))
            for (row_id, document, metadata), score in zip(kept, kept_scores, strict=True)
        ]

    def _exact_scores(self, matrix: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> Any:
        """Cosine or dot similarity (higher is better) or euclidean distance (lower)."""
        if self.distance == "cosine":
            norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(q)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(norms > 0, (matrix @ q) / np.where(norms > 0, norms, 1), 0.0)
        if self.distance == "dot":
            return matrix @ q
        return np.linalg.norm(matrix - q, axis=1)

    def _write(
        self,
        ids: list[str],
        documents: list[str],
        metadatas: list[dict[str, Any]],
        embeddings: list[list[float]],
    ) -> None:
        try:
            self._collection.upsert(
                ids=ids,
                documents=documents,
                # Chroma refuses an empty metadata dict and keeps None for it.
                metadatas=[m or None for m in metadatas],  # type: ignore[misc]
                embeddings=embeddings,  # type: ignore[arg-type]
            )
        except Exception as exc:
            raise self._error("upsert", exc) from exc

    def _error(self, operation: str, exc: Exception) -> StoreError:
        # chromadb's messages quote the values they were given: only the class goes in.
        return StoreError(
            f"Chroma {operation} on collection {self.collection!r} failed: {type(exc).__name__}"
        )

    @staticmethod
    def _stored(raw_id: object, text: object, metadata: object, score: float) -> StoredChunk:
        return StoredChunk(
            id=str(raw_id),
            score=0.0 if math.isnan(score) else score,
            text=text if isinstance(text, str) else None,
            metadata=_read_metadata(metadata),
        )


def _configuration(distance: str) -> Any:
    """A new collection's configuration: the HNSW space for ``distance``."""
    return {"hnsw": {"space": _SPACES[distance]}}


def _named(exc: Exception) -> str:
    """An error about a collection or a client (its text names no query or metadata value)."""
    return f"{type(exc).__name__}: {str(exc).strip()[:300]}"


def _column(values: Any, n: int, *, nested: bool = False) -> list[Any]:
    """A column of a Chroma result (``query`` nests them per query embedding)."""
    if values is None:
        return [None] * n
    column = values[0] if nested else values
    if len(column) != n:  # pragma: no cover - chromadb answers one entry per id
        raise StoreError("Chroma returned columns of different lengths")
    return list(column)


def _best_first(hits: list[StoredChunk], *, lower_is_better: bool) -> list[StoredChunk]:
    return sorted(hits, key=lambda h: h.score if lower_is_better else -h.score)


def _read_metadata(metadata: object) -> dict[str, Any] | None:
    if metadata is None:
        return {}  # Chroma keeps an empty metadata as None
    if not isinstance(metadata, Mapping):
        return None
    whole = metadata.get(METADATA_KEY)
    if whole is not None:
        if not isinstance(whole, str):
            return None
        try:
            decoded = json.loads(whole)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return {k: v for k, v in metadata.items() if not str(k).startswith(RESERVED_PREFIX)}


_HINT: Final = (
    "Chroma keeps integers in -2**63..2**63-1, lists of one type, no objects: store it as a string"
)


class _Unholdable(Exception):
    """A metadata value Chroma cannot hold exactly; ``path`` says where (never the value)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


def _scalar(value: Any, path: str) -> Any:
    """A canonical scalar as Chroma holds it, or :class:`_Unholdable`."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _Unholdable(path, "is an integer outside -2**63..2**63-1")
        return value
    if isinstance(value, float):  # finite: canonical_value refuses NaN and infinities
        return value
    if isinstance(value, dict):
        raise _Unholdable(path, "is an object")
    raise _Unholdable(path, "is a list inside a list")


def _flat(value: Any, original: Any, path: str) -> Any:
    """What to write for one attribute (``None``: leave the key out, it is absent).

    ``value`` is canonical (an integral float became an integer); ``original`` is the
    caller's, so a float such as ``1e300`` stays a float instead of a wide integer.
    """
    if value is None:
        return None
    if not isinstance(value, list):
        return _scalar(_as_given(value, original), path)
    originals = list(original) if isinstance(original, (list, tuple)) else [None] * len(value)
    elements = [
        _scalar(_as_given(item, raw), f"{path}[{index}]")
        for index, (item, raw) in enumerate(zip(value, originals, strict=True))
        if item is not None
    ]
    if not elements:
        return None
    kinds = {type(item) for item in elements}
    if len(kinds) == 1:
        return elements
    if kinds == {int, float} and all(float(item) == item for item in elements):
        return [float(item) for item in elements]  # $contains is strict between the two
    raise _Unholdable(path, "is a list mixing types")


def _as_given(value: Any, original: Any) -> Any:
    """A float the caller gave beyond the 64-bit integers stays a float."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and isinstance(original, float)
        and not INT64_MIN <= value <= INT64_MAX
    ):
        return float(original)
    return value


def _flat_metadata(metadata: Mapping[str, Any], pid: str) -> dict[str, Any]:
    try:
        canonical: dict[str, Any] = canonical_value(metadata, f"chunk {pid} metadata")
    except CanonicalizationError as exc:
        raise StoreError(f"cannot store {exc.path}: it {exc.problem}") from None
    flat: dict[str, Any] = {}
    for key, value in canonical.items():
        if key.startswith(RESERVED_PREFIX):
            raise StoreError(
                f"chunk {pid} metadata key {key!r}: keys starting with "
                f"{RESERVED_PREFIX!r} are ChromaStore's own"
            )
        try:
            written = _flat(value, metadata.get(key), f"chunk {pid} metadata.{key}")
        except _Unholdable as exc:
            raise StoreError(f"cannot store {exc.path}: it {exc.problem}; {_HINT}") from None
        if written is not None:
            flat[key] = written
    if _json(flat) != _json(canonical):
        flat[METADATA_KEY] = _json(canonical)
    return flat


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
