"""Release budgets: how many chunks one subject may receive per time window.

A user with broad access can still drain the corpus through many broad queries. A
:class:`ReleaseBudget` caps what the guard releases to each subject in a sliding
window, and withholds hits whose similarity score is too low to be an answer::

    budget = rg.ReleaseBudget(max_chunks=200, window_seconds=3600, min_score=0.25)
    guard = rg.Guard(policy, store, budget=budget)
    guard.search(alice, vector, k=5)   # raises BudgetExceededError once alice used 200

A search either releases all of its hits within the budget or raises
:class:`~ragguard.exceptions.BudgetExceededError` and releases nothing; the denial is
traced and audited like any other. The count lives in a :class:`BudgetBackend`:
:class:`InMemoryBudgetBackend` (the default) for one process; implement the one-method
protocol over a shared store (Redis, a database) for several processes or hosts
(``docs/screens-and-budgets.md`` has a Redis sketch).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ragguard.exceptions import BudgetError, BudgetExceededError, RagGuardError

__all__ = ["BudgetBackend", "InMemoryBudgetBackend", "ReleaseBudget"]

_SWEEP_EVERY = 4096


@runtime_checkable
class BudgetBackend(Protocol):
    """Where release counts are kept: one atomic check-and-record operation."""

    def consume(
        self, subject_id: str, n: int, now: float, *, limit: int, window_seconds: float
    ) -> bool:
        """Record ``n`` releases for ``subject_id`` at time ``now`` if they fit.

        Atomically: when the releases recorded for ``subject_id`` in the window
        ``(now - window_seconds, now]`` plus ``n`` are at most ``limit``, record ``n``
        at ``now`` and return ``True``; otherwise record nothing and return ``False``.
        Raise if the count cannot be read or written (the guard then fails closed).
        """
        ...


class InMemoryBudgetBackend:
    """Sliding-window release counts in this process, safe to share between threads.

    Memory is bounded: a subject keeps at most one entry per search that released
    chunks within the window (so at most ``limit`` entries), and subjects whose window
    is empty are dropped.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[deque[tuple[float, int]], list[int]]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def consume(
        self, subject_id: str, n: int, now: float, *, limit: int, window_seconds: float
    ) -> bool:
        """See :meth:`BudgetBackend.consume`."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        start = now - window_seconds
        with self._lock:
            self._calls += 1
            if self._calls % _SWEEP_EVERY == 0:
                self._sweep(start)
            entry = self._windows.get(subject_id)
            if entry is None:
                entry = (deque(), [0])
                self._windows[subject_id] = entry
            events, total = entry
            while events and events[0][0] <= start:
                total[0] -= events.popleft()[1]
            if total[0] + n > limit:
                return False
            if n:
                events.append((now, n))
                total[0] += n
            elif not events:
                del self._windows[subject_id]
            return True

    def used(self, subject_id: str, now: float, *, window_seconds: float) -> int:
        """Releases recorded for ``subject_id`` in the window ending at ``now``."""
        start = now - window_seconds
        with self._lock:
            entry = self._windows.get(subject_id)
            if entry is None:
                return 0
            return sum(count for at, count in entry[0] if at > start)

    def __len__(self) -> int:
        """How many subjects currently have releases on record."""
        with self._lock:
            return len(self._windows)

    def _sweep(self, start: float) -> None:
        stale = [
            subject
            for subject, (events, _) in self._windows.items()
            if not events or events[-1][0] <= start
        ]
        for subject in stale:
            del self._windows[subject]


class ReleaseBudget:
    """Per-subject release limits for :class:`ragguard.Guard` (``budget=``).

    * ``max_chunks`` per ``window_seconds`` (sliding window) — a search whose released
      hits would exceed it raises :class:`~ragguard.exceptions.BudgetExceededError`
      and releases nothing. ``None``: no count limit.
    * ``min_score`` — hits scoring below it are withheld (reason in the decision,
      trace and audit). Scores are the store's similarity (higher is closer: cosine,
      dot); a NaN score is below every minimum. ``None``: no minimum.
    * ``backend`` — where counts live (default :class:`InMemoryBudgetBackend`, one per
      budget); ``clock`` — seconds, monotonic by default; use ``time.time`` with a
      backend shared between hosts.

    ::

        budget = ReleaseBudget(max_chunks=100, window_seconds=600, min_score=0.3)
    """

    def __init__(
        self,
        max_chunks: int | None = None,
        window_seconds: float = 3600.0,
        *,
        min_score: float | None = None,
        backend: BudgetBackend | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_chunks is None and min_score is None:
            raise ValueError("a ReleaseBudget needs max_chunks, min_score, or both")
        if max_chunks is not None and (
            isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 1
        ):
            raise ValueError(f"max_chunks must be an integer >= 1, got {max_chunks!r}")
        if isinstance(window_seconds, bool) or not (
            isinstance(window_seconds, (int, float))
            and math.isfinite(window_seconds)
            and window_seconds > 0
        ):
            raise ValueError(f"window_seconds must be a finite number > 0, got {window_seconds!r}")
        if min_score is not None and (
            isinstance(min_score, bool)
            or not isinstance(min_score, (int, float))
            or not math.isfinite(min_score)
        ):
            raise ValueError(f"min_score must be a finite number or None, got {min_score!r}")
        if backend is not None and not isinstance(backend, BudgetBackend):
            raise TypeError(
                f"backend must implement BudgetBackend.consume, got {type(backend).__name__}"
            )
        self.max_chunks = max_chunks
        self.window_seconds = float(window_seconds)
        self.min_score = None if min_score is None else float(min_score)
        self.backend: BudgetBackend = backend if backend is not None else InMemoryBudgetBackend()
        self.clock = clock

    def __repr__(self) -> str:
        return (
            f"ReleaseBudget(max_chunks={self.max_chunks!r}, window_seconds={self.window_seconds:g}, "
            f"min_score={self.min_score!r}, backend={type(self.backend).__name__})"
        )

    def score_shortfall(self, score: float) -> str | None:
        """Why a hit with ``score`` is withheld, or ``None`` when it meets ``min_score``."""
        floor = self.min_score
        if floor is None or score >= floor:  # NaN fails the comparison: withheld
            return None
        return f"release budget: score {score:.4f} below min_score {floor:g}"

    def charge(self, subject_id: str, n: int) -> None:
        """Record ``n`` releases for ``subject_id``, or raise and record nothing.

        Raises :class:`~ragguard.exceptions.BudgetExceededError` when they do not fit,
        :class:`~ragguard.exceptions.BudgetError` when the backend fails.
        """
        if self.max_chunks is None or n == 0:
            return
        try:
            admitted = self.backend.consume(
                subject_id,
                n,
                self.clock(),
                limit=self.max_chunks,
                window_seconds=self.window_seconds,
            )
        except RagGuardError:
            raise
        except Exception as exc:  # an unreadable count must not mean "unlimited"
            raise BudgetError(
                f"the release budget backend failed ({type(exc).__name__}: {exc}); nothing was released"
            ) from exc
        if not isinstance(admitted, bool):
            raise BudgetError(
                f"the release budget backend returned {type(admitted).__name__}, not a bool; "
                "nothing was released"
            )
        if not admitted:
            raise BudgetExceededError(subject_id, n, self.max_chunks, self.window_seconds)
