"""Benchmark settings from the environment, and the built shards (see ``conftest.py``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _corpus
import numpy as np
import numpy.typing as npt
from _measure import env_int, rss_mib

import ragguard as rg


def bench_sizes() -> list[int]:
    """The corpus sizes to benchmark, from the environment."""
    raw = os.environ.get("RAGGUARD_BENCH_SIZES", "10000,100000")
    sizes = [int(part) for part in raw.split(",") if part.strip()]
    if os.environ.get("RAGGUARD_BENCH_1M", "").strip() not in ("", "0"):
        sizes.append(1_000_000)
    return sorted(set(sizes))


SIZES = bench_sizes()
ROUNDS = env_int("RAGGUARD_BENCH_ROUNDS", 300)
RECALL_QUERIES = env_int("RAGGUARD_BENCH_QUERIES", 50)


def cache_root() -> Path:
    configured = os.environ.get("RAGGUARD_BENCH_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "ragguard-bench-cache"


@dataclass
class Corpus:
    """One built shard, opened, with what the oracles need."""

    n: int
    directory: Path
    store: rg.EdgeStore
    vectors: npt.NDArray[np.float32]
    metadata: list[dict[str, Any]]
    build: dict[str, Any]
    open_rss_mib: float
    """How much this process's RSS grew when the shard was opened."""

    def readable_mask(self, probe: _corpus.Probe) -> npt.NDArray[np.bool_]:
        """Which chunks ``probe`` may read, by its hand-written predicate."""
        return np.fromiter((probe.readable(md) for md in self.metadata), bool, len(self.metadata))


class Corpora:
    """Shards by size: built on first use (or found in the cache), opened once."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._open: dict[int, Corpus] = {}

    def get(self, n: int) -> Corpus:
        corpus = self._open.get(n)
        if corpus is None:
            corpus = self._load(n)
            self._open[n] = corpus
        return corpus

    def _load(self, n: int) -> Corpus:
        directory = self._root / _corpus.cache_key(n, 0)
        self._root.mkdir(parents=True, exist_ok=True)
        with _locked(self._root / f"{directory.name}.lock"):
            if not (directory / "build_info.json").exists():
                shutil.rmtree(directory, ignore_errors=True)
                subprocess.run(
                    [sys.executable, str(Path(_corpus.__file__)), "build", str(directory), str(n)],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
        build = json.loads((directory / "build_info.json").read_text(encoding="utf-8"))
        vectors = np.load(directory / "vectors.npy", mmap_mode="r")
        before = rss_mib()
        store = rg.EdgeStore.open(directory / "shard")
        opened = rss_mib() - before
        metadata = _corpus.chunk_metadata(n)
        return Corpus(n, directory, store, vectors, metadata, build, opened)

    def close(self) -> None:
        for corpus in self._open.values():
            corpus.store.close()
        self._open.clear()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so two benchmark runs never build the same shard at once."""
    with open(path, "w", encoding="ascii") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
