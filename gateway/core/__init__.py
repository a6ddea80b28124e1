"""The pure batching core: thresholds, byte accounting, overflow policy, encoder, patterns, stats.

Nothing here imports NATS or reads the clock on its own; time comes in as
arguments (or an injected clock), so the core is tested fast and exactly.
"""

from gateway.core.accumulator import Accumulator, Admission, SealedBatch
from gateway.core.encode import BatchEncoder, EncodedBatch
from gateway.core.entry import PendingEntry
from gateway.core.limits import BatchLimits, BufferLimits, DropReason, OverflowPolicy
from gateway.core.stats import LatencyHistogram, Stats

__all__ = [
    "Accumulator",
    "Admission",
    "BatchEncoder",
    "BatchLimits",
    "BufferLimits",
    "DropReason",
    "EncodedBatch",
    "LatencyHistogram",
    "OverflowPolicy",
    "PendingEntry",
    "SealedBatch",
    "Stats",
]
