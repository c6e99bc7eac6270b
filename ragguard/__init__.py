"""ragguard: per-user access control for retrieval-augmented generation.

Casbin policies are compiled, per subject, into native vector-store filters; every hit
is re-checked exactly, its provenance verified, and every retrieval traced and audited::

    import ragguard as rg

    policy = rg.Policy.from_casbin("model.conf", "policy.csv")
    store = rg.EdgeStore.create("data/shard", dim=384, distance="cosine")
    guard = rg.Guard(policy, store)
    hits = guard.search(rg.Subject(id="alice", attributes={"clearance": 2}), vector, k=5)
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from typing import TYPE_CHECKING, Any

from ragguard.audit import JsonlAuditLog
from ragguard.budget import (
    BudgetBackend,
    InMemoryBudgetBackend,
    RedisBudgetBackend,
    ReleaseBudget,
)
from ragguard.exceptions import (
    AuditError,
    BudgetError,
    BudgetExceededError,
    MissingDependencyError,
    PolicyError,
    PolicyLoadError,
    ProvenanceError,
    QueryError,
    RagGuardError,
    StoreError,
    SubjectError,
    UnsupportedPolicyError,
)
from ragguard.guard import Guard
from ragguard.policy import Decision, Plan, Policy
from ragguard.provenance import Ingestor, ProvenanceCheck, Signer
from ragguard.results import AuditSink, Hit, ProvenanceVerdict, ProvenanceVerifier, Retrieval
from ragguard.screens import PromptInjectionScreen, Screen, ScreenResult, SecretsScreen
from ragguard.search_params import SearchParams
from ragguard.stores.base import Chunk, IndexSpec, Pushdown, Store, StoreCapabilities, StoredChunk
from ragguard.stores.edge import EdgeStore
from ragguard.subject import Subject

try:
    __version__: str = _distribution_version("ragguard")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree, not installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from ragguard.stores.chroma import ChromaStore
    from ragguard.stores.pgvector import PgVectorStore
    from ragguard.stores.qdrant import QdrantStore


def __getattr__(name: str) -> Any:
    # Optional stores import their client library only when named: `import ragguard`
    # never imports psycopg, chromadb or qdrant-client.
    if name == "PgVectorStore":
        from ragguard.stores.pgvector import PgVectorStore

        return PgVectorStore
    if name == "ChromaStore":  # chromadb likewise
        from ragguard.stores.chroma import ChromaStore

        return ChromaStore
    if name == "QdrantStore":  # qdrant-client is imported only when the store is named
        from ragguard.stores.qdrant import QdrantStore

        return QdrantStore
    raise AttributeError(f"module 'ragguard' has no attribute {name!r}")


__all__ = [
    "AuditError",
    "AuditSink",
    "BudgetBackend",
    "BudgetError",
    "BudgetExceededError",
    "ChromaStore",
    "Chunk",
    "Decision",
    "EdgeStore",
    "Guard",
    "Hit",
    "InMemoryBudgetBackend",
    "IndexSpec",
    "Ingestor",
    "JsonlAuditLog",
    "MissingDependencyError",
    "PgVectorStore",
    "Plan",
    "Policy",
    "PolicyError",
    "PolicyLoadError",
    "PromptInjectionScreen",
    "ProvenanceCheck",
    "ProvenanceError",
    "ProvenanceVerdict",
    "ProvenanceVerifier",
    "Pushdown",
    "QdrantStore",
    "QueryError",
    "RagGuardError",
    "RedisBudgetBackend",
    "ReleaseBudget",
    "Retrieval",
    "Screen",
    "ScreenResult",
    "SearchParams",
    "SecretsScreen",
    "Signer",
    "Store",
    "StoreCapabilities",
    "StoreError",
    "StoredChunk",
    "Subject",
    "SubjectError",
    "UnsupportedPolicyError",
    "__version__",
]
