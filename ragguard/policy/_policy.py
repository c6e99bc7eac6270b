"""``Policy``: a Casbin model and policy, compiled per subject into plans."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from casbin.core_enforcer import CoreEnforcer

from ragguard.exceptions import PolicyError, PolicyLoadError
from ragguard.policy._compiler import (
    MatcherProgram,
    check_policy_patterns,
    compile_lines,
    programs_for,
)
from ragguard.policy._index import IndexSpec, PayloadSchema
from ragguard.policy._plan import Decision, Plan
from ragguard.policy._snapshot import Snapshot, load_enforcer, snapshot_from_enforcer
from ragguard.subject import Subject, require_subject

__all__ = ["Policy"]

DEFAULT_PLAN_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Compiled:
    """One policy version, ready to compile plans (swapped whole on reload)."""

    snapshot: Snapshot
    matcher: MatcherProgram | None
    eval_programs: dict[int, MatcherProgram]

    @classmethod
    def of(cls, snapshot: Snapshot) -> _Compiled:
        matcher, eval_programs = programs_for(snapshot)
        check_policy_patterns(snapshot, matcher, eval_programs)
        return cls(snapshot, matcher, eval_programs)


class Policy:
    """A Casbin access policy, compiled per subject into vector-store filters.

    Load it from a model and a policy (file paths or text)::

        policy = Policy.from_casbin("policies/clearance/model.conf",
                                    "policies/clearance/policy.csv")
        plan = policy.plan(Subject(id="alice", attributes={"clearance": 2}))

    or from a live ``casbin.Enforcer`` (policies from a database adapter, say) with
    :meth:`from_enforcer`; call :meth:`reload` after the enforcer's policy changes.
    Everything outside the supported language raises ``UnsupportedPolicyError`` here,
    at load time, never at query time. The request must be ``r = sub, obj, act``.

    Plans are cached per (subject fingerprint, action, policy version); a reload that
    changes the policy changes :attr:`version`, so no stale plan is ever used. A policy
    is safe to share between threads.
    """

    def __init__(
        self,
        enforcer: Any,
        *,
        source: tuple[str | Path, str | Path | None] | None = None,
        line_numbers: dict[int, int] | None = None,
        matcher_line: int | None = None,
        plan_cache_size: int = DEFAULT_PLAN_CACHE_SIZE,
    ) -> None:
        self._enforcer = enforcer
        self._source = source
        self._cache_size = plan_cache_size
        self._cache: OrderedDict[tuple[str, str, str], Plan] = OrderedDict()
        self._lock = threading.Lock()
        snapshot = snapshot_from_enforcer(
            enforcer, line_numbers=line_numbers, matcher_line=matcher_line
        )
        self._compiled = _Compiled.of(snapshot)

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_casbin(
        cls, model: str | Path, policy: str | Path | None = None, **options: Any
    ) -> Policy:
        """Load a Casbin model and policy; each is a path (``.conf``/``.csv``) or text.

        Raises ``PolicyLoadError`` for unreadable or malformed files and
        ``UnsupportedPolicyError`` for constructs ragguard cannot compile.
        """
        enforcer, line_numbers, _, matcher_line = load_enforcer(model, policy)
        return cls(
            enforcer,
            source=(model, policy),
            line_numbers=line_numbers,
            matcher_line=matcher_line,
            **options,
        )

    @classmethod
    def from_enforcer(cls, enforcer: Any, **options: Any) -> Policy:
        """Wrap a live ``casbin.Enforcer`` (any adapter); see :meth:`reload`."""
        if not isinstance(enforcer, CoreEnforcer):
            raise PolicyLoadError(f"expected a casbin.Enforcer, got {type(enforcer).__name__}")
        return cls(enforcer, **options)

    # -- versioning ------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Content hash of the model and every policy and role line."""
        return self._compiled.snapshot.version

    @property
    def enforcer(self) -> Any:
        """The Casbin enforcer this policy was built from (for reference checks)."""
        return self._enforcer

    def reload(self) -> bool:
        """Take a fresh snapshot of the policy; returns whether the version changed.

        With :meth:`from_enforcer` the enforcer's current in-memory policy is read
        (call ``enforcer.load_policy()`` first to re-read its adapter); with
        :meth:`from_casbin` on file paths the files are read again. The new version is
        compiled completely before it replaces the old one, so concurrent searches see
        either the old or the new policy, never a mixture; a reload that fails leaves
        the old policy in force and raises.
        """
        if self._source is not None:
            enforcer, line_numbers, _, matcher_line = load_enforcer(*self._source)
            snapshot = snapshot_from_enforcer(
                enforcer, line_numbers=line_numbers, matcher_line=matcher_line
            )
        else:
            enforcer = self._enforcer
            snapshot = snapshot_from_enforcer(enforcer)
        if snapshot.version == self.version:
            return False
        compiled = _Compiled.of(snapshot)
        with self._lock:
            self._enforcer = enforcer
            self._compiled = compiled
            self._cache.clear()
        return True

    # -- compiling ---------------------------------------------------------------------

    def plan(self, subject: Subject, action: str = "read") -> Plan:
        """The plan for ``subject`` doing ``action`` (cached)."""
        subject = require_subject(subject)
        if not isinstance(action, str) or not action:
            raise PolicyError(f"action must be a non-empty string, got {action!r}")
        compiled = self._compiled  # one read: the whole plan comes from one version
        key = (subject.fingerprint, action, compiled.snapshot.version)
        plan = self._cache.get(key)
        if plan is not None:
            return plan
        lines = compile_lines(
            compiled.snapshot, compiled.matcher, compiled.eval_programs, subject, action
        )
        plan = Plan.build(
            filter=lines.filter,
            allow=lines.allow,
            deny=lines.deny,
            policy_version=compiled.snapshot.version,
            subject_id=subject.id,
            action=action,
            note=lines.note,
        )
        with self._lock:
            self._cache[key] = plan
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return plan

    def check(
        self, subject: Subject, metadata: Mapping[str, Any], action: str = "read"
    ) -> Decision:
        """Decide one chunk's metadata for ``subject`` (the compiled predicate)."""
        return self.plan(subject, action).decide(metadata)

    def index_specs(self, types: Mapping[str, str] | None = None) -> list[IndexSpec]:
        """The payload indexes this policy's filters need.

        Types are inferred from the matcher (ordering comparisons → ``float``, equality
        with a number/boolean literal → ``integer``/``bool``, otherwise ``keyword``; a
        role domain taken from a chunk attribute → ``keyword`` with ``is_tenant``).
        ``types`` overrides the inference per attribute, e.g. ``{"level": "integer"}``.
        """
        compiled = self._compiled
        programs = list(compiled.eval_programs.values())
        if compiled.matcher is not None:
            programs.append(compiled.matcher)
        chosen: dict[str, IndexSpec] = {}
        rank = {"keyword": 0, "bool": 1, "integer": 2, "float": 3}
        for program in programs:
            for use in program.field_uses:
                tenant = use.usage == "tenant"
                if use.usage == "ordering":
                    schema = "float"
                elif isinstance(use.literal, bool):
                    schema = "bool"
                elif isinstance(use.literal, (int, float)):
                    schema = "integer" if isinstance(use.literal, int) else "float"
                else:
                    schema = "keyword"
                previous = chosen.get(use.field)
                if previous is None or rank[schema] > rank[previous.schema] or tenant:
                    chosen[use.field] = IndexSpec(
                        use.field,
                        cast(PayloadSchema, schema),
                        is_tenant=tenant or bool(previous and previous.is_tenant),
                    )
        for name, schema in (types or {}).items():
            if schema not in rank:
                raise PolicyError(f"unknown payload index type {schema!r} for {name!r}")
            current = chosen.get(name)
            chosen[name] = IndexSpec(
                name,
                cast(PayloadSchema, schema),
                is_tenant=bool(current and current.is_tenant),
            )
        return [chosen[name] for name in sorted(chosen)]

    def __repr__(self) -> str:
        snapshot = self._compiled.snapshot
        return (
            f"Policy(version={snapshot.version!r}, lines={len(snapshot.lines)}, "
            f"effect={snapshot.effect!r})"
        )
