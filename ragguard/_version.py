"""The installed ragguard version, read from the package metadata on first use.

``importlib.metadata`` costs ~30 ms to import, so nothing reads it at ``import
ragguard``: ``ragguard.__version__``, the tracer's instrumentation scope and OCSF
exports ask for it when they need it, and the answer is kept.
"""

from __future__ import annotations

import functools

__all__ = ["installed_version"]


@functools.cache
def installed_version() -> str | None:
    """The version of the installed ``ragguard`` distribution, ``None`` when there is
    none (imported from a source tree without installed metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragguard")
    except PackageNotFoundError:
        return None
