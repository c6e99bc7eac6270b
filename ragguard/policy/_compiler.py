"""Partial evaluation of a Casbin matcher: subject known, chunk unknown.

The matcher is rewritten exactly as Casbin rewrites it (``&&`` → ``and`` ...), parsed
once with :mod:`ast`, checked against a whitelist, and turned into a tree of closures.
Running the closures for one subject and one policy line folds everything known
(subject attributes, policy values, the action, role links) to constants and leaves a
residual :mod:`ragguard.policy.ir` expression over chunk attributes only.

Nothing a subject supplies is ever spliced into source text: subject values are data.
Only ``eval(p.rule)`` splices policy text, exactly as Casbin does, and each spliced rule
is parsed and validated when the policy is loaded.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import simpleeval
from casbin import util as casbin_util
from casbin.util import builtin_operators

from ragguard._values import ABSENT, MAX_INT_BITS, compare, elements
from ragguard.exceptions import PolicyError, PolicyLoadError, SubjectError, UnsupportedPolicyError
from ragguard.policy import ir
from ragguard.policy._predicate import MATCH_FUNCTIONS
from ragguard.policy._snapshot import PolicyLine, RoleGraph, Snapshot
from ragguard.subject import Subject

__all__ = [
    "CompiledLines",
    "FieldUse",
    "MatcherProgram",
    "compile_lines",
    "programs_for",
]


MAX_MATCHER_NODES = 5_000
MAX_MATCHER_DEPTH = 64
MAX_MATCHER_CHARS = 100_000

_COMPARE_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_RANGE_BOUND = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_KEY_MATCH4_TOKEN: re.Pattern[str] = builtin_operators.KEY_MATCH4_PATTERN


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A chunk attribute (``r.obj.<name>``): unknown until a chunk is decided."""

    name: str


@dataclass(frozen=True)
class FieldUse:
    """How the matcher uses a chunk attribute (drives payload index suggestions)."""

    field: str
    usage: Literal["equality", "ordering", "match", "tenant"]
    literal: object = None


@dataclass
class Env:
    """What is known while evaluating one policy line for one subject."""

    subject: Subject
    action: str
    line: tuple[str, ...]
    role_memo: dict[tuple[Any, ...], ir.Expr] = field(default_factory=dict)


Value: TypeAlias = "object"  # a known normalized value, or a FieldRef
ValueFn: TypeAlias = Callable[[Env], Value]
BoolFn: TypeAlias = Callable[[Env], ir.Expr]


