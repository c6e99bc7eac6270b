"""The reference decision: ``casbin.enforce`` itself, with the request values wrapped.

Casbin evaluates the matcher with plain Python operators, so a chunk attribute that is
missing raises, ``"3" >= 2`` raises, ``True == 1`` holds and a list never equals a
string. ragguard's semantics (DESIGN.md, "Semantics") differ in exactly those places,
deliberately, so that the Qdrant filter and the Python re-check can agree. The oracle
keeps Casbin for everything else (matcher evaluation, policy lines and their effect,
``eval(p.rule)``, role links, the matching functions, a policy without lines) and wraps
each *value* so that it compares the way DESIGN.md says:

* an absent attribute (missing key, ``None``, ``[]``) compares false under every
  operator, ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` and ``in``;
* ``bool`` is its own type (``True != 1``), ``int`` and ``float`` are one numeric type,
  strings compare with strings only; an ordering between different types is false;
* a list matches when any element matches;
* ``x in y`` where ``y`` is a string (a policy value, a literal, or a request value
  holding one string) is Python's substring test, as in Casbin: ``"hr" in
  "hr-restricted"`` holds; a non-string ``x`` (or element of ``x``) is no substring of
  anything, and an absent ``x`` or ``y`` makes ``in`` false. With a list or tuple on the
  right, ``in`` is element equality.

This module is written from DESIGN.md, not from ``ragguard._values``: it must not share
code with what it checks. Calls are serialised: pycasbin re-parses the matcher with
``ast.parse`` on every ``enforce``, which is not thread-safe on CPython 3.11.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import casbin
from casbin import util as casbin_util
from casbin.persist.adapter import Adapter, load_policy_line

__all__ = ["CasbinOracle", "PlainCasbin", "Val", "contains", "normalize"]

_ORACLE_LOCK: Final = threading.Lock()

Scalar = str | int | float | bool


def normalize(raw: object) -> tuple[Scalar, ...]:
    """The scalars a JSON-like value stands for: ``()`` when absent, its items if a list."""
    if raw is None:
        return ()
    if isinstance(raw, (str, int, float, bool)):
        return (raw,)
    if isinstance(raw, (list, tuple)):
        items: list[Scalar] = []
        for item in raw:
            if item is None:
                continue
            if not isinstance(item, (str, int, float, bool)):
                raise TypeError(f"the oracle decides JSON scalars and lists only, got {item!r}")
            items.append(item)
        return tuple(items)
    raise TypeError(f"the oracle decides JSON scalars and lists only, got {raw!r}")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def _equal(a: object, b: object) -> bool:
    return _kind(a) == _kind(b) != "other" and a == b


def _ordered(op: str, a: Any, b: Any) -> bool:
    if _kind(a) != _kind(b) or _kind(a) not in ("number", "str"):
        return False
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _items(value: object) -> tuple[object, ...]:
    """The scalars on one side of a comparison (a plain Python value is one scalar)."""
    if isinstance(value, Val):
        return value.items
    if isinstance(value, OracleSubject):
        return (value.subject_id,)
    if isinstance(value, tuple):  # a tuple literal in the matcher
        out: list[object] = []
        for item in value:
            out.extend(_items(item))
        return tuple(out)
    return (value,)


class Val:
    """A request value (chunk or subject attribute) with DESIGN.md's comparison rules."""

    __slots__ = ("items", "text")
    __hash__ = None  # type: ignore[assignment]  # never a dict key: unwrap first

    def __init__(self, raw: object) -> None:
        self.items = normalize(raw)
        # A single string (not a list of one): the right of ``in`` tests substrings.
        self.text = raw if isinstance(raw, str) else None

    def _any(self, other: object, test: Callable[[object, object], bool]) -> bool:
        mine, theirs = self.items, _items(other)
        return bool(mine) and bool(theirs) and any(test(a, b) for a in mine for b in theirs)

    def __eq__(self, other: object) -> bool:
        return self._any(other, _equal)

    def __ne__(self, other: object) -> bool:
        theirs = _items(other)
        if not self.items or not theirs:
            return False
        return not any(_equal(a, b) for a in self.items for b in theirs)

    def __lt__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _ordered("<", a, b))

    def __le__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _ordered("<=", a, b))

    def __gt__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _ordered(">", a, b))

    def __ge__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _ordered(">=", a, b))

    def __contains__(self, other: object) -> bool:
        """``other in self``: a substring of a string ``self``; otherwise some element
        of ``other`` equals some element of ``self``."""
        if self.text is not None:
            text = self.text
            return any(isinstance(a, str) and a in text for a in _items(other))
        return self._any(other, _equal)

    def __bool__(self) -> bool:
        raise TypeError("a request value used as a boolean: the generated matcher is wrong")

    def __repr__(self) -> str:
        return f"Val{self.items!r}"


