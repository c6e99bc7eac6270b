"""A grammar of Casbin matchers, policies, subjects and metadata for differential fuzzing.

Where ``tests/conformance/_policy_families.py`` draws policies from six hand-written
families, this module derives them from a grammar of the supported matcher language:

* expressions: nested ``&&``/``||``/``!`` over comparisons (``==``, ``!=``, ``<``,
  ``<=``, ``>``, ``>=``) between any two of chunk attributes, subject attributes,
  ``r.sub``/``r.sub.id``, ``r.act``, ``p.*`` columns and literals (at most one chunk
  attribute per comparison, either side), ``in``/``not in`` with literal tuples (mixed
  types, policy and subject values inside), subject lists and chunk lists, ``g()`` with
  and without a domain (a chunk attribute in either argument or the domain),
  ``eval(p.rule)`` with rules from the same grammar, ``keyMatch``/``globMatch``;
* both effects (allow; allow-and-no-deny) with ``allow``, ``deny`` and other ``eft``
  values, random role links, zero or more policy lines;
* values that break naive implementations: empty and blank strings, unicode
  confusables (Cyrillic e, fullwidth, zero-width and combining characters, bidi
  overrides), control characters, strings of thousands of characters, ints vs floats vs
  bools vs numeric strings, ``-0.0``, integers beyond 2**53, lists (mixed, holding
  ``None``), absent values (missing, ``None``, ``[]``, ``[None]``) and malformed ones
  (nested dicts, lists of dicts or lists, ``NaN``, infinities).

Now and then (about one atom in eighty) the grammar emits a construct ragguard refuses
(arithmetic, two chunk attributes together, a bare chunk attribute, chained or tuple
comparisons, ``is``, nested attributes, unknown functions, ``g()`` of wrong arity). A
case records whether it holds such a construct (:attr:`FuzzCase.unsupported`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from _policy_families import ALLOW_EFFECT, DENY_EFFECT, policy_value_ok
from hypothesis import strategies as st

from ragguard.policy import ir

__all__ = [
    "CHUNK_FIELDS",
    "FuzzCase",
    "fuzz_cases",
    "is_malformed",
    "literal",
    "storable",
]

CHUNK_FIELDS: Final = ("dept", "level", "tags", "tenant", "owner", "path")
SUBJECT_FIELDS: Final = ("dept", "clearance", "groups", "tenant", "admin")
ROLES: Final = ("reader", "admin", "eng")

LONG: Final = "x" * 3000 + "eng"
# Confusables and invisible characters next to the plain values they imitate.
CONFUSABLES: Final = (
    "eng",
    "Eng",
    "ENG",
    "\u0435ng",  # Cyrillic e
    "\uff45\uff4e\uff47",  # fullwidth
    "eng\u200b",  # zero-width space
    "\u200deng",  # zero-width joiner
    "e\u0301",  # e + combining acute
    "\u00e9",  # precomposed é
    "\u202eeng",  # right-to-left override
    "eng ",
    " eng",
)
CONTROL: Final = ("\x00", "a\tb", "\x1b[31m", "a\x7fb", "a\nb", "a\rb", "a\x0bb", "a\u2028b")
SYNTAX: Final = (
    'eng" || "1" == "1',
    "r.obj.dept",
    "p.sub",
    "a && b",
    "!x",
    "x || y",
    "*",
    "/docs/*",
    "(",
    "a,b",
    "null",
    "None",
)
NUMERIC_STRINGS: Final = ("1", "1.0", "-0", "0x1", "1e3", " 1", "True", "false", "")
PLAIN: Final = ("eng", "hr", "acme", "alice", "bob", "reader", "admin", "x", "y", "日本語")
STRINGS: Final = (*PLAIN, *PLAIN, *CONFUSABLES, *CONTROL, *SYNTAX, *NUMERIC_STRINGS, LONG)
NUMBERS: Final = (0, 1, 2, 3, -1, 1.0, 2.0, 0.5, -0.0, 2**53 + 1, 2**63, 1e300, -1e-300)
# Integers that round to the same float, floats equal to big integers, the int64 edges:
# equal only as integers, so a float key, cache or pushdown would confuse them.
BIG_NEIGHBOURS: Final = (
    *(2**53, 2**53 + 1, 2.0**53, 2**53 + 2, 1234567890123456789, 1234567890123456790),
    *(2**53 - 1, -(2**53) - 1),
    *(2**63 - 1, 2**63, 2.0**63, 2**63 + 1, -(2**63), 2**64 - 1),
)
# Beyond what Qdrant stores exactly (the stores refuse them): decided, never stored.
BEYOND_STORAGE: Final = (-(2**63) - 1, 2**64, 10**30, 10**400)
BIG_NUMBERS: Final = (*BIG_NEIGHBOURS, *BEYOND_STORAGE)
# Strings that hold others as substrings, for ``in`` with a string on the right.
HAYSTACKS: Final = ("hr-restricted", "eng,hr", "alice,bob", "eng-platform", "acme/globex", "x")
PATHS: Final = ("/docs/eng/1.md", "/docs/hr/2.md", "/docs", "/other/1.md", "", "/docs/eng/1.md/x")
PATTERNS: Final = ("/docs/*", "/docs/eng/*", "/docs/eng/1.md", "*", "/docs/:d/*", "/docs/**")

MALFORMED: Final[tuple[object, ...]] = (
    {"b": 1},
    {},
    [{"b": 1}],
    ["eng", {"b": 1}],
    [["eng"]],
    math.nan,
    math.inf,
    -math.inf,
    [1, math.nan],
)


def is_malformed(value: object) -> bool:
    """Whether a metadata/subject value is one DESIGN.md calls malformed."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return True
    if isinstance(value, list):
        return any(
            isinstance(item, (dict, list)) or (isinstance(item, float) and not math.isfinite(item))
            for item in value
        )
    return False


