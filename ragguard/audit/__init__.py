"""A tamper-evident audit trail of guarded retrievals.

Write one hash-chained record per retrieval, check the chain later, export it, and
replay it under another policy::

    from ragguard.audit import JsonlAuditLog, verify_audit_log

    audit = JsonlAuditLog("logs/audit.jsonl", key=audit_key, max_bytes=64 << 20)
    guard = rg.Guard(policy, store, audit=audit, audit_required=True)
    ...
    result = verify_audit_log("logs/audit.jsonl", key=audit_key)
    assert result, result.error        # names file, line and what is wrong

Records hold who (subject id and a digest of the attributes), when, under which policy
version and plan, the digest of the query vector, and per chunk the id with the score
and rule (released) or the reason (withheld). Never chunk text, never query text.
The command line has ``ragguard audit verify | export | replay`` (see ``docs/audit.md``).
"""

from typing import TYPE_CHECKING

from ragguard._lazy import lazy_exports

if TYPE_CHECKING:
    from ragguard.audit._export import export_records, to_ocsf
    from ragguard.audit._files import audit_files
    from ragguard.audit._log import JsonlAuditLog
    from ragguard.audit._record import (
        GENESIS_HASH,
        AuditRecord,
        PlanSummary,
        ReleasedChunk,
        WithheldChunk,
    )
    from ragguard.audit._replay import ReplayChange, ReplayReport, replay_audit_log
    from ragguard.audit._verify import (
        AuditBreak,
        AuditEntry,
        AuditVerification,
        read_audit_records,
        verify_audit_log,
    )

# Each name is imported from its module when first used: `import ragguard` does not
# load the records' pydantic models, and writing a log does not load replay or export
# (replay pulls in the policy engine and the stores).
_LAZY: dict[str, str] = {
    "GENESIS_HASH": "ragguard.audit._record",
    "AuditBreak": "ragguard.audit._verify",
    "AuditEntry": "ragguard.audit._verify",
    "AuditRecord": "ragguard.audit._record",
    "AuditVerification": "ragguard.audit._verify",
    "JsonlAuditLog": "ragguard.audit._log",
    "PlanSummary": "ragguard.audit._record",
    "ReleasedChunk": "ragguard.audit._record",
    "ReplayChange": "ragguard.audit._replay",
    "ReplayReport": "ragguard.audit._replay",
    "WithheldChunk": "ragguard.audit._record",
    "audit_files": "ragguard.audit._files",
    "export_records": "ragguard.audit._export",
    "read_audit_records": "ragguard.audit._verify",
    "replay_audit_log": "ragguard.audit._replay",
    "to_ocsf": "ragguard.audit._export",
    "verify_audit_log": "ragguard.audit._verify",
}


__all__ = [
    "GENESIS_HASH",
    "AuditBreak",
    "AuditEntry",
    "AuditRecord",
    "AuditVerification",
    "JsonlAuditLog",
    "PlanSummary",
    "ReleasedChunk",
    "ReplayChange",
    "ReplayReport",
    "WithheldChunk",
    "audit_files",
    "export_records",
    "read_audit_records",
    "replay_audit_log",
    "to_ocsf",
    "verify_audit_log",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
