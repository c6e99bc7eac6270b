"""Every script in examples/ runs, as a user would run it, and prints what it promises.

A new example without an entry in EXPECTED fails here: examples are tested or absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# example file -> fragments its output must contain, in order
EXPECTED: dict[str, list[str]] = {
    "langchain_rag_chain.py": [
        "== alice (engineering, clearance 1)",
        "grounded in:",
        "== bob (finance, clearance 3)",
        "grounded in: Board of directors minutes",
    ],
}
NEEDS_QDRANT_URL = {"qdrant_server.py"}


def _examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_tested() -> None:
    assert _examples(), "examples/ is empty"
    assert set(_examples()) == set(EXPECTED) | (NEEDS_QDRANT_URL & set(_examples()))


@pytest.mark.parametrize("name", _examples())
def test_example_runs(name: str, tmp_path: Path) -> None:
    if name in NEEDS_QDRANT_URL and not os.environ.get("QDRANT_URL"):
        pytest.skip(f"{name} needs a Qdrant server: set QDRANT_URL to run it")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,  # examples must not depend on the working directory
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    position = 0
    for fragment in EXPECTED.get(name, []):
        found = result.stdout.find(fragment, position)
        assert found >= 0, (
            f"{name}: {fragment!r} missing after position {position}:\n{result.stdout}"
        )
        position = found + len(fragment)
