"""The gateway's configuration file: one TOML file, validated with pydantic.

Every key is documented in ``docs/gateway.md``; secrets are never written in the file,
only the *name* of the environment variable that holds them (``key_env = "..."``).
Unknown keys are errors (a typo must not silently switch a protection off). Relative
paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ragguard.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "AuditSettings",
    "BudgetSettings",
    "EmbedderSettings",
    "ExplainSettings",
    "GatewayConfig",
    "IdentitySettings",
    "LimitsSettings",
    "McpSettings",
    "PolicySettings",
    "ProvenanceSettings",
    "ScreenSettings",
    "StaticKey",
    "StoreSettings",
    "SubjectMapping",
    "TracingSettings",
    "load_config",
    "secret_from_env",
]

MAX_LEEWAY_SECONDS = 300
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Asymmetric algorithms only: no ``none``, no HMAC (no HS/RS key confusion)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicySettings(_Section):
    """``[policy]``: the Casbin model and policy files, and the action searched for."""

    model: Path
    policy: Path
    action: str = "read"


class StoreSettings(_Section):
    """``[store]``: an embedded shard (``kind = "edge"``), a read replica of published
    EdgeStore snapshots per worker process (``kind = "replica"``), or a Qdrant server."""

    kind: Literal["edge", "replica", "qdrant"] = "edge"
    path: Path | None = None
    snapshots: Path | None = None
    replicas: Path | None = None
    refresh_s: float = Field(default=60.0, ge=0, le=86_400)
    max_replicas: int = Field(default=64, ge=1, le=1024)
    url: str | None = None
    collection: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _complete(self) -> StoreSettings:
        if self.kind == "edge" and self.path is None:
            raise ValueError('kind = "edge" needs path (the shard directory)')
        if self.kind == "replica" and (self.snapshots is None or self.replicas is None):
            raise ValueError(
                'kind = "replica" needs snapshots (where the primary publishes) and '
                "replicas (the directory under which each worker keeps its own copy)"
            )
        if self.kind == "qdrant" and (self.url is None or self.collection is None):
            raise ValueError('kind = "qdrant" needs url and collection')
        return self


class EmbedderSettings(_Section):
    """``[embedder]``: any LangChain ``Embeddings`` by import path, and its arguments."""

    class_: str = Field(default="ragguard.testing:HashEmbedder", alias="class")
    options: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ProvenanceSettings(_Section):
    """``[provenance]``: verification mode and the keys, each named by its variable."""

    mode: Literal["off", "verify", "require"] = "off"
    keys_env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys(self) -> ProvenanceSettings:
        if self.mode != "off" and not self.keys_env:
            raise ValueError(f'mode = "{self.mode}" needs keys_env = {{key_id = "ENV_VAR"}}')
        return self


class AuditSettings(_Section):
    """``[audit]``: the hash-chained JSONL audit log."""

    path: Path | None = None
    key_env: str | None = None
    required: bool = True
    fsync: Literal["batch", "always", "never"] = "batch"


class ScreenSettings(_Section):
    """``[screens]``: content screens on every released chunk."""

    prompt_injection: Literal["off", "flag", "deny"] = "flag"
    secrets: Literal["off", "flag", "deny"] = "deny"


class BudgetSettings(_Section):
    """``[budget]``: per-subject release budget, minimum similarity, and where the
    counts live: this process (``backend = "memory"``) or a Redis server shared by
    every worker (``backend = "redis"``, its URL read from ``redis_url_env``)."""

    max_chunks: int | None = Field(default=None, ge=1)
    window_s: float = Field(default=3600.0, gt=0)
    min_score: float | None = None
    backend: Literal["memory", "redis"] = "memory"
    redis_url_env: str | None = None
    redis_prefix: str = Field(default="ragguard:budget:", min_length=1)
    redis_timeout_s: float = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _redis(self) -> BudgetSettings:
        if self.backend == "redis" and not self.redis_url_env:
            raise ValueError('backend = "redis" needs redis_url_env (the variable holding the URL)')
        return self


class SubjectMapping(_Section):
    """``[identity.subject]``: how verified claims become a ``Subject``.

    ``id_claim`` names the claim that becomes ``Subject.id``; ``attributes`` maps each
    subject attribute to the claim it is read from (a dotted path reads nested claims:
    ``"realm_access.roles"``). ``required_attributes`` must be present in every token.
    """

    id_claim: str = "sub"
    attributes: dict[str, str] = Field(default_factory=dict)
    required_attributes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known(self) -> SubjectMapping:
        if "id" in self.attributes:
            raise ValueError("'id' is Subject.id: set id_claim instead of attributes.id")
        unknown = set(self.required_attributes) - set(self.attributes)
        if unknown:
            raise ValueError(f"required_attributes not mapped in attributes: {sorted(unknown)}")
        return self


class StaticKey(_Section):
    """One public key in ``[[identity.keys]]``: a PEM file or a variable holding PEM."""

    kid: str
    pem_file: Path | None = None
    pem_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> StaticKey:
        if (self.pem_file is None) == (self.pem_env is None):
            raise ValueError("a key needs exactly one of pem_file or pem_env")
        return self


class IdentitySettings(_Section):
    """``[identity]``: bearer JWT verification (RFC 7519 / 8725)."""

    issuer: str
    audience: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwks_url: str | None = None
    keys: list[StaticKey] = Field(default_factory=list)
    jwks_cache_s: float = Field(default=300.0, ge=0, le=86_400)
    jwks_timeout_s: float = Field(default=5.0, gt=0, le=60)
    leeway_s: float = Field(default=30.0, ge=0, le=MAX_LEEWAY_SECONDS)
    required_claims: list[str] = Field(default_factory=lambda: ["exp", "iat", "sub"])
    max_token_bytes: int = Field(default=8192, ge=256, le=65_536)
    client_id_claims: list[str] = Field(default_factory=lambda: ["azp", "client_id"])
    subject: SubjectMapping = Field(default_factory=SubjectMapping)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one algorithm")
        bad = [alg for alg in value if alg not in ALLOWED_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithms {bad} are not allowed: only asymmetric algorithms "
                f"{sorted(ALLOWED_ALGORITHMS)} (no 'none', no HMAC)"
            )
        return value

    @model_validator(mode="after")
    def _key_source(self) -> IdentitySettings:
        if (self.jwks_url is None) == (not self.keys):
            raise ValueError("set exactly one of jwks_url or [[identity.keys]]")
        if "exp" not in self.required_claims:
            raise ValueError(
                "required_claims must include 'exp': tokens without expiry are refused"
            )
        return self


class LimitsSettings(_Section):
    """``[limits]``: bounds on what one request may ask for."""

    max_body_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024)
    max_k: int = Field(default=50, ge=1, le=1000)
    max_query_chars: int = Field(default=4096, ge=1, le=1_000_000)
    max_filter_bytes: int = Field(default=4096, ge=2, le=1_000_000)
    max_filter_atoms: int = Field(default=64, ge=1, le=10_000)
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)


class ExplainSettings(_Section):
    """``[explain]``: what ``/v1/explain`` tells a caller about a chunk it cannot read."""

    reveal_withheld_reasons: bool = False


class McpSettings(_Section):
    """``[mcp]``: the MCP tool server (streamable HTTP in the gateway, or stdio)."""

    enabled: bool = True
    path: str = "/mcp"
    stdio_subject_id: str | None = None
    stdio_subject_attributes: dict[str, Any] = Field(default_factory=dict)
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("/v1"):
            raise ValueError("path must start with '/' and not be under /v1")
        return value


class TracingSettings(_Section):
    """``[tracing]``: OpenTelemetry (the global provider if the app installed one)."""

    capture_content: bool = False


class GatewayConfig(_Section):
    """The whole gateway configuration (one TOML file)."""

    policy: PolicySettings
    store: StoreSettings
    identity: IdentitySettings | None = None
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    provenance: ProvenanceSettings = Field(default_factory=ProvenanceSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    screens: ScreenSettings = Field(default_factory=ScreenSettings)
    budget: BudgetSettings | None = None
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    explain: ExplainSettings = Field(default_factory=ExplainSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    def resolved(self, base: Path) -> GatewayConfig:
        """This configuration with every relative path made relative to ``base``."""

        def fix(path: Path | None) -> Path | None:
            if path is None:
                return None
            return path if path.is_absolute() else base / path

        policy = self.policy.model_copy(
            update={"model": fix(self.policy.model), "policy": fix(self.policy.policy)}
        )
        store = self.store.model_copy(
            update={
                "path": fix(self.store.path),
                "snapshots": fix(self.store.snapshots),
                "replicas": fix(self.store.replicas),
            }
        )
        audit = self.audit.model_copy(update={"path": fix(self.audit.path)})
        identity = self.identity
        if identity is not None:
            keys = [k.model_copy(update={"pem_file": fix(k.pem_file)}) for k in identity.keys]
            identity = identity.model_copy(update={"keys": keys})
        return self.model_copy(
            update={"policy": policy, "store": store, "audit": audit, "identity": identity}
        )


def load_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and validate a gateway configuration file (TOML).

    Raises :class:`~ragguard.exceptions.ConfigError` naming the file and every key
    that is wrong.
    """
    where = Path(path)
    try:
        raw = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read the configuration: {exc.strerror or exc}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(where)).resolved(where.resolve().parent)


def parse_config(raw: Mapping[str, Any], *, source: str = "<config>") -> GatewayConfig:
    """Validate an already-parsed configuration mapping (paths are left as given)."""
    try:
        return GatewayConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"{source}: {problems}") from None


def secret_from_env(variable: str, purpose: str) -> str:
    """The value of ``variable``; :class:`ConfigError` (naming it, not its value) if unset."""
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{purpose}: environment variable {variable} is not set or empty")
    return value
