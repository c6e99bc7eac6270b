"""The audit record: its schema, its canonical form, and its chained hash.

One JSON object per line. The hash of a record is SHA-256 (or HMAC-SHA256 under a key)
of the record's *canonical JSON without the* ``hash`` *field*: keys sorted, no spaces,
ASCII-only (non-ASCII escaped as ``\\uXXXX``), no NaN. ``prev_hash`` is the hash of the
previous record (``GENESIS_HASH`` for the first record of a chain), so editing,
deleting, inserting or reordering a record breaks every link after it.

The line on disk is that canonical JSON with ``,"hash":"<hex>"`` inserted before the
closing brace, and a newline (:func:`record_line`). The verifier requires the bytes of
every line to be exactly that, so a line rewritten without changing what ``json.loads``
returns (a duplicate key in front, other spacing, other escapes) is a broken record too.

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

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = [
    "ALG_HMAC",
    "ALG_SHA256",
    "GENESIS_HASH",
    "RECORD_VERSION",
    "AuditRecord",
    "PlanSummary",
    "RecordLineError",
    "ReleasedChunk",
    "WithheldChunk",
    "canonical_json",
    "chain_hash",
    "normalize_key",
    "parse_record_line",
    "record_line",
]

RECORD_VERSION = 2
"""Version 2 names the withheld chunks ``withheld``; version 1 (before 0.2) named them
``denied``. Readers accept both (see :class:`AuditRecord`)."""
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


def record_line(canonical: str, digest: str) -> bytes:
    """The line written for a record: its canonical JSON (without ``hash``) with the
    hash added as the last member, and a newline."""
    return f'{canonical[:-1]},"hash":"{digest}"}}\n'.encode("ascii")


class RecordLineError(ValueError):
    """A log line that is not a strict JSON object (the message says why)."""


def _reject_constant(name: str) -> Any:
    raise RecordLineError(f"{name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RecordLineError(
                    f"duplicate key {key!r}: readers disagree on which value counts"
                )
            seen.add(key)
    return result


def parse_record_line(raw: bytes) -> Any:
    """The JSON value of one log line, parsed strictly.

    Raises :class:`RecordLineError` for what ``json.loads`` would accept or crash on but
    no audit writer produces: bytes that are not UTF-8, ``NaN``/``Infinity``, duplicate
    keys (Python keeps the last, other parsers the first) and nesting too deep to parse.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordLineError("not UTF-8 text: the line was corrupted") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecordLineError:
        raise
    except RecursionError:
        raise RecordLineError("nested too deeply to be an audit record") from None
    except ValueError:
        raise RecordLineError("not valid JSON: the line was corrupted or cut") from None


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


class WithheldChunk(_Frozen):
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
    """One retrieval, as written to the audit log (schema version 2).

    ::

        for path, line, record in read_audit_records(["audit.jsonl"]):
            print(record.time, record.subject_id, [c.id for c in record.released])

    ``withheld`` is read from the key ``withheld`` (version 2) or ``denied`` (version 1
    records, written before the rename): old logs stay readable, and stay verifiable as
    written because the chain hash covers each line's own bytes.
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
    withheld: tuple[WithheldChunk, ...] = Field(
        validation_alias=AliasChoices("withheld", "denied"),
        description="chunks the store returned but the guard withheld (v1 key: denied)",
    )
    rounds: int
    truncated: bool
    duration_ms: float
    host: str | None = None
    data_source: str | None = None
    data_version: str | None = Field(
        default=None, description="the snapshot an EdgeStore replica served (absent otherwise)"
    )
    client_id: str | None = Field(
        default=None,
        description="the caller's client, e.g. the gateway token's client id (absent otherwise)",
    )
    client_name: str | None = Field(
        default=None, description="the name an MCP client declared (absent otherwise)"
    )
    prev_hash: str
    hash: str
