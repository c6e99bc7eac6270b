"""``ragguard serve``: run the gateway (HTTP API + MCP) with uvicorn, or MCP over stdio."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ragguard._cli import EXIT_OK, CliUsageError, add_command, positive_int

__all__ = ["CONFIG_ENV", "app_from_environment", "register"]

CONFIG_ENV = "RAGGUARD_GATEWAY_CONFIG"
"""Where worker processes find the configuration file (``--workers`` > 1)."""


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``ragguard`` command line."""
    parser = add_command(
        subparsers,
        "serve",
        _run,
        help="run the retrieval gateway (HTTP API and MCP server)",
        description=(
            "Serve guarded retrieval over HTTP (POST /v1/search, /v1/explain, GET /v1/plan, "
            "/healthz, /readyz) and MCP (streamable HTTP at [mcp] path, or --stdio). The "
            "caller is the subject of a verified bearer JWT ([identity] in the configuration "
            "file); with --stdio, the subject fixed in [mcp]. Needs pip install 'ragguard[gateway]'."
        ),
    )
    parser.add_argument("--config", type=Path, required=True, help="gateway configuration (TOML)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help='worker processes (more than 1 needs [store] kind = "replica", each worker '
        'serving its own read replica of published snapshots, or kind = "qdrant": an '
        "embedded shard opens in one process only)",
    )
    parser.add_argument(
        "--stdio", action="store_true", help="serve MCP over stdin/stdout for a local client"
    )


def app_from_environment() -> Any:
    """The app for a uvicorn worker: the configuration file named by ``CONFIG_ENV``."""
    from ragguard.gateway import create_app, load_config

    return create_app(load_config(os.environ[CONFIG_ENV]))


def _run(args: argparse.Namespace) -> int:
    from ragguard.gateway import load_config, require_gateway_dependencies

    require_gateway_dependencies()
    if not args.config.is_file():
        raise CliUsageError(f"--config {args.config}: no such file")
    config = load_config(args.config)
    if args.stdio:
        from ragguard.gateway._factory import build_service, stdio_identity
        from ragguard.gateway._mcp import build_mcp_server

        identity = stdio_identity(config)
        service = build_service(config)
        service.start()
        try:
            build_mcp_server(service, stdio_identity=identity).run("stdio")
        finally:
            service.close()
        return EXIT_OK
    import uvicorn

    if args.workers > 1:
        if config.store.kind == "edge":
            raise CliUsageError(
                '--workers > 1 needs [store] kind = "replica" (each worker serves its own '
                'read replica of snapshots the primary publishes) or kind = "qdrant": an '
                "embedded shard is opened by one process only"
            )
        os.environ[CONFIG_ENV] = str(args.config.resolve())
        uvicorn.run(
            "ragguard.gateway.cli:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            server_header=False,
        )
        return EXIT_OK
    from ragguard.gateway import create_app

    uvicorn.run(create_app(config), host=args.host, port=args.port, server_header=False)
    return EXIT_OK