def storable(value: object) -> bool:
    """Whether Qdrant can hold the value: JSON without NaN or infinities, and integers
    within -2**63..2**64-1 (the stores refuse anything else with a StoreError)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value <= 2**64 - 1
    if isinstance(value, list):
        return all(storable(item) for item in value)
    if isinstance(value, dict):
        return all(storable(item) for item in value.values())
    return True


def literal(value: Any) -> str:
    """A value as a matcher literal (strings double-quoted, escapes for control chars)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


# -- values --------------------------------------------------------------------------------

_strings = st.sampled_from(STRINGS)
_numbers = st.one_of(
    st.sampled_from(NUMBERS), st.sampled_from(NUMBERS), st.sampled_from(BIG_NUMBERS)
)
_scalars = st.one_of(_strings, _strings, _numbers, st.booleans())
_absent = st.sampled_from([None, [], [None]])


def _value(base: st.SearchStrategy[Any], *, malformed: bool) -> st.SearchStrategy[Any]:
    """Usually ``base`` or any scalar; else a list, an absent value or (if allowed) junk."""
    options: list[st.SearchStrategy[Any]] = [
        base,
        base,
        base,
        _scalars,
        st.lists(st.one_of(base, _scalars, st.none()), min_size=1, max_size=4),
        _absent,
    ]
    if malformed:
        options.append(st.sampled_from(MALFORMED))
    return st.one_of(options)


