"""Test helpers for code built on ragguard: an embedder, span capture, a corpus.

Everything here is deterministic and local (no model download, no network), so a test
that uses it gives the same answer on every machine::

    from ragguard.testing import HashEmbedder, in_memory_tracing, sample_corpus

    embedder = HashEmbedder(dim=384)
    documents = sample_corpus()
    vectors = embedder.embed_documents([doc.text for doc in documents])
    chunks = [doc.to_chunk(vector) for doc, vector in zip(documents, vectors)]
    provider, exporter = in_memory_tracing()   # pass tracer_provider=provider to the Guard

Test doubles for the guard's collaborators: :class:`InMemoryStore` (a ``Store`` with
exact search and exact filter pushdown, failure injection and call counting),
:class:`StoreSpy` (the same counting and failure injection around a real store),
:class:`RecordingAuditSink` and :class:`FailingAuditSink`. For store authors,
:mod:`ragguard.testing.store_kit` is a pytest conformance suite to subclass (it needs
pytest and hypothesis: ``pip install "ragguard[testing]"``; nothing here imports them).

These are test doubles: :class:`HashEmbedder` finds chunks that share words with the
question, which is enough to exercise a policy end to end, not to judge answer quality.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

from ragguard.exceptions import MissingDependencyError
from ragguard.stores.base import Chunk
from ragguard.testing._memory import (
    FailingAuditSink,
    InMemoryStore,
    RecordingAuditSink,
    StoreSpy,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = [
    "CorpusDocument",
    "FailingAuditSink",
    "HashEmbedder",
    "InMemoryStore",
    "MetadataValue",
    "RecordingAuditSink",
    "StoreSpy",
    "clustered_vectors",
    "in_memory_tracing",
    "sample_corpus",
]

MetadataValue: TypeAlias = str | int | bool
"""The types a demo corpus metadata value may have (no nesting, no ``None``)."""

_TOKEN = re.compile(r"[^\W_]+")
# fmt: off
_STOPWORDS = frozenset({
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does",
    "doing", "for", "from", "had", "has", "have", "having", "he", "her", "here", "his",
    "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most", "my",
    "no", "nor", "not", "now", "of", "on", "once", "only", "or", "other", "our", "ours",
    "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that",
    "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
    "you", "your", "yours"
})
# fmt: on
# Relative weights of the three feature kinds: the word itself dominates, character
# trigrams let "salary" meet "salaries", word pairs reward shared phrases.
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.5
_WORD_PROBES = 3
_PAIR_WEIGHT = 0.5
_CACHE_LIMIT = 200_000
_EMPTY_FEATURE = "\x00empty"
_MASK64 = (1 << 64) - 1


def _stem(word: str) -> str:
    """Strip common English suffixes, crudely: "salaries" → "salary", "bands" → "band"."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ing") and len(word) >= 6:
        return word[:-3]
    if word.endswith("ed") and len(word) >= 5:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class HashEmbedder:
    """A deterministic, dependency-free text embedder for tests and demos.

    Each text becomes a bag of features (lowercased words minus a small stopword list,
    crudely stemmed; character trigrams of each word; adjacent word pairs), each
    feature is hashed with keyed BLAKE2b into signed buckets (a word into three, so one
    chance collision costs little), and the summed vector is L2-normalised. Texts that
    share words therefore have a high cosine similarity, so a question about salary
    bands retrieves salary chunks. The vectors depend only on the text, ``dim`` and
    ``seed``: they are identical across processes, machines and Python versions (no
    built-in ``hash()``, no randomness; only a letter whose lowercase form changes
    between Unicode versions could differ).

    A text with no features (empty, whitespace, punctuation or stopwords only) embeds
    to one fixed unit vector: a single signed coordinate chosen by ``seed``. All such
    texts are identical to each other and nearly orthogonal to everything else.

    It has LangChain's ``Embeddings`` methods (by duck typing; ragguard does not
    depend on langchain-core), which is enough for ragguard's ``Ingestor`` and
    ``GuardedRetriever``; integrations that insist on the base class
    (``langchain_qdrant.QdrantVectorStore``) take ``ragguard_langchain.HashEmbeddings``,
    the same embedder as a LangChain ``Embeddings``::

        embedder = HashEmbedder(dim=384, seed=0)
        vectors = embedder.embed_documents(["Salary bands for L5 engineers", "On-call runbook"])
        query = embedder.embed_query("What are the salary bands?")
        best = max(range(len(vectors)),
                   key=lambda i: sum(a * b for a, b in zip(query, vectors[i])))
        assert best == 0
    """

    def __init__(self, dim: int = 384, *, seed: int = 0) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self._dim = dim
        self._seed = seed
        # blake2b keys are at most 64 bytes; a digest of the seed fits any integer.
        self._key = hashlib.blake2b(str(seed).encode("ascii"), digest_size=32).digest()
        self._word_features: dict[str, tuple[str, int, list[int], list[float]]] = {}
        self._trigram_features: dict[str, tuple[int, float]] = {}
        bucket, sign = self._hash(_EMPTY_FEATURE)
        empty = np.zeros(dim, dtype=np.float64)
        empty[bucket] = sign
        self._empty = empty

    @property
    def dim(self) -> int:
        """Length of every vector this embedder returns."""
        return self._dim

    @property
    def seed(self) -> int:
        """The hashing key: different seeds give unrelated vector spaces."""
        return self._seed

    def __repr__(self) -> str:
        return f"HashEmbedder(dim={self._dim}, seed={self._seed})"

    # -- LangChain's Embeddings interface -------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed each text; returns one unit-length vector of ``dim`` floats per text."""
        result: list[list[float]] = self.embed_array(texts).tolist()
        return result

    def embed_query(self, text: str) -> list[float]:
        """Embed one query; the same function as :meth:`embed_documents`."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (computed inline: it is fast and CPU-bound)."""
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return self.embed_query(text)

    # -- numpy ------------------------------------------------------------------------------

    def embed_array(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Embed texts into a ``(len(texts), dim)`` float64 array of unit rows.

        >>> HashEmbedder(dim=8).embed_array(["hello world"]).shape
        (1, 8)
        """
        if isinstance(texts, str):
            raise TypeError("embed a list of texts, not one string (use embed_query)")
        count = len(texts)
        buckets: list[int] = []
        weights: list[float] = []
        per_text = np.zeros(count, dtype=np.int64)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}")
            before = len(buckets)
            self._collect(text, buckets, weights)
            per_text[row] = len(buckets) - before
        rows = np.repeat(np.arange(count, dtype=np.int64), per_text)
        flat = rows * self._dim + np.asarray(buckets, dtype=np.int64)
        summed = np.bincount(
            flat, weights=np.asarray(weights, dtype=np.float64), minlength=count * self._dim
        )
        vectors = summed.reshape(count, self._dim)
        norms = np.linalg.norm(vectors, axis=1)
        # Features can cancel to zero (opposite signs in one bucket) as well as be absent.
        empty = norms == 0.0
        vectors[empty] = self._empty
        norms[empty] = 1.0
        normalised: npt.NDArray[np.float64] = vectors / norms[:, None]
        return normalised

    # -- features -----------------------------------------------------------------------------

    def _digests(self, feature: str, count: int = 1) -> list[int]:
        """``count`` independent 64-bit hashes of ``feature`` (one keyed BLAKE2b call)."""
        digest = hashlib.blake2b(
            feature.encode("utf-8"), digest_size=8 * count, key=self._key
        ).digest()
        return [int.from_bytes(digest[8 * i : 8 * i + 8], "little") for i in range(count)]

    def _bucket(self, value: int) -> tuple[int, float]:
        return value % self._dim, (1.0 if value >> 63 else -1.0)

    def _hash(self, feature: str) -> tuple[int, float]:
        return self._bucket(self._digests(feature)[0])

    def _collect(self, text: str, buckets: list[int], weights: list[float]) -> None:
        previous = 0
        cache = self._word_features
        for word in _TOKEN.findall(text.lower()):
            features = cache.get(word)
            if features is None:
                features = self._word(word)
            stem, value, word_buckets, word_weights = features
            if not stem:
                continue
            buckets.extend(word_buckets)
            weights.extend(word_weights)
            if previous:
                # A word pair's hash is mixed from the two word hashes (splitmix64's
                # finaliser): as stable as BLAKE2b here, and far cheaper per pair.
                mixed = (previous * 0x9E3779B97F4A7C15 + value) & _MASK64
                mixed = ((mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
                mixed = ((mixed ^ (mixed >> 27)) * 0x94D049BB133111EB) & _MASK64
                bucket, sign = self._bucket(mixed ^ (mixed >> 31))
                buckets.append(bucket)
                weights.append(sign * _PAIR_WEIGHT)
            previous = value

    def _word(self, word: str) -> tuple[str, int, list[int], list[float]]:
        """Features of one lowercased word, cached (stem "" marks a stopword)."""
        if word in _STOPWORDS:
            features: tuple[str, int, list[int], list[float]] = ("", 0, [], [])
        else:
            stem = _stem(word)
            # A word is spread over several buckets so that one chance collision
            # between two unrelated words costs a fraction of their similarity, not all.
            values = self._digests("w:" + stem, _WORD_PROBES)
            buckets, weights = [], []
            for probe in values:
                bucket, sign = self._bucket(probe)
                buckets.append(bucket)
                weights.append(sign * _WORD_WEIGHT / math.sqrt(_WORD_PROBES))
            # "| 1" keeps the value non-zero: zero marks "no previous word" for pairs.
            value = values[0] | 1
            padded = f"<{stem}>"
            trigrams = [padded[i : i + 3] for i in range(len(padded) - 2)]
            # Scaled so a word's trigrams weigh the same in total whatever its length.
            scale = _TRIGRAM_WEIGHT / math.sqrt(len(trigrams))
            for trigram in trigrams:
                bucket, sign = self._trigram(trigram)
                buckets.append(bucket)
                weights.append(sign * scale)
            features = (stem, value, buckets, weights)
        if len(self._word_features) >= _CACHE_LIMIT:
            self._word_features.clear()
        self._word_features[word] = features
        return features

    def _trigram(self, trigram: str) -> tuple[int, float]:
        cached = self._trigram_features.get(trigram)
        if cached is None:
            cached = self._hash("c:" + trigram)
            if len(self._trigram_features) >= _CACHE_LIMIT:
                self._trigram_features.clear()
            self._trigram_features[trigram] = cached
        return cached


def in_memory_tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A private tracer provider that keeps every finished span in memory.

    Needs ``opentelemetry-sdk`` (a test dependency; ragguard itself depends on the API
    only). The provider is never installed globally: pass it where spans should go::

        provider, exporter = in_memory_tracing()
        guard = Guard(policy, store, tracer_provider=provider)
        guard.search(alice, vector, k=5)
        [span] = exporter.get_finished_spans()
        assert span.name == "ragguard.retrieve"

    Raises ``MissingDependencyError`` when opentelemetry-sdk is not installed.
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError as exc:
        raise MissingDependencyError(
            "opentelemetry-sdk", "ragguard.testing.in_memory_tracing"
        ) from exc
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@dataclass(frozen=True)
class CorpusDocument:
    """One chunk of the demo corpus: a stable UUID, its text and its metadata.

    Metadata values are strings, integers or booleans. Every chunk has ``tenant``,
    ``dept``, ``level`` (0 public … 3 restricted), ``owner``, ``doc_id``, ``doc_type``,
    ``title``, ``chunk_index``, ``source``, ``updated`` and ``pii``; a few also have a
    ``label`` such as ``"legal_hold"``. It has no vector: embed ``text`` and call
    :meth:`to_chunk`::

        doc = sample_corpus()[0]
        chunk = doc.to_chunk(HashEmbedder().embed_query(doc.text))
    """

    id: str
    text: str
    metadata: Mapping[str, MetadataValue]

    def to_chunk(self, vector: Sequence[float]) -> Chunk:
        """This document as a :class:`ragguard.stores.base.Chunk` with ``vector``."""
        return Chunk(text=self.text, metadata=dict(self.metadata), vector=vector, id=self.id)


@lru_cache(maxsize=1)
def _corpus_lines() -> tuple[str, ...]:
    text = resources.files("ragguard._demo").joinpath("corpus.jsonl").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


def sample_corpus() -> list[CorpusDocument]:
    """The demo corpus: a few hundred chunks of a fictional three-tenant B2B company.

    Three tenants (``acme``, ``globex``, ``initech``), five departments (engineering,
    finance, hr, legal, sales), clearance levels 0-3, and text worth protecting: salary
    bands, an acquisition codename, a security incident under legal hold. The list is
    freshly built on every call (mutate it freely) and always in the same order::

        docs = sample_corpus()
        restricted = [d for d in docs if d.metadata["level"] == 3]
    """
    documents: list[CorpusDocument] = []
    for line in _corpus_lines():
        record = json.loads(line)
        documents.append(
            CorpusDocument(id=record["id"], text=record["text"], metadata=record["metadata"])
        )
    return documents


def clustered_vectors(
    n: int, dim: int, *, clusters: int = 8, seed: int = 0, spread: float = 0.5
) -> npt.NDArray[np.float32]:
    """``n`` unit vectors of length ``dim`` gathered around ``clusters`` random centres.

    For benchmarks and store tests that need realistic (not uniform) neighbourhoods.
    ``spread`` is the noise-to-centre ratio: 0 puts every point on its centre, large
    values approach uniform noise. The same arguments give the same float32 array on
    every run (NumPy's PCG64 generator)::

        vectors = clustered_vectors(10_000, 384, clusters=32, seed=7)
        assert vectors.shape == (10_000, 384)
    """
    if n < 0 or dim < 1 or clusters < 1:
        raise ValueError(
            f"need n >= 0, dim >= 1 and clusters >= 1, got n={n}, dim={dim}, clusters={clusters}"
        )
    if not math.isfinite(spread) or spread < 0:
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    membership = rng.integers(0, clusters, size=n)
    # Noise per coordinate scaled by 1/sqrt(dim), so its norm is about ``spread``.
    noise = rng.standard_normal((n, dim)) * (spread / math.sqrt(dim))
    points = centres[membership] + noise
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    result: npt.NDArray[np.float32] = (points / norms).astype(np.float32)
    return result
