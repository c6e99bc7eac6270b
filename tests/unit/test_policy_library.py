"""Every policy set under ``policies/`` keeps the promises its README makes.

Each folder ``policies/<name>/`` holds ``model.conf``, ``policy.csv`` and a ``README.md``
with two tables this module reads (folders are discovered, so a new folder without
them fails):

``## Decision table``
    The first Markdown table after this heading, with the header
    ``| subject | chunk | released | why |``. ``subject`` is a JSON object in backticks:
    ``"id"`` is :attr:`Subject.id`, every other key an attribute. ``chunk`` is the
    chunk's metadata as a JSON object in backticks. ``released`` is ``yes`` or ``no``.
    ``why`` is a substring (backticks around it are dropped) of the decision's ``rule``
    when released, of its ``reason`` when withheld. A literal ``|`` in a cell is ``\\|``.

``## Payload indexes``
    The first table after this heading, header ``| field | schema | tenant |``: exactly
    what :meth:`Policy.index_specs` returns (``tenant`` is ``yes`` or ``no``).

Every row is decided three ways: by :meth:`Guard.check` (the compiled predicate), by
the store (the plan's filter pushed into an embedded Qdrant shard, then the guard's
re-check), and by ``casbin.enforce`` on an enforcer built by Casbin itself from the same
files. The plan of every subject in a table is compared with a golden file in
``tests/unit/golden/<name>.json``; ``RAGGUARD_UPDATE_GOLDEN=1`` rewrites them.

The Casbin oracle sees ``r.sub`` as the subject id (a string) with the attributes on it,
exactly as ragguard presents the subject to a matcher, and the chunk as an object with
one attribute per metadata key. Values are wrapped so that Python comparisons follow
the documented value semantics (``docs/policy-language.md``) where plain Python differs:
an absent attribute (missing, ``None``, ``[]``) compares false under every operator; a
list compares as "any element"; ``True`` is not ``1``; ordering between a string and a
number is false rather than a ``TypeError``; ``in`` against a string is equality, not
a substring test. Everything else (the matcher, ``eval`` rules, role links, the policy
effect, which lines apply) is Casbin's own evaluation.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
import pytest
from casbin import util as casbin_util

import ragguard as rg
from ragguard.policy import ir

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("RAGGUARD_UPDATE_GOLDEN") == "1"

DECISION_HEADER = ("subject", "chunk", "released", "why")
INDEX_HEADER = ("field", "schema", "tenant")
MIN_ROWS = 8
DIM = 8


# -- reading a policy folder ---------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One decision-table row: who, which chunk, the expected verdict and why."""

    folder: str
    line: int
    subject: dict[str, Any]
    chunk: dict[str, Any]
    released: bool
    why: str

    def make_subject(self) -> rg.Subject:
        attributes = {k: v for k, v in self.subject.items() if k != "id"}
        return rg.Subject(id=self.subject["id"], attributes=attributes)

    def __str__(self) -> str:
        return f"policies/{self.folder}/README.md:{self.line}"