_CHUNK_BASE: Final[dict[str, st.SearchStrategy[Any]]] = {
    "dept": st.sampled_from(("eng", "hr", "legal", "", *CONFUSABLES[:6], *SYNTAX[:6], *HAYSTACKS)),
    "level": st.sampled_from((0, 1, 2, 3, 2.5, "2", True, False, 2**53 + 1, *BIG_NUMBERS)),
    "tags": st.lists(st.sampled_from(("x", "y", "eng", "")), max_size=3),
    "tenant": st.sampled_from(("acme", "globex", "", "ACME", 5)),
    "owner": st.sampled_from(("alice", "bob", "reader", "\u0430lice", *HAYSTACKS)),
    "path": st.sampled_from(PATHS),
}
_SUBJECT_BASE: Final[dict[str, st.SearchStrategy[Any]]] = {
    "dept": st.sampled_from(("eng", "hr", "\u0435ng", "", *HAYSTACKS)),
    "clearance": st.sampled_from((0, 1, 2, 3, 2.0, "2", True, *BIG_NUMBERS)),
    "groups": st.lists(st.sampled_from(("eng", "hr", "x", "")), max_size=3),
    "tenant": st.sampled_from(("acme", "globex", "")),
    "admin": st.sampled_from((True, False, 1, "true")),
}


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    """Chunk metadata: each field present four times in five, malformed now and then."""
    out: dict[str, Any] = {}
    for name in CHUNK_FIELDS:
        if draw(st.integers(0, 4)):
            malformed = draw(st.integers(0, 11)) == 0
            out[name] = draw(_value(_CHUNK_BASE[name], malformed=malformed))
    if draw(st.integers(0, 3)) == 0:
        out[draw(st.sampled_from(RESEMBLING))] = draw(_value(_scalars, malformed=False))
    if draw(st.integers(0, 3)) == 0:
        out[draw(st.sampled_from(ODD_FIELDS))] = draw(_value(_scalars, malformed=False))
    return out


_SUBJECT_IDS: Final = (
    "alice",
    "alice",
    "bob",
    "admin",  # a user named like a role
    "\u0430lice",  # Cyrillic a
    "alice ",
    "a,b",
    'eng" || "1" == "1',
    "\x00",
    "r.sub.id",
)


