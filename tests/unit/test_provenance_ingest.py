"""The Ingestor: what it accepts, what it signs, how it batches, and its progress bar."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

import ragguard as rg
from ragguard.provenance import Ingestor, ProvenanceCheck, Signer
from ragguard.stores.base import point_id
from ragguard.testing import InMemoryStore

KEY = "ingest-test-key-0123456789abcdef"
DIM = 4


def written(store: InMemoryStore) -> list[rg.Chunk]:
    """Every chunk the ingestor wrote, in order."""
    return [chunk for batch in store.upserts for chunk in batch]


@dataclass
class CountingEmbedder:
    """A tiny deterministic embedder that counts its calls."""

    calls: list[int] = field(default_factory=list)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return [[float(len(text)), 1.0, 0.0, 0.5] for text in texts]


@dataclass
class Doc:
    """Duck-typed like a LangChain Document."""

    page_content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


def _ingestor(store: InMemoryStore, **kwargs: Any) -> Ingestor:
    kwargs.setdefault("embeddings", CountingEmbedder())
    return Ingestor(store, signer=Signer(key=KEY, key_id="k1"), progress=False, **kwargs)


def test_every_ingested_chunk_verifies() -> None:
    """What the ingestor writes verifies under a check holding the same key."""
    store = InMemoryStore(DIM)
    docs = [Doc(f"text {i}", {"tenant": "acme", "level": i}, id=f"d{i}") for i in range(5)]
    _ingestor(store).ingest(docs)
    check = ProvenanceCheck(keys={"k1": KEY})
    assert [check.verify(c.text, c.metadata).status for c in written(store)] == ["verified"] * 5


def test_langchain_documents_are_accepted() -> None:
    """Real LangChain Documents (page_content, metadata, id) are ingested as they are."""
    documents = pytest.importorskip("langchain_core.documents")
    store = InMemoryStore(DIM)
    doc = documents.Document(
        page_content="On-call runbook", metadata={"source": "wiki/oncall"}, id="oncall"
    )
    ids = _ingestor(store).ingest([doc])
    assert ids == [str(point_id("oncall"))]  # the store's point id for the chunk id
    assert written(store)[0].metadata["provenance"]["source"] == "wiki/oncall"
    assert written(store)[0].text == "On-call runbook"


def test_chunks_with_vectors_need_no_embeddings() -> None:
    """ragguard Chunks keep their vectors; no embeddings object is needed."""
    store = InMemoryStore(DIM)
    chunk = rg.Chunk(text="hello", metadata={"tenant": "acme"}, vector=[0.1, 0.2, 0.3, 0.4], id=7)
    Ingestor(store, signer=Signer(key=KEY, key_id="k1"), progress=False).ingest([chunk])
    assert list(written(store)[0].vector) == [0.1, 0.2, 0.3, 0.4]
    assert written(store)[0].id == 7


def test_mappings_are_accepted() -> None:
    """Mappings with text/metadata/id (the JSONL shape) are ingested."""
    store = InMemoryStore(DIM)
    _ingestor(store).ingest([{"id": "a", "text": "alpha", "metadata": {"dept": "eng"}}])
    assert written(store)[0].metadata["dept"] == "eng"
    assert written(store)[0].id == "a"


def test_missing_vector_without_embeddings_is_an_error() -> None:
    """A chunk with nothing to embed it with fails, naming the document."""
    store = InMemoryStore(DIM)
    ingestor = Ingestor(store, signer=Signer(key=KEY, key_id="k1"), progress=False)
    with pytest.raises(rg.ProvenanceError, match=r"document 1 \(id 'b'\) has no vector"):
        ingestor.ingest([rg.Chunk("a", {}, [1.0] * DIM, "a"), Doc("b", id="b")])
    assert store.upserts == []


def test_wrong_vector_dimension_is_an_error() -> None:
    """A vector whose dimension differs from the store's is refused before writing."""
    store = InMemoryStore(DIM)
    with pytest.raises(
        rg.ProvenanceError, match="dimension 3; the store holds vectors of dimension 4"
    ):
        _ingestor(store).ingest([rg.Chunk("a", {}, [1.0, 2.0, 3.0], "a")])
    assert store.upserts == []


def test_documents_without_text_are_refused() -> None:
    """Something that is not a document fails with a message saying what was expected."""
    with pytest.raises(rg.ProvenanceError, match="document 0 has no text"):
        _ingestor(InMemoryStore(DIM)).ingest([42])


def test_unsignable_metadata_names_the_document_and_field() -> None:
    """Metadata with a non-JSON value fails with the document position, id and field."""
    with pytest.raises(rg.ProvenanceError, match=r"document 0 \(id 'x'\).*metadata\.score"):
        _ingestor(InMemoryStore(DIM)).ingest([Doc("t", {"score": math.nan}, id="x")])


def test_upserts_and_embeds_in_batches() -> None:
    """Seven chunks with batch_size=3 are embedded and written as 3 + 3 + 1."""
    store, embedder = InMemoryStore(DIM), CountingEmbedder()
    _ingestor(store, embeddings=embedder, batch_size=3).ingest(Doc(f"t{i}") for i in range(7))
    assert [len(batch) for batch in store.upserts] == [3, 3, 1]
    assert embedder.calls == [3, 3, 1]


