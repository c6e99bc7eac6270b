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


def test_ci_type_checks_every_directory_of_tests() -> None:
    """Every directory holding tests is in .ci/run's per-directory ``mypy --strict`` loop
    (the README promises ``mypy --strict``; a suite left out drifts unchecked)."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [loop] = re.findall(r"^for dir in (.*); do$", ci, flags=re.M)
    checked = set(loop.split())
    holding_tests = {
        path.parent.relative_to(ROOT).as_posix()
        for top in ROOT.iterdir()
        if top.is_dir() and not top.name.startswith(".")  # not .venv, .git
        for path in top.rglob("test_*.py")
    }
    assert holding_tests
    assert sorted(holding_tests - checked) == []


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


def test_readme_langchain_block_runs_on_a_default_langchain_qdrant_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LangChain block, after the quickstart, wraps a collection langchain-qdrant made
    the default way (unnamed vector) and returns only alice's tenant's chunks."""
    pytest.importorskip("langchain_qdrant")
    quickstart = next(b for b in _blocks("python") if "rg.Policy.from_casbin" in b)
    langchain = next(b for b in _blocks("python") if "from_vectorstore" in b)
    assert "HashEmbeddings" in langchain
    assert "QdrantVectorStore.from_documents" in langchain
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec(
            compile(
                quickstart.replace('"ragguard/_demo/', f'"{DEMO_DIR.as_posix()}/'),
                "README.md",
                "exec",
            ),
            namespace,
        )
        exec(compile(langchain, "README.md", "exec"), namespace)
    docs = namespace["docs"]
    assert isinstance(docs, list)
    assert len(docs) == 4
    assert {d.metadata["tenant"] for d in docs} == {"acme"}
    assert all(d.metadata["ragguard"]["rule"] for d in docs)


def test_readme_fail_closed_says_what_raises_and_what_is_withheld(tmp_path: Path) -> None:
    """The README's "fail closed" promise lists malformed metadata and bad signatures apart
    from what raises: such chunks are withheld with a reason, the rest are released."""
    [bullet] = re.findall(r"- \*\*Fail closed\.\*\*(.*?)\n- ", README, flags=re.S)
    raised, _, rest = bullet.partition("nothing is released")
    assert "malformed" not in raised
    assert "signature" not in raised
    assert "malformed metadata" in rest
    assert "signature" in rest
    assert "withheld" in rest
    # ... and that is what the guard does
    import ragguard as rg

    key = b"readme-fail-closed-key-32-bytes."
    signer = rg.Signer(key=key, key_id="k")
    good = signer.sign("good", {"tenant": "acme"}, doc_id="good")
    tampered = {**signer.sign("tampered", {"tenant": "acme"}, doc_id="t"), "extra": 1}
    malformed = signer.sign("malformed", {"tenant": "acme"}, doc_id="m")
    malformed["tenant"] = ["acme", {"$ne": 1}]
    records: list[rg.Retrieval] = []

    class Sink:
        def record(self, retrieval: rg.Retrieval) -> None:
            records.append(retrieval)

    with rg.EdgeStore.create(tmp_path / "shard", dim=2) as store:
        store.upsert(
            [
                rg.Chunk("good", good, [1.0, 0.0], id=1),
                rg.Chunk("tampered", tampered, [1.0, 0.1], id=2),
                rg.Chunk("malformed", malformed, [1.0, 0.2], id=3),
            ]
        )
        policy = rg.Policy.from_casbin(
            "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, act\n"
            "[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\n"
            'm = r.obj.tenant == "acme" && r.act == p.act\n',
            "p, anyone, read\n",
        )
        guard = rg.Guard(
            policy, store, audit=Sink(), provenance=rg.ProvenanceCheck(keys={"k": key})
        )
        hits = guard.search(rg.Subject(id="alice"), [1.0, 0.0], k=3)
    assert [h.id for h in hits] == ["1"]
    reasons = {h.id: h.decision.reason or "" for h in records[0].withheld}
    assert "provenance" in reasons["2"]
    assert "malformed" in reasons["3"]
