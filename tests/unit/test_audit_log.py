"""JsonlAuditLog: what a record holds, rotation, durability settings, concurrent appends."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import ragguard as rg
from ragguard.audit import (
    GENESIS_HASH,
    AuditRecord,
    JsonlAuditLog,
    audit_files,
    read_audit_records,
    verify_audit_log,
)
from ragguard.audit._record import canonical_json
from ragguard.policy._plan import Decision
from ragguard.results import Hit, ProvenanceVerdict, Retrieval

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.id == p.sub && r.obj.dept == p.dept && r.act == p.act
"""
POLICY = "p, alice, eng, read\np, bob, hr, read\n"
SECRET_TEXT = "SECRET-CHUNK-TEXT the merger codename is BLUEBIRD"
KEY = b"audit-key-for-tests"


def make_retrieval(
    subject_id: str = "alice",
    released: int = 5,
    withheld: int = 5,
    *,
    policy: rg.Policy | None = None,
    when: datetime | None = None,
) -> Retrieval:
    """A retrieval as the guard would hand it to an audit sink."""
    policy = policy or rg.Policy.from_casbin(MODEL, POLICY)
    subject = rg.Subject(id=subject_id, attributes={"team": "core"})
    plan = policy.plan(subject)
    version = plan.policy_version
    verdict = ProvenanceVerdict("verified", True)
    hits = tuple(
        Hit(
            f"r-{i}-{uuid.uuid4()}",
            0.9 - i / 100,
            SECRET_TEXT,
            {"dept": "eng", "title": SECRET_TEXT},
            Decision(True, "line 1: p, alice, eng, read", None, version),
            verdict,
        )
        for i in range(released)
    )
    denied = tuple(
        Hit(
            f"d-{i}-{uuid.uuid4()}",
            0.5,
            SECRET_TEXT,
            {"dept": "hr"},
            Decision(False, None, "dept 'hr' != 'eng'", version),
        )
        for i in range(withheld)
    )
    return Retrieval(
        decision_id=str(uuid.uuid4()),
        started_at=when or datetime.now(timezone.utc),
        subject=subject,
        plan=plan,
        k=5,
        query_digest="ab" * 32,
        released=hits,
        withheld=denied,
        rounds=1,
        truncated=False,
        duration_s=0.0021,
    )


def lines(path: Path) -> list[dict[str, object]]:
    """The records of one file as dicts."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_record_holds_who_when_which_policy_and_each_chunk_decision(tmp_path: Path) -> None:
    """A record names subject, digest, policy version, plan, query digest and every chunk."""
    retrieval = make_retrieval()
    with JsonlAuditLog(tmp_path / "audit.jsonl") as log:
        log.record(retrieval)
    [entry] = read_audit_records(tmp_path / "audit.jsonl")
    record = entry.record
    assert record.decision_id == retrieval.decision_id
    assert record.subject_id == "alice"
    assert record.subject_digest == retrieval.subject.fingerprint
    assert record.policy_version == retrieval.plan.policy_version
    assert record.plan.digest == retrieval.plan.digest
    assert record.plan.kind == "conditional"
    assert record.query_digest == retrieval.query_digest
    assert record.time.tzinfo is not None
    assert record.time.utcoffset() == timedelta(0)
    assert [(c.id, c.score, c.rule, c.provenance) for c in record.released] == [
        (h.id, h.score, h.decision.rule, "verified") for h in retrieval.released
    ]
    assert [(c.id, c.reason) for c in record.withheld] == [
        (h.id, h.decision.reason) for h in retrieval.withheld
    ]
    assert record.seq == 0
    assert record.prev_hash == GENESIS_HASH


def test_records_never_contain_chunk_text_or_metadata_values(tmp_path: Path) -> None:
    """Chunk text (and metadata echoing it) never reaches the audit file."""
    with JsonlAuditLog(tmp_path / "audit.jsonl", key=KEY) as log:
        for _ in range(3):
            log.record(make_retrieval())
    content = (tmp_path / "audit.jsonl").read_text()
    assert "SECRET-CHUNK-TEXT" not in content
    assert "BLUEBIRD" not in content


def test_written_line_is_the_canonical_json_the_hash_covers(tmp_path: Path) -> None:
    """A line is the hashed canonical JSON with the hash appended: checkable by hand."""
    with JsonlAuditLog(tmp_path / "audit.jsonl") as log:
        log.record(make_retrieval())
    raw = (tmp_path / "audit.jsonl").read_text().rstrip("\n")
    parsed = json.loads(raw)
    digest = parsed.pop("hash")
    assert raw == canonical_json(parsed)[:-1] + f',"hash":"{digest}"}}'
    assert hashlib.sha256(canonical_json(parsed).encode()).hexdigest() == digest
    AuditRecord.model_validate({**parsed, "hash": digest})


def test_each_record_links_to_the_one_before(tmp_path: Path) -> None:
    """prev_hash of every record is the hash of its predecessor; seq counts up from 0."""
    with JsonlAuditLog(tmp_path / "audit.jsonl") as log:
        for _ in range(4):
            log.record(make_retrieval())
        head = log.head
    records = lines(tmp_path / "audit.jsonl")
    assert [r["seq"] for r in records] == [0, 1, 2, 3]
    for previous, current in itertools.pairwise(records):
        assert current["prev_hash"] == previous["hash"]
    assert head == (3, records[-1]["hash"])


def test_reopening_a_log_continues_its_chain(tmp_path: Path) -> None:
    """A new writer on an existing file picks up seq and hash from its last record."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=KEY) as log:
        log.record(make_retrieval())
    with JsonlAuditLog(path, key=KEY) as log:
        log.record(make_retrieval())
    assert verify_audit_log(path, key=KEY).records == 2


