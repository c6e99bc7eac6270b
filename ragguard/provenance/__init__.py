"""Provenance: sign chunks at ingestion, verify them before release.

Access filters trust the metadata in the vector store. Anyone who can write to the
store can flip ``"public": true`` or swap a chunk's text under old metadata; a
provenance tag, signed with a key the store never sees, makes that detectable::

    import ragguard as rg

    signer = rg.Signer(key=os.environ["RAGGUARD_SIGNING_KEY"], key_id="2025-01")
    rg.Ingestor(store, signer=signer, embeddings=embedder).ingest(documents)

    check = rg.ProvenanceCheck(keys={"2025-01": os.environ["RAGGUARD_SIGNING_KEY"]},
                               mode="require")
    guard = rg.Guard(policy, store, provenance=check)
    hits = guard.search(alice, vector, k=5)   # tampered chunks are withheld
    hits[0].provenance.tag["source"]          # cite the source

What is signed and how the canonical JSON is formed: :mod:`ragguard.provenance._signing`
and :func:`canonical_json`; the user guide is ``docs/provenance.md``.
"""

from ragguard._canonical import CanonicalizationError, canonical_json
from ragguard.provenance._check import ProvenanceCheck, ProvenanceMode
from ragguard.provenance._ingest import Embeddings, Ingestor
from ragguard.provenance._signing import PROVENANCE_KEY, Signer

__all__ = [
    "PROVENANCE_KEY",
    "CanonicalizationError",
    "Embeddings",
    "Ingestor",
    "ProvenanceCheck",
    "ProvenanceMode",
    "Signer",
    "canonical_json",
]
