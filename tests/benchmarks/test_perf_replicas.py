"""Worker processes on read replicas: throughput with P processes, and what a replica costs.

``EdgeShard.query`` holds the GIL for the whole search and a shard directory opens in
one process only, so one process searches on one core. Here P worker processes each
open their own replica (``EdgeStore.open_replica``) of one snapshot of the benchmark
shard and run guarded searches (bob, k=10, provenance verified, no tracing provider)
for a fixed window; total searches/s with P = 2 against P = 1, measured in alternating
windows with the same warm workers, ratio = median of the per-round ratios. Also: the
time and disk of a snapshot, a replica's open time and memory, a refresh's time.

One command::

    pytest tests/benchmarks/test_perf_replicas.py              # P = 1, 2 at 100,000 chunks
    RAGGUARD_BENCH_PROCESSES=1,4,8,16 pytest tests/benchmarks/test_perf_replicas.py

``RAGGUARD_BENCH_REPLICA_SIZE`` picks the corpus (default 100,000),
``RAGGUARD_BENCH_WINDOW`` the seconds per window (default 4). Target: P processes reach
at least 0.8·P (P = 2) / 0.6·P (P > 2) times one process; the machine's load averages
are recorded beside the figures (a shared machine cannot give a second process a free
core).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import _corpus
import pytest
from _measure import Report, env_int, median, rss_mib
from _shards import Corpora

import ragguard as rg

K = 10
SIZE = env_int("RAGGUARD_BENCH_REPLICA_SIZE", 100_000)
WINDOW = float(os.environ.get("RAGGUARD_BENCH_WINDOW", "4"))
ROUNDS = env_int("RAGGUARD_BENCH_REPLICA_ROUNDS", 3)
PROCESSES = [
    int(p) for p in os.environ.get("RAGGUARD_BENCH_PROCESSES", "1,2").split(",") if p.strip()
]


def _allocated_mib(root: Path) -> float:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue
    return total / (1 << 20)


def _worker(replica_dir: str, source: str, conn: Connection) -> None:
    """Open a replica, warm it, then run guarded searches for each window asked."""
    rss_start = rss_mib()
    policy = rg.Policy.from_casbin(_corpus.MODEL, _corpus.policy_text(1000))
    probe = _corpus.probe_subjects()["bob"]
    queries: list[list[float]] = _corpus.query_vectors().tolist()
    check = rg.ProvenanceCheck(keys={_corpus.SIGNING_KEY_ID: _corpus.SIGNING_KEY}, mode="verify")
    rss_imported = rss_mib()
    replica = rg.EdgeStore.open_replica(replica_dir, source=source)
    guard = rg.Guard(policy, replica, provenance=check)
    rss_open = rss_mib()
    for i in range(300):
        guard.search(probe.subject, queries[i % len(queries)], K)
    conn.send((rss_start, rss_imported, rss_open, rss_mib()))
    i = 0
    while True:
        command = conn.recv()
        if command is None:
            break
        deadline = time.perf_counter() + float(command)
        started, cpu_started = time.perf_counter(), time.process_time()
        count = 0
        while time.perf_counter() < deadline:
            guard.search(probe.subject, queries[i % len(queries)], K)
            i += 1
            count += 1
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        conn.send((count / wall, cpu / wall, count / cpu if cpu else 0.0))
    replica.close()


def test_replica_throughput_and_costs(benchmark: Any, corpora: Corpora, tmp_path: Path) -> None:
    corpus = corpora.get(SIZE)
    primary = corpus.store
    snapshots = tmp_path / "snapshots"
    load_before = os.getloadavg()

    # -- what a snapshot and a replica cost ----------------------------------------------
    started = time.perf_counter()
    first = primary.snapshot(snapshots)
    snapshot_s = time.perf_counter() - started
    snapshot_mib = _allocated_mib(snapshots / first)
    before = rss_mib()
    started = time.perf_counter()
    replica = rg.EdgeStore.open_replica(tmp_path / "probe-replica", source=snapshots)
    open_s = time.perf_counter() - started
    opened_rss = rss_mib() - before
    replica_mib = _allocated_mib(tmp_path / "probe-replica")
    second = primary.snapshot(snapshots)
    started = time.perf_counter()
    assert replica.refresh()
    refresh_s = time.perf_counter() - started
    assert replica.data_version == second
    assert replica.count() == SIZE
    replica.close()
    shutil.rmtree(tmp_path / "probe-replica")

    # -- P worker processes, one replica each ----------------------------------------------
    context = multiprocessing.get_context("spawn")
    most = max(PROCESSES)
    pipes: list[Connection] = []
    workers = []
    for index in range(most):
        parent, child = context.Pipe()
        process = context.Process(
            target=_worker, args=(str(tmp_path / f"replica-{index}"), str(snapshots), child)
        )
        process.start()
        pipes.append(parent)
        workers.append(process)
    rss = [pipe.recv() for pipe in pipes]
    rates: dict[int, list[float]] = {p: [] for p in PROCESSES}
    cores: dict[int, list[float]] = {p: [] for p in PROCESSES}
    per_cpu_s: dict[int, list[float]] = {p: [] for p in PROCESSES}

    def measure_all() -> None:
        for _ in range(ROUNDS):
            for p in PROCESSES:
                for pipe in pipes[:p]:
                    pipe.send(WINDOW)
                answers = [pipe.recv() for pipe in pipes[:p]]
                rates[p].append(sum(a[0] for a in answers))
                cores[p].append(sum(a[1] for a in answers))
                per_cpu_s[p].append(median([a[2] for a in answers]))

    try:
        benchmark.pedantic(measure_all, rounds=1, iterations=1)
    finally:
        for pipe in pipes:
            pipe.send(None)
        for process in workers:
            process.join(timeout=60)
    load_after = os.getloadavg()

    report = Report(benchmark, "replicas", size=SIZE, subject="bob", k=K)
    report.figure("cpus", os.cpu_count())
    report.figure("load average before (1, 5, 15 min)", [round(x, 2) for x in load_before])
    report.figure("load average after (1, 5, 15 min)", [round(x, 2) for x in load_after])
    report.figure("snapshot s", round(snapshot_s, 3))
    report.figure("snapshot disk MiB", round(snapshot_mib, 1))
    report.figure("replica disk MiB", round(replica_mib, 1))
    report.figure("replica open s", round(open_s, 3))
    report.figure("replica open RSS MiB", round(opened_rss, 1))
    report.figure("refresh s", round(refresh_s, 3))
    report.figure(
        "worker RSS MiB (start, imported, replica open, after 300 searches)",
        [round(x, 1) for x in rss[0]],
    )
    one = rates[PROCESSES[0]]
    for p in PROCESSES:
        report.figure(f"{p} processes /s", round(median(rates[p]), 1))
        # CPU the workers got (cores busy, summed) and searches per CPU-second: on a
        # shared machine the first says how much a second process could run at all.
        report.figure(f"{p} processes cores used", round(median(cores[p]), 2))
        report.figure(f"{p} processes searches per cpu-s", round(median(per_cpu_s[p]), 1))
        if p == PROCESSES[0]:
            continue
        ratio = median([many / single for many, single in zip(rates[p], one, strict=True)])
        report.figure(f"{p} processes / 1", round(ratio, 3))
        target = 0.8 * p if p <= 2 else 0.6 * p
        report.check(
            f"{p} processes on replicas vs 1 ({SIZE:,}, {os.cpu_count()} cpus)",
            ratio,
            ">=",
            target,
        )
    report.figure("rounds /s", {str(p): [round(r, 1) for r in rates[p]] for p in PROCESSES})
    if len(PROCESSES) < 2:
        pytest.skip("one process count only: nothing to compare")
    report.assert_checks()
