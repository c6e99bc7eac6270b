"""``keyMatch(attr, "prefix*")`` pushed down as Qdrant ``MatchPrefix`` is exact (issue 19).

Casbin's ``keyMatch(value, pattern)`` with a ``*`` is ``value.startswith(pattern[:i])``
for ``i`` the first ``*``. The translation claims ``exact``: on every well-formed value
the store's filter must select exactly the points the compiled predicate (Casbin's own
``key_match``, element-wise over lists) allows, under negation too; on malformed
values it may only admit more. Checked on the real engines (qdrant-edge and
qdrant-client's local mode), with and without a keyword index.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient

import ragguard as rg
from ragguard._values import MalformedValueError
from ragguard.policy import ir
from ragguard.policy._predicate import MATCH_FUNCTIONS, compile_check, normalize_metadata
from ragguard.stores import ScrollingStore
from ragguard.stores._qdrant_filter import necessary_literals

DIM = 4
ABSENT = object()
VALUES: list[Any] = [
    "/kb/eng/a.md",
    "/kb/eng/",
    "/kb/eng",
    "/kb/engineering/x",
    "/KB/eng/a.md",
    "/kb/éng/ü.md",
    "/kb/😀/x",
    "",
    "x/kb/eng/",
    ["/other", "/kb/eng/b.md"],
    ["/other", 3],
    [1, 2],
    [],
    7,
    True,
    None,
    ABSENT,
    {"nested": "/kb/eng/x"},  # malformed: ragguard withholds, Qdrant may return it
    [None],
]
PATTERNS = ["/kb/eng/*", "/kb/*", "*", "/kb/eng/*/ignored*", "/KB/*", "/kb/é*", "/kb/😀*"]


def _expressions() -> list[ir.Expr]:
    exprs: list[ir.Expr] = []
    for pattern in PATTERNS:
        atom = ir.Match("keyMatch", "path", pattern)
        exprs += [
            atom,
            ir.not_(atom),
            ir.and_(atom, ir.Eq("kind", "doc")),
            ir.or_(ir.not_(atom), ir.Eq("kind", "doc")),
        ]
    return exprs


def _chunks() -> list[rg.Chunk]:
    chunks: list[rg.Chunk] = []
    for i, value in enumerate(VALUES):
        for kind in ("doc", "page"):
            metadata: dict[str, Any] = {"kind": kind}
            if value is not ABSENT:
                metadata["path"] = value
            chunks.append(rg.Chunk(f"c{i}", metadata, [1.0, 0.5, 0.25, 0.125], id=len(chunks)))
    return chunks


@pytest.fixture(params=["edge", "edge-keyword-index", "edge-prefix-index", "qdrant-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> rg.Store:
    kind = str(request.param)
    if kind == "qdrant-local":  # qdrant-client's local mode has no payload indexes
        local = rg.QdrantStore.create(QdrantClient(":memory:"), "kb", dim=DIM)
        local.upsert(_chunks())
        return local
    edge = rg.EdgeStore.create(tmp_path / "shard", dim=DIM)
    edge.upsert(_chunks())
    if kind == "edge-keyword-index":
        edge.create_payload_indexes([rg.IndexSpec("path", "keyword")])
    elif kind == "edge-prefix-index":
        index = qe.KeywordIndexParams(prefix=True)
        edge.shard.update(qe.UpdateOperation.create_field_index("metadata.path", index))
    edge.optimize()
    return edge


def test_keymatch_prefix_pushdown_selects_exactly_what_casbin_allows(store: rg.Store) -> None:
    chunks = _chunks()
    compared = 0
    for expr in _expressions():
        pushdown = store.translate(expr)
        assert pushdown.exact, expr  # MatchPrefix expresses it: no relaxation
        assert isinstance(store, ScrollingStore)
        page = store.scroll(pushdown, 1000)
        assert page.next_offset is None
        selected = {c.id for c in page.chunks}
        check = compile_check(expr)
        for chunk in chunks:
            try:
                allowed = check(normalize_metadata(chunk.metadata, frozenset(ir.fields_of(expr))))
            except MalformedValueError:
                continue  # withheld by the guard whatever the store returns
            assert (str(chunk.id) in selected) == allowed, (expr, chunk.metadata)
            compared += 1
    assert compared > 700


def test_a_server_without_literal_matches_gets_no_prefix_conditions() -> None:
    """QdrantStore(literal_matches=False), for a Qdrant server without MatchPrefix and
    MatchSubstring: matching functions relax to no condition, as before."""
    store = rg.QdrantStore.create(QdrantClient(":memory:"), "kb", dim=DIM, literal_matches=False)
    for atom in (
        ir.Match("keyMatch", "path", "/kb/*"),
        ir.Match("keyMatch2", "path", "/kb/:space/runbooks/*"),
    ):
        pushdown = store.translate(atom)
        assert not pushdown.exact
        assert pushdown.native is None


def test_only_keymatch_of_the_attribute_with_a_star_is_pushed_down() -> None:
    store = rg.QdrantStore.create(QdrantClient(":memory:"), "kb", dim=DIM)
    assert store.translate(ir.Match("keyMatch", "path", "/kb/*")).exact
    # the attribute as the pattern, another function, or a non-plain attribute name: relaxed
    assert not store.translate(ir.Match("keyMatch", "path", "/kb/x", field_first=False)).exact
    assert not store.translate(ir.Match("keyMatch2", "path", "/kb/*")).exact
    assert not store.translate(ir.Match("regexMatch", "path", "^/kb/")).exact
    assert not store.translate(ir.Match("keyMatch", "a.b", "/kb/*")).exact


# -- relaxed patterns narrowed to a necessary prefix: still a superset ------------------------

ALPHABET = "/ab:*.?+{}[]()|^$\\é-" + "ab/" + "abc/"
NARROWED = ("keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5", "regexMatch")


def _value_like(pattern: str, rng: random.Random) -> str:
    """A string shaped like ``pattern``: each character kept, dropped or replaced."""
    out = []
    for char in pattern:
        roll = rng.random()
        if roll < 0.6:
            out.append(char)
        elif roll < 0.8:
            out.append(rng.choice(["", "a", "b/a", "é", "ab", "/"]))
    if rng.random() < 0.3:
        out.append(rng.choice(["", "x", "/y", "?q=1", "\n"]))
    return "".join(out)


def test_necessary_literals_never_exclude_a_match() -> None:
    """Whatever Casbin's function matches starts with the prefix and contains the
    substrings pushed down for it (random patterns over path and regex characters,
    values shaped like them)."""
    rng = random.Random(19)
    confirmed = 0
    for _ in range(40_000):
        function = rng.choice(NARROWED)
        pattern = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.5:
            pattern = "/kb/" + pattern
        prefix, substrings = necessary_literals(ir.Match(function, "path", pattern))
        if not prefix and not substrings:
            continue
        for value in (_value_like(pattern, rng) for _ in range(4)):
            try:
                matched = bool(MATCH_FUNCTIONS[function](value, pattern))
            except Exception:  # Casbin raising is "no match" in ragguard
                matched = False
            if matched:
                assert value.startswith(prefix), (function, pattern, value, prefix)
                assert all(s in value for s in substrings), (function, pattern, value)
                confirmed += 1
    assert confirmed > 1000  # the check ran on many real matches


# Path-like pattern pieces and the strings each can stand for in a matching value.
PIECES: dict[str, list[str]] = {
    "kb": ["kb", "kB"],
    "eng": ["eng", "en"],
    "runbooks": ["runbooks"],
    "a.md": ["a.md", "aXmd"],
    ":space": ["ops", "x", ""],
    "{id}": ["7", "id"],
    "*": ["", "x/y", "*"],
    "(v1)?": ["v1", ""],
    "[ab]c": ["ac", "bc"],
    "doc?": ["do", "doc"],
    "\\.": ["."],
    "é": ["é"],
}


def test_necessary_literals_hold_on_path_patterns() -> None:
    """The same property on path-shaped patterns, where long literal runs (substrings)
    occur between parameters, and values built to match them."""
    rng = random.Random(7)
    confirmed = with_substrings = 0
    for _ in range(20_000):
        pieces = [rng.choice(list(PIECES)) for _ in range(rng.randint(1, 5))]
        pattern = "/" + "/".join(pieces)
        function = rng.choice(NARROWED)
        prefix, substrings = necessary_literals(ir.Match(function, "path", pattern))
        for _ in range(3):
            value = "/" + "/".join(rng.choice(PIECES[piece]) for piece in pieces)
            try:
                matched = bool(MATCH_FUNCTIONS[function](value, pattern))
            except Exception:
                matched = False
            if matched:
                assert value.startswith(prefix), (function, pattern, value, prefix)
                assert all(s in value for s in substrings), (function, pattern, value)
                confirmed += 1
                with_substrings += bool(substrings)
    assert confirmed > 1000
    assert with_substrings > 500


@pytest.mark.parametrize(
    ("function", "pattern", "matching"),
    [
        ("keyMatch2", "/kb/t03/engineering/:owner/*", "/kb/t03/engineering/u0/doc.md"),
        ("keyMatch2", "/kb/leave.md", "/kb/leaveXmd"),
        ("keyMatch2", "/kb/:space/runbooks/*", "/kb/ops/runbooks/restart.md"),
        ("keyMatch2", "/kb/:t/eng/:owner/*", "/kb/t03/eng/u0/doc.md"),
        ("keyMatch3", "/kb/{space}/runbooks/*", "/kb/ops/runbooks/a.md"),
        ("keyMatch5", "/kb/eng/*", "/kb/eng/a.md?version=2"),
        ("regexMatch", "^/kb/s1[0-9]/notes/", "/kb/s13/notes/x.md"),
    ],
)
def test_relaxed_patterns_push_a_prefix_and_stay_inexact(
    function: str, pattern: str, matching: str
) -> None:
    assert MATCH_FUNCTIONS[function](matching, pattern)
    store = rg.QdrantStore.create(QdrantClient(":memory:"), "kb", dim=DIM)
    store.upsert(
        [
            rg.Chunk("in", {"path": matching}, [1.0, 0.0, 0.0, 0.0], id=1),
            rg.Chunk("out", {"path": "/elsewhere/" + matching}, [1.0, 0.0, 0.0, 0.0], id=2),
            rg.Chunk("list", {"path": ["/x", matching]}, [1.0, 0.0, 0.0, 0.0], id=3),
            rg.Chunk("other", {"path": "/kb/x/y/z.md"}, [1.0, 0.0, 0.0, 0.0], id=4),
        ]
    )
    atom = ir.Match(function, "path", pattern)
    pushdown = store.translate(atom)
    assert not pushdown.exact
    assert "narrowed to" in pushdown.relaxed[0]
    page = store.scroll(pushdown, 10)
    assert sorted(c.id for c in page.chunks) == ["1", "3"]  # narrower than "everything"
    # under a negation the relaxation must widen: no prefix, the atom becomes FALSE
    negated = store.translate(ir.not_(atom))
    assert not negated.exact
    assert negated.native is None
    assert not negated.matches_nothing
