"""Admission and backpressure: an entry offered to the batch pipeline, and what a full
buffer means for the intake that offered it.

``drop_newest``/``drop_oldest`` are settled inside the pure accumulator; under
``block`` the intake's callback (and so intake) waits here until the sender
frees room. The events are the only coupling between intake and sender: the
sender sets :attr:`room` when it releases a batch; the pipeline's wake-up sets
the sender's ``wake``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.core.accumulator import DROPPED, Admission
from gateway.core.entry import PendingEntry
from gateway.core.pipeline import BatchPipeline
from gateway.logs import RateLimitedLog

__all__ = ["Gate"]


class Gate:
    """Where entries enter the pipeline.

    Args:
        pipeline: the batch pipeline entries join.
        wake: set when the sender should look for a batch to take.
        warn: rate-limited warnings (a full buffer under a drop policy).
    """

    def __init__(self, pipeline: BatchPipeline, wake: asyncio.Event, warn: RateLimitedLog) -> None:
        self._offer = pipeline.offer
        # offer(entry): the pipeline's own offer, for a hot loop that calls :meth:`dropped`
        # itself on DROPPED (one call less per entry than :meth:`admit`).
        self.offer: Callable[[PendingEntry], Admission] = pipeline.offer
        self._wake = wake
        self._warn = warn
        self.room = asyncio.Event()

    def admit(self, entry: PendingEntry) -> Admission:
        """Offer ``entry`` now; BLOCKED means the caller should :meth:`admit_blocking` it."""
        admission = self._offer(entry)
        if admission is DROPPED:
            self.dropped()
        return admission

    def dropped(self) -> None:
        """An entry offered was dropped (the buffer is full under ``drop_newest``): say so, rate-limited."""
        self._warn.warning("overflow", "buffer full: dropped the newest entry")

    async def admit_blocking(self, entry: PendingEntry) -> Admission:
        """Policy ``block``: hold this callback (and so intake) until there is room.

        Returns the final admission, never BLOCKED: a live change made while the entry
        waited can make it OVERSIZE, which the caller must reject (else it is lost).
        """
        while True:
            self.room.clear()
            admission = self._offer(entry)
            self._wake.set()  # (a blocked intake wakes the sender either way)
            if admission is not Admission.BLOCKED:
                return admission
            await self.room.wait()

    def freed(self) -> None:
        """The sender released a batch: a blocked intake may try again."""
        self.room.set()

    async def wait_room(self, room: Callable[[], int]) -> None:
        """Return at once if ``room()`` > 0, else once the sender frees some."""
        self.room.clear()
        if room() <= 0:
            await self.room.wait()
