"""Exporting audit records: JSONL (as written), CSV (one row per chunk), OCSF events."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timezone
from typing import Any, Literal, TextIO

from ragguard._version import installed_version
from ragguard.audit._record import AuditRecord
from ragguard.audit._verify import AuditEntry

__all__ = [
    "CSV_COLUMNS",
    "ExportFormat",
    "export_records",
    "parse_time",
    "select_records",
    "to_ocsf",
]

ExportFormat = Literal["jsonl", "csv", "ocsf"]

OCSF_VERSION = "1.3.0"
OCSF_CLASS_UID = 6005  # Datastore Activity
OCSF_CATEGORY_UID = 6  # Application Activity
OCSF_ACTIVITY_QUERY = 4

CSV_COLUMNS = (
    "decision_id",
    "time",
    "seq",
    "subject_id",
    "subject_digest",
    "action",
    "policy_version",
    "plan_kind",
    "plan_exact",
    "plan_digest",
    "query_digest",
    "k",
    "outcome",
    "chunk_id",
    "score",
    "rule",
    "reason",
    "provenance",
    "flags",
)


def parse_time(text: str) -> datetime:
    """An ISO-8601 date or date-time as an aware UTC datetime (naive means UTC).

    ``"2025-03-01"``, ``"2025-03-01T12:00"``, ``"2025-03-01T12:00:00Z"`` and
    ``"2025-03-01T13:00:00+01:00"`` are all accepted.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO-8601 date or time: {text!r}") from None
        moment = datetime(day.year, day.month, day.day)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def select_records(
    entries: Iterable[AuditEntry],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
) -> Iterator[AuditEntry]:
    """The entries with ``since <= time < until`` for ``subject`` (each filter optional)."""
    for entry in entries:
        record = entry.record
        if since is not None and record.time < since:
            continue
        if until is not None and record.time >= until:
            continue
        if subject is not None and record.subject_id != subject:
            continue
        yield entry


def export_records(entries: Iterable[AuditEntry], out: TextIO, format: ExportFormat) -> int:
    """Write ``entries`` to ``out`` as ``jsonl``, ``csv`` or ``ocsf``; returns the count.

    ::

        entries = read_audit_records("audit.jsonl")
        alice = (entry for entry in entries if entry.record.subject_id == "alice")
        export_records(alice, sys.stdout, "ocsf")

    ``jsonl`` writes each record exactly as logged (its own hash still checks);
    ``csv`` writes one row per considered chunk (a retrieval with none gets one row
    with empty chunk columns; ``flags`` joins a released chunk's screen flags with
    ``"; "``); ``ocsf`` writes one OCSF *Datastore Activity* (6005,
    activity *Query*) event per retrieval, one JSON object per line.
    """
    count = 0
    if format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for entry in entries:
            writer.writerows(_csv_rows(entry.record))
            count += 1
        return count
    if format not in ("jsonl", "ocsf"):
        raise ValueError(f"unknown export format {format!r}: use jsonl, csv or ocsf")
    for entry in entries:
        if format == "jsonl":
            out.write(entry.raw.decode("ascii").rstrip("\n") + "\n")
        else:
            out.write(json.dumps(to_ocsf(entry.record), sort_keys=True) + "\n")
        count += 1
    return count


def _csv_rows(record: AuditRecord) -> list[list[Any]]:
    common = [
        record.decision_id,
        _iso(record.time),
        record.seq,
        record.subject_id,
        record.subject_digest,
        record.action,
        record.policy_version,
        record.plan.kind,
        record.plan.exact,
        record.plan.digest,
        record.query_digest,
        record.k,
    ]
    rows = [
        [
            *common,
            "released",
            c.id,
            c.score,
            c.rule or "",
            "",
            c.provenance or "",
            "; ".join(c.flags),
        ]
        for c in record.released
    ]
    rows += [
        [*common, "withheld", c.id, "", "", c.reason or "", c.provenance or "", ""]
        for c in record.withheld
    ]
    return rows or [[*common, "", "", "", "", "", "", ""]]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _product_version() -> str:
    return installed_version() or "0"  # "0": a source checkout without installed metadata


def to_ocsf(record: AuditRecord) -> dict[str, Any]:
    """The record as an OCSF 1.3 *Datastore Activity* event (class 6005, *Query*).

    Mapping (also in ``docs/audit.md``): ``actor.user.uid`` = subject id;
    ``query_info.uid`` = query digest and ``query_info.data`` = released chunk ids and
    scores; ``authorizations`` = the policy version and the overall decision;
    ``action_id``/``disposition_id`` = Allowed when something was released, Denied
    (Blocked) when everything considered was withheld; ragguard-specific fields
    (per-chunk rules and reasons, plan, chain hashes) under ``unmapped.ragguard``.
    """
    epoch_ms = int(record.time.timestamp() * 1000)
    released = bool(record.released)
    blocked = not released and bool(record.withheld)
    decision = "denied" if blocked else "allowed"
    withheld = len(record.withheld)
    return {
        "class_uid": OCSF_CLASS_UID,
        "class_name": "Datastore Activity",
        "category_uid": OCSF_CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": OCSF_ACTIVITY_QUERY,
        "activity_name": "Query",
        "type_uid": OCSF_CLASS_UID * 100 + OCSF_ACTIVITY_QUERY,
        "type_name": "Datastore Activity: Query",
        "time": epoch_ms,
        "duration": round(record.duration_ms),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1,
        "status": "Success",
        "action_id": 2 if blocked else 1,
        "action": "Denied" if blocked else "Allowed",
        "disposition_id": 2 if blocked else 1,
        "disposition": "Blocked" if blocked else "Allowed",
        "message": (
            f"{record.subject_id} {record.action}: {len(record.released)} chunk(s) released, "
            f"{withheld} withheld (k={record.k})"
        ),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": record.decision_id,
            "log_name": "ragguard.audit",
            "sequence": record.seq,
            "product": {
                "name": "ragguard",
                "vendor_name": "ragguard",
                "version": _product_version(),
            },
        },
        "actor": {"user": {"uid": record.subject_id}},
        "src_endpoint": {"hostname": record.host} if record.host else {"name": "unknown"},
        "type_id": 1,
        "type": "Database",
        "database": {
            "name": record.data_source or "ragguard",
            "type_id": 99,
            "type": "Vector store",
        },
        "query_info": {
            "uid": record.query_digest,
            "query_time": epoch_ms,
            "data": {"released": [{"id": c.id, "score": c.score} for c in record.released]},
        },
        "authorizations": [
            {
                "decision": decision,
                "policy": {
                    "uid": record.policy_version,
                    "version": record.policy_version,
                    "name": "ragguard policy",
                },
            }
        ],
        "unmapped": {
            "ragguard": {
                "subject_digest": record.subject_digest,
                "action": record.action,
                "plan": record.plan.model_dump(mode="json"),
                "k": record.k,
                "rounds": record.rounds,
                "truncated": record.truncated,
                "released": [c.model_dump(mode="json") for c in record.released],
                "withheld": [c.model_dump(mode="json") for c in record.withheld],
                "seq": record.seq,
                "prev_hash": record.prev_hash,
                "hash": record.hash,
                "alg": record.alg,
            }
        },
    }
