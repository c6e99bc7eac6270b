"""``PgVectorStore``: PostgreSQL with pgvector through psycopg 3 and a connection pool.

The plan filter becomes a SQL ``WHERE`` over the JSONB metadata column with ragguard's
typed semantics (see ``ragguard.stores._pg_filter``), values bound as parameters; rows
come back ordered by pgvector distance. Two table layouts::

    # a table ragguard creates (id, document, cmetadata, embedding) with an HNSW index
    store = rg.PgVectorStore.create("postgresql://...", table="chunks", dim=384)
    # an existing langchain-postgres collection, no migration
    store = rg.PgVectorStore.langchain("postgresql://...", collection="docs")

Install with ``pip install 'ragguard[pgvector]'`` (psycopg 3 and psycopg_pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, cast

from ragguard._canonical import CanonicalizationError, canonical_value
from ragguard.exceptions import MissingDependencyError, StoreError
from ragguard.policy import ir
from ragguard.search_params import SearchParams
from ragguard.stores._points import as_vector
from ragguard.stores.base import (
    Chunk,
    Distance,
    IndexSpec,
    Pushdown,
    StoreCapabilities,
    StoredChunk,
    point_id,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependencyError("ragguard[pgvector]", "PgVectorStore") from exc

from ragguard.stores._pg_filter import SAFE_KEY, PgFilter, PgFilterTranslator

__all__ = ["PgVectorStore"]

UPSERT_BATCH: Final = 256
LANGCHAIN_COLLECTIONS: Final = "langchain_pg_collection"
LANGCHAIN_EMBEDDINGS: Final = "langchain_pg_embedding"

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# distance -> (pgvector operator, HNSW operator class, score from the operator's value)
_DISTANCES: Final = {
    "cosine": ("<=>", "vector_cosine_ops", "1 - ({d})"),
    "dot": ("<#>", "vector_ip_ops", "-({d})"),
    "euclid": ("<->", "vector_l2_ops", "{d}"),
    "manhattan": ("<+>", "vector_l1_ops", "{d}"),
}
_MAX_EF_SEARCH: Final = 1000

Layout = Literal["ragguard", "langchain"]


def _identifier(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)"
        )
    return name


class PgVectorStore:
    """A pgvector table (or one langchain-postgres collection) as a ragguard store.

    Give a ``conninfo`` string (the store opens and owns a ``psycopg_pool`` pool and
    closes it in :meth:`close`) or a ``pool`` you own; ``async_pool``
    (``AsyncConnectionPool``) makes :meth:`asearch` native, otherwise it runs
    :meth:`search` in a worker thread (a store with only an async pool needs ``dim=``,
    reads the pgvector version on its first search and refuses a database that is not
    UTF-8). ``distance`` is ``cosine`` (score: cosine
    similarity, higher is better), ``dot`` (inner product, higher is better), ``euclid``
    or ``manhattan`` (the distance, lower is better), as for the Qdrant stores.

    Searches run in a transaction that sets ``hnsw.iterative_scan = relaxed_order``
    (pgvector >= 0.8) so a selective filter keeps scanning the HNSW graph until it has
    ``limit`` rows, and ``hnsw.ef_search`` to at least ``limit``; ``exact=True`` turns
    index scans off so the rows are ranked exhaustively. Of :class:`~ragguard.SearchParams`,
    ``hnsw_ef`` sets ``hnsw.ef_search`` (still at least ``limit``, at most 1,000) and
    ``exact`` is ``exact=True``; ``rescore``, ``oversampling`` and ``indexed_only`` have
    no pgvector equivalent and are ignored (they could only change recall). Errors become
    :class:`~ragguard.exceptions.StoreError` naming the table and the operation, never
    the query, its vector or its parameters.
    """

    db_system_name: Final = "postgresql"

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        pool: ConnectionPool | None = None,
        async_pool: AsyncConnectionPool | None = None,
        table: str = "ragguard_chunks",
        schema: str = "public",
        layout: Layout = "ragguard",
        collection: str | None = None,
        dim: int | None = None,
        distance: str = "cosine",
        ef_search: int = 100,
        max_scan_tuples: int | None = None,
        pool_size: int = 4,
        open_timeout: float = 10.0,
    ) -> None:
        if distance not in _DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        if layout not in ("ragguard", "langchain"):
            raise ValueError(f"unknown layout {layout!r}; choose 'ragguard' or 'langchain'")
        if conninfo is None and pool is None and async_pool is None:
            raise ValueError("PgVectorStore needs a conninfo string, a pool or an async_pool")
        if conninfo is not None and pool is not None:
            raise ValueError("PgVectorStore takes a conninfo string or a pool, not both")
        if layout == "langchain":
            table = LANGCHAIN_EMBEDDINGS
            if not collection:
                raise ValueError("the langchain layout needs the collection name")
            if conninfo is None and pool is None:
                raise ValueError(
                    "the langchain layout needs a conninfo or a pool to find its collection"
                )
        self.schema = _identifier(schema, "schema name")
        self.table = _identifier(table, "table name")
        self.layout: Layout = layout
        self.collection: str = (
            collection if layout == "langchain" and collection else f"{self.schema}.{self.table}"
        )
        """The langchain-postgres collection, or ``schema.table`` (traces name it)."""
        self.distance = distance
        self.ef_search = ef_search
        self.max_scan_tuples = max_scan_tuples
        self._owns_pool = pool is None and conninfo is not None
        if conninfo is not None:
            pool = ConnectionPool(conninfo, min_size=1, max_size=pool_size, open=False)
            try:
                pool.open(wait=True, timeout=open_timeout)
            except Exception as exc:
                pool.close()
                raise StoreError(
                    f"cannot connect to PostgreSQL for table {self.schema}.{self.table}: "
                    f"{_safe(exc)} (check the connection string and that the server is up)"
                ) from exc
        self.pool = pool
        self.async_pool = async_pool
        self._qualified = sql.Identifier(self.schema, self.table)
        self._collection_id: str | None = None
        # pgvector >= 0.8 (hnsw.iterative_scan); None: not known yet (an async pool only,
        # read on the first asearch).
        self._iterative_scan: bool | None = None
        utf8 = True
        if pool is not None:
            try:
                utf8, version = self._server_facts()
                self._iterative_scan = version >= (0, 8)
                if layout == "langchain":
                    self._collection_id = self._find_collection()
                if dim is None:
                    dim = self._read_dim()
            except BaseException:
                self.close()
                raise
        if dim is None:
            raise ValueError("pass dim= when PgVectorStore has only an async pool")
        self._dim = int(dim)
        self._filters = PgFilterTranslator(sql.Identifier("cmetadata"), utf8=utf8)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        conninfo: str | None = None,
        *,
        pool: ConnectionPool | None = None,
        table: str = "ragguard_chunks",
        schema: str = "public",
        dim: int,
        distance: str = "cosine",
        hnsw: bool = True,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        **options: Any,
    ) -> PgVectorStore:
        """Create the table (it must not exist), its HNSW index, and return a store on it.

        Creates the ``vector`` extension if missing (that needs the privilege to). Columns:
        ``id text`` primary key, ``document text``, ``cmetadata jsonb``, ``embedding
        vector(dim)``: the names langchain-postgres uses, so one query serves both layouts.
        ``hnsw_m`` and ``hnsw_ef_construction`` are pgvector's ``m`` and
        ``ef_construction`` (its defaults); ``hnsw=False`` creates no vector index.
        Other keyword arguments go to the constructor (``ef_search=``, ``pool_size=``...).
        """
        for name, value in (("hnsw_m", hnsw_m), ("hnsw_ef_construction", hnsw_ef_construction)):
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 1000:
                raise ValueError(f"{name} must be an integer between 2 and 1000, got {value!r}")
        if distance not in _DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(_DISTANCES)}")
        _identifier(schema, "schema name")
        _identifier(table, "table name")
        if not isinstance(dim, int) or not 1 <= dim <= 16000:
            raise ValueError(f"dim must be an integer between 1 and 16000, got {dim!r}")
        owned = pool is None
        if conninfo is not None:
            pool = ConnectionPool(conninfo, min_size=1, max_size=1, open=False)
        if pool is None:
            raise ValueError("PgVectorStore.create needs a conninfo string or a pool")
        qualified = sql.Identifier(schema, table)
        try:
            if owned:
                pool.open(wait=True, timeout=10.0)
            with pool.connection() as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (id text PRIMARY KEY, document text, "
                        "cmetadata jsonb, embedding vector({}) NOT NULL)"
                    ).format(qualified, sql.Literal(dim))
                )
                if hnsw:
                    conn.execute(
                        sql.SQL(
                            "CREATE INDEX {} ON {} USING hnsw (embedding {}) "
                            "WITH (m = {}, ef_construction = {})"
                        ).format(
                            sql.Identifier(_index_name(table, "hnsw", distance)),
                            qualified,
                            sql.SQL(_DISTANCES[distance][1]),
                            sql.Literal(hnsw_m),
                            sql.Literal(hnsw_ef_construction),
                        )
                    )
        except psycopg.errors.DuplicateTable as exc:
            raise StoreError(f"PostgreSQL table {schema}.{table} already exists") from exc
        except Exception as exc:
            raise StoreError(
                f"cannot create PostgreSQL table {schema}.{table}: {_safe(exc)}"
            ) from exc
        finally:
            if owned:
                pool.close()
        return cls(
            conninfo, pool=None if owned else pool, table=table, schema=schema, dim=dim,
            distance=distance, **options,
        )  # fmt: skip

    @classmethod
    def langchain(
        cls,
        conninfo: str | None = None,
        *,
        collection: str = "langchain",
        pool: ConnectionPool | None = None,
        schema: str = "public",
        dim: int | None = None,
        distance: str = "cosine",
        **options: Any,
    ) -> PgVectorStore:
        """A store on an existing langchain-postgres collection (``PGVector``'s tables).

        ``distance`` must be the collection's ``DistanceStrategy`` (``cosine``, the
        default; ``euclid`` for ``EUCLIDEAN``; ``dot`` for ``MAX_INNER_PRODUCT``):
        langchain-postgres does not record it in the database.
        """
        return cls(
            conninfo, pool=pool, schema=schema, layout="langchain", collection=collection,
            dim=dim, distance=distance, **options,
        )  # fmt: skip

    # -- the Store protocol ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        return self._dim

    @property
    def capabilities(self) -> StoreCapabilities:
        """Async search (the async pool if given, else a worker thread); no scroll."""
        return StoreCapabilities(
            distance=cast(Distance, self.distance),
            asearch=True,
            db_system_name=self.db_system_name,
            collection=self.collection,
            search_params=True,
        )

    def translate(self, expr: ir.Expr) -> Pushdown:
        """The SQL condition for a plan's filter IR (see ``ragguard.stores._pg_filter``)."""
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
        """The ``limit`` nearest rows matching ``pushdown``, best first."""
        if pushdown.matches_nothing or limit <= 0:
            return []
        settings, query, params = self._query(vector, limit, pushdown, exact, search_params)
        pool = self._sync_pool("search")
        try:
            with pool.connection() as conn, conn.transaction():
                conn.execute(settings[0], settings[1])
                rows = conn.execute(query, params).fetchall()
        except Exception as exc:
            raise self._error("search", exc) from exc
        return [self._stored(*row) for row in rows]

    async def asearch(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
        search_params: SearchParams | None = None,
    ) -> list[StoredChunk]:
        """Async :meth:`search` (the async pool if given, else a worker thread)."""
        if self.async_pool is None:
            return await asyncio.to_thread(
                self.search, vector, limit, pushdown, exact=exact, search_params=search_params
            )
        if pushdown.matches_nothing or limit <= 0:
            return []
        if self._iterative_scan is None:
            await self._read_async_facts(self.async_pool)
        settings, query, params = self._query(vector, limit, pushdown, exact, search_params)
        try:
            async with self.async_pool.connection() as conn, conn.transaction():
                await conn.execute(settings[0], settings[1])
                cursor = await conn.execute(query, params)
                rows = await cursor.fetchall()
        except Exception as exc:
            raise self._error("search", exc) from exc
        return [self._stored(*row) for row in rows]

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks (insert or overwrite by id) in batches; returns their ids."""
        pool = self._sync_pool("upsert")
        columns = ["id", "document", "cmetadata", "embedding"]
        if self.layout == "langchain":
            columns.append("collection_id")
        statement = sql.SQL(
            "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (id) DO UPDATE SET "
            "document = EXCLUDED.document, cmetadata = EXCLUDED.cmetadata, "
            "embedding = EXCLUDED.embedding"
        ).format(
            t=self._qualified,
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            vals=sql.SQL(", ").join(
                sql.SQL("%s::vector") if c == "embedding" else sql.Placeholder() for c in columns
            ),
        )
        ids: list[str] = []
        batch: list[tuple[Any, ...]] = []
        for chunk in chunks:
            pid = str(point_id(chunk.id))
            row: list[Any] = [
                pid,
                chunk.text,
                Jsonb(_metadata(chunk.metadata, chunk.id), dumps=_dumps),
                _vector_text(as_vector(chunk.vector, self._dim)),
            ]
            if self.layout == "langchain":
                row.append(self._collection_id)
            batch.append(tuple(row))
            ids.append(pid)
            if len(batch) == UPSERT_BATCH:
                self._write(pool, statement, batch)
                batch = []
        if batch:
            self._write(pool, statement, batch)
        return ids

    def get(self, ids: Sequence[str | int]) -> list[StoredChunk]:
        """The stored rows with these chunk ids (missing ones skipped; score 0.0)."""
        if not ids:
            return []
        wanted: list[str] = []
        for raw in ids:
            wanted.append(str(raw))
            with contextlib.suppress(TypeError, ValueError):
                wanted.append(str(point_id(raw)))
        where, params = self._scope()
        query = sql.SQL(
            "SELECT id, document, cmetadata, 0.0 FROM {t} WHERE id = ANY(%s) {scope}"
        ).format(t=self._qualified, scope=where)
        pool = self._sync_pool("get")
        try:
            with pool.connection() as conn:
                rows = conn.execute(query, [sorted(set(wanted)), *params]).fetchall()
        except Exception as exc:
            raise self._error("get", exc) from exc
        return [self._stored(*row) for row in rows]

    def delete(self, ids: Sequence[str | int]) -> None:
        """Delete the rows with these chunk ids (in this collection for the langchain layout)."""
        if not ids:
            return
        wanted = sorted({str(point_id(raw)) for raw in ids} | {str(raw) for raw in ids})
        where, params = self._scope()
        query = sql.SQL("DELETE FROM {t} WHERE id = ANY(%s) {scope}").format(
            t=self._qualified, scope=where
        )
        pool = self._sync_pool("delete")
        try:
            with pool.connection() as conn:
                conn.execute(query, [wanted, *params])
        except Exception as exc:
            raise self._error("delete", exc) from exc

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Create the indexes the policy's filters use (idempotent).

        One GIN ``jsonb_path_ops`` index on the metadata column serves every equality
        (``Eq``/``In`` are containment); each ``integer``/``float`` spec adds a B-tree on
        the attribute's numeric value (the expression ``Range`` compares) and one on its
        JSON type (the list branch of ``Range``).
        """
        pool = self._sync_pool("create_payload_indexes")
        statements: list[sql.Composed] = [
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING gin (cmetadata jsonb_path_ops)"
            ).format(sql.Identifier(_index_name(self.table, "gin", "cmetadata")), self._qualified)
        ]
        for spec in specs:
            if spec.schema not in ("integer", "float"):
                continue
            if not SAFE_KEY.fullmatch(spec.field):
                continue  # such a field is never pushed down (relaxed), so no index helps
            value = sql.SQL("(cmetadata -> {})").format(sql.Literal(spec.field))
            statements.append(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} "
                    "((CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric END))"
                ).format(
                    sql.Identifier(_index_name(self.table, "num", spec.field)),
                    self._qualified,
                    v=value,
                )
            )
            # The list branch of a Range (jsonb_typeof(...) = 'array'): with it indexed too,
            # both arms of the Range's OR are indexable and the planner can combine them.
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ((jsonb_typeof({v})))").format(
                    sql.Identifier(_index_name(self.table, "type", spec.field)),
                    self._qualified,
                    v=value,
                )
            )
        try:
            with pool.connection() as conn:
                for statement in statements:
                    conn.execute(statement)
        except Exception as exc:
            raise self._error("create_payload_indexes", exc) from exc

    def create_vector_index(self) -> None:
        """Create the HNSW index for this store's distance (idempotent).

        langchain-postgres does not create one; its ``embedding`` column must have a
        dimension (``PGVector(embedding_length=...)``) for pgvector to index it.
        """
        pool = self._sync_pool("create_vector_index")
        statement = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding {})").format(
            sql.Identifier(_index_name(self.table, "hnsw", self.distance)),
            self._qualified,
            sql.SQL(_DISTANCES[self.distance][1]),
        )
        try:
            with pool.connection() as conn:
                conn.execute(statement)
        except Exception as exc:
            raise self._error("create_vector_index", exc) from exc

    def close(self) -> None:
        """Close the pool this store opened (a pool given to it belongs to the caller)."""
        if self._owns_pool and self.pool is not None:
            self.pool.close()

    def __enter__(self) -> PgVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", collection={self.collection!r}" if self.layout == "langchain" else ""
        return f"PgVectorStore(table={self.schema}.{self.table}{where}, dim={self._dim})"

    # -- helpers --------------------------------------------------------------------------

    def _scope(self) -> tuple[sql.Composed, list[Any]]:
        if self.layout == "langchain":
            return sql.Composed([sql.SQL("AND collection_id = %s")]), [self._collection_id]
        return sql.Composed([]), []

    def _query(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        exact: bool,
        search_params: SearchParams | None = None,
    ) -> tuple[tuple[sql.Composed, list[Any]], sql.Composed, list[Any]]:
        query_vector = _vector_text(as_vector(vector, self._dim))
        operator, _, score = _DISTANCES[self.distance]
        distance = sql.SQL("(embedding {} %s::vector)").format(sql.SQL(operator))
        conditions: list[sql.Composable] = []
        params: list[Any] = [query_vector]
        if self.layout == "langchain":
            conditions.append(sql.SQL("collection_id = %s"))
            params.append(self._collection_id)
        native = pushdown.native
        if native is not None:
            if not isinstance(native, PgFilter):
                raise StoreError("the pushdown was not made by a PgVectorStore")
            conditions.append(native.condition)
            params.extend(native.params)
        where = (
            sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(conditions))
            if conditions
            else sql.SQL("")
        )
        params.append(limit)
        # relaxed_order may return rows slightly out of order: re-sort the materialised rows.
        query = sql.SQL(
            "WITH hits AS MATERIALIZED (SELECT id, document, cmetadata, {distance} AS d "
            "FROM {t} {where} ORDER BY d LIMIT %s) "
            "SELECT id, document, cmetadata, {score} FROM hits ORDER BY d"
        ).format(
            distance=distance,
            t=self._qualified,
            where=where,
            score=sql.SQL(score.format(d="d")),
        )
        names = ["hnsw.ef_search"]
        ef_search = self.ef_search
        if search_params is not None:
            exact = exact or search_params.exact
            if search_params.hnsw_ef is not None:
                ef_search = search_params.hnsw_ef
        values: list[Any] = [str(min(max(ef_search, limit), _MAX_EF_SEARCH))]
        if self._iterative_scan:
            names.append("hnsw.iterative_scan")
            values.append("relaxed_order")
            if self.max_scan_tuples is not None:
                names.append("hnsw.max_scan_tuples")
                values.append(str(self.max_scan_tuples))
        if exact:
            names.append("enable_indexscan")
            values.append("off")
        settings = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(sql.SQL("set_config(%s, %s, true)") for _ in names)
        )
        setting_params = [item for pair in zip(names, values, strict=True) for item in pair]
        return (settings, setting_params), query, params

    def _write(
        self, pool: ConnectionPool, statement: sql.Composed, batch: list[tuple[Any, ...]]
    ) -> None:
        try:
            with pool.connection() as conn, conn.cursor() as cursor:
                cursor.executemany(statement, batch)
        except Exception as exc:
            raise self._error("upsert", exc) from exc

    def _sync_pool(self, operation: str) -> ConnectionPool:
        if self.pool is None:
            raise StoreError(
                f"{operation} needs a synchronous pool; this PgVectorStore has only an async one"
            )
        return self.pool

    def _server_facts(self) -> tuple[bool, tuple[int, ...]]:
        pool = self._sync_pool("connect")
        try:
            with pool.connection() as conn:
                row = conn.execute(_FACTS_QUERY).fetchone()
        except Exception as exc:
            raise self._error("reading the server settings for", exc) from exc
        return _facts(row)

    async def _read_async_facts(self, pool: AsyncConnectionPool) -> None:
        """What the constructor reads with a sync pool, for a store with only an async one.

        The filter was compiled assuming a UTF-8 database (string order); any other
        encoding fails closed here.
        """
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(_FACTS_QUERY)
                row = await cursor.fetchone()
        except Exception as exc:
            raise self._error("reading the server settings for", exc) from exc
        utf8, version = _facts(row)
        if not utf8:
            raise StoreError(
                "this PostgreSQL database is not UTF-8: give PgVectorStore a sync pool or "
                "conninfo so that it compiles string ranges for it"
            )
        self._iterative_scan = version >= (0, 8)

    def _find_collection(self) -> str:
        pool = self._sync_pool("connect")
        query = sql.SQL("SELECT uuid FROM {} WHERE name = %s").format(
            sql.Identifier(self.schema, LANGCHAIN_COLLECTIONS)
        )
        try:
            with pool.connection() as conn:
                row = conn.execute(query, [self.collection]).fetchone()
        except Exception as exc:
            raise self._error("finding the collection in", exc) from exc
        if row is None:
            raise StoreError(
                f"langchain-postgres collection {self.collection!r} does not exist in "
                f"{self.schema}.{LANGCHAIN_COLLECTIONS}"
            )
        return str(row[0])

    def _read_dim(self) -> int:
        pool = self._sync_pool("connect")
        typmod = sql.SQL(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'embedding' AND NOT attisdropped"
        )
        where, params = self._scope()
        sample = sql.SQL("SELECT vector_dims(embedding) FROM {} WHERE TRUE {} LIMIT 1").format(
            self._qualified, where
        )
        try:
            with pool.connection() as conn:
                row = conn.execute(typmod, [f'"{self.schema}"."{self.table}"']).fetchone()
                if row is None:
                    raise StoreError(f"{self.schema}.{self.table} has no 'embedding' column")
                if row[0] is not None and int(row[0]) > 0:
                    return int(row[0])
                found = conn.execute(sample, params).fetchone()
        except StoreError:
            raise
        except Exception as exc:
            raise self._error("reading the vector size of", exc) from exc
        if found is None:
            raise StoreError(
                f"{self.schema}.{self.table} has no rows and its embedding column no "
                "dimension: pass dim="
            )
        return int(found[0])

    def _error(self, operation: str, exc: Exception) -> StoreError:
        where = f"table {self.schema}.{self.table}"
        if self.layout == "langchain":
            where += f" (collection {self.collection!r})"
        return StoreError(f"PostgreSQL {operation} on {where} failed: {_safe(exc)}")

    @staticmethod
    def _stored(raw_id: object, text: object, metadata: object, score: object) -> StoredChunk:
        value = float(score)  # type: ignore[arg-type]
        return StoredChunk(
            id=str(raw_id),
            # pgvector's cosine distance to a stored all-zero vector is NaN (PostgreSQL
            # sorts it last): the score says "no similarity" instead of carrying a NaN.
            score=0.0 if math.isnan(value) else value,
            text=text if isinstance(text, str) else None,
            metadata=metadata if isinstance(metadata, dict) else None,
        )