def _policy_folders() -> list[Path]:
    return sorted(p for p in POLICIES.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_cells(line: str) -> list[str]:
    body = line.strip()
    if not (body.startswith("|") and body.endswith("|")):
        raise ValueError(f"not a table row: {line!r}")
    cells = re.split(r"(?<!\\)\|", body[1:-1])
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _table_after(text: str, heading: str) -> list[tuple[int, list[str]]]:
    """The rows (line number, cells) of the first table after ``heading``, header first."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        return []
    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if line.startswith("## "):
            break
        if line.lstrip().startswith("|"):
            rows.append((number, _split_cells(line)))
        elif rows:
            break
    if len(rows) >= 2 and all(re.fullmatch(r":?-+:?", cell) for cell in rows[1][1]):
        del rows[1]  # the |---| separator
    return rows


def _unquote(cell: str) -> str:
    return cell[1:-1] if len(cell) >= 2 and cell[0] == cell[-1] == "`" else cell


def _json_object(cell: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(_unquote(cell))
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{where}: not JSON: {cell!r} ({exc})") from None
    assert isinstance(value, dict), f"{where}: expected a JSON object, got {cell!r}"
    return value


def read_decision_table(folder: Path) -> list[Row]:
    """The decision table of ``folder``'s README (empty if it has none)."""
    readme = folder / "README.md"
    if not readme.exists():
        return []
    table = _table_after(readme.read_text(encoding="utf-8"), "## Decision table")
    if not table:
        return []
    (_, header), body = table[0], table[1:]
    assert tuple(c.lower() for c in header) == DECISION_HEADER, (
        f"{readme}: the decision table header must be | {' | '.join(DECISION_HEADER)} |"
    )
    rows: list[Row] = []
    for number, cells in body:
        where = f"{readme}:{number}"
        assert len(cells) == 4, f"{where}: expected 4 cells, got {len(cells)}"
        subject = _json_object(cells[0], where)
        assert isinstance(subject.get("id"), str), f"{where}: the subject needs a string id"
        released = cells[2].lower()
        assert released in ("yes", "no"), f"{where}: released must be yes or no"
        why = _unquote(cells[3])
        assert why, f"{where}: say why (a substring of the rule or the reason)"
        rows.append(
            Row(folder.name, number, subject, _json_object(cells[1], where), released == "yes", why)
        )
    return rows


def read_index_table(folder: Path) -> list[tuple[str, str, bool]]:
    """The payload index table of ``folder``'s README."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    table = _table_after(text, "## Payload indexes")
    assert table, f"{folder / 'README.md'} has no table under '## Payload indexes'"
    (_, header), body = table[0], table[1:]
    assert tuple(c.lower() for c in header) == INDEX_HEADER
    out: list[tuple[str, str, bool]] = []
    for _, cells in body:
        tenant = cells[2].lower()
        assert tenant in ("yes", "no")
        out.append((_unquote(cells[0]), _unquote(cells[1]), tenant == "yes"))
    return out


def load_policy(folder: Path) -> rg.Policy:
    return rg.Policy.from_casbin(folder / "model.conf", folder / "policy.csv")


def _all_rows() -> list[Row]:
    return [row for folder in _policy_folders() for row in read_decision_table(folder)]


def _subjects(rows: list[Row]) -> list[dict[str, Any]]:
    """The distinct subjects of a table, in order of first appearance."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(json.dumps(row.subject, sort_keys=True), row.subject)
    return list(seen.values())


def _chunks(rows: list[Row]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(json.dumps(row.chunk, sort_keys=True), row.chunk)
    return list(seen.values())


# -- the Casbin oracle ---------------------------------------------------------------------


def _native(value: object) -> object:
    if isinstance(value, _Str):
        return str(value)
    if isinstance(value, _Scalar):
        return value.value
    return value


def _kind(value: object) -> str:
    value = _native(value)
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def _scalar_eq(a: object, b: object) -> bool:
    return _kind(a) == _kind(b) != "other" and _native(a) == _native(b)


def _scalar_order(op: Callable[[Any, Any], bool], a: object, b: object) -> bool:
    return _kind(a) == _kind(b) in ("number", "str") and op(_native(a), _native(b))


def _lt(a: Any, b: Any) -> bool:
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    return bool(a > b)


def _ge(a: Any, b: Any) -> bool:
    return bool(a >= b)


def _elements(value: object) -> tuple[object, ...]:
    if isinstance(value, _Absent):
        return ()
    if isinstance(value, _AnyOf):
        return value.items
    if isinstance(value, (tuple, list)):
        return tuple(x for item in value for x in _elements(item))
    return (value,)


def _defer(other: object) -> bool:
    """Let absent values and lists decide comparisons they take part in."""
    return isinstance(other, (_Absent, _AnyOf))


class _Absent:
    """An attribute that is not there: every comparison with it is false."""

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return False

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return False

    def __contains__(self, item: object) -> bool:
        return False

    def __hash__(self) -> int:
        return hash("\x00absent")

    def __str__(self) -> str:
        return "\x00absent"  # Casbin str()s role domains; this names no real domain


ABSENT = _Absent()


class _Str(str):
    """A string that is never equal or ordered to a number; ``in`` is Casbin's substring
    containment (only strings are in a string)."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        if _defer(other):
            return NotImplemented
        return _scalar_eq(self, other)

    def __ne__(self, other: object) -> bool:
        if _defer(other):
            return NotImplemented
        return not _scalar_eq(self, other)

    def __lt__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_lt, self, other)

    def __le__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_le, self, other)

    def __gt__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_gt, self, other)

    def __ge__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_ge, self, other)

    def __contains__(self, item: object) -> bool:
        return any(isinstance(x, str) and str(x) in str(self) for x in _elements(item))


class _Scalar:
    """A number or a boolean with typed comparisons (``True`` is not ``1``)."""

    def __init__(self, value: int | float | bool) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if _defer(other):
            return NotImplemented
        return _scalar_eq(self, other)

    def __ne__(self, other: object) -> bool:
        if _defer(other):
            return NotImplemented
        return not _scalar_eq(self, other)

    def __lt__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_lt, self, other)

    def __le__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_le, self, other)

    def __gt__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_gt, self, other)

    def __ge__(self, other: object) -> bool:
        return NotImplemented if _defer(other) else _scalar_order(_ge, self, other)

    def __contains__(self, item: object) -> bool:
        return any(_scalar_eq(self, x) for x in _elements(item))

    def __hash__(self) -> int:
        return hash((_kind(self), self.value))

    def __str__(self) -> str:
        return str(self.value)


class _AnyOf:
    """A list attribute: a comparison holds when it holds for some element."""

    def __init__(self, items: tuple[object, ...]) -> None:
        self.items = items

    def _any(self, other: object, test: Callable[[object, object], bool]) -> bool:
        return any(test(a, b) for a in self.items for b in _elements(other))

    def __eq__(self, other: object) -> bool:
        return self._any(other, _scalar_eq)

    def __ne__(self, other: object) -> bool:
        return bool(_elements(other)) and not self._any(other, _scalar_eq)

    def __lt__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _scalar_order(_lt, a, b))

    def __le__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _scalar_order(_le, a, b))

    def __gt__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _scalar_order(_gt, a, b))

    def __ge__(self, other: object) -> bool:
        return self._any(other, lambda a, b: _scalar_order(_ge, a, b))

    def __contains__(self, item: object) -> bool:
        return self._any(item, _scalar_eq)

    def __hash__(self) -> int:
        return hash(self.items)

    def __str__(self) -> str:
        return str([str(item) for item in self.items])


def oracle_value(value: object) -> object:
    """A metadata or subject value as the oracle's matcher sees it."""
    if value is None:
        return ABSENT
    if isinstance(value, str):
        return _Str(value)
    if isinstance(value, (bool, int, float)):
        assert not isinstance(value, float) or math.isfinite(value)
        return _Scalar(value)
    if isinstance(value, list):
        items = tuple(oracle_value(v) for v in value if v is not None)
        return _AnyOf(items) if items else ABSENT
    raise AssertionError(f"decision tables hold JSON scalars and lists only, got {value!r}")


class OracleSubject(_Str):
    """``r.sub``: the subject id, with ``r.sub.id`` and every attribute on it."""

    attributes: dict[str, object]

    def __new__(cls, subject: Mapping[str, Any]) -> OracleSubject:
        self = super().__new__(cls, subject["id"])
        for name in subject:
            # str's own attributes (r.sub.count, r.sub.title ...) would shadow these.
            assert name == "id" or not hasattr(str, name), f"attribute {name!r} shadows str"
        self.attributes = {k: oracle_value(v) for k, v in subject.items()}
        return self

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.attributes.get(name, ABSENT)


class OracleChunk:
    """``r.obj``: one attribute per metadata key, absent keys compare false."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        self._values = {k: oracle_value(v) for k, v in metadata.items()}

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._values.get(name, ABSENT)


def _string_args(function: Callable[[str, str], bool]) -> Callable[[object, object], bool]:
    """A Casbin matching function applied element-wise to strings only."""

    def call(key: object, pattern: object) -> bool:
        return any(
            function(str(a), str(b))
            for a in _elements(key)
            for b in _elements(pattern)
            if _kind(a) == "str" and _kind(b) == "str"
        )

    return call


_MATCH_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "keyMatch": casbin_util.key_match,
    "keyMatch2": casbin_util.key_match2,
    "keyMatch3": casbin_util.key_match3,
    "keyMatch4": casbin_util.key_match4,
    "keyMatch5": casbin_util.key_match5,
    "regexMatch": casbin_util.regex_match,
    "globMatch": casbin_util.glob_match,
}


def casbin_oracle(folder: Path) -> casbin.Enforcer:
    """An enforcer built by Casbin alone from the folder's files (its own file adapter)."""
    enforcer = casbin.Enforcer(str(folder / "model.conf"), str(folder / "policy.csv"))
    for name, function in _MATCH_FUNCTIONS.items():
        enforcer.add_function(name, _string_args(function))
    return enforcer


def oracle_decides(enforcer: casbin.Enforcer, row: Row, action: str = "read") -> bool:
    return bool(enforcer.enforce(OracleSubject(row.subject), OracleChunk(row.chunk), action))


# -- fixtures --------------------------------------------------------------------------------


@dataclass
class Library:
    """One policy folder, loaded: policy, guard over a shard of its table's chunks."""

    folder: Path
    rows: list[Row]
    policy: rg.Policy
    store: rg.EdgeStore
    guard: rg.Guard
    oracle: casbin.Enforcer
    chunk_ids: dict[str, str]


def _vector(i: int) -> list[float]:
    return [math.cos(i + d) + 1.5 for d in range(DIM)]


@pytest.fixture(scope="module")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Library]]:
    loaded: dict[str, Library] = {}
    try:
        for folder in _policy_folders():
            rows = read_decision_table(folder)
            policy = load_policy(folder)
            store = rg.EdgeStore.create(tmp_path_factory.mktemp(folder.name) / "shard", dim=DIM)
            chunks = _chunks(rows)
            ids = store.upsert(
                rg.Chunk(text=f"chunk {i}", metadata=chunk, vector=_vector(i), id=i)
                for i, chunk in enumerate(chunks)
            )
            store.create_payload_indexes(policy.index_specs())
            store.optimize()
            chunk_ids = {
                json.dumps(c, sort_keys=True): cid for c, cid in zip(chunks, ids, strict=True)
            }
            guard = rg.Guard(policy, store, exact_search=True)
            loaded[folder.name] = Library(
                folder, rows, policy, store, guard, casbin_oracle(folder), chunk_ids
            )
        yield loaded
    finally:
        for library in loaded.values():
            library.store.close()


