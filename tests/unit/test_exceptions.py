"""The exception rule (ragguard/exceptions.py): data errors are in the tree, argument bugs are not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ragguard as rg
from ragguard.stores.base import point_id
from ragguard.testing import HashEmbedder


@pytest.mark.parametrize("bad_id", [True, False, -1, 1.5, ["a"], b"raw"])
def test_point_id_raises_store_error_for_ids_no_store_can_hold(bad_id: Any) -> None:
    """Before: TypeError (bool), ValueError (negative), AttributeError (float, list, bytes)."""
    with pytest.raises(rg.StoreError, match="chunk id") as info:
        point_id(bad_id)
    assert not isinstance(info.value, (TypeError, ValueError))


@pytest.mark.parametrize("good_id", ["doc-1", "42", 42, 0, "6f1c5a8e-3c1b-4bb8-9a53-2b7f0e8d4c11"])
def test_point_id_accepts_strings_and_non_negative_integers(good_id: str | int) -> None:
    assert point_id(good_id) == point_id(good_id)


@pytest.mark.parametrize("bad_id", [True, -7, 2.5])
def test_upsert_with_a_bad_chunk_id_raises_store_error_and_writes_nothing(
    tmp_path: Path, bad_id: Any
) -> None:
    """One ``except RagGuardError`` around upsert catches a bad id, as it does a bad vector."""
    store = rg.EdgeStore.create(tmp_path / "shard", dim=4)
    try:
        chunks = [
            rg.Chunk(text="fine", metadata={}, vector=[1.0, 0, 0, 0], id="ok"),
            rg.Chunk(text="bad", metadata={}, vector=[0, 1.0, 0, 0], id=bad_id),
        ]
        with pytest.raises(rg.RagGuardError):
            store.upsert(chunks)
        with pytest.raises(rg.RagGuardError):  # a bad vector: the same tree
            store.upsert([rg.Chunk(text="x", metadata={}, vector=[1.0, 2.0], id="short")])
        assert store.count() == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda tmp: rg.EdgeStore.create(tmp / "s", dim=0), ValueError),
        (lambda tmp: rg.EdgeStore.create(tmp / "s", dim=4, distance="hamming"), ValueError),
        (lambda tmp: HashEmbedder(dim=0), ValueError),
        (lambda tmp: rg.ReleaseBudget(max_chunks=0), ValueError),
        (lambda tmp: rg.ScreenResult(flagged=1, reason="x"), TypeError),  # type: ignore[arg-type]
        (lambda tmp: rg.SecretsScreen(action="block"), ValueError),  # type: ignore[arg-type]
    ],
)
def test_constructor_argument_bugs_stay_type_and_value_errors(
    tmp_path: Path, build: Any, error: type[Exception]
) -> None:
    """Wrong arguments to a constructor are programming errors, outside the tree."""
    with pytest.raises(error) as info:
        build(tmp_path)
    assert not isinstance(info.value, rg.RagGuardError)
