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
from ragguard.gateway._config import GatewayConfig, load_config, parse_config

if TYPE_CHECKING:
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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragguard.gateway' has no attribute {name!r}")
    require_gateway_dependencies()
    import importlib

    return getattr(importlib.import_module(module), name)
