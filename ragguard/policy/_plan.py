"""Plans (what a subject may read, as a filter) and decisions (one chunk, one verdict)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ragguard._values import MalformedValueError
from ragguard.policy import ir
from ragguard.policy._predicate import (
    Check,
    compile_check,
    explain_failure,
    normalize_metadata,
)
from ragguard.policy._snapshot import PolicyLine

__all__ = ["Decision", "Plan", "PlanKind"]

PlanKind = Literal["allow_all", "deny_all", "conditional"]

OUTSIDE_CALLER_FILTER = "outside the caller's filter"
"""How a decision begins when the policy released a chunk but the caller's filter did not."""


# The node classes of ir.Expr (a Union, which isinstance cannot take directly).
EXPR_TYPES = (ir.Const, ir.Eq, ir.In, ir.Range, ir.Exists, ir.Match, ir.Not, ir.And, ir.Or)


def plan_kind(filter: ir.Expr) -> PlanKind:
    """The kind of a plan with this filter: no filter, nothing, or a real condition."""
    if filter == ir.TRUE:
        return "allow_all"
    if filter == ir.FALSE:
        return "deny_all"
    return "conditional"


@dataclass(frozen=True)
class Decision:
    """The verdict on one chunk for one subject.

    ``rule`` names the policy line that released it (``"line 3: p, eng, read"``);
    ``reason`` says why a chunk was withheld (``"level 3 > 2 (r.sub.clearance)"``,
    ``"missing attribute 'dept'"``, ``"deny line 7: p, ..., deny"``).
    """

    released: bool
    rule: str | None = None
    reason: str | None = None
    policy_version: str = ""

    def denied(self, reason: str) -> Decision:
        """This decision turned into a denial (a later check failed)."""
        return Decision(False, self.rule, reason, self.policy_version)


@dataclass(frozen=True)
class _Line:
    line: PolicyLine | None
    residual: ir.Expr
    check: Check
    label: str = field(init=False)

    def __post_init__(self) -> None:
        # Rendered once: every released hit carries it as ``Decision.rule``.
        label = (
            "matcher (policy has no lines)"
            if self.line is None
            else f"line {self.line.number}: {self.line.render()}"
        )
        object.__setattr__(self, "label", label)


@dataclass(frozen=True)
class _Narrowing:
    """A caller's filter on top of a plan, and the plan it narrows (see ``Plan.narrow``)."""

    base: Plan
    expr: ir.Expr
    check: Check
    fields: frozenset[str]


