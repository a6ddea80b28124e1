"""Tools that run beside the gateway, not in it: the batch subscriber, ``tail``, and the archive.

They import contracts, the pure core and NATS only, never the service's insides.
"""

from gateway.consumers.archiver import ArchiveConfig, Archiver
from gateway.consumers.subscribe import BatchSubscriber, Delivery, Filters, SubscriberConfig

__all__ = ["ArchiveConfig", "Archiver", "BatchSubscriber", "Delivery", "Filters", "SubscriberConfig"]
