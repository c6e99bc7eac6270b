"""verify_audit_log: every kind of tampering is caught, and the first broken record named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_audit_log import KEY, make_retrieval

from ragguard.audit import JsonlAuditLog, audit_files, read_audit_records, verify_audit_log
from ragguard.audit._record import canonical_json
from ragguard.exceptions import AuditError


def write_log(
    path: Path, count: int, key: bytes | None = KEY, **options: object
) -> tuple[int, str]:
    """Append ``count`` records; returns the writer's head checkpoint."""
    with JsonlAuditLog(path, key=key, **options) as log:  # type: ignore[arg-type]
        for n in range(count):
            log.record(make_retrieval(f"user-{n}"))
        return log.head


def read_lines(path: Path) -> list[bytes]:
    """The file's lines, newline included."""
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, content: list[bytes]) -> None:
    """Replace the file's content with ``content``."""
    path.write_bytes(b"".join(content))


def rehash(record: dict[str, object], key: bytes | None) -> dict[str, object]:
    """What a forger without the key can do: recompute a plain SHA-256 hash."""
    record = dict(record)
    record.pop("hash", None)
    record["hash"] = hashlib.sha256(canonical_json(record).encode()).hexdigest()
    return record


def encode(record: dict[str, object]) -> bytes:
    """One record as a log line."""
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_an_untouched_log_verifies(tmp_path: Path, key: bytes | None) -> None:
    """An intact chain verifies and reports its record count and head."""
    path = tmp_path / "audit.jsonl"
    head = write_log(path, 5, key)
    result = verify_audit_log(path, key=key)
    assert result.ok
    assert bool(result)
    assert result.records == 5
    assert result.head == head
    assert result.summary().startswith("OK: 5 records")


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_an_edited_field_is_caught_at_its_line(tmp_path: Path, key: bytes | None) -> None:
    """Changing any value (here: who the subject was) breaks that record's hash."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 5, key)
    content = read_lines(path)
    content[2] = content[2].replace(b'"subject_id":"user-2"', b'"subject_id":"user-9"')
    write_lines(path, content)
    result = verify_audit_log(path, key=key)
    assert not result.ok
    assert result.error is not None
    assert (result.error.file, result.error.line) == (path, 3)
    assert "hash mismatch" in result.error.reason
    assert result.records == 2


def test_an_edited_released_chunk_is_caught(tmp_path: Path) -> None:
    """Rewriting which rule released a chunk is an edit like any other."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = read_lines(path)
    content[1] = content[1].replace(b"line 1: p, alice", b"line 9: p, alice", 1)
    write_lines(path, content)
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.line == 2


def test_a_deleted_record_is_caught_at_the_next_line(tmp_path: Path) -> None:
    """Removing a record leaves a gap in seq and a broken link."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 5)
    content = read_lines(path)
    del content[2]
    write_lines(path, content)
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.line == 3
    assert "missing" in result.error.reason


def test_reordered_records_are_caught(tmp_path: Path) -> None:
    """Swapping two records breaks the order of seq and the links."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 5)
    content = read_lines(path)
    content[1], content[2] = content[2], content[1]
    write_lines(path, content)
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.line == 2


def test_a_duplicated_record_is_caught(tmp_path: Path) -> None:
    """Replaying a line twice is caught as a repeat."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = read_lines(path)
    content.insert(2, content[1])
    write_lines(path, content)
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert (result.error.line, "duplicated" in result.error.reason) == (3, True)


def test_a_file_cut_inside_a_record_is_caught(tmp_path: Path) -> None:
    """A truncated last line is reported as truncated, at that line."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    path.write_bytes(path.read_bytes()[:-25])
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.line == 4
    assert "truncated" in result.error.reason


def test_records_cut_from_the_end_are_caught_against_a_checkpoint(tmp_path: Path) -> None:
    """Cutting whole records off the end leaves a valid prefix: a kept head exposes it."""
    path = tmp_path / "audit.jsonl"
    head = write_log(path, 5)
    write_lines(path, read_lines(path)[:3])
    assert verify_audit_log(path, key=KEY).ok  # a shorter chain is still a chain
    result = verify_audit_log(path, key=KEY, expect_head=head)
    assert not result.ok
    assert result.error is not None
    assert "cut from the end" in result.error.reason
    text_head = f"{head[0]}:{head[1]}"
    assert not verify_audit_log(path, key=KEY, expect_head=text_head).ok


def test_a_checkpoint_from_earlier_still_verifies_a_grown_log(tmp_path: Path) -> None:
    """A head kept yesterday stays valid while the log keeps growing."""
    path = tmp_path / "audit.jsonl"
    head = write_log(path, 3)
    write_log(path, 4)
    assert verify_audit_log(path, key=KEY, expect_head=head).ok