@st.composite
def subjects(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A subject id and attributes; some attributes are malformed (SubjectError)."""
    attributes: dict[str, Any] = {}
    for name in SUBJECT_FIELDS:
        if draw(st.integers(0, 4)):
            malformed = draw(st.integers(0, 19)) == 0
            attributes[name] = draw(_value(_SUBJECT_BASE[name], malformed=malformed))
    if draw(st.integers(0, 3)) == 0:
        attributes[draw(st.sampled_from(RESEMBLING))] = draw(_value(_scalars, malformed=False))
    return draw(st.sampled_from(_SUBJECT_IDS)), attributes


# -- expressions ---------------------------------------------------------------------------

_OPS: Final = ("==", "!=", "<", "<=", ">", ">=")
# Matcher literals: no '#' (Casbin's model reader strips comments), no LONG (keeps the
# model text small; long values are exercised in data).
_LITERAL_VALUES: Final = (
    *(s for s in STRINGS if "#" not in s and s != LONG),
    *HAYSTACKS,
    *NUMBERS[:11],
    *BIG_NUMBERS,
)
_literals = st.one_of(st.sampled_from(_LITERAL_VALUES), st.booleans()).map(literal)


@dataclass(frozen=True)
class _Scope:
    """What an expression may refer to."""

    policy_columns: tuple[str, ...]  # p.* usable in the matcher (never in eval rules)
    roles: str  # "none", "flat" or "domain"
    eval_rule: bool  # eval(p.rule) may appear


def _chunk_attr(field_: str) -> str:
    return f"r.obj.{field_}"


@st.composite
def _resembling(draw: st.DrawFn) -> str:
    """A comparison on an attribute named like a forbidden one (chunk or subject)."""
    name = draw(st.sampled_from(RESEMBLING))
    side = draw(st.sampled_from(("r.obj", "r.obj", "r.sub")))
    value = draw(st.one_of(st.sampled_from(("x", "alice", 1, 2**63)).map(literal)))
    return f"{side}.{name} {draw(st.sampled_from(_OPS))} {value}"


@st.composite
def _non_chunk(draw: st.DrawFn, scope: _Scope) -> str:
    kinds = ["literal", "literal", "subject", "subject_id", "act"]
    if scope.policy_columns:
        kinds += ["policy", "policy"]
    kind = draw(st.sampled_from(kinds))
    if kind == "literal":
        return draw(_literals)
    if kind == "subject":
        return f"r.sub.{draw(st.sampled_from(SUBJECT_FIELDS))}"
    if kind == "subject_id":
        return draw(st.sampled_from(("r.sub.id", "r.sub")))
    if kind == "policy":
        return f"p.{draw(st.sampled_from(scope.policy_columns))}"
    return "r.act"


def _request_value(draw: st.DrawFn) -> str:
    """A value the oracle wraps: a chunk attribute (mostly) or a subject attribute/id."""
    if draw(st.integers(0, 3)):
        return _chunk_attr(draw(st.sampled_from(CHUNK_FIELDS)))
    return draw(st.sampled_from(("r.sub.id", *(f"r.sub.{a}" for a in SUBJECT_FIELDS))))


@st.composite
def _comparison(draw: st.DrawFn, scope: _Scope) -> str:
    """At least one side is a request value: the oracle decides a comparison of two plain
    Python values (``1 == True``, ``"a" < 1``) with Python's rules, not DESIGN.md's."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        # String-only equalities on plain values (r.act, p.*, r.sub as the id).
        left = draw(st.sampled_from(("r.act", "r.sub", *(f"p.{c}" for c in scope.policy_columns))))
        right = draw(
            st.one_of(
                st.sampled_from(STRINGS[:12]).map(literal),
                st.sampled_from(scope.policy_columns).map(lambda c: f"p.{c}"),
            )
            if scope.policy_columns
            else st.sampled_from(STRINGS[:12]).map(literal)
        )
        return f"{left} {draw(st.sampled_from(('==', '!=')))} {right}"
    op = draw(st.sampled_from(_OPS))
    left = _request_value(draw)
    right = draw(_non_chunk(scope))
    if right == "r.sub":
        right = "r.sub.id"
    if draw(st.booleans()):
        left, right = right, left
    return f"{left} {op} {right}"


@st.composite
def _membership(draw: st.DrawFn, scope: _Scope) -> str:
    negate = " not in " if draw(st.integers(0, 3)) == 0 else " in "
    kinds = ["tuple", "tuple", "sub_list", "chunk_list", "sub_in_tuple", "in_string"]
    kind = draw(st.sampled_from(kinds))
    if kind == "in_string":
        # A string on the right (Casbin: a substring test): a literal, a policy column or
        # a subject attribute; chunk strings on the right come from "chunk_list".
        left = draw(st.sampled_from((*(_chunk_attr(f) for f in CHUNK_FIELDS), "r.sub.id")))
        rights = [literal(draw(st.sampled_from(HAYSTACKS))), "r.sub.dept", "r.sub.tenant"]
        if scope.policy_columns:
            rights += [f"p.{c}" for c in scope.policy_columns]
        right = draw(st.sampled_from(rights))
        if left == "r.sub.id" and right.startswith("r.sub"):
            left = _chunk_attr(draw(st.sampled_from(CHUNK_FIELDS)))
        return f"{left}{negate}{right}"
    if kind in ("tuple", "sub_in_tuple"):
        items = draw(st.lists(_non_chunk(scope), min_size=1, max_size=4))
        body = ", ".join(items) + ("," if len(items) == 1 else "")
        brackets = draw(st.sampled_from(["()", "[]"]))
        container = f"{brackets[0]}{body}{brackets[1]}"
        left = (
            _chunk_attr(draw(st.sampled_from(CHUNK_FIELDS)))
            if kind == "tuple"
            else draw(st.sampled_from(("r.sub", *(f"r.sub.{a}" for a in SUBJECT_FIELDS))))
        )
        return f"{left}{negate}{container}"
    if kind == "sub_list":
        field_ = draw(st.sampled_from(CHUNK_FIELDS))
        return f"r.obj.{field_}{negate}r.sub.{draw(st.sampled_from(('groups', 'dept')))}"
    field_ = draw(st.sampled_from(("tags", "owner", "dept", "path")))
    return f"{draw(_non_chunk(scope))}{negate}r.obj.{field_}"


@st.composite
def _role_call(draw: st.DrawFn, scope: _Scope) -> str:
    user = draw(st.sampled_from(("r.sub.id", "r.sub", "r.obj.owner")))
    role = draw(
        st.sampled_from(
            ("p.sub", '"reader"', '"admin"', "r.obj.owner")
            if "sub" in scope.policy_columns
            else ('"reader"', '"admin"', "r.obj.owner")
        )
    )
    if user.startswith("r.obj") and role.startswith("r.obj"):
        role = '"reader"'
    if scope.roles == "flat":
        return f"g({user}, {role})"
    domain = draw(st.sampled_from(("r.obj.tenant", '"acme"', "r.sub.tenant")))
    if domain.startswith("r.obj") and "r.obj" in user + role:
        domain = '"acme"'
    return f"g({user}, {role}, {domain})"


@st.composite
def _match_call(draw: st.DrawFn, scope: _Scope) -> str:
    function = draw(st.sampled_from(("keyMatch", "keyMatch2", "globMatch")))
    pattern = (
        "p.obj"
        if "obj" in scope.policy_columns and draw(st.booleans())
        else literal(draw(st.sampled_from(PATTERNS)))
    )
    return f"{function}(r.obj.path, {pattern})"


_UNSUPPORTED: Final = (
    "r.obj.level + 1 > 2",
    "r.obj.dept == r.obj.owner",
    "r.obj.tenant in r.obj.tags",
    "r.obj.public",
    "1 < r.obj.level < 3",
    'r.obj.dept == ("eng", "hr")',
    "r.obj.dept is None",
    "r.obj.dept.name == 1",
    "lower(r.obj.dept) == 1",
    'r.obj.level if r.sub.admin else "x"',
    "g(r.sub.id)",
    # Names Casbin's evaluator (simpleeval) refuses: casbin.enforce raises on every
    # request, so nothing is ever granted; ragguard refuses the policy when loading.
    'r.obj.format == "x"',
    "r.obj.mro == 1",
    'r.obj._owner == "alice"',
    'r.obj.func_area == "x"',
    'r.obj.format_map != "x"',
    'r.sub.exec == "x"',
    'r.sub.__class__ == "x"',
)
# Names that merely resemble the forbidden ones: ordinary attributes.
RESEMBLING: Final = ("formats", "owner_", "mro2", "func", "execs", "a_b")


@st.composite
def _atom(draw: st.DrawFn, scope: _Scope) -> str:
    kinds = ["cmp", "cmp", "cmp", "in", "in", "match"]
    if scope.roles != "none":
        kinds += ["role", "role", "role", "role"]
    if scope.eval_rule:
        kinds += ["eval", "eval"]
    if draw(st.integers(0, 79)) == 0:
        return draw(st.sampled_from(_UNSUPPORTED))
    if draw(st.integers(0, 29)) == 0:
        return draw(_resembling())
    kind = draw(st.sampled_from(kinds))
    if kind == "cmp":
        return draw(_comparison(scope))
    if kind == "in":
        return draw(_membership(scope))
    if kind == "role":
        return draw(_role_call(scope))
    if kind == "match":
        return draw(_match_call(scope))
    return "eval(p.rule)"


def expressions(scope: _Scope, *, max_leaves: int) -> st.SearchStrategy[str]:
    """Boolean expressions of the grammar's atoms."""

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            children.map(lambda e: f"!({e})"),
            children.map(lambda e: f"!{e}" if e.startswith("(") else f"!({e})"),
            st.tuples(children, children).map(lambda ab: f"({ab[0]} && {ab[1]})"),
            st.tuples(children, children).map(lambda ab: f"({ab[0]} || {ab[1]})"),
            st.tuples(children, children).map(lambda ab: f"{ab[0]} || {ab[1]}"),
        )

    return st.recursive(_atom(scope), extend, max_leaves=max_leaves)