class MatcherProgram:
    """One matcher text, validated and compiled to closures.

    ``where`` names the source for error messages (``model.conf line 12`` or
    ``policy line 7 (eval rule)``).
    """

    def __init__(self, text: str, snapshot: Snapshot, where: str) -> None:
        self.text = text
        self.where = where
        self._snapshot = snapshot
        self._sub, self._obj, self._act = snapshot.request_tokens
        self._policy_index = {token: i for i, token in enumerate(snapshot.policy_tokens)}
        self.field_uses: set[FieldUse] = set()
        # (function, policy column) of every matching function whose pattern is a policy
        # column: checked against each line's value when the policy loads.
        self.pattern_columns: set[tuple[str, int]] = set()
        if len(text) > MAX_MATCHER_CHARS:
            raise UnsupportedPolicyError(
                f"{where}: the matcher is too large ({len(text)} characters, the limit is "
                f"{MAX_MATCHER_CHARS})"
            )
        rewritten = _casbin_rewrite(text)
        try:
            module = ast.parse(rewritten.strip(), mode="eval")
        except SyntaxError as exc:
            raise UnsupportedPolicyError(
                f"{where}: the matcher is not a valid expression ({exc.msg}): {_excerpt(text)}"
            ) from None
        except (MemoryError, RecursionError):
            # CPython's parser gives up on very deep nesting (e.g. thousands of '!').
            raise UnsupportedPolicyError(
                f"{where}: the matcher is nested too deeply to parse (limit: depth "
                f"{MAX_MATCHER_DEPTH}): {_excerpt(text)}"
            ) from None
        _check_size(module.body, where)
        self._run: BoolFn = self._bool(module.body)

    def evaluate(self, env: Env) -> ir.Expr:
        """The residual filter for this subject and policy line."""
        return self._run(env)

    # -- errors ---------------------------------------------------------------------

    def _unsupported(self, node: ast.AST, why: str) -> UnsupportedPolicyError:
        construct = _source(node)
        return UnsupportedPolicyError(f"{self.where}: {why}: {construct!r}")

    # -- boolean context ----------------------------------------------------------------

    def _bool(self, node: ast.expr) -> BoolFn:
        if isinstance(node, ast.BoolOp):
            parts = [self._bool(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return _and_fn(parts)
            return _or_fn(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._bool(node.operand)
            return lambda env: ir.not_(inner(env))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            constant = ir.TRUE if node.value else ir.FALSE
            return lambda env: constant
        if self._is_subject_attribute(node):
            value_fn = self._value(node)
            text = _source(node)

            def subject_flag(env: Env) -> ir.Expr:
                value = value_fn(env)
                if value is True:
                    return ir.TRUE
                if value is False:
                    return ir.FALSE
                raise SubjectError(
                    f"{text} is used as a boolean in the policy, but the subject's value is "
                    f"{'absent' if value is ABSENT else type(value).__name__}; give it true/false"
                )

            return subject_flag
        if self._mentions_object(node):
            raise self._unsupported(
                node, "a chunk attribute used as a boolean; compare it explicitly (== True)"
            )
        raise self._unsupported(node, "not a boolean expression")

    def _compare(self, node: ast.Compare) -> BoolFn:
        if len(node.ops) != 1:
            raise self._unsupported(node, "chained comparisons are not supported; split with &&")
        op = _COMPARE_OPS.get(type(node.ops[0]))
        if op is None:
            raise self._unsupported(node, "unsupported comparison operator")
        left_node, right_node = node.left, node.comparators[0]
        if op not in ("in", "not in") and any(
            isinstance(n, (ast.Tuple, ast.List)) for n in (left_node, right_node)
        ):
            # Casbin compares a value with the tuple itself (never equal); write `in`.
            raise self._unsupported(
                node, f"'{op}' with a list literal is never true in Casbin; use 'in'"
            )
        if self._mentions_object(left_node) and self._mentions_object(right_node):
            raise self._unsupported(
                node, "comparing two chunk attributes cannot be pushed into a vector filter"
            )
        left, right = self._value(left_node), self._value(right_node)
        left_text, right_text = _source(left_node), _source(right_node)
        self._note_use(op, left_node, right_node)

        def run(env: Env) -> ir.Expr:
            a, b = left(env), right(env)
            if isinstance(a, FieldRef):
                return _field_atom(op, a.name, b, field_on_left=True, origin=right_text)
            if isinstance(b, FieldRef):
                return _field_atom(op, b.name, a, field_on_left=False, origin=left_text)
            if op == "not in":
                return ir.FALSE if compare("in", a, b) else ir.TRUE
            return ir.TRUE if compare(op, a, b) else ir.FALSE

        return run

    def _call(self, node: ast.Call) -> BoolFn:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self._unsupported(node, "only plain calls of g()/keyMatch()-style functions")
        name = node.func.id
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self._unsupported(node, "starred arguments are not supported")
        args = [self._value(a) for a in node.args]
        object_args = [i for i, a in enumerate(node.args) if self._mentions_object(a)]
        if name in self._snapshot.role_graphs:
            graph = self._snapshot.role_graphs[name]
            if len(args) != graph.arity:
                raise self._unsupported(
                    node, f"{name}() takes {graph.arity} arguments as defined in the model"
                )
            if len(object_args) > 1:
                raise self._unsupported(
                    node, f"{name}() with more than one chunk attribute cannot be enumerated"
                )
            for position in object_args:
                attr = node.args[position]
                if isinstance(attr, ast.Attribute):
                    usage: Literal["tenant", "equality"] = "tenant" if position == 2 else "equality"
                    self.field_uses.add(FieldUse(attr.attr, usage))
            return lambda env: _role_call(graph, [a(env) for a in args], env)
        if name in MATCH_FUNCTIONS:
            if len(args) != 2:
                raise self._unsupported(node, f"{name}() takes two arguments")
            if len(object_args) > 1:
                raise self._unsupported(node, f"{name}() on two chunk attributes")
            for position in object_args:
                attr = node.args[position]
                if isinstance(attr, ast.Attribute):
                    self.field_uses.add(FieldUse(attr.attr, "match"))
            function = MATCH_FUNCTIONS[name]
            where = self.where
            pattern = node.args[1]
            if isinstance(pattern, ast.Constant) and isinstance(pattern.value, str):
                check_pattern(name, pattern.value, where, PolicyLoadError)
            elif isinstance(pattern, ast.Name) and pattern.id in self._policy_index:
                self.pattern_columns.add((name, self._policy_index[pattern.id]))
            return lambda env: _match_call(name, function, args[0](env), args[1](env), where)
        if name == "eval":
            raise self._unsupported(node, "eval() must take a policy field, like eval(p.rule)")
        raise self._unsupported(
            node,
            f"unknown function {name}(); supported: role functions "
            f"({', '.join(sorted(self._snapshot.role_graphs)) or 'none defined'}), "
            + ", ".join(sorted(MATCH_FUNCTIONS)),
        )

    # -- value context ---------------------------------------------------------------

    def _value(self, node: ast.expr) -> ValueFn:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
                raise self._unsupported_literal(node)
            if isinstance(value, (bool, str, int, float)):
                return lambda env: value
            raise self._unsupported(node, "unsupported literal")
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            if (
                isinstance(node.operand.value, int)
                and node.operand.value.bit_length() > MAX_INT_BITS
            ):
                raise self._unsupported_literal(node)
            number = -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
            return lambda env: number
        if isinstance(node, ast.Name):
            if node.id == self._sub:
                return lambda env: env.subject.id
            if node.id == self._act:
                return lambda env: env.action
            if node.id == self._obj:
                raise self._unsupported(node, "use a chunk attribute, like r.obj.dept")
            if node.id in self._policy_index:
                index = self._policy_index[node.id]
                return lambda env: env.line[index] if index < len(env.line) else ""
            raise self._unsupported(node, "unknown name")
        if isinstance(node, ast.Attribute):
            base = node.value
            if not isinstance(base, ast.Name):
                raise self._unsupported(node, "only one level of attribute access is supported")
            attr = node.attr
            if base.id in (self._sub, self._obj):
                self._check_attribute_name(node)
            if base.id == self._sub:
                if attr == "id":
                    return lambda env: env.subject.id
                return lambda env: env.subject.attribute(attr)
            if base.id == self._obj:
                ref = FieldRef(attr)
                return lambda env: ref
            raise self._unsupported(node, "attributes exist only on r.sub and r.obj")
        if isinstance(node, (ast.Tuple, ast.List)):
            if any(self._mentions_object(e) for e in node.elts):
                raise self._unsupported(node, "a list literal may not contain chunk attributes")
            items = [self._value(e) for e in node.elts]

            def literal(env: Env) -> object:
                flat: list[object] = []
                for item in items:
                    flat.extend(elements(item(env)))
                return tuple(flat) if flat else ABSENT

            return literal
        raise self._unsupported(node, "unsupported expression")

    # -- static helpers ------------------------------------------------------------

    def _unsupported_literal(self, node: ast.expr) -> UnsupportedPolicyError:
        return UnsupportedPolicyError(
            f"{self.where}: an integer literal of more than {MAX_INT_BITS} bits (about "
            "4,000 digits), which no metadata value can equal"
        )

    def _check_attribute_name(self, node: ast.Attribute) -> None:
        """Refuse the attribute names Casbin's evaluator (simpleeval) refuses to read.

        ``casbin.enforce`` raises on every request whose matcher reads ``r.obj.format``,
        ``r.obj._owner``, ``r.obj.func_area`` ... so such a policy grants nothing there.
        The lists are simpleeval's own (``DISALLOW_PREFIXES``, ``DISALLOW_METHODS``).
        """
        name = node.attr
        prefix = next((p for p in simpleeval.DISALLOW_PREFIXES if name.startswith(p)), None)
        if prefix is not None or name in simpleeval.DISALLOW_METHODS:
            why = f"starts with {prefix!r}" if prefix is not None else "is a reserved method name"
            raise self._unsupported(
                node,
                f"attribute {name!r} {why}, which Casbin's expression evaluator (simpleeval) "
                "refuses to read, so casbin.enforce fails on every request; rename the "
                "attribute",
            )

    def _is_subject_attribute(self, node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == self._sub
        )

    def _mentions_object(self, node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id == self._obj for n in ast.walk(node))

    def _note_use(self, op: str, left: ast.expr, right: ast.expr) -> None:
        for this, other in ((left, right), (right, left)):
            if isinstance(this, ast.Attribute) and self._mentions_object(this):
                literal = other.value if isinstance(other, ast.Constant) else None
                usage: Literal["ordering", "equality"] = (
                    "ordering" if op in _RANGE_BOUND else "equality"
                )
                self.field_uses.add(FieldUse(this.attr, usage, literal))


def _and_fn(parts: list[BoolFn]) -> BoolFn:
    def run(env: Env) -> ir.Expr:
        results: list[ir.Expr] = []
        for part in parts:
            result = part(env)
            if result == ir.FALSE:
                return ir.FALSE
            results.append(result)
        return ir.and_(*results)

    return run


def _or_fn(parts: list[BoolFn]) -> BoolFn:
    def run(env: Env) -> ir.Expr:
        results: list[ir.Expr] = []
        for part in parts:
            result = part(env)
            if result == ir.TRUE:
                return ir.TRUE
            results.append(result)
        return ir.or_(*results)

    return run


def _field_atom(op: str, name: str, known: object, *, field_on_left: bool, origin: str) -> ir.Expr:
    """The residual of ``field <op> known`` (or ``known <op> field``).

    ``in`` is Casbin's (Python's) ``in``, see :func:`_membership`.
    """
    if op in ("in", "not in"):
        atom = _membership(name, known, field_on_left=field_on_left)
        return atom if op == "in" else ir.not_(atom)
    values: list[ir.Scalar] = [v for v in elements(known) if isinstance(v, (str, int, float, bool))]
    if op == "==":
        return ir.in_(name, values)
    if op == "!=":
        if not values:
            return ir.FALSE
        return ir.and_(ir.Exists(name), ir.not_(ir.in_(name, values)))
    if not field_on_left:
        op = _FLIPPED[op]
    bound = _RANGE_BOUND[op]
    ranges: list[ir.Expr] = [
        ir.Range(name, **{bound: value}, origin=origin)
        for value in values
        if not isinstance(value, bool)  # booleans have no order: the comparison is false
    ]
    return ir.or_(*ranges)


def _membership(name: str, known: object, *, field_on_left: bool) -> ir.Expr:
    """``field in known`` or ``known in field``, as :func:`ragguard._values.contains`.

    A known string on the right is substring containment (``Within``); a known list or
    other value on the right is element equality (``In``). A chunk attribute on the
    right is a string or a list only per chunk: each known string is ``Contains``
    (substring of a string attribute, element of a list), other known values ``In``
    (a number is never in a string).
    """
    values: list[ir.Scalar] = [v for v in elements(known) if isinstance(v, (str, int, float, bool))]
    if field_on_left:
        if isinstance(known, str):
            return ir.Within(name, known)
        return ir.in_(name, values)
    texts = [v for v in values if isinstance(v, str)]
    others = [v for v in values if not isinstance(v, str)]
    return ir.or_(ir.in_(name, others), *(ir.Contains(name, text) for text in texts))


def _role_call(graph: RoleGraph, args: list[object], env: Env) -> ir.Expr:
    """``g(a, b[, domain])`` with at most one chunk attribute among the arguments."""
    key = (graph.name, *[a if not isinstance(a, FieldRef) else ("field", a.name) for a in args])
    cached = env.role_memo.get(key)
    if cached is not None:
        return cached
    result = _role_call_uncached(graph, args)
    env.role_memo[key] = result
    return result


def _role_call_uncached(graph: RoleGraph, args: list[object]) -> ir.Expr:
    """The residual of one role call; never enumerates pairs of the known arguments.

    Known arguments may be lists (any element) and must be strings to name a role, so a
    call stands for every combination of their elements. Rather than trying each
    combination (4,096 groups by 4,096 domains is 16 million ``has_link`` calls), each
    known user asks the graph once per domain in which it has links of its own
    (``has_link(u, b, d)`` with ``b != u`` needs one): the work grows with the links
    the users have, not with the product of the lists.
    """
    field_positions = [i for i, a in enumerate(args) if isinstance(a, FieldRef)]
    known_choices: list[list[str]] = []
    for arg in args:
        if isinstance(arg, FieldRef):
            known_choices.append([])
        else:
            known_choices.append([v for v in elements(arg) if isinstance(v, str)])
    # Casbin's has_link(x, x[, domain]) holds before it looks at the domain: any present
    # domain value will do (a string, a number, a list); an absent one names none.
    self_link_holds = len(args) == 2 or isinstance(args[2], FieldRef) or bool(elements(args[2]))
    domains = set(known_choices[2]) if len(args) == 3 else None
    if not field_positions:
        users, roles = known_choices[0], set(known_choices[1])
        if self_link_holds and roles.intersection(users):
            return ir.TRUE
        return ir.TRUE if any(_roles_of(graph, u, domains) & roles for u in users) else ir.FALSE
    position = field_positions[0]
    ref = args[position]
    assert isinstance(ref, FieldRef)
    if position == 2:
        if not known_choices[0] or not known_choices[1]:
            return ir.FALSE
        # g(x, x, domain) holds in every domain, but a chunk without the attribute names
        # no domain (absent compares false): "the attribute exists", not TRUE.
        roles = set(known_choices[1])
        if roles.intersection(known_choices[0]):
            return ir.Exists(ref.name)
        # Otherwise a domain can only qualify if the user has a link of its own there.
        allowed_domains = {
            domain
            for user in known_choices[0]
            for domain in graph.domains_of(user)
            if graph.reachable(user, domain) & roles
        }
        return ir.in_(ref.name, sorted(allowed_domains))
    other = known_choices[1 - position]
    if not other:
        return ir.FALSE
    allowed = list(other) if self_link_holds else []  # g(x, x[, domain])
    if domains is not None and not domains:
        return ir.in_(ref.name, allowed)  # no string domain: only the self-link
    if position == 1:  # g(user, r.obj.x[, domain]): every role a user reaches
        for user in other:
            allowed.extend(_roles_of(graph, user, domains) - {user})
    else:  # g(r.obj.x, role[, domain]): every name that reaches a role
        roles = set(other)
        allowed.extend(
            name
            for name in graph.names
            if name not in roles and _roles_of(graph, name, domains) & roles
        )
    return ir.in_(ref.name, allowed)


def _roles_of(graph: RoleGraph, user: str, domains: set[str] | None) -> frozenset[str]:
    """Every role ``user`` reaches in any of ``domains`` (``None``: a graph without
    domains), not counting the self-link; one graph lookup per domain the user has
    links in, never one per requested domain."""
    if domains is None:
        return graph.reachable(user) - {user}
    found: set[str] = set()
    for domain in graph.domains_of(user):
        if domain in domains:
            found |= graph.reachable(user, domain)
    found.discard(user)
    return frozenset(found)


def _match_call(
    name: str, function: Callable[[str, str], bool], key: object, pattern: object, where: str
) -> ir.Expr:
    if isinstance(key, FieldRef) or isinstance(pattern, FieldRef):
        field_first = isinstance(key, FieldRef)
        ref = key if field_first else pattern
        other = pattern if field_first else key
        assert isinstance(ref, FieldRef)
        texts = [v for v in elements(other) if isinstance(v, str)]
        atoms: list[ir.Expr] = []
        for text in texts:
            if field_first and name == "keyMatch" and "*" not in text:
                atoms.append(ir.Eq(ref.name, text))  # keyMatch without '*' is equality
            else:
                if field_first:
                    check_pattern(name, text, where)
                atoms.append(ir.Match(name, ref.name, text, field_first))
        return ir.or_(*atoms)
    for a in elements(key):
        for b in elements(pattern):
            if isinstance(a, str) and isinstance(b, str):
                check_pattern(name, b, where)
                try:
                    matched = function(a, b)
                except Exception as exc:  # Casbin's functions raise plain Exceptions
                    raise PolicyError(f"{where}: {name}() fails on pattern {b!r}: {exc}") from None
                if matched:
                    return ir.TRUE
    return ir.FALSE


def check_pattern(
    name: str, pattern: str, where: str, error: type[PolicyError] = PolicyError
) -> None:
    """Raise ``error`` if Casbin cannot use ``pattern`` in the matching function ``name``
    (regexMatch and keyMatch2-5 build a regular expression from it), so ``re.error``
    never escapes from a search."""
    try:
        MATCH_FUNCTIONS[name]("", pattern)
        groups = _key_match4_surplus_groups(pattern) if name == "keyMatch4" else 0
    except re.error as exc:
        raise error(f"{where}: invalid regular expression {pattern!r} in {name}(): {exc}") from None
    if groups:
        raise error(
            f"{where}: the pattern {pattern!r} of keyMatch4() has a group of its own in "
            "parentheses; Casbin's keyMatch4 raises an error whenever such a pattern matches"
        )


def _key_match4_surplus_groups(pattern: str) -> int:
    """Regular-expression groups in a keyMatch4 pattern besides its ``{name}`` tokens
    (Casbin counts the groups of a match against the tokens and raises on a mismatch)."""
    expanded = pattern.replace("/*", "/.*")
    tokens = len(_KEY_MATCH4_TOKEN.findall(expanded))
    regex = re.compile("^" + _KEY_MATCH4_TOKEN.sub("([^/]+)", expanded) + "$")
    return regex.groups - tokens


def check_policy_patterns(
    snapshot: Snapshot, matcher: MatcherProgram | None, eval_programs: dict[int, MatcherProgram]
) -> None:
    """Every pattern a policy line gives a matching function is usable, checked at load.

    Casbin evaluates every line on every enforce (even lines its effect ignores), so a
    broken pattern anywhere makes the policy unusable: :class:`PolicyLoadError` names
    the line and the pattern. Patterns from subject attributes are checked when a plan
    needs them; patterns from chunk metadata simply do not match.
    """
    for line in snapshot.lines:
        program = matcher if matcher is not None else eval_programs[line.number]
        for name, column in sorted(program.pattern_columns):
            if column < len(line.values):
                check_pattern(
                    name, line.values[column], f"policy line {line.number}", PolicyLoadError
                )


def _casbin_rewrite(expr: str) -> str:
    """The textual rewriting Casbin applies before evaluating a matcher."""
    expr = expr.replace("&&", "and").replace("||", "or")
    return re.sub(r"!(?!=)", "not ", expr)


def _source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return re.sub(r"\b([rp]\d*)_(?=\w)", r"\1.", text)


def _excerpt(text: str, limit: int = 120) -> str:
    """``text`` for an error message: quoted, and cut when long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _check_size(root: ast.AST, where: str) -> None:
    count = 0
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_MATCHER_DEPTH or count > MAX_MATCHER_NODES:
            raise UnsupportedPolicyError(
                f"{where}: the matcher is too large (limits: {MAX_MATCHER_NODES} nodes, "
                f"nesting depth {MAX_MATCHER_DEPTH})"
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


@dataclass(frozen=True)
class CompiledLines:
    """The residual of every line that can still apply, and the combined filter."""

    filter: ir.Expr
    allow: tuple[tuple[PolicyLine | None, ir.Expr], ...]
    deny: tuple[tuple[PolicyLine, ir.Expr], ...]
    note: str = ""


def programs_for(snapshot: Snapshot) -> tuple[MatcherProgram | None, dict[int, MatcherProgram]]:
    """Parse and validate the matcher (and every ``eval`` rule) of a snapshot.

    Returns the program for the plain matcher (``None`` when it uses ``eval``) and, for
    ``eval`` matchers, one program per policy line number. Raises
    :class:`UnsupportedPolicyError` for anything outside the supported language.
    """
    where = (
        f"model line {snapshot.matcher_line} (matcher)"
        if snapshot.matcher_line is not None
        else "matcher"
    )
    if not casbin_util.has_eval(snapshot.matcher):
        return MatcherProgram(snapshot.matcher, snapshot, where), {}
    rule_names = casbin_util.get_eval_value(snapshot.matcher)
    index = {token: i for i, token in enumerate(snapshot.policy_tokens)}
    for rule_name in rule_names:
        if rule_name not in index:
            raise UnsupportedPolicyError(
                f"{where}: eval({rule_name.replace('_', '.', 1)}) must name a policy field"
            )
    by_text: dict[str, MatcherProgram] = {}
    per_line: dict[int, MatcherProgram] = {}
    for line in snapshot.lines:
        rules = [casbin_util.escape_assertion(line.values[index[name]]) for name in rule_names]
        text = casbin_util.replace_eval(snapshot.matcher, rules)
        if text not in by_text:
            by_text[text] = MatcherProgram(text, snapshot, f"policy line {line.number} (eval rule)")
        per_line[line.number] = by_text[text]
    return None, per_line


def compile_lines(
    snapshot: Snapshot,
    matcher: MatcherProgram | None,
    eval_programs: dict[int, MatcherProgram],
    subject: Subject,
    action: str,
) -> CompiledLines:
    """Partially evaluate every policy line for ``subject`` and combine by the effect."""
    role_memo: dict[tuple[Any, ...], ir.Expr] = {}
    if not snapshot.lines:
        if matcher is None:
            return CompiledLines(ir.FALSE, (), (), note="no policy lines (the matcher uses eval)")
        env = Env(subject, action, ("",) * len(snapshot.policy_tokens), role_memo)
        residual = matcher.evaluate(env)
        allow_only: tuple[tuple[PolicyLine | None, ir.Expr], ...] = (
            ((None, residual),) if residual != ir.FALSE else ()
        )
        return CompiledLines(residual, allow_only, ())
    allow: list[tuple[PolicyLine | None, ir.Expr]] = []
    deny: list[tuple[PolicyLine, ir.Expr]] = []
    use_deny = snapshot.effect == "allow_and_no_deny"
    for line in snapshot.lines:
        if line.effect == "other" or (line.effect == "deny" and not use_deny):
            continue  # Casbin ignores these lines under this effect
        program = matcher if matcher is not None else eval_programs[line.number]
        residual = program.evaluate(Env(subject, action, line.values, role_memo))
        if residual == ir.FALSE:
            continue
        if line.effect == "allow":
            allow.append((line, residual))
        else:
            deny.append((line, residual))
    combined = ir.or_(*(r for _, r in allow))
    if deny:
        combined = ir.and_(combined, ir.not_(ir.or_(*(r for _, r in deny))))
    return CompiledLines(combined, tuple(allow), tuple(deny))
