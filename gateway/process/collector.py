"""Pausing the cyclic garbage collector while the process imports what lives as long as it."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Within: no automatic collection (imports allocate long-lived objects only); after: as before.

    A collector that was disabled before stays disabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
