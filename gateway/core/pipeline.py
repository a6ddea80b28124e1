"""One batch pipeline: entries in, numbered encoded batches out, each handed to a sink.

The gateway's sender and the logging handler's library mode both run on it:
offering (with a wake-up when there is something to take), taking a due batch,
encoding it with the next sequence number and the drop report, and settling it
(releasing its room; a batch that was not published gives its drop report
back, to go out with a later batch). No I/O and no clock of its own: time
comes in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.core.accumulator import Accumulator, Admission, SealedBatch
from gateway.core.encode import BatchEncoder, EncodedBatch
from gateway.core.entry import PendingEntry
from gateway.core.limits import BatchLimits, BufferLimits
from gateway.core.stats import Stats

__all__ = ["BatchPipeline", "BatchSink", "ReadyBatch"]


@dataclass(frozen=True, slots=True)
class ReadyBatch:
    """A sealed batch and its encoded message, numbered, ready to publish."""

    sealed: SealedBatch
    encoded: EncodedBatch

    @property
    def count(self) -> int:
        """Entries in the batch."""
        return self.encoded.count


class BatchSink(Protocol):
    """Where a pipeline's batches go. ``deliver`` publishes one batch and accounts for it
    (published, or dropped with a reason); the pipeline settles it afterwards."""

    async def deliver(self, batch: ReadyBatch) -> bool:
        """Publish ``batch``; True when its message was kept (by the bus, or a spool)."""
        ...


class BatchPipeline:
    """Accumulator, encoder, sequence numbers and drop reports, written once.

    Args:
        limits: batch thresholds (already fitted to the server's ``max_payload``).
        buffer: caps on what is held, and the overflow policy.
        encoder: makes the ``logBatchCreated`` messages.
        stats: drops are counted here and reported in the batches.
        on_wake: called when a batch may be ready to take (one is sealed, or the first
            opens), so a sender wakes instead of polling.
    """

    def __init__(
        self,
        limits: BatchLimits,
        buffer: BufferLimits,
        encoder: BatchEncoder,
        stats: Stats,
        *,
        on_wake: Callable[[], object] = lambda: None,
    ) -> None:
        self.acc = Accumulator(limits, buffer, encoder.overhead_for, stats, on_ready=on_wake)
        # Offer one entry (see Accumulator.offer); the accumulator wakes the taker when it should
        # look. The accumulator's own method: no layer between on the hot path.
        self.offer: Callable[[PendingEntry], Admission] = self.acc.offer
        self._encoder = encoder
        self._stats = stats
        self._on_wake = on_wake
        self._sequence = 0

    @property
    def limits(self) -> BatchLimits:
        """The batch thresholds in force."""
        return self.acc.limits

    def retune(self, limits: BatchLimits, buffer: BufferLimits) -> None:
        """New batch thresholds and buffer caps from the next batch on (see
        :meth:`Accumulator.retune`); sequence numbers and drop reports run on."""
        self._encoder = self._encoder.resized(limits.max_entries)
        self.acc.retune(limits, buffer, self._encoder.overhead_for)
        self._on_wake()  # sealed batches, or a new delay: the taker should look again

    def take(self, now: float, wall_now: str) -> ReadyBatch | None:
        """The next due batch, encoded with the next sequence number and the drops not yet
        reported; None when nothing is due at ``now``."""
        batch = self.acc.take(now)
        if batch is None:
            return None
        self._sequence += 1
        encoded = self._encoder.encode(
            batch, sequence=self._sequence, dropped=self._stats.take_unreported(), now=wall_now
        )
        return ReadyBatch(batch, encoded)

    def settle(self, batch: ReadyBatch, *, kept: bool) -> None:
        """Free the room ``batch`` held. ``kept``: its message (and so its drop report) reached
        the bus or the spool; if not, the drop report waits for the next batch."""
        if not kept:
            self._stats.restore_unreported(batch.encoded.dropped)
        self.acc.release(batch.sealed)

    async def drain(
        self,
        sink: BatchSink,
        clock: Callable[[], float],
        wall_now: Callable[[], str],
        *,
        final: bool = False,
    ) -> None:
        """Hand every batch due (all of them when ``final``) to ``sink``, in order, reading
        ``clock`` (monotonic) and ``wall_now`` (the batch's RFC 3339 time) for each."""
        if final:
            self.acc.seal_all()
        while (batch := self.take(clock(), wall_now())) is not None:
            kept = False
            try:
                kept = await sink.deliver(batch)
            finally:
                self.settle(batch, kept=kept)
