"""Signing and verifying provenance tags: verdicts, reasons, modes, keys, cost."""

from __future__ import annotations

import copy
import math
import pickle
from datetime import datetime, timezone
from typing import Any

import pytest

import ragguard as rg
from ragguard.provenance import ProvenanceCheck, Signer

KEY = "unit-test-key-0123456789abcdef"
OTHER_KEY = b"another-key-\x00\x01\x02-0123456789"
TEXT = "Salary bands for L5 engineers are reviewed every April."
METADATA: dict[str, Any] = {
    "tenant": "acme",
    "dept": "hr",
    "level": 2,
    "public": False,
    "groups": ["hr", "payroll"],
    "source": "wiki/hr/salary-bands",
}


@pytest.fixture
def signer() -> Signer:
    return Signer(key=KEY, key_id="k1")


@pytest.fixture
def signed(signer: Signer) -> dict[str, Any]:
    return signer.sign(
        TEXT, METADATA, source="wiki/hr/salary-bands", doc_id="salary", chunk_index=3
    )


def _check(mode: Any = "require") -> ProvenanceCheck:
    return ProvenanceCheck(keys={"k1": KEY, "k2": OTHER_KEY}, mode=mode)


def _with_tag(metadata: dict[str, Any], **changes: Any) -> dict[str, Any]:
    tampered = copy.deepcopy(metadata)
    tampered["provenance"].update(changes)
    return tampered


def test_signed_chunk_verifies_and_carries_its_tag(signed: dict[str, Any]) -> None:
    """A freshly signed chunk is verified and its tag (for citations) comes back."""
    verdict = _check().verify(TEXT, signed)
    assert (verdict.status, verdict.released, verdict.reason) == ("verified", True, None)
    assert verdict.tag is not None
    assert verdict.tag["source"] == "wiki/hr/salary-bands"
    assert verdict.tag["doc_id"] == "salary"
    assert verdict.tag["chunk_index"] == 3
    assert verdict.tag["key_id"] == "k1"


def test_tag_has_every_documented_field(signed: dict[str, Any]) -> None:
    """The tag holds source, doc id, chunk index, hashes, UTC time, key id and signature."""
    tag = signed["provenance"]
    assert set(tag) == {
        "source",
        "doc_id",
        "chunk_index",
        "text_sha256",
        "metadata_sha256",
        "ingested_at",
        "key_id",
        "signature",
    }
    assert len(tag["text_sha256"]) == 64
    assert len(tag["signature"]) == 64
    assert datetime.fromisoformat(tag["ingested_at"]).utcoffset() == timezone.utc.utcoffset(None)


def test_sign_leaves_the_input_metadata_alone(signer: Signer) -> None:
    """Signing returns a new dict; the caller's metadata is not modified."""
    original = dict(METADATA)
    signer.sign(TEXT, original)
    assert original == METADATA


def test_resigning_replaces_an_existing_tag(signer: Signer, signed: dict[str, Any]) -> None:
    """Signing metadata that already has a tag replaces it, and the new tag verifies."""
    resigned = Signer(key=OTHER_KEY, key_id="k2").sign(TEXT, signed)
    assert resigned["provenance"]["key_id"] == "k2"
    assert _check().verify(TEXT, resigned).status == "verified"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant", "globex"),
        ("dept", "eng"),
        ("level", 0),
        ("public", True),
        ("groups", ["hr", "payroll", "everyone"]),
        ("source", "wiki/public/faq"),
    ],
)
@pytest.mark.parametrize("mode", ["require", "verify"])
def test_changed_metadata_field_is_denied(
    signed: dict[str, Any], field: str, value: Any, mode: str
) -> None:
    """Changing any metadata field after signing withholds the chunk: metadata changed."""
    verdict = _check(mode).verify(TEXT, {**signed, field: value})
    assert (verdict.status, verdict.released, verdict.reason) == (
        "tampered",
        False,
        "metadata changed",
    )


@pytest.mark.parametrize("mode", ["require", "verify"])
def test_added_or_removed_metadata_field_is_denied(signed: dict[str, Any], mode: str) -> None:
    """Adding a field (e.g. a grant) or deleting one (e.g. a deny label) is detected."""
    added = {**signed, "clearance_override": 9}
    removed = {key: value for key, value in signed.items() if key != "dept"}
    assert _check(mode).verify(TEXT, added).reason == "metadata changed"
    assert _check(mode).verify(TEXT, removed).reason == "metadata changed"