def test_rotation_continues_the_chain_across_files(tmp_path: Path) -> None:
    """Past max_bytes the file is renamed and the next file's first record links back."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=KEY, max_bytes=6000) as log:
        for _ in range(12):
            log.record(make_retrieval())
    files = audit_files(path)
    assert len(files) > 2
    assert files[0].name == "audit.000001.jsonl"
    assert files[-1] == path
    assert all(f.stat().st_size <= 6000 for f in files)
    for older, newer in itertools.pairwise(files):
        assert lines(newer)[0]["prev_hash"] == lines(older)[-1]["hash"]
    result = verify_audit_log(path, key=KEY)
    assert result.ok, result.error
    assert result.records == 12


def test_a_record_larger_than_max_bytes_still_gets_written(tmp_path: Path) -> None:
    """Rotation never loses a record: an oversized one fills a file of its own."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, max_bytes=100) as log:
        log.record(make_retrieval())
        log.record(make_retrieval())
    assert verify_audit_log(path).records == 2


def test_refuses_to_extend_a_log_whose_last_record_is_cut(tmp_path: Path) -> None:
    """Appending after half a record would hide the damage: the writer refuses instead."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path) as log:
        log.record(make_retrieval())
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(rg.AuditError, match="truncated"):
        JsonlAuditLog(path)


def test_refuses_to_extend_with_a_different_key(tmp_path: Path) -> None:
    """A writer whose key does not verify the last record is refused (wrong key or tamper)."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=KEY) as log:
        log.record(make_retrieval())
    with pytest.raises(rg.AuditError, match="does not verify"):
        JsonlAuditLog(path, key=b"another key")
    with pytest.raises(rg.AuditError, match="hmac-sha256"):
        JsonlAuditLog(path)


def test_writer_notices_a_file_truncated_under_it(tmp_path: Path) -> None:
    """If the file shrinks between appends, the next append fails instead of re-chaining."""
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.record(make_retrieval())
    log.record(make_retrieval())
    first_line = path.read_bytes().split(b"\n")[0] + b"\n"
    path.write_bytes(first_line)
    with pytest.raises(rg.AuditError, match="shrank"):
        log.record(make_retrieval())
    log.close()


