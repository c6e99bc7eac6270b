"""Replay: re-decide recorded retrievals under another policy and report what changes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ragguard.audit._record import AuditRecord
from ragguard.audit._verify import AuditEntry
from ragguard.exceptions import StoreError
from ragguard.policy._plan import OUTSIDE_CALLER_FILTER, Decision
from ragguard.policy._policy import Policy
from ragguard.stores.base import Store, StoredChunk
from ragguard.subject import Subject

__all__ = ["ReplayChange", "ReplayReport", "replay_audit_log"]

Outcome = Literal["released", "withheld"]
NotPolicy = Literal[
    "provenance", "malformed payload", "outside the caller's filter", "screen", "release budget"
]
"""What withheld a chunk when its policy did not: the category of a non-policy reason."""

_GET_BATCH = 256


@dataclass(frozen=True)
class ReplayChange:
    """One chunk whose outcome differs under the replayed policy."""

    decision_id: str
    time: datetime
    subject_id: str
    chunk_id: str
    before: Outcome
    after: Outcome
    before_detail: str | None
    after_detail: str | None

    def describe(self) -> str:
        """``alice  chunk c7: released -> withheld (deny line 7: ...)`` for people."""
        detail = f" ({self.after_detail})" if self.after_detail else ""
        return (
            f"{self.time:%Y-%m-%d %H:%M:%S}  {self.subject_id}  decision {self.decision_id}  "
            f"chunk {self.chunk_id}: {self.before} -> {self.after}{detail}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of the change."""
        return {
            "decision_id": self.decision_id,
            "time": self.time.isoformat(),
            "subject_id": self.subject_id,
            "chunk_id": self.chunk_id,
            "before": self.before,
            "after": self.after,
            "before_detail": self.before_detail,
            "after_detail": self.after_detail,
        }


