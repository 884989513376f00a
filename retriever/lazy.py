"""Public names of a package, imported from their modules on first use.

`rader --help` and `rader search` must not pay for what they do not use (numba behind
bm25s, ranx, faiss, torch): a package's ``__init__`` maps each public name to its module
and hands `lazy_exports`' functions to Python as the package's ``__getattr__``/``__dir__``.

Example:
    >>> __getattr__, __dir__, __all__ = lazy_exports("rader.retriever", {"types": "Query Theorem"})
    >>> __getattr__("Query").__name__
    'Query'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, str]) -> tuple[Callable[[str], object],
                                                                  Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose public names ``modules`` lists
    (module relative to the package -> its names, space-separated); a name once loaded is kept
    on the package."""
    exports = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