def test_record_after_close_raises_audit_error(tmp_path: Path) -> None:
    """A closed log refuses records with AuditError (what audit_required turns into a failure)."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    log.close()
    log.close()
    with pytest.raises(rg.AuditError, match="closed"):
        log.record(make_retrieval())


def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    """Audit time is UTC: a naive started_at is an error, not a guess."""
    retrieval = make_retrieval(when=datetime(2025, 1, 1, 12, 0))
    with JsonlAuditLog(tmp_path / "audit.jsonl") as log, pytest.raises(rg.AuditError):
        log.record(retrieval)


def test_times_are_written_in_utc(tmp_path: Path) -> None:
    """A started_at in another zone is converted to UTC with a Z suffix."""
    zone = timezone(timedelta(hours=2))
    with JsonlAuditLog(tmp_path / "audit.jsonl") as log:
        log.record(make_retrieval(when=datetime(2025, 1, 1, 12, 0, tzinfo=zone)))
    assert lines(tmp_path / "audit.jsonl")[0]["time"] == "2025-01-01T10:00:00.000000Z"


@pytest.mark.parametrize(
    ("mode", "interval", "records", "expected_before_close", "expected_after_close"),
    [
        ("always", 1.0, 3, 3, 3),
        ("never", 0.0, 3, 0, 0),
        ("batch", 3600.0, 3, 0, 1),
        ("batch", 0.0, 3, 3, 3),
    ],
)
def test_fsync_policy_controls_when_records_reach_the_disk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    interval: float,
    records: int,
    expected_before_close: int,
    expected_after_close: int,
) -> None:
    """always: fsync per record; batch: per interval and at close; never: not at all."""
    calls: list[int] = []
    real_fsync = os.fsync
    log = JsonlAuditLog(tmp_path / "audit.jsonl", fsync=mode, fsync_interval=interval)  # type: ignore[arg-type]

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    for _ in range(records):
        log.record(make_retrieval())
    assert len(calls) == expected_before_close
    log.close()
    assert len(calls) == expected_after_close


def _flusher_threads(path: Path) -> list[threading.Thread]:
    """The log's background fsync threads (named after the log's path)."""
    return [t for t in threading.enumerate() if t.name == f"ragguard-audit-fsync:{path}"]


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_batch_fsync_reaches_the_disk_within_the_interval_after_traffic_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interval is a bound: no later append or close() is needed for the fsync."""
    path = tmp_path / "audit.jsonl"
    synced: list[tuple[int, float]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, time.monotonic()))
        real_fsync(fd)

    log = JsonlAuditLog(path, fsync="batch", fsync_interval=0.2)
    monkeypatch.setattr(os, "fsync", fsync)
    for _ in range(3):
        log.record(make_retrieval())
    written = time.monotonic()
    inode = path.stat().st_ino
    assert _wait_until(lambda: any(ino == inode for ino, _ in synced)), "no fsync while idle"
    first = min(when for ino, when in synced if ino == inode)
    assert first - written < 2.0  # 0.2 s, plus scheduling on a loaded machine
    assert len(synced) == 1  # one fsync for the three records
    assert _wait_until(lambda: not _flusher_threads(path))  # an idle log holds no thread
    log.close()
    assert len(synced) == 1  # nothing left to sync at close


def test_the_background_fsync_never_blocks_an_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flusher fsyncs a duplicate descriptor without the lock appends take."""
    path = tmp_path / "audit.jsonl"
    in_fsync = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            in_fsync.set()
            time.sleep(0.6)
        real_fsync(fd)

    log = JsonlAuditLog(path, fsync="batch", fsync_interval=0.05)
    monkeypatch.setattr(os, "fsync", slow_fsync)
    log.record(make_retrieval())
    assert in_fsync.wait(5), "no background fsync"
    started = time.perf_counter()
    log.record(make_retrieval())
    assert time.perf_counter() - started < 0.3  # not behind the 0.6 s fsync
    log.close()
    assert not _flusher_threads(path)  # close() stopped it
    result = verify_audit_log(path)
    assert result.ok, result.error
    assert result.records == 2


def test_close_stops_a_waiting_flusher_and_fsyncs_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, fsync="batch", fsync_interval=3600)

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log.record(make_retrieval())
    assert _flusher_threads(path)
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < 2.0  # not an hour
    assert not _flusher_threads(path)
    assert len(calls) == 1


def test_a_failed_background_fsync_fails_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync error is not lost in a thread: the next record raises AuditError."""
    path = tmp_path / "audit.jsonl"
    real_fsync = os.fsync
    failed = threading.Event()

    def failing_fsync(fd: int) -> None:
        if threading.current_thread() is not threading.main_thread() and not failed.is_set():
            failed.set()
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    log = JsonlAuditLog(path, fsync="batch", fsync_interval=0.01)
    monkeypatch.setattr(os, "fsync", failing_fsync)
    log.record(make_retrieval())
    assert failed.wait(5)
    assert _wait_until(lambda: not _flusher_threads(path))
    with pytest.raises(rg.AuditError, match=r"background fsync .* Input/output error"):
        log.record(make_retrieval())
    log.record(make_retrieval())  # reported once; the log goes on
    log.close()
    result = verify_audit_log(path)
    assert result.ok, result.error
    assert result.records == 2


