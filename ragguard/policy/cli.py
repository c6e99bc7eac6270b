"""The ``ragguard plan`` and ``ragguard explain`` subcommands (for writing policies).

::

    ragguard plan --model model.conf --policy policy.csv \\
        --subject '{"id": "alice", "attributes": {"tenant": "acme", "clearance": 2}}'
    ragguard explain --model model.conf --policy policy.csv \\
        --subject '{"id": "alice", "attributes": {"clearance": 2}}' \\
        --metadata '{"tenant": "acme", "level": 3}'

``plan`` prints the compiled plan and the Qdrant filter the guard would push down (JSON);
``explain`` says whether a chunk with that metadata is released, by which policy line,
or which condition failed, with the plan behind it. JSON arguments may also be given as
``@path/to/file.json``. Exit codes (see :mod:`ragguard._cli`): 0 answered (released or
not), 1 the policy cannot be used (e.g. an unsupported construct), 2 usage error (bad
arguments, unreadable files, malformed JSON).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ragguard._cli import (
    EXIT_OK,
    SUBJECT_FORMAT,
    CliUsageError,
    add_command,
    add_policy_arguments,
    json_argument,
    load_policy,
    subject_argument,
)
from ragguard.policy._plan import Plan
from ragguard.policy._predicate import describe_condition

__all__ = ["qdrant_filter_json", "register"]


def register(subparsers: Any) -> None:
    """Add ``plan`` and ``explain`` to the ``ragguard`` command line."""
    plan = add_command(
        subparsers,
        "plan",
        _run_plan,
        help="print a subject's compiled plan and the Qdrant filter pushed down for it",
        description=(
            "Compile the policy for one subject and print the plan (kind, filter IR, the "
            "policy lines that contribute) and the Qdrant filter the guard pushes down."
        ),
    )
    add_policy_arguments(plan)
    plan.add_argument("--subject", required=True, help=f"subject JSON, e.g. '{SUBJECT_FORMAT}'")
    plan.add_argument("--action", default="read", help="the r.act value (default: read)")

    explain = add_command(
        subparsers,
        "explain",
        _run_explain,
        help="why a subject may or may not read a chunk with given metadata",
        description=(
            "Decide one chunk's metadata for one subject: released (and by which policy "
            "line) or withheld (and which condition failed), with the plan and filter."
        ),
    )
    add_policy_arguments(explain)
    explain.add_argument("--subject", required=True, help=f"subject JSON, e.g. '{SUBJECT_FORMAT}'")
    explain.add_argument(
        "--metadata", required=True, help='chunk metadata JSON, e.g. \'{"dept": "eng"}\''
    )
    explain.add_argument("--action", default="read", help="the r.act value (default: read)")
    explain.add_argument("--json", action="store_true", help="print one JSON object")


def qdrant_filter_json(plan: Plan) -> dict[str, Any]:
    """The Qdrant filter pushed down for ``plan``: ``{"filter", "exact", "relaxed"}``.

    ``filter`` is ``None`` for ``allow_all`` (no filter) and ``deny_all`` (the store is
    never queried); ``relaxed`` lists atoms Qdrant cannot express (checked after search).
    """
    if plan.kind != "conditional":
        return {"filter": None, "exact": True, "relaxed": [], "queried": plan.kind != "deny_all"}
    from ragguard.stores.qdrant import translate_filter

    translation = translate_filter(plan.filter)
    native = translation.native
    rendered = native.model_dump(mode="json", exclude_none=True) if native is not None else None
    return {
        "filter": rendered,
        "exact": translation.exact,
        "relaxed": list(translation.relaxed),
        "queried": True,
    }


def _plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "plan": plan.to_json(),
        "condition": describe_condition(plan.filter),
        "qdrant": qdrant_filter_json(plan),
    }


def _run_plan(args: argparse.Namespace) -> int:
    policy = load_policy(args.model, args.policy)
    subject = subject_argument(args.subject)
    plan = policy.plan(subject, args.action)
    print(json.dumps(_plan_document(plan), indent=2, ensure_ascii=False))
    return EXIT_OK


def _run_explain(args: argparse.Namespace) -> int:
    policy = load_policy(args.model, args.policy)
    subject = subject_argument(args.subject)
    metadata = json_argument(args.metadata, "--metadata")
    if not isinstance(metadata, dict):
        raise CliUsageError("--metadata must be a JSON object")
    plan = policy.plan(subject, args.action)
    decision = plan.decide(metadata)
    document = {
        "decision": "released" if decision.released else "withheld",
        "rule": decision.rule,
        "failed_condition": None if decision.released else decision.reason,
        "policy_version": decision.policy_version,
        **_plan_document(plan),
    }
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EXIT_OK
    qdrant = document["qdrant"]
    may = "may" if decision.released else "may not"
    lines = [
        f"decision:  {document['decision']}: {subject.id!r} {may} {args.action} this chunk",
        f"rule:      {decision.rule}" if decision.released else f"failed:    {decision.reason}",
        f"policy:    version {decision.policy_version}",
        f"plan:      {plan.kind}; filter: {document['condition']}",
        "qdrant:    " + _describe_qdrant(qdrant),
    ]
    if qdrant["relaxed"]:
        lines.append("relaxed:   " + ", ".join(qdrant["relaxed"]) + " (checked after search)")
    print("\n".join(lines))
    return EXIT_OK


def _describe_qdrant(qdrant: dict[str, Any]) -> str:
    if not qdrant["queried"]:
        return "(none: the store is not queried)"
    if qdrant["filter"] is None:
        return "(none: no filter)"
    return json.dumps(qdrant["filter"], ensure_ascii=False)
