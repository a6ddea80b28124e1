"""The log-event batching gateway: ingest per-entry events, publish logBatchCreated batches,
and the pieces that consume them (subscriber, archive, tail).

The rooms (``core``, ``ingest``, ``spool``, ``process``, ``consumers``) and what
may import what are described in ARCHITECTURE.md. The FastStream app is
``gateway.process.app.build_app``.

The public names are loaded on first use (PEP 562), so that ``log-gateway run``
does not load the consumers and a tool that only asks gateways (``ctl``, the MCP
server) does not load the service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_HOMES = {
    "ArchiveConfig": "gateway.consumers",
    "Archiver": "gateway.consumers",
    "BatchSubscriber": "gateway.consumers",
    "Filters": "gateway.consumers",
    "Gateway": "gateway.service",
    "GatewayConfig": "gateway.config",
    "ShutdownReport": "gateway.service",
    "SubscriberConfig": "gateway.consumers",
}


def __getattr__(name: str) -> object:
    """A public name, imported from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
