"""Shared fixtures: the demo policy over the demo corpus, signed, in a real EdgeStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import ragguard as rg
from ragguard._demo.run import load_policy
from ragguard.testing import HashEmbedder, sample_corpus

DIM = 64
KEY = b"langchain-adapter-test-key-32-by"
KEY_ID = "test-2026"


@pytest.fixture(scope="session")
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=DIM)


@pytest.fixture(scope="session")
def policy() -> rg.Policy:
    return load_policy()


@pytest.fixture(scope="session")
def shard(tmp_path_factory: pytest.TempPathFactory, embedder: HashEmbedder) -> Path:
    """A signed copy of the demo corpus, written once per session."""
    path = tmp_path_factory.mktemp("langchain") / "shard"
    with rg.EdgeStore.create(path, dim=DIM, distance="cosine") as store:
        signer = rg.Signer(key=KEY, key_id=KEY_ID)
        rg.Ingestor(store, signer=signer, embeddings=embedder, progress=False).ingest(
            sample_corpus()
        )
        store.optimize()
    return path


@pytest.fixture(scope="session")
def store(shard: Path) -> Iterator[rg.EdgeStore]:
    with rg.EdgeStore.open(shard) as opened:
        yield opened


@pytest.fixture(scope="session")
def guard(policy: rg.Policy, store: rg.EdgeStore) -> rg.Guard:
    return rg.Guard(
        policy, store, provenance=rg.ProvenanceCheck(keys={KEY_ID: KEY}, mode="require")
    )