def test_generators_are_consumed_batch_by_batch() -> None:
    """A long generator is not read ahead of the batch being written."""
    pulled: list[int] = []
    pulled_at_write: list[int] = []

    def documents() -> Iterator[Doc]:
        for index in range(10):
            pulled.append(index)
            yield Doc(f"t{index}")

    class Store(InMemoryStore):
        def upsert(self, chunks: Iterable[rg.Chunk]) -> list[str]:
            pulled_at_write.append(len(pulled))
            return super().upsert(chunks)

    _ingestor(Store(DIM), batch_size=4).ingest(documents())
    assert pulled_at_write == [4, 8, 10]


def test_ids_come_back_in_order_and_missing_ids_are_generated() -> None:
    """Returned ids follow the input; chunks without an id get distinct UUIDs."""
    store = InMemoryStore(DIM)
    ids = _ingestor(store).ingest([Doc("a", id="first"), Doc("b"), Doc("c")])
    assert ids[0] == str(point_id("first"))
    assert len(set(ids)) == 3
    assert all(len(chunk_id) == 36 for chunk_id in ids[1:])


def test_tag_fields_come_from_the_documents() -> None:
    """source and doc_id come from metadata; chunk_index counts chunks per document."""
    store = InMemoryStore(DIM)
    docs = [
        Doc("intro", {"source": "s3://handbook.pdf", "doc_id": "handbook"}),
        Doc("chapter", {"source": "s3://handbook.pdf", "doc_id": "handbook"}),
        Doc("faq", {"doc_id": "faq", "chunk_index": 7}),
        Doc("loose", id="loose-1"),
    ]
    before = datetime.now(timezone.utc).replace(microsecond=0)
    _ingestor(store).ingest(docs)
    tags = [chunk.metadata["provenance"] for chunk in written(store)]
    assert [(t["source"], t["doc_id"], t["chunk_index"]) for t in tags] == [
        ("s3://handbook.pdf", "handbook", 0),
        ("s3://handbook.pdf", "handbook", 1),
        (None, "faq", 7),
        (None, "loose-1", 0),
    ]
    assert all(datetime.fromisoformat(t["ingested_at"]) >= before for t in tags)
    assert {t["key_id"] for t in tags} == {"k1"}


def test_an_existing_tag_is_replaced() -> None:
    """Documents that arrive with a (possibly forged) tag are re-signed by this ingestor."""
    store = InMemoryStore(DIM)
    forged = {"key_id": "k1", "signature": "0" * 64, "text_sha256": "0" * 64}
    _ingestor(store).ingest([Doc("t", {"provenance": forged, "dept": "eng"})])
    tag = written(store)[0].metadata["provenance"]
    assert tag["signature"] != "0" * 64
    check = ProvenanceCheck(keys={"k1": KEY})
    assert check.verify("t", written(store)[0].metadata).status == "verified"


def test_a_failed_batch_says_how_much_was_written() -> None:
    """A store failure raises StoreError saying how many chunks were already written."""
    store = InMemoryStore(DIM, fail_on={"upsert": 2}, error=RuntimeError("disk full"))
    with pytest.raises(rg.StoreError, match="failed after 2 were written: RuntimeError: disk full"):
        _ingestor(store, batch_size=2).ingest(Doc(f"t{i}") for i in range(5))
    assert len(written(store)) == 2


def test_configuration_errors() -> None:
    """A non-Signer, a bad batch size or an object without embed_documents are refused."""
    store = InMemoryStore(DIM)
    with pytest.raises(TypeError, match="Signer"):
        Ingestor(store, signer=KEY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        Ingestor(store, signer=Signer(key=KEY, key_id="k1"), batch_size=0)
    with pytest.raises(TypeError, match="embed_documents"):
        Ingestor(store, signer=Signer(key=KEY, key_id="k1"), embeddings=object())  # type: ignore[arg-type]


def test_repr_shows_no_key() -> None:
    """The ingestor's repr names the store type and key id, never the key."""
    text = repr(_ingestor(InMemoryStore(DIM)))
    assert KEY not in text
    assert "key_id='k1'" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_goes_to_stderr_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, a tqdm bar counts chunks on stderr; stdout stays clean."""
    pytest.importorskip("tqdm")
    terminal, stdout = _Terminal(), io.StringIO()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr("sys.stdout", stdout)
    store = InMemoryStore(DIM)
    Ingestor(store, signer=Signer(key=KEY, key_id="k1"), embeddings=CountingEmbedder()).ingest(
        [Doc(f"t{i}") for i in range(5)]
    )
    assert "5/5" in terminal.getvalue()
    assert "chunk" in terminal.getvalue()
    assert stdout.getvalue() == ""


def test_no_progress_bar_off_a_terminal_or_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redirected stderr, or progress=False, gets no bar at all."""
    piped, terminal = io.StringIO(), _Terminal()
    monkeypatch.setattr("sys.stderr", piped)
    _ingestor(InMemoryStore(DIM)).ingest([Doc("t")])
    Ingestor(
        InMemoryStore(DIM), signer=Signer(key=KEY, key_id="k1"), embeddings=CountingEmbedder()
    ).ingest([Doc("t")])
    monkeypatch.setattr("sys.stderr", terminal)
    _ingestor(InMemoryStore(DIM)).ingest([Doc("t")])
    assert piped.getvalue() == ""
    assert terminal.getvalue() == ""