class OracleSubject:
    """``r.sub``: the id when used alone, ``r.sub.<name>`` an attribute (absent if missing)."""

    def __init__(self, subject_id: str, attributes: Mapping[str, object]) -> None:
        self.subject_id = subject_id
        self._attributes = dict(attributes)

    def __getattr__(self, name: str) -> Val:
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "id":
            return Val(self.subject_id)
        return Val(self._attributes.get(name))

    def __eq__(self, other: object) -> bool:
        return Val(self.subject_id) == other

    def __ne__(self, other: object) -> bool:
        return Val(self.subject_id) != other

    __hash__ = None  # type: ignore[assignment]


class OracleChunk:
    """``r.obj``: the chunk metadata, every attribute wrapped, a missing one absent."""

    def __init__(self, metadata: Mapping[str, object]) -> None:
        self._metadata = dict(metadata)

    def __getattr__(self, name: str) -> Val:
        if name.startswith("_"):
            raise AttributeError(name)
        return Val(self._metadata.get(name))

    def __bool__(self) -> bool:
        raise TypeError("r.obj used as a boolean: the generated matcher is wrong")


def _strings(value: object) -> list[str]:
    """The strings an argument of g()/keyMatch() stands for (other kinds name nothing)."""
    return [item for item in _items(value) if isinstance(item, str)]


def _any_element(function: Callable[[str, str], bool]) -> Callable[[object, object], bool]:
    """Casbin's own matching function, applied to every string element (list semantics)."""

    def call(key: object, pattern: object) -> bool:
        return any(function(k, p) for k in _strings(key) for p in _strings(pattern))

    return call


MATCHING_FUNCTIONS: Final[dict[str, Callable[[str, str], bool]]] = {
    "keyMatch": casbin_util.key_match,
    "keyMatch2": casbin_util.key_match2,
    "regexMatch": casbin_util.regex_match,
    "globMatch": casbin_util.glob_match,
}


class _TextAdapter(Adapter):  # type: ignore[misc]  # casbin is untyped
    """Policy text read line by line exactly as pycasbin's ``FileAdapter`` reads a file."""

    def __init__(self, text: str) -> None:
        self._text = text

    def load_policy(self, model: Any) -> None:
        for line in self._text.split("\n"):
            load_policy_line(line.strip(), model)


def _enforcer(model_text: str, policy_text: str) -> Any:
    model = casbin.model.Model()
    model.load_model_from_text(model_text)
    return casbin.Enforcer(model, _TextAdapter(policy_text))


def contains(item: object, container: object) -> bool:
    """``item in container`` with the documented semantics (see the module docstring)."""
    text = container if isinstance(container, str) else None
    if isinstance(container, Val):
        text = container.text
    elif isinstance(container, OracleSubject):
        text = container.subject_id
    if text is not None:
        return any(isinstance(a, str) and a in text for a in _items(item))
    return item in container  # type: ignore[operator]  # Val, tuple or list: elements


def _typed_membership(enforcer: Any) -> None:
    """Make the enforcer's evaluator use :func:`contains` for ``in`` and ``not in``.

    Casbin evaluates ``x in "text"`` with Python's operator, which raises for a wrapped
    ``x``; everything else about the evaluator stays Casbin's own.
    """
    build = type(enforcer)._get_expression

    def get_expression(expr: str, functions: Any = None) -> Any:
        expression = build(expr, functions)
        expression.operators[ast.In] = lambda x, y: contains(x, y)
        expression.operators[ast.NotIn] = lambda x, y: not contains(x, y)
        return expression

    enforcer._get_expression = get_expression


