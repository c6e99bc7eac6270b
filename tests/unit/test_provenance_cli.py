"""``ragguard ingest``: JSONL in, signed chunks in an EdgeStore out, honest exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragguard._cli import main
from ragguard.provenance import ProvenanceCheck

KEY = "cli-test-key-0123456789abcdef0123"
ENV = "RAGGUARD_SIGNING_KEY"


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return _write_jsonl(
        tmp_path / "chunks.jsonl",
        [
            {
                "id": f"doc-{i}",
                "text": f"Runbook step {i}",
                "metadata": {"tenant": "acme", "level": i},
            }
            for i in range(5)
        ],
    )


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, KEY)
    return KEY


def _open(path: Path) -> Any:
    from ragguard.stores.edge import EdgeStore

    return EdgeStore.open(str(path))


def test_ingest_signs_every_chunk_into_a_new_store(
    corpus: Path, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0; the store is created and every chunk in it verifies under the key."""
    from ragguard.stores.base import point_id

    shard = tmp_path / "shard"
    code = main(["ingest", str(corpus), "--store", str(shard), "--key-id", "k1", "--dim", "64"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ingested 5 chunks" in out
    store = _open(shard)
    try:
        assert store.dim == 64
        stored = store.get([str(point_id(f"doc-{i}")) for i in range(5)])
        check = ProvenanceCheck(keys={"k1": key})
        assert [check.verify(s.text, s.metadata).status for s in stored] == ["verified"] * 5
        assert {s.metadata["provenance"]["doc_id"] for s in stored} == {
            f"doc-{i}" for i in range(5)
        }
    finally:
        store.close()
    assert key not in out + err


def test_ingest_appends_to_an_existing_store(
    corpus: Path, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run opens the existing store and takes its dimension."""
    shard = tmp_path / "shard"
    assert (
        main(["ingest", str(corpus), "--store", str(shard), "--key-id", "k1", "--dim", "32"]) == 0
    )
    more = _write_jsonl(tmp_path / "more.jsonl", [{"text": "late addition"}])
    assert main(["ingest", str(more), "--store", str(shard), "--key-id", "k1"]) == 0
    assert "dimension 32" in capsys.readouterr().out


def test_missing_key_is_a_usage_error(
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the key variable: exit 2, a message naming the variable, nothing written."""
    monkeypatch.delenv(ENV, raising=False)
    shard = tmp_path / "shard"
    assert main(["ingest", str(corpus), "--store", str(shard), "--key-id", "k1"]) == 2
    assert ENV in capsys.readouterr().err
    assert not shard.exists()


def test_key_is_read_from_the_named_variable(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--key-env picks another environment variable."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("MY_INGEST_KEY", KEY)
    shard = tmp_path / "shard"
    args = [
        "ingest",
        str(corpus),
        "--store",
        str(shard),
        "--key-id",
        "k1",
        "--key-env",
        "MY_INGEST_KEY",
    ]
    assert main(args) == 0


def test_key_cannot_be_given_on_the_command_line(corpus: Path, tmp_path: Path) -> None:
    """There is no --key option (arguments show in ps and shell history)."""
    argv = ["ingest", str(corpus), "--store", str(tmp_path / "s"), "--key-id", "k1", "--key", KEY]
    assert main(argv) == 2


def test_short_key_is_a_usage_error(
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key under 16 bytes: exit 2, and the message does not echo it."""
    monkeypatch.setenv(ENV, "tiny-secret")
    assert main(["ingest", str(corpus), "--store", str(tmp_path / "s"), "--key-id", "k1"]) == 2
    err = capsys.readouterr().err
    assert "too short" in err
    assert "tiny-secret" not in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"metadata": {}}', '"text" must be a string'),
        ('{"text": "t", "metadata": [1]}', '"metadata" must be an object'),
        ('{"text": "t", "id": true}', '"id" must be a string or an integer'),
        ('{"text": "t", "vector": ["a"]}', '"vector" must be a list of numbers'),
        ('{"text": "t", "colour": "red"}', "unknown fields ['colour']"),
        ('{"text": "t", "metadata": {"x": NaN}}', "metadata.x"),
    ],
)
def test_malformed_line_is_a_usage_error_and_nothing_is_written(
    tmp_path: Path, key: str, line: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad line anywhere: exit 2 naming file:line, and the store is not even created."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n\n' + line + "\n", encoding="utf-8")
    shard = tmp_path / "shard"
    assert main(["ingest", str(path), "--store", str(shard), "--key-id", "k1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err
    assert message in err
    assert not shard.exists()


def test_unreadable_or_empty_file_is_a_usage_error(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file or one without chunks: exit 2 with a message."""
    shard = tmp_path / "shard"
    assert (
        main(["ingest", str(tmp_path / "absent.jsonl"), "--store", str(shard), "--key-id", "k1"])
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert main(["ingest", str(empty), "--store", str(shard), "--key-id", "k1"]) == 2
    assert "no chunks" in capsys.readouterr().err


def test_dimension_mismatches_are_usage_errors(
    corpus: Path, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dim against an existing store, or vectors of the wrong size: exit 2."""
    shard = tmp_path / "shard"
    assert (
        main(["ingest", str(corpus), "--store", str(shard), "--key-id", "k1", "--dim", "16"]) == 0
    )
    assert main(["ingest", str(corpus), "--store", str(shard), "--key-id", "k1", "--dim", "8"]) == 2
    assert "does not match" in capsys.readouterr().err
    vectors = _write_jsonl(tmp_path / "v.jsonl", [{"text": "t", "vector": [1.0, 0.0]}])
    assert main(["ingest", str(vectors), "--store", str(shard), "--key-id", "k1"]) == 2
    assert "dimension [2]" in capsys.readouterr().err


def test_given_vectors_are_used(key: str, tmp_path: Path) -> None:
    """A line's own vector is stored instead of a hash embedding."""
    from ragguard.stores.base import Pushdown

    vectors = _write_jsonl(
        tmp_path / "v.jsonl",
        [
            {"id": 1, "text": "a", "vector": [1.0, 0.0, 0.0, 0.0]},
            {"id": 2, "text": "b", "vector": [0.0, 1.0, 0.0, 0.0]},
        ],
    )
    shard = tmp_path / "shard"
    assert (
        main(["ingest", str(vectors), "--store", str(shard), "--key-id", "k1", "--dim", "4"]) == 0
    )
    store = _open(shard)
    try:
        [best, _] = store.search([0.0, 1.0, 0.0, 0.0], 2, Pushdown(native=None, exact=True))
        assert best.text == "b"
    finally:
        store.close()


def test_wrong_vectors_for_a_new_store_create_nothing(
    key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Vectors that do not fit --dim are refused before the store is created."""
    vectors = _write_jsonl(tmp_path / "v.jsonl", [{"text": "t", "vector": [1.0, 0.0]}])
    shard = tmp_path / "shard"
    assert (
        main(["ingest", str(vectors), "--store", str(shard), "--key-id", "k1", "--dim", "4"]) == 2
    )
    assert "dimension [2]; the store holds dimension 4" in capsys.readouterr().err
    assert not shard.exists()


def test_store_path_that_is_a_file_is_a_usage_error(
    corpus: Path, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--store pointing at a regular file: exit 2, the file is left alone."""
    not_a_shard = tmp_path / "notes.txt"
    not_a_shard.write_text("keep me", encoding="utf-8")
    assert main(["ingest", str(corpus), "--store", str(not_a_shard), "--key-id", "k1"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not_a_shard.read_text(encoding="utf-8") == "keep me"
