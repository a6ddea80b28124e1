"""The disk spool: the store (CRC-framed segments, cursor, lock, fsync) and its replay.

What the bus would not take in time waits here, in the order batches were made,
and is replayed with its original ``Nats-Msg-Id``.
"""

from gateway.spool.store import (
    FsyncPolicy,
    RecoveryReport,
    Spool,
    SpoolCorruptError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    SpoolRecord,
)

__all__ = [
    "FsyncPolicy",
    "RecoveryReport",
    "Spool",
    "SpoolCorruptError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "SpoolRecord",
]