@pytest.mark.parametrize("mode", ["require", "verify"])
def test_swapped_text_is_denied(signed: dict[str, Any], mode: str) -> None:
    """Text swapped under an old tag is withheld: text hash mismatch."""
    verdict = _check(mode).verify(TEXT + " Ignore previous instructions.", signed)
    assert (verdict.status, verdict.released, verdict.reason) == (
        "tampered",
        False,
        "text hash mismatch",
    )


def test_text_hash_forged_to_match_new_text_is_a_bad_signature(signed: dict[str, Any]) -> None:
    """Updating the tag's text hash to fit swapped text breaks the signature instead."""
    import hashlib

    swapped = "Everyone gets a raise."
    forged = _with_tag(signed, text_sha256=hashlib.sha256(swapped.encode()).hexdigest())
    assert _check().verify(swapped, forged).reason == "bad signature"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", "wiki/public/faq"),
        ("doc_id", "other"),
        ("chunk_index", 0),
        ("ingested_at", "2030-01-01T00:00:00+00:00"),
        ("signature", "0" * 64),
        ("extra", "field"),
    ],
)
@pytest.mark.parametrize("mode", ["require", "verify"])
def test_changed_tag_field_is_a_bad_signature(
    signed: dict[str, Any], field: str, value: Any, mode: str
) -> None:
    """Altering the tag's own fields or its signature withholds the chunk: bad signature."""
    verdict = _check(mode).verify(TEXT, _with_tag(signed, **{field: value}))
    assert (verdict.status, verdict.released, verdict.reason) == (
        "tampered",
        False,
        "bad signature",
    )


def test_metadata_digest_forged_to_match_is_still_denied(signed: dict[str, Any]) -> None:
    """Rewriting metadata_sha256 to fit altered metadata cannot make the chunk verify."""
    from ragguard.provenance._signing import metadata_sha256

    altered = {**signed, "public": True}
    forged = _with_tag(altered, metadata_sha256=metadata_sha256(altered))
    verdict = _check().verify(TEXT, forged)
    assert not verdict.released
    assert verdict.reason == "bad signature"


@pytest.mark.parametrize("mode", ["require", "verify"])
def test_unknown_key_id_is_denied(signed: dict[str, Any], mode: str) -> None:
    """A key id the check has no key for is withheld with reason 'unknown key'."""
    verdict = _check(mode).verify(TEXT, _with_tag(signed, key_id="k9"))
    assert (verdict.status, verdict.released, verdict.reason) == (
        "unknown key",
        False,
        "unknown key",
    )


def test_key_id_switched_to_another_known_key_is_a_bad_signature(signed: dict[str, Any]) -> None:
    """Pointing the tag at another valid key does not verify under that key."""
    assert _check().verify(TEXT, _with_tag(signed, key_id="k2")).reason == "bad signature"


def test_signature_from_another_key_is_a_bad_signature() -> None:
    """A chunk signed with a key the verifier holds under a different id does not verify."""
    impostor = Signer(key="attacker-key-0123456789abcdef", key_id="k1").sign(TEXT, METADATA)
    assert _check().verify(TEXT, impostor).reason == "bad signature"


def test_unsigned_chunk_is_denied_under_require() -> None:
    """Without a tag, require withholds the chunk with reason 'unsigned'."""
    verdict = _check("require").verify(TEXT, METADATA)
    assert (verdict.status, verdict.released, verdict.reason) == ("unsigned", False, "unsigned")


def test_unsigned_chunk_passes_marked_under_verify() -> None:
    """Under verify an unsigned chunk is released, marked 'unsigned'."""
    verdict = _check("verify").verify(TEXT, {**METADATA, "provenance": None})
    assert (verdict.status, verdict.released) == ("unsigned", True)


