"""Plans (what a subject may read, as a filter) and decisions (one chunk, one verdict)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, cast

from ragguard._values import MalformedValueError
from ragguard.policy import ir
from ragguard.policy._predicate import (
    Check,
    LineIndex,
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
EXPR_TYPES = (
    ir.Const,
    ir.Eq,
    ir.In,
    ir.Range,
    ir.Exists,
    ir.Match,
    ir.Contains,
    ir.Within,
    ir.Not,
    ir.And,
    ir.Or,
)


def plan_kind(filter: ir.Expr) -> PlanKind:
    """The kind of a plan with this filter: no filter, nothing, or a real condition."""
    if filter == ir.TRUE:
        return "allow_all"
    if filter == ir.FALSE:
        return "deny_all"
    return "conditional"


DECISION_MEMO_SIZE = 128
"""Decisions a plan remembers by the typed values of the attributes it reads (see
:func:`memo_key`); the memo is emptied when full."""

_ABSENT_KEY = object()
_MEMO_SCALARS = frozenset({str, int, bool, type(None)})


def memo_key(metadata: Mapping[str, Any], names: tuple[str, ...]) -> tuple[object, ...] | None:
    """What a plan's decision on ``metadata`` depends on, as a hashable key, or ``None``.

    A plan decides from the values of the attributes it reads (``names``) alone, so two
    chunks with the same values get the same decision. Values are keyed with their exact
    type, because Python's equality is looser than a decision: ``1 == 1.0 == True`` but
    Casbin tells ``true`` from ``1``, and ``0.0 == -0.0`` but their text differs. Only
    ``str``, ``int``, ``bool``, ``None``, floats (keyed by their exact bits, ``hex``) and
    flat lists of those are keyed; anything else (a nested object, a subclass) returns
    ``None`` and is decided afresh every time.
    """
    key: list[object] = []
    for name in names:
        value = metadata.get(name, _ABSENT_KEY)
        kind = type(value)
        if kind in _MEMO_SCALARS or value is _ABSENT_KEY:
            key.append(kind)
            key.append(value)
        elif kind is float:
            key.append(float)
            key.append(value.hex())
        elif kind is list:
            items: list[object] = [list]
            for item in value:
                item_kind = type(item)
                if item_kind in _MEMO_SCALARS:
                    items.append(item_kind)
                    items.append(item)
                elif item_kind is float:
                    items.append(float)
                    items.append(item.hex())
                else:
                    return None
            key.append(list)
            key.append(tuple(items))
        else:
            return None
    return tuple(key)


class _Deferred:
    """A reason to be worded when first read (see :class:`_Reason`)."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], str]) -> None:
        self.compute = compute


