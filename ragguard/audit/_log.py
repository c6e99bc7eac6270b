"""``JsonlAuditLog``: an append-only, hash-chained JSONL audit sink."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import socket
import threading
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ragguard.audit._files import last_line, rotated_files, rotated_path
from ragguard.audit._record import (
    ALG_HMAC,
    ALG_SHA256,
    GENESIS_HASH,
    RECORD_VERSION,
    canonical_json,
    chain_hash,
    normalize_key,
    parse_record_line,
    record_line,
)
from ragguard.exceptions import AuditError

if TYPE_CHECKING:
    from ragguard.results import Hit, Retrieval

__all__ = ["FsyncPolicy", "JsonlAuditLog"]

logger = logging.getLogger("ragguard")

FsyncPolicy = Literal["batch", "always", "never"]

DEFAULT_FSYNC_INTERVAL = 1.0

# Writes records built with sorted keys: the same text as canonical_json, minus the sort.
_FAST_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


class JsonlAuditLog:
    """Append-only JSONL audit log, one hash-chained record per retrieval.

    ::

        audit = JsonlAuditLog("logs/audit.jsonl", key=os.environb[b"AUDIT_KEY"])
        guard = Guard(policy, store, audit=audit, audit_required=True)
        ...
        verify_audit_log("logs/audit.jsonl", key=...)   # -> AuditVerification(ok=True, ...)

    Each record (see :class:`~ragguard.audit.AuditRecord`) carries ``prev_hash``, the
    hash of the record before it, and ``hash``: SHA-256 of its canonical JSON, or
    HMAC-SHA256 when ``key`` is given (then nobody without the key can rewrite the
    chain). Records never contain chunk text or query text.

    * ``fsync`` — ``"always"``: every record is on disk before :meth:`record` returns;
      ``"batch"`` (default): records are written to the OS at once, and a background
      flusher thread fsyncs them at most ``fsync_interval`` seconds after they were
      written (plus the fsync's own time), and :meth:`close` fsyncs the rest, so a
      power loss can cost the last interval, a process crash nothing (``fsync_interval=0``
      fsyncs each record before :meth:`record` returns); ``"never"``: leave it to the OS.
    * ``max_bytes`` — rotate when the active file would grow past this size: it is
      renamed ``<stem>.000001<suffix>`` (then ``000002`` ...) and the chain continues
      in a fresh active file whose first record carries the last hash of the old one.
    * ``data_source`` — an optional label for the store/collection, written into each
      record (``data_source``) and used by the OCSF export.

    Appends are safe across threads and processes: each one holds an exclusive
    ``fcntl.flock`` on ``<path>.lock`` while it reads the chain head and writes its
    line (POSIX only). A log that ends in a truncated record, or whose last record does
    not verify under ``key``, is refused with :class:`~ragguard.exceptions.AuditError`
    rather than extended.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: bytes | str | None = None,
        *,
        fsync: FsyncPolicy = "batch",
        max_bytes: int | None = None,
        fsync_interval: float = DEFAULT_FSYNC_INTERVAL,
        data_source: str | None = None,
    ) -> None:
        if fsync not in ("batch", "always", "never"):
            raise ValueError(f"fsync must be 'batch', 'always' or 'never', got {fsync!r}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if fsync_interval < 0:
            raise ValueError(f"fsync_interval must not be negative, got {fsync_interval}")
        try:
            import fcntl
        except ImportError as exc:  # pragma: no cover - non-POSIX platforms
            raise AuditError("JsonlAuditLog needs POSIX file locks (fcntl)") from exc
        self._fcntl = fcntl
        self.path = Path(path)
        self._key = normalize_key(key)
        self._alg = ALG_SHA256 if self._key is None else ALG_HMAC
        self.fsync: FsyncPolicy = fsync
        self.max_bytes = max_bytes
        self.fsync_interval = fsync_interval
        self.data_source = data_source
        self._host = socket.gethostname()
        self._closed = False
        self._pid = -1  # the process the descriptors belong to, set by _open
        self._init_threading()
        self._open()
        _LOGS.add(self)

    # -- public --------------------------------------------------------------------

    @property
    def keyed(self) -> bool:
        """Whether records are HMAC-keyed."""
        return self._key is not None

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record this writer appended or saw.

        Keep it somewhere else from time to time (a metrics system, a ticket): it lets
        :func:`~ragguard.audit.verify_audit_log` (``expect_head=``) detect records cut
        from the end of the log, which no hash chain can detect by itself.
        """
        return self._seq, self._head

    def record(self, retrieval: Retrieval) -> None:
        """Append one retrieval (the :class:`~ragguard.AuditSink` protocol).

        Raises :class:`~ragguard.exceptions.AuditError` when the record could not be
        written; with ``Guard(..., audit_required=True)`` that fails the retrieval.
        """
        body = self._body(retrieval)
        try:
            self._append(body)
        except AuditError:
            raise
        except (OSError, ValueError) as exc:
            raise AuditError(f"could not append to the audit log {self.path}: {exc}") from exc

    def flush(self) -> None:
        """fsync everything appended so far (a no-op with ``fsync="never"``)."""
        with self._thread_lock:
            if not self._closed and self.fsync != "never" and self._pid == os.getpid():
                os.fsync(self._fd)
                self._last_fsync = time.monotonic()
                self._unsynced = self._unsynced_pending = False

    def close(self) -> None:
        """Stop the flusher, fsync (unless ``fsync="never"``) and close the files.

        Idempotent; it closes only descriptors this writer still owns.
        """
        with self._thread_lock:
            if self._closed:
                return
            self._closed = True
            flusher = self._flusher if self._pid == os.getpid() else None
            self._flush_wakeup.notify_all()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        with self._thread_lock:
            try:
                if self.fsync != "never" and self._unsynced and self._pid == os.getpid():
                    os.fsync(self._fd)
                    self._unsynced = False
            finally:
                self._release_descriptors()

    def __enter__(self) -> JsonlAuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonlAuditLog({str(self.path)!r}, keyed={self.keyed}, fsync={self.fsync!r})"

    # -- building a record (outside any lock) ---------------------------------------

    def _body(self, retrieval: Retrieval) -> dict[str, Any]:
        # Keys are inserted in sorted order so that the fast unsorted encoder writes the
        # canonical form (the verifier re-sorts; tests pin that both agree). ``prev_hash``
        # and ``seq`` are filled in under the lock. ``data_version`` is written only when
        # the store has one (a replica), so other records keep their exact form.
        subject = retrieval.subject
        plan = retrieval.plan
        versioned = (
            {} if retrieval.data_version is None else {"data_version": retrieval.data_version}
        )
        # Likewise the caller's client (set by a front end such as the gateway).
        client = {
            name: value
            for name, value in (
                ("client_id", retrieval.client_id),
                ("client_name", retrieval.client_name),
            )
            if value is not None
        }
        return {
            "action": plan.action,
            "alg": self._alg,
            **client,
            "data_source": self.data_source,
            **versioned,
            "decision_id": retrieval.decision_id,
            "duration_ms": round(retrieval.duration_s * 1000.0, 3),
            "host": self._host,
            "k": retrieval.k,
            "plan": {"digest": plan.digest, "exact": plan.exact, "kind": plan.kind},
            "policy_version": plan.policy_version,
            "prev_hash": None,
            "query_digest": retrieval.query_digest,
            "released": [_released(hit) for hit in retrieval.released],
            "rounds": retrieval.rounds,
            "seq": None,
            "subject_digest": subject.fingerprint,
            "subject_id": subject.id,
            "time": _utc_text(retrieval.started_at),
            "truncated": retrieval.truncated,
            "v": RECORD_VERSION,
            "withheld": [_withheld(hit) for hit in retrieval.withheld],
        }

    # -- files and the chain head (under the locks) ----------------------------------

    def _init_threading(self) -> None:
        # Also run in a forked child (see _reinit_after_fork): a lock some thread of the
        # parent held at the fork would stay held in the child forever, and the parent's
        # flusher thread does not exist there.
        self._thread_lock = threading.Lock()
        # The background flusher (fsync="batch") waits on this; close() wakes it.
        self._flush_wakeup = threading.Condition(self._thread_lock)
        self._flusher: threading.Thread | None = None

    def _open(self) -> None:
        self._flush_error: OSError | None = None
        # -1: no descriptor owned (never closed twice, never a number reused elsewhere).
        self._fd = -1
        self._lock_fd = -1
        self._size: int | None = None
        self._seq = -1
        self._head = GENESIS_HASH
        self._last_fsync = time.monotonic()
        self._unsynced = False  # written, and no fsync has completed since
        self._unsynced_pending = False  # written, and no fsync has started since
        self._unsynced_since = self._last_fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd = self._open_active()
            with self._flock():
                self._sync_head()
        except BaseException:
            self._release_descriptors()
            raise
        # Set last: a child process whose reopen failed tries again on its next append.
        self._pid = os.getpid()

    def _release_descriptors(self) -> None:
        fd, lock_fd = self._fd, self._lock_fd
        self._fd = self._lock_fd = -1
        for owned in (fd, lock_fd):
            if owned >= 0:
                with contextlib.suppress(OSError):
                    os.close(owned)

    def _open_active(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.path, flags, 0o600)

    @contextlib.contextmanager
    def _flock(self) -> Any:
        self._fcntl.flock(self._lock_fd, self._fcntl.LOCK_EX)
        try:
            yield
        finally:
            self._fcntl.flock(self._lock_fd, self._fcntl.LOCK_UN)

    def _reopen_after_fork(self) -> None:
        # flock locks belong to the open file description, which a fork shares: the
        # child needs its own descriptors, or parent and child would not exclude each
        # other. Closing the child's copies leaves the parent's untouched.
        self._release_descriptors()
        self._open()

    def _sync_head(self) -> None:
        """Make the cached chain head current (another process may have appended)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            on_disk = None
        mine = os.fstat(self._fd)
        if on_disk is None or (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev):
            # Rotated (or moved away) by someone else, or by this writer when it could
            # not create the next file: follow the name. Open first, swap, close last:
            # when the open fails (no inode, no space, no descriptor) this writer keeps
            # the descriptor it owns, raises, and tries again on the next append.
            self._swap_active(self._open_active())
            mine = os.fstat(self._fd)
            self._size = None
        if self._size is not None:
            if mine.st_size == self._size:
                return
            if mine.st_size < self._size:
                raise AuditError(
                    f"the audit log {self.path} shrank from {self._size} to {mine.st_size} "
                    "bytes: it was truncated; run `ragguard audit verify` before appending"
                )
        self._read_head(mine.st_size)

    def _read_head(self, size: int) -> None:
        line, where = self._tail(size)
        seq, head = (-1, GENESIS_HASH) if line is None else self._check_tail(line, where)
        if seq < self._seq:
            # Appends and rotations only move the head forward: going back means the
            # log was deleted, replaced or cut under this writer. Restarting the chain
            # would bury that; refuse instead.
            raise AuditError(
                f"the audit log {self.path} now ends at seq {seq}, but this writer appended "
                f"seq {self._seq}: records were removed; run `ragguard audit verify`"
            )
        self._seq, self._head = seq, head
        self._size = size

    def _tail(self, size: int) -> tuple[bytes | None, Path]:
        read_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            line = self._last_line(read_fd, size, self.path)
        finally:
            os.close(read_fd)
        if line is not None:
            return line, self.path
        # An empty active file continues the newest rotated file.
        rotated = rotated_files(self.path)
        if not rotated:
            return None, self.path
        previous = rotated[-1][1]
        read_fd = os.open(previous, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self._last_line(read_fd, os.fstat(read_fd).st_size, previous), previous
        finally:
            os.close(read_fd)

    @staticmethod
    def _last_line(fd: int, size: int, where: Path) -> bytes | None:
        try:
            return last_line(fd, size)
        except ValueError as exc:
            raise AuditError(
                f"refusing to extend {where}: {exc}; run `ragguard audit verify` and move the "
                "damaged file aside"
            ) from None

    def _check_tail(self, line: bytes, where: Path) -> tuple[int, str]:
        try:
            record = parse_record_line(line)
            seq, recorded, alg = record["seq"], record.pop("hash"), record["alg"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuditError(
                f"refusing to extend {where}: its last line is not an audit record"
            ) from None
        if alg != self._alg:
            wanted = "with the key it was written with" if alg == ALG_HMAC else "without a key"
            raise AuditError(f"refusing to extend {where}: its records are {alg}; open it {wanted}")
        if not (isinstance(seq, int) and isinstance(recorded, str)):
            raise AuditError(f"refusing to extend {where}: its last record is malformed")
        canonical = canonical_json(record)
        if not (recorded.isascii() and record_line(canonical, recorded) == line + b"\n") or (
            not hmac.compare_digest(chain_hash(canonical, self._key), recorded)
        ):
            problem = "the key differs, or the record" if self._key else "the record"
            raise AuditError(
                f"refusing to extend {where}: its last record does not verify ({problem} was "
                "altered); run `ragguard audit verify`"
            )
        return seq, recorded

    def _append(self, body: dict[str, Any]) -> None:
        with self._thread_lock:
            if self._closed:
                raise AuditError(f"the audit log {self.path} is closed")
            if self._pid != os.getpid():
                self._reopen_after_fork()
            if self._flush_error is not None:
                error, self._flush_error = self._flush_error, None
                raise AuditError(
                    f"the background fsync of the audit log {self.path} failed: {error}; "
                    "records written before it may not be on disk"
                ) from error
            self._fcntl.flock(self._lock_fd, self._fcntl.LOCK_EX)
            try:
                self._sync_head()
                body["seq"] = self._seq + 1
                body["prev_hash"] = self._head
                text = _FAST_ENCODER.encode(body)
                digest = chain_hash(text, self._key)
                line = record_line(text, digest)
                assert self._size is not None
                if (
                    self.max_bytes is not None
                    and self._size
                    and self._size + len(line) > self.max_bytes
                ):
                    self._rotate()
                self._write(line)
                self._seq, self._head = body["seq"], digest
            finally:
                self._fcntl.flock(self._lock_fd, self._fcntl.LOCK_UN)
            self._after_write()

    def _write(self, line: bytes) -> None:
        assert self._size is not None
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # only on a full disk or a signal: finish or undo
                step = os.write(self._fd, line[written:])
                if step == 0:
                    raise OSError("no progress writing the audit record")
                written += step
        except OSError:
            # Never leave half a record behind: it would break the chain for everyone.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(line)
        self._unsynced = True

    def _rotate(self) -> None:
        if self.fsync != "never":
            os.fsync(self._fd)
            self._unsynced = False
        rotated = rotated_files(self.path)
        number = rotated[-1][0] + 1 if rotated else 1
        os.rename(self.path, rotated_path(self.path, number))
        # The old file is complete under its new name. If the new active file cannot be
        # created, this writer keeps (and still owns) the old descriptor; the record is
        # refused, and the next append finds the active name missing and retries.
        new_fd = self._open_active()
        self._swap_active(new_fd)
        self._size = 0
        if self.fsync != "never":
            _fsync_directory(self.path.parent)

    def _swap_active(self, new_fd: int) -> None:
        old_fd, self._fd = self._fd, new_fd
        if old_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(old_fd)

    def _after_write(self) -> None:
        if self.fsync == "always" or (self.fsync == "batch" and self.fsync_interval == 0):
            os.fsync(self._fd)
            self._last_fsync = time.monotonic()
            self._unsynced = False
        elif self.fsync == "batch":
            self._schedule_flush()

    # -- the background flusher (fsync="batch") -----------------------------------------

    def _schedule_flush(self) -> None:
        # Called with the thread lock held, right after a write.
        if not self._unsynced_pending:
            self._unsynced_pending = True
            self._unsynced_since = time.monotonic()
        if self._flusher is None:
            flusher = threading.Thread(
                target=self._flush_loop, name=f"ragguard-audit-fsync:{self.path}", daemon=True
            )
            self._flusher = flusher
            flusher.start()

    def _flush_loop(self) -> None:
        """fsync records at most ``fsync_interval`` after they were written.

        Runs only while records are unsynced, so an idle log holds no thread. It takes
        the thread lock only to look at the state and to duplicate the descriptor: the
        fsync itself runs on the duplicate without the lock, so appends never wait for it.
        """
        while True:
            with self._flush_wakeup:
                while not self._closed:
                    remaining = self._unsynced_since + self.fsync_interval - time.monotonic()
                    if remaining <= 0:
                        break
                    self._flush_wakeup.wait(remaining)
                if self._closed or not self._unsynced_pending or self._fd < 0:
                    self._flusher = None  # close() fsyncs what is left
                    return
                self._unsynced_pending = False
                try:
                    fd = os.dup(self._fd)
                except OSError:  # no descriptor to spare: fsync under the lock this once
                    try:
                        os.fsync(self._fd)
                    except OSError as exc:
                        self._flusher_failed(exc)
                        return
                    self._last_fsync = time.monotonic()
                    if not self._unsynced_pending:
                        self._unsynced = False
                    continue
            try:
                os.fsync(fd)
            except OSError as exc:
                with self._thread_lock:
                    self._flusher_failed(exc)
                return
            finally:
                os.close(fd)
            with self._thread_lock:
                self._last_fsync = time.monotonic()
                if not self._unsynced_pending:
                    self._unsynced = False
                    self._flusher = None
                    return

    def _flusher_failed(self, exc: OSError) -> None:
        # Thread lock held. The next append reports it (AuditError), so a required audit
        # fails closed; close() and later appends try the fsync again.
        logger.warning("ragguard: background fsync of the audit log %s failed: %s", self.path, exc)
        self._flush_error = exc
        self._unsynced_pending = False
        self._flusher = None


# Every live log, so that a forked child gets fresh locks before anything else runs.
_LOGS: weakref.WeakSet[JsonlAuditLog] = weakref.WeakSet()


def _reinit_after_fork() -> None:  # pragma: no cover - runs in forked children
    for log in list(_LOGS):
        log._init_threading()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def _utc_text(moment: datetime) -> str:
    offset = moment.utcoffset()
    if offset is None:
        raise AuditError("Retrieval.started_at must be timezone-aware (UTC)")
    if offset:
        moment = moment.astimezone(timezone.utc)
    # isoformat with fixed microseconds ends in "+00:00" for UTC: write it as "Z".
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def _score(value: float) -> float | None:
    score = float(value)
    return score if math.isfinite(score) else None


def _released(hit: Hit) -> dict[str, Any]:
    released: dict[str, Any] = {
        "id": hit.id,
        "provenance": hit.provenance.status if hit.provenance is not None else None,
        "rule": hit.decision.rule,
        "score": _score(hit.score),
    }
    if hit.flags:  # written only when present, so records without flags keep their form
        released = {"flags": list(hit.flags), **released}
    return released


def _withheld(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "provenance": hit.provenance.status if hit.provenance is not None else None,
        "reason": hit.decision.reason,
    }


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        # Some filesystems cannot fsync a directory; the rename has happened regardless.
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
