"""The README tells the truth: its commands are CI's, its quickstart runs as printed."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import ragguard
from ragguard._demo.run import run_demo

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_DIR = Path(ragguard.__file__).parent / "_demo"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_test_command_is_the_one_ci_runs() -> None:
    """The README's test command is, verbatim, the TEST_COMMAND of .ci/run."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [ci_command] = re.findall(r"^TEST_COMMAND='(.*)'$", ci, flags=re.M)
    commands = [line.strip() for block in _blocks("bash") for line in block.splitlines()]
    assert ci_command in commands


def test_readme_demo_command_installs_and_runs_the_demo() -> None:
    """The first README command installs the package and runs `ragguard demo`."""
    first = _blocks("bash")[0].strip()
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert first.endswith(".venv/bin/ragguard demo")


def test_readme_quickstart_runs_and_prints_what_its_comments_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quickstart block runs as printed (demo policy paths), with the commented output."""
    quickstart = next(b for b in _blocks("python") if "rg.Policy.from_casbin" in b)
    code = quickstart.replace('"ragguard/_demo/', f'"{DEMO_DIR.as_posix()}/')
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    printed = out.getvalue().splitlines()
    assert printed[0] == "conditional"
    hits = printed[1:-1]
    assert len(hits) == 5
    assert all(" acme line " in line for line in hits)
    expected_reason = re.search(r"^# (no line matched.*)$", quickstart, flags=re.M)
    assert expected_reason is not None
    assert printed[-1] == expected_reason.group(1)
    assert (tmp_path / "audit" / "ragguard.jsonl").stat().st_size > 0


def test_demo_shows_each_user_only_their_tenants_chunks(tmp_path: Path) -> None:
    """`ragguard demo` runs offline and every released chunk is from the user's tenant."""
    out = io.StringIO()
    assert run_demo(out, store_path=tmp_path / "shard") == 0
    text = out.getvalue()
    tenant_of = {"alice": "acme", "bob": "acme", "carol": "globex"}
    user = None
    released = 0
    for line in text.splitlines():
        heading = re.match(r"  (\w+) gets (\d+):", line)
        if heading:
            user = heading.group(1)
            continue
        mark = re.match(r"    \+ [\d.]+ \[(\w+)/", line)
        if mark:
            assert user is not None
            assert mark.group(1) == tenant_of[user], line
            released += 1
    assert released == 3 * 3 * 6  # three users, six questions, k=3 each
    assert "Summary" in text
    assert "an unguarded query would have handed them" in text
