"""Any LangChain ``VectorStore`` as a ragguard store, filtered after the search.

Use this only for vector stores ragguard cannot push a filter into. The store is asked
for the nearest chunks of *everyone*; the guard re-checks each one and, when too few
are readable, asks again for twice as many, in bounded rounds (``Guard(max_fetch_rounds=)``).
That still returns exactly ``k`` authorised chunks whenever they are within the bound,
but the cost grows as the subject's readable share shrinks: a user who may read 0.1% of
the corpus needs about a thousand candidates per authorised hit. For Qdrant, use
:meth:`GuardedRetriever.from_vectorstore` on a ``QdrantVectorStore`` instead: the filter
runs inside Qdrant and cost does not depend on selectivity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from ragguard import StoreError
from ragguard.policy import ir
from ragguard.stores import Chunk, IndexSpec, Pushdown, StoreCapabilities, StoredChunk
from ragguard_langchain._types import QueryEmbedder

__all__ = ["PostFilterStore", "PostFilterWarning"]

POST_FILTER: Final = "post-filter"


class PostFilterWarning(UserWarning):
    """A retriever filters after the vector search: recall and cost depend on selectivity."""


class PostFilterStore:
    """A read-only ragguard store over a LangChain ``VectorStore`` without filter pushdown.

    ``translate`` never produces a native filter: every plan except ``allow_all`` and
    ``deny_all`` is inexact, so the guard over-fetches and re-checks, the policy and a
    caller's ``filter=`` alike (both are in the plan, see ``Plan.narrow``). Scores come from
    rank, not from the vector store (stores disagree on the scale and direction of their
    scores): the best hit scores 1.0, the next 0.5, then 1/3, ... Documents without an id
    get a content id (``sha256:`` of text and metadata) so every one is decided and
    audited on its own.

    ``dim`` is the query vector dimension; pass it, or give ``embeddings`` and it is
    measured once with one ``embed_query`` call.
    """

    db_system_name: Final = "langchain"

    def __init__(
        self,
        vectorstore: VectorStore,
        *,
        dim: int | None = None,
        embeddings: QueryEmbedder | None = None,
    ) -> None:
        if not isinstance(vectorstore, VectorStore):
            raise TypeError(
                f"vectorstore must be a LangChain VectorStore, got {type(vectorstore).__name__}"
            )
        if dim is None:
            embedder = embeddings or vectorstore.embeddings
            if embedder is None:
                raise ValueError("pass dim= or embeddings= (the vector store has no embeddings)")
            dim = len(embedder.embed_query("ragguard dimension probe"))
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.vectorstore = vectorstore
        self._dim = dim

    def __repr__(self) -> str:
        return f"PostFilterStore({type(self.vectorstore).__name__}, dim={self._dim})"

    @property
    def dim(self) -> int:
        """Dimension of the query vectors."""
        return self._dim

    @property
    def capabilities(self) -> StoreCapabilities:
        """Rank scores (higher is better), sync search only, no scroll."""
        return StoreCapabilities(db_system_name=self.db_system_name)

    def translate(self, expr: ir.Expr) -> Pushdown:
        """No pushdown: only the constant plans are exact."""
        if expr == ir.TRUE:
            return Pushdown(native=None, exact=True)
        if expr == ir.FALSE:
            return Pushdown(native=None, exact=True, matches_nothing=True)
        return Pushdown(native=None, exact=False, relaxed=(POST_FILTER,))

    def search(
        self,
        vector: Sequence[float],
        limit: int,
        pushdown: Pushdown,
        *,
        exact: bool = False,
    ) -> list[StoredChunk]:
        """The ``limit`` nearest documents, unfiltered (the guard filters them)."""
        if pushdown.matches_nothing or limit <= 0:
            return []
        try:
            documents = self.vectorstore.similarity_search_by_vector(list(vector), k=limit)
        except Exception as exc:
            raise StoreError(
                f"{type(self.vectorstore).__name__}.similarity_search_by_vector failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return [_stored(document, 1.0 / (rank + 1)) for rank, document in enumerate(documents)]

    def get(self, ids: Sequence[str]) -> list[StoredChunk]:
        """The documents with these ids, through ``VectorStore.get_by_ids``."""
        try:
            documents = self.vectorstore.get_by_ids(list(ids))
        except Exception as exc:
            raise StoreError(
                f"{type(self.vectorstore).__name__}.get_by_ids failed: {type(exc).__name__}: {exc}"
            ) from exc
        return [_stored(document, 0.0) for document in documents]

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Refused: write through the LangChain vector store itself."""
        raise StoreError(
            "PostFilterStore is read-only; add documents through the LangChain vector store "
            "(sign them first with ragguard.Signer if the guard verifies provenance)"
        )

    def create_payload_indexes(self, specs: Iterable[IndexSpec]) -> None:
        """Nothing to do: the store is never asked to filter."""

    def close(self) -> None:
        """Nothing to do: the caller owns the vector store."""


def content_id(text: str, metadata: Any) -> str:
    """A stable id for a document that has none: a digest of its text and metadata."""
    digest = hashlib.sha256()
    digest.update(text.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(json.dumps(metadata, sort_keys=True, default=repr).encode("utf-8"))
    return "sha256:" + digest.hexdigest()[:32]


def _stored(document: Document, score: float) -> StoredChunk:
    text = document.page_content if isinstance(document.page_content, str) else None
    metadata = document.metadata if isinstance(document.metadata, dict) else None
    chunk_id = document.id if isinstance(document.id, str) and document.id else None
    if chunk_id is None:
        chunk_id = content_id(text or "", metadata)
    return StoredChunk(id=chunk_id, score=score, text=text, metadata=metadata)