def has_unsupported(text: str) -> bool:
    """Whether ``text`` holds one of the deliberately unsupported constructs."""
    return any(construct in text for construct in _UNSUPPORTED)


# -- caller filters ------------------------------------------------------------------------

# Attribute names a caller's filter may use that no policy in the grammar reads,
# including names Qdrant's key syntax would read as paths or that need quoting.
ODD_FIELDS: Final = ("dept-x", "a b", "x.y", "ünï", "tags[]", "")
_WHERE_FIELDS: Final = (*CHUNK_FIELDS, *CHUNK_FIELDS, *ODD_FIELDS)
_where_values = st.one_of(
    st.sampled_from(("eng", "hr", "acme", "x", "", "/docs/eng/1.md", *HAYSTACKS)),
    _scalars,
)


@st.composite
def _where_atom(draw: st.DrawFn) -> ir.Expr:
    name = draw(st.sampled_from(_WHERE_FIELDS))
    kind = draw(st.sampled_from(("eq", "eq", "in", "in_long", "range", "exists", "match")))
    if kind == "eq":
        return ir.Eq(name, draw(_where_values))
    if kind == "in":
        return ir.In(name, tuple(draw(st.lists(_where_values, min_size=1, max_size=10))))
    if kind == "in_long":
        # Longer than any engine's cheap MatchAny: plenty of values that match nothing.
        extra = tuple(f"v{i}" for i in range(draw(st.sampled_from((300, 2_000)))))
        return ir.In(name, (*draw(st.lists(_where_values, max_size=3)), *extra))
    if kind == "range":
        bound = draw(st.one_of(_numbers, st.sampled_from(("a", "eng", "m", "/docs"))))
        op = draw(st.sampled_from(("gt", "gte", "lt", "lte")))
        if op == "gt":
            return ir.Range(name, gt=bound)
        if op == "gte":
            return ir.Range(name, gte=bound)
        return ir.Range(name, lt=bound) if op == "lt" else ir.Range(name, lte=bound)
    if kind == "exists":
        return ir.Exists(name)
    pattern = draw(st.sampled_from(PATTERNS))
    return ir.Match(draw(st.sampled_from(("keyMatch", "globMatch"))), name, pattern)


