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
:class:`InMemoryBudgetBackend` (the default) counts in **this process only** — each
worker process of a web server would grant its own full budget; with several
processes or hosts use :class:`RedisBudgetBackend` (``pip install 'ragguard[redis]'``),
one count for all of them, or implement the one-method protocol over another shared
store.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol, runtime_checkable

from ragguard.exceptions import BudgetError, BudgetExceededError, RagGuardError

__all__ = ["BudgetBackend", "InMemoryBudgetBackend", "RedisBudgetBackend", "ReleaseBudget"]

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
    """Sliding-window release counts **in this process only**, safe to share between threads.

    Per-process scope: every process (each worker of a gunicorn/uvicorn server, each
    host) keeps its own counts, so N processes together release up to N times the
    budget. Share one instance between the guards of a process; across processes use
    :class:`RedisBudgetBackend`. ``scope`` says which kind a backend is.

    Memory is bounded: a subject keeps at most one entry per search that released
    chunks within the window (so at most ``limit`` entries), and subjects whose window
    is empty are dropped.
    """

    scope: Final = "process"

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


# KEYS[1]: the subject's sorted set; ARGV: now, window_seconds, limit, n, a unique
# member suffix, and "1" to use the server's clock instead of ``now``. Members are
# "<n>:<suffix>" scored by their time; the window is (now - window_seconds, now].
_REDIS_CONSUME: Final = """
local now = tonumber(ARGV[1])
if ARGV[6] == '1' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(member, '^(%d+):'))
end
if used + n > limit then return 0 end
if n > 0 then
  redis.call('ZADD', KEYS[1], string.format('%.6f', now), n .. ':' .. ARGV[5])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
end
return 1
"""


class RedisBudgetBackend:
    """Release counts in Redis, shared by every process and host that uses the server.

    ::

        backend = rg.RedisBudgetBackend.from_url("redis://localhost:6379/0")
        budget = rg.ReleaseBudget(max_chunks=200, window_seconds=3600, backend=backend)

    Each subject's window is one sorted set (``<prefix><subject id>``); the check and
    the record run in one Lua script, so concurrent searches in any number of
    processes never release more than ``limit`` in a window. Keys expire one window
    after their last release. ``server_time=True`` (the default) takes ``now`` from the
    Redis server's clock, so hosts with skewed clocks (or the guard's default
    ``time.monotonic``, which differs between processes on different hosts) still
    share one window; ``server_time=False`` uses the ``now`` the budget passes.

    Any Redis failure (server down, timeout, script error) raises out of
    :meth:`consume`; :class:`ReleaseBudget` turns it into
    :class:`~ragguard.exceptions.BudgetError` and the guard releases nothing. Needs the
    ``redis`` package (``pip install 'ragguard[redis]'``), imported only by
    :meth:`from_url`; ``client`` may be any ``redis.Redis`` (or compatible) client.
    """

    scope: Final = "shared"

    def __init__(
        self, client: Any, *, prefix: str = "ragguard:budget:", server_time: bool = True
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.client = client
        self.prefix = prefix
        self.server_time = server_time
        self._script = client.register_script(_REDIS_CONSUME)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "ragguard:budget:",
        server_time: bool = True,
        timeout_seconds: float = 2.0,
    ) -> RedisBudgetBackend:
        """A backend over a new client for ``url`` (``redis://host:port/db``,
        ``rediss://`` for TLS, ``unix:///path``); connecting and each command give up
        after ``timeout_seconds``."""
        try:
            import redis
        except ImportError as exc:
            raise ImportError(
                "RedisBudgetBackend needs the redis package: pip install 'ragguard[redis]'"
            ) from exc
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        return cls(client, prefix=prefix, server_time=server_time)

    def consume(
        self, subject_id: str, n: int, now: float, *, limit: int, window_seconds: float
    ) -> bool:
        """See :meth:`BudgetBackend.consume` (one atomic Lua script)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        args = [
            repr(float(now)),
            repr(float(window_seconds)),
            int(limit),
            int(n),
            uuid.uuid4().hex,
            "1" if self.server_time else "0",
        ]
        answer = self._script(keys=[self.prefix + subject_id], args=args)
        if answer not in (0, 1):
            raise BudgetError(f"the Redis budget script answered {answer!r}, not 0 or 1")
        return bool(answer == 1)

    def used(self, subject_id: str, now: float | None = None, *, window_seconds: float) -> int:
        """Releases on record for ``subject_id`` in the window ending at ``now``
        (the server's clock when ``server_time`` or ``now`` is None)."""
        if self.server_time or now is None:
            seconds, micros = self.client.time()
            now = float(seconds) + float(micros) / 1e6
        members = self.client.zrangebyscore(
            self.prefix + subject_id, f"({now - window_seconds!r}", "+inf"
        )
        total = 0
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            total += int(text.partition(":")[0])
        return total

    def __repr__(self) -> str:
        return f"RedisBudgetBackend(prefix={self.prefix!r}, server_time={self.server_time})"


class ReleaseBudget:
    """Per-subject release limits for :class:`ragguard.Guard` (``budget=``).

    * ``max_chunks`` per ``window_seconds`` (sliding window) — a search whose released
      hits would exceed it raises :class:`~ragguard.exceptions.BudgetExceededError`
      and releases nothing. ``None``: no count limit.
    * ``min_score`` — hits scoring below it are withheld (reason in the decision,
      trace and audit). Scores are the store's similarity (higher is closer: cosine,
      dot); a NaN score is below every minimum. ``None``: no minimum.
    * ``backend`` — where counts live (default :class:`InMemoryBudgetBackend`, one per
      budget, counting in this process only; :class:`RedisBudgetBackend` for one count
      across processes and hosts); ``clock`` — seconds, monotonic by default; use
      ``time.time`` with a shared backend that does not keep its own clock.

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
