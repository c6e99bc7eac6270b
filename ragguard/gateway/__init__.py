"""The retrieval gateway: ``ragguard serve``, an HTTP API and an MCP tool server.

Install with ``pip install 'ragguard[gateway]'``. The caller's subject comes only from a
verified bearer JWT (or, for a stdio MCP server, from the configuration), never from a
request body, a query string or a tool argument::

    from ragguard.gateway import create_app, load_config

    app = create_app(load_config("gateway.toml"))     # an ASGI app: run it with uvicorn

See ``docs/gateway.md`` for the configuration keys and deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragguard.exceptions import MissingDependencyError

if TYPE_CHECKING:
    from ragguard.gateway._config import GatewayConfig, load_config, parse_config
    from ragguard.gateway._factory import build_guard, build_service, create_app
    from ragguard.gateway._identity import Identity, JwtVerifier

__all__ = [
    "GatewayConfig",
    "Identity",
    "JwtVerifier",
    "build_guard",
    "build_service",
    "create_app",
    "load_config",
    "parse_config",
]

# The configuration model (pydantic) is imported when first named, so that `ragguard
# --help`, which imports this package for its command, does not pay for it.
_CONFIG = {"GatewayConfig", "load_config", "parse_config"}

_LAZY = {
    "create_app": "ragguard.gateway._factory",
    "build_guard": "ragguard.gateway._factory",
    "build_service": "ragguard.gateway._factory",
    "Identity": "ragguard.gateway._identity",
    "JwtVerifier": "ragguard.gateway._identity",
}


def require_gateway_dependencies() -> None:
    """Raise :class:`MissingDependencyError` unless the ``gateway`` extra is installed."""
    import importlib.util

    for module, package in (
        ("starlette", "starlette"),
        ("uvicorn", "uvicorn"),
        ("jwt", "pyjwt[crypto]"),
        ("cryptography", "cryptography"),
        ("mcp", "mcp"),
    ):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("ragguard[gateway]", f"the ragguard gateway ({package})")


def __getattr__(name: str) -> Any:
    # The web stack is imported only when used: `import ragguard.gateway` (for its
    # configuration model) needs neither starlette nor PyJWT.
    import importlib

    if name in _CONFIG:
        value = getattr(importlib.import_module("ragguard.gateway._config"), name)
        globals()[name] = value  # later look-ups find it without calling __getattr__
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragguard.gateway' has no attribute {name!r}")
    require_gateway_dependencies()
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
