"""Content screens: inspect each authorised hit before release, deny or flag it.

A screen is any callable ``screen(hit) -> ScreenResult``; pass a list to the guard::

    guard = rg.Guard(policy, store, screens=[
        rg.PromptInjectionScreen(),                       # instructions aimed at the model
        rg.SecretsScreen(min_clearance=3),                # secrets/PII to lower clearances
        lambda hit: rg.ScreenResult(hit.metadata.get("draft") is True, "draft document"),
    ])

Screens run after the policy check, the budget's ``min_score`` and provenance, in
order; the first ``deny`` withholds the hit, ``flag`` results are released and recorded
(``hit.flags``, the decision's reason, trace and audit). A screen that raises withholds
the hit. With no screens the guard does no screening work. The guide, with measured
precision and recall, is ``docs/screens-and-budgets.md``.
"""

from typing import TYPE_CHECKING

from ragguard._lazy import lazy_exports
from ragguard.screens._base import Screen, ScreenAction, ScreenResult

if TYPE_CHECKING:
    from ragguard.screens._injection import PromptInjectionScreen, Signal
    from ragguard.screens._secrets import Finding, SecretsScreen

# The screens compile their patterns when their module is imported (~25 ms for the
# injection screen): that happens when a screen is first named, not at `import ragguard`.
_LAZY: dict[str, str] = {
    "Finding": "ragguard.screens._secrets",
    "PromptInjectionScreen": "ragguard.screens._injection",
    "SecretsScreen": "ragguard.screens._secrets",
    "Signal": "ragguard.screens._injection",
}


__all__ = [
    "Finding",
    "PromptInjectionScreen",
    "Screen",
    "ScreenAction",
    "ScreenResult",
    "SecretsScreen",
    "Signal",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
