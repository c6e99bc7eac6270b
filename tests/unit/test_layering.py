"""The import graph: data flows one way (DESIGN.md, "Layout"; issue 14).

policy -> stores -> guard -> tracing/audit -> surfaces. Checked on the source files with
``ast`` (imports under ``TYPE_CHECKING`` and inside functions count too):

* no module under ``ragguard/`` imports ``ragguard.guard`` except the package root and
  the surfaces above the guard (command line, demo, gateway);
* no import cycle among the modules of ``ragguard/`` or of the LangChain adapter;
* the layers below the guard import nothing above them;
* ``import ragguard.policy`` does not load ``qdrant_client``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "ragguard": ROOT / "ragguard",
    "ragguard_langchain": ROOT / "adapters" / "langchain" / "ragguard_langchain",
}

# Modules that may import ragguard.guard: the root and the surfaces above the guard.
GUARD_IMPORTERS = ("ragguard", "ragguard._cli", "ragguard.__main__")
# ragguard.testing.store_kit drives a Guard over the store under test: a surface too.
SURFACE_PREFIXES = ("ragguard._demo", "ragguard.gateway", "ragguard.testing.store_kit")

# Modules below the guard, and the package prefixes they must never import.
LOWER_LAYERS: dict[str, tuple[str, ...]] = {
    "ragguard.results": ("ragguard.guard", "ragguard.stores", "ragguard.tracing", "ragguard.audit"),
    "ragguard.policy": (
        "ragguard.guard",
        "ragguard.stores",
        "ragguard.results",
        "ragguard.tracing",
        "ragguard.audit",
        "ragguard.screens",
        "ragguard.provenance",
    ),
    "ragguard.stores": ("ragguard.guard", "ragguard.results", "ragguard.tracing", "ragguard.audit"),
    "ragguard.screens": ("ragguard.guard", "ragguard.tracing", "ragguard.audit"),
    "ragguard.provenance._check": ("ragguard.guard", "ragguard.tracing", "ragguard.audit"),
    "ragguard.tracing": ("ragguard.guard", "ragguard.audit"),
    "ragguard.audit._log": ("ragguard.guard",),
    # SearchParams: a leaf value type the guard, the stores and the adapters share.
    "ragguard.search_params": (
        "ragguard.guard",
        "ragguard.stores",
        "ragguard.results",
        "ragguard.policy",
        "ragguard.tracing",
        "ragguard.audit",
    ),
}
# Command-line modules of lower packages are surfaces (they may import upward lazily).
CLI_SUFFIX = ".cli"


def _module_name(package: str, base: Path, path: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, base in PACKAGES.items():
        for path in sorted(base.rglob("*.py")):
            found[_module_name(package, base, path)] = path
    return found


MODULES = _modules()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def _imports(module: str) -> Iterator[str]:
    """Every module ``module`` imports (at any depth of its code), as known modules."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            yield target
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    yield f"{target}.{alias.name}"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = set()
        for target in _imports(module):
            # `import a.b.c` loads a, a.b and a.b.c; keep the known ones.
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != module:
                    targets.add(prefix)
        graph[module] = targets
    return graph


GRAPH = _graph()


def _is_surface(module: str) -> bool:
    return (
        module in GUARD_IMPORTERS
        or module.startswith(SURFACE_PREFIXES)
        or module.endswith(CLI_SUFFIX)
        or module.startswith("ragguard_langchain")
    )


def test_the_graph_sees_the_package() -> None:
    """The checks below are not vacuous: the walker finds the known edges."""
    assert "ragguard.guard" in GRAPH["ragguard"]
    assert "ragguard.results" in GRAPH["ragguard.tracing"]  # a TYPE_CHECKING import
    assert "ragguard.stores.base" in GRAPH["ragguard.guard"]
    assert "ragguard_langchain.vectorstores" in GRAPH["ragguard_langchain.retriever"]
    assert len(MODULES) > 40


def _guard_importers(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        module
        for module, targets in graph.items()
        if "ragguard.guard" in targets and not _is_surface(module)
    )


def test_only_the_root_and_the_surfaces_import_the_guard() -> None:
    assert _guard_importers(GRAPH) == []


def test_the_guard_import_check_catches_a_violation() -> None:
    """tracing.py importing the guard for type hints (as it did) is caught; the root,
    the command line and the gateway may."""
    graph = {
        "ragguard.tracing": {"ragguard.guard"},
        "ragguard": {"ragguard.guard"},
        "ragguard.gateway.app": {"ragguard.guard"},
        "ragguard.audit.cli": {"ragguard.guard"},
    }
    assert _guard_importers(graph) == ["ragguard.tracing"]


@pytest.mark.parametrize("layer", sorted(LOWER_LAYERS))
def test_lower_layers_do_not_import_higher_ones(layer: str) -> None:
    forbidden = LOWER_LAYERS[layer]
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if (module == layer or module.startswith(layer + ".")) and not module.endswith(CLI_SUFFIX)
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert offenders == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Leave out the edges from a module to a package that contains it: Python runs a
    package's ``__init__`` before any of its submodules (``from ragguard.policy import
    ir`` inside ``ragguard.policy._plan`` needs ``ir``, not the package's re-exports).
    Every other edge counts, the root package's included."""
    return {
        module: {t for t in targets if not module.startswith(t + ".")}
        for module, targets in graph.items()
    }


def test_no_import_cycles() -> None:
    assert _cycles(_without_package_inits(GRAPH)) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    # the adapter's old cycle: vectorstores imported retriever for a type hint
    adapter = {
        "ragguard_langchain.retriever": {"ragguard_langchain.vectorstores"},
        "ragguard_langchain.vectorstores": {"ragguard_langchain.retriever"},
    }
    assert _cycles(_without_package_inits(adapter)) == [
        ["ragguard_langchain.retriever", "ragguard_langchain.vectorstores"]
    ]


def test_importing_the_policy_does_not_load_qdrant_client() -> None:
    code = (
        "import sys, ragguard.policy\n"
        "assert 'qdrant_client' not in sys.modules, 'qdrant_client loaded'\n"
        "assert 'psycopg' not in sys.modules, 'psycopg loaded'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_naming_qdrant_store_loads_it() -> None:
    code = (
        "import sys, ragguard as rg\n"
        "assert 'qdrant_client' not in sys.modules\n"
        "assert rg.QdrantStore.__name__ == 'QdrantStore'\n"
        "from ragguard.stores import QdrantStore\n"
        "assert 'qdrant_client' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
