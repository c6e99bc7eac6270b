"""The gateway's transport-independent core: authenticate, search, explain, plan.

The HTTP routes and the MCP tools both call :class:`GatewayService`; neither takes a
subject from anything but an :class:`~ragguard.gateway._identity.Identity` that this
service produced from a verified token (or, for stdio MCP, from the configuration).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

import ragguard as rg
from ragguard.exceptions import IdentityError, QueryError
from ragguard.gateway._config import GatewayConfig
from ragguard.gateway._filters import parse_filter
from ragguard.gateway._identity import Identity, JwtVerifier
from ragguard.policy import ir

__all__ = ["CapturingAuditSink", "GatewayService", "SearchOutcome"]

logger = logging.getLogger("ragguard.gateway")

_TRACER_NAME = "ragguard.gateway"


class CapturingAuditSink:
    """Passes each retrieval on to the configured sink and keeps it for this thread.

    ``guard.search`` returns the released hits; the gateway also answers with the
    retrieval's decision id, which only the audit record carries. The guard calls the
    sink in the thread that runs the search, so a thread-local hands it back. The
    caller's client (set with :meth:`caller` around the search) is stamped on the
    retrieval, so the audit record names it (``client_id``, ``client_name``).
    """

    def __init__(self, inner: rg.AuditSink | None) -> None:
        self.inner = inner
        self._local = threading.local()

    def caller(self, client_id: str | None, client_name: str | None) -> None:
        """The client of the searches this thread runs next (``None``: unknown)."""
        self._local.client = (client_id, client_name)

    def record(self, retrieval: rg.Retrieval) -> None:
        """Keep ``retrieval`` for :meth:`take`, then record it in the configured sink."""
        client_id, client_name = getattr(self._local, "client", (None, None))
        if client_id is not None or client_name is not None:
            retrieval = dataclasses.replace(retrieval, client_id=client_id, client_name=client_name)
        self._local.retrieval = retrieval
        if self.inner is not None:
            self.inner.record(retrieval)

    def take(self) -> rg.Retrieval | None:
        """The retrieval recorded last in this thread (and forget it)."""
        retrieval: rg.Retrieval | None = getattr(self._local, "retrieval", None)
        self._local.retrieval = None
        return retrieval


@dataclass(frozen=True)
class SearchOutcome:
    """What one gateway search released, and the retrieval's decision id."""

    hits: tuple[rg.Hit, ...]
    decision_id: str | None
    policy_version: str
    data_version: str | None = None


