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
    "llamaindex_retriever.py": [
        "An unbound retriever refuses to search: SubjectError",
        "== alice (engineering, clearance 1)",
        "verified, released by",
        "== bob (finance, clearance 3)",
        "[Board of directors minutes",
        "line 9: p, finance_manager",
    ],
    "quickstart.py": [
        "alice asks:",
        "[acme/engineering/L1] On-call runbook",
        'released by line 8: p, engineer, r.obj.dept == "engineering"',
    ],
    "naive_vs_guarded.py": [
        "may read 22 of them",
        "== naive: a plain vector query returns 10 chunks",
        "LEAK",
        "Board of directors minutes",
        "== guarded:",
        "ok   ",
        "[globex/",
        "chunks leak (",
        "post-filtering the naive top 10 would leave carol",
        "guarded: 0 of 10 chunks leak; carol gets 10",
    ],
    "ingest_and_detect_tampering.py": [
        "Ingested and signed 360 chunks",
        "The policy alone would now release the salary bands to carol: line 5",
        "without a provenance check she would get:",
        "<- TAMPERED",
        "with ProvenanceCheck(mode='require') she gets:",
        "(verified)",
        "withheld (from the audit record):",
        "Benefits FAQ: provenance: text hash mismatch",
        "Salary bands FY2025: provenance: metadata changed",
    ],
    "audit_export_and_verify.py": [
        "bob: 3 chunks released (Board of directors minutes",
        "3 retrievals recorded in audit/ragguard.jsonl",
        "$ ragguard audit verify audit/ragguard.jsonl",
        "OK: 3 records in 1 file, HMAC-SHA256 chain intact",
        "$ ragguard audit export audit/ragguard.jsonl --format ocsf --subject bob",
        "class:    Datastore Activity / Query",
        "actor:    bob",
        "BROKEN: audit/ragguard.jsonl:2: hash mismatch",
        "(exit 1)",
    ],
    "gateway_http_and_mcp.py": [
        "== HTTP as alice (decision ",
        "[acme/engineering/L1]",
        "== HTTP as bob (decision ",
        "Board of directors minutes",
        "== a token for another audience: 401",
        'error="invalid_token", error_description="token audience not accepted"',
        "== MCP tools: explain_access, search_documents",
        "rule: line 9: p, finance_manager",
        "3 retrievals recorded in audit/gateway.jsonl",
    ],
    "qdrant_server.py": [
        "Created collection 'ragguard-example-",
        "Ingested and signed 360 chunks",
        "== bob (plan: conditional)",
        "Board of directors minutes",
        "Deleted collection 'ragguard-example-",
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
