"""EdgeStore read replicas: snapshots, read-only replicas, atomic refresh, data_version."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ragguard as rg
from ragguard.audit import JsonlAuditLog, read_audit_records, verify_audit_log
from ragguard.stores.base import Chunk, IndexSpec
from ragguard.testing import in_memory_tracing

DIM = 16
POINTS = 200
MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj.tenant == r.sub.tenant && r.act == p.act
"""
ALICE = rg.Subject(id="alice", attributes={"tenant": "acme"})


def _chunks(generation: int, n: int = POINTS) -> list[Chunk]:
    """The same ids each generation; metadata ``gen`` says which write a point is from."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(n, DIM))
    return [
        Chunk(
            id=f"c{i}",
            text=f"chunk {i}",
            vector=vectors[i].tolist(),
            metadata={"tenant": "acme" if i % 2 == 0 else "globex", "gen": generation},
        )
        for i in range(n)
    ]


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[rg.EdgeStore]:
    store = rg.EdgeStore.create(tmp_path / "primary", dim=DIM)
    store.upsert(_chunks(1))
    yield store
    store.close()


def _gen(hit: rg.StoredChunk) -> int:
    assert hit.metadata is not None
    return int(hit.metadata["gen"])


def _query() -> list[float]:
    return list(np.ones(DIM) / np.sqrt(DIM))


def _everything(store: rg.EdgeStore) -> list[rg.StoredChunk]:
    return store.search(_query(), POINTS * 2, store.translate(rg.policy.ir.TRUE))


def test_a_replica_serves_the_snapshot_and_names_its_version(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    version = primary.snapshot(tmp_path / "snaps")
    assert primary.data_version is None
    assert not primary.is_replica
    primary.upsert(_chunks(2, n=POINTS + 10))  # after the snapshot: not in the replica
    assert primary.replica_dir is None
    with rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps") as replica:
        assert replica.is_replica
        assert replica.replica_dir == tmp_path / "r1"
        assert replica.path.parent == tmp_path / "r1"  # the version it serves lives inside
        assert replica.data_version == version
        assert replica.count() == POINTS
        hits = _everything(replica)
        assert {_gen(h) for h in hits} == {1}
        assert len(hits) == POINTS
        assert version in repr(replica)


def test_writes_to_a_replica_raise_store_error(primary: rg.EdgeStore, tmp_path: Path) -> None:
    primary.snapshot(tmp_path / "snaps")
    with rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps") as replica:
        with pytest.raises(rg.StoreError, match="read-only replica"):
            replica.upsert(_chunks(3, n=1))
        with pytest.raises(rg.StoreError, match="read-only replica"):
            replica.create_payload_indexes([IndexSpec("tenant", "keyword")])
        with pytest.raises(rg.StoreError, match="read-only replica"):
            replica.optimize()
        with pytest.raises(rg.StoreError, match="read-only replica"):
            replica.snapshot(tmp_path / "other")
        assert replica.count() == POINTS


def test_refresh_moves_to_the_newest_snapshot_and_removes_the_old_copy(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    snaps = tmp_path / "snaps"
    first = primary.snapshot(snaps)
    with rg.EdgeStore.open_replica(tmp_path / "r1", source=snaps) as replica:
        assert replica.refresh() is False  # nothing new
        primary.upsert(_chunks(2, n=POINTS + 50))
        second = primary.snapshot(snaps)
        assert second > first
        assert replica.refresh() is True
        assert replica.data_version == second
        assert replica.count() == POINTS + 50
        assert {_gen(h) for h in _everything(replica)} == {2}
        served = [p.name for p in (tmp_path / "r1").iterdir() if p.is_dir()]
        assert served == [second]


def test_snapshot_keeps_only_the_newest(primary: rg.EdgeStore, tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    versions = [primary.snapshot(snaps, keep=2) for _ in range(4)]
    assert sorted(p.name for p in snaps.iterdir() if p.is_dir()) == versions[-2:]
    assert (snaps / "LATEST").read_text().strip() == versions[-1]
    with pytest.raises(ValueError, match="keep"):
        primary.snapshot(snaps, keep=1)


def test_concurrent_snapshots_get_distinct_versions_and_searches_go_on(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    snaps = tmp_path / "snaps"
    versions: list[str] = []
    searched: list[int] = []

    def snapshot() -> None:
        versions.append(primary.snapshot(snaps, keep=10))

    def search() -> None:
        searched.append(len(_everything(primary)))

    threads = [threading.Thread(target=snapshot) for _ in range(3)]
    threads += [threading.Thread(target=search) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(versions)) == 3
    assert searched == [POINTS] * 3
    assert (snaps / "LATEST").read_text().strip() == max(versions)


def test_one_process_per_replica_directory(primary: rg.EdgeStore, tmp_path: Path) -> None:
    primary.snapshot(tmp_path / "snaps")
    replica = rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps")
    with pytest.raises(rg.ReplicaInUseError, match="in use") as info:
        rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps")
    assert isinstance(info.value, rg.StoreError)  # one tree: StoreError handlers still catch it
    replica.close()
    with rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps") as again:
        assert again.count() == POINTS


def test_no_snapshot_yet_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "snaps").mkdir()
    with pytest.raises(rg.StoreError, match="no snapshot"):
        rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps")
    # the lock was released: a later open (once a snapshot exists) is not refused
    (tmp_path / "snaps" / "LATEST").write_text("../../etc\n")
    with pytest.raises(rg.StoreError, match="names no snapshot"):
        rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps")


def test_a_failed_refresh_keeps_serving_the_old_version(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    snaps = tmp_path / "snaps"
    first = primary.snapshot(snaps)
    with rg.EdgeStore.open_replica(tmp_path / "r1", source=snaps) as replica:
        second = primary.snapshot(snaps)
        shutil.rmtree(snaps / second)  # pruned or lost before the replica copied it
        with pytest.raises(rg.StoreError, match="missing or incomplete"):
            replica.refresh()
        assert replica.data_version == first
        assert replica.count() == POINTS
        assert sorted(p.name for p in (tmp_path / "r1").iterdir() if p.is_dir()) == [first]


def test_searches_during_refreshes_see_one_generation_each(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    """Every search returns points of one write generation, and data_version names it."""
    snaps = tmp_path / "snaps"
    generation_of = {primary.snapshot(snaps): 1}
    for generation in (2, 3, 4):
        primary.upsert(_chunks(generation))
        generation_of[primary.snapshot(snaps, keep=5)] = generation
    # replicas start at the newest; walk LATEST back and forth to force swaps
    ordered = sorted(generation_of)
    with rg.EdgeStore.open_replica(tmp_path / "r1", source=snaps) as replica:
        failures: list[str] = []
        seen: set[int] = set()
        stop = threading.Event()

        def search_loop() -> None:
            while not stop.is_set():
                hits = _everything(replica)
                generations = {_gen(h) for h in hits}
                version = replica.data_version
                if len(generations) != 1 or len(hits) != POINTS:
                    failures.append(f"mixed: {sorted(generations)} in {len(hits)} hits")
                elif version is None or generation_of[version] != generations.pop():
                    failures.append(f"data_version {version} does not match the hits")
                else:
                    seen.add(generation_of[version])

        threads = [threading.Thread(target=search_loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            for round_ in range(12):
                (snaps / "LATEST").write_text(ordered[round_ % len(ordered)] + "\n")
                replica.refresh()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == []
        assert len(seen) >= 2


def test_guard_puts_the_served_version_in_traces_and_audit_records(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    version = primary.snapshot(tmp_path / "snaps")
    provider, exporter = in_memory_tracing()
    policy = rg.Policy.from_casbin(MODEL, "p, anyone, read\n")
    log = tmp_path / "audit.jsonl"
    with (
        rg.EdgeStore.open_replica(tmp_path / "r1", source=tmp_path / "snaps") as replica,
        JsonlAuditLog(log, key=b"k") as audit,
    ):
        guard = rg.Guard(policy, replica, audit=audit, tracer_provider=provider)
        hits = guard.search(ALICE, _query(), k=5)
        assert len(hits) == 5
        assert all(h.metadata["tenant"] == "acme" for h in hits)
        plain = rg.Guard(policy, primary, audit=audit, tracer_provider=provider)
        plain.search(ALICE, _query(), k=5)
    replica_span, primary_span = exporter.get_finished_spans()
    assert replica_span.attributes is not None
    assert primary_span.attributes is not None
    assert replica_span.attributes["ragguard.data_version"] == version
    assert "ragguard.data_version" not in primary_span.attributes
    replica_record, primary_record = (entry.record for entry in read_audit_records(log))
    assert replica_record.data_version == version
    assert primary_record.data_version is None
    assert '"data_version"' not in log.read_text().splitlines()[1]
    assert verify_audit_log(log, key=b"k").ok


def _count_in_child(path: str, source: str, queue: multiprocessing.Queue[object]) -> None:
    try:
        with rg.EdgeStore.open_replica(path, source=source) as replica:
            queue.put((os.getpid(), replica.count(), replica.data_version))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put(repr(exc))


def test_replicas_in_other_processes_while_the_primary_is_open(
    primary: rg.EdgeStore, tmp_path: Path
) -> None:
    version = primary.snapshot(tmp_path / "snaps")
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[object] = context.Queue()
    children = [
        context.Process(
            target=_count_in_child,
            args=(str(tmp_path / f"r{i}"), str(tmp_path / "snaps"), queue),
        )
        for i in range(2)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert all(isinstance(r, tuple) and r[1:] == (POINTS, version) for r in results), results
    assert primary.count() == POINTS  # the primary stayed open and usable
