"""Hypothesis strategies: random policies of six families, random subjects and chunks.

A :class:`Case` is one policy (model text + ``p``/``g`` lines), a few subjects and a
small corpus. Values are drawn from small pools so that grants actually match, mixed
with what breaks naive implementations: missing attributes, ``None`` and ``[]``, ints
vs floats vs booleans vs numeric strings, list-valued fields, and strings that look
like syntax (``eng" || "1" == "1``), unicode, empty strings.

Families (``FAMILIES``):

* ``abac``       — a random ABAC matcher over ``r.sub``/``r.obj``, no policy lines;
* ``department`` — ``p`` lines granting departments/users an object department;
* ``rbac``       — roles with domains, ``g(r.sub.id, p.sub, r.obj.tenant)``;
* ``eval``       — ``eval(p.rule)`` with random ABAC rules in the policy lines;
* ``deny``       — allow-and-no-deny effect, deny lines on labels and departments;
* ``paths``      — ``keyMatch``/``keyMatch2``/``globMatch``/``regexMatch`` on paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from casbin import util as casbin_util
from hypothesis import strategies as st

__all__ = ["FAMILIES", "Case", "cases"]

DEPTS: Final = ("eng", "hr", "legal", "sales")
TENANTS: Final = ("acme", "globex", "initech")
USERS: Final = ("alice", "bob", "carol")
ROLES: Final = ("reader", "editor", "admin")
LABELS: Final = ("legal_hold", "secret", "public", "draft")
TAGS: Final = ("x", "y", "z")
ACTIONS: Final = ("read", "write")
# Data that looks like syntax, or is otherwise awkward. Never syntax to ragguard.
WEIRD: Final = (
    'eng" || "1" == "1',
    "eng' or '1'=='1",
    "ünïcødé",
    "日本語",
    "a,b",
    'say "hi"',
    "r.obj.dept",
    "1",
    "2.0",
    "True",
    "null",
    "*",
    "/docs/*",
    "x && y || !z",
    "",
)
WEIRD_IDS: Final = tuple(w for w in WEIRD if w.strip())
PATHS: Final = (
    "/docs/eng/1.md",
    "/docs/eng/12.md",
    "/docs/hr/2.md",
    "/docs/legal/x/3.md",
    "/docs",
    "/docs/",
    "/other/1.md",
    "docs/eng/1.md",
    "",
    "/docs/eng/1.md/extra",
)
PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "keyMatch": ("/docs/*", "/docs/eng/*", "/docs/eng/1.md", "/docs/eng/1*", "*", "/other/*"),
    "keyMatch2": ("/docs/:dept/*", "/docs/eng/:file", "/docs/*", "/docs/eng/1.md", "*"),
    "globMatch": ("/docs/*/*.md", "/docs/eng/*", "/docs/**", "/docs/eng/1?.md", "*"),
    "regexMatch": (
        "^/docs/(eng|hr)/",
        "^/docs/eng/[0-9]+\\.md$",
        ".*legal.*",
        "^$",
        "docs",
    ),
}
MATCH: Final[dict[str, Callable[[str, str], bool]]] = {
    "keyMatch": casbin_util.key_match,
    "keyMatch2": casbin_util.key_match2,
    "globMatch": casbin_util.glob_match,
    "regexMatch": casbin_util.regex_match,
}
BIG: Final = 2**53 + 1  # beyond what a float tells apart from 2**53
# Integers that a float cannot tell apart (around 2**53), the ends of Qdrant's 64-bit
# integers, snowflake-style ids that differ by one, a float equal to such an integer.
BIG_NUMBERS: Final = (
    2**53,
    BIG,
    BIG - 1,
    float(2**53),
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    1234567890123456789,
    1234567890123456790,
)
# Strings holding others: Casbin's ``in`` with a string on the right tests substrings.
HAYSTACKS: Final = ("eng,hr", "hr-restricted", "x y", "acme-globex")

ALLOW_EFFECT: Final = "some(where (p.eft == allow))"
DENY_EFFECT: Final = "some(where (p.eft == allow)) && !some(where (p.eft == deny))"

FAMILIES: Final = ("abac", "department", "rbac", "eval", "deny", "paths")


@dataclass(frozen=True)
class Case:
    """One generated policy, its subjects and its corpus."""

    family: str
    model: str
    p_lines: tuple[tuple[str, ...], ...]
    g_lines: tuple[tuple[str, ...], ...]
    subjects: tuple[tuple[str, Mapping[str, Any]], ...]
    chunks: tuple[Mapping[str, Any], ...]
    action: str = "read"
    seed: int = 0
    k: int = 3
    exact_search: bool = False
    ties: tuple[tuple[int, int], ...] = field(default=())

    @property
    def policy_text(self) -> str:
        """The policy in Casbin's file format (``p, v1, v2``; values are never quoted)."""
        rows = [("p", *line) for line in self.p_lines] + [("g", *link) for link in self.g_lines]
        return "".join(", ".join(row) + "\n" for row in rows)

    def describe(self) -> str:
        """Everything needed to reproduce a failure, for assertion messages."""
        return (
            f"family={self.family} action={self.action!r}\n--- model\n{self.model}\n"
            f"--- policy\n{self.policy_text}"
        )


