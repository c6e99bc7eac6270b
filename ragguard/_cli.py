"""The ``ragguard`` command line.

Each feature registers its own subcommands (``register(subparsers)`` in its module), so
this file only assembles them. Exit codes: 0 ok, 1 a check failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ragguard.exceptions import RagGuardError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "ragguard._demo.cli",
    "ragguard.policy.cli",
    "ragguard.provenance.cli",
    "ragguard.audit.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="ragguard",
        description="Per-user access control for RAG retrieval: demo, plans, audit.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragguard`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except RagGuardError as exc:
        print(f"ragguard: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover - python -m ragguard._cli
    raise SystemExit(main())
