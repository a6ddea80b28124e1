"""Counts that prove nothing is lost, and an exact per-entry latency histogram."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["BATCH_BYTES_BUCKETS", "BATCH_ENTRIES_BUCKETS", "LATENCY_BUCKETS_S", "LatencyHistogram", "Stats"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_ENTRIES_BUCKETS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0)
BATCH_BYTES_BUCKETS = tuple(float(2**k) for k in range(10, 24, 2))


@dataclass
class Stats:
    """What the gateway did with every entry it received.

    Invariant once idle: ``received + recovered == published + rejected + dropped
    + returned + held + spooled now``. ``returned`` counts entries handed back to
    the ingest stream for redelivery (durable ingest); ``redelivered`` counts
    messages received more than once; ``recovered`` the entries found in the
    spool at start, ``spooled`` entries written to it and ``replayed`` entries
    published from it (they are in ``published`` too). ``reject_forward_failed``
    counts rejected messages (counted in ``rejected``) whose forward failed.
    """

    received: int = 0
    published: int = 0
    batches: int = 0
    retries: int = 0
    returned: int = 0
    redelivered: int = 0
    spooled: int = 0
    replayed: int = 0
    recovered: int = 0
    reject_forward_failed: int = 0
    time_fallbacks: int = 0  # accepted entries whose createdAt named no moment: receipt time used
    rejected: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    _unreported: Counter[str] = field(default_factory=Counter)

    def reject(self, reason: str) -> None:
        """Count one rejected message."""
        self.rejected[str(reason)] += 1

    def drop(self, reason: str, count: int = 1) -> None:
        """Count accepted entries that will not be published; reported in the next batch."""
        if count:
            self.dropped[str(reason)] += count
            self._unreported[str(reason)] += count

    def take_unreported(self) -> dict[str, int]:
        """Drops since the previous batch, by reason; resets the tally."""
        out = dict(self._unreported)
        self._unreported.clear()
        return out

    def restore_unreported(self, dropped: dict[str, int]) -> None:
        """Put back drops that a batch meant to report but never delivered."""
        self._unreported.update(dropped)

    @property
    def total_rejected(self) -> int:
        """All rejected messages, any reason."""
        return sum(self.rejected.values())

    @property
    def total_dropped(self) -> int:
        """All dropped entries, any reason."""
        return sum(self.dropped.values())


@dataclass
class LatencyHistogram:
    """A cumulative histogram (Prometheus style); for entry latency (receipt to
    ack) it is fed a whole batch at a time.

    A batch's receipt times are ascending, so the entries within each bucket
    bound are found by bisection: exact per entry, O(buckets x log n) per batch.
    """

    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        """Record one observation."""
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def observe_batch(self, received: Sequence[float], done_at: float) -> None:
        """Record ``done_at - r`` for every ``r`` in ``received`` (ascending)."""
        n = len(received)
        for i, bound in enumerate(self.buckets):
            # latency <= bound  <=>  received >= done_at - bound
            self.counts[i] += n - bisect_left(received, done_at - bound)
        self.total += n * done_at - sum(received)
        self.count += n

    def quantile(self, q: float) -> float:
        """The smallest bucket bound holding at least ``q`` of the observations (inf if none)."""
        need = q * self.count
        for bound, cumulative in zip(self.buckets, self.counts, strict=True):
            if cumulative >= need and self.count:
                return bound
        return float("inf")
