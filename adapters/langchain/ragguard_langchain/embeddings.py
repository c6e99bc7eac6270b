"""``HashEmbeddings``: ragguard's deterministic test embedder as a LangChain ``Embeddings``.

LangChain integrations such as ``langchain_qdrant.QdrantVectorStore`` accept only
subclasses of ``langchain_core.embeddings.Embeddings``; :class:`ragguard.testing.HashEmbedder`
has the same methods but, so that ragguard's core never imports LangChain, not the base
class. This wrapper is the one to hand to LangChain::

    from langchain_qdrant import QdrantVectorStore
    from ragguard_langchain import HashEmbeddings

    embeddings = HashEmbeddings(dim=384)
    vectorstore = QdrantVectorStore.from_documents(
        documents, embeddings, location=":memory:", collection_name="kb"
    )

The vectors are exactly :class:`~ragguard.testing.HashEmbedder`'s (same ``dim`` and
``seed``, same vectors), deterministic and offline. It is a test and demo double: texts
that share words are close, which exercises a policy end to end; it says nothing about
answer quality. Use a real model in production.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from ragguard.testing import HashEmbedder

__all__ = ["HashEmbeddings"]


class HashEmbeddings(Embeddings):
    """A LangChain ``Embeddings`` over :class:`ragguard.testing.HashEmbedder`.

    ``dim`` and ``seed`` are the embedder's; :attr:`embedder` is the wrapped one.
    """

    def __init__(self, dim: int = 384, *, seed: int = 0) -> None:
        self.embedder = HashEmbedder(dim, seed=seed)

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self.embedder.dim

    def __repr__(self) -> str:
        return f"HashEmbeddings(dim={self.embedder.dim}, seed={self.embedder.seed})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One unit-length vector per text."""
        return self.embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query (the same function as :meth:`embed_documents`)."""
        return self.embedder.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (computed inline: fast and CPU-bound)."""
        return self.embedder.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return self.embedder.embed_query(text)
