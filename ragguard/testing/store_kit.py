"""A conformance suite for :class:`~ragguard.Store` implementations: subclass it in pytest.

A store author writes one class and gets the checks every ragguard store must pass, run
against the store's real engine (in the spirit of ``langchain-tests``' standard suites)::

    import pytest
    from ragguard.testing.store_kit import StoreConformanceSuite

    class TestMyStore(StoreConformanceSuite):
        distances = ("cosine", "dot", "euclid")   # the metrics your store offers

        def make_store(self, dim: int, distance: str) -> MyStore:
            return MyStore.create(dim=dim, distance=distance)   # empty, ready to upsert

``make_store`` returns a new, empty store; the suite closes it. A store that needs a
server or a directory gets it from an ``autouse`` fixture of the subclass, which runs
before the suite's own fixtures (see ``tests/conformance/test_store_kit_*.py`` in the
ragguard repository for EdgeStore, QdrantStore and PgVectorStore).

What it checks (the pushed-down filter is always compared with ragguard's compiled
predicate, the same function the guard's re-check runs; ``casbin`` is never called):

* **random IR**: random filter expressions over random payloads (hypothesis): the
  store's filter returns a superset of the points the predicate accepts, and exactly
  them when ``translate`` says the pushdown is ``exact``;
* **edge values**: absent attributes, ``None``, ``True`` against ``1``, ``1`` against
  ``1.0``, strings against numbers, lists, unicode (NFC and NFD are different strings),
  integers around ``2**53`` and the 64-bit edges, and ``In`` lists of 1 to 10,000 values;
* **guarded top-k**: ``Guard(exact_search=True).search`` releases exactly the authorised
  top-k by numpy brute force, at several selectivities, in every metric of
  :attr:`StoreConformanceSuite.distances`;
* **error contract**: wrong vectors and metadata without a JSON form raise
  :class:`~ragguard.StoreError`, and a guarded search that fails releases and audits
  nothing;
* **concurrency**: guarded searches of different subjects from several threads never
  see each other's chunks.

Every check upserts its own points under a fresh ``kit_case`` attribute and ANDs
``kit_case == n`` to the filter it pushes down, so the store needs no delete operation.
The default run takes a few seconds per store; :attr:`examples` (or the environment
variable ``RAGGUARD_CONFORMANCE_EXAMPLES``) sets the number of random examples.

Needs ``pytest`` and ``hypothesis`` (``pip install "ragguard[testing]"``); this module
imports them, ``ragguard.testing`` does not.
"""

from __future__ import annotations

import itertools
import os
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ragguard.exceptions import MissingDependencyError, StoreError

try:
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "pytest and hypothesis", "ragguard.testing.store_kit (pip install 'ragguard[testing]')"
    ) from exc

from ragguard.guard import Guard
from ragguard.policy import Policy, ir
from ragguard.policy._predicate import compile_check, normalize_metadata
from ragguard.stores.base import Chunk, Store
from ragguard.subject import Subject
from ragguard.testing import RecordingAuditSink, clustered_vectors

__all__ = [
    "FIELDS",
    "ODD_FIELD",
    "StoreConformanceSuite",
    "expressions",
    "fit_metadata",
    "payloads",
    "predicate_accepts",
]

CASE_FIELD = "kit_case"
FIELDS = ("a", "b", "c")
ODD_FIELD = "x-y"  # not a plain identifier: stores may relax it, never mis-address it
EXAMPLES_ENV = "RAGGUARD_CONFORMANCE_EXAMPLES"

# -- random IR and payloads ---------------------------------------------------------------------

_strings = st.sampled_from(["", "s", "t", "ü", "1", "true", "S", "st", "s,t", "é", "e\u0301"])
_ints = st.sampled_from(
    [
        *(0, 1, 2, -1, 10),
        *(2**53, 2**53 + 1, 2**53 + 2, -(2**53) - 1, 2**60 + 1),
        *(2**63 - 2, 2**63 - 1, 2**63, -(2**63) + 1, -(2**63), 2**64 - 1),
    ]
)
_unstorable_ints = st.sampled_from([2**64 + 1, -(2**63) - 1, 10**30])  # filter values only
_floats = st.sampled_from([0.0, 1.0, 1.5, -2.5, 2.0**53, 2.0**53 + 2, 2.0**63, 1e300])
_scalars = st.one_of(_strings, _ints, _floats, st.booleans())
_filter_scalars = st.one_of(_scalars, _unstorable_ints)
_fields = st.one_of(st.sampled_from(FIELDS), st.sampled_from(FIELDS), st.just(ODD_FIELD))


