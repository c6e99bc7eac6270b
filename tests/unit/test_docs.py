"""The documentation stays true: its walkthrough runs and its links resolve."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in ("adapters", "examples", "policies"):
        files.extend(sorted((ROOT / folder).rglob("README.md")))
    return files


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = [
        target
        for target in LINK.findall(path.read_text(encoding="utf-8"))
        if "://" not in target
        and not target.startswith("mailto:")
        and not (path.parent / target).exists()
    ]
    assert broken == [], f"{path.relative_to(ROOT)} links to missing files: {broken}"


def test_getting_started_runs_top_to_bottom(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 6
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for block in blocks:
            exec(compile(block, "getting-started.md", "exec"), namespace)
    printed = output.getvalue()
    assert "conditional" in printed
    assert "line 8: p, engineer" in printed  # the rule that released alice's hits
    assert "False no line matched" in printed
    namespace["store"].close()  # type: ignore[attr-defined]
    assert os.path.exists(namespace["audit"].path)  # type: ignore[attr-defined]
