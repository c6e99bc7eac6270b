"""Provenance cost: verifying the hits of one retrieval must add well under 1 ms.

Run with ``pytest tests/benchmarks/test_provenance_bench.py`` (benchmarks are not part
of the default run). Each benchmark also asserts its budget, so a regression fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from ragguard.provenance import ProvenanceCheck, Signer, canonical_json

pytest.importorskip("pytest_benchmark")

KEY = "benchmark-key-0123456789abcdef0123"
HITS = 10


def _metadata(index: int) -> dict[str, Any]:
    """Metadata of a realistic chunk: tenant, ACL fields, labels, source."""
    return {
        "tenant": "acme",
        "dept": "engineering",
        "level": index % 4,
        "public": False,
        "groups": ["eng", "platform", "oncall"],
        "classification": "internal",
        "source": f"s3://acme-docs/eng/runbook-{index}.md",
        "doc_id": f"runbook-{index}",
        "chunk_index": index,
        "score_boost": 0.25,
    }


def _text(index: int) -> str:
    """About 1 kB of chunk text."""
    return f"Runbook {index}: " + "restart the ingestion workers, then check the queue depth. " * 17


@pytest.fixture(scope="module")
def signed_hits() -> list[tuple[str, dict[str, Any]]]:
    signer = Signer(key=KEY, key_id="2025-01")
    return [
        (
            _text(i),
            signer.sign(_text(i), _metadata(i), source=f"runbook-{i}", doc_id=f"runbook-{i}"),
        )
        for i in range(HITS)
    ]


def test_verify_ten_hits(benchmark: Any, signed_hits: list[tuple[str, dict[str, Any]]]) -> None:
    """Verifying ten signed hits (1 kB text, 10 fields + tag) costs well under 1 ms."""
    check = ProvenanceCheck(keys={"2025-01": KEY, "2024-07": KEY + "-old"}, mode="require")

    def verify_all() -> int:
        return sum(check.verify(text, metadata).released for text, metadata in signed_hits)

    assert benchmark(verify_all) == HITS
    assert benchmark.stats.stats.median < 0.001


def test_verify_ten_tampered_hits(
    benchmark: Any, signed_hits: list[tuple[str, dict[str, Any]]]
) -> None:
    """Diagnosing ten tampered hits (the slow path: a second digest) stays under 1 ms."""
    check = ProvenanceCheck(keys={"2025-01": KEY})
    tampered = [(text, {**metadata, "public": True}) for text, metadata in signed_hits]

    def verify_all() -> int:
        return sum(check.verify(text, metadata).released for text, metadata in tampered)

    assert benchmark(verify_all) == 0
    assert benchmark.stats.stats.median < 0.001


def test_sign_ten_chunks(benchmark: Any) -> None:
    """Signing is as cheap as verifying: ten chunks well under 1 ms."""
    signer = Signer(key=KEY, key_id="2025-01")
    chunks = [(_text(i), _metadata(i)) for i in range(HITS)]

    def sign_all() -> int:
        return len([signer.sign(text, metadata) for text, metadata in chunks])

    assert benchmark(sign_all) == HITS
    assert benchmark.stats.stats.median < 0.001


def test_canonical_json_of_one_chunk(benchmark: Any) -> None:
    """Canonicalising one chunk's metadata takes microseconds."""
    metadata = _metadata(3)
    assert benchmark(canonical_json, metadata).startswith(b'{"chunk_index":3')
    assert benchmark.stats.stats.median < 0.0001


@pytest.fixture(scope="module")
def signed_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ragguard.provenance import Ingestor
    from ragguard.stores.edge import EdgeStore
    from ragguard.testing import HashEmbedder

    store = EdgeStore.create(str(tmp_path_factory.mktemp("bench") / "shard"), dim=64)
    documents = [{"id": i, "text": _text(i), "metadata": _metadata(i)} for i in range(500)]
    Ingestor(
        store,
        signer=Signer(key=KEY, key_id="2025-01"),
        embeddings=HashEmbedder(dim=64),
        progress=False,
    ).ingest(documents)
    store.optimize()
    yield store
    store.close()


@pytest.mark.parametrize("provenance", ["none", "require"])
def test_guarded_search_with_and_without_provenance(
    benchmark: Any, signed_store: Any, provenance: str
) -> None:
    """A k=10 guarded search on EdgeStore, with and without verification (compare the two)."""
    import ragguard as rg
    from ragguard.testing import HashEmbedder

    policy = rg.Policy.from_casbin(
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, act\n"
        "[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.act == p.act\n",
        "p, anyone, read\n",
    )
    check = ProvenanceCheck(keys={"2025-01": KEY}) if provenance == "require" else None
    guard = rg.Guard(policy, signed_store, provenance=check)
    vector = HashEmbedder(dim=64).embed_query("restart the ingestion workers")
    alice = rg.Subject(id="alice")
    hits = benchmark(guard.search, alice, vector, 10)
    assert len(hits) == 10