def where_filters() -> st.SearchStrategy[ir.Expr]:
    """Caller filters of every shape: atoms under raw (unsimplified) And/Or/Not."""

    def extend(children: st.SearchStrategy[ir.Expr]) -> st.SearchStrategy[ir.Expr]:
        return st.one_of(
            children.map(ir.Not),
            st.lists(children, min_size=2, max_size=3).map(lambda xs: ir.And(tuple(xs))),
            st.lists(children, min_size=2, max_size=3).map(lambda xs: ir.Or(tuple(xs))),
        )

    return st.recursive(_where_atom(), extend, max_leaves=4)


# -- cases ---------------------------------------------------------------------------------

# Effect strings as a user may type them. Casbin picks its effector by comparing the
# whole string (after the config reader strips the ends): any other spacing is refused
# when the enforcer is built, and so must it be by ragguard; Casbin's other effects
# (deny-override, priority) are outside ragguard's language.
EFFECT_VARIANTS: Final = (
    ALLOW_EFFECT + "  ",
    "  " + ALLOW_EFFECT,
    "some(where(p.eft==allow))",
    "some(where (p.eft==allow))",
    "some(where  (p.eft == allow))",
    "some( where (p.eft == allow) )",
    "some(where (p.eft == allow)) &&!some(where (p.eft == deny))",
    "some(where (p.eft == allow))&&!some(where (p.eft == deny))",
    "some(where (p.eft == allow)) && ! some(where (p.eft == deny))",
    "!some(where (p.eft == deny))",
    "priority(p.eft) || deny",
    "some(where (p.eft == Allow))",
)


@dataclass(frozen=True)
class FuzzCase:
    """One generated model and policy, its subjects and chunks."""

    model: str
    p_lines: tuple[tuple[str, ...], ...]
    g_lines: tuple[tuple[str, ...], ...]
    subjects: tuple[tuple[str, Mapping[str, Any]], ...]
    chunks: tuple[Mapping[str, Any], ...]
    action: str = "read"
    unsupported: bool = False
    uses_eval: bool = False
    notes: tuple[str, ...] = field(default=())
    where: ir.Expr | None = None  # a caller's narrowing filter (guard.search(where=...))

    @property
    def policy_text(self) -> str:
        """The policy in Casbin's file format."""
        rows = [("p", *line) for line in self.p_lines] + [("g", *link) for link in self.g_lines]
        return "".join(", ".join(row) + "\n" for row in rows)

    def describe(self) -> str:
        """Everything needed to reproduce a failure."""
        return (
            f"action={self.action!r} where={self.where!r}\n--- model\n{self.model}\n"
            f"--- policy\n{self.policy_text}"
        )


