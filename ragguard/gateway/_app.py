"""The gateway's ASGI application (Starlette): HTTP API, health, OpenAPI, MCP.

Built by :func:`create_app` from a validated :class:`GatewayConfig` (and, for tests and
embedding, an existing guard). Every ``/v1`` route authenticates first, from the
``Authorization`` header only; nothing is searched for a request that fails it. Errors
are RFC 9457 ``application/problem+json`` and never quote the query, the filter values
or any chunk text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ragguard.exceptions import (
    AuditError,
    BudgetError,
    BudgetExceededError,
    IdentityError,
    QueryError,
    RagGuardError,
)
from ragguard.gateway._identity import Identity, KeysUnavailableError
from ragguard.gateway._service import GatewayService, hit_json

__all__ = [
    "ExplainRequest",
    "ExplainResponse",
    "PlanResponse",
    "SearchRequest",
    "SearchResponse",
    "build_starlette_app",
    "openapi_schema",
]

PROBLEM_TYPE_BASE = "urn:ragguard:problem:"
IDENTITY_FIELDS = frozenset(
    {"subject", "subject_id", "sub", "user", "user_id", "identity", "as_user", "on_behalf_of"}
)
"""Body keys that look like a caller naming who it is: dropped, never read."""


class SearchRequest(BaseModel):
    """``POST /v1/search``: text ``query`` (embedded by the gateway) or a ``vector``."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, description="Query text (embedded by the gateway).")
    vector: list[float] | None = Field(default=None, description="A query vector instead of text.")
    k: int = Field(default=5, ge=1, description="How many chunks to return (at most limits.max_k).")
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Narrowing filter: metadata equalities or filter IR JSON; never widens access.",
    )


class ProvenanceOut(BaseModel):
    """The provenance verdict of a released chunk."""

    status: str
    reason: str | None


class CitationOut(BaseModel):
    """Where a released chunk comes from and which policy line released it."""

    chunk_id: str
    source: Any
    rule: str | None


class HitOut(BaseModel):
    """One released chunk."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    rule: str | None
    provenance: ProvenanceOut | None
    flags: list[str]
    citation: CitationOut


class SearchResponse(BaseModel):
    """The chunks released to the caller, best first, and the audit decision id."""

    decision_id: str | None
    subject_id: str
    policy_version: str
    data_version: str | None = Field(
        default=None, description="The snapshot a read replica served (null otherwise)."
    )
    hits: list[HitOut]


class ExplainRequest(BaseModel):
    """``POST /v1/explain``: may the caller read this chunk, and why?"""

    model_config = ConfigDict(extra="forbid")

    chunk_id: str = Field(min_length=1, max_length=256)


class ExplainResponse(BaseModel):
    """The answer for one chunk; withheld reasons only if the operator allows it."""

    chunk_id: str
    visible: bool
    rule: str | None
    reason: str | None
    provenance: ProvenanceOut | None
    policy_version: str


class PlanResponse(BaseModel):
    """The caller's own plan: what the policy lets them read, as a filter."""

    subject_id: str
    kind: str
    exact: bool
    policy_version: str
    filter: Any


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str
    title: str
    status: int
    detail: str


