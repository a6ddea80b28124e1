"""The log-event batching gateway: ingest per-entry events, publish logBatchCreated batches,
and the pieces that consume them (subscriber, archive, tail).

The rooms (``core``, ``ingest``, ``spool``, ``process``, ``consumers``) and what
may import what are described in ARCHITECTURE.md; ``publishers`` depends on
``gateway.core`` only, so nothing here has to be loaded lazily. The FastStream
app is ``gateway.process.app.build_app``.
"""

from gateway.config import GatewayConfig
from gateway.consumers import ArchiveConfig, Archiver, BatchSubscriber, Filters, SubscriberConfig
from gateway.service import Gateway, ShutdownReport

__all__ = [
    "ArchiveConfig",
    "Archiver",
    "BatchSubscriber",
    "Filters",
    "Gateway",
    "GatewayConfig",
    "ShutdownReport",
    "SubscriberConfig",
]
