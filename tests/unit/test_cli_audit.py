"""``ragguard audit verify | export | replay``: outcomes, key handling and exit codes."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_audit_log import KEY, make_retrieval

from ragguard._cli import main
from ragguard.audit import JsonlAuditLog


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """A keyed log of four retrievals, rotated into several files."""
    path = tmp_path / "audit.jsonl"
    with JsonlAuditLog(path, key=KEY, max_bytes=8000) as log:
        for n in range(4):
            log.record(make_retrieval("alice" if n % 2 == 0 else "bob"))
    return path


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit key in the default environment variable."""
    monkeypatch.setenv("RAGGUARD_AUDIT_KEY", KEY.decode())


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI; returns (exit code, stdout, stderr)."""
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("keyed")
def test_verify_an_intact_log_exits_0(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify: the whole rotated chain checks out, key from RAGGUARD_AUDIT_KEY."""
    code, out, _ = run(["audit", "verify", str(log_path)], capsys)
    assert code == 0
    assert out.startswith("OK: 4 records in ")
    assert "HMAC-SHA256" in out


@pytest.mark.usefixtures("keyed")
def test_verify_a_tampered_log_exits_1_naming_file_and_line(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify: an edit is reported as file:line: reason on stderr, exit 1."""
    content = log_path.read_text().replace('"subject_id":"bob"', '"subject_id":"eve"')
    log_path.write_text(content)
    code, _, err = run(["audit", "verify", str(log_path)], capsys)
    assert code == 1
    assert f"BROKEN: {log_path}:" in err
    assert "hash mismatch" in err


def test_verify_without_the_key_fails_and_says_why(
    log_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyed log cannot be verified without its key: exit 1, message names the key."""
    monkeypatch.delenv("RAGGUARD_AUDIT_KEY", raising=False)
    code, _, err = run(["audit", "verify", str(log_path)], capsys)
    assert code == 1
    assert "needs the key" in err


def test_verify_with_a_key_file_and_json_output(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--key-file reads the key (surrounding whitespace ignored); --json gives the result."""
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY.decode() + "\n")
    code, out, _ = run(
        ["audit", "verify", str(log_path), "--key-file", str(key_file), "--json"], capsys
    )
    assert code == 0
    result = json.loads(out)
    assert result["ok"] is True
    assert result["records"] == 4
    assert result["keyed"] is True
    assert result["head"].startswith("3:")
    assert result["error"] is None


@pytest.mark.usefixtures("keyed")
def test_verify_against_a_checkpoint_catches_a_cut_tail(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--expect-head turns records cut from the end into a failure."""
    code, out, _ = run(["audit", "verify", str(log_path), "--json"], capsys)
    head = json.loads(out)["head"]
    lines = log_path.read_text().splitlines(keepends=True)
    log_path.write_text("".join(lines[:-1]))
    code, _, err = run(["audit", "verify", str(log_path), "--expect-head", head], capsys)
    assert code == 1
    assert "cut from the end" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expect-head", "latest"], "expect_head"),
        (["--key-env", "RAGGUARD_TEST_NO_SUCH_VARIABLE"], "not set"),
        (["--key-file", "/nonexistent/key"], "--key-file"),
    ],
)
def test_verify_usage_errors_exit_2(
    log_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """A bad checkpoint or an unavailable key source is a usage error."""
    code, _, err = run(["audit", "verify", str(log_path), *extra], capsys)
    assert code == 2
    assert message in err


@pytest.mark.usefixtures("keyed")
def test_export_csv_to_a_file_filtered_by_subject(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export --format csv --subject bob -o FILE writes bob's chunk rows only."""
    out_file = tmp_path / "bob.csv"
    argv = ["audit", "export", str(log_path), "--format", "csv", "--subject", "bob"]
    code, _, err = run([*argv, "-o", str(out_file), "--verify"], capsys)
    assert code == 0
    assert "exported 2 records" in err
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert len(rows) == 2 * 10
    assert {r["subject_id"] for r in rows} == {"bob"}


def test_export_ocsf_to_stdout_within_a_time_window(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export --format ocsf writes one Datastore Activity event per line."""
    argv = ["audit", "export", str(log_path), "--format", "ocsf", "--since", "2000-01-01"]
    code, out, _ = run([*argv, "--until", "2999-01-01"], capsys)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 4
    assert {e["class_uid"] for e in events} == {6005}


@pytest.mark.usefixtures("keyed")
def test_export_verify_refuses_a_broken_log(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--verify exports nothing from a tampered log and exits 1."""
    log_path.write_text(log_path.read_text().replace('"k":5', '"k":6', 1))
    code, out, err = run(
        ["audit", "export", str(log_path), "--format", "jsonl", "--verify"], capsys
    )
    assert code == 1
    assert out == ""
    assert "not exported" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "csv", "--since", "yesterday"],
        ["--format", "csv", "--until", "2025-13-45"],
    ],
)
def test_export_bad_times_are_usage_errors(
    log_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Unparseable --since/--until exit 2."""
    code, _, err = run(["audit", "export", str(log_path), *argv], capsys)
    assert code == 2
    assert "ISO-8601" in err


def test_export_an_unknown_format_is_rejected_by_argparse(log_path: Path) -> None:
    """--format only accepts jsonl, csv and ocsf."""
    assert main(["audit", "export", str(log_path), "--format", "xml"]) == 2


def test_audit_without_a_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``ragguard audit`` alone prints help and exits 2."""
    code, _, err = run(["audit"], capsys)
    assert code == 2
    assert "verify" in err


def _forge_first_bob_record(log_path: Path) -> Path:
    """The issue's forgery: ``"subject_id":"mallory",`` prepended to a record of bob's."""
    for file in sorted(log_path.parent.glob("audit*.jsonl")):
        lines = file.read_bytes().splitlines(keepends=True)
        for n, line in enumerate(lines):
            if b'"subject_id":"bob"' in line:
                lines[n] = b'{"subject_id":"mallory",' + line[1:]
                file.write_bytes(b"".join(lines))
                return file
    raise AssertionError("no record of bob's to forge")


@pytest.mark.usefixtures("keyed")
def test_verify_and_export_refuse_a_duplicate_key_forgery(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the forged line verified, and ``export --verify`` exported it."""
    forged = _forge_first_bob_record(log_path)
    code, _, err = run(["audit", "verify", str(log_path)], capsys)
    assert code == 1
    assert f"BROKEN: {forged}:" in err
    assert "duplicate key 'subject_id'" in err
    code, out, err = run(
        ["audit", "export", str(log_path), "--format", "jsonl", "--verify"], capsys
    )
    assert code == 1
    assert out == ""
    assert "not exported" in err


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize(
    "damage",
    [
        lambda line: re.sub(rb'"duration_ms":[^,]+', b'"duration_ms":NaN', line, count=1),
        lambda line: line.replace(b'"rounds":1', b'"rounds":' + b"[" * 100_000 + b"]" * 100_000),
    ],
    ids=["NaN", "deeply nested"],
)
def test_verify_a_nan_or_deeply_nested_record_exits_1_not_2(
    log_path: Path, capsys: pytest.CaptureFixture[str], damage: Any
) -> None:
    """Regression: NaN raised ValueError (exit 2, "usage") and deep nesting RecursionError;
    both are broken records: exit 1 with the line named."""
    lines = log_path.read_bytes().splitlines(keepends=True)
    assert b'"rounds":1' in lines[-1]
    damaged = damage(lines[-1])
    assert damaged != lines[-1]
    lines[-1] = damaged
    log_path.write_bytes(b"".join(lines))
    code, _, err = run(["audit", "verify", str(log_path)], capsys)
    assert code == 1
    assert f"BROKEN: {log_path}:{len(lines)}:" in err
