"""An immutable, versioned snapshot of a Casbin model and its policy lines.

Everything the compiler needs is copied out of Casbin once, so a policy that changes
while in use is either seen whole (a new snapshot, a new version) or not at all.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import casbin
from casbin.constant import constants as casbin_constants

from ragguard.exceptions import PolicyLoadError, UnsupportedPolicyError

__all__ = ["PolicyLine", "RoleGraph", "Snapshot", "load_enforcer", "snapshot_from_enforcer"]

_REACHABLE_CACHE_SIZE = 65_536

EffectKind = Literal["allow", "allow_and_no_deny"]

_EFFECTS: dict[str, EffectKind] = {
    casbin_constants.ALLOW_OVERRIDE_EFFECT: "allow",
    casbin_constants.ALLOW_AND_DENY_EFFECT: "allow_and_no_deny",
}
_CASBIN_EFFECTS = (
    casbin_constants.ALLOW_OVERRIDE_EFFECT,
    casbin_constants.DENY_OVERRIDE_EFFECT,
    casbin_constants.ALLOW_AND_DENY_EFFECT,
    casbin_constants.PRIORITY_EFFECT,
    casbin_constants.SUBJECT_PRIORITY_EFFECT,
)


def effect_kind(effect_text: str, where: str) -> EffectKind:
    """The effect a model's ``e`` text selects, compared as Casbin compares it: exactly.

    pycasbin picks its effector by string equality (``casbin.effect.get_effector``), so
    ``some(where(p.eft==allow))`` is no effect at all to Casbin (it raises "unsupported
    effect"): :class:`PolicyLoadError`. Effects Casbin runs but ragguard does not compile
    (deny-override, priority): :class:`UnsupportedPolicyError`.
    """
    shown = effect_text.replace("p_", "p.")
    effect = _EFFECTS.get(effect_text)
    if effect is not None:
        return effect
    if effect_text in _CASBIN_EFFECTS:
        raise UnsupportedPolicyError(
            f"policy effect {shown!r} is not supported; use "
            "'some(where (p.eft == allow))' or "
            "'some(where (p.eft == allow)) && !some(where (p.eft == deny))'"
        )
    near = [
        text
        for text in _CASBIN_EFFECTS
        if re.sub(r"\s+", "", text) == re.sub(r"\s+", "", effect_text)
    ]
    hint = f"; write it exactly as {near[0].replace('p_', 'p.')!r}" if near else ""
    raise PolicyLoadError(
        f"{where}: policy effect {shown!r} is not one Casbin runs (pycasbin compares the "
        f"effect text exactly, spaces included, and raises 'unsupported effect'){hint}"
    )


@dataclass(frozen=True)
class PolicyLine:
    """One ``p`` line: where it is, its values by token, and its effect."""

    number: int
    values: tuple[str, ...]
    effect: Literal["allow", "deny", "other"]

    def render(self) -> str:
        """The line as it reads in ``policy.csv``."""
        return "p, " + ", ".join(self.values)


class RoleGraph:
    """Role links of one ``g`` definition, with the semantics of Casbin's role managers.

    Built from the snapshot's links (not the live enforcer's manager), so a later
    policy change cannot reach plans compiled from this snapshot. Answers are those of
    Casbin's ``RoleManager`` / ``DomainManager`` without pattern functions (ragguard
    refuses those): ``has_link(a, b[, d])`` holds when ``b`` is ``a`` or is reachable
    from ``a`` through at most ``max_depth - 1`` links of domain ``d``. Casbin's own
    managers are not queried at plan time: they create an entry for every name looked
    up, and a new name costs a scan of every role in the domain, which made the first
    plans of a large policy take seconds (tests/unit/test_role_graph.py checks the
    answers against Casbin's managers).
    """

    def __init__(
        self, name: str, links: Sequence[tuple[str, ...]], *, with_domain: bool, max_depth: int
    ) -> None:
        self.name = name
        self.with_domain = with_domain
        self.arity = 3 if with_domain else 2
        self.max_depth = max_depth
        # domain ("" without domains) -> user -> the roles it is linked to directly
        self._edges: dict[str, dict[str, set[str]]] = {}
        user_domains: dict[str, set[str]] = {}
        names: set[str] = set()
        domains: set[str] = set()
        for link in links:
            domain = link[2] if with_domain else ""
            self._edges.setdefault(domain, {}).setdefault(link[0], set()).add(link[1])
            user_domains.setdefault(link[0], set()).add(domain)
            names.update(link[:2])
            if with_domain:
                domains.add(domain)
        self.names: tuple[str, ...] = tuple(sorted(names))
        self.domains: tuple[str, ...] = tuple(sorted(domains))
        self._user_domains = {user: frozenset(ds) for user, ds in user_domains.items()}
        self._reachable = functools.lru_cache(maxsize=_REACHABLE_CACHE_SIZE)(self._walk)

    def has_link(self, *args: str) -> bool:
        """Casbin's ``g(name1, name2[, domain])``."""
        domain = args[2] if self.with_domain and len(args) > 2 else ""
        return args[1] in self._reachable(args[0], domain)

    def reachable(self, name: str, domain: str = "") -> frozenset[str]:
        """Every ``b`` with ``has_link(name, b[, domain])``: ``name`` itself included."""
        return self._reachable(name, domain if self.with_domain else "")

    def domains_of(self, name: str) -> frozenset[str]:
        """The domains in which ``name`` has at least one link of its own.

        ``has_link(name, other, d)`` with ``other != name`` can only hold in these.
        """
        return self._user_domains.get(name, frozenset())

    def _walk(self, name: str, domain: str) -> frozenset[str]:
        """``name`` and every role reachable from it in ``domain`` within the depth limit."""
        if self.max_depth <= 0:
            return frozenset()
        edges = self._edges.get(domain, {})
        seen = {name}
        frontier = {name}
        # Casbin's _has_link checks the start at level max_depth and gives up at level 0.
        for _ in range(self.max_depth - 1):
            frontier = {role for user in frontier for role in edges.get(user, ())} - seen
            if not frontier:
                break
            seen |= frontier
        return frozenset(seen)


@dataclass(frozen=True)
class Snapshot:
    """Everything the compiler reads from a Casbin model + policy."""

    matcher: str
    matcher_line: int | None
    request_tokens: tuple[str, ...]
    policy_tokens: tuple[str, ...]
    effect: EffectKind
    lines: tuple[PolicyLine, ...]
    role_graphs: dict[str, RoleGraph] = field(compare=False)
    grouping: dict[str, tuple[tuple[str, ...], ...]]
    version: str

    @property
    def eft_index(self) -> int | None:
        """Position of ``eft`` among the policy tokens, if the model has one."""
        token = "p_eft"
        return self.policy_tokens.index(token) if token in self.policy_tokens else None


_BOM = "\ufeff"


def _read(source: str | Path, what: Literal["model", "policy"]) -> tuple[str, Path | None]:
    """Return (text, path): ``source`` is a path to a file or the text itself.

    A file is read the way pycasbin reads it, so both see the same lines: a policy file
    as bytes split at ``\n`` only (``FileAdapter``: a lone ``\r`` is not a line break),
    a model file in text mode with universal newlines (``Config``: ``\r\n`` and ``\r``
    end a line). Both are strict UTF-8 with a byte order mark kept as a character,
    exactly as Casbin keeps it. Text given directly is used as it is.
    """
    if isinstance(source, Path):
        path: Path | None = source
    elif "\n" not in source and len(source) < 4096 and Path(source).suffix in (".conf", ".csv"):
        path = Path(source)
    else:
        path = None
    if path is None:
        return str(source), None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyLoadError(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        raise PolicyLoadError(
            f"the {what} {str(path)!r} is not UTF-8 (line {number}: byte "
            f"0x{data[exc.start]:02x} cannot be decoded); Casbin reads {what} files as "
            "UTF-8: save the file in that encoding"
        ) from None
    if what == "model":
        # open(path, "r") in pycasbin's Config: universal newlines.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, path


_LINE_SYNTAX = re.compile(r"[,\[\]()]")


def policy_line_tokens(line: str) -> list[str] | None:
    """Split one policy line exactly as pycasbin's file adapter does.

    Values are separated by commas outside ``()``/``[]`` and stripped; quotes are part of
    the value, as in Casbin (``"alice"`` never equals ``alice``), so an eval rule such as
    ``r.obj.dept in ("eng", "hr")`` is one value. ``None`` for a closing bracket without
    an opening one (Casbin fails on the line).
    """
    tokens: list[str] = []
    depth = 0
    start = 0
    for match in _LINE_SYNTAX.finditer(line):
        char = match.group()
        if char in "[(":
            depth += 1
        elif char in "])":
            if depth == 0:
                return None
            depth -= 1
        elif depth == 0:
            tokens.append(line[start : match.start()].strip())
            start = match.end()
    tokens.append(line[start:].strip())
    return tokens


def load_enforcer(
    model: str | Path, policy: str | Path | None
) -> tuple[casbin.Enforcer, dict[int, int], str, int | None]:
    """Build a Casbin enforcer from model and policy (paths or text).

    Returns the enforcer, a map from p-line index to its line number in the policy
    text, the model text and the matcher's line number in the model text.
    """
    model_text, model_path = _read(model, "model")
    model_name = str(model_path) if model_path else "model text"
    try:
        casbin_model = casbin.model.Model()
        casbin_model.load_model_from_text(model_text)
    except Exception as exc:  # Casbin raises plain Exceptions for a malformed model
        bom = " (it starts with a UTF-8 byte order mark)" if model_text.startswith(_BOM) else ""
        raise PolicyLoadError(f"malformed Casbin model in {model_name}{bom}: {exc}") from exc
    for section in ("r", "p", "e", "m"):
        if section not in casbin_model.model:
            names = {
                "r": "request_definition",
                "p": "policy_definition",
                "e": "policy_effect",
                "m": "matchers",
            }
            raise PolicyLoadError(f"{model_name} has no [{names[section]}] section")
    effect_kind(casbin_model.model["e"]["e"].value, model_name)  # before Casbin raises on it
    enforcer = casbin.Enforcer(casbin_model)
    line_numbers: dict[int, int] = {}
    if policy is not None:
        policy_text, policy_path = _read(policy, "policy")
        policy_name = str(policy_path) if policy_path else "policy text"
        p_index = 0
        # Lines end at "\n" only, as pycasbin's file adapter reads them.
        for number, raw in enumerate(policy_text.split("\n"), start=1):
            line = raw.strip()
            if line.startswith(_BOM):
                # Casbin keeps a byte order mark as part of the line and so ignores the
                # line (its type "\ufeffp" is not in the model): harmless for a comment,
                # a silently dropped rule otherwise, which ragguard refuses.
                if not line[1:].strip() or line[1:].lstrip().startswith("#"):
                    continue
                raise PolicyLoadError(
                    f"{policy_name}:{number}: the line starts with a UTF-8 byte order mark, "
                    "so Casbin ignores it; save the file as UTF-8 without a BOM"
                )
            if not line or line.startswith("#"):
                continue
            tokens = policy_line_tokens(line)
            if tokens is None:
                raise PolicyLoadError(
                    f"{policy_name}:{number}: a closing bracket without an opening one"
                )
            key = tokens[0]
            section = key[:1]
            if section not in ("p", "g") or key not in casbin_model.model.get(section, {}):
                raise PolicyLoadError(
                    f"{policy_name}:{number}: line type {key!r} is not defined in the model"
                )
            assertion = casbin_model.model[section][key]
            expected = len(assertion.tokens) if section == "p" else None
            if expected is not None and len(tokens) - 1 != expected:
                raise PolicyLoadError(
                    f"{policy_name}:{number}: {key} line has {len(tokens) - 1} values, "
                    f"the model defines {expected} ({', '.join(assertion.tokens)})"
                )
            if section == "p" and key == "p":
                line_numbers[p_index] = number
                p_index += 1
            assertion.policy.append(tokens[1:])
        try:
            enforcer.build_role_links()
        except Exception as exc:  # role manager errors are plain Exceptions in Casbin
            raise PolicyLoadError(f"{policy_name}: cannot build role links: {exc}") from exc
    matcher_line = None
    for number, raw in enumerate(model_text.split("\n"), start=1):
        if re.match(r"\s*m\s*=", raw):
            matcher_line = number
            break
    return enforcer, line_numbers, model_text, matcher_line


def _uses_pattern_matching(manager: Any) -> bool:
    """Whether a Casbin role manager had a (domain) matching function added."""
    if getattr(manager, "domain_matching_func", None) is not None:
        return True
    function = getattr(manager, "matching_func", None)
    # DomainManager installs a plain equality lambda by default; that one is harmless.
    default = "DomainManagerBase.__init__"
    return function is not None and not getattr(function, "__qualname__", "").startswith(default)


def snapshot_from_enforcer(
    enforcer: Any,
    *,
    line_numbers: dict[int, int] | None = None,
    matcher_line: int | None = None,
) -> Snapshot:
    """Copy what the compiler needs out of a live ``casbin.Enforcer``."""
    model = enforcer.model.model
    try:
        matcher = model["m"]["m"].value
        request_tokens = tuple(model["r"]["r"].tokens)
        policy_tokens = tuple(model["p"]["p"].tokens)
        effect_text = model["e"]["e"].value
    except KeyError as exc:
        raise PolicyLoadError(f"the Casbin model lacks the {exc.args[0]!r} definition") from exc
    for section in ("r", "p", "e", "m"):
        extra = sorted(set(model.get(section, {})) - {section})
        if extra:
            raise UnsupportedPolicyError(
                f"multiple definitions ({', '.join(extra)}) in section {section!r}: "
                "ragguard compiles the single r/p/e/m definition only"
            )
    if len(request_tokens) != 3:
        raise UnsupportedPolicyError(
            f"request definition has {len(request_tokens)} fields "
            f"({', '.join(t[2:] for t in request_tokens)}); ragguard needs exactly three: "
            "r = sub, obj, act (the subject, the chunk, the action)"
        )
    effect = effect_kind(effect_text, "the model")
    eft_index = policy_tokens.index("p_eft") if "p_eft" in policy_tokens else None
    lines: list[PolicyLine] = []
    for index, values in enumerate(model["p"]["p"].policy):
        number = (line_numbers or {}).get(index, index + 1)
        if len(values) != len(policy_tokens):
            raise PolicyLoadError(
                f"policy line {number} has {len(values)} values, the model defines "
                f"{len(policy_tokens)}"
            )
        eft = values[eft_index] if eft_index is not None else "allow"
        kind: Literal["allow", "deny", "other"] = (
            "allow" if eft == "allow" else "deny" if eft == "deny" else "other"
        )
        lines.append(PolicyLine(number, tuple(str(v) for v in values), kind))

    role_graphs: dict[str, RoleGraph] = {}
    grouping: dict[str, tuple[tuple[str, ...], ...]] = {}
    for key, assertion in model.get("g", {}).items():
        arity = assertion.value.count("_")
        if arity not in (2, 3) or getattr(assertion, "params_tokens", None):
            raise UnsupportedPolicyError(
                f"role definition {key} = {assertion.value!r} is not supported; "
                "use '_, _' or '_, _, _' (with a domain)"
            )
        live_manager = getattr(enforcer, "rm_map", {}).get(key)
        if live_manager is not None and _uses_pattern_matching(live_manager):
            raise UnsupportedPolicyError(
                f"role definition {key} uses a pattern matching function "
                "(add_named_matching_func / add_named_domain_matching_func); ragguard cannot "
                "enumerate pattern roles into a filter"
            )
        if getattr(enforcer, "cond_rm_map", {}).get(key) is not None:
            raise UnsupportedPolicyError(f"conditional role definition {key} is not supported")
        links = tuple(tuple(str(v) for v in link) for link in assertion.policy)
        grouping[key] = links
        depth = getattr(live_manager, "max_hierarchy_level", 10)
        role_graphs[key] = RoleGraph(key, links, with_domain=arity == 3, max_depth=depth)

    version_source = json.dumps(
        {
            "matcher": matcher,
            "effect": effect,
            "r": request_tokens,
            "p": policy_tokens,
            "lines": [line.values for line in lines],
            "g": {k: grouping[k] for k in sorted(grouping)},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    version = hashlib.sha256(version_source.encode("utf-8")).hexdigest()[:16]
    return Snapshot(
        matcher=matcher,
        matcher_line=matcher_line,
        request_tokens=request_tokens,
        policy_tokens=policy_tokens,
        effect=effect,
        lines=tuple(lines),
        role_graphs=role_graphs,
        grouping=grouping,
        version=version,
    )
