"""Point conversions shared by the Qdrant-backed stores (LangChain payload layout)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ragguard.stores.base import StoredChunk

__all__ = ["as_vector", "stored_chunk"]


def as_vector(vector: Sequence[float], dim: int) -> list[float]:
    """``vector`` as a list of floats, checked against the store's dimension."""
    values = [float(x) for x in vector]
    if len(values) != dim:
        raise ValueError(f"vector has dimension {len(values)}, the store holds dimension {dim}")
    if not all(math.isfinite(x) for x in values):
        raise ValueError("vector holds a non-finite number")
    return values


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
