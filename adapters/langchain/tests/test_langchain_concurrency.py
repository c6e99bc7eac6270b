"""One shared retriever, many subjects at once: no call ever sees another subject's chunks.

Existing middleware that keeps the per-user filter in shared ``search_kwargs`` leaks
under exactly this load. Each call here must return exactly what a serial call for its
own subject returns.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import ragguard as rg
from ragguard.testing import HashEmbedder
from ragguard_langchain import GuardedRetriever

from lc_support import SUBJECTS

CALLS = 100
CALLERS = 16  # two per subject; docs/threat-model.md cites this number
THREAT_MODEL = Path(__file__).resolve().parents[3] / "docs" / "threat-model.md"
QUESTIONS = [
    "salary bands and compensation review",
    "deploy rollback runbook",
    "acquisition codename and board minutes",
    "security incident legal hold",
]


def _serial_answers(retriever: GuardedRetriever) -> dict[tuple[str, str], list[str | None]]:
    answers = {}
    for subject in SUBJECTS:
        for question in QUESTIONS:
            docs = retriever.with_subject(subject).invoke(question)
            answers[(subject.id, question)] = [d.id for d in docs]
    return answers


def _check_distinct(answers: dict[tuple[str, str], list[str | None]]) -> None:
    # The test only proves something if subjects really see different chunks.
    per_subject = {
        s.id: {i for (sid, _), ids in answers.items() if sid == s.id for i in ids} for s in SUBJECTS
    }
    assert len({frozenset(ids) for ids in per_subject.values()}) == len(SUBJECTS)


def test_the_threat_model_cites_the_number_of_callers_tested() -> None:
    text = THREAT_MODEL.read_text(encoding="utf-8")
    assert re.findall(r"tested with (\d+) concurrent callers", text) == [str(CALLERS)]


def test_sixteen_threads_share_one_retriever(guard: rg.Guard, embedder: HashEmbedder) -> None:
    retriever = GuardedRetriever(guard=guard, embeddings=embedder, k=4)
    expected = _serial_answers(retriever)
    _check_distinct(expected)
    failures: list[Any] = []
    start = threading.Barrier(CALLERS)

    def worker(index: int) -> None:
        subject = SUBJECTS[index % len(SUBJECTS)]
        start.wait()
        for call in range(CALLS):
            question = QUESTIONS[(call + index) % len(QUESTIONS)]
            if call % 2:
                docs = retriever.invoke(
                    question, config={"configurable": {"ragguard_subject": subject}}
                )
            else:
                docs = retriever.with_subject(subject).invoke(question)
            got = [d.id for d in docs]
            if got != expected[(subject.id, question)]:
                failures.append((subject.id, question, got))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


async def test_sixteen_tasks_share_one_retriever(guard: rg.Guard, embedder: HashEmbedder) -> None:
    retriever = GuardedRetriever(guard=guard, embeddings=embedder, k=4)
    expected = _serial_answers(retriever)
    calls = 0

    async def task(index: int) -> list[Any]:
        nonlocal calls
        subject = SUBJECTS[index % len(SUBJECTS)]
        failures = []
        for call in range(CALLS):
            question = QUESTIONS[(call + index) % len(QUESTIONS)]
            if call % 2:
                docs = await retriever.ainvoke(
                    question, config={"configurable": {"ragguard_subject": subject}}
                )
            else:
                docs = await retriever.with_subject(subject).ainvoke(question)
            calls += 1
            got = [d.id for d in docs]
            if got != expected[(subject.id, question)]:
                failures.append((subject.id, question, got))
        return failures

    results = await asyncio.gather(*(task(i) for i in range(CALLERS)))
    assert calls == CALLS * CALLERS
    assert [f for failures in results for f in failures] == []
