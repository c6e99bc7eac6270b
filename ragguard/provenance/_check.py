"""``ProvenanceCheck``: verify a hit's tag before the guard releases it."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

from ragguard._canonical import CanonicalizationError
from ragguard.exceptions import ProvenanceError
from ragguard.provenance._signing import (
    PROVENANCE_KEY,
    SigningKey,
    check_key_id,
    metadata_sha256,
    signing_message,
    text_sha256,
)
from ragguard.results import ProvenanceVerdict

__all__ = [
    "BAD_SIGNATURE",
    "MALFORMED_TAG",
    "METADATA_CHANGED",
    "TEXT_HASH_MISMATCH",
    "UNKNOWN_KEY",
    "UNSIGNED",
    "ProvenanceCheck",
    "ProvenanceMode",
]

ProvenanceMode = Literal["require", "verify", "off"]

# Decision reasons (they end up in traces and audit records: never any key material).
TEXT_HASH_MISMATCH: Final = "text hash mismatch"
METADATA_CHANGED: Final = "metadata changed"
BAD_SIGNATURE: Final = "bad signature"
UNKNOWN_KEY: Final = "unknown key"
MALFORMED_TAG: Final = "malformed tag"
UNSIGNED: Final = "unsigned"

_UNSIGNED_RELEASED: Final = ProvenanceVerdict("unsigned", True)
_UNSIGNED_DENIED: Final = ProvenanceVerdict("unsigned", False, UNSIGNED)


class ProvenanceCheck:
    """Verifies provenance tags on retrieved chunks; plug it into a :class:`~ragguard.Guard`.

    ::

        check = ProvenanceCheck(keys={"2025-01": old_key, "2025-07": new_key}, mode="require")
        guard = Guard(policy, store, provenance=check)
        for hit in guard.search(alice, vector, k=5):
            print(hit.provenance.status, hit.provenance.tag["source"])   # 'verified', ...

    Modes:

    * ``"require"`` (default) — only chunks with a valid tag under a known key are
      released; unsigned and tampered chunks are withheld.
    * ``"verify"`` — unsigned chunks are released with status ``"unsigned"`` (for a
      corpus that is being migrated); tampered chunks are withheld. Note that someone
      who can write to the store can also *delete* a tag, which makes a tampered chunk
      look unsigned: only ``"require"`` protects against that.
    * ``"off"`` — nothing is checked (status ``"off"``); tags still travel to the caller.

    A withheld chunk's reason says what failed: ``text hash mismatch`` (the text is not
    the signed text), ``metadata changed`` (a metadata field, e.g. an ACL attribute, was
    altered, added or removed), ``bad signature`` (the tag's own fields or its
    signature were altered), ``unknown key`` (no key for the tag's key id),
    ``malformed tag`` (the tag is not a tag) or ``unsigned`` (no tag, in ``require``).

    Verification is constant-time in the signature (:func:`hmac.compare_digest`) and
    costs a few microseconds per hit. Keys are never shown: ``repr`` lists key ids only.
    """

    __slots__ = ("_keys", "_mode")

    def __init__(
        self,
        keys: Mapping[str, bytes | str] | None = None,
        *,
        mode: ProvenanceMode = "require",
    ) -> None:
        if mode not in get_args(ProvenanceMode):
            raise ValueError(f"mode must be 'require', 'verify' or 'off', got {mode!r}")
        if keys is not None and not isinstance(keys, Mapping):
            raise ProvenanceError(
                f"keys must be a mapping of key id to key, got {type(keys).__name__}"
            )
        self._mode: ProvenanceMode = mode
        self._keys: dict[str, SigningKey] = {
            check_key_id(key_id): SigningKey(key, key_id=key_id)
            for key_id, key in (keys or {}).items()
        }
        if mode != "off" and not self._keys:
            raise ProvenanceError(
                f"provenance mode {mode!r} needs at least one key: "
                "ProvenanceCheck(keys={key_id: key}, mode=...)"
            )

    @property
    def mode(self) -> ProvenanceMode:
        """``"require"``, ``"verify"`` or ``"off"``."""
        return self._mode

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The key ids this check accepts, sorted."""
        return tuple(sorted(self._keys))

    def verify(self, text: str, metadata: Mapping[str, Any]) -> ProvenanceVerdict:
        """The verdict on one chunk: ``text`` as returned by the store, and its metadata.

        Never raises for anything found in the store: a broken tag is a verdict.
        """
        raw_tag = metadata.get(PROVENANCE_KEY)
        tag = dict(raw_tag) if isinstance(raw_tag, Mapping) else None
        if self._mode == "off":
            return ProvenanceVerdict("off", True, None, tag)
        if raw_tag is None:
            return _UNSIGNED_RELEASED if self._mode == "verify" else _UNSIGNED_DENIED
        if tag is None:
            return ProvenanceVerdict("tampered", False, MALFORMED_TAG)
        key_id, signature, signed_text_hash = (
            tag.get("key_id"),
            tag.get("signature"),
            tag.get("text_sha256"),
        )
        if not (
            isinstance(key_id, str)
            and isinstance(signature, str)
            and isinstance(signed_text_hash, str)
        ):
            return ProvenanceVerdict("tampered", False, MALFORMED_TAG, tag)
        key = self._keys.get(key_id)
        if key is None:
            return ProvenanceVerdict("unknown key", False, UNKNOWN_KEY, tag)
        if not _same(_text_digest(text), signed_text_hash):
            return ProvenanceVerdict("tampered", False, TEXT_HASH_MISMATCH, tag)
        try:
            message = signing_message(metadata, tag)
        except CanonicalizationError as exc:
            # The signer refuses such values, so they were put there after signing.
            changed = exc.path.startswith("chunk.metadata")
            return ProvenanceVerdict(
                "tampered", False, METADATA_CHANGED if changed else MALFORMED_TAG, tag
            )
        if _same(key.mac(message), signature):
            return ProvenanceVerdict("verified", True, None, tag)
        return ProvenanceVerdict("tampered", False, _why_signature_failed(metadata, tag), tag)

    def __repr__(self) -> str:
        return f"ProvenanceCheck(mode={self._mode!r}, key_ids={list(self.key_ids)!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a ProvenanceCheck holds secret keys and cannot be pickled")


def _text_digest(text: str) -> str:
    try:
        return text_sha256(text)
    except UnicodeEncodeError:
        return ""  # not valid Unicode, so not what was signed: matches no recorded hash


def _same(expected: str, found: str) -> bool:
    # compare_digest needs ASCII str or bytes; ``found`` comes from the store, so encode.
    return hmac.compare_digest(expected.encode("ascii"), found.encode("utf-8", "replace"))


def _why_signature_failed(metadata: Mapping[str, Any], tag: Mapping[str, Any]) -> str:
    """Name what changed after signing: the metadata, or the tag and signature themselves."""
    recorded = tag.get("metadata_sha256")
    try:
        current = metadata_sha256(metadata)
    except CanonicalizationError:
        return METADATA_CHANGED
    if isinstance(recorded, str) and _same(current, recorded):
        return BAD_SIGNATURE
    return METADATA_CHANGED
