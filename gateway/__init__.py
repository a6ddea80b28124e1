"""The log-event batching gateway: ingest per-entry events, publish logBatchCreated batches,
and the pieces that consume them (subscriber, archive, tail).

Names are imported on first use, so ``log-gateway`` sub-commands stay quick to
start and ``publishers`` can use the batching core without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ArchiveConfig",
    "Archiver",
    "BatchSubscriber",
    "Filters",
    "Gateway",
    "GatewayConfig",
    "ShutdownReport",
    "SubscriberConfig",
    "build_app",
]

_WHERE = {
    "ArchiveConfig": "gateway.consumers.archiver",
    "Archiver": "gateway.consumers.archiver",
    "BatchSubscriber": "gateway.consumers.subscribe",
    "Filters": "gateway.consumers.subscribe",
    "Gateway": "gateway.service",
    "GatewayConfig": "gateway.config",
    "ShutdownReport": "gateway.service",
    "SubscriberConfig": "gateway.consumers.subscribe",
    "build_app": "gateway.process.app",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
