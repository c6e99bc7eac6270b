"""Point conversions shared by the Qdrant-backed stores (LangChain payload layout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragguard._canonical import CanonicalizationError, canonical_value
from ragguard.exceptions import StoreError
from ragguard.stores.base import StoredChunk

__all__ = ["as_payload", "as_vector", "stored_chunk"]


def as_vector(vector: Sequence[float], dim: int) -> list[float]:
    """``vector`` as a list of floats, checked against the store's dimension.

    Raises :class:`StoreError` (the exception tree, not a bare ``ValueError``) for a
    wrong dimension or a NaN/infinity, before anything reaches the engine.
    """
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"vector is not a sequence of numbers: {exc}") from None
    if array.ndim != 1:
        raise StoreError(f"vector is not a flat sequence of numbers (shape {array.shape})")
    if array.shape[0] != dim:
        raise StoreError(f"vector has dimension {array.shape[0]}, the store holds dimension {dim}")
    if not np.isfinite(array).all():
        raise StoreError("vector holds a non-finite number (NaN or infinity)")
    values: list[float] = array.tolist()
    return values


def as_payload(
    text: str,
    metadata: Any,
    chunk_id: object,
    *,
    content_key: str = "page_content",
    metadata_key: str = "metadata",
) -> dict[str, Any]:
    """The Qdrant payload of a chunk, refused with :class:`StoreError` if it is not JSON.

    Qdrant stores JSON: a NaN or an infinity, a set, bytes or a non-string key cannot be
    written (qdrant-edge raises a bare ``TypeError``). The error names the chunk and the
    attribute, never the value.
    """
    try:
        canonical_value(metadata, f"chunk {chunk_id!s} metadata")
    except CanonicalizationError as exc:
        raise StoreError(f"cannot store {exc.path}: it {exc.problem}") from None
    return {content_key: text, metadata_key: dict(metadata)}


def stored_chunk(
    raw_id: object,
    score: float,
    payload: object,
    *,
    content_key: str = "page_content",
    metadata_key: str = "metadata",
) -> StoredChunk:
    """A :class:`StoredChunk` from a Qdrant point; wrong-typed fields become ``None``."""
    text: str | None = None
    metadata: dict[str, Any] | None = None
    if isinstance(payload, dict):
        content = payload.get(content_key)
        text = content if isinstance(content, str) else None
        md = payload.get(metadata_key)
        metadata = md if isinstance(md, dict) else None
    return StoredChunk(id=str(raw_id), score=float(score), text=text, metadata=metadata)