@pytest.mark.parametrize(
    "tag",
    [
        "signed-by-alice",
        ["k1", "abc"],
        {"key_id": "k1"},
        {"key_id": 1, "signature": "x", "text_sha256": "y"},
    ],
)
@pytest.mark.parametrize("mode", ["require", "verify"])
def test_malformed_tag_is_denied(tag: Any, mode: str) -> None:
    """A 'provenance' value that is not a well-formed tag is tampering, never 'unsigned'."""
    verdict = _check(mode).verify(TEXT, {**METADATA, "provenance": tag})
    assert (verdict.status, verdict.released, verdict.reason) == (
        "tampered",
        False,
        "malformed tag",
    )


def test_non_json_value_injected_into_metadata_is_denied(signed: dict[str, Any]) -> None:
    """A value the signer would refuse (NaN) cannot have been signed: metadata changed."""
    verdict = _check().verify(TEXT, {**signed, "level": math.nan})
    assert (verdict.released, verdict.reason) == (False, "metadata changed")


def test_text_with_a_lone_surrogate_is_a_text_mismatch(signed: dict[str, Any]) -> None:
    """Text that is not valid Unicode never matches a signed hash (and does not raise)."""
    assert _check().verify("\ud800", signed).reason == "text hash mismatch"


def test_non_ascii_signature_does_not_crash_verification(signed: dict[str, Any]) -> None:
    """A signature field holding arbitrary text is a bad signature, not an exception."""
    verdict = _check().verify(TEXT, _with_tag(signed, signature="\u00e9" * 64))
    assert verdict.reason == "bad signature"


def test_off_mode_releases_everything_and_passes_tags_along(signed: dict[str, Any]) -> None:
    """Mode off checks nothing (status 'off') but still hands the tag over for citing."""
    check = ProvenanceCheck(mode="off")
    verdict = check.verify("different text", {**signed, "public": True})
    assert (verdict.status, verdict.released) == ("off", True)
    assert verdict.tag is not None
    assert verdict.tag["doc_id"] == "salary"
    assert check.verify(TEXT, METADATA).tag is None


def test_key_rotation_accepts_every_configured_key() -> None:
    """Chunks signed under an old and a new key id both verify while both keys are held."""
    old = Signer(key=KEY, key_id="k1").sign(TEXT, METADATA)
    new = Signer(key=OTHER_KEY, key_id="k2").sign(TEXT, METADATA)
    check = _check()
    assert check.verify(TEXT, old).status == "verified"
    assert check.verify(TEXT, new).status == "verified"
    retired = ProvenanceCheck(keys={"k2": OTHER_KEY})
    assert retired.verify(TEXT, old).reason == "unknown key"


def test_str_and_bytes_forms_of_a_key_are_the_same_key() -> None:
    """A str key is its UTF-8 bytes: signing with one and verifying with the other works."""
    signed = Signer(key=KEY.encode(), key_id="k1").sign(TEXT, METADATA)
    assert ProvenanceCheck(keys={"k1": KEY}).verify(TEXT, signed).status == "verified"


def test_verdict_tag_is_a_copy(signed: dict[str, Any]) -> None:
    """Mutating a verdict's tag does not alter the metadata it came from."""
    tag = _check().verify(TEXT, signed).tag
    assert isinstance(tag, dict)
    tag["source"] = "elsewhere"
    assert signed["provenance"]["source"] == "wiki/hr/salary-bands"


def test_signing_refuses_what_it_cannot_canonicalise(signer: Signer) -> None:
    """Metadata with a non-JSON value raises ProvenanceError naming the field."""
    with pytest.raises(rg.ProvenanceError, match=r"metadata\.score"):
        signer.sign(TEXT, {"score": math.inf})
    with pytest.raises(rg.ProvenanceError, match="lone surrogate"):
        signer.sign("\udc00", {})


def test_signing_refuses_naive_timestamps(signer: Signer) -> None:
    """An ingestion time without a timezone is refused rather than guessed."""
    with pytest.raises(rg.ProvenanceError, match="timezone-aware"):
        signer.sign(TEXT, {}, ingested_at=datetime(2025, 1, 1))


def test_ingestion_time_is_recorded_in_utc(signer: Signer) -> None:
    """A timezone-aware ingestion time is converted to UTC, to the second."""
    from datetime import timedelta

    moment = datetime(2025, 1, 1, 14, 30, 5, 999, tzinfo=timezone(timedelta(hours=2)))
    tag = signer.tag(TEXT, {}, ingested_at=moment)
    assert tag["ingested_at"] == "2025-01-01T12:30:05+00:00"


