"""The value semantics shared by the compiler, the compiled predicate and the stores.

ragguard decides on JSON-like values and gives them one meaning everywhere, chosen so
that the pushed-down Qdrant filter and the Python predicate agree exactly:

* ``bool`` is its own type: ``True == 1`` is false (unlike Python, like Qdrant).
* ``int`` and ``float`` are one numeric type: ``1 == 1.0`` is true.
* strings compare with strings only; ordering between a string and a number is false.
* an absent attribute, ``None`` and an empty list are *absent*: every comparison with an
  absent value is false, under every operator, including ``!=``.
* a list matches when any element matches (Qdrant's array semantics).
* ``x in s`` with a *string* ``s`` on the right is substring containment, as in Casbin
  (Python): ``"ng" in "eng"`` holds; only string elements of ``x`` can be contained.
  With a list (or any other value) on the right, ``in`` is element equality.
* integers compare as integers, never through ``float``: ``2**53 + 1 != 2**53``.
* a nested object (dict), a list holding non-scalars, or a non-finite float is malformed:
  the chunk is denied.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

Scalar: TypeAlias = "str | int | float | bool"
"""A JSON scalar that ragguard can compare."""


class _Absent:
    """The value of an attribute that is not there (or is ``None`` or ``[]``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = _Absent()
"""Sentinel for an absent attribute."""

SCALAR_TYPES: Final = (str, int, float, bool)

ORDERING_OPERATORS: Final = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


MAX_INT_BITS: Final = 13_288
"""Integers longer than this (about 4,000 decimal digits) are malformed: Python refuses
to print or parse them (``sys.get_int_max_str_digits``), so no reason, digest or JSON
could name them."""


class MalformedValueError(ValueError):
    """A metadata value that ragguard refuses to decide on (nested object, NaN, ...)."""


_KIND_BY_TYPE: Final[dict[type, str]] = {str: "str", int: "number", float: "number", bool: "bool"}


def kind_of(value: object) -> str:
    """The comparison kind of a scalar: ``"bool"``, ``"number"``, ``"str"`` or ``"other"``."""
    kind = _KIND_BY_TYPE.get(type(value))
    if kind is not None:  # the exact built-in types: the common case, one lookup
        return kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def scalar_equal(a: object, b: object) -> bool:
    """``a == b`` under ragguard's typed semantics (both operands scalars)."""
    ka = kind_of(a)
    return ka != "other" and ka == kind_of(b) and a == b


def scalar_order(op: str, a: Any, b: Any) -> bool:
    """``a <op> b`` for an ordering operator; false between incompatible kinds."""
    ka = kind_of(a)
    if ka not in ("number", "str") or ka != kind_of(b):
        return False
    return bool(ORDERING_OPERATORS[op](a, b))


def normalize_value(value: object, *, where: str) -> object:
    """Turn a raw metadata/subject value into ABSENT, a scalar, or a tuple of scalars.

    Raises :class:`MalformedValueError` (naming ``where``) for anything else.
    """
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if value is None:
        return ABSENT
    if isinstance(value, SCALAR_TYPES):
        _check_number(value, where)
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        items: list[object] = []
        for item in value:
            if item is None:
                continue
            if not isinstance(item, SCALAR_TYPES):
                raise MalformedValueError(
                    f"{where} holds a {type(item).__name__}; lists may hold only "
                    "strings, numbers and booleans"
                )
            _check_number(item, f"{where} holds a value that")
            items.append(item)
        return tuple(items) if items else ABSENT
    raise MalformedValueError(
        f"{where} is a {type(value).__name__}; expected a string, number, boolean or a list of them"
    )


def _check_number(value: object, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise MalformedValueError(f"{where} is {value!r}; only finite numbers are allowed")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise MalformedValueError(
            f"{where} is an integer of {value.bit_length()} bits; integers may have at most "
            f"{MAX_INT_BITS} bits (about 4,000 digits)"
        )


def elements(value: object) -> tuple[object, ...]:
    """The scalars a normalized value stands for: none if absent, its items if a list."""
    if value is ABSENT:
        return ()
    if isinstance(value, tuple):
        return value
    return (value,)


def contains(container: object, item: object) -> bool:
    """``item in container`` on normalized values, as Casbin evaluates it.

    A string container: some string element of ``item`` is a substring of it (Python's
    ``str.__contains__``; a number or boolean is never in a string). Any other
    container (a list, a number, a boolean): some element of ``item`` equals some
    element of the container. Absent on either side: false.
    """
    items = elements(item)
    if not items or container is ABSENT:
        return False
    if kind_of(container) == "str":
        text: Any = container
        return any(kind_of(a) == "str" and a in text for a in items)
    return any(scalar_equal(a, b) for a in items for b in elements(container))


def compare(op: str, left: object, right: object) -> bool:
    """``left <op> right`` on normalized values (see the module docstring).

    ``op`` is one of ``== != < <= > >= in``; ``in`` is :func:`contains` (substring
    containment when ``right`` is a string, element equality otherwise). Absent on
    either side: false.
    """
    if op == "in":
        return contains(right, left)
    lefts, rights = elements(left), elements(right)
    if not lefts or not rights:
        return False
    if op == "==":
        return any(scalar_equal(a, b) for a in lefts for b in rights)
    if op == "!=":
        return not any(scalar_equal(a, b) for a in lefts for b in rights)
    return any(scalar_order(op, a, b) for a in lefts for b in rights)


def describe(value: object) -> str:
    """A short, safe rendering of a value for decision reasons (truncated)."""
    if value is ABSENT:
        return "absent"
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 60 else text[:57] + "..."
