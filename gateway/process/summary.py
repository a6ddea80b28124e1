"""A periodic one-line summary of what the running gateway did, at info level.

After "ready" a quiet gateway left a person guessing whether entries arrive at
all; every ``--summary-interval-s`` this says how many came in and went out, and
what was rejected, dropped, is held and waits in the spool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["Summary"]

log = logging.getLogger("log_gateway")


class Summary:
    """Rates since the previous line, counts since start, and what is held now.

    Args:
        gateway: the gateway whose stats are read (nothing is counted twice).
        interval_s: seconds between lines.
        clock: monotonic time.
    """

    def __init__(
        self, gateway: Gateway, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gw = gateway
        self._interval_s = interval_s
        self._clock = clock
        self._at = clock()
        self._received = self._batches = 0

    def line(self) -> str:
        """The summary of the time since the previous line (or since start)."""
        now, stats = self._clock(), self._gw.stats
        elapsed = max(now - self._at, 1e-9)
        entries_in = (stats.received - self._received) / elapsed
        batches_out = (stats.batches - self._batches) / elapsed
        self._at, self._received, self._batches = now, stats.received, stats.batches
        spooler = self._gw.spooler
        return (
            f"summary: {entries_in:.1f} entries/s in, {batches_out:.1f} batches/s out; "
            f"since start: received {stats.received}, published {stats.published}, "
            f"rejected {stats.total_rejected}, dropped {stats.total_dropped}; "
            f"buffered {self._gw.acc.held_entries}, "
            f"spooled {spooler.spool.entries if spooler is not None else 0}"
        )

    async def run(self) -> None:
        """Log a line every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)  # a timer, not a poll: the line is due every interval
            log.info(self.line())
