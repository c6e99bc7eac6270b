"""Who is asking: :class:`Subject`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ragguard._values import ABSENT, MalformedValueError, normalize_value
from ragguard.exceptions import SubjectError

__all__ = ["Subject"]

MAX_ATTRIBUTES = 256
MAX_STRING_LENGTH = 4096
MAX_LIST_LENGTH = 4096


@dataclass(frozen=True, eq=False)
class Subject:
    """The user (or service) on whose behalf a retrieval runs.

    The Casbin matcher sees it as ``r.sub``: ``r.sub`` alone (and ``r.sub.id``) is the id,
    ``r.sub.<name>`` is an attribute::

        alice = Subject(id="alice", attributes={"dept": "eng", "clearance": 2})

    Attribute values are JSON-like: strings, numbers, booleans, ``None`` or lists of
    them. They are data, never syntax: a value such as ``'eng" || "1" == "1'`` is just a
    string. A subject is immutable and hashable; two subjects with the same id and
    attributes share cached plans.
    """

    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    _normalized: dict[str, object] = field(init=False, repr=False, compare=False)
    _fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise SubjectError(f"Subject.id must be a non-empty string, got {self.id!r}")
        if len(self.id) > MAX_STRING_LENGTH:
            raise SubjectError(f"Subject.id is longer than {MAX_STRING_LENGTH} characters")
        if not isinstance(self.attributes, Mapping):
            raise SubjectError(
                f"Subject.attributes must be a mapping, got {type(self.attributes).__name__}"
            )
        if len(self.attributes) > MAX_ATTRIBUTES:
            raise SubjectError(f"a subject may have at most {MAX_ATTRIBUTES} attributes")
        normalized: dict[str, object] = {}
        for name, value in self.attributes.items():
            if not isinstance(name, str) or not name:
                raise SubjectError(f"attribute names must be non-empty strings, got {name!r}")
            if name == "id":
                raise SubjectError(
                    "'id' is reserved for Subject.id; rename the attribute (r.sub.id is the id)"
                )
            try:
                normal = normalize_value(value, where=f"subject attribute {name!r}")
            except MalformedValueError as exc:
                raise SubjectError(str(exc)) from None
            _check_size(name, normal)
            normalized[name] = normal
        # Snapshot: later mutation of the caller's dict cannot change this subject.
        object.__setattr__(self, "attributes", dict(self.attributes))
        object.__setattr__(self, "_normalized", normalized)
        canonical = json.dumps(
            [self.id, {k: _jsonable(v) for k, v in sorted(normalized.items())}],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        object.__setattr__(
            self, "_fingerprint", hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical id and attributes: the plan cache key."""
        return self._fingerprint

    def attribute(self, name: str) -> object:
        """The normalized attribute value (a scalar, a tuple, or ``ABSENT``)."""
        if name == "id":
            return self.id
        return self._normalized.get(name, ABSENT)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Subject) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)


def _check_size(name: str, value: object) -> None:
    items = value if isinstance(value, tuple) else (value,)
    if len(items) > MAX_LIST_LENGTH:
        raise SubjectError(f"subject attribute {name!r} has more than {MAX_LIST_LENGTH} items")
    for item in items:
        if isinstance(item, str) and len(item) > MAX_STRING_LENGTH:
            raise SubjectError(
                f"subject attribute {name!r} holds a string longer than {MAX_STRING_LENGTH}"
            )


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else (None if value is ABSENT else value)


def require_subject(subject: object) -> Subject:
    """Return ``subject`` if it is a :class:`Subject`, else raise :class:`SubjectError`."""
    if subject is None:
        raise SubjectError("no subject given: every retrieval needs a Subject (fail closed)")
    if not isinstance(subject, Subject):
        raise SubjectError(f"expected a ragguard.Subject, got {type(subject).__name__}")
    return subject