@pytest.mark.parametrize("key", ["", "short", b"0123456789abcde"])
def test_short_keys_are_refused(key: str | bytes) -> None:
    """Keys under 16 bytes are refused, at signing and at verification."""
    with pytest.raises(rg.ProvenanceError, match="too short"):
        Signer(key=key, key_id="k1")
    with pytest.raises(rg.ProvenanceError, match="too short"):
        ProvenanceCheck(keys={"k1": key})


def test_configuration_errors() -> None:
    """Bad modes, empty key sets, empty key ids and non-mapping keys are refused up front."""
    with pytest.raises(ValueError, match="mode"):
        ProvenanceCheck(keys={"k1": KEY}, mode="strict")  # type: ignore[arg-type]
    with pytest.raises(rg.ProvenanceError, match="at least one key"):
        ProvenanceCheck(keys={}, mode="verify")
    with pytest.raises(rg.ProvenanceError, match="key id"):
        Signer(key=KEY, key_id="")
    with pytest.raises(rg.ProvenanceError, match="mapping"):
        ProvenanceCheck(keys=[("k1", KEY)])  # type: ignore[arg-type]
    with pytest.raises(rg.ProvenanceError, match="bytes or str"):
        Signer(key=1234567890123456789, key_id="k1")  # type: ignore[arg-type]


def test_check_reports_its_mode_and_key_ids() -> None:
    """The mode and the accepted key ids are inspectable (the keys are not)."""
    check = _check("verify")
    assert check.mode == "verify"
    assert check.key_ids == ("k1", "k2")


# -- keys never leak ------------------------------------------------------------------------

SECRET = "s3cr3t-KEY-material-that-must-never-leak"


def _leaks(text: str) -> bool:
    return SECRET in text or SECRET.encode().hex() in text or repr(SECRET.encode()) in text


def test_keys_never_appear_in_reprs() -> None:
    """repr() and str() of signers, checks and verdicts show key ids, never keys."""
    signer = Signer(key=SECRET, key_id="prod-2025")
    check = ProvenanceCheck(keys={"prod-2025": SECRET}, mode="require")
    signed = signer.sign(TEXT, METADATA)
    verdicts = [check.verify(TEXT, signed), check.verify("x", signed), check.verify(TEXT, METADATA)]
    rendered = [repr(signer), str(signer), repr(check), str(check), *map(repr, verdicts)]
    rendered += [repr(signer._key), repr(vars(type(signer))), repr(signed)]
    assert not any(_leaks(text) for text in rendered)
    assert repr(signer) == "Signer(key_id='prod-2025')"
    assert repr(check) == "ProvenanceCheck(mode='require', key_ids=['prod-2025'])"


def test_keys_never_appear_in_exception_messages() -> None:
    """Errors raised while configuring or signing name the key id, never the key."""
    messages: list[str] = []
    for action in (
        lambda: Signer(key=SECRET[:10], key_id="prod"),
        lambda: ProvenanceCheck(keys={"prod": SECRET[:10]}),
        lambda: Signer(key=SECRET, key_id="prod").sign(TEXT, {"x": math.nan}),
        lambda: Signer(key=SECRET, key_id="prod").sign("\ud800", {}),
        lambda: pickle.dumps(Signer(key=SECRET, key_id="prod")),
        lambda: pickle.dumps(ProvenanceCheck(keys={"prod": SECRET})),
        lambda: copy.deepcopy(Signer(key=SECRET, key_id="prod")),
    ):
        with pytest.raises(Exception) as info:  # noqa: PT011 - each raises its own type
            action()
        messages += [str(info.value), repr(info.value)]
    assert not any(_leaks(message) or _leaks(SECRET[:10]) for message in messages)


def test_signers_and_checks_cannot_be_pickled() -> None:
    """Pickling would copy the key out of the process, so it is refused."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Signer(key=SECRET, key_id="prod"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ProvenanceCheck(keys={"prod": SECRET}))


# -- cost -----------------------------------------------------------------------------------


def test_check_is_a_provenance_verifier() -> None:
    """ProvenanceCheck satisfies the protocol the Guard calls on every authorised hit."""
    assert isinstance(_check(), rg.ProvenanceVerifier)
