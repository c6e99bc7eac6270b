"""Point conversions shared by the Qdrant-backed stores (LangChain payload layout)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from ragguard._canonical import CanonicalizationError, canonical_value
from ragguard.exceptions import StoreError
from ragguard.stores.base import StoredChunk

__all__ = [
    "LLAMAINDEX_NODE_KEYS",
    "as_payload",
    "as_vector",
    "dense_vector",
    "llamaindex_payload",
    "not_a_vector",
    "stored_chunk",
    "stored_llamaindex_chunk",
]


class CheckedVector(list[float]):
    """A list of finite Python floats the guard has already checked (``Guard._start``):
    :func:`as_vector` passes it through when its length is the store's dimension,
    instead of converting and checking it a second time on every search."""

    __slots__ = ()


def as_vector(vector: Sequence[float], dim: int) -> list[float]:
    """``vector`` as a list of floats, checked against the store's dimension.

    Raises :class:`StoreError` (the exception tree, not a bare ``ValueError``) for a
    wrong dimension or a NaN/infinity, before anything reaches the engine.
    """
    if type(vector) is CheckedVector and len(vector) == dim:
        return vector
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        raise StoreError(f"vector {not_a_vector(vector)}") from None
    if array.ndim != 1:
        raise StoreError(f"vector is not a flat sequence of numbers (shape {array.shape})")
    if array.shape[0] != dim:
        raise StoreError(f"vector has dimension {array.shape[0]}, the store holds dimension {dim}")
    if not np.isfinite(array).all():
        raise StoreError("vector holds a non-finite number (NaN or infinity)")
    values: list[float] = array.tolist()
    return values


def not_a_vector(vector: Any) -> str:
    """Why ``vector`` is not a sequence of numbers, naming types only, never values.

    The message can reach traces and logs: numpy's own (``could not convert string to
    float: 'salary of bob smith'``) would carry the query text passed by mistake.
    """
    if isinstance(vector, (str, bytes, bytearray)):
        return (
            f"is not a sequence of numbers but a {type(vector).__name__}: embed the query "
            "text first and pass its vector"
        )
    if isinstance(vector, Sequence):  # finite: safe to walk (a generator may not end)
        try:
            for position, item in enumerate(vector):
                if not isinstance(item, (int, float, np.number)):
                    kind = type(item).__name__
                    return f"is not a sequence of numbers: item {position} is a {kind}"
        except Exception:  # its iteration fails: the type says enough
            pass
    return f"is not a sequence of numbers (got a {type(vector).__name__})"


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
    written (qdrant-edge raises a bare ``TypeError``). Nor can an integer outside the
    64-bit range Qdrant keeps exactly (``-2**63`` to ``2**64 - 1``): qdrant-edge silently
    turns ``2**64`` into a float, so ``2**64`` and ``2**64 + 1`` would become one value,
    and raises a bare ``TypeError`` for ``10**400``. The error names the chunk and the
    attribute, never the value.
    """
    path = f"chunk {chunk_id!s} metadata"
    try:
        canonical_value(metadata, path)
    except CanonicalizationError as exc:
        raise StoreError(f"cannot store {exc.path}: it {exc.problem}") from None
    wide = _wide_integer(metadata, path)
    if wide is not None:
        raise StoreError(
            f"cannot store {wide}: it is an integer outside -2**63..2**64-1, the range "
            "Qdrant stores exactly; store it as a string"
        )
    return {content_key: text, metadata_key: dict(metadata)}


_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def _wide_integer(value: Any, path: str) -> str | None:
    """The path of the first integer Qdrant cannot store exactly, or ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return path if not _INT_MIN <= value <= _INT_MAX else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _wide_integer(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _wide_integer(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


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


def dense_vector(raw: object, name: str | None, point: object) -> list[float]:
    """The dense vector ``name`` (``None``/``""``: the unnamed one) of a retrieved point.

    Qdrant returns a plain list for a collection with one unnamed vector and a mapping
    for a collection configured with a map of vectors. Raises :class:`StoreError` when
    the point has no such dense vector (nothing is guessed).
    """
    value = raw
    if isinstance(raw, dict):
        value = raw.get(name or "")
    if not isinstance(value, list) or not value:
        raise StoreError(
            f"point {point!s} has no dense vector {name or ''!r} to score (got "
            f"{type(value).__name__})"
        )
    return value


LLAMAINDEX_NODE_KEYS: Final = ("_node_content", "_node_type")
"""Payload keys of LlamaIndex's Qdrant layout that are not the node's metadata."""


def llamaindex_payload(
    text: str, metadata: Any, chunk_id: object, pid: str | int
) -> dict[str, Any]:
    """The payload LlamaIndex's ``QdrantVectorStore`` writes for a ``TextNode``: the
    metadata flat at the top level, the node as JSON under ``_node_content`` (its text
    included), ``_node_type`` and the reference-document ids; LlamaIndex reads it back."""
    payload = as_payload(text, metadata, chunk_id)["metadata"]
    if any(key in payload for key in LLAMAINDEX_NODE_KEYS):
        raise StoreError(
            f"chunk {chunk_id!s} metadata uses a key LlamaIndex's layout keeps for itself "
            f"({', '.join(LLAMAINDEX_NODE_KEYS)})"
        )
    node = {"id_": str(pid), "text": text, "metadata": dict(metadata), "class_name": "TextNode"}
    return {
        **payload,
        "_node_content": json.dumps(node, ensure_ascii=False, allow_nan=False),
        "_node_type": "TextNode",
        "document_id": payload.get("document_id", "None"),
        "doc_id": payload.get("doc_id", "None"),
        "ref_doc_id": payload.get("ref_doc_id", "None"),
    }


def stored_llamaindex_chunk(raw_id: object, score: float, payload: object) -> StoredChunk:
    """A :class:`StoredChunk` from a point LlamaIndex wrote: the text from the node JSON
    under ``_node_content`` (or a top-level ``text``, LlamaIndex's legacy layout), the
    metadata from the other top-level keys; unreadable fields become ``None``."""
    text: str | None = None
    metadata: dict[str, Any] | None = None
    if isinstance(payload, dict):
        content = payload.get("_node_content")
        hidden: tuple[str, ...] = LLAMAINDEX_NODE_KEYS
        if isinstance(content, str):
            try:
                node = json.loads(content)
            except ValueError:
                node = None
            found = node.get("text") if isinstance(node, dict) else None
            text = found if isinstance(found, str) else None
        elif "_node_type" not in payload and isinstance(payload.get("text"), str):
            text = payload["text"]
            hidden = (*hidden, "text")
        metadata = {k: v for k, v in payload.items() if k not in hidden}
    return StoredChunk(id=str(raw_id), score=float(score), text=text, metadata=metadata)