def model_text(
    matcher: str,
    *,
    policy: str = "sub, obj, act",
    effect: str = ALLOW_EFFECT,
    roles: str | None = None,
) -> str:
    """A Casbin model with ``r = sub, obj, act``."""
    role_section = f"\n[role_definition]\ng = {roles}\n" if roles else ""
    return (
        "[request_definition]\nr = sub, obj, act\n\n"
        f"[policy_definition]\np = {policy}\n{role_section}\n"
        f"[policy_effect]\ne = {effect}\n\n"
        f"[matchers]\nm = {matcher}\n"
    )


# -- values ------------------------------------------------------------------------------

_numbers = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 1.0, 2.0, 2.5, -1, 10, BIG]),
    st.sampled_from([0, 1, 2, 3, 4, 1.0, 2.0, 2.5, -1, 10, BIG]),
    st.sampled_from(BIG_NUMBERS),
)
_numeric_strings = st.sampled_from(["1", "2", "2.0", "10"])
_bools = st.booleans()
_absent = st.sampled_from([None, [], [None]])


@st.composite
def _typical_or_odd(draw: st.DrawFn, base: st.SearchStrategy[Any], *, odd: list[Any]) -> Any:
    """Usually a value from ``base``; otherwise a list of them (with a ``None`` now and
    then), an absent value (``None``, ``[]``, ``[None]``) or an odd value."""
    roll = draw(st.integers(0, 9))
    if roll < 6:
        return draw(base)
    if roll < 8:
        return draw(st.lists(st.one_of(base, base, base, st.none()), min_size=1, max_size=3))
    if roll < 9:
        return draw(_absent)
    return draw(st.sampled_from(odd))


def _scalar_or_list(base: st.SearchStrategy[Any], *, extra: list[Any]) -> st.SearchStrategy[Any]:
    return _typical_or_odd(base, odd=extra)


CHUNK_FIELDS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "dept": _scalar_or_list(st.sampled_from(DEPTS), extra=[*WEIRD, *HAYSTACKS, 1, True]),
    "level": _scalar_or_list(_numbers, extra=["1", "2", "2.0", True, False, "high"]),
    "tenant": _scalar_or_list(st.sampled_from(TENANTS), extra=[5, "", 'acme" || "1" == "1']),
    "label": _scalar_or_list(st.sampled_from(LABELS), extra=["", "LEGAL_HOLD", 0]),
    "tags": _scalar_or_list(st.sampled_from(TAGS), extra=["", 1, False, *HAYSTACKS]),
    "public": _scalar_or_list(_bools, extra=[1, 0, "true", 1.0]),
    "owner": _scalar_or_list(st.sampled_from(USERS), extra=list(WEIRD_IDS)),
    "path": _scalar_or_list(st.sampled_from(PATHS), extra=[1, "/DOCS/eng/1.md"]),
}

SUBJECT_FIELDS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "dept": _scalar_or_list(st.sampled_from(DEPTS), extra=[*WEIRD, *HAYSTACKS, 1]),
    "clearance": _scalar_or_list(_numbers, extra=["2", True, "high"]),
    "tenant": _scalar_or_list(st.sampled_from(TENANTS), extra=["", 5]),
    "groups": st.lists(st.sampled_from([*DEPTS, *TAGS, *WEIRD[:3]]), max_size=3),
    "admin": st.one_of(_bools, st.sampled_from([1, "true", None])),
}

subject_ids = st.one_of(
    st.sampled_from(USERS),
    st.sampled_from(USERS),
    st.sampled_from(USERS),
    st.sampled_from(WEIRD_IDS),
)


