"""Who is asking: a bearer JWT verified with PyJWT, mapped to a :class:`~ragguard.Subject`.

This is the only place the gateway learns the caller's identity. The token's signature
is checked against a JWKS URL (fetched with a timeout, cached, refreshed at most once
per :data:`JWKS_REFRESH_INTERVAL_S` for an unknown key id) or static public keys; the
algorithm must be on the configured allow-list (asymmetric only: never ``none``, never
HMAC, so a public key cannot be used as an HMAC secret); ``iss``, ``aud``, ``exp`` and
``nbf`` are checked with a bounded leeway, and the configured claims must be present.
Anything wrong raises :class:`~ragguard.exceptions.IdentityError`, whose message names
the failed check and never quotes the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWKClientConnectionError,
    PyJWKClientError,
    PyJWTError,
)

from ragguard.exceptions import IdentityError, SubjectError
from ragguard.gateway._config import IdentitySettings, secret_from_env
from ragguard.subject import Subject

__all__ = ["JWKS_REFRESH_INTERVAL_S", "Identity", "JwtVerifier", "KeysUnavailableError"]

JWKS_REFRESH_INTERVAL_S = 30.0
"""An unknown ``kid`` re-fetches the key set at most this often (rotation without a
refetch storm: a flood of made-up key ids cannot hammer the identity provider)."""


class KeysUnavailableError(IdentityError):
    """The key set could not be fetched (timeout, refused, malformed): fail closed (503)."""


@dataclass(frozen=True)
class Identity:
    """A verified caller: the subject, the OAuth client it came through, the expiry."""

    subject: Subject
    client_id: str
    expires_at: int | None
    issuer: str


class _JwksKeys:
    """Keys from a JWKS URL: cached, fetched with a timeout, refreshed sparingly."""

    def __init__(self, settings: IdentitySettings) -> None:
        assert settings.jwks_url is not None
        self._client = PyJWKClient(
            settings.jwks_url,
            cache_jwk_set=settings.jwks_cache_s > 0,
            lifespan=max(settings.jwks_cache_s, 1.0),
            cache_keys=False,
            timeout=settings.jwks_timeout_s,
        )
        self._lock = threading.Lock()
        self._last_refresh = float("-inf")

    def key(self, kid: str) -> PyJWK:
        try:
            found = self._find(self._client.get_signing_keys(), kid)
            if found is not None:
                return found
            with self._lock:
                now = time.monotonic()
                if now - self._last_refresh < JWKS_REFRESH_INTERVAL_S:
                    raise IdentityError("unknown key id")
                self._last_refresh = now
            found = self._find(self._client.get_signing_keys(refresh=True), kid)
        except PyJWKClientConnectionError:
            raise KeysUnavailableError("the identity provider's key set is unreachable") from None
        except PyJWKClientError as exc:
            # An empty or malformed key set: nothing can be verified.
            raise KeysUnavailableError(f"the key set is unusable: {type(exc).__name__}") from None
        if found is None:
            raise IdentityError("unknown key id")
        return found

    def ready(self) -> None:
        try:
            self._client.get_signing_keys()
        except PyJWKClientError as exc:
            raise KeysUnavailableError(f"the key set is unusable: {type(exc).__name__}") from None

    @staticmethod
    def _find(keys: list[PyJWK], kid: str) -> PyJWK | None:
        return next((key for key in keys if key.key_id == kid), None)


class _StaticKeys:
    """Public keys listed in the configuration, by key id."""

    def __init__(self, settings: IdentitySettings) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        self._keys: dict[str, Any] = {}
        for entry in settings.keys:
            if entry.pem_file is not None:
                try:
                    pem = entry.pem_file.read_bytes()
                except OSError as exc:
                    raise IdentityError(
                        f"identity key {entry.kid!r}: cannot read {entry.pem_file}: "
                        f"{exc.strerror or exc}"
                    ) from None
            else:
                assert entry.pem_env is not None
                pem = secret_from_env(entry.pem_env, f"identity key {entry.kid!r}").encode()
            try:
                self._keys[entry.kid] = load_pem_public_key(pem)
            except ValueError:
                raise IdentityError(
                    f"identity key {entry.kid!r} is not a PEM public key (a private key or a "
                    "shared secret is refused)"
                ) from None

    def key(self, kid: str) -> Any:
        found = self._keys.get(kid)
        if found is None:
            raise IdentityError("unknown key id")
        return found


class JwtVerifier:
    """Verifies bearer JWTs and maps their claims to a :class:`~ragguard.Subject`::

        verifier = JwtVerifier(config.identity)
        identity = verifier.verify(token)        # raises IdentityError
        identity.subject                          # Subject(id=..., attributes=...)

    Thread-safe; :meth:`verify` may block on a JWKS fetch (at most ``jwks_timeout_s``),
    so async callers run it in a worker thread.
    """

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        self._keys: _JwksKeys | _StaticKeys = (
            _JwksKeys(settings) if settings.jwks_url is not None else _StaticKeys(settings)
        )

    def ready(self) -> None:
        """Raise :class:`KeysUnavailableError` if the key set cannot be had now."""
        if isinstance(self._keys, _JwksKeys):
            self._keys.ready()

    def verify(self, token: str) -> Identity:
        """The identity in ``token``, or :class:`IdentityError` saying which check failed."""
        settings = self.settings
        if not token or len(token) > settings.max_token_bytes:
            raise IdentityError("token missing or longer than max_token_bytes")
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise IdentityError("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in settings.algorithms:
            raise IdentityError("token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise IdentityError("token has no key id (kid)")
        key = self._keys.key(kid)
        if isinstance(key, PyJWK):
            # A key that declares its algorithm is used with that algorithm only.
            declared = getattr(key, "_jwk_data", {}).get("alg")
            if declared is not None and declared != algorithm:
                raise IdentityError("token algorithm does not match its key")
            key = key.key
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": list(settings.required_claims), "verify_signature": True},
            )
        except ExpiredSignatureError:
            raise IdentityError("token expired") from None
        except ImmatureSignatureError:
            raise IdentityError("token not yet valid") from None
        except InvalidAudienceError:
            raise IdentityError("token audience not accepted") from None
        except InvalidIssuerError:
            raise IdentityError("token issuer not accepted") from None
        except MissingRequiredClaimError as exc:
            raise IdentityError(f"token lacks required claim {exc.claim!r}") from None
        except (InvalidSignatureError, InvalidAlgorithmError):
            raise IdentityError("token signature invalid") from None
        except PyJWTError as exc:
            raise IdentityError(f"token rejected ({type(exc).__name__})") from None
        return Identity(
            subject=self.subject_from_claims(claims),
            client_id=self._client_id(claims),
            expires_at=claims.get("exp") if isinstance(claims.get("exp"), int) else None,
            issuer=str(claims.get("iss", "")),
        )

    def subject_from_claims(self, claims: Mapping[str, Any]) -> Subject:
        """The :class:`Subject` the configured mapping makes of verified ``claims``."""
        mapping = self.settings.subject
        subject_id = _claim(claims, mapping.id_claim)
        if not isinstance(subject_id, str) or not subject_id.strip():
            raise IdentityError(f"token claim {mapping.id_claim!r} is not a non-empty string")
        attributes: dict[str, Any] = {}
        for attribute, claim in mapping.attributes.items():
            value = _claim(claims, claim)
            if value is _MISSING:
                if attribute in mapping.required_attributes:
                    raise IdentityError(f"token lacks claim {claim!r} (subject attribute)")
                continue
            attributes[attribute] = value
        try:
            return Subject(id=subject_id, attributes=attributes)
        except SubjectError as exc:
            raise IdentityError(f"token claims do not form a subject: {exc}") from None

    def _client_id(self, claims: Mapping[str, Any]) -> str:
        for name in self.settings.client_id_claims:
            value = claims.get(name)
            if isinstance(value, str) and value:
                return value
        return ""


_MISSING = object()


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value
