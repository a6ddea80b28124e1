"""When two entries are one: what :class:`~gateway.consumers.subscribe.BatchSubscriber` and the
query engine hand over once.

``logId`` is any string (the platform's contract): empty, or reused by a producer for entries
that differ. So an entry is a repeat only when it is the same in every field, its non-empty
``logId`` included, as one handed over before: what durable ingest stores when it puts a
redelivered entry into a second batch. Entries that merely share a ``logId`` all come out;
an entry with an empty ``logId`` cannot be told from an identical one and is never taken for a
repeat by its content (the subscriber still knows it by its place in a redelivered batch).
"""

from __future__ import annotations

import hashlib

from contracts.models import LogEntryCreated

__all__ = ["entry_key"]


def entry_key(entry: LogEntryCreated) -> bytes | None:
    """A digest of ``entry`` in full (every field as received), or None when its ``logId`` is empty."""
    if not entry.logId:
        return None
    return hashlib.blake2b(entry.to_json(), digest_size=16).digest()
