"""``import ragguard`` stays light: the server stores' clients load only when named."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


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
