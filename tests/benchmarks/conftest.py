"""Shared fixtures of the performance benchmarks (``pytest tests/benchmarks``).

Scale knobs (environment variables):

* ``RAGGUARD_BENCH_SIZES`` — corpus sizes, comma-separated multiples of 2,000
  (default ``10000,100000``); ``RAGGUARD_BENCH_1M=1`` adds 1,000,000.
* ``RAGGUARD_BENCH_CACHE`` — where built shards are kept between runs (default
  ``<tmp>/ragguard-bench-cache``); a shard is rebuilt only when the generating code,
  the engine version, the size or the seed change.
* ``RAGGUARD_BENCH_ROUNDS`` — timed rounds per latency figure (default 300).
* ``RAGGUARD_BENCH_QUERIES`` — queries per recall figure (default 50).

Each shard is built in a subprocess (``_corpus.py build``), so its build time and peak
RSS are measured alone, and opened once per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import _corpus
import pytest
from _shards import Corpora, cache_root

import ragguard as rg


@pytest.fixture(scope="session")
def corpora() -> Iterator[Corpora]:
    shards = Corpora(cache_root())
    yield shards
    shards.close()


@pytest.fixture(scope="session")
def policy() -> rg.Policy:
    """The 1,000-line RBAC-with-domains + eval ABAC policy."""
    return rg.Policy.from_casbin(_corpus.MODEL, _corpus.policy_text(1000))


@pytest.fixture(scope="session")
def probes() -> dict[str, _corpus.Probe]:
    return _corpus.probe_subjects()


@pytest.fixture(scope="session")
def queries() -> list[list[float]]:
    """Query vectors as plain lists (what an application passes in)."""
    vectors: list[list[float]] = _corpus.query_vectors().tolist()
    return vectors
