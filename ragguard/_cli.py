"""The ``ragguard`` command line: the entry point and everything its commands share.

Each feature registers its own subcommands (``register(subparsers)`` in its module) and
takes its shared parts from here: the exit codes, :class:`CliUsageError`, the JSON,
subject and policy arguments, and :func:`add_command`. A handler returns an exit code
or raises; :func:`main` maps what it raises, in one place:

* :class:`CliUsageError` (something the user typed is unusable) → exit 2, ``EXIT_USAGE``;
* :class:`~ragguard.RagGuardError` (the work itself failed) → exit 1, ``EXIT_FAILED``;
* ``KeyboardInterrupt`` → exit 130.

argparse's own errors (an unknown option, a bad ``choices`` value, a non-integer
``--dim``) also exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragguard.exceptions import PolicyLoadError, RagGuardError, SubjectError

if TYPE_CHECKING:
    from ragguard.policy import Policy
    from ragguard.subject import Subject

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliUsageError",
    "add_command",
    "add_policy_arguments",
    "build_parser",
    "json_argument",
    "load_policy",
    "main",
    "positive_int",
    "subject_argument",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SUBJECT_FORMAT = '{"id": "alice", "attributes": {"dept": "eng", "clearance": 2}}'

# Modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "ragguard._demo.cli",
    "ragguard.policy.cli",
    "ragguard.provenance.cli",
    "ragguard.audit.cli",
    "ragguard.gateway.cli",
)

Handler = Callable[[argparse.Namespace], int]


class CliUsageError(Exception):
    """Something the user typed is unusable: :func:`main` prints it and exits 2."""


def add_command(
    subparsers: Any, name: str, handler: Handler | None, **kwargs: Any
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose ``handler(args)`` runs it (``None``: a command group).

    The parser's ``prog`` (e.g. ``ragguard audit verify``) prefixes its error messages.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(handler=handler, command_prog=parser.prog, command_parser=parser)
    return parser


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--policy`` (Casbin files)."""
    parser.add_argument("--model", required=True, type=Path, help="Casbin model.conf")
    parser.add_argument("--policy", required=True, type=Path, help="Casbin policy.csv")


def load_policy(model: Path, policy: Path) -> Policy:
    """Load the Casbin pair; unreadable paths and unloadable files are usage errors."""
    from ragguard.policy import Policy

    for label, path in (("--model", model), ("--policy", policy)):
        if not path.is_file():
            raise CliUsageError(f"{label} {path}: no such file")
    try:
        return Policy.from_casbin(model, policy)
    except PolicyLoadError as exc:
        raise CliUsageError(f"cannot load the policy: {exc}") from None


def json_argument(text: str, option: str) -> Any:
    """Parse a JSON command-line value, or the file named by ``@path``."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliUsageError(f"{option} {text}: {exc.strerror or exc}") from None
    try:
        return json.loads(source)
    except ValueError as exc:
        raise CliUsageError(f"{option} is not valid JSON: {exc}") from None


def subject_argument(text: str, option: str = "--subject") -> Subject:
    """A :class:`~ragguard.Subject` from ``{"id": ..., "attributes": {...}}`` JSON."""
    from ragguard.subject import Subject

    value = json_argument(text, option)
    if not isinstance(value, dict) or "id" not in value:
        raise CliUsageError(f"{option} must be a JSON object like {SUBJECT_FORMAT}")
    unknown = set(value) - {"id", "attributes"}
    if unknown:
        raise CliUsageError(f"{option} has unknown keys {sorted(unknown)}: use id and attributes")
    try:
        return Subject(id=value["id"], attributes=value.get("attributes") or {})
    except SubjectError as exc:
        raise CliUsageError(f"{option}: {exc}") from None


def _version() -> str:
    from ragguard import __version__

    return __version__


class _VersionAction(argparse.Action):
    """``--version``: reads the installed version only when asked (``--help`` does not)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show program's version number and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"ragguard {_version()}")  # on stdout, as argparse's own "version" action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="ragguard",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    parser.description = _describe(subparsers)
    parser.set_defaults(handler=None, command_prog="ragguard", command_parser=parser)
    return parser


def _describe(subparsers: Any) -> str:
    """The top-level description: one line per command, nested ones included."""
    lines = ["Per-user access control for RAG retrieval. Commands:", ""]
    for action in subparsers._choices_actions:
        lines.append(f"  {action.dest:<16}{action.help or ''}")
        child = subparsers.choices[action.dest]
        for nested in child._subparsers._group_actions if child._subparsers else ():
            for sub in nested._choices_actions:
                lines.append(f"    {sub.dest:<14}{sub.help or ''}")
    lines += ["", "Exit codes: 0 ok, 1 a check or the work failed, 2 usage error."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ragguard`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler | None = args.handler
    if handler is None:
        args.command_parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except CliUsageError as exc:
        print(f"{args.command_prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RagGuardError as exc:
        print(f"{args.command_prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover - python -m ragguard._cli
    raise SystemExit(main())
