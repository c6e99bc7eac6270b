"""``QdrantStore``: a Qdrant server or cluster through ``qdrant-client`` (sync and async).

This is how ragguard scales past one machine: Qdrant's own distributed mode (shards,
replication) behind the same filter language the embedded :class:`EdgeStore` speaks. ::

    from qdrant_client import QdrantClient
    store = rg.QdrantStore(client=QdrantClient(url="http://qdrant:6333"), collection="docs")

The payload layout is LangChain's (``langchain-qdrant``'s ``QdrantVectorStore`` writes
it): ``{"page_content": text, "metadata": {...}}``; both keys are configurable, as is a
named vector. The store never closes a client it was given: the caller owns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal, cast

from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client import models as qm

from ragguard.exceptions import StoreError
from ragguard.policy import ir
from ragguard.search_params import SearchParams, qdrant_search_params
from ragguard.stores._points import (
    as_payload,
    as_vector,
    dense_vector,
    llamaindex_payload,
    stored_chunk,
    stored_llamaindex_chunk,
)
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

__all__ = ["QdrantStore", "translate_filter"]

UPSERT_BATCH: Final = 256

_DISTANCES: Final = {
    "cosine": qm.Distance.COSINE,
    "dot": qm.Distance.DOT,
    "euclid": qm.Distance.EUCLID,
    "manhattan": qm.Distance.MANHATTAN,
}
_SCHEMAS: Final = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}


class _ClientFilters:
    """``qdrant_client.models`` behind :class:`FilterBuilder`."""

    def match_value(self, key: str, value: str | bool | int) -> Any:
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=values))

    def match_prefix(self, key: str, prefix: str) -> Any:
        return qm.FieldCondition(key=key, match=qm.MatchPrefix(prefix=prefix))

    def match_substring(self, key: str, substring: str) -> Any:
        return qm.FieldCondition(key=key, match=qm.MatchSubstring(substring=substring))

    def range(
        self,
        key: str,
        *,
        gt: float | None = None,
        gte: float | None = None,
        lt: float | None = None,
        lte: float | None = None,
    ) -> Any:
        return qm.FieldCondition(key=key, range=qm.Range(gt=gt, gte=gte, lt=lt, lte=lte))

    def is_empty(self, key: str) -> Any:
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))

    def is_null(self, key: str) -> Any:
        return qm.IsNullCondition(is_null=qm.PayloadField(key=key))

    def filter(
        self,
        *,
        must: Sequence[Any] | None = None,
        should: Sequence[Any] | None = None,
        must_not: Sequence[Any] | None = None,
    ) -> Any:
        return qm.Filter(
            must=list(must) if must else None,
            should=list(should) if should else None,
            must_not=list(must_not) if must_not else None,
        )


_DEFAULT_TRANSLATOR: Final = FilterTranslator(_ClientFilters(), key_prefix="metadata.")


def translate_filter(expr: ir.Expr) -> Pushdown:
    """The ``qdrant_client.models.Filter`` for a plan filter, in the LangChain payload layout.

    What ``ragguard plan`` prints; a :class:`QdrantStore` with other keys uses its own
    :meth:`QdrantStore.translate`.
    """
    return _DEFAULT_TRANSLATOR.translate(expr)


class QdrantStore:
    """A Qdrant collection as a ragguard :class:`~ragguard.stores.base.Store`.

    Give ``client`` (sync), ``async_client`` or both; :meth:`asearch` uses the async
    client when there is one and a worker thread otherwise. ``literal_matches=False``
    is for a Qdrant server without ``MatchPrefix``/``MatchSubstring``: ``keyMatch`` and
    the other matching functions are then relaxed to no condition (post-checked). ``dim`` is read from the
    collection when not given (that needs the sync client). Errors from Qdrant surface
    as :class:`~ragguard.exceptions.StoreError` naming the collection and operation.

    ``layout="llamaindex"`` reads and writes the payload LlamaIndex's
    ``QdrantVectorStore`` uses: metadata at the top level (filters address ``<attr>``,
    not ``metadata.<attr>``), the text inside the node JSON under ``_node_content``.
    """

    db_system_name: Final = "qdrant"

    def __init__(
        self,
        client: QdrantClient | None = None,
        collection: str = "",
        *,
        async_client: AsyncQdrantClient | None = None,
        dim: int | None = None,
        content_key: str = "page_content",
        metadata_key: str = "metadata",
        vector_name: str | None = None,
        distance: str | None = None,
        literal_matches: bool = True,
        layout: Literal["langchain", "llamaindex"] = "langchain",
    ) -> None:
        if layout not in ("langchain", "llamaindex"):
            raise ValueError(f"unknown layout {layout!r}; choose 'langchain' or 'llamaindex'")
        if client is None and async_client is None:
            raise ValueError("QdrantStore needs a client, an async_client, or both")
        if not collection:
            raise ValueError("QdrantStore needs the collection name")
        self.client = client
        self.async_client = async_client
        self.collection = collection
        self.content_key = content_key
        self.metadata_key = metadata_key
        self.vector_name = vector_name
        self.layout = layout
        # LlamaIndex's QdrantVectorStore keeps the metadata at the top level of the payload.
        self._prefix = "" if layout == "llamaindex" else metadata_key + "."
        self._filters = FilterTranslator(
            _ClientFilters(), key_prefix=self._prefix, literal_matches=literal_matches
        )
        if distance is not None and distance not in _DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        if dim is None:
            if client is None:
                raise ValueError("pass dim= when QdrantStore has only an async client")
            dim, collection_distance = self._vector_config(client)
            distance = distance or collection_distance
        self._dim = dim
        self.distance: str = distance or "cosine"
        """``cosine``, ``dot``, ``euclid`` or ``manhattan``: read from the collection
        unless ``dim`` is given (then pass ``distance=`` for a euclid/manhattan collection,
        whose scores are distances and are released lowest first)."""

    @classmethod
    def create(
        cls,
        client: QdrantClient,
        collection: str,
        *,
        dim: int,
        distance: str = "cosine",
        content_key: str = "page_content",
        metadata_key: str = "metadata",
        vector_name: str | None = None,
        literal_matches: bool = True,
    ) -> QdrantStore:
        """Create the collection (it must not exist yet) and return a store on it."""
        metric = _DISTANCES.get(distance)
        if metric is None:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        vectors = qm.VectorParams(size=dim, distance=metric)
        try:
            if client.collection_exists(collection):
                raise StoreError(f"Qdrant collection {collection!r} already exists")
            client.create_collection(
                collection, vectors_config={vector_name: vectors} if vector_name else vectors
            )
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot create Qdrant collection {collection!r}: {exc}") from exc
        return cls(
            client,
            collection,
            dim=dim,
            content_key=content_key,
            metadata_key=metadata_key,
            vector_name=vector_name,
            distance=distance,
            literal_matches=literal_matches,
        )

    # -- the Store protocol ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension of the collection's vectors."""
        return self._dim

    @property
    def capabilities(self) -> StoreCapabilities:
        """Async search and scroll (natively with an async client, else in a thread)."""
        return StoreCapabilities(
            distance=cast(Distance, self.distance),
            asearch=True,
            scroll=True,
            ascroll=True,
            db_system_name=self.db_system_name,
            collection=self.collection,
            metadata_key=self.metadata_key,
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
        """The ``limit`` nearest points matching ``pushdown``, best first."""
        if pushdown.matches_nothing or limit <= 0:
            return []
        client = self._sync("search")
        try:
            response = client.query_points(
                self.collection, **self._query(vector, limit, pushdown, exact, search_params)
            )
        except Exception as exc:
            raise self._error("search", exc) from exc
        return [self._stored(p.id, p.score, p.payload) for p in response.points]

    async def asearch(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
        search_params: SearchParams | None = None,
    ) -> list[StoredChunk]:
        """Async :meth:`search` (the async client if given, else a worker thread)."""
        if self.async_client is None:
            return await asyncio.to_thread(
                self.search, vector, limit, pushdown, exact=exact, search_params=search_params
            )
        if pushdown.matches_nothing or limit <= 0:
            return []
        try:
            response = await self.async_client.query_points(
                self.collection, **self._query(vector, limit, pushdown, exact, search_params)
            )
        except Exception as exc:
            raise self._error("search", exc) from exc
        return [self._stored(p.id, p.score, p.payload) for p in response.points]

    def scroll(self, pushdown: Pushdown, limit: int, offset: str | int | None = None) -> ScrollPage:
        """Up to ``limit`` points matching ``pushdown`` from ``offset`` on, with their
        payloads (see :class:`~ragguard.stores.base.ScrollingStore`)."""
        if pushdown.matches_nothing or limit <= 0:
            return ScrollPage([], None)
        client = self._sync("scroll")
        try:
            records, next_offset = client.scroll(
                self.collection, **self._scroll(pushdown, limit, offset)
            )
        except Exception as exc:
            raise self._error("scroll", exc) from exc
        return self._page(records, next_offset)

    async def ascroll(
        self, pushdown: Pushdown, limit: int, offset: str | int | None = None
    ) -> ScrollPage:
        """Async :meth:`scroll` (the async client if given, else a worker thread)."""
        if self.async_client is None:
            return await asyncio.to_thread(self.scroll, pushdown, limit, offset)
        if pushdown.matches_nothing or limit <= 0:
            return ScrollPage([], None)
        try:
            records, next_offset = await self.async_client.scroll(
                self.collection, **self._scroll(pushdown, limit, offset)
            )
        except Exception as exc:
            raise self._error("scroll", exc) from exc
        return self._page(records, next_offset)

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of these points, by id (Qdrant stores cosine vectors
        normalised; missing points left out)."""
        if not ids:
            return {}
        client = self._sync("vectors")
        try:
            records = client.retrieve(self.collection, **self._retrieve_vectors(ids))
        except Exception as exc:
            raise self._error("reading vectors from", exc) from exc
        return {str(r.id): dense_vector(r.vector, self.vector_name, r.id) for r in records}

    async def avectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """Async :meth:`vectors` (the async client if given, else a worker thread)."""
        if self.async_client is None:
            return await asyncio.to_thread(self.vectors, ids)
        if not ids:
            return {}
        try:
            records = await self.async_client.retrieve(
                self.collection, **self._retrieve_vectors(ids)
            )
        except Exception as exc:
            raise self._error("reading vectors from", exc) from exc
        return {str(r.id): dense_vector(r.vector, self.vector_name, r.id) for r in records}

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks in batches of :data:`UPSERT_BATCH`; returns their point ids."""
        client = self._sync("upsert")
        ids: list[str] = []
        batch: list[qm.PointStruct] = []
        for chunk in chunks:
            pid = point_id(chunk.id)
            vector = as_vector(chunk.vector, self._dim)
            batch.append(
                qm.PointStruct(
                    id=pid,
                    vector={self.vector_name: vector} if self.vector_name else vector,
                    payload=llamaindex_payload(chunk.text, chunk.metadata, chunk.id, pid)
                    if self.layout == "llamaindex"
                    else as_payload(
                        chunk.text,
                        chunk.metadata,
                        chunk.id,
                        content_key=self.content_key,
                        metadata_key=self.metadata_key,
                    ),
                )
            )
            ids.append(str(pid))
            if len(batch) == UPSERT_BATCH:
                self._write(client, batch)
                batch = []
        if batch:
            self._write(client, batch)
        return ids

    def get(self, ids: Sequence[str | int]) -> list[StoredChunk]:
        """The stored points with these chunk ids (missing ones skipped)."""
        if not ids:
            return []
        client = self._sync("get")
        try:
            records = client.retrieve(
                self.collection, [point_id(i) for i in ids], with_payload=True
            )
        except Exception as exc:
            raise self._error("get", exc) from exc
        return [self._stored(r.id, 0.0, r.payload) for r in records]

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Create payload indexes on ``<metadata_key>.<field>`` (idempotent in Qdrant)."""
        client = self._sync("create_payload_indexes")
        for spec in specs:
            schema: Any = _SCHEMAS[spec.schema]
            if spec.is_tenant and spec.schema == "keyword":
                schema = qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)
            try:
                client.create_payload_index(
                    self.collection, f"{self._prefix}{spec.field}", field_schema=schema
                )
            except Exception as exc:
                raise self._error("create_payload_indexes", exc) from exc

    def close(self) -> None:
        """Nothing to release: the clients belong to the caller, who closes them."""

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection!r}, dim={self._dim})"

    # -- helpers --------------------------------------------------------------------------

    def _query(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        exact: bool,
        search_params: SearchParams | None = None,
    ) -> dict[str, Any]:
        return {
            "query": as_vector(vector, self._dim),
            "using": self.vector_name,
            "query_filter": pushdown.native,
            "limit": limit,
            "with_payload": True,
            "with_vectors": False,
            "search_params": _client_params(exact, search_params),
        }

    def _scroll(self, pushdown: Pushdown, limit: int, offset: str | int | None) -> dict[str, Any]:
        return {
            "scroll_filter": pushdown.native,
            "limit": limit,
            "offset": offset,
            "with_payload": True,
            "with_vectors": False,
        }

    def _retrieve_vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        return {
            "ids": [point_id(i) for i in ids],
            "with_payload": False,
            "with_vectors": [self.vector_name] if self.vector_name else True,
        }

    def _page(self, records: Sequence[Any], next_offset: Any) -> ScrollPage:
        chunks = [self._stored(r.id, 0.0, r.payload) for r in records]
        offset = next_offset if isinstance(next_offset, (str, int)) else None
        return ScrollPage(chunks, offset)

    def _write(self, client: QdrantClient, batch: list[qm.PointStruct]) -> None:
        try:
            client.upsert(self.collection, points=batch, wait=True)
        except Exception as exc:
            raise self._error("upsert", exc) from exc

    def _sync(self, operation: str) -> QdrantClient:
        if self.client is None:
            raise StoreError(
                f"{operation} needs a synchronous QdrantClient; this store has only an async one"
            )
        return self.client

    def _vector_config(self, client: QdrantClient) -> tuple[int, str]:
        try:
            info = client.get_collection(self.collection)
        except Exception as exc:
            raise self._error("reading the vector size of", exc) from exc
        vectors = info.config.params.vectors
        if isinstance(vectors, dict):
            # A collection made with a vectors map may hold the unnamed vector under ""
            # (langchain-qdrant's default): vector_name None and "" both mean that one.
            name = self.vector_name or ""
            if name not in vectors:
                wanted = "unnamed vector ''" if not name else f"vector named {name!r}"
                raise StoreError(
                    f"Qdrant collection {self.collection!r} has no {wanted} "
                    f"(it has {sorted(vectors)}); pass vector_name="
                )
            vectors = vectors[name]
        elif self.vector_name:
            raise StoreError(
                f"Qdrant collection {self.collection!r} has only the unnamed vector, "
                f"not one named {self.vector_name!r}; pass vector_name=None"
            )
        if vectors is None:
            raise StoreError(f"Qdrant collection {self.collection!r} has no dense vectors")
        names = {metric: name for name, metric in _DISTANCES.items()}
        return int(vectors.size), names.get(vectors.distance, "cosine")

    def _error(self, operation: str, exc: Exception) -> StoreError:
        return StoreError(f"Qdrant {operation} on collection {self.collection!r} failed: {exc}")

    def _stored(self, raw_id: object, score: float, payload: object) -> StoredChunk:
        if self.layout == "llamaindex":
            return stored_llamaindex_chunk(raw_id, score, payload)
        return stored_chunk(
            raw_id, score, payload, content_key=self.content_key, metadata_key=self.metadata_key
        )


def _client_params(exact: bool, params: SearchParams | None) -> qm.SearchParams | None:
    """``qdrant_client.models.SearchParams`` (``None``: the collection's defaults)."""
    return qdrant_search_params(exact, params, qm.SearchParams, qm.QuantizationSearchParams)
