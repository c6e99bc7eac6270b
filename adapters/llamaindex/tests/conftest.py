"""Shared fixtures: the demo policy over the demo corpus, signed, in a real EdgeStore."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import ragguard as rg
from ragguard._demo.run import load_policy
from ragguard.testing import HashEmbedder, sample_corpus

DIM = 64
KEY = b"llamaindex-adapter-test-key-32-b"
KEY_ID = "test-2026"


@pytest.fixture(scope="session")
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=DIM)


@pytest.fixture(scope="session")
def policy() -> rg.Policy:
    return load_policy()


@pytest.fixture(scope="session")
def li_store(
    tmp_path_factory: pytest.TempPathFactory, embedder: HashEmbedder
) -> Iterator[rg.EdgeStore]:
    """A signed copy of the demo corpus in an EdgeStore, written once per session."""
    path = tmp_path_factory.mktemp("llamaindex") / "shard"
    with rg.EdgeStore.create(path, dim=DIM, distance="cosine") as store:
        signer = rg.Signer(key=KEY, key_id=KEY_ID)
        rg.Ingestor(store, signer=signer, embeddings=embedder, progress=False).ingest(
            sample_corpus()
        )
        store.optimize()
        yield store


@pytest.fixture(scope="session")
def li_guard(policy: rg.Policy, li_store: rg.EdgeStore) -> rg.Guard:
    return rg.Guard(
        policy, li_store, provenance=rg.ProvenanceCheck(keys={KEY_ID: KEY}, mode="require")
    )
