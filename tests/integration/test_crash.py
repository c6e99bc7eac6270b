"""Crash suite: SIGKILL at random points, a full disk, a filesystem out of inodes.

Worker processes (forked by tests/integration/_crash_worker.py, so each costs no
Python start-up) run audited searches, ``ragguard ingest`` and ``EdgeStore.create``
and are killed with SIGKILL at random moments; the tests then check what must hold
after any crash:

* the audit chain verifies, and every search that returned hits to its caller has its
  record (``audit_required=True``), for ``fsync="always"`` and ``"batch"``, with
  rotation;
* a store holds no half-written point (each one has its signed text, metadata and
  vector), and ingesting again completes;
* a killed ``EdgeStore.create`` leaves a whole shard or nothing under the name, never
  a directory that neither ``open`` nor ``create`` accepts;
* a writer that comes next continues the chain.

The full-disk and rotation cases need a small tmpfs: they mount one when running as
root and skip otherwise (``RAGGUARD_REQUIRE_TMPFS=1``, set by ``.ci/run``, turns the
skip into a failure). Kill times come from a seeded generator; a failure prints the
seed, and ``RAGGUARD_CRASH_SEED=<seed>`` replays the same schedule.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ragguard as rg
from ragguard._cli import main as ragguard_main
from ragguard.audit import JsonlAuditLog, audit_files, read_audit_records, verify_audit_log
from ragguard.provenance import ProvenanceCheck
from ragguard.stores import point_id
from ragguard.testing import HashEmbedder

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash suite forks workers")

WORKER = Path(__file__).with_name("_crash_worker.py")
AUDIT_KEY = "crash-suite-audit-key-0123456789abcdef"
SIGNING_KEY = "crash-suite-signing-key-0123456789abcd"
DIM = 8  # _crash_worker.DIM
MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.act == p.act && r.obj.dept == r.sub.dept
"""
POLICY = "p, anyone, read\n"
QUERY = [1.0, 0.5, 0.5, 0.5, 0.0, 0.25, 0.5, 1.0]
SEARCH_WORKERS = 3
SEARCH_ROUNDS = 4
INGEST_CHUNKS = 6000
INGEST_KILLS = 5
CREATE_KILLS = 16
MIB = 1 << 20


# -- the fork server and the seed -----------------------------------------------------


