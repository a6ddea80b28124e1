"""An entry's fate, one small strategy per ingest mode, chosen at start.

What "published", "could not be published" and "shutdown left it" mean differs
by mode: core ingest can only count a lost entry as dropped (or spool its
batch); durable ingest tells the ingest stream (ack, nak) and counts what it
hands back. The sender and shutdown call the fate; they never ask the mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from gateway.core.entry import PendingEntry
from gateway.core.stats import Stats
from gateway.ingest.acks import Settle, settle

__all__ = ["CoreFate", "DurableFate", "EntryFate"]


class EntryFate(Protocol):
    """What becomes of a batch's entries once the bus has answered."""

    #: Whether a batch the bus would not take may go to the disk spool instead.
    spoolable: bool
    #: How shutdown's log line names what happened to entries it could not publish.
    unpublished_means: str

    async def published(self, entries: Iterable[PendingEntry]) -> None:
        """The batch holding ``entries`` is stored."""
        ...

    async def lost(self, entries: Iterable[PendingEntry], count: int, reason: str) -> None:
        """The entries were not published (and not spooled): a batch the bus would not take, or,
        with reason ``shutdown``, what shutdown ran out of time for."""
        ...


class CoreFate:
    """Core NATS ingest: nothing to tell anyone; what is lost is counted as dropped."""

    spoolable = True
    unpublished_means = "counted as dropped"

    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    async def published(self, entries: Iterable[PendingEntry]) -> None:
        return None

    async def lost(self, entries: Iterable[PendingEntry], count: int, reason: str) -> None:
        self._stats.drop(reason, count)


class DurableFate:
    """Durable ingest: ack entries once stored; hand back (nak) what was not, counted ``returned``.

    The ingest stream still holds an entry until it is acked, so nothing it
    hands back is lost: it is delivered again, to this gateway or another.
    """

    spoolable = False
    unpublished_means = "handed back to the ingest stream"

    def __init__(
        self, stats: Stats, settler: Callable[[Iterable[object], Settle], Awaitable[int]] = settle
    ) -> None:
        self._stats = stats
        self._settle = settler  # (gateway.ingest.acks.Acks.settle: a batch's acks in one write)

    async def published(self, entries: Iterable[PendingEntry]) -> None:
        await self._settle([e.handle for e in entries], Settle.ACK)

    async def lost(self, entries: Iterable[PendingEntry], count: int, reason: str) -> None:
        self._stats.returned += count
        await self._settle([e.handle for e in entries], Settle.NAK)