@dataclass(frozen=True, eq=False)
class Plan:
    """What one subject may read under one policy version.

    ``kind`` is ``"allow_all"`` (no filter), ``"deny_all"`` (nothing; the store is never
    queried) or ``"conditional"`` (``filter`` is pushed into the store). ``exact`` is
    ``False`` when the store had to relax part of the filter: the guard then fetches
    more and its exact re-check decides. :meth:`decide` is the compiled predicate.
    """

    kind: PlanKind
    filter: ir.Expr
    exact: bool
    policy_version: str
    subject_id: str = ""
    action: str = "read"
    _allow: tuple[_Line, ...] = field(default=(), repr=False)
    _deny: tuple[_Line, ...] = field(default=(), repr=False)
    _fields: frozenset[str] = field(default=frozenset(), repr=False)
    _note: str = field(default="", repr=False)
    _narrowing: _Narrowing | None = field(default=None, repr=False)
    _released: dict[str, Decision] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # One immutable "released by line N" decision per allow line, shared by every hit.
        released = {
            e.label: Decision(True, e.label, None, self.policy_version) for e in self._allow
        }
        object.__setattr__(self, "_released", released)

    @classmethod
    def build(
        cls,
        *,
        filter: ir.Expr,
        allow: tuple[tuple[PolicyLine | None, ir.Expr], ...],
        deny: tuple[tuple[PolicyLine, ir.Expr], ...],
        policy_version: str,
        subject_id: str,
        action: str,
        note: str = "",
    ) -> Plan:
        """Assemble a plan from compiled residuals (the compiler's output)."""
        kind = plan_kind(filter)
        shared: dict[ir.Expr, Check] = {}
        allow_lines = tuple(_Line(line, e, compile_check(e, shared)) for line, e in allow)
        deny_lines = tuple(_Line(line, e, compile_check(e, shared)) for line, e in deny)
        fields: set[str] = set()
        for entry in allow_lines + deny_lines:
            fields |= ir.fields_of(entry.residual)
        return cls(
            kind=kind,
            filter=filter,
            exact=True,
            policy_version=policy_version,
            subject_id=subject_id,
            action=action,
            _allow=allow_lines,
            _deny=deny_lines,
            _fields=frozenset(fields),
            _note=note,
        )

    def narrow(self, expr: ir.Expr) -> Plan:
        """This plan restricted to the chunks that also satisfy ``expr``.

        ``expr`` is a caller's filter (``guard.search(..., where=...)``, a LangChain
        ``filter=``). The returned plan's ``filter`` is the AND of both, its ``kind``
        follows (a filter that excludes everything the policy grants is ``deny_all``)
        and its :meth:`decide` re-checks ``expr`` on every chunk, so the narrowing holds
        on stores that cannot push all of it down. It never widens: a chunk is released
        only when the policy releases it and ``expr`` holds. A chunk the policy releases
        and ``expr`` excludes is withheld with a reason that starts with
        ``"outside the caller's filter"``. This plan is not changed (plans are cached
        and shared); narrowing a narrowed plan ANDs the filters::

            plan = policy.plan(alice).narrow(ir.Eq("project", "p1"))
        """
        if not isinstance(expr, EXPR_TYPES):
            raise TypeError(f"narrow() takes a filter IR expression, got {type(expr).__name__}")
        if expr == ir.TRUE:
            return self
        base, narrowing = self, expr
        if self._narrowing is not None:
            base, narrowing = self._narrowing.base, ir.and_(self._narrowing.expr, expr)
        filter = ir.and_(self.filter, expr)
        return dataclasses.replace(
            self,
            kind=plan_kind(filter),
            filter=filter,
            _narrowing=_Narrowing(
                base, narrowing, compile_check(narrowing), frozenset(ir.fields_of(narrowing))
            ),
        )

    @property
    def fields(self) -> frozenset[str]:
        """The chunk metadata attributes this plan reads."""
        if self._narrowing is not None:
            return self._fields | self._narrowing.fields
        return self._fields

    @property
    def digest(self) -> str:
        """SHA-256 of the policy version and the filter: identifies the plan in audits."""
        payload = json.dumps(
            [self.policy_version, self.action, ir.to_json(self.filter)],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def decide(self, metadata: Mapping[str, Any] | None) -> Decision:
        """Decide one chunk exactly, without ``casbin.enforce``."""
        if self._narrowing is not None:
            return self._decide_narrowed(self._narrowing, metadata)
        version = self.policy_version
        if self.kind == "deny_all":
            return Decision(False, None, self._deny_all_reason(), version)
        if type(metadata) is not dict and not isinstance(metadata, Mapping):
            return Decision(False, None, "malformed metadata: not a JSON object", version)
        try:
            md = normalize_metadata(metadata, self._fields)
        except MalformedValueError as exc:
            return Decision(False, None, f"malformed metadata: {exc}", version)
        for entry in self._deny:
            if entry.check(md):
                return Decision(False, None, f"deny {entry.label}", version)
        for entry in self._allow:
            if entry.check(md):
                return self._released[entry.label]
        return Decision(False, None, self._failure_reason(md), version)

    def _decide_narrowed(
        self, narrowing: _Narrowing, metadata: Mapping[str, Any] | None
    ) -> Decision:
        """The policy's decision, then the caller's filter on what the policy releases."""
        decision = narrowing.base.decide(metadata)
        if not decision.released:
            return decision
        try:
            md = normalize_metadata(cast(Mapping[str, Any], metadata), narrowing.fields)
        except MalformedValueError as exc:
            return Decision(False, None, f"malformed metadata: {exc}", self.policy_version)
        if narrowing.check(md):
            return decision
        why = explain_failure(narrowing.expr, md)
        return Decision(False, None, f"{OUTSIDE_CALLER_FILTER}: {why}", self.policy_version)

    def _deny_all_reason(self) -> str:
        if self._note:
            return self._note
        subject = f" to subject {self.subject_id!r}" if self.subject_id else ""
        return f"no policy line grants {self.action!r}{subject}"

    def _failure_reason(self, md: Mapping[str, object]) -> str:
        if len(self._allow) == 1:
            return explain_failure(self._allow[0].residual, md)
        reasons = [
            f"{e.label.split(':')[0]}: {explain_failure(e.residual, md)}" for e in self._allow[:3]
        ]
        more = f" (+{len(self._allow) - 3} more lines)" if len(self._allow) > 3 else ""
        return "no line matched; " + "; ".join(reasons) + more

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (CLI ``ragguard plan``, audit)."""
        return {
            "kind": self.kind,
            "exact": self.exact,
            "policy_version": self.policy_version,
            "subject_id": self.subject_id,
            "action": self.action,
            "filter": ir.to_json(self.filter),
            "allow_lines": [e.label for e in self._allow],
            "deny_lines": [e.label for e in self._deny],
            **(
                {"caller_filter": ir.to_json(self._narrowing.expr)}
                if self._narrowing is not None
                else {}
            ),
        }