class _BodyTooLarge(Exception):
    pass


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457)."""
    slug = title.lower().replace(" ", "-")
    return JSONResponse(
        {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def unauthorized(error: IdentityError | None) -> JSONResponse:
    """401 with ``WWW-Authenticate`` (RFC 6750): no error code when no token was sent."""
    if isinstance(error, KeysUnavailableError):
        return problem(
            503,
            "Identity unavailable",
            "the identity provider's keys cannot be fetched; nothing was searched",
            headers={"Retry-After": "5"},
        )
    reason = str(error) if error is not None else "no bearer token"
    if reason == "no bearer token":
        challenge = 'Bearer realm="ragguard"'
    else:
        # RFC 6750: error_description is a quoted string of printable ASCII without '"'
        # or '\\' (the reason may carry claim text from the token).
        description = "".join(c for c in reason if " " <= c <= "~" and c not in '"\\')[:200]
        challenge = (
            f'Bearer realm="ragguard", error="invalid_token", error_description="{description}"'
        )
    return problem(
        401,
        "Unauthorized",
        f"{reason}; nothing was searched",
        headers={"WWW-Authenticate": challenge},
    )


def error_response(error: Exception) -> JSONResponse:
    """The problem response for an error raised while serving (never quoting content)."""
    if isinstance(error, IdentityError):
        return unauthorized(error)
    if isinstance(error, BudgetExceededError):
        return problem(429, "Release budget exceeded", str(error), headers={"Retry-After": "60"})
    if isinstance(error, QueryError):
        return problem(400, "Bad request", str(error))
    if isinstance(error, BudgetError):
        return problem(503, "Budget unavailable", "the release budget could not be checked")
    if isinstance(error, AuditError):
        return problem(503, "Audit unavailable", "the audit record could not be written")
    if isinstance(error, RagGuardError):
        return problem(503, "Retrieval failed", f"{type(error).__name__}: nothing was released")
    return problem(500, "Internal error", "an unexpected error occurred; nothing was released")


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, refusing more than ``limit`` bytes (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _BodyTooLarge
    try:
        return json.loads(bytes(body))
    except ValueError:
        raise QueryError("the request body is not valid JSON") from None


def _validation_problem(exc: ValidationError) -> JSONResponse:
    places = ", ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'} ({error['type']})"
        for error in exc.errors(include_input=False, include_url=False)
    )
    return problem(422, "Invalid request", f"invalid fields: {places}")


Endpoint = Callable[[Request, Identity], Awaitable[Response]]


def build_starlette_app(
    service: GatewayService,
    *,
    mcp_app: Starlette | None = None,
    mcp_lifespan: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> Starlette:
    """The Starlette application over ``service`` (and the MCP sub-application)."""
    limits = service.config.limits

    def authenticated(surface: str, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            header_bytes = sum(len(k) + len(v) for k, v in request.headers.raw)
            if header_bytes > limits.max_header_bytes:
                service.refused(surface, IdentityError("request headers too large"))
                return unauthorized(IdentityError("request headers too large"))
            try:
                identity = await service.authenticate(
                    request.headers.get("authorization"), surface=surface
                )
            except IdentityError as exc:
                return unauthorized(exc)
            try:
                return await endpoint(request, identity)
            except _BodyTooLarge:
                return problem(
                    413, "Request too large", f"the body exceeds {limits.max_body_bytes} bytes"
                )
            except ValidationError as exc:
                return _validation_problem(exc)
            except Exception as exc:
                return error_response(exc)

        return handler

    async def search(request: Request, identity: Identity) -> Response:
        body = await read_json(request, limits.max_body_bytes)
        if isinstance(body, dict):
            body = {key: value for key, value in body.items() if key not in IDENTITY_FIELDS}
        payload = SearchRequest.model_validate(body)
        outcome = await service.search(
            identity,
            query=payload.query,
            vector=payload.vector,
            k=payload.k,
            filter=payload.filter,
            surface="http",
        )
        return JSONResponse(
            {
                "decision_id": outcome.decision_id,
                "subject_id": identity.subject.id,
                "policy_version": outcome.policy_version,
                "data_version": outcome.data_version,
                "hits": [hit_json(hit) for hit in outcome.hits],
            }
        )

    async def explain(request: Request, identity: Identity) -> Response:
        body = await read_json(request, limits.max_body_bytes)
        if isinstance(body, dict):
            body = {key: value for key, value in body.items() if key not in IDENTITY_FIELDS}
        payload = ExplainRequest.model_validate(body)
        return JSONResponse(await service.explain(identity, payload.chunk_id, surface="http"))

    async def plan(request: Request, identity: Identity) -> Response:
        return JSONResponse(service.plan(identity))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        import anyio.to_thread

        checks = await anyio.to_thread.run_sync(service.ready)
        ok = all(value == "ok" for value in checks.values())
        answer: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
        if service.replica is not None:
            # Read here, in the event loop's thread (which never searches): the version
            # the replica serves now, not the one a pool thread's last search saw.
            answer["data_version"] = service.data_version
            answer["replica"] = service.replica
        return JSONResponse(answer, status_code=200 if ok else 503)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_schema())

    routes: list[BaseRoute] = [
        Route("/v1/search", authenticated("http", search), methods=["POST"]),
        Route("/v1/explain", authenticated("http", explain), methods=["POST"]),
        Route("/v1/plan", authenticated("http", plan), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    if mcp_app is not None:
        routes.append(Mount("", app=mcp_app))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()  # the replica refresh timer, if any
        try:
            if mcp_lifespan is None:
                yield
            else:
                async with mcp_lifespan():
                    yield
        finally:
            service.close()  # flush the audit log, release the shard (if the app opened them)

    return Starlette(routes=routes, lifespan=lifespan)


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the HTTP API (checked into ``docs/gateway-openapi.json``)."""
    models: list[type[BaseModel]] = [
        SearchRequest,
        SearchResponse,
        ExplainRequest,
        ExplainResponse,
        PlanResponse,
        Problem,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = definition
        schemas[model.__name__] = schema

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def problems(*codes: int) -> dict[str, Any]:
        return {
            str(code): {
                "description": _PROBLEM_TEXT[code],
                "content": {"application/problem+json": {"schema": ref("Problem")}},
            }
            for code in codes
        }

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    def ok(name: str, description: str) -> dict[str, Any]:
        return {
            "200": {
                "description": description,
                "content": {"application/json": {"schema": ref(name)}},
            }
        }

    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ragguard gateway",
            "version": "1",
            "description": (
                "Guarded retrieval: the caller is the subject of the verified bearer JWT, "
                "never a field of the request."
            ),
        },
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "paths": {
            "/v1/search": {
                "post": {
                    "summary": "The k best chunks the caller may read",
                    "security": secured,
                    "requestBody": body("SearchRequest"),
                    "responses": {
                        **ok("SearchResponse", "Released chunks, best first"),
                        **problems(400, 401, 413, 422, 429, 503),
                    },
                }
            },
            "/v1/explain": {
                "post": {
                    "summary": "Whether the caller may read one chunk, and why",
                    "security": secured,
                    "requestBody": body("ExplainRequest"),
                    "responses": {
                        **ok("ExplainResponse", "The decision for this chunk"),
                        **problems(400, 401, 413, 422, 503),
                    },
                }
            },
            "/v1/plan": {
                "get": {
                    "summary": "The caller's own plan",
                    "security": secured,
                    "responses": {**ok("PlanResponse", "The plan"), **problems(401, 503)},
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "up"}}}
            },
            "/readyz": {
                "get": {
                    "summary": (
                        "Readiness: the store answers and identity keys can be had; "
                        "a read replica also reports data_version and its slot"
                    ),
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
    }


_PROBLEM_TEXT = {
    400: "Bad request (k, query, vector or filter unusable)",
    401: "Missing or invalid bearer token; nothing was searched",
    413: "Request body too large",
    422: "Request fields invalid",
    429: "Release budget exceeded",
    503: "Store, audit, budget or identity keys unavailable; nothing was released",
}
