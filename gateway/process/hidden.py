"""Import a module with some optional packages hidden from it, for ``log-gateway run``'s start.

FastStream imports uvicorn whenever it is installed (for its ASGI app and its own
CLI, which the gateway does not use), and the ``mcp`` extra installs it: about
50 ms of ``log-gateway run``'s cold start, for nothing unless ``--mcp`` is on.
A ``None`` entry in ``sys.modules`` makes an import of that name raise
``ImportError`` (the import system's documented behaviour), so FastStream takes
its path for "uvicorn is not installed"; the entry is removed afterwards, so a
later import (``gateway.mcp.http``'s, a test's) loads uvicorn as usual.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_hiding"]


def import_hiding(module: str, hidden: tuple[str, ...]) -> ModuleType:
    """Import ``module`` while importing any of ``hidden`` raises ``ImportError``.

    A name already imported is not hidden (nothing is unloaded), and a module
    imported before keeps what it saw.
    """
    added = [name for name in hidden if name not in sys.modules]
    for name in added:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(module)
    finally:
        for name in added:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
