"""The IR builders simplify without changing meaning.

Reference: a raw tree (plain ``And``/``Or``/``Not`` nodes, no simplification) evaluated
node by node; the same tree rebuilt through ``and_``/``or_``/``not_`` must decide every
generated chunk the same way, lists and absent attributes included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ragguard._values import normalize_value
from ragguard.policy import ir
from ragguard.policy._predicate import compile_check

FIELDS = ("a", "b", "c")
VALUES = (1, 2, 3, "x", "y", True)

atoms = st.one_of(
    st.builds(ir.Eq, st.sampled_from(FIELDS), st.sampled_from(VALUES)),
    st.builds(
        lambda f, vs: ir.in_(f, vs),
        st.sampled_from(FIELDS),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
    ).filter(lambda e: not isinstance(e, ir.Const)),
    st.builds(lambda f, v: ir.Range(f, lte=v), st.sampled_from(FIELDS), st.sampled_from((1, 2))),
    st.builds(lambda f, v: ir.Range(f, gte=v), st.sampled_from(FIELDS), st.sampled_from((2, 3))),
    st.builds(ir.Exists, st.sampled_from(FIELDS)),
)


@st.composite
def _raw_trees(draw: st.DrawFn) -> ir.Expr:
    """Unsimplified trees over a pool of two to four atoms, so that branches share
    conditions (what factoring and absorption rewrite) most of the time."""
    pool = draw(st.lists(atoms, min_size=2, max_size=4, unique=True))
    tree: ir.Expr = draw(
        st.recursive(
            st.sampled_from(pool),
            lambda children: st.one_of(
                st.builds(ir.Not, children),
                st.builds(lambda xs: ir.And(tuple(xs)), st.lists(children, min_size=2, max_size=4)),
                st.builds(lambda xs: ir.Or(tuple(xs)), st.lists(children, min_size=2, max_size=4)),
            ),
            max_leaves=12,
        )
    )
    return tree


@st.composite
def _policy_shaped(draw: st.DrawFn) -> ir.Expr:
    """What the compiler builds: ``OR(allow lines) AND NOT OR(deny lines)``, each line a
    conjunction over a shared pool (the shape factoring is for)."""
    pool = draw(st.lists(atoms, min_size=2, max_size=5, unique=True))
    line = st.lists(st.sampled_from(pool), min_size=1, max_size=3).map(
        lambda xs: xs[0] if len(xs) == 1 else ir.And(tuple(xs))
    )
    allow = draw(st.lists(line, min_size=2, max_size=4))
    deny = draw(st.lists(line, max_size=2))
    allowed: ir.Expr = ir.Or(tuple(allow))
    if not deny:
        return allowed
    denied = deny[0] if len(deny) == 1 else ir.Or(tuple(deny))
    return ir.And((allowed, ir.Not(denied)))


def _raw_eval(expr: ir.Expr, md: dict[str, object]) -> bool:
    if isinstance(expr, ir.And):
        return all(_raw_eval(item, md) for item in expr.items)
    if isinstance(expr, ir.Or):
        return any(_raw_eval(item, md) for item in expr.items)
    if isinstance(expr, ir.Not):
        return not _raw_eval(expr.item, md)
    return compile_check(expr)(md)


def _rebuild(expr: ir.Expr) -> ir.Expr:
    if isinstance(expr, ir.And):
        return ir.and_(*(_rebuild(item) for item in expr.items))
    if isinstance(expr, ir.Or):
        return ir.or_(*(_rebuild(item) for item in expr.items))
    if isinstance(expr, ir.Not):
        return ir.not_(_rebuild(expr.item))
    return expr


value = st.one_of(
    st.none(),
    st.sampled_from(VALUES),
    st.lists(st.sampled_from(VALUES), max_size=3),
)
chunks = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, value))


def _normalized(metadata: dict[str, Any]) -> dict[str, object]:
    return {name: normalize_value(metadata.get(name), where=name) for name in FIELDS}


@settings(max_examples=400, deadline=None)
@given(st.one_of(_raw_trees(), _policy_shaped()), st.lists(chunks, min_size=1, max_size=8))
def test_simplified_expression_decides_like_the_raw_tree(
    tree: ir.Expr, metadata: list[dict[str, Any]]
) -> None:
    simplified = _rebuild(tree)
    check = compile_check(simplified)
    for md in map(_normalized, metadata):
        assert check(md) is _raw_eval(tree, md), f"{tree!r}\n -> {simplified!r}\n on {md!r}"


def test_shared_conditions_are_factored_out_of_an_or() -> None:
    tenant, level = ir.Eq("tenant", "acme"), ir.Range("level", lte=2)
    built = ir.or_(
        ir.and_(tenant, ir.Eq("dept", "eng"), level),
        ir.and_(tenant, ir.Eq("dept", "research"), level),
    )
    assert built == ir.And((tenant, level, ir.In("dept", ("eng", "research"))))


def test_branches_sharing_a_condition_with_some_others_are_grouped() -> None:
    acme, globex = ir.Eq("tenant", "acme"), ir.Eq("tenant", "globex")
    built = ir.or_(
        acme,
        ir.and_(globex, ir.Eq("category", "handbook")),
        ir.and_(globex, ir.Eq("category", "wiki")),
        ir.and_(ir.Eq("tenant", "initech"), ir.Range("level", lte=1)),
    )
    assert built == ir.Or(
        (
            acme,
            ir.And((globex, ir.In("category", ("handbook", "wiki")))),
            ir.And((ir.Eq("tenant", "initech"), ir.Range("level", lte=1))),
        )
    )


def test_a_branch_implied_by_the_shared_conditions_absorbs_the_rest() -> None:
    tenant = ir.Eq("tenant", "acme")
    assert ir.or_(tenant, ir.and_(tenant, ir.Eq("dept", "eng"))) == tenant


def test_a_negated_conjunction_drops_what_its_siblings_require() -> None:
    tenant, hold = ir.Eq("tenant", "acme"), ir.Eq("labels", "legal_hold")
    assert ir.and_(tenant, ir.not_(ir.and_(tenant, hold))) == ir.And((tenant, ir.Not(hold)))
    assert ir.and_(tenant, ir.not_(tenant)) == ir.FALSE
    assert ir.and_(tenant, ir.not_(ir.and_(tenant, tenant))) == ir.FALSE
