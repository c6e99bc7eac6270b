"""``import ragguard`` stays light: the server stores' clients, the audit log, the screens
and the version lookup load only when named; every public name still resolves."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys

import pytest


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_ragguard_does_not_import_qdrant_client() -> None:
    out = _run(
        "import sys\n"
        "import ragguard as rg\n"
        "import ragguard.stores\n"
        "store = rg.EdgeStore\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('qdrant_client', 'psycopg')))\n"
    )
    assert out.strip() == "[]"


def test_qdrant_store_is_still_a_module_attribute_and_imports_its_client_when_named() -> None:
    out = _run(
        "import sys\n"
        "import ragguard as rg\n"
        "from ragguard.stores import QdrantStore\n"
        "from ragguard.stores.qdrant import QdrantStore as Direct\n"
        "assert rg.QdrantStore is QdrantStore is Direct\n"
        "print('qdrant_client' in sys.modules, 'QdrantStore' in rg.__all__)\n"
    )
    assert out.split() == ["True", "True"]


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    import ragguard
    import ragguard.stores

    for module in (ragguard, ragguard.stores):
        with pytest.raises(AttributeError, match="NoSuchStore"):
            getattr(module, "NoSuchStore")  # noqa: B009


# Modules `import ragguard` must not load: a program that only builds a Guard over an
# EdgeStore never needs them, and together they were ~0.2 s of start-up (issue 15).
NOT_ON_IMPORT = (
    "qdrant_client",  # QdrantStore's client
    "psycopg",  # PgVectorStore's
    "chromadb",  # ChromaStore's
    "pydantic",  # the audit records and the gateway configuration
    "importlib.metadata",  # read for __version__ when it is asked for
    "asyncio",  # only Guard.asearch and the async stores use it
    "ragguard.audit._record",
    "ragguard.audit._log",
    "ragguard.audit._verify",
    "ragguard.audit._export",
    "ragguard.audit._replay",
    "ragguard.screens._injection",  # its compiled patterns (~25 ms)
    "ragguard.screens._secrets",
    "ragguard.gateway",
    "ragguard.testing",
    "ragguard._cli",
)

# Modules `ragguard --help` must not load: it builds every command's parser, and no
# command's work runs.
NOT_ON_HELP = (
    "qdrant_client",
    "pydantic",
    "importlib.metadata",
    "asyncio",
    "ragguard.audit._record",
    "ragguard.audit._verify",
    "ragguard.audit._export",
    "ragguard.audit._replay",
    "ragguard.gateway._config",
    "ragguard.screens._injection",
)


def _loaded(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` are in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    out = _run(
        f"import sys\n{code}\nprint(repr(sorted(m for m in {modules!r} if m in sys.modules)))"
    )
    return list(ast.literal_eval(out.strip().splitlines()[-1]))


def test_import_ragguard_loads_none_of_the_lazy_modules() -> None:
    assert _loaded("import ragguard as rg\nrg.Guard, rg.EdgeStore, rg.Policy", NOT_ON_IMPORT) == []


def test_help_loads_none_of_the_commands_work_modules() -> None:
    code = "from ragguard._cli import build_parser\nbuild_parser().format_help()"
    assert _loaded(code, NOT_ON_HELP) == []


def test_the_lazy_module_check_sees_a_loaded_module() -> None:
    """The check above can fail: naming a lazy export loads its module."""
    code = "import ragguard as rg\nrg.JsonlAuditLog\nrg.PromptInjectionScreen\nrg.__version__"
    loaded = _loaded(code, NOT_ON_IMPORT)
    assert {"pydantic", "importlib.metadata", "ragguard.audit._log"} <= set(loaded)
    assert "ragguard.screens._injection" in loaded
    assert "ragguard.audit._replay" not in loaded  # the log does not need replay


def _public_modules() -> list[str]:
    import ragguard

    names = ["ragguard"]
    for info in pkgutil.walk_packages(ragguard.__path__, "ragguard."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def test_every_public_module_is_checked() -> None:
    modules = _public_modules()
    assert {"ragguard", "ragguard.audit", "ragguard.screens", "ragguard.stores"} <= set(modules)
    assert {"ragguard.gateway", "ragguard.policy", "ragguard.provenance"} <= set(modules)


@pytest.mark.parametrize("module", _public_modules())
def test_every_name_in_all_resolves_in_a_fresh_interpreter(module: str) -> None:
    """``from module import name`` works for every name in ``__all__``, lazy ones too, and
    a lazy export is the object its defining module holds; ``dir()`` lists it."""
    out = _run(
        "import importlib, inspect\n"
        f"module = importlib.import_module({module!r})\n"
        "names = list(getattr(module, '__all__', []))\n"
        "assert len(names) == len(set(names)), 'duplicates in __all__'\n"
        "assert set(names) <= set(dir(module)), set(names) - set(dir(module))\n"
        "for name in names:\n"
        "    exec(f'from {module.__name__} import {name} as value')\n"
        "    home = getattr(value, '__module__', None)\n"
        "    if inspect.isclass(value) or inspect.isfunction(value):\n"
        "        assert getattr(importlib.import_module(home), value.__name__) is value, name\n"
        "namespace = {}\n"
        f"exec('from {module} import *', namespace)\n"
        "assert set(names) <= set(namespace), set(names) - set(namespace)\n"
        "print(len(names))\n"
    )
    assert int(out.split()[-1]) >= 0


def test_version_is_read_once_and_kept() -> None:
    out = _run(
        "import sys, ragguard\n"
        "first = ragguard.__version__\n"
        "assert 'importlib.metadata' in sys.modules\n"
        "assert vars(ragguard)['__version__'] == first\n"
        "from ragguard import __version__\n"
        "print(__version__ == first and bool(first))\n"
    )
    assert out.strip() == "True"
