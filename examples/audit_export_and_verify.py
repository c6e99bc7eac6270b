"""Audit trail: record guarded searches, verify the chain, export OCSF, catch an edited record.

Three users ask the same question through a guard that writes one HMAC-keyed, hash-chained
record per retrieval to ``rg.JsonlAuditLog`` (ids, scores, rules and reasons; never the
query or the chunk text). Then, as an operator would, the script runs the ``ragguard``
command line:

* ``ragguard audit verify`` checks the chain (the key comes from ``RAGGUARD_AUDIT_KEY``,
  never from the command line);
* ``ragguard audit export --format ocsf`` turns records into OCSF *Datastore Activity*
  events for a SIEM;
* after someone edits one record to hide what bob saw, ``verify`` fails and names the
  file and line of the altered record.

The same checks are available in Python: ``ragguard.audit.verify_audit_log(path, key=...)``
and ``ragguard.audit.export_records``. No network, no model download; the ``ragguard``
command is the one installed with the package (``pip install -e .``).

    python examples/audit_export_and_verify.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"  # the demo policy: roles per tenant, clearances
AUDIT_KEY = "example-audit-key-keep-it-in-a-secret-store"
QUESTION = "What is the codename of the acquisition we are planning, and what is the offer price?"
USERS = [
    rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
    rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
    rg.Subject(id="carol", attributes={"dept": "engineering", "clearance": 0}),
]


def ragguard_command() -> str:
    """The ``ragguard`` console script installed next to this interpreter (else on PATH)."""
    found = shutil.which("ragguard", path=str(Path(sys.executable).parent)) or shutil.which(
        "ragguard"
    )
    if found is None:
        sys.exit("the `ragguard` command is not installed: run `pip install -e .` first")
    return found


def ragguard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``ragguard <args>`` with the audit key in its environment, and echo the command."""
    print(f"$ ragguard {' '.join(args)}")
    return subprocess.run(
        [ragguard_command(), *args],
        cwd=cwd,
        env={**os.environ, "RAGGUARD_AUDIT_KEY": AUDIT_KEY},
        capture_output=True,
        text=True,
        check=False,
    )


def main() -> None:
    embedder = HashEmbedder(dim=384)
    policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
    documents = sample_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        log_path = Path("audit") / "ragguard.jsonl"  # relative to workdir, for short output

        # 1. Guarded searches, each leaving one record in the keyed audit log.
        with (
            rg.EdgeStore.create(workdir / "shard", dim=384, distance="cosine") as store,
            rg.JsonlAuditLog(workdir / log_path, key=AUDIT_KEY, data_source="demo") as audit,
        ):
            vectors = embedder.embed_documents([doc.text for doc in documents])
            store.upsert(doc.to_chunk(v) for doc, v in zip(documents, vectors, strict=True))
            store.optimize()
            guard = rg.Guard(policy, store, audit=audit, audit_required=True)
            vector = embedder.embed_query(QUESTION)
            print(f"Question: {QUESTION}")
            for user in USERS:
                titles = [hit.metadata["title"] for hit in guard.search(user, vector, k=3)]
                print(f"  {user.id}: {len(titles)} chunks released ({'; '.join(titles)})")
        print(f"{len(USERS)} retrievals recorded in {log_path}\n")

        # 2. Verify the chain.
        verified = ragguard("audit", "verify", str(log_path), cwd=workdir)
        print(verified.stdout.strip(), f"(exit {verified.returncode})\n")
        assert verified.returncode == 0, verified.stderr

        # 3. Export bob's retrievals as OCSF events (one JSON object per line).
        exported = ragguard(
            "audit", "export", str(log_path), "--format", "ocsf", "--subject", "bob", cwd=workdir
        )
        assert exported.returncode == 0, exported.stderr
        event = json.loads(exported.stdout.splitlines()[0])
        print(f"  class:    {event['class_name']} / {event['activity_name']}")
        print(f"  actor:    {event['actor']['user']['uid']}")
        print(f"  message:  {event['message']}")
        print(f"  decision: {event['authorizations'][0]['decision']}")
        print(f"  released: {len(event['query_info']['data']['released'])} chunk ids with scores")
        print()

        # 4. Someone edits bob's record to hide one chunk he was given; verify names it.
        lines = (workdir / log_path).read_text(encoding="utf-8").splitlines(keepends=True)
        record = json.loads(lines[1])
        assert record["subject_id"] == "bob"
        record["released"] = record["released"][1:]
        lines[1] = json.dumps(record, separators=(",", ":")) + "\n"
        (workdir / log_path).write_text("".join(lines), encoding="utf-8")
        print(f"Edited line 2 of {log_path}: dropped one chunk from bob's released list.")
        broken = ragguard("audit", "verify", str(log_path), cwd=workdir)
        print(broken.stderr.strip(), f"(exit {broken.returncode})")
        assert broken.returncode == 1


if __name__ == "__main__":
    main()
