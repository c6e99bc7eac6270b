"""Every error ragguard raises, in one tree.

Catch :class:`RagGuardError` to handle them all; catch a subclass to handle one kind::

    RagGuardError
    ├── PolicyError                 the policy cannot be used
    │   ├── PolicyLoadError         a model or policy file is missing or malformed
    │   └── UnsupportedPolicyError  the model uses a construct ragguard cannot compile
    ├── SubjectError                no subject, or a subject that is not well-formed
    │   └── IdentityError           a bearer token could not be verified (gateway: 401)
    ├── QueryError                  a bad query vector or k
    ├── StoreError                  the vector store failed or answered nonsense
    │   └── ReplicaInUseError       another process holds this read-replica directory
    ├── ProvenanceError             signing or verification could not be carried out
    ├── AuditError                  an audit record could not be written or verified
    ├── BudgetError                 the release budget could not be checked (backend failed)
    │   └── BudgetExceededError     the subject used up its release budget for the window
    ├── ConfigError                 a configuration file (``ragguard serve``) is unusable
    └── MissingDependencyError      an optional dependency is not installed (says what to install)

Every error means *nothing was released*: ragguard fails closed. Messages say what was
wrong and what to do, and never contain chunk text, query text or key material.

The rule for what is in the tree:

* **Handling data raises only these.** Anything raised while ragguard works on data —
  a subject, a query vector or ``k``, the chunks given to ``upsert`` (their ids and
  vectors), what a store returns, policy and audit files, signatures, a budget backend
  — is a :class:`RagGuardError` subclass, so one ``except RagGuardError`` around
  ``guard.search``, ``store.upsert`` or ``Ingestor.ingest`` catches every failure.
* **Programming errors in arguments stay ``TypeError`` / ``ValueError``**, as in the
  standard library and httpx: a constructor or setting given the wrong type or an
  out-of-range value (``Guard(policy, store=None)``, ``EdgeStore.create(dim=0)``,
  ``HashEmbedder(dim=-1)``, ``ReleaseBudget(max_chunks=0)``, ``ScreenResult(flagged=1)``).
  These are raised when the object is built, before any data is handled, and are
  bugs to fix in the calling code rather than conditions to handle at run time.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "BudgetError",
    "BudgetExceededError",
    "ConfigError",
    "IdentityError",
    "MissingDependencyError",
    "PolicyError",
    "PolicyLoadError",
    "ProvenanceError",
    "QueryError",
    "RagGuardError",
    "ReplicaInUseError",
    "StoreError",
    "SubjectError",
    "UnsupportedPolicyError",
]


class RagGuardError(Exception):
    """Base class of every error raised by ragguard."""


class PolicyError(RagGuardError):
    """The policy cannot be used."""


class PolicyLoadError(PolicyError):
    """A Casbin model or policy is missing, unreadable or malformed."""


class UnsupportedPolicyError(PolicyError):
    """The model uses a construct outside the language ragguard compiles.

    Raised when the policy is loaded, never at query time. The message names the
    construct and where it is (``model.conf`` line or policy line).
    """


class SubjectError(RagGuardError):
    """No subject was given, or the subject is not well-formed."""


class IdentityError(SubjectError):
    """A bearer token is missing, malformed, expired, not for us, or badly signed.

    The gateway answers 401 and searches nothing. The message names the check that
    failed (``"token expired"``, ``"unknown key id"``) and never quotes the token.
    """


class QueryError(RagGuardError):
    """The query vector or ``k`` is unusable (wrong dimension, NaN/inf, k out of range)."""


class StoreError(RagGuardError):
    """The vector store raised, timed out, or returned something unusable.

    Also raised before a write for data no store can hold: a vector of the wrong
    dimension or with NaN/infinity, or an unusable chunk id.
    """


class ReplicaInUseError(StoreError):
    """``EdgeStore.open_replica`` was given a directory another process (or another open
    store) holds: each worker needs its own replica directory. The gateway takes the
    next free slot when it sees this."""


class ProvenanceError(RagGuardError):
    """Signing or verifying provenance tags could not be carried out."""


class AuditError(RagGuardError):
    """An audit record could not be written, or an audit log failed verification."""


class BudgetError(RagGuardError):
    """The release budget could not be checked (its backend failed); nothing was released."""


class BudgetExceededError(BudgetError):
    """Releasing this search's chunks would exceed the subject's release budget.

    Nothing was released. ``subject_id``, ``requested`` (chunks this search would have
    released), ``max_chunks`` and ``window_seconds`` say which limit was hit.
    """

    def __init__(
        self, subject_id: str, requested: int, max_chunks: int, window_seconds: float
    ) -> None:
        self.subject_id = subject_id
        self.requested = requested
        self.max_chunks = max_chunks
        self.window_seconds = window_seconds
        super().__init__(
            f"release budget exceeded for subject {subject_id!r}: this search would release "
            f"{requested} chunk(s), the budget allows {max_chunks} per {window_seconds:g} s; "
            "nothing was released (ask for fewer chunks or wait for the window to move)"
        )


class ConfigError(RagGuardError):
    """A configuration file is missing, malformed, or names something unusable.

    The message names the file and the key (``"gateway.toml: identity.audience: ..."``);
    a secret read from the environment is named by its variable, never quoted.
    """


class MissingDependencyError(RagGuardError, ImportError):
    """An optional dependency is missing; the message names the package to install."""

    def __init__(self, package: str, purpose: str) -> None:
        self.package = package
        super().__init__(f"{purpose} needs the '{package}' package: pip install {package}")
