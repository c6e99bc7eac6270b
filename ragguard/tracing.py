"""OpenTelemetry spans for guarded retrievals (``opentelemetry-api`` only).

One span ``ragguard.retrieve`` per search, one event per considered chunk::

    span ragguard.retrieve
      ragguard.subject.id, ragguard.k, ragguard.policy.version, ragguard.plan.kind,
      ragguard.plan.exact, ragguard.plan.digest, ragguard.released.count,
      ragguard.denied.count, ragguard.unverified.count, ragguard.fetch.rounds,
      ragguard.fetch.truncated, db.system.name = "qdrant", gen_ai.operation.name = "retrieval"
      event ragguard.chunk.released  {ragguard.chunk.id, ragguard.chunk.score, ragguard.rule}
      event ragguard.chunk.denied    {ragguard.chunk.id, ragguard.chunk.score, ragguard.reason}

No chunk text and no query text are recorded unless ``capture_content=True``. Pass
``tracer_provider=`` (like every OpenTelemetry instrumentation); ragguard never installs
a global provider. A broken tracer or exporter never breaks a retrieval.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

if TYPE_CHECKING:
    from ragguard.guard import Hit, Retrieval
    from ragguard.policy._plan import Plan
    from ragguard.subject import Subject

__all__ = ["SPAN_NAME", "RetrievalTracer"]

SPAN_NAME = "ragguard.retrieve"
EVENT_RELEASED = "ragguard.chunk.released"
EVENT_DENIED = "ragguard.chunk.denied"

logger = logging.getLogger("ragguard")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ragguard")
    except Exception:  # not installed as a distribution (e.g. a source checkout)
        return "0"


class RetrievalTracer:
    """Records retrievals as spans; every call is guarded so tracing cannot fail a search.

    ``pseudonymize_key``: when given, subject ids are exported as an HMAC-SHA256 of the
    id under that key (hex, truncated to 32 characters) instead of the id itself.
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        capture_content: bool = False,
        pseudonymize_key: bytes | None = None,
    ) -> None:
        self.capture_content = capture_content
        self._pseudonymize_key = pseudonymize_key
        self._tracer = trace.get_tracer(
            "ragguard", _version(), tracer_provider=tracer_provider
        )

    def subject_label(self, subject_id: str) -> str:
        """The subject id as exported (pseudonymised when a key is configured)."""
        if self._pseudonymize_key is None:
            return subject_id
        digest = hmac.new(self._pseudonymize_key, subject_id.encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:32]

    @contextlib.contextmanager
    def retrieval(self, subject: Subject | None, k: object) -> Iterator[Span]:
        """A span around one search; exceptions set the status and are recorded."""
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            kind=trace.SpanKind.INTERNAL,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            self._safely(self._start_attributes, span, subject, k)
            yield span

    def planned(self, plan: Plan) -> None:
        """Attach the plan to the current span."""
        span = trace.get_current_span()
        self._safely(
            span.set_attributes,
            {
                "ragguard.policy.version": plan.policy_version,
                "ragguard.plan.kind": plan.kind,
                "ragguard.plan.exact": plan.exact,
                "ragguard.plan.digest": plan.digest,
            },
        )

    def finished(self, span: Span, retrieval: Retrieval) -> None:
        """Counts and one event per considered chunk."""
        self._safely(self._finish, span, retrieval)

    def audit_failed(self, span: Span, error: BaseException) -> None:
        """Note a non-fatal audit failure on the span."""
        self._safely(
            span.add_event, "ragguard.audit.failed", {"error.type": type(error).__name__}
        )

    # -- internals -------------------------------------------------------------------

    def _start_attributes(self, span: Span, subject: Subject | None, k: object) -> None:
        span.set_attribute("gen_ai.operation.name", "retrieval")
        span.set_attribute("db.system.name", "qdrant")
        if subject is not None and hasattr(subject, "id"):
            span.set_attribute("ragguard.subject.id", self.subject_label(subject.id))
        if isinstance(k, int):
            span.set_attribute("ragguard.k", k)

    def _finish(self, span: Span, retrieval: Retrieval) -> None:
        unverified = sum(
            1 for hit in retrieval.released if hit.provenance and hit.provenance.status == "unsigned"
        )
        span.set_attributes(
            {
                "ragguard.released.count": len(retrieval.released),
                "ragguard.denied.count": len(retrieval.withheld),
                "ragguard.unverified.count": unverified,
                "ragguard.fetch.rounds": retrieval.rounds,
                "ragguard.fetch.truncated": retrieval.truncated,
                "ragguard.decision.id": retrieval.decision_id,
            }
        )
        for hit in retrieval.released:
            span.add_event(EVENT_RELEASED, self._event(hit, "ragguard.rule", hit.decision.rule))
        for hit in retrieval.withheld:
            span.add_event(EVENT_DENIED, self._event(hit, "ragguard.reason", hit.decision.reason))
        span.set_status(Status(StatusCode.OK))

    def _event(self, hit: Hit, key: str, value: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "ragguard.chunk.id": hit.id,
            "ragguard.chunk.score": float(hit.score),
            key: value or "",
        }
        if hit.provenance is not None:
            attributes["ragguard.provenance.status"] = hit.provenance.status
        if self.capture_content:
            attributes["ragguard.chunk.text"] = hit.text
        return attributes

    @staticmethod
    def _safely(function: Any, *args: Any) -> None:
        try:
            function(*args)
        except Exception:  # tracing must never break a retrieval
            logger.debug("ragguard: tracing call failed", exc_info=True)
