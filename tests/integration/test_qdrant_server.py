"""The full conformance suite against a real Qdrant server (set QDRANT_URL to run it).

    QDRANT_URL=http://localhost:6333 pytest tests/integration/test_qdrant_server.py

Same generated cases, same checks and as many examples per family as the EdgeStore run
(``tests/conformance``), on a fresh collection per family (with the payload indexes each
policy asks for), dropped afterwards. QDRANT_API_KEY is passed on when set.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))

from _conformance import (
    EXAMPLES_PER_FAMILY,
    QdrantBackend,
    conformance_settings,
    run_case,
)
from _policy_families import FAMILIES, Case, cases
from hypothesis import given
from qdrant_client import QdrantClient

QDRANT_URL = os.environ.get("QDRANT_URL", "").strip()


@pytest.fixture(scope="module")
def client() -> Iterator[QdrantClient]:
    """A client for the server at QDRANT_URL; the module is skipped without one."""
    if not QDRANT_URL:
        pytest.skip(
            "QDRANT_URL not set: start a Qdrant server and set QDRANT_URL "
            "(e.g. http://localhost:6333) to run the conformance suite against it"
        )
    server = QdrantClient(location=QDRANT_URL, api_key=os.environ.get("QDRANT_API_KEY") or None)
    yield server
    server.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_policies_agree_with_casbin_on_qdrant_server(
    family: str, client: QdrantClient
) -> None:
    """Decisions equal casbin.enforce; searches release exactly the authorised top-k."""
    collection = f"ragguard_conformance_{family}_{uuid.uuid4().hex[:8]}"
    backend = QdrantBackend(client, collection, local=QDRANT_URL == ":memory:")
    try:

        @conformance_settings(EXAMPLES_PER_FAMILY[family])
        @given(case=cases(family))
        def conforms(case: Case) -> None:
            run_case(case, backend)

        conforms()
    finally:
        client.delete_collection(collection)
