"""Fork server for the crash suite (tests/integration/test_crash.py).

Started once per test module: it imports ragguard (about 1.5 s of Python start-up),
then reads one JSON request per line on stdin and answers one JSON line on stdout:

* ``{"job": NAME, "args": {...}, "log": PATH}`` forks a worker that runs ``NAME``
  (stdout and stderr go to ``log``) and answers ``{"pid": PID}``; the test kills the
  worker with SIGKILL whenever it likes;
* ``{"wait": PID}`` reaps that worker and answers ``{"status": EXITCODE}`` (negative:
  killed by that signal, e.g. -9 for SIGKILL, -7 for SIGBUS).

Workers report progress by appending lines to an ``out`` file (one ``os.write`` per
line, so a line is whole or absent after a kill). Nothing here asserts: the test
checks the invariants on what the workers leave behind.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import ragguard as rg
from ragguard._cli import main as ragguard_main
from ragguard.audit import JsonlAuditLog
from ragguard.stores import IndexSpec

DIM = 8
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


def chunk(i: int, text_size: int = 40) -> rg.Chunk:
    """Chunk ``i`` of the shards the suite builds (every third one is in "hr")."""
    vector = [1.0, (i % 97) / 97, (i % 13) / 13, 0.5, 0.0, 0.25, (i % 7) / 7, 1.0]
    return rg.Chunk(
        text=f"chunk {i} " + "x" * text_size,
        metadata={"dept": "hr" if i % 3 == 0 else "eng", "n": i},
        vector=vector,
        id=i,
    )


class _Out:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def line(self, text: str) -> None:
        os.write(self._fd, (text + "\n").encode())


def make_shard(path: str, points: int, out: str) -> None:
    with rg.EdgeStore.create(path, dim=DIM) as store:
        store.upsert(chunk(i) for i in range(points))
    _Out(out).line("made")


def search(
    shard: str, audit: str, key: str, fsync: str, max_bytes: int, worker: str, out: str
) -> None:
    """Audited searches (audit_required=True) until killed; each returned one is noted."""
    report = _Out(out)
    store = rg.EdgeStore.open(shard)
    log = JsonlAuditLog(audit, key=key, fsync=fsync, max_bytes=max_bytes)  # type: ignore[arg-type]
    guard = rg.Guard(rg.Policy.from_casbin(MODEL, POLICY), store, audit=log, audit_required=True)
    report.line("ready")
    for i in range(1_000_000):
        subject = rg.Subject(id=f"{worker}-{i}", attributes={"dept": "eng"})
        hits = guard.search(subject, chunk(i).vector, k=3)
        if hits:  # returned to the caller: its record must be in the log
            report.line(subject.id)


def ingest(file: str, store: str, key: str, out: str) -> None:
    """``ragguard ingest`` as a user runs it."""
    report = _Out(out)
    os.environ["RAGGUARD_SIGNING_KEY"] = key
    report.line("ready")
    args = ["ingest", file, "--store", store, "--key-id", "crash", "--dim", str(DIM)]
    code = ragguard_main([*args, "--no-progress", "--batch-size", "100"])
    report.line(f"exit {code}")


def create(path: str, out: str) -> None:
    report = _Out(out)
    store = rg.EdgeStore.create(path, dim=DIM)
    report.line("created")
    store.close()


def upsert_until_refused(shard: str, batch: int, text_size: int, out: str) -> None:
    """Upsert batches until the store refuses (reporting each acknowledged batch), then
    try a payload index and an optimize on the full disk."""
    report = _Out(out)
    try:
        store = rg.EdgeStore.open(shard)
    except rg.StoreError as exc:
        report.line(f"refused {exc}")
        return
    done = store.count()
    try:
        while True:
            store.upsert(chunk(i, text_size) for i in range(done, done + batch))
            done += batch
            report.line(f"acked {done}")
    except rg.StoreError as exc:
        report.line(f"refused {exc}")

        # The other writes on the same full disk.
        def index() -> None:
            store.create_payload_indexes([IndexSpec("dept", "keyword")])

        for name, write in (("index", index), ("optimize", store.optimize)):
            try:
                write()
                report.line(f"{name} done")
            except rg.StoreError as refused:
                report.line(f"{name} refused {refused}")
    finally:
        store.close()


def count(shard: str, out: str) -> None:
    """Open the shard and report its point count, or the refusal."""
    report = _Out(out)
    try:
        store = rg.EdgeStore.open(shard)
    except rg.StoreError as exc:
        report.line(f"refused {exc}")
        return
    with store:
        report.line(f"count {store.count()}")


JOBS: dict[str, Callable[..., None]] = {
    "make_shard": make_shard,
    "search": search,
    "ingest": ingest,
    "create": create,
    "upsert_until_refused": upsert_until_refused,
    "count": count,
}


def _worker(request: dict[str, Any]) -> None:
    code = 0
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        JOBS[request["job"]](**request["args"])
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    if threading.active_count() != 1:  # a fork would copy another thread's locks
        raise SystemExit(f"fork server has {threading.active_count()} threads, expected 1")
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "wait" in request:
            _, status = os.waitpid(request["wait"], 0)
            reply: dict[str, Any] = {"status": os.waitstatus_to_exitcode(status)}
        else:
            pid = os.fork()
            if pid == 0:
                _worker(request)
            reply = {"pid": pid}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
