"""Filter IR → Qdrant filter, shared by :class:`EdgeStore` and :class:`QdrantStore`.

The two Qdrant front ends (``qdrant-edge-py`` in-process, ``qdrant-client`` for a server)
take the same filter language through different Python classes, so the translation is
written once against a small :class:`FilterBuilder` and each store supplies its classes.

Exactness. On well-formed metadata (see :mod:`ragguard._values`) the translation is
*equivalent* to the IR: equal strings and booleans through ``MatchValue``/``MatchAny``,
numbers through a closed ``Range`` (which matches ``1`` and ``1.0`` alike and never a
boolean, as ragguard's semantics require), presence through ``IsEmpty``. What Qdrant
cannot express is *relaxed*, by polarity: an atom under an even number of negations
becomes ``TRUE`` (the filter admits more), under an odd number ``FALSE`` (its negation
admits more). Either way the store returns a superset of the allowed chunks and the
guard's exact re-check decides. Relaxed atoms are:

* Casbin matching functions (``keyMatch2``, ``regexMatch``, ...), except ``keyMatch`` of
  the attribute against a pattern with a ``*``: Casbin's ``keyMatch(value, "/kb/eng/*")``
  is exactly "a string that starts with ``/kb/eng/``" (everything from the first ``*``
  on is ignored), and Qdrant's ``MatchPrefix`` is exactly that (byte-wise on UTF-8, so
  character-wise; case-sensitive; any element of a list; never a number, a boolean or an
  object; the empty prefix matches every string), so it is pushed down exactly. Where
  a relaxed pattern of ``keyMatch2``/``3``/``4``/``5`` or ``regexMatch`` (applied to the
  attribute) can only match strings that start with a literal prefix, the positive
  relaxation is that prefix (``MatchPrefix``), and the longer literal runs it must
  contain (``MatchSubstring``), rather than ``TRUE``: still a superset, much narrower
  for a pattern like ``/kb/eng/:doc/*`` or ``/kb/:space/runbooks/*``;
* ``text in attribute`` (``Contains``: a substring of a string, an element of a list),
  bounded by "the attribute exists" (or, negated, "equals ``text``");
* ``attribute in text`` (``Within``) for a text longer than :data:`MAX_SUBSTRING_TEXT`
  (a shorter one is exactly ``MatchAny`` over its substrings);
* string ``<``/``>`` bounds (Qdrant ranges are numeric);
* numbers at or beyond ±2**53, where Qdrant's float comparison loses integer precision
  (2**53 + 1 compares equal to 2**53 as a float, so a bound of 2**53 itself is inexact),
  except in equalities with integers that no float can equal (``2**53 + 1``, most
  64-bit ids): those are pushed down as exact integer matches (see ``_exact_int``);
* ``In`` over more than :data:`MAX_NUMERIC_ALTERNATIVES` numbers;
* attributes whose names are not plain ``[A-Za-z0-9_]`` words (a dot would be a path).

One deliberate superset remains even when ``exact`` is claimed: a list holding only
``null`` s (``[None]``) is *absent* to ragguard but not empty to Qdrant, so
``Exists``-based filters may return such chunks; the re-check denies them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from typing import Any, Final, Protocol

from casbin.util import builtin_operators as _ops

from ragguard._values import kind_of
from ragguard.policy import ir
from ragguard.policy._predicate import describe_condition
from ragguard.stores._translate import CachingTranslator, pushdown, relax
from ragguard.stores.base import Pushdown

__all__ = ["MAX_NUMERIC_ALTERNATIVES", "MAX_SUBSTRING_TEXT", "FilterBuilder", "FilterTranslator"]

MAX_NUMERIC_ALTERNATIVES: Final = 64
"""Largest numeric ``In`` pushed down as alternatives of closed ranges."""

MAX_SUBSTRING_TEXT: Final = 64
"""Longest text whose substrings ``attribute in text`` pushes down (at most 2,081)."""

_EXACT_FLOAT_INTEGER: Final = 2**53
_SIMPLE_FIELD = re.compile(r"[A-Za-z0-9_]+")


class FilterBuilder(Protocol):
    """The Qdrant filter classes of one client library."""

    def match_value(self, key: str, value: str | bool | int) -> Any:
        """``FieldCondition(key, match=MatchValue(value))`` (an int is a 64-bit integer)."""
        ...

    def match_any(self, key: str, values: list[str] | list[int]) -> Any:
        """``FieldCondition(key, match=MatchAny(values))`` (strings, or 64-bit integers)."""
        ...

    def match_prefix(self, key: str, prefix: str) -> Any:
        """``FieldCondition(key, match=MatchPrefix(prefix))``: a string value (or a list
        element) that starts with ``prefix``."""
        ...

    def match_substring(self, key: str, substring: str) -> Any:
        """``FieldCondition(key, match=MatchSubstring(substring))``: a string value (or a
        list element) that contains ``substring``."""
        ...

    def range(
        self,
        key: str,
        *,
        gt: float | None = None,
        gte: float | None = None,
        lt: float | None = None,
        lte: float | None = None,
    ) -> Any:
        """``FieldCondition(key, range=Range(...))``."""
        ...

    def is_empty(self, key: str) -> Any:
        """``IsEmptyCondition(key)``: absent, ``null`` or ``[]``."""
        ...

    def is_null(self, key: str) -> Any:
        """``IsNullCondition(key)``: ``null`` or a list holding ``null``."""
        ...

    def filter(
        self,
        *,
        must: Sequence[Any] | None = None,
        should: Sequence[Any] | None = None,
        must_not: Sequence[Any] | None = None,
    ) -> Any:
        """``Filter(must=..., should=..., must_not=...)``."""
        ...


class FilterTranslator(CachingTranslator):
    """Translates plan filters for one store; results are cached per expression.

    ``key_prefix`` is where metadata lives in the point payload (``"metadata."`` in the
    LangChain layout). ``literal_matches=False`` never uses ``MatchPrefix`` or
    ``MatchSubstring`` (for a Qdrant server without them): matching functions are then
    all relaxed to no condition.
    """

    def __init__(
        self,
        builder: FilterBuilder,
        *,
        key_prefix: str = "metadata.",
        literal_matches: bool = True,
    ) -> None:
        self._builder = builder
        self._prefix = key_prefix
        self._literal_matches = literal_matches
        super().__init__()

    def _translate(self, expr: ir.Expr) -> Pushdown:
        relaxed: list[str] = []
        narrowed = relax(expr, partial(self._relax_atom, relaxed=relaxed))
        relaxed = list(dict.fromkeys(relaxed))  # an atom repeated in the plan, named once
        return pushdown(narrowed, relaxed, self._native)

    def _native(self, narrowed: ir.Expr) -> Any:
        condition = self._build(narrowed, positive=True)
        if not isinstance(narrowed, (ir.And, ir.Or, ir.Not)):  # a bare atom
            condition = self._builder.filter(must=[condition])
        return condition

    # -- phase 1: replace what Qdrant cannot express, by polarity ------------------------

    def _relax_atom(self, expr: ir.Expr, positive: bool, *, relaxed: list[str]) -> ir.Expr:
        """One atom as Qdrant can decide it (see :func:`ragguard.stores._translate.relax`)."""
        if isinstance(expr, (ir.Within, ir.Contains)) and _SIMPLE_FIELD.fullmatch(expr.field):
            bounded = _containment_bound(expr, positive=positive)
            if bounded is not None:
                if not isinstance(expr, ir.Within):  # a bound, not an equivalent
                    relaxed.append(f"{describe_condition(expr)} (decided after the search)")
                return relax(bounded, partial(self._relax_atom, relaxed=relaxed), positive=positive)
        why = self._inexpressible(expr)
        if why is None:
            return expr
        if (
            positive
            and self._literal_matches
            and isinstance(expr, ir.Match)
            and _SIMPLE_FIELD.fullmatch(expr.field)
        ):
            prefix, substrings = necessary_literals(expr)
            if prefix or substrings:
                shown = ", ".join(
                    [f"prefix {prefix!r}"] * bool(prefix) + [f"contains {s!r}" for s in substrings]
                )
                relaxed.append(f"{describe_condition(expr)} ({why}; narrowed to {shown})")
                parts: list[ir.Expr] = [
                    ir.Match(SUBSTRING_FUNCTION, expr.field, s) for s in substrings
                ]
                if prefix:
                    parts.insert(0, ir.Match("keyMatch", expr.field, prefix + "*"))
                return ir.and_(*parts)
        relaxed.append(f"{describe_condition(expr)} ({why})")
        return ir.TRUE if positive else ir.FALSE

    def _inexpressible(self, atom: ir.Expr) -> str | None:
        """Why Qdrant cannot decide ``atom`` exactly, or ``None`` if it can."""
        field = getattr(atom, "field", "")
        if not _SIMPLE_FIELD.fullmatch(field):
            return "attribute name is not a plain word"
        if isinstance(atom, ir.Match):
            if self._literal_matches and _key_match_prefix(atom) is not None:
                return None
            return f"{atom.function} is decided after the search"
        if isinstance(atom, ir.Within):
            return f"substrings of a text longer than {MAX_SUBSTRING_TEXT} characters"
        if isinstance(atom, ir.Contains):
            return "substring containment is decided after the search"
        if isinstance(atom, ir.Eq):
            return _number_problem([atom.value], equality=True)
        if isinstance(atom, ir.In):
            numbers = [v for v in atom.values if kind_of(v) == "number" and not _exact_int(v)]
            if len(numbers) > MAX_NUMERIC_ALTERNATIVES:
                return f"more than {MAX_NUMERIC_ALTERNATIVES} numeric values"
            return _number_problem(numbers, equality=True)
        if isinstance(atom, ir.Range):
            values = [v for _, v in atom.bounds()]
            if any(kind_of(v) != "number" for v in values):
                return "Qdrant ranges compare numbers only"
            return _number_problem(values)
        return None

    # -- phase 2: build the native filter -------------------------------------------------

    def _build(self, expr: ir.Expr, *, positive: bool) -> Any:
        b = self._builder
        if isinstance(expr, ir.And):
            return b.filter(must=[self._build(i, positive=positive) for i in expr.items])
        if isinstance(expr, ir.Or):
            return b.filter(should=[self._build(i, positive=positive) for i in expr.items])
        if isinstance(expr, ir.Not):
            return b.filter(must_not=[self._build(expr.item, positive=not positive)])
        key = self._prefix + expr.field  # type: ignore[union-attr]
        if isinstance(expr, ir.Eq):
            return self._equal_any(key, (expr.value,))
        if isinstance(expr, ir.In):
            return self._equal_any(key, expr.values)
        if isinstance(expr, ir.Range):
            return b.range(
                key,
                gt=_number(expr.gt),
                gte=_number(expr.gte),
                lt=_number(expr.lt),
                lte=_number(expr.lte),
            )
        if isinstance(expr, ir.Match):
            if expr.function == SUBSTRING_FUNCTION:
                return b.match_substring(key, expr.other)
            prefix = _key_match_prefix(expr)
            assert prefix is not None  # _inexpressible relaxed every other Match
            return b.match_prefix(key, prefix)
        if isinstance(expr, ir.Exists):
            if positive:
                return b.filter(must_not=[b.is_empty(key)])
            # Negated: a subset of "present" so that its negation stays a superset.
            return b.filter(must_not=[b.is_empty(key), b.is_null(key)])
        raise AssertionError(f"unexpected filter node {expr!r}")  # pragma: no cover

    def _equal_any(self, key: str, values: Sequence[ir.Scalar]) -> Any:
        b = self._builder
        strings = [v for v in values if isinstance(v, str)]
        conditions: list[Any] = []
        if len(strings) == 1:
            conditions.append(b.match_value(key, strings[0]))
        elif strings:
            conditions.append(b.match_any(key, strings))
        conditions.extend(b.match_value(key, v) for v in values if isinstance(v, bool))
        integers = [int(v) for v in values if _exact_int(v)]
        if len(integers) == 1:
            conditions.append(b.match_value(key, integers[0]))
        elif integers:
            conditions.append(b.match_any(key, integers))
        conditions.extend(
            b.range(key, gte=float(v), lte=float(v))
            for v in values
            if kind_of(v) == "number" and not _exact_int(v)
        )
        return conditions[0] if len(conditions) == 1 else b.filter(should=conditions)


def _containment_bound(expr: ir.Within | ir.Contains, *, positive: bool) -> ir.Expr | None:
    """What Qdrant can run for a string containment atom, or ``None``.

    ``attribute in text`` is exactly ``attribute`` equal to one of the substrings of
    ``text`` (a finite set: pushed down as ``MatchAny`` while ``text`` is short).
    ``text in attribute`` is a substring of a string attribute or an element of a list,
    which Qdrant cannot tell apart: under an even number of negations the filter runs
    the superset "the attribute exists", under an odd number the subset "the attribute
    equals ``text``" (a list holding it, or the string itself).
    """
    if isinstance(expr, ir.Within):
        if len(expr.text) > MAX_SUBSTRING_TEXT:
            return None
        text = expr.text
        return ir.in_(
            expr.field, {text[i:j] for i in range(len(text) + 1) for j in range(i, len(text) + 1)}
        )
    return ir.Exists(expr.field) if positive else ir.Eq(expr.field, expr.text)


def _key_match_prefix(atom: ir.Match) -> str | None:
    """The prefix that ``atom`` tests, when it is exactly a prefix test, else ``None``.

    ``keyMatch(value, pattern)`` with a ``*`` in ``pattern`` is Casbin's
    ``value[:i] == pattern[:i]`` (or ``value == pattern[:i]`` when shorter) for ``i`` the
    first ``*``: exactly ``value.startswith(pattern[:i])``. Without a ``*`` the compiler
    already made it an equality; with the attribute as the pattern it is no prefix test.
    """
    if atom.function != "keyMatch" or not atom.field_first:
        return None
    star = atom.other.find("*")
    return None if star < 0 else atom.other[:star]


_REGEX_SPECIAL: Final = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS: Final = frozenset("*+?{")


SUBSTRING_FUNCTION: Final = "\x00substring"
"""``Match`` function name, private to the translator, of a relaxed atom's necessary
substring (built as ``MatchSubstring``); it never leaves :meth:`FilterTranslator._relax`."""
_MIN_SUBSTRING: Final = 3


def necessary_prefix(atom: ir.Match) -> str:
    """A literal prefix every string the (attribute-first) ``atom`` matches starts with,
    or ``""`` when none is known (see :func:`necessary_literals`)."""
    return necessary_literals(atom)[0]


def necessary_literals(atom: ir.Match) -> tuple[str, tuple[str, ...]]:
    """``(prefix, substrings)`` that every string the (attribute-first) ``atom`` matches
    starts with and contains; ``("", ())`` when nothing is known.

    ``keyMatch2`` … ``keyMatch5`` build the regular expression ``"^" + pattern' + "$"``
    (``/*`` and the parameters rewritten exactly as Casbin does), ``regexMatch`` uses the
    pattern; both are applied with ``re.match`` (anchored at the start; ``keyMatch5``
    to the part before ``?``, a prefix of the value). In a regex without ``|`` and
    without inline flags (``(?i)``, ``(?x)`` would change what a literal matches), every
    run of literal characters outside groups and character classes must occur in the
    match, less a last character that a quantifier follows; the run at the start is a
    prefix. Conservative: any doubt gives shorter runs or none.
    """
    regex = _casbin_regex(atom)
    if regex is None or "|" in regex or "(?" in regex:
        return "", ()
    runs: list[tuple[int, str]] = []  # (start offset, literal run) at depth 0
    depth, index, start, run = 0, 0, 0, ""
    if regex.startswith("^"):
        index = start = 1

    def close(at: int, quantified: bool) -> None:
        nonlocal run
        kept = run[:-1] if quantified else run
        if kept and depth == 0:
            runs.append((at, kept))
        run = ""

    while index < len(regex):
        char = regex[index]
        if char not in _REGEX_SPECIAL:
            if not run:
                start = index
            run += char
            index += 1
            continue
        close(start, char in _QUANTIFIERS)
        if char == "\\":
            index += 2  # an escape: not taken as a literal (conservative)
        elif char == "[":
            index = _class_end(regex, index)
        elif char == "(":
            depth += 1
            index += 1
        elif char == ")":
            depth = max(depth - 1, 0)
            index += 1
        else:
            index += 1
    close(start, False)
    anchored = 1 if regex.startswith("^") else 0
    prefix = runs[0][1] if runs and runs[0][0] == anchored else ""
    substrings = tuple(
        dict.fromkeys(r for at, r in runs if len(r) >= _MIN_SUBSTRING and r not in prefix)
    )
    return prefix, substrings


def _casbin_regex(atom: ir.Match) -> str | None:
    """The regular expression Casbin's function matches the attribute with (re.match)."""
    if not atom.field_first:
        return None
    pattern = atom.other
    if atom.function == "regexMatch":
        return pattern
    if atom.function not in ("keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5"):
        return None
    regex: str = pattern.replace("/*", "/.*")
    if atom.function == "keyMatch2":
        regex = _ops.KEY_MATCH2_PATTERN.sub(r"\g<1>[^\/]+\g<2>", regex, 0)
        if regex == "*":
            return None
    elif atom.function == "keyMatch3":
        regex = _ops.KEY_MATCH3_PATTERN.sub(r"\g<1>[^\/]+\g<2>", regex, 0)
    elif atom.function == "keyMatch4":
        regex = _ops.KEY_MATCH4_PATTERN.sub("([^/]+)", regex)
    else:
        regex = _ops.KEY_MATCH5_PATTERN.sub("[^/]+", regex, 0)
    return "^" + str(regex) + "$"


def _class_end(regex: str, index: int) -> int:
    """The index after the character class opening at ``index`` (or the end)."""
    index += 1
    if index < len(regex) and regex[index] == "^":
        index += 1
    if index < len(regex) and regex[index] == "]":
        index += 1  # a leading ']' is a member
    while index < len(regex) and regex[index] != "]":
        index += 2 if regex[index] == "\\" else 1
    return index + 1


def _number(value: ir.Scalar | None) -> float | None:
    return None if value is None else float(value)


_INT64_MAX: Final = 2**63 - 1


def _exact_int(value: object) -> bool:
    """An integer that equality pushes down as a 64-bit integer match, exactly.

    Checked on both engines (tests/unit/test_stores.py): ``MatchValue(int)`` matches
    integer payloads exactly, but float payloads only when the field has an integer
    index, and with one the index saturates integers beyond 64 bits to the int64
    limits. So only integers no float can equal (not representable as a float, hence
    beyond 2**53) and strictly inside (-2**63 + 1, 2**63 - 1) qualify; smaller ones
    go through the closed float range, which is exact below 2**53.
    """
    return (
        type(value) is int
        and _EXACT_FLOAT_INTEGER < abs(value) < _INT64_MAX
        and float(value) != value
    )


def _number_problem(values: Sequence[ir.Scalar], *, equality: bool = False) -> str | None:
    for value in values:
        if equality and _exact_int(value):
            continue
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and abs(value) >= _EXACT_FLOAT_INTEGER
        ):
            return f"{value!r} is outside the exactly comparable range (-2**53, 2**53)"
    return None
