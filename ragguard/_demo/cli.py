"""The ``ragguard demo`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ragguard._cli import add_command

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``ragguard`` command line."""
    parser = add_command(
        subparsers,
        "demo",
        _run,
        help="run three users' questions against one guarded store and show what each gets",
        description=(
            "Build an embedded Qdrant shard from the shipped multi-tenant corpus and run "
            "the same questions as three users: what each gets, what was withheld and why, "
            "and what an unguarded query would have leaked. No network, no model download."
        ),
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="keep the demo shard at this path (default: a temporary directory)",
    )


def _run(args: argparse.Namespace) -> int:
    from ragguard._demo.run import run_demo

    return run_demo(store_path=args.store)
