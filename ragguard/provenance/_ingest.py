"""``Ingestor``: sign chunks and write them to a store in batches, with a progress bar."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, TextIO

from ragguard.exceptions import MissingDependencyError, ProvenanceError, StoreError
from ragguard.provenance._signing import PROVENANCE_KEY, Signer
from ragguard.stores.base import Chunk

__all__ = ["Embeddings", "Ingestor", "UpsertTarget"]


class Embeddings(Protocol):
    """Anything with LangChain's ``embed_documents`` (``ragguard.testing.HashEmbedder`` too)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class UpsertTarget(Protocol):
    """What the ingestor needs from a store: its dimension and ``upsert``."""

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        ...

    def upsert(self, chunks: Iterable[Chunk]) -> list[str]:
        """Write chunks; return their point ids."""
        ...


@dataclass
class _Pending:
    """One document taken apart, before signing."""

    position: int
    id: str | int
    text: str
    metadata: dict[str, Any]
    vector: list[float] | None


class Ingestor:
    """Signs chunks and upserts them into a store in batches.

    ::

        ingestor = Ingestor(store, signer=Signer(key=key, key_id="2025-01"),
                            embeddings=HashEmbedder(dim=384))
        ids = ingestor.ingest(splitter.split_documents(docs))   # LangChain Documents
        store.optimize()                                        # EdgeStore: build the index

    It chunks nothing itself. ``ingest`` takes, in any mix:

    * LangChain ``Document`` s or any object with ``page_content`` (or ``text``),
      ``metadata`` and ``id`` attributes, and optionally ``vector``;
    * :class:`ragguard.Chunk` s (their ``vector`` is used; an empty one is embedded);
    * mappings ``{"text" (or "page_content"), "metadata", "id", "vector"}``.

    Chunks without a vector are embedded with ``embeddings.embed_documents`` (any
    LangChain ``Embeddings``), one call per batch. Each chunk's metadata gets a fresh
    tag under ``"provenance"`` (an existing tag is replaced: the ingestor vouches for
    what it is given) with:

    * ``source`` — ``metadata["source"]`` (LangChain loaders set it), else ``null``;
    * ``doc_id`` — ``metadata["doc_id"]``, else the chunk's id;
    * ``chunk_index`` — ``metadata["chunk_index"]`` if it is an integer, else the
      chunk's position among this call's chunks with the same ``doc_id`` (from 0);
    * ``text_sha256``, ``metadata_sha256``, ``ingested_at`` (the batch's UTC time),
      ``key_id`` and ``signature`` (see :class:`~ragguard.provenance.Signer`).

    Chunks without an id get a random UUID, so the returned ids (in input order) are
    the only handle on them. Writes happen ``batch_size`` chunks at a time; a progress
    bar (tqdm) goes to stderr when it is a terminal and ``progress=True``. If a batch
    fails, the batches before it stay written and the :class:`~ragguard.StoreError`
    says how many.
    """

    def __init__(
        self,
        store: UpsertTarget,
        *,
        signer: Signer,
        embeddings: Embeddings | None = None,
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        if not isinstance(signer, Signer):
            raise TypeError(f"signer must be a ragguard Signer, got {type(signer).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if embeddings is not None and not callable(getattr(embeddings, "embed_documents", None)):
            raise TypeError("embeddings must have an embed_documents(texts) method")
        self.store = store
        self.signer = signer
        self.embeddings = embeddings
        self.batch_size = batch_size
        self.progress = progress

    def ingest(self, documents: Iterable[Any], *, total: int | None = None) -> list[str]:
        """Sign, embed where needed, and upsert ``documents``; returns their point ids.

        ``documents`` may be any iterable (a generator is consumed batch by batch);
        ``total`` sizes the progress bar when it has no ``len``. Raises
        :class:`~ragguard.ProvenanceError` for a document that cannot be signed or
        embedded (naming its position and id), and the store's
        :class:`~ragguard.StoreError` if a write fails.
        """
        if total is None and isinstance(documents, Sequence):
            total = len(documents)
        ids: list[str] = []
        chunk_counters: dict[str, int] = {}
        bar = _progress_bar(self.progress, total)
        try:
            pending_docs = (_take_apart(position, doc) for position, doc in enumerate(documents))
            for batch in _batches(pending_docs, self.batch_size):
                chunks = self._prepare(batch, chunk_counters)
                try:
                    ids.extend(self.store.upsert(chunks))
                except Exception as exc:
                    raise StoreError(
                        f"writing a batch of {len(chunks)} chunks failed after {len(ids)} were "
                        f"written: {type(exc).__name__}: {exc}"
                    ) from exc
                bar.update(len(chunks))
        finally:
            bar.close()
        return ids

    def _prepare(self, batch: list[_Pending], chunk_counters: dict[str, int]) -> list[Chunk]:
        vectors = self._vectors(batch)
        ingested_at = datetime.now(timezone.utc)
        chunks: list[Chunk] = []
        for pending, vector in zip(batch, vectors, strict=True):
            doc_id = _doc_id(pending)
            chunk_index = pending.metadata.get("chunk_index")
            if isinstance(chunk_index, bool) or not isinstance(chunk_index, int) or chunk_index < 0:
                chunk_index = chunk_counters.get(doc_id, 0)
                chunk_counters[doc_id] = chunk_index + 1
            source = pending.metadata.get("source")
            try:
                metadata = self.signer.sign(
                    pending.text,
                    pending.metadata,
                    source=None if source is None else str(source),
                    doc_id=doc_id,
                    chunk_index=chunk_index,
                    ingested_at=ingested_at,
                )
            except ProvenanceError as exc:
                raise ProvenanceError(f"{_where(pending)}: {exc}") from None
            chunks.append(Chunk(text=pending.text, metadata=metadata, vector=vector, id=pending.id))
        return chunks

    def _vectors(self, batch: list[_Pending]) -> list[list[float]]:
        missing = [pending for pending in batch if pending.vector is None]
        computed: dict[int, list[float]] = {}
        if missing:
            if self.embeddings is None:
                raise ProvenanceError(
                    f"{_where(missing[0])} has no vector and the Ingestor has no embeddings: "
                    "pass Ingestor(..., embeddings=...) or give every chunk a vector"
                )
            embedded = self.embeddings.embed_documents([pending.text for pending in missing])
            if len(embedded) != len(missing):
                raise ProvenanceError(
                    f"the embeddings returned {len(embedded)} vectors for {len(missing)} texts"
                )
            for pending, vector in zip(missing, embedded, strict=True):
                computed[pending.position] = _as_vector(vector, pending)
        vectors = [
            pending.vector if pending.vector is not None else computed[pending.position]
            for pending in batch
        ]
        dim = self.store.dim
        for pending, vector in zip(batch, vectors, strict=True):
            if len(vector) != dim:
                raise ProvenanceError(
                    f"{_where(pending)} has a vector of dimension {len(vector)}; "
                    f"the store holds vectors of dimension {dim}"
                )
        return vectors

    def __repr__(self) -> str:
        return (
            f"Ingestor(store={type(self.store).__name__}, signer={self.signer!r}, "
            f"batch_size={self.batch_size})"
        )


def _take_apart(position: int, document: Any) -> _Pending:
    """Read text, metadata, id and vector from any supported document shape."""
    if isinstance(document, Mapping):
        text = document.get("text", document.get("page_content"))
        metadata = document.get("metadata")
        raw_id = document.get("id")
        vector = document.get("vector")
    else:
        text = getattr(document, "page_content", None)
        if text is None:
            text = getattr(document, "text", None)
        metadata = getattr(document, "metadata", None)
        raw_id = getattr(document, "id", None)
        vector = getattr(document, "vector", None)
    where = f"document {position}" + ("" if raw_id is None else f" (id {raw_id!r})")
    if not isinstance(text, str):
        raise ProvenanceError(
            f"{where} has no text: expected a LangChain Document, a ragguard Chunk, or an "
            "object or mapping with 'text'/'page_content'"
        )
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise ProvenanceError(f"{where}: metadata must be a mapping, got {type(metadata).__name__}")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
        raise ProvenanceError(f"{where}: an id must be a string or an integer")
    pending = _Pending(
        position=position,
        id=raw_id if raw_id is not None else str(uuid.uuid4()),
        text=text,
        metadata={key: value for key, value in metadata.items() if key != PROVENANCE_KEY},
        vector=None,
    )
    if vector is not None and len(vector) > 0:
        pending.vector = _as_vector(vector, pending)
    return pending


def _as_vector(vector: Any, pending: _Pending) -> list[float]:
    try:
        return [float(x) for x in vector]
    except (TypeError, ValueError):
        raise ProvenanceError(
            f"{_where(pending)}: its vector is not a sequence of numbers"
        ) from None


def _doc_id(pending: _Pending) -> str:
    doc_id = pending.metadata.get("doc_id")
    return str(pending.id) if doc_id is None else str(doc_id)


def _where(pending: _Pending) -> str:
    return f"document {pending.position} (id {pending.id!r})"


def _batches(items: Iterable[_Pending], size: int) -> Iterator[list[_Pending]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class _Bar(Protocol):
    """The part of a tqdm bar the ingestor uses."""

    def update(self, n: float | None = 1) -> bool | None:
        """Advance by ``n`` chunks."""
        ...

    def close(self) -> None:
        """Finish the bar."""
        ...


class _NoBar:
    """Stands in for a progress bar when none is shown."""

    def update(self, n: float | None = 1) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def _progress_bar(wanted: bool, total: int | None, stream: TextIO | None = None) -> _Bar:
    """A tqdm bar on stderr if wanted and stderr is a terminal, else a no-op."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if not wanted or not callable(isatty) or not isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise MissingDependencyError("tqdm", "the ingestion progress bar") from exc
    bar: _Bar = tqdm(total=total, unit="chunk", desc="ingest", file=stream, dynamic_ncols=True)
    return bar