class GatewayService:
    """Everything the gateway does, for an already verified identity."""

    def __init__(
        self,
        config: GatewayConfig,
        guard: rg.Guard,
        embedder: Any,
        verifier: JwtVerifier | None,
        *,
        tracer_provider: Any = None,
        owns_guard: bool = False,
    ) -> None:
        import copy

        from opentelemetry import trace

        self.config = config
        # The gateway's own copy of the guard, with a sink that hands back decision ids;
        # the caller's guard object is not changed.
        self.guard = copy.copy(guard)
        self._sink = CapturingAuditSink(guard.audit)
        self.guard.audit = self._sink
        self.embedder = embedder
        self.verifier = verifier
        self._owned = guard if owns_guard else None
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        self._refresher: Any = None
        store = guard.store
        if (
            owns_guard
            and isinstance(store, rg.EdgeStore)
            and store.is_replica
            and config.store.refresh_s > 0
        ):
            from ragguard.gateway._replica import ReplicaRefresher

            self._refresher = ReplicaRefresher(store, config.store.refresh_s)

    def start(self) -> None:
        """Start background work: the replica refresh timer (``[store] refresh_s``)."""
        if self._refresher is not None:
            self._refresher.start()

    @property
    def data_version(self) -> str | None:
        """The snapshot the store serves now (a replica), else ``None``."""
        store = self.guard.store
        if isinstance(store, rg.EdgeStore) and store.is_replica:
            return store.data_version
        return None

    @property
    def replica(self) -> str | None:
        """The replica slot this process serves (``w0``, ``w1``...), else ``None``."""
        store = self.guard.store
        if isinstance(store, rg.EdgeStore):
            directory = store.replica_dir
            if directory is not None:
                return directory.name
        return None

    def close(self) -> None:
        """Close the store and flush the audit log, if this service built them."""
        if self._refresher is not None:
            refresher, self._refresher = self._refresher, None
            refresher.stop()
        if self._owned is None:
            return
        guard, self._owned = self._owned, None
        close_audit = getattr(guard.audit, "close", None)
        try:
            if callable(close_audit):
                close_audit()
        finally:
            guard.store.close()

    # -- identity --------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, *, surface: str) -> Identity:
        """The identity in an ``Authorization: Bearer`` header value, or IdentityError.

        A refusal is logged and traced (``ragguard.gateway.refused``) with the check
        that failed; the token itself is never recorded.
        """
        try:
            if self.verifier is None:
                raise IdentityError("no [identity] configured: HTTP access is refused")
            token = _bearer(authorization)
            if len(token) > self.verifier.settings.max_token_bytes:
                raise IdentityError("token longer than max_token_bytes")
            if self.verifier.settings.jwks_url is not None:
                return await anyio.to_thread.run_sync(self.verifier.verify, token)
            return self.verifier.verify(token)
        except IdentityError as exc:
            self.refused(surface, exc)
            raise

    def refused(self, surface: str, error: BaseException) -> None:
        """Record a refused request (log and trace event): why, never the token."""
        from opentelemetry.trace import Status, StatusCode

        reason = str(error)
        logger.warning("ragguard gateway: %s request refused: %s", surface, reason)
        with self._tracer.start_as_current_span("ragguard.gateway.refused") as span:
            span.set_attribute("ragguard.gateway.surface", surface)
            span.set_attribute("ragguard.gateway.refusal", reason)
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, reason))

    # -- operations --------------------------------------------------------------------

    async def search(
        self,
        identity: Identity,
        *,
        query: str | None,
        vector: Sequence[float] | None,
        k: int,
        filter: Mapping[str, Any] | None,
        surface: str,
        mcp_client: str | None = None,
    ) -> SearchOutcome:
        """Embed ``query`` (or take ``vector``) and run ``guard.search`` for the identity.

        ``mcp_client`` is the name (and version) an MCP client declared; it and the
        token's client id are recorded in the span and the audit record.
        """
        limits = self.config.limits
        if (query is None) == (vector is None):
            raise QueryError("give exactly one of query or vector")
        if query is not None and len(query) > limits.max_query_chars:
            raise QueryError(f"query is longer than {limits.max_query_chars} characters")
        if query is not None and not query.strip():
            raise QueryError("query is empty")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
            raise QueryError(f"k must be an integer between 1 and {limits.max_k}")
        where = parse_filter(
            filter, max_bytes=limits.max_filter_bytes, max_atoms=limits.max_filter_atoms
        )
        with self._tracer.start_as_current_span("ragguard.gateway.search") as span:
            span.set_attribute("ragguard.gateway.surface", surface)
            span.set_attribute("ragguard.gateway.client_id", identity.client_id)
            if surface.startswith("mcp"):
                span.set_attribute("mcp.client.name", mcp_client or identity.client_id or "unknown")
            outcome = await anyio.to_thread.run_sync(
                self._search_sync, identity, query, vector, k, where, mcp_client
            )
            if outcome.decision_id is not None:
                span.set_attribute("ragguard.decision_id", outcome.decision_id)
            span.set_attribute("ragguard.released", len(outcome.hits))
        logger.info(
            "ragguard gateway: %s search decision=%s subject=%s client=%s%s released=%d",
            surface,
            outcome.decision_id,
            identity.subject.id,
            identity.client_id or "-",
            f" mcp_client={mcp_client}" if mcp_client else "",
            len(outcome.hits),
        )
        return outcome

    def _search_sync(
        self,
        identity: Identity,
        query: str | None,
        vector: Sequence[float] | None,
        k: int,
        where: ir.Expr | dict[str, Any] | None,
        client_name: str | None,
    ) -> SearchOutcome:
        if query is not None:
            try:
                vector = self.embedder.embed_query(query)
            except Exception as exc:
                # The embedder's message may quote the query: name its type only.
                raise QueryError(f"the embedder failed ({type(exc).__name__})") from exc
        assert vector is not None
        self._sink.take()
        self._sink.caller(identity.client_id, client_name)
        try:
            hits = self.guard.search(identity.subject, vector, k, where=where)
        finally:
            self._sink.caller(None, None)
        retrieval = self._sink.take()
        return SearchOutcome(
            hits=tuple(hits),
            decision_id=retrieval.decision_id if retrieval is not None else None,
            policy_version=self.guard.policy.version,
            data_version=retrieval.data_version if retrieval is not None else None,
        )

    async def explain(self, identity: Identity, chunk_id: str, *, surface: str) -> dict[str, Any]:
        """Whether the caller may read chunk ``chunk_id``, and why (never its text)."""
        if not isinstance(chunk_id, str) or not chunk_id or len(chunk_id) > 256:
            raise QueryError("chunk_id must be a string of 1 to 256 characters")
        with self._tracer.start_as_current_span("ragguard.gateway.explain") as span:
            span.set_attribute("ragguard.gateway.surface", surface)
            span.set_attribute("ragguard.gateway.client_id", identity.client_id)
            span.set_attribute("enduser.id", identity.subject.id)
            answer = await anyio.to_thread.run_sync(self._explain_sync, identity, chunk_id)
            span.set_attribute("ragguard.gateway.visible", bool(answer["visible"]))
        return answer

    def _explain_sync(self, identity: Identity, chunk_id: str) -> dict[str, Any]:
        guard = self.guard
        version = guard.policy.version
        try:
            stored = guard.store.get([chunk_id])
        except rg.RagGuardError:
            raise
        except Exception as exc:
            raise rg.StoreError(f"the store failed during get ({type(exc).__name__})") from exc
        hidden = {
            "chunk_id": chunk_id,
            "visible": False,
            "rule": None,
            "reason": "not visible to you (or no such chunk)",
            "provenance": None,
            "policy_version": version,
        }
        if not stored or stored[0].metadata is None or stored[0].text is None:
            if self.config.explain.reveal_withheld_reasons:
                hidden["reason"] = "no such chunk"
            return hidden
        chunk = stored[0]
        assert chunk.metadata is not None
        assert chunk.text is not None
        decision = guard.check(identity.subject, chunk.metadata)
        provenance: dict[str, Any] | None = None
        if decision.released and guard.provenance is not None:
            try:
                verdict = guard.provenance.verify(chunk.text, chunk.metadata)
            except Exception as exc:
                verdict = rg.ProvenanceVerdict("error", False, type(exc).__name__)
            provenance = {"status": verdict.status, "reason": verdict.reason}
            if not verdict.released:
                decision = decision.withheld(f"provenance: {verdict.reason or verdict.status}")
        if not decision.released:
            if self.config.explain.reveal_withheld_reasons:
                hidden["reason"] = decision.reason
            return hidden
        return {
            "chunk_id": chunk_id,
            "visible": True,
            "rule": decision.rule,
            "reason": None,
            "provenance": provenance,
            "policy_version": decision.policy_version or version,
        }

    def plan(self, identity: Identity) -> dict[str, Any]:
        """The caller's own plan: kind, exactness, policy version and the filter (IR JSON)."""
        plan = self.guard.plan(identity.subject)
        return {
            "subject_id": identity.subject.id,
            "kind": plan.kind,
            "exact": plan.exact,
            "policy_version": plan.policy_version,
            "filter": ir.to_json(plan.filter),
        }

    def ready(self) -> dict[str, str]:
        """Readiness checks: the store answers and the identity keys can be had."""
        checks: dict[str, str] = {}
        try:
            self.guard.store.get([])
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"failed ({type(exc).__name__})"
        if self.verifier is not None and self.verifier.settings.jwks_url is not None:
            try:
                self.verifier.ready()
                checks["identity_keys"] = "ok"
            except IdentityError as exc:
                checks["identity_keys"] = f"failed ({exc})"
        return checks


def hit_json(hit: rg.Hit) -> dict[str, Any]:
    """One released hit as the API returns it, with its citation."""
    tag = hit.provenance.tag if hit.provenance is not None else None
    source = hit.metadata.get("source")
    if source is None and isinstance(tag, Mapping):
        source = tag.get("source")
    return {
        "id": hit.id,
        "score": hit.score,
        "text": hit.text,
        "metadata": dict(hit.metadata),
        "rule": hit.decision.rule,
        "provenance": (
            None
            if hit.provenance is None
            else {"status": hit.provenance.status, "reason": hit.provenance.reason}
        ),
        "flags": list(hit.flags),
        "citation": {"chunk_id": hit.id, "source": source, "rule": hit.decision.rule},
    }


def _bearer(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise IdentityError("no bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise IdentityError("Authorization is not a bearer token")
    return token.strip()


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (``time.perf_counter``)."""
    return (time.perf_counter() - started) * 1000.0
