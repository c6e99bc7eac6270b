"""The ``ragguard audit`` subcommands: ``verify``, ``export`` and ``replay``.

::

    ragguard audit verify logs/audit.jsonl                 # the whole rotated chain
    ragguard audit export logs/audit.jsonl --format ocsf --since 2025-03-01 --subject alice
    ragguard audit replay logs/audit.jsonl --model model.conf --policy policy-v2.csv \\
        --store data/shard --subjects subjects.json

The HMAC key of a keyed log is read from the environment variable ``RAGGUARD_AUDIT_KEY``
(or the one named by ``--key-env``) or from ``--key-file``, never from the command line.
Exit codes (see :mod:`ragguard._cli`): 0 ok, 1 the check failed (broken chain; with ``--fail-on-change``, a replay
that changes decisions), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ragguard._cli import (
    EXIT_FAILED,
    EXIT_OK,
    CliUsageError,
    add_command,
    add_policy_arguments,
    json_argument,
    load_policy,
    subject_argument,
)

# The audit modules are imported by the command that runs, not by `ragguard --help`
# (records, export and replay cost ~100 ms to import).
if TYPE_CHECKING:
    from ragguard.audit._verify import AuditEntry, AuditVerification
    from ragguard.subject import Subject

__all__ = ["DEFAULT_KEY_ENV", "register"]

DEFAULT_KEY_ENV = "RAGGUARD_AUDIT_KEY"


def register(subparsers: Any) -> None:
    """Add ``audit verify|export|replay`` to the ``ragguard`` command line."""
    audit = add_command(
        subparsers,
        "audit",
        None,
        help="verify, export or replay the audit trail",
        description="Work with ragguard's hash-chained audit log.",
    )
    commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")

    verify = add_command(
        commands,
        "verify",
        _run_verify,
        help="check the hash chain; name the first broken record",
        description=(
            "Verify the hash chain of one or more audit files (an active log path stands "
            "for all its rotated files). Exit 0 when intact, 1 at the first broken record."
        ),
    )
    verify.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _add_key_arguments(verify)
    verify.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        help="a checkpoint of the log head: also detects records cut from the end",
    )
    verify.add_argument(
        "--allow-partial-start",
        action="store_true",
        help="accept a chain whose oldest files were removed by retention",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")

    export = add_command(
        commands,
        "export",
        _run_export,
        help="write records as JSONL, CSV or OCSF events",
        description=(
            "Export audit records, optionally filtered by time and subject: jsonl (records "
            "as logged), csv (one row per considered chunk) or ocsf (Datastore Activity "
            "events, one JSON object per line)."
        ),
    )
    export.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    export.add_argument("--format", required=True, choices=("jsonl", "csv", "ocsf"))
    _add_filter_arguments(export)
    export.add_argument("--subject", metavar="ID", help="only this subject id")
    export.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    export.add_argument(
        "--verify", action="store_true", help="verify the chain first; export nothing if broken"
    )
    _add_key_arguments(export)

    replay = add_command(
        commands,
        "replay",
        _run_replay,
        help="re-decide recorded retrievals under another policy",
        description=(
            "Re-decide every chunk the recorded retrievals considered under the given "
            "policy, reading the chunks' metadata from the store by id, and report which "
            "would now be released or withheld. Subject attributes are not in the log: "
            "supply them with --subject/--subjects (checked against the recorded digest)."
        ),
    )
    replay.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_policy_arguments(replay)
    replay.add_argument("--store", required=True, type=Path, help="EdgeStore shard directory")
    replay.add_argument(
        "--subject",
        action="append",
        default=[],
        metavar="JSON",
        help='a subject to replay with, {"id": ..., "attributes": {...}} (repeatable)',
    )
    replay.add_argument(
        "--subjects",
        type=Path,
        metavar="FILE",
        help='JSON file: a list of subjects, or {"<id>": {<attributes>}, ...}',
    )
    _add_filter_arguments(replay)
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.add_argument(
        "--fail-on-change", action="store_true", help="exit 1 when any decision would change"
    )


def _add_key_arguments(parser: argparse.ArgumentParser) -> None:
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--key-env",
        metavar="VAR",
        help=f"environment variable holding the HMAC key (default: {DEFAULT_KEY_ENV}, if set)",
    )
    keys.add_argument("--key-file", type=Path, metavar="FILE", help="file holding the HMAC key")


def _add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="TIME", help="records at or after (ISO 8601, UTC)")
    parser.add_argument("--until", metavar="TIME", help="records before (ISO 8601, UTC)")


def _key(args: argparse.Namespace) -> bytes | None:
    key_file: Path | None = args.key_file
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliUsageError(f"--key-file {key_file}: {exc.strerror or exc}") from None
        if not text:
            raise CliUsageError(f"--key-file {key_file} is empty")
        return text.encode("utf-8")
    name = args.key_env or DEFAULT_KEY_ENV
    value = os.environ.get(name, "")
    if not value:
        if args.key_env:
            raise CliUsageError(f"--key-env {name}: the environment variable is not set")
        return None
    return value.encode("utf-8")


def _entries(args: argparse.Namespace, subject: str | None = None) -> Iterator[AuditEntry]:
    from ragguard.audit._export import parse_time, select_records
    from ragguard.audit._verify import read_audit_records

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise CliUsageError(str(exc)) from None
    return select_records(read_audit_records(args.paths), since=since, until=until, subject=subject)


def _verification_json(result: AuditVerification) -> dict[str, Any]:
    error = result.error
    return {
        "ok": result.ok,
        "records": result.records,
        "files": [str(f) for f in result.files],
        "keyed": result.keyed,
        "head": f"{result.head[0]}:{result.head[1]}" if result.head else None,
        "error": None
        if error is None
        else {"file": str(error.file), "line": error.line, "reason": error.reason},
    }


def _run_verify(args: argparse.Namespace) -> int:
    from ragguard.audit._verify import verify_audit_log

    try:
        result = verify_audit_log(
            args.paths,
            key=_key(args),
            expect_head=args.expect_head,
            allow_partial_start=args.allow_partial_start,
        )
    except ValueError as exc:  # a malformed --expect-head
        raise CliUsageError(str(exc)) from None
    if args.json:
        print(json.dumps(_verification_json(result), indent=2))
    else:
        print(result.summary(), file=sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _run_export(args: argparse.Namespace) -> int:
    from ragguard.audit._export import export_records
    from ragguard.audit._verify import verify_audit_log

    key = _key(args)
    entries = _entries(args, subject=args.subject)
    if args.verify:
        result = verify_audit_log(args.paths, key=key)
        if not result.ok:
            print(f"ragguard audit export: not exported: {result.summary()}", file=sys.stderr)
            return EXIT_FAILED
    try:
        with _output(args.output) as out:
            count = export_records(entries, out, args.format)
    except BrokenPipeError:
        # The reader went away (``| head``): not an error. Point stdout at devnull so the
        # interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        raise CliUsageError(f"--output {args.output}: {exc}") from None
    if args.output is not None:
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    return EXIT_OK


def _subjects(args: argparse.Namespace) -> dict[str, Subject]:
    subjects: dict[str, Subject] = {}
    if args.subjects is not None:
        data = json_argument("@" + str(args.subjects), "--subjects")
        if isinstance(data, dict):
            items = [{"id": key, "attributes": value} for key, value in data.items()]
        elif isinstance(data, list):
            items = data
        else:
            raise CliUsageError("--subjects must hold a JSON list or object")
        for item in items:
            subject = subject_argument(json.dumps(item), "--subjects")
            subjects[subject.id] = subject
    for text in args.subject:
        subject = subject_argument(text)
        subjects[subject.id] = subject
    return subjects


def _run_replay(args: argparse.Namespace) -> int:
    policy = load_policy(args.model, args.policy)
    subjects = _subjects(args)
    entries = _entries(args)
    if not args.store.is_dir():
        raise CliUsageError(f"--store {args.store}: no such store directory")
    from ragguard.audit._replay import replay_audit_log
    from ragguard.stores.edge import EdgeStore

    store = EdgeStore.open(str(args.store))
    try:
        report = replay_audit_log(entries, policy, store, subjects)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.summary_lines()))
    if args.fail_on_change and report.changes:
        return EXIT_FAILED
    return EXIT_OK
