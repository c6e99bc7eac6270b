"""Reading audit logs back, and checking their hash chain."""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ragguard.audit._files import expand_audit_paths
from ragguard.audit._record import (
    ALG_HMAC,
    ALG_SHA256,
    GENESIS_HASH,
    AuditRecord,
    RecordLineError,
    canonical_json,
    chain_hash,
    normalize_key,
    parse_record_line,
    record_line,
)
from ragguard.exceptions import AuditError

__all__ = [
    "AuditBreak",
    "AuditEntry",
    "AuditVerification",
    "read_audit_records",
    "verify_audit_log",
]

PathArg = str | os.PathLike[str]

_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AuditBreak:
    """The first record that failed verification: where, and why."""

    file: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of :func:`verify_audit_log`; true when the chain is intact.

    ``records`` counts the records that verified (all of them when ``ok``); ``head`` is
    ``(seq, hash)`` of the last record that verified, for checkpointing; ``error`` names
    the first broken record.
    """

    ok: bool
    files: tuple[Path, ...]
    records: int
    head: tuple[int, str] | None
    keyed: bool
    error: AuditBreak | None = None

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        """One line for people: ``OK: 120 records in 2 files ...`` or the break."""
        if not self.ok:
            return f"BROKEN: {self.error} ({self.records} records verified before it)"
        kind = "HMAC-SHA256" if self.keyed else "SHA-256"
        head = f", head seq {self.head[0]} {self.head[1]}" if self.head else ""
        files = "file" if len(self.files) == 1 else "files"
        return f"OK: {self.records} records in {len(self.files)} {files}, {kind} chain intact{head}"


@dataclass(frozen=True)
class AuditEntry:
    """One record read from a log, with where it was found."""

    file: Path
    line: int
    record: AuditRecord
    raw: bytes


def _as_paths(paths: PathArg | Iterable[PathArg]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return expand_audit_paths([paths])
    return expand_audit_paths(paths)


def _parse_head(expect_head: tuple[int, str] | str | None) -> tuple[int, str] | None:
    if expect_head is None:
        return None
    if isinstance(expect_head, str):
        seq_text, sep, digest = expect_head.partition(":")
        if not sep or not seq_text.isdigit() or len(digest) != 64:
            raise ValueError(
                f"expect_head must look like '<seq>:<64 hex digits>', got {expect_head!r}"
            )
        return int(seq_text), digest
    seq, digest = expect_head
    return int(seq), str(digest)


class _Chain:
    """Walks records in order and names the first one that breaks the chain."""

    def __init__(self, key: bytes | None, allow_partial_start: bool) -> None:
        self.key = key
        self.allow_partial_start = allow_partial_start
        self.records = 0
        self.head: tuple[int, str] | None = None
        self.alg: str | None = None
        self.seen_at: dict[int, str] = {}

    def check(self, raw: bytes, watch_seq: int | None) -> str | None:
        """Why the line ``raw`` breaks the chain, or ``None`` if it extends it."""
        if not raw.endswith(b"\n"):
            return "the file ends inside this record: it was truncated"
        if not raw.strip():
            return "empty line where a record should be"
        try:
            record = parse_record_line(raw)
        except RecordLineError as exc:
            return str(exc)
        if not isinstance(record, dict):
            return "not an audit record (not a JSON object)"
        try:
            parsed = AuditRecord.model_validate(record)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return f"not a valid audit record: {where}: {first['msg']}"
        del record["hash"]
        recorded, alg = parsed.hash, parsed.alg
        if not _HASH.fullmatch(recorded):
            return "hash is not 64 lowercase hex digits"
        if self.key is None and alg == ALG_HMAC:
            return "records are HMAC-keyed: verification needs the key they were written with"
        if self.key is not None and alg == ALG_SHA256:
            return (
                "record is not keyed (sha256) though a key was given: the chain may have been "
                "rewritten by someone without the key"
            )
        if self.alg is not None and alg != self.alg:
            return f"chain algorithm changes from {self.alg} to {alg}"
        canonical = canonical_json(record)
        expected = chain_hash(canonical, self.key)
        if not hmac.compare_digest(expected, recorded):
            if self.key is not None:
                return "hash mismatch: the record was altered, or forged without the key"
            return "hash mismatch: the record was altered after it was written"
        if raw != record_line(canonical, recorded):
            # The hash covers the parsed record; the bytes must be the writer's too, or
            # a reader that parses differently could be shown something else.
            return (
                "the line is not the canonical form of its record (spacing, key order or "
                "escapes differ): it was rewritten after it was written"
            )
        seq, prev_hash = parsed.seq, parsed.prev_hash
        problem = self._link(seq, prev_hash)
        if problem is not None:
            return problem
        self.alg = alg
        self.records += 1
        self.head = (seq, recorded)
        if watch_seq is not None and seq == watch_seq:
            self.seen_at[seq] = recorded
        return None

    def _link(self, seq: int, prev_hash: str) -> str | None:
        if self.head is None:
            if self.allow_partial_start:
                return None
            if seq != 0 or prev_hash != GENESIS_HASH:
                return (
                    f"the chain starts at seq {seq}, not at its first record: earlier records "
                    "or files are missing (allow_partial_start=True if retention removed them)"
                )
            return None
        last_seq, last_hash = self.head
        if seq > last_seq + 1:
            missing = seq - last_seq - 1
            records = "record is" if missing == 1 else "records are"
            return f"seq jumps from {last_seq} to {seq}: {missing} {records} missing (deleted)"
        if seq <= last_seq:
            return f"seq {seq} follows seq {last_seq}: records were reordered or duplicated"
        if prev_hash != last_hash:
            return (
                "prev_hash does not match the hash of the record before it: a record was "
                "replaced or inserted"
            )
        return None


def verify_audit_log(
    paths: PathArg | Iterable[PathArg],
    key: bytes | str | None = None,
    *,
    expect_head: tuple[int, str] | str | None = None,
    allow_partial_start: bool = False,
) -> AuditVerification:
    """Check the hash chain of an audit log; the result names the first broken record.

    ::

        result = verify_audit_log("logs/audit.jsonl", key=audit_key)
        if not result:
            print(result.error)   # logs/audit.jsonl:42: hash mismatch: the record was altered ...

    ``paths`` is one path or several, in chain order; an active log path stands for its
    whole rotated chain (``audit.000001.jsonl`` ... then ``audit.jsonl``). Detected:
    edited fields, deleted, inserted, reordered or duplicated records, truncated lines,
    missing files, and (with ``key``) records forged without the key. Records cut from
    the *end* leave a valid, shorter chain; pass a checkpoint of
    :attr:`JsonlAuditLog.head` as ``expect_head`` (``(seq, hash)`` or ``"seq:hash"``) to
    detect that too. ``allow_partial_start=True`` accepts a chain whose oldest files
    were removed by retention.
    """
    files = _as_paths(paths)
    secret = normalize_key(key)
    head = _parse_head(expect_head)
    chain = _Chain(secret, allow_partial_start)

    def result(error: AuditBreak | None) -> AuditVerification:
        return AuditVerification(
            ok=error is None,
            files=tuple(files),
            records=chain.records,
            head=chain.head,
            keyed=secret is not None,
            error=error,
        )

    if not files:
        raise ValueError("verify_audit_log needs at least one path")
    last_file, last_line = files[-1], 0
    for file in files:
        try:
            handle = open(file, "rb")  # noqa: SIM115 - closed below, also on errors
        except OSError as exc:
            return result(AuditBreak(file, 0, f"cannot read the file: {exc.strerror or exc}"))
        with handle:
            line_number = 0
            for line_number, raw in enumerate(handle, start=1):
                problem = chain.check(raw, head[0] if head else None)
                if problem is not None:
                    return result(AuditBreak(file, line_number, problem))
        last_file, last_line = file, line_number
    if head is not None:
        problem = _against_checkpoint(chain, head)
        if problem is not None:
            return result(AuditBreak(last_file, last_line, problem))
    return result(None)


def _against_checkpoint(chain: _Chain, head: tuple[int, str]) -> str | None:
    seq, digest = head
    if chain.head is None or chain.head[0] < seq:
        last = "no records" if chain.head is None else f"seq {chain.head[0]}"
        return (
            f"the log ends at {last}, but the checkpoint saw seq {seq}: records were cut from "
            "the end"
        )
    if chain.seen_at.get(seq) != digest:
        return f"record seq {seq} differs from the checkpoint: the chain was rewritten"
    return None


def read_audit_records(paths: PathArg | Iterable[PathArg]) -> Iterator[AuditEntry]:
    """Every record of the given log(s), in order, parsed (without checking the chain).

    ::

        for entry in read_audit_records("logs/audit.jsonl"):
            print(entry.record.subject_id, len(entry.record.released))

    Raises :class:`~ragguard.exceptions.AuditError` naming the file and line of the
    first line that is not an audit record. Run :func:`verify_audit_log` first when the
    log's integrity matters.
    """
    for file in _as_paths(paths):
        try:
            handle = open(file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise AuditError(f"cannot read {file}: {exc.strerror or exc}") from None
        with handle:
            for number, raw in enumerate(handle, start=1):
                yield AuditEntry(file, number, _parse(raw, file, number), raw)


def _parse(raw: bytes, file: Path, number: int) -> AuditRecord:
    try:
        data: Any = parse_record_line(raw)
        return AuditRecord.model_validate(data)
    except (ValueError, ValidationError) as exc:
        message = str(exc).splitlines()[0]
        raise AuditError(f"{file}:{number}: not an audit record: {message}") from None
