"""OpenTelemetry spans for guarded retrievals (``opentelemetry-api`` only).

One span per search, one event per chunk the guard considered::

    provider, exporter = ragguard.testing.in_memory_tracing()   # or your SDK provider
    guard = Guard(policy, store, tracer_provider=provider)
    guard.search(alice, vector, k=5)
    [span] = exporter.get_finished_spans()
    span.attributes["ragguard.released.count"]                  # -> 5

Span ``ragguard.retrieve`` (kind ``INTERNAL``); names from the OpenTelemetry GenAI
*retrieval* and general conventions where one exists, ``ragguard.*`` otherwise:

=================================  ==========  =============================================
attribute                          type        meaning
=================================  ==========  =============================================
``gen_ai.operation.name``          string      ``"retrieval"`` (GenAI retrieval span)
``gen_ai.request.top_k``           double      ``k``, the number of chunks asked for
``gen_ai.data_source.id``          string      the store's collection, when it names one
``db.system.name``                 string      the store's engine (``"qdrant"``), if known
``db.collection.name``             string      the store's collection, when it names one
``enduser.id``                     string      the subject id (not set when pseudonymised)
``enduser.pseudo.id``              string      HMAC-SHA256 of the subject id, when keyed
``ragguard.policy.version``        string      content hash of the policy in force
``ragguard.plan.kind``             string      ``allow_all`` / ``deny_all`` / ``conditional``
``ragguard.plan.exact``            boolean     whether the store ran the whole filter
``ragguard.plan.digest``           string      SHA-256 of version, action and filter
``ragguard.released.count``        int         chunks returned to the caller
``ragguard.withheld.count``        int         chunks the store returned but were withheld
``ragguard.unverified.count``      int         released chunks without a provenance tag
``ragguard.flagged.count``         int         released chunks a ``flag`` screen marked
``ragguard.fetch.rounds``          int         store queries made (over-fetch rounds)
``ragguard.fetch.truncated``       boolean     the search stopped before it was exact
``ragguard.fetch.scanned``         int         points read by the exact finish (scan)
``ragguard.decision.id``           string      the audit record's ``decision_id``
``ragguard.data_version``          string      the snapshot a replica served, if any
``error.type``                     string      exception class, when the search failed
``gen_ai.retrieval.documents``     string      opt-in: JSON ``[{id, score}]`` of released
=================================  ==========  =============================================

Events ``ragguard.chunk.released`` (``ragguard.chunk.id``, ``ragguard.chunk.score``,
``ragguard.rule``) and ``ragguard.chunk.withheld`` (``ragguard.chunk.id``,
``ragguard.chunk.score``, ``ragguard.reason``), both with
``ragguard.provenance.status`` when provenance was checked, released ones with
``ragguard.screen.flags`` (list of ``"screen: reason"``) when a screen flagged them;
``ragguard.audit.failed`` (``error.type``) when a non-required audit write failed;
``ragguard.budget.exceeded`` (``error.type``, ``ragguard.budget.requested``) when the
release budget stopped the search (its chunks are then ``withheld`` events);
``ragguard.scan.budget_exhausted`` (``ragguard.fetch.scanned``, ``ragguard.scan.max``)
when the exact finish of an inexact search stopped at ``Guard(max_scan=)`` points.

No chunk text and no query text are recorded unless ``capture_content=True`` (which
adds ``ragguard.chunk.text`` to each event and the opt-in ``gen_ai.retrieval.documents``
to the span). The guard never sees query text, only the vector. Pass
``tracer_provider=`` like every OpenTelemetry instrumentation; ragguard never installs
a global provider. A broken tracer or exporter never breaks a retrieval.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ragguard._version import installed_version
from ragguard.exceptions import RagGuardError
from ragguard.stores.base import StoreCapabilities, store_capabilities

if TYPE_CHECKING:
    from ragguard.policy._plan import Plan
    from ragguard.results import Hit, Retrieval
    from ragguard.search_params import SearchParams
    from ragguard.subject import Subject

__all__ = [
    "EVENT_AUDIT_FAILED",
    "EVENT_BUDGET_EXCEEDED",
    "EVENT_RELEASED",
    "EVENT_SCAN_BUDGET_EXHAUSTED",
    "EVENT_WITHHELD",
    "SPAN_NAME",
    "RetrievalTracer",
    "pseudonymize",
]

SPAN_NAME = "ragguard.retrieve"
EVENT_RELEASED = "ragguard.chunk.released"
EVENT_WITHHELD = "ragguard.chunk.withheld"
EVENT_AUDIT_FAILED = "ragguard.audit.failed"
EVENT_BUDGET_EXCEEDED = "ragguard.budget.exceeded"
EVENT_SCAN_BUDGET_EXHAUSTED = "ragguard.scan.budget_exhausted"

PSEUDONYM_LENGTH = 32
_WITHHELD = "(message not recorded: it is not a ragguard error; capture_content=True records it)"

logger = logging.getLogger("ragguard")

_NOT_RECORDING: AbstractContextManager[Span] = contextlib.nullcontext(trace.INVALID_SPAN)
"""What :meth:`RetrievalTracer.retrieval` returns when nothing can record (reusable)."""


def _version() -> str:
    return installed_version() or "0"  # "0": not installed (a source checkout)


def pseudonymize(subject_id: str, key: bytes) -> str:
    """The pseudonym exported for ``subject_id``: HMAC-SHA256 under ``key``, 32 hex digits.

    Stable for one key (so one user's retrievals still group together), unlinkable to
    the id without the key::

        pseudonymize("alice", b"trace-key")   # -> '5b0c...' (32 hex characters)
    """
    digest = hmac.new(key, subject_id.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()[:PSEUDONYM_LENGTH]


def _store_attributes(source: object) -> dict[str, str]:
    """What a store declares about itself for traces (``StoreCapabilities``:
    ``db_system_name`` and ``collection``); ``source`` is the capabilities or the store.
    Nothing is guessed."""
    if source is None:
        return {}
    capabilities = source if isinstance(source, StoreCapabilities) else store_capabilities(source)
    attributes: dict[str, str] = {}
    if capabilities.db_system_name:
        attributes["db.system.name"] = capabilities.db_system_name
    if capabilities.collection:
        attributes["db.collection.name"] = capabilities.collection
        attributes["gen_ai.data_source.id"] = capabilities.collection
    return attributes


class RetrievalTracer:
    """Records retrievals as spans; every call is guarded so tracing cannot fail a search.

    ::

        tracer = RetrievalTracer(provider, pseudonymize_key=b"trace-key")
        with tracer.retrieval(subject, k=5) as span:
            ...
            tracer.finished(span, retrieval)

    * ``capture_content`` — also record chunk text and the released documents list.
    * ``pseudonymize_key`` — export ``enduser.pseudo.id`` (:func:`pseudonymize`) instead
      of ``enduser.id``, for deployments that must not export user ids.
    * ``data_source`` — the store or its ``StoreCapabilities``: the declared
      ``db_system_name`` and ``collection`` become ``db.system.name``,
      ``db.collection.name`` and ``gen_ai.data_source.id``.
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        capture_content: bool = False,
        pseudonymize_key: bytes | str | None = None,
        data_source: object = None,
    ) -> None:
        self.capture_content = capture_content
        if isinstance(pseudonymize_key, str):
            pseudonymize_key = pseudonymize_key.encode("utf-8")
        if pseudonymize_key is not None and not pseudonymize_key:
            raise ValueError("pseudonymize_key must not be empty (pass None to export ids)")
        self._pseudonymize_key = pseudonymize_key
        self._static = {"gen_ai.operation.name": "retrieval", **_store_attributes(data_source)}
        self._provider = tracer_provider
        self._tracer = trace.get_tracer("ragguard", _version(), tracer_provider=tracer_provider)

    def recording(self) -> bool:
        """Whether a span can record anything: ``False`` while the provider is the
        OpenTelemetry API's default (no SDK configured, the global proxy) or a NoOp one.

        Checked on every search, so a provider configured later (``set_tracer_provider``)
        is used from the next search on; until then a search builds no span at all.
        """
        provider = self._provider
        if provider is None or isinstance(provider, trace.ProxyTracerProvider):
            provider = trace.get_tracer_provider()
        return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))

    def subject_attribute(self, subject_id: str) -> tuple[str, str]:
        """``("enduser.id", id)``, or ``("enduser.pseudo.id", pseudonym)`` when keyed."""
        if self._pseudonymize_key is None:
            return "enduser.id", subject_id
        return "enduser.pseudo.id", pseudonymize(subject_id, self._pseudonymize_key)

    def retrieval(self, subject: Subject | None, k: object) -> AbstractContextManager[Span]:
        """A span around one search; an exception sets ``error.type``, the status and an
        exception event, then propagates. Without a recording provider (see
        :meth:`recording`), a shared non-recording span and no context change."""
        if not self.recording():
            return _NOT_RECORDING
        return self._retrieval(subject, k)

    @contextlib.contextmanager
    def _retrieval(self, subject: Subject | None, k: object) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            kind=trace.SpanKind.INTERNAL,
            attributes=self._start_attributes(subject, k),
            record_exception=False,  # recorded below, without content unless opted in
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                self._safely(self._failed, span, exc)
                raise

    def _failed(self, span: Span, error: BaseException) -> None:
        """``error.type``, an ``exception`` event and the ERROR status, content-free.

        ragguard's own messages never hold query or chunk content; another exception's
        message (a bug, a store client) might, so by default the span gets its type
        only, and the stack trace stops at the raised exception (a chained cause's
        message is not repeated). ``capture_content=True`` records everything.
        """
        span.set_attribute("error.type", _error_type(error))
        if self.capture_content:
            message = str(error)
            span.record_exception(error, escaped=True)
        else:
            message = str(error) if isinstance(error, RagGuardError) else _WITHHELD
            frames = "".join(traceback.format_tb(error.__traceback__))
            stacktrace = (
                f"Traceback (most recent call last):\n{frames}{_error_type(error)}: {message}\n"
            )
            span.record_exception(
                error,
                attributes={"exception.message": message, "exception.stacktrace": stacktrace},
                escaped=True,
            )
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"))

    def planned(self, span: Span, plan: Plan) -> None:
        """Attach the plan to the search's span."""
        if not span.is_recording():
            return
        self._safely(
            span.set_attributes,
            {
                "ragguard.policy.version": plan.policy_version,
                "ragguard.plan.kind": plan.kind,
                "ragguard.plan.exact": plan.exact,
                "ragguard.plan.digest": plan.digest,
            },
        )

    def searching(self, span: Span, params: SearchParams) -> None:
        """Attach the search parameters (``ragguard.search.*``) to the search's span."""
        if span.is_recording():
            self._safely(span.set_attributes, params.span_attributes())

    def finished(self, span: Span, retrieval: Retrieval) -> None:
        """Counts and one event per considered chunk."""
        if span.is_recording():
            self._safely(self._finish, span, retrieval)

    def scanned(self, span: Span, scanned: int, max_scan: int, exhausted: bool) -> None:
        """Note the exact finish of an inexact search: points read, and whether it
        stopped at the ``max_scan`` budget."""
        if not span.is_recording():
            return
        self._safely(span.set_attribute, "ragguard.fetch.scanned", scanned)
        if exhausted:
            self._safely(
                span.add_event,
                EVENT_SCAN_BUDGET_EXHAUSTED,
                {"ragguard.fetch.scanned": scanned, "ragguard.scan.max": max_scan},
            )

    def audit_failed(self, span: Span, error: BaseException) -> None:
        """Note a non-fatal audit failure on the span."""
        self._safely(span.add_event, EVENT_AUDIT_FAILED, {"error.type": _error_type(error)})

    def budget_exceeded(self, span: Span, error: BaseException) -> None:
        """Note that the release budget stopped this search (nothing was released)."""
        attributes: dict[str, Any] = {"error.type": _error_type(error)}
        requested = getattr(error, "requested", None)
        if isinstance(requested, int):
            attributes["ragguard.budget.requested"] = requested
        self._safely(span.add_event, EVENT_BUDGET_EXCEEDED, attributes)

    # -- internals -------------------------------------------------------------------

    def _start_attributes(self, subject: Subject | None, k: object) -> dict[str, Any]:
        attributes: dict[str, Any] = dict(self._static)
        try:
            subject_id = getattr(subject, "id", None)
            if isinstance(subject_id, str):
                name, value = self.subject_attribute(subject_id)
                attributes[name] = value
            if isinstance(k, int) and not isinstance(k, bool):
                attributes["gen_ai.request.top_k"] = float(k)
        except Exception:  # tracing must never break a retrieval
            logger.debug("ragguard: could not build span attributes", exc_info=True)
        return attributes

    def _finish(self, span: Span, retrieval: Retrieval) -> None:
        unverified = sum(
            1
            for hit in retrieval.released
            if hit.provenance is not None and hit.provenance.status == "unsigned"
        )
        attributes: dict[str, Any] = {
            "ragguard.released.count": len(retrieval.released),
            "ragguard.withheld.count": len(retrieval.withheld),
            "ragguard.unverified.count": unverified,
            "ragguard.flagged.count": sum(1 for hit in retrieval.released if hit.flags),
            "ragguard.fetch.rounds": retrieval.rounds,
            "ragguard.fetch.truncated": retrieval.truncated,
            "ragguard.decision.id": retrieval.decision_id,
        }
        if retrieval.data_version is not None:
            attributes["ragguard.data_version"] = retrieval.data_version
        if self.capture_content:
            attributes["gen_ai.retrieval.documents"] = json.dumps(
                [{"id": hit.id, "score": float(hit.score)} for hit in retrieval.released]
            )
        span.set_attributes(attributes)
        for hit in retrieval.released:
            span.add_event(EVENT_RELEASED, self._event(hit, "ragguard.rule", hit.decision.rule))
        for hit in retrieval.withheld:
            span.add_event(EVENT_WITHHELD, self._event(hit, "ragguard.reason", hit.decision.reason))
        # The status stays UNSET on success (instrumentation libraries leave OK to the
        # application): an OK here would be final and hide a later audit failure.

    def _event(self, hit: Hit, key: str, value: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "ragguard.chunk.id": hit.id,
            "ragguard.chunk.score": float(hit.score),
            key: value or "",
        }
        if hit.provenance is not None:
            attributes["ragguard.provenance.status"] = hit.provenance.status
        if hit.flags:
            attributes["ragguard.screen.flags"] = list(hit.flags)
        if self.capture_content:
            attributes["ragguard.chunk.text"] = hit.text
        return attributes

    @staticmethod
    def _safely(function: Any, *args: Any) -> None:
        try:
            function(*args)
        except Exception:  # tracing must never break a retrieval
            logger.debug("ragguard: tracing call failed", exc_info=True)


def _error_type(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
