"""The audit record: its schema, its canonical form, and its chained hash.

One JSON object per line. The hash of a record is SHA-256 (or HMAC-SHA256 under a key)
of the record's *canonical JSON without the* ``hash`` *field*: keys sorted, no spaces,
ASCII-only (non-ASCII escaped as ``\\uXXXX``), no NaN. ``prev_hash`` is the hash of the
previous record (``GENESIS_HASH`` for the first record of a chain), so editing,
deleting, inserting or reordering a record breaks every link after it.

Records hold identifiers, scores, rules and reasons only: never chunk text and never
query text (the query is a SHA-256 digest of the query vector).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ALG_HMAC",
    "ALG_SHA256",
    "GENESIS_HASH",
    "RECORD_VERSION",
    "AuditRecord",
    "DeniedChunk",
    "PlanSummary",
    "ReleasedChunk",
    "canonical_json",
    "chain_hash",
    "normalize_key",
]

RECORD_VERSION = 1
GENESIS_HASH = "0" * 64
ALG_SHA256 = "sha256"
ALG_HMAC = "hmac-sha256"

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical_json(value: Mapping[str, Any]) -> str:
    """The canonical JSON text of ``value`` (what the chain hash covers)."""
    return _ENCODER.encode(value)


def normalize_key(key: bytes | str | None) -> bytes | None:
    """An HMAC key as bytes (a ``str`` is UTF-8 encoded); rejects empty keys."""
    if key is None:
        return None
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ValueError("an audit key must not be empty; pass key=None for an unkeyed chain")
    return raw


def chain_hash(canonical: str, key: bytes | None) -> str:
    """SHA-256 (``key is None``) or HMAC-SHA256 of a record's canonical JSON, in hex."""
    data = canonical.encode("ascii")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReleasedChunk(_Frozen):
    """A chunk the subject received: its id, similarity score and the allowing rule."""

    id: str
    score: float | None
    rule: str | None
    provenance: str | None = Field(
        default=None, description="provenance status: verified, unsigned, ... (None: not checked)"
    )
    flags: tuple[str, ...] = Field(
        default=(), description='what "flag" screens noted ("screen: reason"); absent when none'
    )


class DeniedChunk(_Frozen):
    """A chunk the store returned but the guard withheld, and why."""

    id: str
    reason: str | None
    provenance: str | None = None


class PlanSummary(_Frozen):
    """The plan a retrieval ran under: kind, whether the pushdown was exact, digest."""

    kind: Literal["allow_all", "deny_all", "conditional"]
    exact: bool
    digest: str


class AuditRecord(_Frozen):
    """One retrieval, as written to the audit log (schema version 1).

    ::

        for path, line, record in read_audit_records(["audit.jsonl"]):
            print(record.time, record.subject_id, [c.id for c in record.released])
    """

    v: int = Field(description="record schema version")
    seq: int = Field(ge=0, description="position in the chain, 0 for the first record")
    alg: Literal["sha256", "hmac-sha256"]
    decision_id: str
    time: datetime
    subject_id: str
    subject_digest: str = Field(description="Subject.fingerprint: SHA-256 of id and attributes")
    action: str
    policy_version: str
    plan: PlanSummary
    k: int
    query_digest: str = Field(description="SHA-256 of the float32 query vector")
    released: tuple[ReleasedChunk, ...]
    denied: tuple[DeniedChunk, ...]
    rounds: int
    truncated: bool
    duration_ms: float
    host: str | None = None
    data_source: str | None = None
    prev_hash: str
    hash: str