def test_a_truncated_rotated_file_is_caught_at_the_next_file(tmp_path: Path) -> None:
    """Cutting the end of an older file breaks the link into the file after it."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 12, max_bytes=6000)
    files = audit_files(path)
    write_lines(files[0], read_lines(files[0])[:-1])
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert (result.error.file, result.error.line) == (files[1], 1)


def test_a_missing_rotated_file_is_caught(tmp_path: Path) -> None:
    """Deleting a whole file in the middle of a chain is caught where the chain resumes."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 12, max_bytes=6000)
    files = audit_files(path)
    assert len(files) >= 3
    files[1].unlink()
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.file == files[2]
    assert "missing" in result.error.reason


def test_deleting_the_oldest_files_is_caught_unless_retention_is_declared(tmp_path: Path) -> None:
    """A chain that does not start at seq 0 fails, unless allow_partial_start says why."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 12, max_bytes=6000)
    audit_files(path)[0].unlink()
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert "earlier records" in result.error.reason
    assert verify_audit_log(path, key=KEY, allow_partial_start=True).ok


def test_an_inserted_record_with_a_recomputed_hash_is_caught_when_keyed(tmp_path: Path) -> None:
    """Without the key a forger cannot make an inserted record verify, however they hash it."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    content = read_lines(path)
    previous = json.loads(content[1])
    forged = json.loads(content[1])
    forged.update(subject_id="mallory", seq=previous["seq"] + 1, prev_hash=previous["hash"])
    for alg in ("hmac-sha256", "sha256"):
        forged["alg"] = alg
        write_lines(path, [*content[:2], encode(rehash(forged, None)), *content[2:]])
        result = verify_audit_log(path, key=KEY)
        assert result.error is not None
        assert result.error.line == 3


def test_rewriting_an_unkeyed_chain_needs_a_checkpoint_to_be_caught(tmp_path: Path) -> None:
    """Unkeyed, a forger can rehash every later record; only a kept head exposes that."""
    path = tmp_path / "audit.jsonl"
    head = write_log(path, 4, key=None)
    records = [json.loads(line) for line in read_lines(path)]
    records[1]["subject_id"] = "mallory"
    for n in range(1, len(records)):
        records[n]["prev_hash"] = records[n - 1]["hash"]
        records[n] = rehash(records[n], None)
    write_lines(path, [encode(r) for r in records])
    assert verify_audit_log(path).ok
    result = verify_audit_log(path, expect_head=head)
    assert result.error is not None
    assert "differs from the checkpoint" in result.error.reason


def test_a_keyed_log_needs_the_right_key(tmp_path: Path) -> None:
    """No key or the wrong key: the very first record fails, with a message saying so."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    missing = verify_audit_log(path)
    assert missing.error is not None
    assert "needs the key" in missing.error.reason
    wrong = verify_audit_log(path, key=b"not the key")
    assert wrong.error is not None
    assert wrong.error.line == 1


def test_garbage_lines_are_named(tmp_path: Path) -> None:
    """A line that is not JSON, or JSON that is not a record, is reported as such."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    content = read_lines(path)
    write_lines(path, [content[0], b"not json\n", content[1]])
    broken = verify_audit_log(path, key=KEY)
    assert broken.error is not None
    assert "not valid JSON" in broken.error.reason
    write_lines(path, [content[0], b'{"seq": 1}\n'])
    invalid = verify_audit_log(path, key=KEY)
    assert invalid.error is not None
    assert "not a valid audit record" in invalid.error.reason
    write_lines(path, [content[0], b"\n"])
    empty = verify_audit_log(path, key=KEY)
    assert empty.error is not None
    assert "empty line" in empty.error.reason


def test_an_unreadable_path_is_a_break_not_a_crash(tmp_path: Path) -> None:
    """A path that does not exist is reported as the first broken 'record'."""
    result = verify_audit_log(tmp_path / "absent.jsonl")
    assert result.error is not None
    assert "cannot read" in result.error.reason


def test_several_paths_verify_as_one_chain_in_order(tmp_path: Path) -> None:
    """Explicit paths are read in the order given, each expanded to its rotated files."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 12, max_bytes=6000)
    files = audit_files(path)
    assert verify_audit_log([*files[:1], path], key=KEY).records == 12
    reordered = verify_audit_log([files[1], files[0]], key=KEY)
    assert not reordered.ok


def test_a_malformed_checkpoint_is_a_usage_error(tmp_path: Path) -> None:
    """expect_head must be '<seq>:<hash>'."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    with pytest.raises(ValueError, match="expect_head"):
        verify_audit_log(path, key=KEY, expect_head="latest")


# -- the bytes on disk, not what json.loads makes of them ---------------------------------