def model_text(matcher: str, *, effect: str, roles: str) -> str:
    """``r = sub, obj, act``; ``p = sub, obj, act, rule, eft``."""
    role_section = {
        "none": "",
        "flat": "\n[role_definition]\ng = _, _\n",
        "domain": "\n[role_definition]\ng = _, _, _\n",
    }[roles]
    return (
        "[request_definition]\nr = sub, obj, act\n\n"
        f"[policy_definition]\np = sub, obj, act, rule, eft\n{role_section}\n"
        f"[policy_effect]\ne = {effect}\n\n"
        f"[matchers]\nm = {matcher}\n"
    )


_POLICY_VALUES: Final = tuple(
    v for v in (*STRINGS, "*", "read", "write", *ROLES) if v and policy_value_ok(v) and v != LONG
)


@st.composite
def _policy_value(draw: st.DrawFn, column: str) -> str:
    common = {
        "sub": ("alice", "bob", "eng", "hr", *ROLES, "*"),
        "obj": ("eng", "hr", "acme", "x", "*", *PATTERNS),
        "act": ("read", "read", "write", "*"),
    }[column]
    if draw(st.integers(0, 3)):
        return draw(st.sampled_from(common))
    return draw(st.sampled_from(_POLICY_VALUES))


@st.composite
def fuzz_cases(draw: st.DrawFn) -> FuzzCase:
    """A complete case: model, lines, role links, 1-3 subjects, 3-16 chunks."""
    roles = draw(st.sampled_from(("none", "none", "flat", "domain")))
    deny_effect = draw(st.booleans())
    effect = DENY_EFFECT if deny_effect else ALLOW_EFFECT
    if draw(st.integers(0, 24)) == 0:
        effect = draw(st.sampled_from(EFFECT_VARIANTS))
    uses_eval = draw(st.integers(0, 3)) == 0
    scope = _Scope(("sub", "obj", "act"), roles, uses_eval)
    matcher = draw(expressions(scope, max_leaves=7))
    if uses_eval and "eval(p.rule)" not in matcher:
        matcher = draw(
            st.sampled_from(
                (
                    f"eval(p.rule) && ({matcher})",
                    f"eval(p.rule) || ({matcher})",
                    f"({matcher}) && !eval(p.rule)",
                    "eval(p.rule) && r.act == p.act",
                )
            )
        )
    uses_eval = "eval(p.rule)" in matcher
    rule_scope = _Scope((), roles, False)
    rules = expressions(rule_scope, max_leaves=3).filter(policy_value_ok)
    eft = st.sampled_from(("allow", "allow", "deny", "indeterminate"))
    line = st.tuples(
        _policy_value("sub"),
        _policy_value("obj"),
        _policy_value("act"),
        rules if uses_eval else st.sampled_from(("-", "r.obj.dept == 1")),
        eft,
    )
    p_lines = draw(st.lists(line, min_size=1 if uses_eval else 0, max_size=5))
    members = st.sampled_from(("alice", "bob", "admin", "reader", "\u0430lice", "a b", "eng"))
    role_names = st.sampled_from(ROLES)
    domains = st.sampled_from(("acme", "globex", "ACME", "5", "*"))
    g_lines: list[tuple[str, ...]] = []
    if roles == "flat":
        g_lines += draw(st.lists(st.tuples(members, role_names), max_size=5))
    elif roles == "domain":
        g_lines += draw(st.lists(st.tuples(members, role_names, domains), max_size=5))
    unsupported = has_unsupported(matcher) or any(has_unsupported(p[3]) for p in p_lines)
    return FuzzCase(
        model=model_text(matcher, effect=effect, roles=roles),
        p_lines=tuple(p_lines),
        g_lines=tuple(tuple(link) for link in g_lines),
        subjects=tuple(draw(st.lists(subjects(), min_size=1, max_size=3))),
        chunks=tuple(draw(st.lists(metadata(), min_size=3, max_size=16))),
        action=draw(st.sampled_from(("read", "read", "write"))),
        unsupported=unsupported,
        uses_eval=uses_eval,
        where=draw(where_filters()) if draw(st.integers(0, 3)) == 0 else None,
    )
