"""The conformance families on ``QdrantStore`` in qdrant-client's local (``:memory:``) mode.

Local mode evaluates Qdrant filters in Python, a different engine from the embedded
``EdgeStore``: the same cases must pass on both. The full run against a Qdrant server is
``tests/integration/test_qdrant_server.py`` (needs QDRANT_URL).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _conformance import QdrantBackend, conformance_settings, run_case
from _policy_families import FAMILIES, Case, cases
from hypothesis import given

EXAMPLES = 40


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_policies_agree_with_casbin_on_local_qdrant(
    family: str, local_qdrant_backend: Callable[[str], QdrantBackend]
) -> None:
    """Decisions equal casbin.enforce; searches release exactly the authorised top-k."""
    backend = local_qdrant_backend(family)

    @conformance_settings(EXAMPLES)
    @given(case=cases(family))
    def conforms(case: Case) -> None:
        run_case(case, backend)

    conforms()
