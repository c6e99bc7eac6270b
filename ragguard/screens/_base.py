"""What a screen is, what it returns, and how the guard applies a list of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ragguard.results import Hit

__all__ = ["CLEAN", "Screen", "ScreenAction", "ScreenResult", "run_screens", "screen_name"]

ScreenAction = Literal["deny", "flag"]
_ACTIONS = ("deny", "flag")


@dataclass(frozen=True)
class ScreenResult:
    """A screen's verdict on one hit.

    ``flagged=False`` lets the hit through untouched. ``flagged=True`` with
    ``action="deny"`` (the default) withholds it; with ``action="flag"`` it is released
    and the flag is recorded (``hit.flags``, the decision's reason, the trace event and
    the audit record)::

        rg.ScreenResult(False)                                   # clean
        rg.ScreenResult(True, "mentions a legal hold")           # withhold
        rg.ScreenResult(True, "contains an email", action="flag")

    ``reason`` goes to traces and the audit log: describe *what kind* of content was
    found, never quote the chunk text. A flagged result needs a reason.
    """

    flagged: bool
    reason: str = ""
    action: ScreenAction = "deny"

    def __post_init__(self) -> None:
        if not isinstance(self.flagged, bool):
            raise TypeError(f"ScreenResult.flagged must be a bool, got {self.flagged!r}")
        if not isinstance(self.reason, str):
            raise TypeError(f"ScreenResult.reason must be a str, got {type(self.reason).__name__}")
        if self.action not in _ACTIONS:
            raise ValueError(f"ScreenResult.action must be 'deny' or 'flag', got {self.action!r}")
        if self.flagged and not self.reason.strip():
            raise ValueError("a flagged ScreenResult needs a reason (what kind of content)")


CLEAN = ScreenResult(False)
"""The result of a screen that found nothing."""


@runtime_checkable
class Screen(Protocol):
    """Inspects one authorised hit before release: ``screen(hit) -> ScreenResult``.

    Any callable with that shape is a screen (a function, or an object with
    ``__call__``). ``hit`` is the :class:`ragguard.Hit` about to be released: ``text``,
    ``metadata``, ``score``, ``decision`` (released so far, with its rule) and
    ``subject`` (who would receive it). An optional ``name`` attribute names the screen
    in reasons; otherwise the class or function name is used. A screen that raises
    withholds the hit (fail closed). Screens run concurrently from many threads.
    """

    def __call__(self, hit: Hit) -> ScreenResult:
        """The verdict on ``hit``."""
        ...


def screen_name(screen: object) -> str:
    """The name a screen is reported under: its ``name``, else its class or function name."""
    name = getattr(screen, "name", None)
    if isinstance(name, str) and name:
        return name
    function_name = getattr(screen, "__name__", None)  # functions; instances have none
    if isinstance(function_name, str) and function_name:
        return function_name
    return type(screen).__name__


def run_screens(screens: Sequence[tuple[str, Screen]], hit: Hit) -> Hit:
    """Apply ``screens`` (name, screen) in order to a released ``hit``.

    The first ``deny`` withholds the hit and stops; ``flag`` results accumulate on the
    hit (``hit.flags``) and in the decision's reason. A screen that raises or returns
    something other than a :class:`ScreenResult` withholds the hit.
    """
    flags: list[str] = []
    for name, screen in screens:
        try:
            result = screen(hit)
        except Exception as exc:  # a broken screen must never release what it could not judge
            return _withheld(hit, f"screen {name} failed ({type(exc).__name__}); withheld")
        if not isinstance(result, ScreenResult):
            return _withheld(
                hit, f"screen {name} returned {type(result).__name__}, not a ScreenResult; withheld"
            )
        if not result.flagged:
            continue
        if result.action == "deny":
            return _withheld(hit, f"screen {name}: {result.reason}")
        flags.append(f"{name}: {result.reason}")
    if not flags:
        return hit
    decision = dataclasses.replace(hit.decision, reason="flagged by screen " + "; ".join(flags))
    return dataclasses.replace(hit, decision=decision, flags=hit.flags + tuple(flags))


def _withheld(hit: Hit, reason: str) -> Hit:
    return dataclasses.replace(hit, decision=hit.decision.withheld(reason))