@st.composite
def _range(draw: st.DrawFn) -> ir.Expr:
    bound = st.one_of(_ints, _floats) if draw(st.integers(0, 4)) else _strings
    names = draw(st.lists(st.sampled_from(["gt", "gte", "lt", "lte"]), min_size=1, unique=True))
    given_bounds: dict[str, Any] = {name: draw(bound) for name in names}
    return ir.Range(
        draw(_fields),
        gt=given_bounds.get("gt"),
        gte=given_bounds.get("gte"),
        lt=given_bounds.get("lt"),
        lte=given_bounds.get("lte"),
    )


@st.composite
def _many_numbers(draw: st.DrawFn) -> ir.Expr:
    start = draw(st.integers(-5, 5))
    return ir.In(draw(_fields), tuple(range(start, start + draw(st.sampled_from([17, 70])))))


_atoms: st.SearchStrategy[ir.Expr] = st.one_of(
    st.builds(ir.Eq, _fields, _filter_scalars),
    st.builds(ir.in_, _fields, st.lists(_filter_scalars, min_size=1, max_size=4)),
    st.builds(ir.In, _fields, st.lists(_filter_scalars, min_size=1, max_size=4).map(tuple)),
    _range(),
    st.builds(ir.Exists, _fields),
    st.builds(
        ir.Match,
        st.sampled_from(["keyMatch", "regexMatch", "globMatch"]),
        _fields,
        st.sampled_from(["s*", "^t", "*"]),
        st.booleans(),
    ),
    st.builds(ir.Contains, _fields, _strings),
    st.builds(ir.Within, _fields, st.sampled_from(["st", "s,t", "tü1", "", "s" * 65 + "t"])),
    st.sampled_from([ir.TRUE, ir.FALSE]),
    _many_numbers(),
)


def _extend(children: st.SearchStrategy[ir.Expr]) -> st.SearchStrategy[ir.Expr]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ir.Not, children),
        st.builds(ir.And, items),
        st.builds(ir.Or, items),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: ir.and_(*xs)),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: ir.or_(*xs)),
    )


expressions: st.SearchStrategy[ir.Expr] = st.recursive(_atoms, _extend, max_leaves=6)
"""Random filter IR over the attributes ``a``, ``b``, ``c`` and ``x-y``."""

_payload_values = st.one_of(
    _scalars,
    _scalars,
    st.lists(st.one_of(_scalars, st.none()), max_size=3),
    st.sampled_from([None, [None]]),
    st.sampled_from([2**62, -(2**62), 3.25, 2**53 + 1, 2**63 - 2, 2.0**60, 2**63, 2**64 - 1]),
    st.sampled_from(["s,t", "st", "ts", ["s,t"], ["st", "t"]]),
)
payloads: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from([*FIELDS, ODD_FIELD, "other"]), _payload_values, max_size=4
)
"""Random chunk metadata: scalars, lists (with ``null``), big integers, unicode."""


def fit_metadata(
    metadata: Mapping[str, Any],
    *,
    integer_range: tuple[int, int] = (-(2**63), 2**64 - 1),
    mixed_lists: bool = True,
) -> dict[str, Any]:
    """``metadata`` made storable in a store that keeps integers in ``integer_range`` and,
    without ``mixed_lists``, lists of one type: a wider integer becomes the nearest end
    of the range; a list keeps ``None`` and the elements of its first element's type."""
    low, high = integer_range

    def integer(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return min(max(value, low), high)
        return value

    fitted: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, list):
            items = [integer(item) for item in value]
            kinds = [type(item) for item in items if item is not None]
            if not mixed_lists and kinds:
                items = [item for item in items if item is None or type(item) is kinds[0]]
            fitted[key] = items
        else:
            fitted[key] = integer(value)
    return fitted


def predicate_accepts(expr: ir.Expr, metadata: Mapping[str, Any]) -> bool:
    """Whether ragguard's compiled predicate (the guard's re-check) accepts ``metadata``."""
    fields = frozenset(ir.fields_of(expr))
    return compile_check(expr)(normalize_metadata(metadata, fields))


