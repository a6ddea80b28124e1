"""A validated configuration applied to the rooms of a running gateway, for the next batch.

Batches already sealed keep the limits they were made under (the accumulator
seals its open batches before new entry or byte limits apply); no entry is
moved, dropped or counted again: the change only swaps the limits each room
reads for what it does next.
"""

from __future__ import annotations

from gateway.alerts import AlertPublisher
from gateway.assembly import Rooms
from gateway.config import GatewayConfig
from gateway.core import BatchLimits
from gateway.core.redact import Redactor

__all__ = ["retune"]


def retune(
    rooms: Rooms,
    alerts: AlertPublisher | None,
    old: GatewayConfig,
    new: GatewayConfig,
    limits: BatchLimits,
    *,
    redactor: Redactor | None,
) -> None:
    """Apply ``new`` (already validated; ``limits`` are its batch limits within the server's
    ``max_payload``) to ``rooms``; ``alerts`` is the gateway's alert publisher, if it has one."""
    pipeline = rooms.pipeline
    if limits != pipeline.limits or new.buffer != old.buffer:
        pipeline.retune(limits, new.buffer)
    if rooms.spooler is not None:
        rooms.spooler.retune(new.buffer.overflow)
    if alerts is not None:
        alerts.retune(new.alerts)
    observe = alerts.observe if alerts is not None and new.alerts.enabled else None
    rooms.intake.decoder.retune(max_batch_bytes=limits.max_bytes, on_error_entry=observe, redactor=redactor)
    rooms.sender.retune(new.throttle)  # last: it wakes the sender and a waiting intake
