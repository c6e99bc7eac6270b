"""Canonical JSON: the bytes a provenance signature covers are stable and documented."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ragguard as rg
from ragguard.provenance import CanonicalizationError, ProvenanceCheck, Signer, canonical_json

KEY = "unit-test-key-0123456789abcdef"
TEXT = "Salary bands for L5 engineers are reviewed every April."

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
metadata_dicts = st.dictionaries(
    st.text(max_size=8).filter(lambda key: key != "provenance"), json_values, max_size=6
)


def _reordered(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys inserted in a shuffled order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: _reordered(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [_reordered(item, rng) for item in value]
    return value


def test_canonical_form_is_sorted_compact_utf8() -> None:
    """Keys sorted, no whitespace, non-ASCII written as UTF-8, integral floats as ints."""
    value = {"b": [1.0, 2.5, -0.0], "a": "\u00e9t\u00e9", "c": None, "d": {"y": 1, "x": True}}
    assert canonical_json(value) == (
        '{"a":"\u00e9t\u00e9","b":[1,2.5,0],"c":null,"d":{"x":true,"y":1}}'.encode()
    )


def test_keys_sort_by_code_point() -> None:
    """Object keys are ordered by Unicode code point (uppercase before lowercase, emoji last)."""
    value = {"\U0001f600": 1, "\u00e9": 2, "a": 3, "B": 4}
    assert canonical_json(value) == '{"B":4,"a":3,"\u00e9":2,"\U0001f600":1}'.encode()


@given(metadata_dicts, st.randoms(use_true_random=False))
def test_canonical_bytes_do_not_depend_on_dict_order(
    metadata: dict[str, Any], rng: random.Random
) -> None:
    """Inserting the same keys in any order, at any depth, gives the same bytes."""
    assert canonical_json(_reordered(metadata, rng)) == canonical_json(metadata)


@given(metadata_dicts, st.randoms(use_true_random=False))
def test_signature_verifies_after_reordering_and_a_json_round_trip(
    metadata: dict[str, Any], rng: random.Random
) -> None:
    """A chunk signed once verifies after its metadata is reordered and re-serialised."""
    signed = Signer(key=KEY, key_id="k1").sign(TEXT, metadata)
    stored = json.loads(json.dumps(_reordered(signed, rng)))
    verdict = ProvenanceCheck(keys={"k1": KEY}).verify(TEXT, stored)
    assert verdict.status == "verified"


@pytest.mark.parametrize(
    ("signed_value", "stored_value"),
    [(2, 2.0), (2.0, 2), (0, -0.0), (-7.0, -7), (10**15, 1e15)],
)
def test_integral_float_and_int_are_one_value(signed_value: float, stored_value: float) -> None:
    """A number the store returns as int instead of float (or back) still verifies."""
    signer = Signer(key=KEY, key_id="k1")
    signed = signer.sign(TEXT, {"level": signed_value})
    stored = {**signed, "level": stored_value}
    assert ProvenanceCheck(keys={"k1": KEY}).verify(TEXT, stored).status == "verified"
    assert canonical_json(signed_value) == canonical_json(stored_value)


def test_non_integral_floats_keep_their_value() -> None:
    """2.5 and 2 are different values and give different signatures."""
    signer = Signer(key=KEY, key_id="k1")
    signed = signer.sign(TEXT, {"level": 2.5})
    verdict = ProvenanceCheck(keys={"k1": KEY}).verify(TEXT, {**signed, "level": 2})
    assert verdict.reason == "metadata changed"
    assert canonical_json(0.1) == b"0.1"


def test_booleans_are_not_numbers() -> None:
    """``true`` and ``1`` canonicalise differently, as ragguard's filters treat them."""
    assert canonical_json(True) != canonical_json(1)
    signed = Signer(key=KEY, key_id="k1").sign(TEXT, {"public": True})
    verdict = ProvenanceCheck(keys={"k1": KEY}).verify(TEXT, {**signed, "public": 1})
    assert verdict.reason == "metadata changed"


def test_no_unicode_normalisation() -> None:
    """Precomposed and decomposed accents are different values: no NFC before signing."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert canonical_json(composed) != canonical_json(decomposed)
    signed = Signer(key=KEY, key_id="k1").sign(TEXT, {"dept": composed})
    verdict = ProvenanceCheck(keys={"k1": KEY}).verify(TEXT, {**signed, "dept": decomposed})
    assert verdict.reason == "metadata changed"


def test_text_is_hashed_without_normalisation() -> None:
    """The text hash is over the exact code points: a decomposed copy does not verify."""
    signed = Signer(key=KEY, key_id="k1").sign("caf\u00e9 menu", {})
    verdict = ProvenanceCheck(keys={"k1": KEY}).verify("cafe\u0301 menu", signed)
    assert verdict.reason == "text hash mismatch"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"score": math.nan}, "value.score"),
        ({"score": math.inf}, "value.score"),
        ({"tags": {"a", "b"}}, "value.tags"),
        ({"blob": b"\x00"}, "value.blob"),
        ({"when": datetime(2025, 1, 1, tzinfo=timezone.utc)}, "value.when"),
        ({"nested": {1: "x"}}, "value.nested"),
        ({"items": [1, "\ud800"]}, "value"),
    ],
)
def test_values_outside_json_are_refused_naming_the_field(value: Any, path: str) -> None:
    """NaN, sets, bytes, datetimes, non-string keys and lone surrogates have no canonical form."""
    with pytest.raises(CanonicalizationError) as info:
        canonical_json(value)
    assert str(info.value).startswith(path)
    assert isinstance(info.value, rg.ProvenanceError)


def test_tuples_and_lists_are_the_same_array() -> None:
    """A tuple canonicalises like the list a JSON store returns for it."""
    assert canonical_json({"groups": ("eng", "ops")}) == canonical_json({"groups": ["eng", "ops"]})


# -- the orjson fast path equals the reference encoder byte for byte -------------------

_REFERENCE = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _reference_bytes(value: Any) -> bytes:
    """The documented form written by the standard library alone (the pre-orjson path)."""
    from ragguard._canonical import canonical_value

    return _REFERENCE.encode(canonical_value(value)).encode("utf-8")


# Every code point a user's metadata can hold (control characters, DEL, U+2028/2029,
# non-BMP, lone surrogates), integers on both sides of orjson's 64-bit limit, and
# nesting: what the fast path sees is the whole input space, not a friendly grammar.
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
plain_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400])
    | any_text
)
plain_values = st.recursive(
    plain_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=16,
)


@given(plain_values)
def test_fast_path_matches_the_reference_encoder(value: Any) -> None:
    """orjson writes plain trees exactly as the json encoder does, or both refuse."""
    try:
        expected = _reference_bytes(value)
    except (CanonicalizationError, UnicodeEncodeError):
        with pytest.raises(CanonicalizationError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"k": "".join(chr(c) for c in range(0x00, 0x80))},
        {"\u2028": "\u2029", "\x7f": "\ud7ff\ue000\U0010ffff"},
        {"big": 2**64, "small": -(2**63) - 1, "edge": [2**63 - 1, -(2**63)]},
        {"b": 1, "a": {"d": [True, None], "c": ""}, "\U0001f600": 0, "Z": 0, "é": 0},
    ],
)
def test_fast_path_on_the_edges(value: Any) -> None:
    assert canonical_json(value) == _reference_bytes(value)


def test_lone_surrogate_refused_on_the_fast_path() -> None:
    with pytest.raises(CanonicalizationError, match="lone surrogate"):
        canonical_json({"k": "a\ud800b"})
