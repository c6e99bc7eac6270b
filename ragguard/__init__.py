"""ragguard: per-user access control for retrieval-augmented generation.

Casbin policies are compiled, per subject, into native vector-store filters; every hit
is re-checked exactly, its provenance verified, and every retrieval traced and audited::

    import ragguard as rg

    policy = rg.Policy.from_casbin("model.conf", "policy.csv")
    store = rg.EdgeStore.create("data/shard", dim=384, distance="cosine")
    guard = rg.Guard(policy, store)
    hits = guard.search(rg.Subject(id="alice", attributes={"clearance": 2}), vector, k=5)
"""

from typing import TYPE_CHECKING

from ragguard._lazy import lazy_exports
from ragguard._version import installed_version
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
    ReplicaInUseError,
    StoreError,
    SubjectError,
    UnsupportedPolicyError,
)
from ragguard.guard import Guard
from ragguard.policy import Decision, Plan, Policy
from ragguard.provenance import Ingestor, ProvenanceCheck, Signer
from ragguard.results import AuditSink, Hit, ProvenanceVerdict, ProvenanceVerifier, Retrieval
from ragguard.screens import Screen, ScreenResult
from ragguard.search_params import SearchParams
from ragguard.stores.base import Chunk, IndexSpec, Pushdown, Store, StoreCapabilities, StoredChunk
from ragguard.stores.edge import EdgeStore
from ragguard.subject import Subject

if TYPE_CHECKING:
    from ragguard.audit import JsonlAuditLog
    from ragguard.screens import PromptInjectionScreen, SecretsScreen
    from ragguard.stores.chroma import ChromaStore
    from ragguard.stores.pgvector import PgVectorStore
    from ragguard.stores.qdrant import QdrantStore

    __version__: str

# Imported when first named, so that `import ragguard` stays cheap: the optional stores'
# client libraries (qdrant-client, psycopg, chromadb), the audit log (pydantic), and the
# screens' compiled patterns are not needed by a program that only searches.
_LAZY: dict[str, str] = {
    "ChromaStore": "ragguard.stores.chroma",
    "JsonlAuditLog": "ragguard.audit._log",
    "PgVectorStore": "ragguard.stores.pgvector",
    "PromptInjectionScreen": "ragguard.screens._injection",
    "QdrantStore": "ragguard.stores.qdrant",
    "SecretsScreen": "ragguard.screens._secrets",
}


def _installed_version() -> str:
    return installed_version() or "0+unknown"  # "0+unknown": a source tree


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
    "ReplicaInUseError",
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

__getattr__, __dir__ = lazy_exports(
    __name__, _LAZY, globals(), __all__, special={"__version__": _installed_version}
)
