"""Logging that cannot flood: a repeated warning is summarised, not repeated."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs at most once per ``interval_s`` per key; counts what it held back."""

    def __init__(
        self, logger: logging.Logger, interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def warning(self, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        """Log ``message`` unless ``key`` was logged within the interval (``exc_info``: with the
        exception being handled)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] += 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        # "and 6 more invalid_entry in 5 s": the key names the kind (after a "reject:"-like tag).
        kind = key.rsplit(":", 1)[-1]
        suffix = f" (and {held} more {kind} in {self._interval_s:g} s)" if held else ""
        self._logger.warning(message + suffix, *args, exc_info=exc_info)
