"""What one guarded retrieval produces: hits, the retrieval record, provenance verdicts.

A leaf every layer may import (tracing, audit, screens, provenance, the guard, the
surfaces above it): it imports nothing above :mod:`ragguard.policy`. The sinks and
verifiers the guard calls (:class:`AuditSink`, :class:`ProvenanceVerifier`) are declared
here too, so their implementations never import the guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from ragguard.policy._plan import Decision, Plan
from ragguard.subject import Subject

__all__ = [
    "AuditSink",
    "Hit",
    "ProvenanceStatus",
    "ProvenanceVerdict",
    "ProvenanceVerifier",
    "Retrieval",
]

ProvenanceStatus = Literal["verified", "unsigned", "tampered", "unknown key", "off", "error"]
"""``error``: the verifier itself raised (the guard withholds the hit)."""


@dataclass(frozen=True)
class ProvenanceVerdict:
    """What provenance verification said about one hit.

    ``status`` is ``"verified"``, ``"unsigned"``, ``"tampered"``, ``"unknown key"``,
    ``"off"``, or ``"error"`` (the verifier raised; set by the guard); ``released`` is
    whether the hit may be released on provenance grounds.
    """

    status: ProvenanceStatus
    released: bool
    reason: str | None = None
    tag: Mapping[str, Any] | None = None


@runtime_checkable
class ProvenanceVerifier(Protocol):
    """Verifies a hit's provenance tag before release (see ``ragguard.provenance``)."""

    def verify(self, text: str, metadata: Mapping[str, Any]) -> ProvenanceVerdict:
        """Check the tag in ``metadata`` against ``text`` and the other metadata."""
        ...


@dataclass(frozen=True)
class Hit:
    """A chunk the guard considered: released (returned) or withheld (audited only).

    ``flags`` holds what ``flag``-action screens noted on a released hit
    (``"prompt_injection: ..."``); ``subject`` is who the hit was decided for.
    """

    id: str
    score: float
    text: str
    metadata: Mapping[str, Any]
    decision: Decision
    provenance: ProvenanceVerdict | None = None
    flags: tuple[str, ...] = ()
    subject: Subject | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Retrieval:
    """The complete outcome of one guarded search: what tracing and audit record."""

    decision_id: str
    started_at: datetime
    subject: Subject
    plan: Plan
    k: int
    query_digest: str
    released: tuple[Hit, ...]
    withheld: tuple[Hit, ...]
    rounds: int
    truncated: bool
    duration_s: float
    # The store's optional ``data_version`` (the snapshot a replica serves), read
    # after the search; None for stores without one.
    data_version: str | None = None
    # Who called, when a front end knows it (the gateway: the token's client id and an
    # MCP client's declared name); None otherwise. Audit records carry them when set.
    client_id: str | None = None
    client_name: str | None = None


@runtime_checkable
class AuditSink(Protocol):
    """Receives one record per retrieval (see ``ragguard.audit``)."""

    def record(self, retrieval: Retrieval) -> None:
        """Persist the retrieval; raise to signal failure."""
        ...
