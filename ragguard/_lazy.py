"""Names a package exports but imports on first use (PEP 562 module ``__getattr__``).

What ``import ragguard`` does not need (the audit modules and pydantic, the screens'
compiled patterns, the server stores' clients) is loaded when a name is first read::

    __getattr__, __dir__ = lazy_exports(__name__, {"JsonlAuditLog": "ragguard.audit._log"},
                                        globals(), __all__)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    table: Mapping[str, str],
    namespace: dict[str, Any],
    names: Iterable[str],
    *,
    special: Mapping[str, Callable[[], Any]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``.

    ``table`` maps each lazy name to the module that defines it; ``special`` maps a name
    to a function computing its value (``__version__``). A value is stored in
    ``namespace`` once loaded, so later look-ups never reach ``__getattr__``.
    """
    listed = frozenset(names)

    def __getattr__(name: str) -> Any:
        compute = special.get(name) if special is not None else None
        if compute is not None:
            value = compute()
        else:
            module = table.get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | listed)

    return __getattr__, __dir__
