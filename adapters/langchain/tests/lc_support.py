"""Constants shared by the adapter tests (a uniquely named module, not conftest)."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

import ragguard as rg
from ragguard.testing import HashEmbedder

# Eight readers across the three demo tenants, with different roles and clearances.
SUBJECTS = [
    rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
    rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
    rg.Subject(id="nadia", attributes={"dept": "hr", "clearance": 2}),
    rg.Subject(id="carol", attributes={"clearance": 0}),
    rg.Subject(id="kenji", attributes={"dept": "engineering", "clearance": 2}),
    rg.Subject(id="victor", attributes={"dept": "executive", "clearance": 3}),
    rg.Subject(id="samir", attributes={"dept": "engineering", "clearance": 3}),
    rg.Subject(id="anne", attributes={"dept": "hr", "clearance": 1}),
]


class LangChainHashEmbeddings(Embeddings):
    """``ragguard.testing.HashEmbedder`` as a LangChain ``Embeddings`` subclass.

    Some integrations (langchain-qdrant) insist on the base class; the vectors are the
    same deterministic ones.
    """

    def __init__(self, dim: int) -> None:
        self.embedder = HashEmbedder(dim=dim)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)