def test_a_duplicate_key_forgery_is_caught(tmp_path: Path) -> None:
    """Regression: prepending ``"subject_id":"mallory",`` to a record of a keyed log still
    verified (json.loads keeps the last duplicate, so the hash matched), while a reader
    that keeps the first duplicate reads mallory."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = read_lines(path)
    assert content[1].startswith(b"{")
    content[1] = b'{"subject_id":"mallory",' + content[1][1:]
    write_lines(path, content)
    result = verify_audit_log(path, key=KEY)
    assert not result.ok
    assert result.error is not None
    assert (result.error.file, result.error.line) == (path, 2)
    assert "duplicate key 'subject_id'" in result.error.reason
    assert result.records == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"subject_id":"user-1"', b'"subject_id": "user-1"'),  # spacing
        (b'"subject_id":"user-1"', b'"subject_id":"\\u0075ser-1"'),  # another escape
        (b'"k":5,', b'"k":5 ,'),
        (b"}\n", b"}\r\n"),  # a CRLF line ending
        (b"}\n", b"} \n"),
    ],
)
def test_a_rewritten_line_that_parses_the_same_is_caught(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    """Regression: the verifier hashed the record re-serialised after json.loads, so any
    rewrite that parses to the same record (spacing, escapes, key order) verified."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    content = read_lines(path)
    assert old in content[1]
    content[1] = content[1].replace(old, new, 1)
    write_lines(path, content)
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.line == 2


def test_reordered_keys_are_caught(tmp_path: Path) -> None:
    """The same members in another order are another line: caught, though the hash holds."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3, key=None)
    content = read_lines(path)
    record = json.loads(content[1])
    reordered = {key: record[key] for key in reversed(list(record))}
    content[1] = (json.dumps(reordered, separators=(",", ":")) + "\n").encode()
    write_lines(path, content)
    result = verify_audit_log(path)
    assert result.error is not None
    assert result.error.line == 2
    assert "not the canonical form" in result.error.reason


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_finite_number_is_a_broken_record_not_a_crash(
    tmp_path: Path, constant: bytes
) -> None:
    """Regression: a record holding NaN made verify_audit_log raise ValueError (and the
    CLI exit 2, "usage") instead of reporting a broken record."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 2, key=None)
    content = read_lines(path)
    start = content[1].index(b'"duration_ms":') + len(b'"duration_ms":')
    end = content[1].index(b",", start)
    content[1] = content[1][:start] + constant + content[1][end:]
    write_lines(path, content)
    result = verify_audit_log(path)
    assert not result.ok
    assert result.error is not None
    assert result.error.line == 2
    assert constant.decode() in result.error.reason


def test_a_deeply_nested_line_is_a_broken_record_not_a_crash(tmp_path: Path) -> None:
    """Regression: a deeply nested line made verify_audit_log raise RecursionError."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    content = read_lines(path)
    write_lines(path, [content[0], b'{"seq":' + b"[" * 200_000 + b"]" * 200_000 + b"}\n"])
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert result.error.line == 2
    assert "nested too deeply" in result.error.reason


@pytest.mark.parametrize(
    "line",
    [
        b'{"seq":0,"seq":0}\n',
        b'{"a":NaN}\n',
        b"\xff\xfe{}\n",
        b"[" * 100_000 + b"\n",
    ],
)
def test_reading_a_bad_line_raises_audit_error(tmp_path: Path, line: bytes) -> None:
    """read_audit_records (export, replay) fails on such lines with AuditError only."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    path.write_bytes(path.read_bytes() + line)
    with pytest.raises(AuditError, match=":2: not an audit record"):
        list(read_audit_records(path))


def test_a_hash_that_is_not_hex_is_a_broken_record(tmp_path: Path) -> None:
    """A non-ASCII hash made hmac.compare_digest raise TypeError; now it is a break."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    record = json.loads(read_lines(path)[0])
    record["hash"] = "é" * 64
    write_lines(path, [encode(record)])
    result = verify_audit_log(path, key=KEY)
    assert result.error is not None
    assert "64 lowercase hex digits" in result.error.reason


def test_records_with_non_ascii_text_and_flags_still_verify(tmp_path: Path) -> None:
    """The writer's own lines are canonical: non-ASCII ids, rotation, many records."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=KEY, max_bytes=6000) as log:
        for n in range(6):
            log.record(make_retrieval(f'zoë-{n}-\u2028-"quoted"'))
    result = verify_audit_log(path, key=KEY)
    assert result.ok, result.summary()
    assert result.records == 6


def test_the_writer_refuses_to_extend_a_rewritten_last_line(tmp_path: Path) -> None:
    """A log whose last line was forged with a duplicate key is not extended either."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    content = read_lines(path)
    content[-1] = b'{"subject_id":"mallory",' + content[-1][1:]
    write_lines(path, content)
    with pytest.raises(AuditError, match="not an audit record"):
        JsonlAuditLog(path, key=KEY)
    content[-1] = content[-1].replace(b'{"subject_id":"mallory",', b"{", 1)
    content[-1] = content[-1].replace(b'"k":5,', b'"k": 5,', 1)
    write_lines(path, content)
    with pytest.raises(AuditError, match="does not verify"):
        JsonlAuditLog(path, key=KEY)
