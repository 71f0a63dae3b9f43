"""A subpackage's public names, imported from their modules on first use (PEP 562), so that a
light module of a package (the canonical reader) does not bring its heavy siblings (pandas)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """The package's `__getattr__`: `names` maps each public name to its module in `package`."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return __getattr__
