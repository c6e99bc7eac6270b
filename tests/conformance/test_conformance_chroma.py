"""The conformance families on ``ChromaStore``, in chromadb's embedded engine.

The plan filter runs as Chroma's ``where`` over flat metadata, a fourth engine: the same
generated cases must pass (no leak, exactly the authorised top-k). Skipped, with the
reason, when chromadb is not installed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _conformance import ChromaBackend, conformance_settings, run_case
from _policy_families import FAMILIES, Case, cases
from hypothesis import given

pytest.importorskip("chromadb", reason="ChromaStore needs ragguard[chroma]")

EXAMPLES = 40


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_policies_agree_with_casbin_on_chroma(
    family: str, chroma_backend: Callable[[str], ChromaBackend]
) -> None:
    """Decisions equal casbin.enforce; searches release exactly the authorised top-k."""
    backend = chroma_backend(family)

    @conformance_settings(EXAMPLES)
    @given(case=cases(family))
    def conforms(case: Case) -> None:
        run_case(case, backend)

    conforms()