def _holds_null_list(metadata: Mapping[str, Any], fields: set[str]) -> bool:
    """A list holding ``null``: absent/shorter to ragguard, not to every engine (the one
    documented superset an exact pushdown may return; the guard's re-check withholds it)."""
    return any(isinstance(metadata.get(f), list) and None in metadata[f] for f in fields)


# -- edge values ---------------------------------------------------------------------------------

_BIG_NUMBERS: tuple[Any, ...] = (
    *(2**53 - 1, 2**53, 2**53 + 1, 2**53 + 2, 2.0**53, 2.0**53 + 2, -(2**53) - 1),
    *(2**60, 2**60 + 1, 2.0**60, 1234567890123456789, 1234567890123456790),
    *(2**63 - 2, 2**63 - 1, 2**63, 2.0**63, -(2**63) + 1, -(2**63), 2**64 + 1, 10**30),
)
_EDGE_PAYLOAD_VALUES: tuple[Any, ...] = (
    *(1, 1.0, True, False, 0, "1", "true", "", "a", "ü", "é", unicodedata.normalize("NFD", "é")),
    *("日本", "🙂", -1, 2.5, [1, 2], ["a", "b"], [], [True], ["1", 1], [None], [None, "a"]),
    *(2**53 + 1, 2**64 - 1, -(2**63), 2**63, 2.0**53),
)
_EDGE_FILTER_VALUES: tuple[Any, ...] = (
    *(1, 1.0, True, False, 0, "1", "true", "", "a", "ü", "é", unicodedata.normalize("NFD", "é")),
    *("🙂", 2.5, 2**53 + 1, 2**64 - 1, -(2**63), 2**64 + 1),
)


def _edge_expressions() -> list[ir.Expr]:
    out: list[ir.Expr] = [ir.Exists("v"), ir.Not(ir.Exists("v"))]
    for value in _EDGE_FILTER_VALUES:
        out += [ir.Eq("v", value), ir.Not(ir.Eq("v", value)), ir.in_("v", [value, "zz"])]
    for value in (0, 1, 1.5, "a", "b", 2**53, 2**63 - 1):
        out += [ir.Range("v", gt=value), ir.Range("v", lte=value)]
    out += [ir.Contains("v", "a"), ir.Within("v", "ab1"), ir.Match("keyMatch", "v", "a*", True)]
    return out


# -- the suite ------------------------------------------------------------------------------------