class _Reason:
    """``Decision.reason``: a string, or a :class:`_Deferred` worded on first read.

    Explaining why no line matched costs more than deciding it (every condition that
    failed is rendered), and most denials are never read: the plan hands out the
    explanation deferred and it is computed once, on first read, from the same chunk.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, instance: object, owner: type | None = None) -> str | None:
        if instance is None:
            return None  # the field's default
        value = instance.__dict__[self._slot]
        if type(value) is _Deferred:
            value = value.compute()
            instance.__dict__[self._slot] = value
        return value  # type: ignore[no-any-return]

    def __set__(self, instance: object, value: str | _Deferred | None) -> None:
        instance.__dict__[self._slot] = value


@dataclass(frozen=True)
class Decision:
    """The verdict on one chunk for one subject.

    ``rule`` names the policy line that released it (``"line 3: p, eng, read"``);
    ``reason`` says why a chunk was withheld (``"level 3 > 2 (r.sub.clearance)"``,
    ``"missing attribute 'dept'"``, ``"deny line 7: p, ..., deny"``). A plan's
    "no line matched" reason is worded when first read; equality, ``repr`` and
    pickling use the worded text.
    """

    released: bool
    rule: str | None = None
    reason: _Reason = _Reason()
    policy_version: str = ""

    def withheld(self, reason: str) -> Decision:
        """This decision turned into a withholding (a later check failed: provenance,
        a screen, the budget); ``rule`` is kept, ``reason`` says why."""
        return Decision(False, self.rule, reason, self.policy_version)

    def __reduce__(self) -> tuple[type[Decision], tuple[bool, str | None, str | None, str]]:
        return (Decision, (self.released, self.rule, self.reason, self.policy_version))


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
    _lines: tuple[_Line, ...] = field(init=False, repr=False)
    _outcomes: tuple[Decision, ...] = field(init=False, repr=False)
    _index: LineIndex = field(init=False, repr=False)
    _memo: dict[tuple[object, ...], Decision] = field(init=False, repr=False)
    _memo_fields: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_memo_fields", tuple(sorted(self._fields)))
        if self._narrowing is not None:
            # A narrowed plan decides through the plan it narrows: share its lines and
            # index instead of rebuilding them on every search with a caller's filter.
            base = self._narrowing.base
            for name in ("_lines", "_outcomes", "_index"):
                object.__setattr__(self, name, getattr(base, name))
            return
        # decide() evaluates the deny lines, then the allow lines, each in policy order,
        # and the first line that holds decides: any deny line that holds withholds the
        # chunk (naming the first), else the first allow line that holds releases it.
        # The index picks the lines that can hold on a chunk; the others are skipped.
        lines = self._deny + self._allow
        version = self.policy_version
        # One immutable decision per line, shared by every hit it decides.
        outcomes = tuple(Decision(False, None, f"deny {e.label}", version) for e in self._deny)
        outcomes += tuple(Decision(True, e.label, None, version) for e in self._allow)
        object.__setattr__(self, "_lines", lines)
        object.__setattr__(self, "_outcomes", outcomes)
        object.__setattr__(self, "_index", LineIndex([e.residual for e in lines]))

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

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the policy version, the action and the filter: identifies the plan
        in audits and traces. Computed on first read and kept on the plan (plans are
        immutable)."""
        payload = json.dumps(
            [self.policy_version, self.action, ir.to_json(self.filter)],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def decide(self, metadata: Mapping[str, Any] | None) -> Decision:
        """Decide one chunk exactly, without ``casbin.enforce``.

        Its cost follows the lines that can hold on this chunk
        (:meth:`candidate_lines`), not the size of the plan.
        """
        if self._narrowing is not None:
            return self._decide_narrowed(self._narrowing, metadata)
        version = self.policy_version
        if self.kind == "deny_all":
            return Decision(False, None, self._deny_all_reason(), version)
        if type(metadata) is not dict and not isinstance(metadata, Mapping):
            return Decision(False, None, "malformed metadata: not a JSON object", version)
        key = memo_key(metadata, self._memo_fields)
        if key is not None:
            known = self._memo.get(key)
            if known is not None:
                return known
        decision = self._decide(metadata, version)
        if key is not None:
            memo = self._memo
            if len(memo) >= DECISION_MEMO_SIZE:
                memo.clear()  # a plan whose chunks vary that much gains nothing from it
            memo[key] = decision
        return decision

    def _decide(self, metadata: Mapping[str, Any], version: str) -> Decision:
        try:
            md = normalize_metadata(metadata, self._fields)
        except MalformedValueError as exc:
            return Decision(False, None, f"malformed metadata: {exc}", version)
        lines = self._lines
        for position in self._index.candidates(md):
            if lines[position].check(md):
                return self._outcomes[position]
        return Decision(False, None, _Deferred(partial(self._failure_reason, md)), version)

    def candidate_lines(self, metadata: Mapping[str, Any]) -> tuple[str, ...]:
        """The lines :meth:`decide` evaluates on this chunk, in that order.

        Deny lines first, then allow lines, each in policy order; the lines left out
        cannot hold on this chunk (an equality they require meets none of its values,
        or no chunk satisfies them). Empty for a ``deny_all`` plan or malformed metadata.
        """
        if self.kind == "deny_all":
            return ()
        try:
            md = normalize_metadata(metadata, self._fields)
        except MalformedValueError:
            return ()
        return tuple(self._lines[p].label for p in self._index.candidates(md))

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
