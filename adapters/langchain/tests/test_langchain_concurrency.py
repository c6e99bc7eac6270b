"""One shared retriever, many subjects at once: no call ever sees another subject's chunks.

Existing middleware that keeps the per-user filter in shared ``search_kwargs`` leaks
under exactly this load. Each call here must return exactly what a serial call for its
own subject returns.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ragguard as rg
from ragguard.testing import HashEmbedder
from ragguard_langchain import GuardedRetriever

from lc_support import SUBJECTS

CALLS = 200
QUESTIONS = [
    "salary bands and compensation review",
    "deploy rollback runbook",
    "acquisition codename and board minutes",
    "security incident legal hold",
]


def _serial_answers(retriever: GuardedRetriever) -> dict[tuple[str, str], list[str]]:
    answers = {}
    for subject in SUBJECTS:
        for question in QUESTIONS:
            docs = retriever.with_subject(subject).invoke(question)
            answers[(subject.id, question)] = [d.id for d in docs]
    return answers


def _check_distinct(answers: dict[tuple[str, str], list[str]]) -> None:
    # The test only proves something if subjects really see different chunks.
    per_subject = {
        s.id: {i for (sid, _), ids in answers.items() if sid == s.id for i in ids} for s in SUBJECTS
    }
    assert len({frozenset(ids) for ids in per_subject.values()}) == len(SUBJECTS)


def test_eight_threads_share_one_retriever(guard: rg.Guard, embedder: HashEmbedder) -> None:
    retriever = GuardedRetriever(guard=guard, embeddings=embedder, k=4)
    expected = _serial_answers(retriever)
    _check_distinct(expected)
    failures: list[Any] = []
    start = threading.Barrier(len(SUBJECTS))

    def worker(index: int) -> None:
        subject = SUBJECTS[index]
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

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(SUBJECTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


async def test_eight_tasks_share_one_retriever(guard: rg.Guard, embedder: HashEmbedder) -> None:
    retriever = GuardedRetriever(guard=guard, embeddings=embedder, k=4)
    expected = _serial_answers(retriever)
    calls = 0

    async def task(index: int) -> list[Any]:
        nonlocal calls
        subject = SUBJECTS[index]
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

    results = await asyncio.gather(*(task(i) for i in range(len(SUBJECTS))))
    assert calls == CALLS * len(SUBJECTS)
    assert [f for failures in results for f in failures] == []
