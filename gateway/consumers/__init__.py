"""Tools that run beside the gateway, not in it: the batch subscriber, ``tail``, and the archive.

They import contracts, the pure core and NATS only, never the service's insides.
The public names are loaded on first use (PEP 562): a module of the gateway that
needs one consumer module (``log-gateway run``'s settings read ``options``) loads
that one, not the archive and the subscriber.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.consumers.archiver import ArchiveConfig, Archiver
    from gateway.consumers.subscribe import BatchSubscriber, Delivery, Filters, SubscriberConfig

__all__ = ["ArchiveConfig", "Archiver", "BatchSubscriber", "Delivery", "Filters", "SubscriberConfig"]

_HOMES = {
    "ArchiveConfig": "gateway.consumers.archiver",
    "Archiver": "gateway.consumers.archiver",
    "BatchSubscriber": "gateway.consumers.subscribe",
    "Delivery": "gateway.consumers.subscribe",
    "Filters": "gateway.consumers.subscribe",
    "SubscriberConfig": "gateway.consumers.subscribe",
}


def __getattr__(name: str) -> object:
    """A public name, imported from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