class ForkServer:
    """Talks to _crash_worker.py: spawn a job, kill it, reap it."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        assert "ready" in hello, hello
        self._count = 0
        self._logs: dict[int, Path] = {}

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the crash fork server exited ({self._process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        return self._read()

    def spawn(self, job: str, **args: Any) -> int:
        self._count += 1
        log = self.logs / f"{self._count:03d}-{job}.log"
        pid: int = self._ask({"job": job, "args": args, "log": str(log)})["pid"]
        self._logs[pid] = log
        return pid

    def wait(self, pid: int) -> int:
        status: int = self._ask({"wait": pid})["status"]
        return status

    def run(self, job: str, out: Path, **args: Any) -> tuple[int, list[str]]:
        """Run a job to its end: (exit status, the lines it reported)."""
        status = self.wait(self.spawn(job, out=str(out), **args))
        return status, lines(out)

    def log_of(self, pid: int) -> str:
        """The end of what worker ``pid`` wrote to stdout and stderr."""
        log = self._logs.get(pid)
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    def log_of_last(self) -> str:
        return self.log_of(max(self._logs, key=lambda pid: self._logs[pid])) if self._logs else ""

    def close(self) -> None:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._process.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    forks = ForkServer(tmp_path_factory.mktemp("crash-logs"))
    yield forks
    forks.close()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    seed = int(os.environ.get("RAGGUARD_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    request.node.user_properties.append(("crash_seed", seed))
    print(f"crash schedule seed: RAGGUARD_CRASH_SEED={seed}")  # shown when the test fails
    return random.Random(seed)


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    """Whether the worker still runs (a dead one is a zombie until the server reaps it)."""
    if not os.path.isdir("/proc/self"):
        return True  # no procfs: wait_for_line relies on its timeout
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_for_line(
    out: Path, text: str, pid: int, server: ForkServer, timeout: float = 60, *, prefix: bool = False
) -> None:
    deadline = time.monotonic() + timeout
    while not any(line.startswith(text) if prefix else line == text for line in lines(out)):
        if time.monotonic() > deadline or not _alive(pid):
            status = server.wait(pid) if not _alive(pid) else None
            pytest.fail(
                f"worker {pid} never reported {text!r} (status {status}):\n{server.log_of(pid)}"
            )
        time.sleep(0.005)


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # reaped: it ended before the kill
        os.kill(pid, signal.SIGKILL)


# -- tmpfs ----------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("RAGGUARD_REQUIRE_TMPFS"):
        pytest.fail(f"RAGGUARD_REQUIRE_TMPFS is set, but {reason}")
    pytest.skip(reason)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount("size=2m,nr_inodes=4")`` mounts a fresh tmpfs and returns its path."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            _unavailable("mounting a small tmpfs needs root (the full-disk and inode cases)")
        if shutil.which("mount") is None:
            _unavailable("no mount command")
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"mount -t tmpfs -o {options} failed: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        # Lazy: a killed worker's memory maps may still be going away.
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def used_bytes(where: Path) -> int:
    stat = os.statvfs(where)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


# -- killed audited searches (with rotation) ------------------------------------------


@pytest.mark.parametrize(("fsync", "max_bytes"), [("always", 4000), ("batch", 30000)])
def test_killed_audited_searches_leave_a_verifying_chain_with_every_returned_search(
    server: ForkServer, tmp_path: Path, rng: random.Random, fsync: str, max_bytes: int
) -> None:
    shards = [tmp_path / f"shard{w}" for w in range(SEARCH_WORKERS)]
    for shard in shards:
        status, _ = server.run("make_shard", tmp_path / "made", path=str(shard), points=300)
        assert status == 0, server.log_of_last()
    audit = tmp_path / "audit.jsonl"
    returned: list[str] = []
    for round_ in range(SEARCH_ROUNDS):
        workers = []
        for w, shard in enumerate(shards):
            out = tmp_path / f"out-{round_}-{w}"
            pid = server.spawn(
                "search",
                shard=str(shard),
                audit=str(audit),
                key=AUDIT_KEY,
                fsync=fsync,
                max_bytes=max_bytes,
                worker=f"r{round_}w{w}",
                out=str(out),
            )
            workers.append((pid, out))
        for pid, out in workers:
            wait_for_line(out, "ready", pid, server)
        # Each worker dies at its own random moment: mid-search, mid-append, mid-rotation.
        started = time.monotonic()
        for delay, (pid, _) in sorted((rng.uniform(0.02, 0.4), w) for w in workers):
            time.sleep(max(0.0, started + delay - time.monotonic()))
            kill(pid)
        for pid, out in workers:
            assert server.wait(pid) == -signal.SIGKILL
            returned += [line for line in lines(out) if line != "ready"]
        result = verify_audit_log(audit, key=AUDIT_KEY)
        assert result.ok, result.error
        logged = {entry.record.subject_id for entry in read_audit_records(audit)}
        missing = sorted(set(returned) - logged)
        assert not missing, f"searches returned without their record: {missing[:5]}"
    assert len(returned) > SEARCH_WORKERS * SEARCH_ROUNDS  # the workers did search
    if max_bytes < 10_000:
        assert len(audit_files(audit)) > 2  # rotation happened under the kills
    records = result.records

    # The next writer continues the chain.
    with rg.EdgeStore.open(shards[0]) as store, JsonlAuditLog(audit, key=AUDIT_KEY) as log:
        guard = rg.Guard(
            rg.Policy.from_casbin(MODEL, POLICY), store, audit=log, audit_required=True
        )
        assert guard.search(rg.Subject(id="after", attributes={"dept": "eng"}), QUERY, k=3)
    result = verify_audit_log(audit, key=AUDIT_KEY)
    assert result.ok, result.error
    assert result.records == records + 1


# -- killed ingestion -----------------------------------------------------------------


def _ingest_file(path: Path) -> dict[str, dict[str, Any]]:
    chunks = {
        f"doc-{i}": {
            "id": f"doc-{i}",
            "text": f"chunk {i} on topic {i % 17}: " + "lorem ipsum " * (i % 5),
            "metadata": {"dept": "hr" if i % 3 == 0 else "eng", "n": i},
        }
        for i in range(INGEST_CHUNKS)
    }
    with path.open("w") as handle:
        for item in chunks.values():
            handle.write(json.dumps(item) + "\n")
    return chunks


def _check_points(shard: Path, chunks: dict[str, dict[str, Any]]) -> int:
    """Every point in the shard is whole: signed text and metadata, and its vector."""
    if not shard.exists():
        return 0
    embedder = HashEmbedder(dim=DIM)
    check = ProvenanceCheck({"crash": SIGNING_KEY})
    by_point = {str(point_id(chunk_id)): source for chunk_id, source in chunks.items()}
    with rg.EdgeStore.open(shard) as store:
        stored = store.get(list(chunks))
        assert len(stored) == store.count()  # no point without its payload
        records = store.shard.retrieve([point_id(c) for c in chunks], True, True)
    assert len(records) == len(stored)
    for record in records:
        source = by_point[str(record.id)]
        payload = record.payload
        assert payload is not None  # no point without its payload
        text, metadata = payload["page_content"], payload["metadata"]
        assert text == source["text"]
        verdict = check.verify(text, metadata)
        assert verdict.status == "verified", (source["id"], verdict)
        assert {k: v for k, v in metadata.items() if k != "provenance"} == source["metadata"]
        expected = np.asarray(embedder.embed_documents([text])[0], dtype=np.float32)
        stored_vector = np.asarray(record.vector, dtype=np.float32)
        assert np.allclose(stored_vector, expected / np.linalg.norm(expected), atol=1e-5)
    return len(stored)


def test_killed_ingest_leaves_no_half_written_point_and_ingesting_again_completes(
    server: ForkServer, tmp_path: Path, rng: random.Random
) -> None:
    source = tmp_path / "chunks.jsonl"
    chunks = _ingest_file(source)
    shard = tmp_path / "shard"
    kills = 0
    for round_ in range(INGEST_KILLS):
        out = tmp_path / f"ingest-{round_}"
        pid = server.spawn(
            "ingest", file=str(source), store=str(shard), key=SIGNING_KEY, out=str(out)
        )
        wait_for_line(out, "ready", pid, server)
        time.sleep(rng.uniform(0.0, 1.0))
        kill(pid)
        status = server.wait(pid)
        assert status in (-signal.SIGKILL, 0), server.log_of_last()
        kills += status == -signal.SIGKILL
        _check_points(shard, chunks)
    assert kills  # at least one kill landed during the ingestion
    status, reported = server.run(
        "ingest", tmp_path / "ingest-last", file=str(source), store=str(shard), key=SIGNING_KEY
    )
    assert status == 0, server.log_of_last()
    assert reported[-1] == "exit 0", server.log_of_last()
    assert _check_points(shard, chunks) == INGEST_CHUNKS


def test_a_killed_writer_keeps_every_acknowledged_upsert(
    server: ForkServer, tmp_path: Path, rng: random.Random
) -> None:
    shard = tmp_path / "shard"
    status, _ = server.run("make_shard", tmp_path / "made", path=str(shard), points=0)
    assert status == 0, server.log_of_last()
    for round_ in range(3):
        out = tmp_path / f"upsert-{round_}"
        pid = server.spawn(
            "upsert_until_refused", shard=str(shard), batch=200, text_size=40, out=str(out)
        )
        wait_for_line(out, "acked", pid, server, prefix=True)
        time.sleep(rng.uniform(0.0, 0.3))
        kill(pid)
        assert server.wait(pid) == -signal.SIGKILL, server.log_of(pid)
        acked = max(int(line.split()[1]) for line in lines(out) if line.startswith("acked "))
        with rg.EdgeStore.open(shard) as store:
            assert store.count() >= acked
            stored = store.get(list(range(acked)))
        assert len(stored) == acked  # every acknowledged point, each with its payload
        assert all(point.text is not None and point.metadata for point in stored)


# -- killed creates -------------------------------------------------------------------


def test_a_killed_create_leaves_a_whole_shard_or_nothing(
    server: ForkServer, tmp_path: Path, rng: random.Random
) -> None:
    for i in range(CREATE_KILLS):
        path = tmp_path / f"shard{i}"
        pid = server.spawn("create", path=str(path), out=str(tmp_path / f"create-{i}"))
        time.sleep(rng.uniform(0.0, 0.08))
        kill(pid)
        assert server.wait(pid) in (-signal.SIGKILL, 0), server.log_of_last()
        if path.exists():  # then it is a whole shard
            rg.EdgeStore.open(path).close()
        else:  # and "created if absent" works
            rg.EdgeStore.create(path, dim=DIM).close()
        staging = [name for name in os.listdir(tmp_path) if name.startswith(f".{path.name}.")]
        assert staging == [], "the next create removes what a killed one left"
    # `ragguard ingest --store` on a path whose create was killed
    source = tmp_path / "two.jsonl"
    source.write_text('{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    path = tmp_path / "shard-for-ingest"
    pid = server.spawn("create", path=str(path), out=str(tmp_path / "create-last"))
    time.sleep(rng.uniform(0.0, 0.05))
    kill(pid)
    server.wait(pid)
    assert _ingest(source, path) == 0
    with rg.EdgeStore.open(path) as store:
        assert store.count() == 2


def _ingest(source: Path, store: Path) -> int:
    os.environ["RAGGUARD_SIGNING_KEY"] = SIGNING_KEY
    try:
        args = ["ingest", str(source), "--store", str(store), "--key-id", "crash"]
        return ragguard_main([*args, "--no-progress", "--dim", str(DIM)])
    finally:
        del os.environ["RAGGUARD_SIGNING_KEY"]


def test_a_directory_left_by_an_in_place_create_is_recognised_and_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a create killed before this fix left: ``shard/wal/tmp-open-1`` only."""
    source = tmp_path / "two.jsonl"
    source.write_text('{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    dead = tmp_path / "shard"
    (dead / "wal").mkdir(parents=True)
    (dead / "wal" / "tmp-open-1").write_bytes(b"")
    with pytest.raises(rg.StoreError, match=r"interrupted EdgeStore\.create"):
        rg.EdgeStore.open(dead)
    assert _ingest(source, dead) == 0, capsys.readouterr().err
    with rg.EdgeStore.open(dead) as store:
        assert store.count() == 2
    # EdgeStore.create replaces such a directory too, but never a real one
    other = tmp_path / "other"
    (other / "segments").mkdir(parents=True)
    (other / "wal").mkdir()
    (other / ".atomicwriteAbC123").mkdir()
    rg.EdgeStore.create(other, dim=DIM).close()
    with pytest.raises(rg.StoreError, match="already exists and is not empty"):
        rg.EdgeStore.create(other, dim=DIM)
    stranger = tmp_path / "stranger"
    (stranger / "wal").mkdir(parents=True)
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(rg.StoreError, match="already exists and is not empty"):
        rg.EdgeStore.create(stranger, dim=DIM)
    assert (stranger / "notes.txt").read_text() == "mine"


def test_create_removes_the_staging_directory_of_a_dead_creator_only(tmp_path: Path) -> None:
    dead = tmp_path / ".shard.creating-999999999-0badc0de"  # beyond any pid_max
    (dead / "wal").mkdir(parents=True)
    alive = tmp_path / f".shard.creating-{os.getpid()}-00000000"
    alive.mkdir()
    rg.EdgeStore.create(tmp_path / "shard", dim=DIM).close()
    assert not dead.exists()
    assert alive.exists()  # a create in progress in a live process is left alone


# -- a filesystem out of inodes or space (tmpfs, root only) ---------------------------


def test_an_audit_rotation_that_cannot_create_its_file_fails_closed_and_recovers(
    tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    """Inodes: the root, audit.jsonl, its .lock, one more: the second rotation fails."""
    root = tmpfs("size=2m,nr_inodes=4")
    path = root / "audit.jsonl"
    alice = rg.Subject(id="alice", attributes={"dept": "eng"})
    with rg.EdgeStore.create(tmp_path / "shard", dim=DIM) as store:
        store.upsert(
            rg.Chunk(text=f"c{i}", metadata={"dept": "eng"}, vector=QUERY, id=i) for i in range(5)
        )
        log = JsonlAuditLog(path, key=AUDIT_KEY, max_bytes=5000)
        guard = rg.Guard(
            rg.Policy.from_casbin(MODEL, POLICY), store, audit=log, audit_required=True
        )
        returned = 0
        failure: rg.AuditError | None = None
        while failure is None and returned < 100:
            try:
                assert guard.search(alice, QUERY, k=3)
                returned += 1
            except rg.AuditError as exc:
                failure = exc
        assert failure is not None, "the second rotation had no inode for its new file"
        assert os.strerror(errno.ENOSPC) in str(failure)  # no inode: "No space left on device"
        assert returned >= 4

        # Fail closed while the condition lasts; meanwhile another part of the process
        # opens a file, and may get any descriptor number the log had given up.
        other = os.open(tmp_path / "other.bin", os.O_RDWR | os.O_CREAT, 0o600)
        for _ in range(3):
            with pytest.raises(rg.AuditError):
                guard.search(alice, QUERY, k=3)

        # The condition clears: the same writer recovers by itself.
        remount(root, "nr_inodes=64")
        for _ in range(3):
            assert guard.search(alice, QUERY, k=3)
            returned += 1
        log.close()
        log.close()  # idempotent, and never touches a descriptor it gave up
        assert os.fstat(other).st_size == 0  # no audit bytes went into the other file
        os.close(other)
    result = verify_audit_log(path, key=AUDIT_KEY)
    assert result.ok, result.error
    assert result.records == returned
    assert len(result.files) == 3


def test_a_full_disk_is_a_store_error_not_a_sigbus(
    server: ForkServer, tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    """The engine writes through memory maps: on a full disk, a write is a SIGBUS."""
    root = tmpfs("size=128m")
    shard = root / "shard"
    status, _ = server.run("make_shard", tmp_path / "made", path=str(shard), points=100)
    assert status == 0, server.log_of_last()

    # Opening populates the vector storage (a 32 MiB map): refused on a small disk.
    remount(root, f"size={(used_bytes(root) + 6 * MIB) // 1024}k")
    status, reported = server.run("count", tmp_path / "open-small", shard=str(shard))
    assert status == 0, f"the worker died (status {status}):\n{server.log_of_last()}"
    assert reported[-1].startswith("refused "), reported
    assert "opening the edge shard" in reported[-1], reported[-1]
    assert "short by" in reported[-1], reported[-1]

    # Room to open, then upserts fill the disk: refused with the shortfall, never a
    # dead process.
    remount(root, f"size={(used_bytes(root) + 40 * MIB) // 1024}k")
    status, reported = server.run(
        "upsert_until_refused", tmp_path / "upsert", shard=str(shard), batch=500, text_size=200
    )
    assert status == 0, f"the worker died (status {status}):\n{server.log_of_last()}"
    refusal, index, optimize = reported[-3:]
    assert refusal.startswith("refused upserting"), reported[-4:]
    assert "short by" in refusal, refusal
    assert index.startswith("index refused creating payload indexes"), index
    assert optimize.startswith("optimize refused optimizing"), optimize
    acked = [int(line.split()[1]) for line in reported if line.startswith("acked ")]
    assert acked, "some upserts fit before the disk filled"

    # With room again the shard opens with every acknowledged point.
    remount(root, "size=256m")
    status, reported = server.run("count", tmp_path / "open-large", shard=str(shard))
    assert status == 0, server.log_of_last()
    assert reported[-1] == f"count {acked[-1]}"


def test_a_create_that_runs_out_of_inodes_leaves_nothing(tmpfs: Callable[[str], Path]) -> None:
    root = tmpfs("size=64m,nr_inodes=12")
    with pytest.raises(rg.StoreError, match="cannot create an edge shard"):
        rg.EdgeStore.create(root / "shard", dim=DIM)
    assert os.listdir(root) == []  # no half shard, no staging directory
    remount(root, "nr_inodes=4096")
    with rg.EdgeStore.create(root / "shard", dim=DIM) as store:
        assert store.count() == 0


def test_a_shard_created_on_a_mount_point_is_built_in_place_under_a_marker(
    tmpfs: Callable[[str], Path],
) -> None:
    """No rename reaches a mount point: the shard is built inside it, marked meanwhile."""
    root = tmpfs("size=64m")
    with rg.EdgeStore.create(root, dim=DIM) as store:
        store.upsert([rg.Chunk(text="a", metadata={}, vector=QUERY, id=1)])
    assert not (root / ".ragguard-creating").exists()
    with rg.EdgeStore.open(root) as store:
        assert store.count() == 1
    # What a create killed in place leaves: the marker and part of a shard.
    shutil.rmtree(root / "segments")
    (root / ".ragguard-creating").touch()
    with pytest.raises(rg.StoreError, match=r"interrupted EdgeStore\.create"):
        rg.EdgeStore.open(root)
    with rg.EdgeStore.create(root, dim=DIM) as store:
        assert store.count() == 0


def test_a_shard_created_on_a_bind_mount_is_built_in_place(
    tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    """A bind mount of a directory onto itself has its parent's device: the rename is
    refused (EBUSY), and the create falls back to building in place."""
    tmpfs("size=1m")  # root and a working mount command, or skip
    shard = tmp_path / "shard"
    shard.mkdir()
    subprocess.run(["mount", "--bind", str(shard), str(shard)], check=True)
    try:
        with rg.EdgeStore.create(shard, dim=DIM) as store:
            assert store.count() == 0
        assert sorted(os.listdir(shard)) == ["edge_config.json", "segments", "wal"]
        assert [name for name in os.listdir(tmp_path) if name.startswith(".shard.")] == []
    finally:
        subprocess.run(["umount", "-l", str(shard)], check=False)