# -- the folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("folder", _policy_folders(), ids=lambda p: p.name)
def test_folder_is_a_complete_documented_policy(folder: Path) -> None:
    """A policy folder has model, policy and README, loads, and has a real decision table."""
    for name in ("model.conf", "policy.csv", "README.md"):
        assert (folder / name).is_file(), f"{folder} lacks {name}"
    load_policy(folder)
    rows = read_decision_table(folder)
    assert len(rows) >= MIN_ROWS, (
        f"{folder / 'README.md'} needs a '## Decision table' with at least {MIN_ROWS} rows "
        f"(header | {' | '.join(DECISION_HEADER)} |); found {len(rows)}"
    )
    assert {row.released for row in rows} == {True, False}, "show releases and denials"


def test_the_library_has_the_promised_policy_sets() -> None:
    """The six sets the documentation links to exist."""
    names = {folder.name for folder in _policy_folders()}
    assert names >= {
        "multi-tenant-saas",
        "clearance",
        "department-grants",
        "clinical-notes",
        "legal-hold",
        "kb-paths",
    }


@pytest.mark.parametrize("row", _all_rows(), ids=str)
def test_decision_table_row(row: Row, libraries: dict[str, Library]) -> None:
    """The guard and casbin.enforce both give the README's verdict, for the README's reason."""
    library = libraries[row.folder]
    subject = row.make_subject()
    decision = library.guard.check(subject, row.chunk)
    assert decision.released is row.released, f"{row}: guard says {decision}"
    explanation = decision.rule if row.released else decision.reason
    assert explanation is not None, f"{row}: the decision has no rule/reason: {decision}"
    assert row.why in explanation, (
        f"{row}: expected {row.why!r} in {'rule' if row.released else 'reason'} {explanation!r}"
    )
    assert oracle_decides(library.oracle, row) is row.released, f"{row}: casbin.enforce disagrees"