def test_bad_settings_are_rejected(tmp_path: Path) -> None:
    """Unknown fsync modes, non-positive sizes and empty keys fail at construction."""
    with pytest.raises(ValueError, match="fsync"):
        JsonlAuditLog(tmp_path / "a.jsonl", fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        JsonlAuditLog(tmp_path / "a.jsonl", max_bytes=0)
    with pytest.raises(ValueError, match="empty"):
        JsonlAuditLog(tmp_path / "a.jsonl", key=b"")


def test_threads_appending_at_once_produce_one_valid_chain(tmp_path: Path) -> None:
    """Eight threads sharing one log lose no record and never fork the chain."""
    path = tmp_path / "audit.jsonl"
    per_thread = 150
    retrieval = make_retrieval()
    with JsonlAuditLog(path, key=KEY, max_bytes=200_000) as log:
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for _ in range(per_thread):
                log.record(retrieval)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    result = verify_audit_log(path, key=KEY)
    assert result.ok, result.error
    assert result.records == 8 * per_thread


def _append_from_process(path: str, worker: int, count: int, barrier: object) -> None:
    """Child-process body: wait for the others, then append ``count`` records."""
    policy = rg.Policy.from_casbin(MODEL, POLICY)
    log = JsonlAuditLog(path, key=KEY, max_bytes=150_000)
    barrier.wait()  # type: ignore[attr-defined]
    for _ in range(count):
        log.record(make_retrieval(f"worker-{worker}", policy=policy))
    log.close()


def test_four_processes_appending_at_once_produce_one_valid_chain(tmp_path: Path) -> None:
    """Four processes (each its own writer, with rotation) lose nothing and keep one chain."""
    path = tmp_path / "audit.jsonl"
    count = 400
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    processes = [
        context.Process(target=_append_from_process, args=(str(path), n, count, barrier))
        for n in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    result = verify_audit_log(path, key=KEY)
    assert result.ok, result.error
    assert result.records == 4 * count
    assert len(result.files) > 1  # rotation happened while others were appending
    per_worker: dict[str, int] = {}
    for entry in read_audit_records(path):
        per_worker[entry.record.subject_id] = per_worker.get(entry.record.subject_id, 0) + 1
    assert per_worker == {f"worker-{n}": count for n in range(4)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_log_shared_across_fork_keeps_one_chain(tmp_path: Path) -> None:
    """After fork the child reopens its own descriptors, so the lock still excludes."""
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.record(make_retrieval())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            for _ in range(50):
                log.record(make_retrieval("child"))
            log.close()
        except BaseException:
            code = 1
        os._exit(code)
    for _ in range(50):
        log.record(make_retrieval("parent"))
    _, status = os.waitpid(pid, 0)
    log.close()
    assert os.waitstatus_to_exitcode(status) == 0
    result = verify_audit_log(path)
    assert result.ok, result.error
    assert result.records == 101


def test_writer_refuses_to_restart_a_chain_whose_file_was_deleted(tmp_path: Path) -> None:
    """Deleting the active file under a writer does not silently start a new chain."""
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.record(make_retrieval())
    path.unlink()
    with pytest.raises(rg.AuditError, match="records were removed"):
        log.record(make_retrieval())
    log.close()
