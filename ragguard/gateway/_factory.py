"""Building the gateway from its configuration: the guard, the embedder, the app."""

from __future__ import annotations

from typing import Any

import ragguard as rg
from ragguard.exceptions import ConfigError
from ragguard.gateway._config import GatewayConfig, secret_from_env
from ragguard.gateway._identity import Identity, JwtVerifier
from ragguard.gateway._service import GatewayService

__all__ = ["build_embedder", "build_guard", "build_service", "create_app", "stdio_identity"]


def build_guard(config: GatewayConfig) -> rg.Guard:
    """The :class:`~ragguard.Guard` the configuration describes (opens the store)."""
    from ragguard._cli import CliUsageError, load_policy

    try:
        policy = load_policy(config.policy.model, config.policy.policy)
    except CliUsageError as exc:
        raise ConfigError(f"[policy]: {exc}") from None
    # The budget first: a missing secret fails before the store is opened.
    budget = None
    if config.budget is not None:
        backend: rg.BudgetBackend | None = None
        if config.budget.backend == "redis":
            assert config.budget.redis_url_env is not None
            url = secret_from_env(config.budget.redis_url_env, "[budget] redis_url_env")
            try:
                backend = rg.RedisBudgetBackend.from_url(
                    url,
                    prefix=config.budget.redis_prefix,
                    timeout_seconds=config.budget.redis_timeout_s,
                )
            except ImportError as exc:
                raise ConfigError(f'[budget] backend = "redis": {exc}') from None
        budget = rg.ReleaseBudget(
            config.budget.max_chunks,
            config.budget.window_s,
            min_score=config.budget.min_score,
            backend=backend,
        )
    store: rg.Store
    if config.store.kind == "edge":
        assert config.store.path is not None
        store = rg.EdgeStore.open(config.store.path)
    elif config.store.kind == "replica":
        from ragguard.gateway._replica import open_worker_replica

        store, _slot = open_worker_replica(config.store)
    else:
        from qdrant_client import QdrantClient

        api_key = (
            secret_from_env(config.store.api_key_env, "[store] api_key_env")
            if config.store.api_key_env
            else None
        )
        assert config.store.collection is not None
        store = rg.QdrantStore(
            client=QdrantClient(
                url=config.store.url, api_key=api_key, timeout=int(config.store.timeout_s)
            ),
            collection=config.store.collection,
        )
    provenance = None
    if config.provenance.mode != "off":
        keys = {
            key_id: secret_from_env(variable, f"[provenance] key {key_id!r}")
            for key_id, variable in config.provenance.keys_env.items()
        }
        provenance = rg.ProvenanceCheck(keys, mode=config.provenance.mode)
    audit = None
    if config.audit.path is not None:
        key = (
            secret_from_env(config.audit.key_env, "[audit] key_env")
            if config.audit.key_env
            else None
        )
        audit = rg.JsonlAuditLog(config.audit.path, key, fsync=config.audit.fsync)
    screens: list[rg.Screen] = []
    if config.screens.prompt_injection != "off":
        screens.append(rg.PromptInjectionScreen(action=config.screens.prompt_injection))
    if config.screens.secrets != "off":
        screens.append(rg.SecretsScreen(action=config.screens.secrets))
    return rg.Guard(
        policy,
        store,
        action=config.policy.action,
        provenance=provenance,
        audit=audit,
        audit_required=config.audit.required and audit is not None,
        capture_content=config.tracing.capture_content,
        max_k=config.limits.max_k,
        screens=screens,
        budget=budget,
    )


def build_embedder(config: GatewayConfig) -> Any:
    """The LangChain-compatible embedder named by ``[embedder]``."""
    from ragguard._cli import CliUsageError
    from ragguard.provenance.cli import load_embeddings

    try:
        return load_embeddings(config.embedder.class_, dict(config.embedder.options))
    except CliUsageError as exc:
        raise ConfigError(f"[embedder]: {exc}") from None


def build_service(
    config: GatewayConfig,
    *,
    guard: rg.Guard | None = None,
    embedder: Any = None,
    tracer_provider: Any = None,
) -> GatewayService:
    """The transport-independent gateway core."""
    verifier = JwtVerifier(config.identity) if config.identity is not None else None
    return GatewayService(
        config,
        guard if guard is not None else build_guard(config),
        embedder if embedder is not None else build_embedder(config),
        verifier,
        tracer_provider=tracer_provider,
        owns_guard=guard is None,
    )


def create_app(
    config: GatewayConfig,
    *,
    guard: rg.Guard | None = None,
    embedder: Any = None,
    tracer_provider: Any = None,
) -> Any:
    """The gateway's ASGI application (Starlette), built from a validated configuration.

    ``guard`` and ``embedder`` replace what ``config`` would build (tests, embedding the
    gateway in a program that already has them); the guard is copied, not changed::

        app = create_app(load_config("gateway.toml"))
        uvicorn.run(app, host="127.0.0.1", port=8080)
    """
    from ragguard.gateway._app import build_starlette_app

    if config.identity is None:
        raise ConfigError("[identity] is required to serve HTTP (bearer JWT verification)")
    service = build_service(config, guard=guard, embedder=embedder, tracer_provider=tracer_provider)
    if not config.mcp.enabled:
        return build_starlette_app(service)
    from ragguard.gateway._mcp import mcp_http_app

    mcp_app, lifespan = mcp_http_app(service)
    return build_starlette_app(service, mcp_app=mcp_app, mcp_lifespan=lifespan)


def stdio_identity(config: GatewayConfig) -> Identity:
    """The fixed identity of a stdio MCP server (``[mcp] stdio_subject_id``)."""
    if config.mcp.stdio_subject_id is None:
        raise ConfigError("stdio MCP needs [mcp] stdio_subject_id (the fixed subject)")
    try:
        subject = rg.Subject(
            id=config.mcp.stdio_subject_id, attributes=dict(config.mcp.stdio_subject_attributes)
        )
    except rg.SubjectError as exc:
        raise ConfigError(f"[mcp] stdio subject: {exc}") from None
    return Identity(subject=subject, client_id="stdio", expires_at=None, issuer="config")
