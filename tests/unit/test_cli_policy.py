"""``ragguard plan`` and ``ragguard explain``: answers, output shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragguard._cli import main

MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, dept, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub.id, p.sub, r.obj.tenant) && (p.dept == "*" || r.obj.dept == p.dept) && r.obj.level <= r.sub.clearance && r.act == p.act
"""
POLICY = """\
p, engineer, engineering, read, allow
p, engineer, public, read, allow
p, engineer, legal, read, deny
g, alice, engineer, acme
"""
ALICE = '{"id": "alice", "attributes": {"clearance": 2}}'


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    """--model and --policy arguments for the example policy."""
    (tmp_path / "model.conf").write_text(MODEL)
    (tmp_path / "policy.csv").write_text(POLICY)
    return ["--model", str(tmp_path / "model.conf"), "--policy", str(tmp_path / "policy.csv")]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI; returns (exit code, stdout, stderr)."""
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_plan_prints_the_compiled_plan_and_the_pushed_down_filter(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """plan: JSON with the plan (kind, filter IR, lines), its condition and the Qdrant part."""
    code, out, _ = run(["plan", *files, "--subject", ALICE], capsys)
    assert code == 0
    document = json.loads(out)
    plan = document["plan"]
    assert plan["kind"] == "conditional"
    assert plan["subject_id"] == "alice"
    assert plan["allow_lines"] == [
        "line 1: p, engineer, engineering, read, allow",
        "line 2: p, engineer, public, read, allow",
    ]
    assert plan["deny_lines"] == ["line 3: p, engineer, legal, read, deny"]
    assert "tenant == 'acme'" in document["condition"]
    assert "level <= 2" in document["condition"]
    assert set(document["qdrant"]) >= {"filter", "exact", "relaxed"}


def test_plan_for_a_subject_with_no_grants_is_deny_all(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A subject without roles gets deny_all: no filter, the store is never queried."""
    code, out, _ = run(["plan", *files, "--subject", '{"id": "mallory"}'], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["plan"]["kind"] == "deny_all"
    assert document["qdrant"]["filter"] is None
    assert document["qdrant"]["queried"] is False


def test_explain_a_released_chunk_names_the_rule(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """explain: a readable chunk is released by the line that allowed it."""
    metadata = '{"tenant": "acme", "dept": "engineering", "level": 1}'
    code, out, _ = run(["explain", *files, "--subject", ALICE, "--metadata", metadata], capsys)
    assert code == 0
    assert "decision:  released: 'alice' may read this chunk" in out
    assert "rule:      line 1: p, engineer, engineering, read, allow" in out
    assert "plan:      conditional" in out


def test_explain_a_denied_chunk_names_the_failed_condition(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """explain: an unreadable chunk says which condition failed (and still exits 0)."""
    metadata = '{"tenant": "acme", "dept": "engineering", "level": 3}'
    code, out, _ = run(["explain", *files, "--subject", ALICE, "--metadata", metadata], capsys)
    assert code == 0
    assert "decision:  withheld: 'alice' may not read this chunk" in out
    assert "level 3 > 2 (r.sub.clearance)" in out


def test_explain_json_carries_decision_rule_condition_and_plan(
    files: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json gives one object; @file arguments are read from disk."""
    (tmp_path / "chunk.json").write_text('{"tenant": "acme", "dept": "legal", "level": 0}')
    argv = ["explain", *files, "--subject", ALICE, "--metadata", f"@{tmp_path / 'chunk.json'}"]
    code, out, _ = run([*argv, "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["decision"] == "withheld"
    assert document["rule"] is None
    assert document["failed_condition"] == "deny line 3: p, engineer, legal, read, deny"
    assert document["plan"]["kind"] == "conditional"


@pytest.mark.parametrize(
    ("subject", "metadata", "message"),
    [
        ('{"id": "alice"', "{}", "--subject is not valid JSON"),
        ('{"name": "alice"}', "{}", "--subject must be a JSON object"),
        ('{"id": "alice", "roles": []}', "{}", "unknown keys"),
        ('{"id": ""}', "{}", "non-empty"),
        (ALICE, "[1, 2]", "--metadata must be a JSON object"),
        (ALICE, "@/nonexistent/chunk.json", "--metadata @/nonexistent/chunk.json"),
    ],
)
def test_bad_json_arguments_are_usage_errors(
    files: list[str], capsys: pytest.CaptureFixture[str], subject: str, metadata: str, message: str
) -> None:
    """Malformed --subject/--metadata exit 2 with a message naming the option."""
    code, out, err = run(["explain", *files, "--subject", subject, "--metadata", metadata], capsys)
    assert code == 2
    assert out == ""
    assert message in err


def test_missing_policy_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --model/--policy path that does not exist exits 2."""
    argv = ["plan", "--model", str(tmp_path / "m.conf"), "--policy", str(tmp_path / "p.csv")]
    code, _, err = run([*argv, "--subject", ALICE], capsys)
    assert code == 2
    assert "no such file" in err


def test_an_unsupported_policy_construct_is_a_failed_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy ragguard cannot compile exits 1 with the construct named."""
    (tmp_path / "model.conf").write_text(MODEL.replace("r.obj.level <=", "r.obj.level * 2 <="))
    (tmp_path / "policy.csv").write_text(POLICY)
    argv = [
        "plan",
        "--model",
        str(tmp_path / "model.conf"),
        "--policy",
        str(tmp_path / "policy.csv"),
    ]
    code, _, err = run([*argv, "--subject", ALICE], capsys)
    assert code == 1
    assert "r.obj.level * 2" in err


def test_missing_required_arguments_exit_2(files: list[str]) -> None:
    """argparse rejects a call without --subject with exit code 2."""
    assert main(["plan", *files]) == 2
