"""``ragguard demo``: one shared vector store, three users, the same questions.

Builds an embedded Qdrant shard from the shipped multi-tenant corpus, embeds it with the
deterministic :class:`ragguard.testing.HashEmbedder` (no model download, no network),
and runs each question as each user, showing side by side what the user gets, what was
withheld and why, and what a plain, unguarded vector query would have handed them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import ragguard as rg
from ragguard.policy._predicate import describe_condition
from ragguard.stores.base import Pushdown
from ragguard.stores.edge import EdgeStore
from ragguard.testing import HashEmbedder, sample_corpus

__all__ = ["DemoUser", "run_demo"]

DIM = 384
TOP_K = 3


@dataclass(frozen=True)
class DemoUser:
    """A user of the demo: the subject and a one-line description."""

    subject: rg.Subject
    description: str


class _Style:
    """ANSI styling when writing to a terminal that wants it (NO_COLOR respected)."""

    def __init__(self, out: TextIO) -> None:
        self.color = out.isatty() and "NO_COLOR" not in os.environ
        encoding = (getattr(out, "encoding", None) or "").lower()
        self.unicode = "utf" in encoding
        self.ok = "✓" if self.unicode else "+"
        self.no = "✗" if self.unicode else "x"
        self.rule = "─" if self.unicode else "-"

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)


def _demo_file(name: str) -> str:
    return resources.files("ragguard._demo").joinpath(name).read_text(encoding="utf-8")


def load_scenario() -> tuple[list[DemoUser], list[str]]:
    """The demo's users and questions (``ragguard/_demo/scenario.json``)."""
    scenario = json.loads(_demo_file("scenario.json"))
    users = [
        DemoUser(
            rg.Subject(id=user["id"], attributes=user.get("attributes", {})),
            user.get("description", ""),
        )
        for user in scenario["users"]
    ]
    questions = [q if isinstance(q, str) else q["question"] for q in scenario["questions"]]
    return users, questions


def load_policy() -> rg.Policy:
    """The demo policy (``ragguard/_demo/model.conf`` + ``policy.csv``)."""
    return rg.Policy.from_casbin(_demo_file("model.conf"), _demo_file("policy.csv"))


@contextmanager
def _store_at(path: Path | None) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ragguard-demo-") as tmp:
        yield Path(tmp) / "shard"


def build_store(path: Path, embedder: HashEmbedder, policy: rg.Policy) -> tuple[EdgeStore, int]:
    """Create the shard, embed and upsert the corpus, index what the policy filters on."""
    documents = sample_corpus()
    vectors = embedder.embed_documents([doc.text for doc in documents])
    store = EdgeStore.create(str(path), dim=DIM, distance="cosine")
    store.create_payload_indexes(policy.index_specs(types={"level": "integer"}))
    store.upsert(
        rg.Chunk(text=doc.text, metadata=doc.metadata, vector=vector, id=doc.id)
        for doc, vector in zip(documents, vectors, strict=True)
    )
    store.optimize()
    return store, len(documents)


def _label(metadata: Any) -> str:
    md = metadata if isinstance(metadata, dict) else {}
    parts = [str(md.get("tenant", "?")), str(md.get("dept", "?")), f"L{md.get('level', '?')}"]
    return "/".join(parts)


def _snippet(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def run_demo(out: TextIO | None = None, *, store_path: Path | None = None) -> int:
    """Run the demo, writing the report to ``out`` (stdout); returns an exit code."""
    out = out or sys.stdout
    style = _Style(out)
    width = 100

    def line(text: str = "") -> None:
        print(text, file=out)

    users, questions = load_scenario()
    policy = load_policy()
    embedder = HashEmbedder(dim=DIM)
    started = time.perf_counter()
    with _store_at(store_path) as path:
        store, count = build_store(path, embedder, policy)
        try:
            guard = rg.Guard(policy, store)
            build_s = time.perf_counter() - started
            line(style.bold("ragguard demo") + style.dim(" — one shared vector store, three users"))
            line(
                f"{count} chunks from 3 tenants embedded into an in-process Qdrant shard "
                f"in {build_s:.1f}s (deterministic local embedder, no network)."
            )
            line(
                f"policy version {policy.version}: roles per tenant, department grants, "
                "clearance levels, legal hold."
            )
            line()
            for user in users:
                plan = guard.plan(user.subject)
                line(f"{style.bold(user.subject.id):<20} {user.description}")
                line(
                    style.dim(
                        f"    plan: {plan.kind}, pushed into Qdrant as: "
                        f"{_snippet(describe_condition(plan.filter), width - 36)}"
                    )
                )
            totals = {u.subject.id: Counter[str]() for u in users}
            for number, question in enumerate(questions, start=1):
                vector = embedder.embed_query(question)
                line()
                line(style.rule * width)
                line(style.bold(f"Q{number}. {question}"))
                unguarded = store.search(vector, TOP_K, Pushdown(native=None, exact=True))
                line(style.yellow("  a plain vector query (no guard) returns to anyone who asks:"))
                for stored in unguarded:
                    line(
                        f"    {stored.score:5.2f}  [{_label(stored.metadata)}]  "
                        f"{_snippet(stored.text or '', width - 34)}"
                    )
                for user in users:
                    hits = guard.search(user.subject, vector, k=TOP_K)
                    line(f"  {style.bold(user.subject.id)} gets {len(hits)}:")
                    for hit in hits:
                        line(
                            f"    {style.green(style.ok)} {hit.score:4.2f} [{_label(hit.metadata)}]  "
                            f"{_snippet(hit.text, width - 36)}"
                        )
                        line(style.dim(f"             released by {hit.decision.rule}"))
                    leaked = 0
                    for stored in unguarded:
                        decision = guard.check(user.subject, stored.metadata or {})
                        if not decision.released:
                            leaked += 1
                            line(
                                f"    {style.red(style.no)} withheld [{_label(stored.metadata)}]: "
                                f"{_snippet(decision.reason or '', width - 40)}"
                            )
                    totals[user.subject.id]["released"] += len(hits)
                    totals[user.subject.id]["leaks_prevented"] += leaked
            line()
            line(style.rule * width)
            line(style.bold("Summary"))
            for user in users:
                tally = totals[user.subject.id]
                line(
                    f"  {user.subject.id:<12} received {tally['released']:>2} authorised chunks; "
                    f"an unguarded query would have handed them "
                    f"{style.red(str(tally['leaks_prevented']))} chunks they may not read."
                )
            line()
            line(
                "Every result above came from a filtered Qdrant query (the policy compiled into the"
            )
            line("query), re-checked chunk by chunk. Try: ragguard plan / ragguard explain.")
        finally:
            store.close()
    return 0