class StoreConformanceSuite:
    """Base class of a store's conformance tests: subclass it and implement :meth:`make_store`.

    Class attributes a subclass may override: :attr:`dim`, :attr:`distances`,
    :attr:`examples`, :attr:`exact_search` (pass ``exact=True`` to ``search``; keep it
    on for an approximate index such as HNSW, the kit checks filters, not recall),
    :attr:`refuses_wide_integers`, :attr:`integer_range`, :attr:`mixed_lists`. Hooks: :meth:`make_store` (required),
    :meth:`close_store`, :meth:`break_store`.
    """

    dim: ClassVar[int] = 8
    """Vector dimension of the stores the suite makes."""
    distances: ClassVar[tuple[str, ...]] = ("cosine",)
    """Metrics the guarded top-k check runs in (``cosine``, ``dot``, ``euclid``, ``manhattan``)."""
    examples: ClassVar[int] = 60
    """Random IR examples (``RAGGUARD_CONFORMANCE_EXAMPLES`` overrides it)."""
    exact_search: ClassVar[bool] = True
    """Whether the suite asks the store for exhaustive search."""
    refuses_wide_integers: ClassVar[bool] = True
    """Whether integers outside :attr:`integer_range` are refused with StoreError (Qdrant)
    or kept exactly."""
    integer_range: ClassVar[tuple[int, int]] = (-(2**63), 2**64 - 1)
    """The integers the store keeps exactly (Qdrant: -2**63..2**64-1; Chroma:
    -2**63..2**63-1). The suite stores no integer outside it except to check that it is
    refused (with :attr:`refuses_wide_integers`)."""
    mixed_lists: ClassVar[bool] = True
    """Whether a list may mix types (``["1", 1]``, ``[True, 1]``); a store that keeps
    lists of one type (Chroma) refuses the others with StoreError, and the suite stores
    no mixed list except to check that."""

    def make_store(self, dim: int, distance: str) -> Store:
        """A new, empty store of ``dim`` dimensions scoring in ``distance``."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_store(dim, distance)")

    def close_store(self, store: Store) -> None:
        """Release a store the suite made (default: ``store.close()``)."""
        store.close()

    def break_store(self, store: Store) -> None:
        """Make the store's engine fail from now on (default: :meth:`close_store`, and
        the store's methods must then raise). The suite still calls :meth:`close_store`
        afterwards, so closing must be idempotent."""
        self.close_store(store)

    # -- fixtures and helpers --------------------------------------------------------------------

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """An empty store in the first of :attr:`distances`."""
        made = self.make_store(self.dim, self.distances[0])
        try:
            yield made
        finally:
            self.close_store(made)

    def _storable(self, value: Any) -> bool:
        """Whether the suite may store ``value``: an integer in :attr:`integer_range`."""
        low, high = self.integer_range
        if isinstance(value, int) and not isinstance(value, bool):
            return low <= value <= high
        if isinstance(value, list):
            kinds = {type(item) for item in value if item is not None}
            return all(self._storable(item) for item in value) and (
                self.mixed_lists or len(kinds) <= 1
            )
        return True

    def _fit(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        return fit_metadata(
            metadata, integer_range=self.integer_range, mixed_lists=self.mixed_lists
        )

    _cases: ClassVar[Iterator[int]] = itertools.count(1)
    _ids: ClassVar[Iterator[int]] = itertools.count(1)

    def _load(
        self, store: Store, metadatas: Sequence[Mapping[str, Any]], vectors: Any = None
    ) -> tuple[int, dict[str, dict[str, Any]]]:
        """Upsert one case's points (tagged with a fresh ``kit_case``); their metadata by id."""
        case = next(self._cases)
        if vectors is None:
            rng = np.random.default_rng(case)
            vectors = rng.standard_normal((len(metadatas), self.dim)) + 0.1
        by_id: dict[str, dict[str, Any]] = {}
        chunks = []
        for metadata, vector in zip(metadatas, vectors, strict=True):
            tagged = {**metadata, CASE_FIELD: case}
            pid = next(self._ids)
            chunks.append(Chunk(f"chunk {pid}", tagged, [float(x) for x in vector], id=pid))
        ids = store.upsert(chunks)
        for stored_id, chunk in zip(ids, chunks, strict=True):
            by_id[str(stored_id)] = dict(chunk.metadata)
        return case, by_id

    def _check_filter(
        self, store: Store, case: int, by_id: Mapping[str, Mapping[str, Any]], expr: ir.Expr
    ) -> bool:
        """Store ⊇ predicate, and = when exact; returns whether the pushdown was exact."""
        scoped = ir.and_(ir.Eq(CASE_FIELD, case), expr)
        pushdown = store.translate(scoped)
        limit = len(by_id) + 10_000
        found = {
            h.id for h in store.search([1.0] * self.dim, limit, pushdown, exact=self.exact_search)
        }
        accepted = {i for i, md in by_id.items() if predicate_accepts(scoped, md)}
        context = f"\nexpr={expr!r}\nexact={pushdown.exact} relaxed={pushdown.relaxed}"
        missing = accepted - found
        assert not missing, (
            f"the store's filter dropped authorised points {[by_id[i] for i in missing]}" + context
        )
        if pushdown.exact:
            fields = ir.fields_of(expr)
            extra = [
                by_id.get(i, i)
                for i in found - accepted
                if i not in by_id or not _holds_null_list(by_id[i], fields)
            ]
            assert not extra, f"an exact pushdown let through {extra}" + context
        return pushdown.exact

    def _settings(self) -> settings:
        raw = os.environ.get(EXAMPLES_ENV, "").strip()
        return settings(
            max_examples=int(raw) if raw else self.examples,
            deadline=None,
            derandomize=not raw,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )

    # -- the pushed-down filter ------------------------------------------------------------------

    def test_random_ir_agrees_with_the_compiled_predicate(self, store: Store) -> None:
        """Random IR over random payloads: store ⊇ predicate, and = when exact."""

        @self._settings()
        @given(expr=expressions, points=st.lists(payloads.map(self._fit), min_size=1, max_size=12))
        def agrees(expr: ir.Expr, points: list[dict[str, Any]]) -> None:
            case, by_id = self._load(store, points)
            self._check_filter(store, case, by_id, expr)

        agrees()

    def test_edge_values_agree_with_the_compiled_predicate(self, store: Store) -> None:
        """Absent, None, True vs 1, 1 vs 1.0, strings vs numbers, lists, unicode, 64-bit edges."""
        points: list[dict[str, Any]] = [
            {"v": value} for value in _EDGE_PAYLOAD_VALUES if self._storable(value)
        ]
        points += [{}, {"v": None}, {"other": 1}]
        case, by_id = self._load(store, points)
        for expr in _edge_expressions():
            self._check_filter(store, case, by_id, expr)

    def test_big_integers_are_exact_or_relaxed_never_wrong(self, store: Store) -> None:
        """Equalities on numbers around 2**53 and 2**63 against such payloads (and True, 1)."""
        values = [*_BIG_NUMBERS, 2**64 - 1, True, 1, [2**53 + 1, 5], "2"]
        points: list[dict[str, Any]] = [{"v": value} for value in values if self._storable(value)]
        case, by_id = self._load(store, points)
        for value in _BIG_NUMBERS:
            for expr in (ir.Eq("v", value), ir.in_("v", [value, 5]), ir.not_(ir.Eq("v", value))):
                self._check_filter(store, case, by_id, expr)

    def test_integers_outside_64_bits_are_refused_or_kept_exactly(self, store: Store) -> None:
        """Integers in :attr:`integer_range` read back exactly; wider ones are refused with
        StoreError (:attr:`refuses_wide_integers`, Qdrant) or kept and filtered exactly."""
        low, high = self.integer_range
        candidates = [2**64 - 1, 2**63, 2**63 - 1, 2**53 + 1, -(2**63), low, high]
        values = list(dict.fromkeys(v for v in candidates if low <= v <= high))
        [kept] = store.upsert([Chunk("t", {"acct": values}, [1.0] * self.dim, id="kit-edges")])
        [chunk] = store.get([kept])
        assert chunk.metadata is not None
        assert chunk.metadata["acct"] == values
        assert all(type(item) is int for item in chunk.metadata["acct"])
        outside = [2**64, 2**64 + 1, -(2**63) - 1, 10**30, high + 1, low - 1, *candidates]
        wide = list(dict.fromkeys(v for v in outside if not low <= v <= high))
        if self.refuses_wide_integers:
            for value in wide:
                with pytest.raises(StoreError):
                    store.upsert([Chunk("t", {"acct": value}, [1.0] * self.dim, id="kit-wide")])
                good = Chunk("fine", {"acct": 1}, [1.0] * self.dim, id="kit-wide-good")
                with pytest.raises(StoreError):
                    store.upsert([good, Chunk("t", {"acct": [1, value]}, [1.0] * self.dim)])
            assert store.get(["kit-wide", "kit-wide-good"]) == []
            return
        points: list[dict[str, Any]] = [{"v": value} for value in [*wide, 2.0**64, 1]]
        case, by_id = self._load(store, points)
        for stored in store.get(list(by_id)):
            assert stored.metadata is not None
            # equal as numbers (a float may come back as the integer of the same value)
            assert stored.metadata["v"] == by_id[stored.id]["v"]
        filter_values: list[int | float] = [*wide, 2.0**64]
        for number in filter_values:
            for expr in (ir.Eq("v", number), ir.not_(ir.Eq("v", number)), ir.Range("v", gt=number)):
                self._check_filter(store, case, by_id, expr)

    def test_mixed_lists_are_refused_or_kept(self, store: Store) -> None:
        """A list mixing types is kept as written, or refused with StoreError with nothing
        of the batch written (without :attr:`mixed_lists`)."""
        mixed: list[list[Any]] = [["1", 1], [True, 1], ["a", 2.5]]
        good = Chunk("fine", {"v": 1}, [1.0] * self.dim, id="kit-mixed-good")
        for index, value in enumerate(mixed):
            chunk = Chunk("t", {"v": value}, [1.0] * self.dim, id=f"kit-mixed-{index}")
            if self.mixed_lists:
                [kept] = store.upsert([chunk])
                [stored] = store.get([kept])
                assert stored.metadata == {"v": value}
                continue
            with pytest.raises(StoreError):
                store.upsert([good, chunk])
            assert store.get(["kit-mixed-good", f"kit-mixed-{index}"]) == []

    @pytest.mark.parametrize("size", [1, 10, 100, 1_000, 10_000])
    def test_in_lists_of_1_to_10000_values(self, store: Store, size: int) -> None:
        """A long ``In`` list (numbers, strings, mixed) keeps exactly its members."""
        points: list[dict[str, Any]] = [
            {"v": value}
            for value in (0, 1, size - 1, size, 2 * size, "0", f"s{size - 1}", f"s{size}", True)
        ]
        case, by_id = self._load(store, points)
        numbers: list[ir.Scalar] = list(range(size))
        strings: list[ir.Scalar] = [f"s{i}" for i in range(size)]
        mixed: list[ir.Scalar] = [*numbers[: size // 2 + 1], *strings[: size // 2 + 1]]
        for values in (numbers, strings, mixed):
            self._check_filter(store, case, by_id, ir.in_("v", values))
            self._check_filter(store, case, by_id, ir.not_(ir.in_("v", values)))

    # -- guarded search -------------------------------------------------------------------------

    _MODEL: ClassVar[str] = (
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, act\n"
        "[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\n"
        "m = r.act == p.act && r.obj.tenant == r.sub.tenant && r.obj.level <= r.sub.clearance\n"
    )

    def _corpus(self, n: int, seed: int) -> tuple[list[dict[str, Any]], npt.NDArray[np.float32]]:
        rng = np.random.default_rng(seed)
        tenants = rng.choice(["big", "mid", "tiny"], size=n, p=[0.7, 0.295, 0.005])
        metadatas = [
            {"tenant": str(t), "level": int(level)}
            for t, level in zip(tenants, rng.integers(0, 4, size=n), strict=True)
        ]
        return metadatas, clustered_vectors(n, self.dim, clusters=6, seed=seed)

    @staticmethod
    def _truth(
        distance: str, query: npt.NDArray[np.float64], matrix: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        if distance == "euclid":
            result: npt.NDArray[np.float64] = np.linalg.norm(matrix - query, axis=1)
        elif distance == "manhattan":
            result = np.abs(matrix - query).sum(axis=1)
        elif distance == "dot":
            result = matrix @ query
        else:
            result = (matrix @ (query / np.linalg.norm(query))) / np.linalg.norm(matrix, axis=1)
        return result

    def test_guarded_top_k_matches_numpy_brute_force(self) -> None:
        """Exactly the authorised top-k, in order, at 70 %, 30 % and 0.5 % readable, in
        every metric of ``distances``; the plan's pushdown is honest about exactness."""
        policy = Policy.from_casbin(self._MODEL, "p, anyone, read\n")
        subjects = [
            Subject(id=f"{tenant}-{clearance}", attributes={"tenant": tenant, "clearance": level})
            for tenant, clearance, level in (
                ("big", "all", 3),
                ("big", "low", 0),
                ("mid", "all", 3),
                ("tiny", "all", 3),
                ("nobody", "all", 3),
            )
        ]
        n = 600
        metadatas, vectors = self._corpus(n, seed=11)
        for distance in self.distances:
            store = self.make_store(self.dim, distance)
            try:
                case, by_id = self._load(store, metadatas, vectors)
                ids = list(by_id)
                matrix = np.asarray(vectors, dtype=np.float64)
                guard = Guard(policy, store, exact_search=self.exact_search)
                lower_is_better = distance in ("euclid", "manhattan")
                rng = np.random.default_rng(5)
                for subject in subjects:
                    authorised = [i for i in ids if policy.check(subject, by_id[i]).released]
                    plan = guard.plan(subject)
                    if plan.kind == "conditional":
                        self._check_filter(store, case, by_id, plan.filter)
                    for k in (1, 10, 50):
                        query = rng.standard_normal(self.dim)
                        truth = self._truth(distance, query, matrix)
                        score = dict(zip(ids, truth.tolist(), strict=True))
                        hits = guard.search(subject, list(query), k)
                        self._assert_top_k(
                            hits, k, score, authorised, lower_is_better, f"{distance} {subject.id}"
                        )
            finally:
                self.close_store(store)

    @staticmethod
    def _assert_top_k(
        hits: Sequence[Any],
        k: int,
        score: Mapping[str, float],
        authorised: Sequence[str],
        lower_is_better: bool,
        context: str,
    ) -> None:
        tolerance = 1e-4
        got = [hit.id for hit in hits]
        allowed = set(authorised)
        assert not [i for i in got if i not in allowed], f"unauthorised chunks released ({context})"
        assert len(set(got)) == len(got), f"a chunk was released twice ({context})"
        assert len(got) == min(k, len(authorised)), f"wrong number of hits ({context})"
        sign = 1.0 if lower_is_better else -1.0
        ranked = sorted(sign * score[i] for i in authorised)
        for position, hit in enumerate(hits):
            assert abs(hit.score - score[hit.id]) <= tolerance * max(1.0, abs(score[hit.id])), (
                f"store score {hit.score}, numpy {score[hit.id]} ({context})"
            )
            assert abs(sign * score[hit.id] - ranked[position]) <= tolerance * max(
                1.0, abs(ranked[position])
            ), f"hit {position} is not the authorised top-{k} by numpy ({context})"

    # -- the error contract -----------------------------------------------------------------------

    def test_wrong_vectors_are_store_errors(self, store: Store) -> None:
        """Wrong dimension, NaN: StoreError from upsert and search, nothing written."""
        for vector in ([1.0] * (self.dim + 1), [1.0] * (self.dim - 1), [float("nan")] * self.dim):
            with pytest.raises(StoreError):
                store.upsert([Chunk("t", {"v": 1}, vector, id="kit-bad-vector")])
            with pytest.raises(StoreError):
                store.search(vector, 3, store.translate(ir.TRUE), exact=self.exact_search)
        assert store.get(["kit-bad-vector"]) == []

    def test_metadata_without_a_json_form_is_a_store_error(self, store: Store) -> None:
        """NaN, a set, a non-string key: StoreError, and no chunk of the batch is written."""
        for bad in ({"v": float("nan")}, {"v": {1, 2}}, {"v": {1: "x"}}, {"v": [1, float("inf")]}):
            good = Chunk("fine", {"v": 1}, [1.0] * self.dim, id="kit-good")
            with pytest.raises(StoreError):
                store.upsert([good, Chunk("t", bad, [1.0] * self.dim, id="kit-bad")])
            assert store.get(["kit-good", "kit-bad"]) == []

    def test_a_failed_guarded_search_releases_and_audits_nothing(self, store: Store) -> None:
        """The engine fails (:meth:`break_store`): StoreError, no hit, no audit record."""
        self._load(store, [{"tenant": "big", "level": 0}] * 3)
        sink = RecordingAuditSink()
        guard = Guard(Policy.from_casbin(self._MODEL, "p, anyone, read\n"), store, audit=sink)
        subject = Subject(id="alice", attributes={"tenant": "big", "clearance": 3})
        assert len(guard.search(subject, [1.0] * self.dim, k=3)) == 3
        sink.clear()
        self.break_store(store)
        with pytest.raises(StoreError):
            guard.search(subject, [1.0] * self.dim, k=3)
        assert sink.retrievals == []

    # -- concurrency --------------------------------------------------------------------------------

    def test_concurrent_subjects_never_see_each_others_chunks(self, store: Store) -> None:
        """Eight threads, four tenants: every search returns its own tenant's expected top-k."""
        tenants = ["t0", "t1", "t2", "t3"]
        metadatas = [{"tenant": tenants[i % 4], "level": 0} for i in range(200)]
        vectors = clustered_vectors(len(metadatas), self.dim, clusters=4, seed=3)
        self._load(store, metadatas, vectors)
        policy = Policy.from_casbin(self._MODEL, "p, anyone, read\n")
        guard = Guard(policy, store, exact_search=self.exact_search)
        subjects = [Subject(id=t, attributes={"tenant": t, "clearance": 0}) for t in tenants]
        queries = [list(v) for v in clustered_vectors(6, self.dim, clusters=2, seed=4)]
        expected = {
            (s.id, q): [h.id for h in guard.search(s, queries[q], 10)]
            for s in subjects
            for q in range(len(queries))
        }
        start = threading.Barrier(8)

        def worker(index: int) -> list[str]:
            start.wait()
            problems: list[str] = []
            for round_ in range(12):
                subject = subjects[(index + round_) % 4]
                q = (index * 7 + round_) % len(queries)
                hits = guard.search(subject, queries[q], 10)
                if any(hit.metadata["tenant"] != subject.id for hit in hits):
                    problems.append(f"{subject.id} got another tenant's chunk")
                if [hit.id for hit in hits] != expected[(subject.id, q)]:
                    problems.append(f"{subject.id} query {q}: different hits under load")
            return problems

        with ThreadPoolExecutor(max_workers=8) as pool:
            problems = [p for result in pool.map(worker, range(8)) for p in result]
        assert not problems, problems[:5]
