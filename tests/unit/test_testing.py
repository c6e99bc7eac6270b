"""ragguard.testing: the hash embedder, span capture, the demo corpus, policy and scenario."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from opentelemetry import trace

import ragguard as rg
from ragguard.exceptions import MissingDependencyError
from ragguard.testing import (
    CorpusDocument,
    HashEmbedder,
    clustered_vectors,
    in_memory_tracing,
    sample_corpus,
)

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "Salary bands FY2025: Senior Software Engineer L5 $165,000-$198,000.",
    "On-call runbook: restart billing-service with kubectl rollout restart.",
    "Ünïcödé text, emoji 🚀 and numbers 42 3.14",
    "",
]
TENANTS = {"acme", "globex", "initech"}
DEPARTMENTS = {"engineering", "finance", "hr", "legal", "sales"}


def _demo_text(name: str) -> str:
    return resources.files("ragguard._demo").joinpath(name).read_text(encoding="utf-8")


def _demo_policy() -> rg.Policy:
    return rg.Policy.from_casbin(_demo_text("model.conf"), _demo_text("policy.csv"))


def _scenario_users() -> dict[str, rg.Subject]:
    scenario = json.loads(_demo_text("scenario.json"))
    return {
        user["id"]: rg.Subject(id=user["id"], attributes=user["attributes"])
        for user in scenario["users"]
    }


def _ranked(question: str, documents: list[CorpusDocument]) -> list[CorpusDocument]:
    embedder = HashEmbedder()
    matrix = embedder.embed_array([doc.text for doc in documents])
    scores = matrix @ np.asarray(embedder.embed_query(question))
    return [documents[i] for i in np.argsort(-scores, kind="stable")]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_demo_corpus", REPO / "scripts" / "make_demo_corpus.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


# -- HashEmbedder ------------------------------------------------------------------------


def test_embedder_is_identical_across_processes() -> None:
    """Two interpreters with different hash seeds produce bit-identical vectors."""
    code = (
        "import json, sys\n"
        "from ragguard.testing import HashEmbedder\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps(HashEmbedder(dim=64, seed=7).embed_documents(texts)))\n"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(TEXTS),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=REPO,
        )
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == HashEmbedder(dim=64, seed=7).embed_documents(TEXTS)


def test_embedder_output_is_pinned() -> None:
    """The vectors for a fixed text never change (the demo and users' fixtures rely on it)."""
    vector = HashEmbedder(dim=32, seed=0).embed_query("What are the salary bands?")
    digest = hashlib.sha256(json.dumps([round(x, 6) for x in vector]).encode()).hexdigest()
    assert digest[:16] == "700bbce228908cf4"


@pytest.mark.parametrize("dim", [1, 7, 384, 1536])
def test_embedder_returns_vectors_of_its_dimension(dim: int) -> None:
    """Every vector has exactly ``dim`` floats, for documents and queries."""
    embedder = HashEmbedder(dim=dim)
    documents = embedder.embed_documents(TEXTS)
    assert len(documents) == len(TEXTS)
    assert all(len(vector) == dim for vector in documents)
    assert len(embedder.embed_query("hello")) == dim
    assert embedder.dim == dim
    assert all(isinstance(x, float) for x in documents[0])


@pytest.mark.parametrize("dim", [0, -3, True, 2.5])
def test_embedder_rejects_bad_dimensions(dim: object) -> None:
    """A dimension that is not a positive integer is refused at construction."""
    with pytest.raises(ValueError, match="dim"):
        HashEmbedder(dim=dim)  # type: ignore[arg-type]


def test_embedder_vectors_are_unit_length() -> None:
    """Every vector, including the empty text's, has L2 norm 1."""
    vectors = np.asarray(HashEmbedder().embed_documents([*TEXTS, "a", "x " * 500, "the of"]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-12)


def test_featureless_texts_share_one_fixed_unit_vector() -> None:
    """Empty, blank, punctuation-only and stopword-only texts embed to one one-hot vector."""
    embedder = HashEmbedder(dim=64)
    vectors = embedder.embed_documents(["", "   \n", "?!… --", "the and of"])
    assert all(vector == vectors[0] for vector in vectors)
    assert sorted(abs(x) for x in vectors[0])[-2:] == [0.0, 1.0]
    assert embedder.embed_query("") != HashEmbedder(dim=64, seed=1).embed_query("")


def test_embedder_is_a_function_of_text_only() -> None:
    """A text embeds the same alone, in a batch, as a query, and through the async API."""
    import asyncio

    embedder = HashEmbedder()
    batch = embedder.embed_documents(TEXTS)
    assert [embedder.embed_query(text) for text in TEXTS] == batch
    assert HashEmbedder().embed_documents(list(reversed(TEXTS))) == list(reversed(batch))
    assert asyncio.run(embedder.aembed_documents(TEXTS)) == batch
    assert asyncio.run(embedder.aembed_query(TEXTS[0])) == batch[0]


def test_seed_selects_an_unrelated_vector_space() -> None:
    """Different seeds give near-orthogonal vectors for the same text."""
    text = "quarterly revenue forecast and gross margin"
    first = np.asarray(HashEmbedder(seed=0).embed_query(text))
    second = np.asarray(HashEmbedder(seed=1).embed_query(text))
    assert abs(float(first @ second)) < 0.3


def test_related_texts_are_closer_than_unrelated_ones() -> None:
    """Inflected forms and shared words raise cosine similarity; disjoint topics stay low."""
    embedder = HashEmbedder()
    query, related, unrelated = embedder.embed_array(
        [
            "salaries of senior engineers",
            "Senior engineer salary bands",
            "restart the webhook relay when the pager fires",
        ]
    )
    assert float(query @ related) > 0.5
    assert float(query @ unrelated) < 0.15


def test_salary_question_ranks_salary_chunk_above_runbook() -> None:
    """Over the demo corpus a salary question puts salary bands first and runbooks lower."""
    ranked = _ranked("What are the salary bands for senior software engineers?", sample_corpus())
    kinds = [doc.metadata["doc_type"] for doc in ranked]
    assert kinds[0] == "salary_bands"
    assert kinds.index("salary_bands") < kinds.index("runbook")


def test_runbook_question_ranks_runbook_above_salary_chunk() -> None:
    """The converse: an on-call question puts a runbook first and salary bands lower."""
    ranked = _ranked(
        "How do I restart a service and roll back a bad deploy when I am on call?",
        sample_corpus(),
    )
    kinds = [doc.metadata["doc_type"] for doc in ranked]
    assert kinds[0] == "runbook"
    assert kinds.index("runbook") < kinds.index("salary_bands")


def test_embedder_works_as_langchain_embeddings() -> None:
    """LangChain accepts the embedder by duck typing: an in-memory vector store ranks with it."""
    vectorstores = pytest.importorskip("langchain_core.vectorstores")
    store = vectorstores.InMemoryVectorStore(embedding=HashEmbedder())
    store.add_texts(
        ["Engineering salary bands for L5 and L6", "Runbook: restart the ledger service"]
    )
    [best] = store.similarity_search("what are the salary bands?", k=1)
    assert best.page_content.startswith("Engineering salary bands")


def test_in_memory_tracing_captures_spans_without_a_global_provider() -> None:
    """Spans from the returned provider land in the exporter; the global provider is untouched."""
    global_before = trace.get_tracer_provider()
    provider, exporter = in_memory_tracing()
    with provider.get_tracer("test").start_as_current_span("ragguard.retrieve") as span:
        span.set_attribute("ragguard.k", 5)
    [finished] = exporter.get_finished_spans()
    assert finished.name == "ragguard.retrieve"
    assert finished.attributes is not None
    assert finished.attributes["ragguard.k"] == 5
    assert trace.get_tracer_provider() is global_before
    assert trace.get_tracer_provider() is not provider


def test_in_memory_tracing_without_sdk_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry-sdk the error is MissingDependencyError with the pip hint."""
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(MissingDependencyError, match="pip install opentelemetry-sdk"):
        in_memory_tracing()


# -- the demo corpus -------------------------------------------------------------------------


def test_corpus_is_well_formed() -> None:
    """Unique UUID ids, non-empty texts, flat metadata of str/int/bool, contiguous chunks."""
    documents = sample_corpus()
    assert 300 <= len(documents) <= 500
    ids = [doc.id for doc in documents]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(doc_id)) == doc_id for doc_id in ids)
    required = {
        "tenant": str, "dept": str, "level": int, "owner": str, "doc_id": str,
        "doc_type": str, "title": str, "chunk_index": int, "source": str,
        "updated": str, "pii": bool,
    }  # fmt: skip
    chunks: defaultdict[str, list[int]] = defaultdict(list)
    for doc in documents:
        assert doc.text.strip(), doc.id
        assert "{" not in doc.text, doc.id  # every template slot was filled
        for key, kind in required.items():
            assert type(doc.metadata[key]) is kind, (doc.id, key)
        assert all(type(value) in (str, int, bool) for value in doc.metadata.values())
        assert set(doc.metadata) <= {*required, "label"}
        assert str(doc.metadata["doc_id"]).startswith(f"{doc.metadata['tenant']}-")
        chunks[str(doc.metadata["doc_id"])].append(int(doc.metadata["chunk_index"]))
    assert all(sorted(indexes) == list(range(len(indexes))) for indexes in chunks.values())


def test_corpus_covers_every_tenant_department_and_level() -> None:
    """Each tenant has every department and every clearance level, and legal-hold chunks."""
    documents = sample_corpus()
    for tenant in TENANTS:
        mine = [doc.metadata for doc in documents if doc.metadata["tenant"] == tenant]
        assert {md["dept"] for md in mine} == DEPARTMENTS
        assert {md["level"] for md in mine} == {0, 1, 2, 3}
        assert any(md.get("label") == "legal_hold" for md in mine)
    assert {doc.metadata["tenant"] for doc in documents} == TENANTS


def test_corpus_contains_the_sensitive_material_the_demo_protects() -> None:
    """Restricted chunks hold salary figures, an acquisition codename and an incident."""
    restricted = " ".join(doc.text for doc in sample_corpus() if doc.metadata["level"] == 3)
    for needle in ("Senior Software Engineer L5 $165,000", "Project Nightjar", "SEC-2025-007"):
        assert needle in restricted
    public = " ".join(doc.text for doc in sample_corpus() if doc.metadata["level"] == 0)
    assert "Project Nightjar" not in public
    assert "$165,000" not in public


def test_sample_corpus_returns_independent_copies() -> None:
    """Mutating one call's result does not change the next call's."""
    first = sample_corpus()
    first[0].metadata["level"] = 99  # type: ignore[index]
    first.clear()
    second = sample_corpus()
    assert second
    assert second[0].metadata["level"] != 99


def test_corpus_document_converts_to_a_chunk() -> None:
    """to_chunk keeps id, text and metadata and attaches the vector."""
    doc = sample_corpus()[0]
    vector = HashEmbedder(dim=8).embed_query(doc.text)
    chunk = doc.to_chunk(vector)
    assert isinstance(chunk, rg.Chunk)
    assert (chunk.id, chunk.text, dict(chunk.metadata), list(chunk.vector)) == (
        doc.id, doc.text, dict(doc.metadata), vector,
    )  # fmt: skip


def test_committed_corpus_is_what_the_generator_produces() -> None:
    """scripts/make_demo_corpus.py reproduces ragguard/_demo/corpus.jsonl byte for byte."""
    generator = _load_generator()
    committed = (REPO / "ragguard" / "_demo" / "corpus.jsonl").read_bytes()
    assert generator.render().encode("utf-8") == committed
    assert generator.render() == generator.render()


# -- the demo policy and scenario ------------------------------------------------------------


def test_demo_users_read_what_the_readme_says() -> None:
    """alice, bob and carol read 43, 56 and 22 chunks, each only from their own tenant."""
    policy = _demo_policy()
    users = _scenario_users()
    documents = sample_corpus()
    readable = {
        name: [doc for doc in documents if policy.check(subject, doc.metadata).released]
        for name, subject in users.items()
    }
    assert {name: len(docs) for name, docs in readable.items()} == {
        "alice": 43, "bob": 56, "carol": 22,
    }  # fmt: skip
    assert {doc.metadata["tenant"] for doc in readable["alice"] + readable["bob"]} == {"acme"}
    assert {doc.metadata["tenant"] for doc in readable["carol"]} == {"globex"}
    assert {doc.metadata["level"] for doc in readable["carol"]} == {0}
    assert max(doc.metadata["level"] for doc in readable["alice"]) == 1
    assert not any(
        doc.metadata.get("label") == "legal_hold" for docs in readable.values() for doc in docs
    )


def test_legal_hold_overrides_role_and_clearance() -> None:
    """bob may read acme finance at level 3, except the chunks under legal hold; counsel may."""
    policy = _demo_policy()
    bob = _scenario_users()["bob"]
    grace = rg.Subject(id="grace", attributes={"dept": "legal", "clearance": 3})
    held = {"tenant": "acme", "dept": "finance", "level": 3, "label": "legal_hold"}
    assert policy.check(bob, {**held, "label": "board_confidential"}).released
    assert not policy.check(bob, held).released
    assert not policy.check(grace, held).released  # counsel's grant is legal, not finance
    assert policy.check(grace, {**held, "dept": "legal"}).released


def test_legal_hold_denies_a_reader_without_a_department() -> None:
    """The deny line is written so that a subject lacking ``dept`` is denied, not exempt."""
    policy = _demo_policy()
    nameless = rg.Subject(id="elena", attributes={"clearance": 3})
    chunk = {"tenant": "acme", "dept": "finance", "level": 1}
    assert policy.check(nameless, chunk).released
    assert not policy.check(nameless, {**chunk, "label": "legal_hold"}).released


def test_every_demo_question_crosses_an_access_line() -> None:
    """Each question's three nearest chunks include one that some demo user may not read."""
    scenario = json.loads(_demo_text("scenario.json"))
    policy = _demo_policy()
    users = list(_scenario_users().values())
    documents = sample_corpus()
    assert 5 <= len(scenario["questions"]) <= 6
    withheld: Counter[str] = Counter()
    for entry in scenario["questions"]:
        nearest = _ranked(entry["question"], documents)[:3]
        for user in users:
            hidden = sum(not policy.check(user, doc.metadata).released for doc in nearest)
            withheld[user.id] += hidden
        assert any(
            not policy.check(user, doc.metadata).released for user in users for doc in nearest
        ), entry["question"]
    assert all(count > 0 for count in withheld.values())


# -- clustered_vectors -----------------------------------------------------------------------


def test_clustered_vectors_are_deterministic_unit_float32() -> None:
    """Same arguments, same array; rows are unit length float32; another seed differs."""
    first = clustered_vectors(500, 48, clusters=5, seed=3)
    assert first.shape == (500, 48)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, clustered_vectors(500, 48, clusters=5, seed=3))
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert not np.array_equal(first, clustered_vectors(500, 48, clusters=5, seed=4))


def test_clustered_vectors_form_clusters() -> None:
    """Points gather around few centres: many pairs are very similar, unlike uniform noise."""
    vectors = clustered_vectors(400, 64, clusters=4, seed=0, spread=0.3)
    similarity = vectors @ vectors.T
    close = float((similarity > 0.8).mean())
    assert close > 0.15
    uniform = clustered_vectors(400, 64, clusters=400, seed=0, spread=0.3)
    assert float(((uniform @ uniform.T) > 0.8).mean()) < 0.01


@pytest.mark.parametrize(
    ("n", "dim", "clusters", "spread"),
    [(-1, 4, 2, 0.5), (4, 0, 2, 0.5), (4, 4, 0, 0.5), (4, 4, 2, -1.0)],
)
def test_clustered_vectors_rejects_bad_arguments(
    n: int, dim: int, clusters: int, spread: float
) -> None:
    """Negative sizes, zero dimensions or clusters, and negative spread are refused."""
    with pytest.raises(ValueError, match=r"must|need"):
        clustered_vectors(n, dim, clusters=clusters, seed=0, spread=spread)
