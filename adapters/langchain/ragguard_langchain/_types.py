"""Types the retriever and the post-filter store share (a leaf: imports neither)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["QueryEmbedder"]


class QueryEmbedder(Protocol):
    """What the retriever needs from embeddings: LangChain's two query methods.

    Every LangChain ``Embeddings`` has them, and so does ``ragguard.testing.HashEmbedder``.
    """

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        ...

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of one query, asynchronously."""
        ...