@st.composite
def _mostly_present(
    draw: st.DrawFn, fields: Mapping[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """Each field present four times in five (a missing attribute is still common)."""
    out: dict[str, Any] = {}
    for name, values in fields.items():
        if draw(st.integers(0, 4)):
            out[name] = draw(values)
    return out


@st.composite
def subjects(draw: st.DrawFn, *, clean: bool = False) -> tuple[str, dict[str, Any]]:
    """A subject id and attributes (any attribute may be missing unless ``clean``)."""
    if clean:
        return draw(subject_ids), draw(st.fixed_dictionaries(CLEAN_SUBJECT_FIELDS))
    return draw(subject_ids), draw(_mostly_present(SUBJECT_FIELDS))


def chunk_metadata(
    fields: tuple[str, ...], *, clean: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """Chunk metadata over ``fields`` (each may be missing) plus an unrelated field.

    ``clean``: every field present with a value of its usual type (see CLEAN_CHUNK_FIELDS).
    """
    relevant = (
        st.fixed_dictionaries({name: CLEAN_CHUNK_FIELDS[name] for name in fields})
        if clean
        else _mostly_present({name: CHUNK_FIELDS[name] for name in fields})
    )
    return st.tuples(relevant, st.sampled_from(["a.md", "b.md"])).map(
        lambda pair: {**pair[0], "source": pair[1]}
    )


# Values on which Python's own operators already mean what DESIGN.md says: every
# attribute present, one type per attribute (for checking the oracle against plain Casbin).
CLEAN_CHUNK_FIELDS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "dept": st.sampled_from(DEPTS),
    "level": st.integers(0, 4),
    "tenant": st.sampled_from(TENANTS),
    "label": st.sampled_from(LABELS),
    "tags": st.lists(st.sampled_from(TAGS), min_size=1, max_size=3),
    "public": st.booleans(),
    "owner": st.sampled_from(USERS),
    "path": st.sampled_from([p for p in PATHS if p]),
}
CLEAN_SUBJECT_FIELDS: Final[dict[str, st.SearchStrategy[Any]]] = {
    "dept": st.sampled_from(DEPTS),
    "clearance": st.integers(0, 4),
    "tenant": st.sampled_from(TENANTS),
    "groups": st.lists(st.sampled_from([*DEPTS, *TAGS]), max_size=3),
    "admin": st.booleans(),
}


def _lines(
    line: st.SearchStrategy[tuple[str, ...]], *, max_size: int
) -> st.SearchStrategy[list[tuple[str, ...]]]:
    """Policy lines: one or more (a policy without lines is its own family, ``abac``)."""
    return st.lists(line, min_size=1, max_size=max_size)


def _mostly(common: tuple[Any, ...], rare: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """Three times in four from ``common``."""
    c = st.sampled_from(common)
    return st.one_of(c, c, c, st.sampled_from(rare))


# -- matcher expressions (abac matchers and eval rules) ----------------------------------


def literal(value: Any) -> str:
    """A value as a Python/Casbin literal (strings double-quoted)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


# (chunk attribute, subject attribute) pairs that make sense together, plus odd ones.
_PAIRS: Final = (
    ("dept", "dept"),
    ("level", "clearance"),
    ("tenant", "tenant"),
    ("owner", "id"),
    ("dept", "groups"),
    ("tags", "groups"),
    ("level", "dept"),
    ("public", "admin"),
)
_LITERALS: Final[dict[str, tuple[Any, ...]]] = {
    "dept": (*DEPTS, "", "ünïcødé", 'say "hi"'),
    "level": (0, 1, 2, 2.5, -1, "2", True, BIG, *BIG_NUMBERS),
    "tenant": TENANTS,
    "label": (*LABELS, ""),
    "tags": TAGS,
    "public": (True, False, 1, "true"),
    "owner": USERS,
    "path": ("/docs/eng/1.md", "/docs"),
}
_OPS: Final = ("==", "!=", "<", "<=", ">", ">=")
_EQ_OPS: Final = ("==", "!=")
# Literals in matcher text avoid '#' (Casbin's model parser strips it as a comment).


@st.composite
def _atom(draw: st.DrawFn, fields: tuple[str, ...]) -> str:
    kinds = ["pair", "literal", "in_literal", "in_subject", "subject", "act"]
    kind = draw(st.sampled_from([*kinds, "match"] if "path" in fields else kinds))
    if kind == "match":
        # Matching functions end up under ! and || too: relaxed by polarity in the store.
        function = draw(st.sampled_from(sorted(PATTERNS)))
        pattern = draw(st.sampled_from(PATTERNS[function]))
        if function != "regexMatch" and draw(st.integers(0, 3)) == 0:
            return f"{function}({literal(pattern)}, r.obj.path)"  # the chunk as the pattern
        return f"{function}(r.obj.path, {literal(pattern)})"
    if kind == "pair":
        pairs = [p for p in _PAIRS if p[0] in fields] or [(fields[0], "dept")]
        chunk_attr, subject_attr = draw(st.sampled_from(pairs))
        op = draw(st.sampled_from(_OPS))
        left, right = f"r.obj.{chunk_attr}", f"r.sub.{subject_attr}"
        return f"{left} {op} {right}" if draw(st.booleans()) else f"{right} {op} {left}"
    if kind == "literal":
        name = draw(st.sampled_from(fields))
        value = draw(st.sampled_from(_LITERALS[name]))
        ordering = isinstance(value, (int, float)) and not isinstance(value, bool)
        op = draw(st.sampled_from(_OPS if ordering or draw(st.booleans()) else _EQ_OPS))
        if draw(st.booleans()):
            return f"r.obj.{name} {op} {literal(value)}"
        return f"{literal(value)} {op} r.obj.{name}"
    if kind == "in_literal":
        name = draw(st.sampled_from(fields))
        values = draw(st.lists(st.sampled_from(_LITERALS[name]), min_size=1, max_size=3))
        negate = draw(st.integers(0, 4)) == 0
        items = ", ".join(literal(v) for v in values) + ("," if len(values) == 1 else "")
        return f"r.obj.{name} {'not in' if negate else 'in'} ({items})"
    if kind == "in_subject":
        name = draw(st.sampled_from(fields))
        if draw(st.booleans()):
            return f"r.obj.{name} in r.sub.groups"
        value = draw(st.sampled_from(_LITERALS[name]))
        return f"{literal(value)} in r.obj.{name}"
    if kind == "subject":
        return draw(
            st.sampled_from(
                [
                    'r.sub.id == "alice"',
                    "r.sub.clearance >= 2",
                    'r.sub.dept == "eng"',
                    'r.sub.dept != "hr"',
                    "r.sub.admin == True",
                    '"eng" in r.sub.groups',
                    'r.sub.tenant in ("acme", "globex")',
                    'r.sub in ("alice", "bob")',
                ]
            )
        )
    return draw(st.sampled_from(['r.act == "read"', 'r.act != "write"']))


def expressions(fields: tuple[str, ...], *, max_leaves: int) -> st.SearchStrategy[str]:
    """Random boolean matcher expressions over chunk ``fields`` and the subject."""

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            children.map(lambda e: f"!({e})"),
            st.tuples(children, children).map(lambda ab: f"({ab[0]} && {ab[1]})"),
            st.tuples(children, children).map(lambda ab: f"({ab[0]} || {ab[1]})"),
        )

    return st.recursive(_atom(fields), extend, max_leaves=max_leaves)


# -- the families --------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """The strings the generated subjects and chunks actually hold, per attribute.

    Policy lines draw most of their values from here, so that grants match often
    enough to exercise releases, and from fixed pools otherwise.
    """

    subject: Mapping[str, tuple[str, ...]]
    chunk: Mapping[str, tuple[str, ...]]
    people: tuple[tuple[str, Mapping[str, Any]], ...]
    chunks: tuple[Mapping[str, Any], ...]
    action: str

    @classmethod
    def of(
        cls,
        subjects_: list[tuple[str, dict[str, Any]]],
        chunks: list[dict[str, Any]],
        action: str,
    ) -> Observed:
        by_subject: dict[str, set[str]] = {"id": set()}
        for subject_id, _ in subjects_:
            by_subject["id"].update(_strings_in(subject_id))
        for _, attributes in subjects_:
            for name, value in attributes.items():
                by_subject.setdefault(name, set()).update(_strings_in(value))
        by_chunk: dict[str, set[str]] = {}
        for metadata in chunks:
            for name, value in metadata.items():
                by_chunk.setdefault(name, set()).update(_strings_in(value))
        return cls(
            {k: tuple(sorted(v)) for k, v in by_subject.items()},
            {k: tuple(sorted(v)) for k, v in by_chunk.items()},
            tuple(subjects_),
            tuple(chunks),
            action,
        )

    def witness(
        self, draw: st.DrawFn, subject_attr: str, chunk_attr: str
    ) -> tuple[str, str] | None:
        """A (subject value, chunk value) pair of strings from one subject and one chunk.

        Lines built from witnesses grant at least that pair something, so releases are
        common; ``None`` when the drawn subject or chunk has no such string.
        """
        subject_id, attributes = draw(st.sampled_from(self.people))
        metadata = draw(st.sampled_from(self.chunks))
        mine = _strings_in(subject_id if subject_attr == "id" else attributes.get(subject_attr))
        theirs = _strings_in(metadata.get(chunk_attr))
        if not mine or not theirs:
            return None
        return draw(st.sampled_from(mine)), draw(st.sampled_from(theirs))

    def pick(self, where: str, name: str, fallback: tuple[str, ...]) -> st.SearchStrategy[str]:
        """Three times in four a value seen on subjects/chunks, else from ``fallback``."""
        seen = (self.subject if where == "subject" else self.chunk).get(name, ())
        fallback = tuple(value for value in fallback if policy_value_ok(value))
        if not seen:
            return st.sampled_from(fallback)
        observed = st.sampled_from(seen)
        return st.one_of(observed, observed, observed, st.sampled_from(fallback))


def _strings_in(value: Any) -> list[str]:
    """The strings in a value that can stand in a policy line."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str) and item and policy_value_ok(item)]


def policy_value_ok(value: str) -> bool:
    """Whether Casbin's line reader reads ``value`` back as itself.

    Its reader splits at commas outside ``()``/``[]`` and strips spaces, so a value with
    such a comma, unbalanced brackets, or outer spaces cannot be written in a policy file
    (a subject may still be called ``a,b``; no policy line can name it).
    """
    depth = 0
    for char in value:
        if char in "([":
            depth += 1
        elif char in ")]":
            if depth == 0:
                return False
            depth -= 1
        elif char == "," and depth == 0:
            return False
    return depth == 0 and value == value.strip() and "\n" not in value


_READ = _mostly(("read",), ("write",))

_ABAC_FIELDS: Final = ("dept", "level", "tenant", "label", "tags", "public", "owner", "path")


@st.composite
def _abac(draw: st.DrawFn, seen: Observed) -> dict[str, Any]:
    matcher = draw(expressions(_ABAC_FIELDS, max_leaves=6))
    return {"model": model_text(matcher)}


_DEPARTMENT_MATCHERS: Final = (
    "r.sub.dept == p.sub && r.obj.dept == p.obj && r.act == p.act",
    '(r.sub.dept == p.sub || r.sub.id == p.sub) && (p.obj == "*" || r.obj.dept == p.obj)'
    " && r.act == p.act",
    "(r.sub == p.sub || r.sub.dept == p.sub) && r.obj.dept == p.obj && r.act == p.act"
    " && r.obj.level <= r.sub.clearance",
    'r.obj.dept == p.obj && r.sub.dept == p.sub && (r.act == p.act || p.act == "*")'
    " && r.obj.tenant == r.sub.tenant",
    "r.sub.dept == p.sub && r.obj.dept != p.obj && r.act == p.act",
)


@st.composite
def _department(draw: st.DrawFn, seen: Observed) -> dict[str, Any]:
    who = st.one_of(
        seen.pick("subject", "dept", DEPTS), seen.pick("subject", "id", (*USERS, *WEIRD_IDS))
    )
    what = seen.pick("chunk", "dept", (*DEPTS, "*", WEIRD[0]))
    acts = _mostly(("read",), ("write", "*"))
    lines = draw(_lines(st.tuples(who, what, acts), max_size=4))
    for _ in range(draw(st.integers(0, 3))):
        pair = seen.witness(draw, draw(st.sampled_from(["dept", "dept", "id"])), "dept")
        if pair is not None:
            lines.append((*pair, seen.action))
    return {
        "model": model_text(draw(st.sampled_from(_DEPARTMENT_MATCHERS))),
        "p_lines": draw(st.permutations(lines)),
    }


_RBAC_MATCHERS: Final = (
    "g(r.sub.id, p.sub, r.obj.tenant) && r.obj.dept == p.obj && r.act == p.act",
    'g(r.sub.id, p.sub, r.obj.tenant) && (p.obj == "*" || r.obj.dept == p.obj) && r.act == p.act',
    "g(r.sub, p.sub, r.obj.tenant) && r.act == p.act && r.obj.level <= r.sub.clearance",
    '(g(r.sub.id, p.sub, r.obj.tenant) || r.sub.id == "carol") && r.obj.dept == p.obj'
    " && r.act == p.act",
)


@st.composite
def _rbac(draw: st.DrawFn, seen: Observed) -> dict[str, Any]:
    users = seen.pick("subject", "id", (*USERS, *WEIRD_IDS[:2]))
    roles = st.sampled_from(ROLES)
    members = st.one_of(users, users, roles)  # users in roles, and roles in roles
    domains = seen.pick("chunk", "tenant", (*TENANTS, "", "*"))
    links = draw(st.lists(st.tuples(members, roles, domains), max_size=8))
    grants = draw(
        _lines(st.tuples(roles, seen.pick("chunk", "dept", (*DEPTS, "*")), _READ), max_size=4)
    )
    for _ in range(draw(st.integers(0, 3))):
        # A chain that grants one subject the chunks of one tenant and department.
        role = draw(roles)
        tenant = seen.witness(draw, "id", "tenant")
        dept = seen.witness(draw, "id", "dept")
        if tenant is not None:
            links.append((tenant[0], role, tenant[1]))
        if dept is not None:
            grants.append((role, dept[1], seen.action))
    if draw(st.integers(0, 2)) == 0:
        # Roles without domains; a chunk attribute may stand in either argument of g().
        owners = seen.pick("chunk", "owner", USERS)
        flat: list[tuple[str, ...]] = [link[:2] for link in links]
        flat += draw(st.lists(st.tuples(owners, st.one_of(roles, users)), max_size=4))
        return {
            "model": model_text(draw(st.sampled_from(_FLAT_RBAC_MATCHERS)), roles="_, _"),
            "p_lines": grants,
            "g_lines": flat,
        }
    return {
        "model": model_text(draw(st.sampled_from(_RBAC_MATCHERS)), roles="_, _, _"),
        "p_lines": grants,
        "g_lines": links,
    }


_FLAT_RBAC_MATCHERS: Final = (
    "g(r.sub.id, p.sub) && r.obj.dept == p.obj && r.act == p.act",
    "(g(r.sub.id, r.obj.owner) || r.obj.owner == r.sub) && r.obj.dept == p.obj && r.act == p.act",
    "g(r.obj.owner, r.sub.id) && r.act == p.act",
    "g(r.obj.owner, p.sub) && g(r.sub.id, p.sub) && r.act == p.act",
)


_EVAL_FIELDS: Final = ("dept", "level", "tenant", "label", "tags", "owner")


@st.composite
def _eval(draw: st.DrawFn, seen: Observed) -> dict[str, Any]:
    rules = st.tuples(expressions(_EVAL_FIELDS, max_leaves=3), _READ)
    matcher = draw(
        st.sampled_from(
            [
                "eval(p.rule) && r.act == p.act",
                '(eval(p.rule) || r.sub.id == "carol") && r.act == p.act',
            ]
        )
    )
    return {
        "model": model_text(matcher, policy="rule, act"),
        "p_lines": draw(st.lists(rules, min_size=1, max_size=4)),
    }


_DENY_MATCHERS: Final = (
    '(p.sub == "*" || r.sub.dept == p.sub || r.sub.id == p.sub)'
    ' && (p.obj == "*" || r.obj.dept == p.obj || r.obj.label == p.obj) && r.act == p.act',
    '(p.sub == "*" || r.sub.dept == p.sub) && (p.obj == "*" || r.obj.dept == p.obj'
    " || p.obj in r.obj.tags || r.obj.label == p.obj) && r.act == p.act",
    '(p.sub == "*" || r.sub.id == p.sub) && (r.obj.dept == p.obj || r.obj.label == p.obj)'
    " && r.act == p.act && r.obj.level <= r.sub.clearance",
)


@st.composite
def _deny(draw: st.DrawFn, seen: Observed) -> dict[str, Any]:
    who = st.one_of(
        st.just("*"),
        seen.pick("subject", "dept", DEPTS),
        seen.pick("subject", "id", (*USERS, WEIRD_IDS[0])),
    )
    allow = st.tuples(who, seen.pick("chunk", "dept", (*DEPTS, "*", *TAGS)), _READ)
    deny = st.tuples(
        who,
        st.one_of(seen.pick("chunk", "label", LABELS), seen.pick("chunk", "dept", TAGS)),
        _READ,
    )
    allow_lines = [(*line, "allow") for line in draw(_lines(allow, max_size=3))]
    for _ in range(draw(st.integers(0, 3))):
        pair = seen.witness(draw, draw(st.sampled_from(["dept", "id"])), "dept")
        if pair is not None:
            allow_lines.append((*pair, seen.action, "allow"))
    deny_lines = [(*line, "deny") for line in draw(st.lists(deny, max_size=3))]
    odd = [(*line, "indeterminate") for line in draw(st.lists(allow, max_size=1))]
    return {
        "model": model_text(
            draw(st.sampled_from(_DENY_MATCHERS)), policy="sub, obj, act, eft", effect=DENY_EFFECT
        ),
        "p_lines": draw(st.permutations([*allow_lines, *deny_lines, *odd])),
    }


@st.composite
def _paths(draw: st.DrawFn, seen: Observed) -> dict[str, Any]:
    function = draw(st.sampled_from(sorted(PATTERNS)))
    who = draw(
        st.sampled_from(
            ["r.sub.id == p.sub", "(r.sub.id == p.sub || r.sub.dept == p.sub)", "r.sub == p.sub"]
        )
    )
    call = f"{function}(r.obj.path, p.obj)"
    if function in ("keyMatch", "keyMatch2") and draw(st.integers(0, 3)) == 0:
        call = f"({call} || r.obj.path == p.obj)"
    extra = draw(st.sampled_from(["", ' && r.obj.dept != "hr"', ' && !(r.obj.label == "secret")']))
    matcher = f"{who} && {call} && r.act == p.act{extra}"
    grants = st.tuples(
        st.one_of(
            seen.pick("subject", "id", (*USERS, WEIRD_IDS[0])), seen.pick("subject", "dept", DEPTS)
        ),
        st.sampled_from(PATTERNS[function]),
        _READ,
    )
    lines = draw(_lines(grants, max_size=4))
    for _ in range(draw(st.integers(0, 3))):
        pair = seen.witness(draw, "id", "path")
        if pair is not None:
            matching = [p for p in PATTERNS[function] if MATCH[function](pair[1], p)]
            lines.append((pair[0], draw(st.sampled_from(matching or [pair[1]])), seen.action))
    return {"model": model_text(matcher), "p_lines": draw(st.permutations(lines))}


Family = Callable[[Observed], st.SearchStrategy[dict[str, Any]]]

_FAMILY_STRATEGIES: Final[dict[str, tuple[Family, tuple[str, ...]]]] = {
    "abac": (_abac, _ABAC_FIELDS),
    "department": (_department, ("dept", "level", "tenant")),
    "rbac": (_rbac, ("tenant", "dept", "level", "owner")),
    "eval": (_eval, _EVAL_FIELDS),
    "deny": (_deny, ("dept", "label", "tags", "level")),
    "paths": (_paths, ("path", "dept", "label")),
}


@st.composite
def cases(
    draw: st.DrawFn,
    family: str,
    *,
    max_chunks: int = 24,
    max_subjects: int = 3,
    clean: bool = False,
) -> Case:
    """A complete :class:`Case` of ``family`` (``clean``: see CLEAN_CHUNK_FIELDS)."""
    strategy, fields = _FAMILY_STRATEGIES[family]
    chunks = draw(st.lists(chunk_metadata(fields, clean=clean), min_size=4, max_size=max_chunks))
    people = draw(st.lists(subjects(clean=clean), min_size=2, max_size=max_subjects))
    action = draw(_READ)
    spec = draw(strategy(Observed.of(people, chunks, action)))
    for row in (*spec.get("p_lines", ()), *spec.get("g_lines", ())):
        assert all(policy_value_ok(value) for value in row), row  # a generator bug
    n = len(chunks)
    ties = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2))
    return Case(
        family=family,
        model=spec["model"],
        p_lines=tuple(tuple(line) for line in spec.get("p_lines", ())),
        g_lines=tuple(tuple(link) for link in spec.get("g_lines", ())),
        subjects=tuple(people),
        chunks=tuple(chunks),
        action=action,
        seed=draw(st.integers(0, 2**32 - 1)),
        k=draw(st.integers(1, 6)),
        exact_search=draw(st.booleans()),
        ties=tuple(ties),
    )
