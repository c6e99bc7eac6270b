"""Provenance tags: what is signed, how, and the key holder that signs.

A tag lives in ``metadata["provenance"]``::

    {
        "source": "s3://docs/handbook.pdf",   # metadata["source"], or null
        "doc_id": "handbook",                 # the document the chunk came from
        "chunk_index": 3,                     # position of the chunk in that document
        "text_sha256": "9f86d0...",           # SHA-256 of the chunk text (UTF-8)
        "metadata_sha256": "4b2a11...",       # SHA-256 of the canonical metadata
        "ingested_at": "2025-01-31T12:00:00+00:00",
        "key_id": "2025-01",
        "signature": "c0ffee...",             # HMAC-SHA256, hex
    }

The signature is HMAC-SHA256 under the key named by ``key_id`` over::

    b"ragguard-provenance-v1\\n" + canonical_json({
        "metadata": <every metadata field except "provenance">,
        "provenance": <every tag field except "signature">,
    })

so it covers the text (through ``text_sha256``), every metadata field, and every tag
field. ``metadata_sha256`` is redundant for security (the metadata is signed anyway); it
lets a verifier say *what* changed: the metadata (``metadata changed``) or the tag and
signature themselves (``bad signature``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from ragguard._canonical import CanonicalizationError, canonical_json
from ragguard.exceptions import ProvenanceError

__all__ = [
    "MIN_KEY_BYTES",
    "PROVENANCE_KEY",
    "SIGNATURE_DOMAIN",
    "Signer",
    "SigningKey",
    "check_key_id",
    "metadata_sha256",
    "signing_message",
    "text_sha256",
    "unsigned_metadata",
    "utc_timestamp",
]

PROVENANCE_KEY: Final = "provenance"
"""The metadata field that holds the tag."""

SIGNATURE_DOMAIN: Final = b"ragguard-provenance-v1\n"
"""Prefix of every signed message: binds signatures to this scheme and its version."""

MIN_KEY_BYTES: Final = 16
"""The shortest key accepted (32 random bytes are recommended)."""


class SigningKey:
    """An HMAC-SHA256 key that never shows itself.

    Holds only a keyed HMAC state (not the key bytes), renders as ``<redacted>`` in
    ``repr``, tracebacks with locals and debuggers, and refuses to be pickled.
    """

    __slots__ = ("_template",)

    def __init__(self, key: bytes | bytearray | memoryview | str, *, key_id: str) -> None:
        if isinstance(key, str):
            raw = key.encode("utf-8")
        elif isinstance(key, (bytes, bytearray, memoryview)):
            raw = bytes(key)
        else:
            raise ProvenanceError(
                f"the key for key id {key_id!r} must be bytes or str, got {type(key).__name__}"
            )
        if len(raw) < MIN_KEY_BYTES:
            raise ProvenanceError(
                f"the key for key id {key_id!r} is too short: use at least {MIN_KEY_BYTES} "
                "bytes (32 random bytes recommended, e.g. secrets.token_hex(32))"
            )
        self._template = hmac.new(raw, digestmod=hashlib.sha256)

    def mac(self, message: bytes) -> str:
        """The hex HMAC-SHA256 of ``message`` under this key."""
        mac = self._template.copy()
        mac.update(message)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return "<redacted>"

    def __reduce__(self) -> Any:
        raise TypeError("signing keys cannot be pickled or copied out of the process")


def check_key_id(key_id: object) -> str:
    """``key_id`` if it is a non-empty string, else :class:`ProvenanceError`."""
    if not isinstance(key_id, str) or not key_id:
        raise ProvenanceError(f"a key id must be a non-empty string, got {key_id!r}")
    return key_id


def text_sha256(text: str) -> str:
    """The hex SHA-256 of ``text`` encoded as UTF-8 (no normalisation).

    Raises ``UnicodeEncodeError`` for text that is not valid Unicode (lone surrogates).
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def metadata_sha256(metadata: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the canonical JSON of ``metadata`` without its tag."""
    return hashlib.sha256(canonical_json(unsigned_metadata(metadata), "metadata")).hexdigest()


def unsigned_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` without the provenance tag."""
    return {key: value for key, value in metadata.items() if key != PROVENANCE_KEY}


def signing_message(metadata: Mapping[str, Any], tag: Mapping[str, Any]) -> bytes:
    """The exact bytes the signature covers (see the module docstring).

    ``metadata`` may still hold the tag and ``tag`` its signature: both are left out.
    Raises :class:`~ragguard._canonical.CanonicalizationError`.
    """
    body = {
        "metadata": unsigned_metadata(metadata),
        PROVENANCE_KEY: {key: value for key, value in tag.items() if key != "signature"},
    }
    return SIGNATURE_DOMAIN + canonical_json(body, "chunk")


def utc_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ISO 8601 in UTC, to the second."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is None:
        raise ProvenanceError(
            "ingested_at must be timezone-aware (e.g. datetime.now(timezone.utc))"
        )
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


class Signer:
    """Signs chunks at ingestion with one HMAC key, named by its key id.

    ::

        signer = Signer(key=os.environ["RAGGUARD_SIGNING_KEY"], key_id="2025-01")
        metadata = signer.sign(text, {"tenant": "acme", "source": "wiki/page"},
                               doc_id="wiki/page", chunk_index=0)
        metadata["provenance"]["key_id"]          # '2025-01'

    ``key`` is bytes or a string (used as UTF-8), at least 16 bytes. The signer never
    reveals it: ``repr(signer)`` is ``Signer(key_id='2025-01')`` and error messages
    name the key id only. Rotate keys by signing new chunks with a new key id and
    giving :class:`~ragguard.provenance.ProvenanceCheck` both keys until old chunks are
    re-ingested. Usually driven by :class:`~ragguard.provenance.Ingestor`.
    """

    __slots__ = ("_key", "_key_id")

    def __init__(self, *, key: bytes | str, key_id: str) -> None:
        self._key_id = check_key_id(key_id)
        self._key = SigningKey(key, key_id=self._key_id)

    @property
    def key_id(self) -> str:
        """The id verifiers look the key up by."""
        return self._key_id

    def tag(
        self,
        text: str,
        metadata: Mapping[str, Any],
        *,
        source: str | None = None,
        doc_id: str | None = None,
        chunk_index: int = 0,
        ingested_at: datetime | None = None,
    ) -> dict[str, Any]:
        """The provenance tag for a chunk (any existing tag in ``metadata`` is ignored).

        Raises :class:`ProvenanceError` when the text or metadata cannot be signed
        (non-JSON values, NaN, lone surrogates); the message names the field.
        """
        if isinstance(chunk_index, bool) or not isinstance(chunk_index, int) or chunk_index < 0:
            raise ProvenanceError(
                f"chunk_index must be a non-negative integer, got {chunk_index!r}"
            )
        if not isinstance(text, str):
            raise ProvenanceError(f"chunk text must be a string, got {type(text).__name__}")
        try:
            text_digest = text_sha256(text)
        except UnicodeEncodeError:
            raise ProvenanceError(
                "the chunk text holds a lone surrogate; it is not valid Unicode and cannot be signed"
            ) from None
        try:
            tag: dict[str, Any] = {
                "source": source,
                "doc_id": doc_id,
                "chunk_index": chunk_index,
                "text_sha256": text_digest,
                "metadata_sha256": metadata_sha256(metadata),
                "ingested_at": utc_timestamp(ingested_at),
                "key_id": self._key_id,
            }
            tag["signature"] = self._key.mac(signing_message(metadata, tag))
        except CanonicalizationError as exc:
            raise ProvenanceError(f"cannot sign this chunk: {exc}") from None
        return tag

    def sign(
        self,
        text: str,
        metadata: Mapping[str, Any],
        *,
        source: str | None = None,
        doc_id: str | None = None,
        chunk_index: int = 0,
        ingested_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A copy of ``metadata`` with a fresh tag under ``"provenance"`` (see :meth:`tag`)."""
        signed = unsigned_metadata(metadata)
        signed[PROVENANCE_KEY] = self.tag(
            text,
            signed,
            source=source,
            doc_id=doc_id,
            chunk_index=chunk_index,
            ingested_at=ingested_at,
        )
        return signed

    def __repr__(self) -> str:
        return f"Signer(key_id={self._key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a Signer holds a secret key and cannot be pickled")