_FACTS_QUERY: Final = (
    "SELECT current_setting('server_encoding'), "
    "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
)


def _facts(row: Any) -> tuple[bool, tuple[int, ...]]:
    """(UTF-8 database?, pgvector version) from :data:`_FACTS_QUERY`'s row."""
    encoding, version = row if row is not None else ("", None)
    if version is None:
        raise StoreError(
            "PostgreSQL has no 'vector' extension in this database "
            "(CREATE EXTENSION vector, or use PgVectorStore.create)"
        )
    return encoding == "UTF8", _version(str(version))


def _index_name(table: str, kind: str, what: str) -> str:
    digest = hashlib.sha256(f"{table}\0{kind}\0{what}".encode()).hexdigest()[:10]
    return f"{table[:40]}_rg_{kind}_{digest}"


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _vector_text(values: list[float]) -> str:
    return "[" + ",".join(repr(v) for v in values) + "]"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _metadata(metadata: Mapping[str, Any], chunk_id: object) -> dict[str, Any]:
    """The metadata in canonical JSON form, refused with :class:`StoreError` if it has none.

    Canonical numbers (``ragguard._canonical``): a float with an integral value is written
    as that integer. ``json.dumps`` would write ``2.0**60`` as ``1.152921504606847e+18``,
    which PostgreSQL keeps as the integer 1152921504606847000: another number than the
    one written, which the filter and the provenance check would then both see.
    """
    path = f"chunk {chunk_id!s} metadata"
    try:
        canonical: dict[str, Any] = canonical_value(metadata, path)
    except CanonicalizationError as exc:
        raise StoreError(f"cannot store {exc.path}: it {exc.problem}") from None
    return canonical


def _safe(exc: BaseException) -> str:
    """A psycopg error for a message: its class and SQLSTATE; the server's text only for
    connection failures (a query error's text can quote the values it was given)."""
    name = type(exc).__name__
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return f"{name}: {str(exc).strip()[:300]}"
    if type(exc).__module__.startswith("psycopg_pool"):
        return f"{name}: {str(exc).strip()[:300]}"
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{name} (SQLSTATE {sqlstate})" if sqlstate else name
