"""HashEmbedder throughput: 10,000 short texts embed in under two seconds.

Moved here from the default run (a wall-clock budget fails on a loaded machine); run
with ``pytest tests/benchmarks/test_embedder_bench.py``. The benchmark asserts its
budget, so a regression fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from ragguard.testing import HashEmbedder

pytest.importorskip("pytest_benchmark")

TEXTS = [
    f"ticket {i}: {word} latency in {word}-service region {i % 17} owner user{i}"
    for i, word in enumerate(["payments", "ledger", "salary", "runbook", "pager"] * 2000)
]


def test_embed_ten_thousand_texts_on_a_fresh_embedder(benchmark: Any) -> None:
    """10,000 short, mostly distinct texts, a new embedder (cold caches) per round."""

    def embed() -> Any:
        return HashEmbedder().embed_array(TEXTS)

    vectors = benchmark.pedantic(embed, rounds=3, iterations=1)
    assert vectors.shape == (10_000, 384)
    assert benchmark.stats.stats.median < 2.0