@dataclass
class ReplayReport:
    """What replaying an audit log under another policy found.

    ``changes`` lists every chunk whose outcome flips; ``missing`` the recorded chunks
    the store no longer holds; ``skipped`` the retrievals whose subject attributes were
    not supplied (by subject id); ``attributes_changed`` the subjects whose supplied
    attributes differ from the recorded digest (replayed with the supplied ones);
    ``not_policy`` counts the chunks withheld by something other than the policy
    (a provenance check, a malformed payload, the caller's filter, a screen, the
    release budget), and ``not_policy_reasons`` counts them by that check
    (see :func:`withheld_by`): replay does not re-decide them and they are never
    changes, because their recorded outcome was not the policy's.
    """

    policy_version: str
    records: int = 0
    chunks: int = 0
    changes: list[ReplayChange] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    attributes_changed: set[str] = field(default_factory=set)
    not_policy: int = 0
    not_policy_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def newly_released(self) -> list[ReplayChange]:
        """Chunks that were withheld and would now be released."""
        return [c for c in self.changes if c.after == "released"]

    @property
    def newly_withheld(self) -> list[ReplayChange]:
        """Chunks that were released and would now be withheld."""
        return [c for c in self.changes if c.after == "withheld"]

    def summary_lines(self) -> list[str]:
        """The report for people, one line each."""
        lines = [
            f"replayed {self.records} retrievals ({self.chunks} chunks) under policy "
            f"{self.policy_version}: {len(self.newly_released)} chunk(s) would now be "
            f"released, {len(self.newly_withheld)} would now be withheld"
        ]
        lines += ["  " + change.describe() for change in self.changes]
        if self.missing:
            lines.append(f"{len(self.missing)} recorded chunk(s) are no longer in the store")
        if self.not_policy:
            by_check = ", ".join(f"{n} {c}" for c, n in sorted(self.not_policy_reasons.items()))
            lines.append(
                f"{self.not_policy} chunk(s) were withheld by a check that is not a policy "
                f"({by_check}); not re-decided and not counted as changes"
            )
        for subject_id, count in sorted(self.skipped.items()):
            lines.append(
                f"skipped {count} retrieval(s) of {subject_id!r}: no attributes supplied "
                "(pass --subject or --subjects)"
            )
        for subject_id in sorted(self.attributes_changed):
            lines.append(
                f"note: the attributes supplied for {subject_id!r} differ from those recorded; "
                "replayed with the supplied ones"
            )
        lines.append(
            "replay re-decides the chunks each retrieval considered; a wider policy could "
            "also have surfaced chunks the store never returned then"
        )
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of the report."""
        return {
            "policy_version": self.policy_version,
            "records": self.records,
            "chunks": self.chunks,
            "newly_released": len(self.newly_released),
            "newly_withheld": len(self.newly_withheld),
            "changes": [c.to_json() for c in self.changes],
            "missing": [{"decision_id": d, "chunk_id": c} for d, c in self.missing],
            "skipped": dict(sorted(self.skipped.items())),
            "attributes_changed": sorted(self.attributes_changed),
            "not_policy": self.not_policy,
            "not_policy_reasons": dict(sorted(self.not_policy_reasons.items())),
        }


SubjectLookup = Mapping[str, Subject] | Callable[[str], Subject | None]


def replay_audit_log(
    entries: Iterable[AuditEntry | AuditRecord],
    policy: Policy,
    store: Store,
    subjects: SubjectLookup,
) -> ReplayReport:
    """Re-decide every recorded chunk under ``policy``; report what would change.

    ::

        new_policy = Policy.from_casbin("model.conf", "policy-v2.csv")
        report = replay_audit_log(
            read_audit_records("audit.jsonl"), new_policy, EdgeStore.open("data/shard"),
            {"alice": Subject(id="alice", attributes={"clearance": 2})},
        )
        for change in report.newly_withheld:
            print(change.describe())

    The chunks' metadata is read from ``store`` by id (it is never in the log).
    ``subjects`` maps a subject id to the :class:`Subject` to replay with (a mapping or
    a function); a subject that is not supplied is replayed with no attributes when
    that matches the recorded digest, and skipped otherwise.
    """
    report = ReplayReport(policy_version=policy.version)
    lookup = subjects.get if isinstance(subjects, Mapping) else subjects
    metadata: dict[str, StoredChunk | None] = {}
    for item in entries:
        record = item.record if isinstance(item, AuditEntry) else item
        subject = _subject_for(record, lookup, report)
        if subject is None:
            report.skipped[record.subject_id] = report.skipped.get(record.subject_id, 0) + 1
            continue
        report.records += 1
        ids = [c.id for c in record.released] + [c.id for c in record.withheld]
        _fetch(store, [i for i in ids if i not in metadata], metadata)
        plan = policy.plan(subject, record.action)
        for chunk in record.released:
            _replay_chunk(report, record, chunk.id, "released", chunk.rule, metadata, plan.decide)
        for withheld in record.withheld:
            check = withheld_by(withheld.reason)
            if check is not None:
                report.chunks += 1
                report.not_policy += 1
                report.not_policy_reasons[check] = report.not_policy_reasons.get(check, 0) + 1
                continue
            _replay_chunk(
                report, record, withheld.id, "withheld", withheld.reason, metadata, plan.decide
            )
    return report


def _subject_for(
    record: AuditRecord, lookup: Callable[[str], Subject | None], report: ReplayReport
) -> Subject | None:
    subject = lookup(record.subject_id)
    if subject is not None:
        if subject.fingerprint != record.subject_digest:
            report.attributes_changed.add(record.subject_id)
        return subject
    bare = Subject(id=record.subject_id)
    return bare if bare.fingerprint == record.subject_digest else None


def _fetch(store: Store, ids: Sequence[str], into: dict[str, StoredChunk | None]) -> None:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _GET_BATCH):
        batch = unique[start : start + _GET_BATCH]
        try:
            found = store.get(batch)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"the store failed while reading chunks for replay: {exc}") from exc
        for chunk in found:
            into[chunk.id] = chunk
        for chunk_id in batch:
            into.setdefault(chunk_id, None)


# The reasons the guard records when something other than the policy withholds a chunk
# (ragguard/guard.py, ragguard/budget.py, ragguard/screens/_base.py), matched by their
# exact forms. A policy's reason names a field and then its value's repr (quoted, or a
# list or dict) or an operator, so a field that happens to be called "screen" or
# "release" is not mistaken for them; a screen whose name holds white space or starts
# like a repr would be, and is re-decided as a policy denial.
_SCREEN = re.compile(
    r"screen [^\s'\"\[{(=<>!][^\s]*?"
    r"(?:: |(?: failed \(\w+\)| returned \w+, not a ScreenResult); withheld$)"
)
_BUDGET = ("release budget exceeded", "release budget unavailable")
_BUDGET_SCORE = "release budget: score "


def withheld_by(reason: str | None) -> NotPolicy | None:
    """The check other than the policy that withheld a chunk, from its recorded reason.

    ``None`` when the reason is the policy's (or there is none)::

        withheld_by("screen secrets: contains an API key")      # "screen"
        withheld_by("release budget exceeded")                 # "release budget"
        withheld_by("deny line 7: p, anyone, hr, read, deny")  # None

    Screens, the release budget and provenance run only on chunks the policy allowed;
    a malformed payload and the caller's ``where=``/``filter=`` withhold a chunk no
    policy could release.
    """
    if not reason:
        return None
    if reason.startswith("provenance:"):
        return "provenance"
    if reason.startswith("malformed payload"):
        return "malformed payload"
    if reason.startswith(OUTSIDE_CALLER_FILTER):
        return "outside the caller's filter"
    if reason in _BUDGET or reason.startswith(_BUDGET_SCORE):
        return "release budget"
    if _SCREEN.match(reason):
        return "screen"
    return None


def _replay_chunk(
    report: ReplayReport,
    record: AuditRecord,
    chunk_id: str,
    before: Outcome,
    before_detail: str | None,
    metadata: Mapping[str, StoredChunk | None],
    decide: Callable[[Any], Decision],
) -> None:
    report.chunks += 1
    stored = metadata.get(chunk_id)
    if stored is None:
        report.missing.append((record.decision_id, chunk_id))
        return
    decision = decide(stored.metadata)
    after: Outcome = "released" if decision.released else "withheld"
    if after != before:
        report.changes.append(
            ReplayChange(
                decision_id=record.decision_id,
                time=record.time,
                subject_id=record.subject_id,
                chunk_id=chunk_id,
                before=before,
                after=after,
                before_detail=before_detail,
                after_detail=decision.rule if decision.released else decision.reason,
            )
        )