class CasbinOracle:
    """A ``casbin.Enforcer`` on the policy text (read by Casbin's own line reader),
    deciding wrapped requests."""

    def __init__(self, model_text: str, policy_text: str = "", *, enforcer: Any = None) -> None:
        if enforcer is None:
            enforcer = _enforcer(model_text, policy_text)
        _typed_membership(enforcer)
        self.lines: tuple[list[list[str]], list[list[str]]] = (
            enforcer.get_policy(),
            enforcer.get_grouping_policy() if "g" in enforcer.model.model else [],
        )
        for name, function in MATCHING_FUNCTIONS.items():
            enforcer.add_function(name, _any_element(function))
        role_managers: dict[str, Any] = dict(enforcer.rm_map)
        if role_managers:
            # Casbin's generated g() passes list values through and stringifies the
            # domain (so a chunk's tenant 5 would be the domain "5"). Under DESIGN.md's
            # typed, any-element semantics g() asks Casbin's *own* role manager once per
            # string element. Casbin installs its g() only while rm_map is non-empty.
            enforcer.rm_map = {}
            for name, manager in role_managers.items():
                enforcer.add_function(name, _role_function(manager))
        self._enforcer = enforcer

    @classmethod
    def from_files(cls, model_path: str, policy_path: str) -> CasbinOracle:
        """The oracle on files read by Casbin itself (``casbin.Enforcer(model, policy)``)."""
        return cls("", enforcer=casbin.Enforcer(model_path, policy_path))

    def enforce(
        self,
        subject_id: str,
        attributes: Mapping[str, object],
        metadata: Mapping[str, object],
        action: str = "read",
    ) -> bool:
        """``casbin.enforce(sub, obj, act)`` on the wrapped request (serialised)."""
        request = (OracleSubject(subject_id, attributes), OracleChunk(metadata), action)
        with _ORACLE_LOCK:
            result = self._enforcer.enforce(*request)
        if not isinstance(result, bool):  # pragma: no cover - Casbin always returns bool
            raise TypeError(f"casbin.enforce returned {result!r}")
        return result


def _role_function(manager: Any) -> Callable[..., bool]:
    def g(*args: object) -> bool:
        choices = [_strings(arg) for arg in args]
        if len(args) == 3 and _items(args[2]) and set(choices[0]) & set(choices[1]):
            # Casbin's has_link(x, x, domain) holds before it looks at the domain, so any
            # present domain value will do (an absent one is no argument at all).
            return True
        return any(manager.has_link(*combo) for combo in _product(choices))

    return g


def _product(choices: list[list[str]]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for options in choices:
        combos = [(*combo, option) for combo in combos for option in options]
    return combos


class _PlainSubject(str):
    """``r.sub`` for plain Casbin: the id string, with the attributes as Python attributes."""

    __slots__ = ("__dict__",)


class _PlainChunk:
    """``r.obj`` for plain Casbin: metadata as Python attributes, nothing wrapped."""

    def __init__(self, metadata: Mapping[str, object]) -> None:
        self.__dict__.update(metadata)


class PlainCasbin:
    """An unmodified ``casbin.Enforcer`` on raw values: checks the oracle's wrapping.

    On values where Python's operators already mean what DESIGN.md says (every
    attribute present, one type per attribute), the oracle must agree with it.
    """

    def __init__(self, model_text: str, policy_text: str = "") -> None:
        self._enforcer = _enforcer(model_text, policy_text)

    def enforce(
        self,
        subject_id: str,
        attributes: Mapping[str, object],
        metadata: Mapping[str, object],
        action: str = "read",
    ) -> bool:
        """Plain ``casbin.enforce`` (serialised like the oracle)."""
        subject = _PlainSubject(subject_id)
        subject.__dict__.update(attributes)
        subject.__dict__["id"] = subject_id
        with _ORACLE_LOCK:
            return bool(self._enforcer.enforce(subject, _PlainChunk(metadata), action))
