"""A live policy changes while eight threads search: every result is one version's.

The policy is ``Policy.from_enforcer`` over a live Casbin enforcer. The main thread
toggles a grant (engineers may read HR chunks up to their clearance, or not) and adds a
unique marker line each time, so every change is a new version, and calls
``policy.reload()``. Searching threads check that each result is exactly the answer of
the version its decisions name (no mixture inside one result) and that a search
started after a reload returned never uses an older version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import casbin
import pytest

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"
DIM = 64
CHANGES = 30
HR_GRANT = ("engineer", 'r.obj.dept == "hr" && r.obj.level <= r.sub.clearance', "read", "allow")
ALICE = rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1})
QUESTIONS = ["salary bands and benefits", "code of conduct and onboarding", "deploy runbook"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rg.EdgeStore]:
    embedder = HashEmbedder(dim=DIM)
    docs = sample_corpus()
    vectors = embedder.embed_documents([d.text for d in docs])
    with rg.EdgeStore.create(tmp_path_factory.mktemp("hot") / "shard", dim=DIM) as edge:
        edge.upsert(d.to_chunk(v) for d, v in zip(docs, vectors, strict=True))
        yield edge


def test_policy_changes_under_eight_searching_threads(store: rg.EdgeStore) -> None:
    enforcer = casbin.Enforcer(str(DEMO / "model.conf"), str(DEMO / "policy.csv"))
    policy = rg.Policy.from_enforcer(enforcer)
    guard = rg.Guard(policy, store)
    embedder = HashEmbedder(dim=DIM)
    queries = [embedder.embed_query(q) for q in QUESTIONS]

    # The two possible answers per question: without and with the HR grant.
    answers: dict[bool, list[list[str]]] = {}
    for granted in (False, True):
        if granted:
            enforcer.add_policy(*HR_GRANT)
            policy.reload()
        answers[granted] = [[h.id for h in guard.search(ALICE, q, k=8)] for q in queries]
    assert answers[False] != answers[True]  # the grant is visible in these results
    enforcer.remove_policy(*HR_GRANT)
    policy.reload()

    granted_by_version = {policy.version: False}
    generation_versions = [policy.version]  # index: generation, value: its version
    generation = 0  # bumped after each reload returns
    stop = threading.Event()
    problems: list[str] = []
    searches = [0] * 8

    def search_continuously(worker: int) -> None:
        n = 0
        while not stop.is_set() or n < 20:
            started_generation = generation
            question = (worker + n) % len(QUESTIONS)
            hits = guard.search(ALICE, queries[question], k=8)
            versions = {h.decision.policy_version for h in hits}
            if len(versions) != 1:
                problems.append(f"mixed versions in one result: {versions}")
            else:
                (version,) = versions
                seen.append((started_generation, version, question, [h.id for h in hits]))
            n += 1
        searches[worker] = n

    seen: list[tuple[int, str, int, list[str]]] = []
    threads = [threading.Thread(target=search_continuously, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for change in range(1, CHANGES + 1):
        granted = change % 2 == 1
        if granted:
            enforcer.add_policy(*HR_GRANT)
        else:
            enforcer.remove_policy(*HR_GRANT)
        enforcer.add_policy("nobody", f'r.obj.marker == "change {change}"', "read", "allow")
        assert policy.reload()
        granted_by_version[policy.version] = granted
        generation_versions.append(policy.version)
        generation = change
        threading.Event().wait(0.01)
    stop.set()
    for thread in threads:
        thread.join()

    assert problems == []
    assert min(searches) >= 20
    versions_used = {version for _, version, _, _ in seen}
    assert len(versions_used) >= 3  # searches really overlapped the changes
    order = {version: i for i, version in enumerate(generation_versions)}
    for started_generation, version, question, ids in seen:
        assert ids == answers[granted_by_version[version]][question]
        assert order[version] >= started_generation, "a stale plan after the change was visible"
