"""Generated policies of six families decided by ragguard vs ``casbin.enforce``, on EdgeStore.

Each case: every (subject, chunk) decision equals the oracle (``guard.check`` and the
plan's filter), the pushed-down Qdrant filter keeps every authorised chunk (and only
those when exact), and guarded searches release exactly the authorised top-k by numpy
cosine similarity. See ``_conformance.py`` for the exactness argument.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _conformance import EXAMPLES_PER_FAMILY, EdgeBackend, conformance_settings, run_case
from _policy_families import FAMILIES, Case, cases
from hypothesis import event, given


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_policies_agree_with_casbin_on_edge_store(
    family: str, edge_backend: Callable[[str], EdgeBackend]
) -> None:
    """Decisions equal casbin.enforce; searches release exactly the authorised top-k."""
    backend = edge_backend(family)

    @conformance_settings(EXAMPLES_PER_FAMILY[family])
    @given(case=cases(family))
    def conforms(case: Case) -> None:
        outcome = run_case(case, backend)
        event(f"released {'some' if outcome.released else 'none'}")
        event(f"denied {'some' if outcome.denied else 'none'}")
        for kind, exact in zip(outcome.plan_kinds, outcome.exact, strict=True):
            event(f"plan {kind}{'' if exact else ' (inexact)'}")

    conforms()