@pytest.mark.parametrize("folder", _policy_folders(), ids=lambda p: p.name)
def test_store_pushdown_agrees_with_the_table(folder: Path, libraries: dict[str, Library]) -> None:
    """Pushed into Qdrant, each subject's filter keeps every chunk it may read (all of
    them and nothing more when the plan is exact), and guarded search releases exactly
    the chunks the table releases."""
    library = libraries[folder.name]
    everything = len(library.chunk_ids)
    for subject_json in _subjects(library.rows):
        subject = rg.Subject(
            id=subject_json["id"], attributes={k: v for k, v in subject_json.items() if k != "id"}
        )
        allowed = {
            cid
            for key, cid in library.chunk_ids.items()
            if library.guard.check(subject, json.loads(key)).released
        }
        for row in library.rows:
            if row.subject == subject_json:
                chunk_id = library.chunk_ids[json.dumps(row.chunk, sort_keys=True)]
                assert (chunk_id in allowed) is row.released, str(row)
        plan = library.guard.plan(subject)
        pushdown = library.store.translate(plan.filter)
        if plan.kind == "deny_all":
            assert allowed == set()
        else:
            pushed = {
                hit.id for hit in library.store.search(_vector(0), everything, pushdown, exact=True)
            }
            assert pushed >= allowed, f"{subject_json}: the filter dropped readable chunks"
            if plan.exact:
                assert pushed == allowed, f"{subject_json}: an exact plan admitted extra chunks"
        hits = library.guard.search(subject, _vector(0), k=everything)
        assert {hit.id for hit in hits} == allowed


