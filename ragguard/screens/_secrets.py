"""``SecretsScreen``: credentials and personal data on their way to a lower clearance.

Access policies trust labels. A chunk labelled ``level 0`` that quotes an AWS key, a
customer's card number or an employee's SSN is released to everyone the label allows.
This screen looks at the text itself and withholds (or flags) such chunks for subjects
below ``min_clearance``; subjects at or above it get them as the policy says.

Findings are reported by kind (``aws_access_key``, ``credit_card``, ...), never by
value: reasons go to traces and the audit log. Validators keep false positives down:
card numbers must pass the Luhn check and carry a known issuer prefix, IBANs the
ISO 13616 mod-97 check and their country's length, generic ``key=value`` secrets a
minimum entropy and no placeholder look.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragguard.screens._base import CLEAN, ScreenAction, ScreenResult

if TYPE_CHECKING:
    from ragguard.results import Hit

__all__ = ["Finding", "SecretsScreen"]

DEFAULT_MAX_CHARS = 200_000


@dataclass(frozen=True)
class Finding:
    """One secret or personal datum: its kind and where it is in the text (no value)."""

    kind: str
    start: int
    end: int


_SECRET_PATTERNS: dict[str, str] = {
    "aws_access_key": r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
    "aws_secret_key": r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
    "gitlab_token": r"\bglpat-[A-Za-z0-9_-]{20,}",
    "slack_token": r"\bxox[abposre]-[A-Za-z0-9-]{10,}|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
    "stripe_key": r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b",
    "google_api_key": r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
    "llm_api_key": r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{32,}",
    "jwt": r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    "private_key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
}
_GENERIC_SECRET = re.compile(
    r"(?i)\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|client[_-]?secret|access[_-]?token|auth[_-]?token|"
    r"bearer|token|password|passwd|pwd|db[_-]?pass(?:word)?)\b[\"']?\s*(?:[:=]|\bis\b)\s*[\"']?([^\s\"'`,;<>]{8,200})"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{?|\{\{?|%|<|\[)|x{4,}|\*{3,}|\.{3}|changeme|change_me|your[_-]|example|redacted|dummy|"
    r"placeholder|os\.environ|getenv|process\.env|secretref|vault:|env:|none$|null$|true$|false$"
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24})\b"
)
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
_US_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")

# ISO 13616 lengths for the countries that issue most IBANs; others must be 15-34.
_IBAN_LENGTHS: Mapping[str, int] = {
    "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "TR": 26, "AE": 23, "SA": 24, "IL": 23, "QA": 29, "UA": 29,
}  # fmt: skip

SECRET_KINDS = frozenset({*_SECRET_PATTERNS, "generic_secret"})
PII_KINDS = frozenset({"email", "credit_card", "iban", "us_ssn"})
ALL_KINDS = SECRET_KINDS | PII_KINDS


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (card numbers)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_issuer_known(digits: str) -> bool:
    length, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return length in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16  # Mastercard
    if two in (34, 37):
        return length == 15  # American Express
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= length <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= length <= 19  # JCB
    return two in (36, 38) or 300 <= int(digits[:3]) <= 305  # Diners Club


def iban_valid(candidate: str) -> bool:
    """ISO 13616: known length for the country, and the mod-97 check equals 1."""
    iban = candidate.replace(" ", "")
    expected = _IBAN_LENGTHS.get(iban[:2])
    if (expected is not None and len(iban) != expected) or not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_secret(value: str) -> bool:
    if _PLACEHOLDER.search(value):
        return False
    has_letter = any(c.isalpha() for c in value)
    has_digit = any(c.isdigit() for c in value)
    if len(value) >= 20:
        return _entropy(value) >= 3.5
    return has_letter and has_digit and _entropy(value) >= 2.8


class SecretsScreen:
    """Withholds (or flags) credentials and personal data for subjects below a clearance.

    ::

        screen = rg.SecretsScreen(min_clearance=3)            # clearance 3+ see them
        guard = rg.Guard(policy, store, screens=[screen])

        rg.SecretsScreen().scan("key AKIAIOSFODNN7EXAMPLE")
        # -> ScreenResult(flagged=True, reason='secrets/PII: aws_access_key', action='deny')

    * ``kinds`` — what to look for (default: all of :attr:`SECRET_KINDS` and
      :attr:`PII_KINDS`); e.g. ``SecretsScreen.SECRET_KINDS`` for credentials only.
    * ``min_clearance`` / ``clearance_attribute`` — subjects whose numeric
      ``attributes[clearance_attribute]`` is at least ``min_clearance`` are not screened.
      A subject without a numeric clearance is screened (fail closed). ``None`` (the
      default) screens everyone.
    * ``allowed_email_domains`` — email addresses in these domains (and their
      subdomains) are not findings, e.g. your own ``support@`` addresses.
    * ``action`` — ``"deny"`` (withhold) or ``"flag"`` (release and record).
    """

    name = "secrets"
    SECRET_KINDS = SECRET_KINDS
    PII_KINDS = PII_KINDS

    def __init__(
        self,
        *,
        kinds: Iterable[str] | None = None,
        min_clearance: float | None = None,
        clearance_attribute: str = "clearance",
        allowed_email_domains: Iterable[str] = (),
        action: ScreenAction = "deny",
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        selected = ALL_KINDS if kinds is None else frozenset(kinds)
        unknown = selected - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}; choose from {sorted(ALL_KINDS)}")
        if not selected:
            raise ValueError("kinds must name at least one kind of secret or personal data")
        if min_clearance is not None and (
            isinstance(min_clearance, bool) or not isinstance(min_clearance, (int, float))
        ):
            raise TypeError(f"min_clearance must be a number or None, got {min_clearance!r}")
        if action not in ("deny", "flag"):
            raise ValueError(f"action must be 'deny' or 'flag', got {action!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
        self.kinds = selected
        self.min_clearance = min_clearance
        self.clearance_attribute = clearance_attribute
        self.allowed_email_domains = tuple(d.lower().lstrip("@.") for d in allowed_email_domains)
        self.action: ScreenAction = action
        self.max_chars = max_chars
        self._patterns = tuple(
            (kind, re.compile(pattern))
            for kind, pattern in _SECRET_PATTERNS.items()
            if kind in selected
        )

    def __repr__(self) -> str:
        return (
            f"SecretsScreen(kinds={len(self.kinds)}, min_clearance={self.min_clearance!r}, "
            f"action={self.action!r})"
        )

    def __call__(self, hit: Hit) -> ScreenResult:
        """Screen the hit's text unless its subject holds the clearance."""
        if self._cleared(hit):
            return CLEAN
        result = self.scan(hit.text)
        if result.flagged and self.min_clearance is not None:
            reason = result.reason.replace(
                "secrets/PII:",
                f"secrets/PII for a subject below clearance {self.min_clearance}:",
                1,
            )
            return ScreenResult(True, reason, result.action)
        return result

    def scan(self, text: str) -> ScreenResult:
        """The verdict on ``text`` regardless of who would receive it."""
        if len(text) > self.max_chars:
            return ScreenResult(
                True,
                f"secrets/PII: text longer than {self.max_chars} characters was not screened",
                self.action,
            )
        kinds = sorted({finding.kind for finding in self.findings(text)})
        if not kinds:
            return CLEAN
        return ScreenResult(True, "secrets/PII: " + ", ".join(kinds), self.action)

    def findings(self, text: str) -> list[Finding]:
        """Every secret or personal datum found in ``text``, in order of position."""
        return sorted(self._findings(text), key=lambda f: (f.start, f.kind))

    # -- internals -----------------------------------------------------------------

    def _cleared(self, hit: Hit) -> bool:
        if self.min_clearance is None:
            return False
        subject = getattr(hit, "subject", None)
        attributes = getattr(subject, "attributes", None)
        if not isinstance(attributes, Mapping):
            return False
        clearance = attributes.get(self.clearance_attribute)
        if isinstance(clearance, bool) or not isinstance(clearance, (int, float)):
            return False
        return clearance >= self.min_clearance

    def _findings(self, text: str) -> Iterator[Finding]:
        for kind, pattern in self._patterns:
            for match in pattern.finditer(text):
                yield Finding(kind, match.start(), match.end())
        kinds = self.kinds
        if "generic_secret" in kinds:
            for match in _GENERIC_SECRET.finditer(text):
                if _looks_secret(match.group(1)):
                    yield Finding("generic_secret", match.start(1), match.end(1))
        if "email" in kinds and "@" in text:
            for match in _EMAIL.finditer(text):
                if not self._email_allowed(match.group(1).lower()):
                    yield Finding("email", match.start(), match.end())
        if "credit_card" in kinds:
            for match in _CARD.finditer(text):
                digits = re.sub(r"[ -]", "", match.group(0))
                if (
                    13 <= len(digits) <= 19
                    and len(set(digits)) > 1
                    and luhn_valid(digits)
                    and _card_issuer_known(digits)
                ):
                    yield Finding("credit_card", match.start(), match.end())
        if "iban" in kinds:
            for match in _IBAN.finditer(text):
                if iban_valid(match.group(1)):
                    yield Finding("iban", match.start(), match.end())
        if "us_ssn" in kinds:
            for match in _US_SSN.finditer(text):
                yield Finding("us_ssn", match.start(), match.end())

    def _email_allowed(self, domain: str) -> bool:
        return any(domain == d or domain.endswith("." + d) for d in self.allowed_email_domains)