@pytest.mark.parametrize("folder", _policy_folders(), ids=lambda p: p.name)
def test_readme_lists_the_payload_indexes_the_policy_needs(folder: Path) -> None:
    """The README's index table is what Policy.index_specs() asks the store to build."""
    specs = [(s.field, s.schema, s.is_tenant) for s in load_policy(folder).index_specs()]
    assert read_index_table(folder) == specs


def test_clinical_notes_readme_requires_audit_for_break_glass() -> None:
    """Break-glass access is only acceptable with a mandatory audit trail."""
    text = (POLICIES / "clinical-notes" / "README.md").read_text(encoding="utf-8")
    assert "audit_required=True" in text


# -- golden plans ----------------------------------------------------------------------------


def plan_record(guard: rg.Guard, store: rg.Store, subject_json: dict[str, Any]) -> dict[str, Any]:
    """A subject's plan in a stable, reviewable JSON form."""
    subject = rg.Subject(
        id=subject_json["id"], attributes={k: v for k, v in subject_json.items() if k != "id"}
    )
    plan = guard.plan(subject)
    description = plan.to_json()
    relaxed = list(store.translate(plan.filter).relaxed) if plan.kind == "conditional" else []
    return {
        "subject": subject_json,
        "kind": plan.kind,
        "exact": plan.exact,
        "filter": ir.to_json(plan.filter),
        "allow_lines": description["allow_lines"],
        "deny_lines": description["deny_lines"],
        "relaxed_in_qdrant": relaxed,
    }


def _golden_text(library: Library) -> str:
    records = [
        plan_record(library.guard, library.store, subject) for subject in _subjects(library.rows)
    ]
    return json.dumps(records, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("folder", _policy_folders(), ids=lambda p: p.name)
def test_compiled_plans_match_the_golden_files(folder: Path, libraries: dict[str, Library]) -> None:
    """Each example subject's plan (kind, exactness, filter, lines) is the reviewed one."""
    golden = GOLDEN / f"{folder.name}.json"
    actual = _golden_text(libraries[folder.name])
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    assert golden.exists(), f"{golden} is missing; run with RAGGUARD_UPDATE_GOLDEN=1"
    assert golden.read_text(encoding="utf-8") == actual, (
        f"the compiled plans of policies/{folder.name} changed; review the diff and run "
        "with RAGGUARD_UPDATE_GOLDEN=1 to accept it"
    )


def test_every_golden_file_belongs_to_a_policy_folder() -> None:
    """No stale golden files for policy sets that no longer exist."""
    names = {folder.name for folder in _policy_folders()}
    stale = [p.name for p in GOLDEN.glob("*.json") if p.stem not in names]
    assert stale == []


def test_golden_files_are_committed() -> None:
    """A golden file that exists only in a working tree would pass here and fail in CI."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        [git, "ls-files", "--", str(GOLDEN.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = [f"tests/unit/golden/{folder.name}.json" for folder in _policy_folders()]
    missing = [path for path in expected if path not in tracked]
    assert missing == [], f"git add and commit these golden files: {missing}"


# -- the documentation's examples ------------------------------------------------------------

DOCS_WITH_EXAMPLES = ("policy-language.md", "concepts.md")


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def _expected_output(block: str) -> list[str]:
    """The ``# `` comment lines that directly follow a ``print(...)`` line (one per line
    printed): what the documentation says the call prints."""
    expected: list[str] = []
    after_print = False
    for line in block.splitlines():
        if after_print and line.startswith("# "):
            expected.append(line[2:])
            continue
        after_print = "print(" in line
    return expected


@pytest.mark.parametrize("name", DOCS_WITH_EXAMPLES)
def test_documentation_examples_run_and_print_what_they_say(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Python block of the page runs, top to bottom, and prints what it claims."""
    path = ROOT / "docs" / name
    blocks = _python_blocks(path)
    assert blocks, f"{path} has no Python examples"
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": f"docs.{path.stem}"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for block in blocks:
            exec(compile(block, str(path), "exec"), namespace)
    printed = output.getvalue().splitlines()
    expected = [line for block in blocks for line in _expected_output(block)]
    assert expected, f"{path}: show what at least one example prints"
    missing = [line for line in expected if line not in printed]
    assert missing == [], f"{path}: these documented outputs were not printed: {missing}"
