"""Telling JetStream what became of durable ingest's messages: ack, nak or term.

An entry's handle is what its message left to settle it by: on the pull fast path
(:mod:`gateway.ingest.pull`) the message's ack subject (bytes), on nats-py's own path its
``Msg``. :class:`Acks` settles a whole batch's handles at once: one ``PUB <ack subject> ...``
per message, all of them written to the connection in one piece and the flusher kicked once.
No round trip is awaited per entry, nor per batch: an ack is a publish without a reply either
way (nats-py's ``Msg.ack`` does not wait for one either), and one the connection loses on its
way is covered by redelivery after ``ack_wait_s``, a duplicate bounded like any other.

Why not ``AckAll`` (one ack per batch, acking everything before it)? It is unsafe here even
with one gateway: up to ``max_in_flight`` batches are published at once and their PubAcks come
in any order, so acking a stored batch's last message would also ack the messages of an earlier
batch still being published (lost if this gateway is then killed). With several gateways on
one consumer it is worse: the consumer's sequence interleaves their deliveries, so one
gateway's ack would ack what another still holds unstored. ``AckExplicit`` stays; the cost it
had (a publish per entry) is what the one write per batch removes. (The pull reader's
docstring, :mod:`gateway.ingest.pull`, says the same for the reader's side.)

The rule "ack only after the batch is stored" is the caller's: the fate calls
:meth:`Acks.settle` with ``ACK`` only once the output stream acknowledged the batch (or the
spool holds it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.ingest import nats_private as private

__all__ = ["Acks", "Settle", "commands", "settle"]

log = logging.getLogger("log_gateway")


class Settle(StrEnum):
    """What to tell JetStream about an entry's message."""

    ACK = "ack"  # stored in a batch (or spooled): done
    NAK = "nak"  # not stored: redeliver it
    TERM = "term"  # rejected: never redeliver


# The bodies nats-py's Msg.ack/nak/term send.
_BODY: Final = {Settle.ACK: b"+ACK", Settle.NAK: b"-NAK", Settle.TERM: b"+TERM"}


async def settle(handles: Iterable[object], how: Settle) -> int:
    """Tell JetStream what became of entries' messages, one ``Msg`` at a time (handles that are
    not nats-py messages are skipped).

    Returns:
        How many could not be settled (the connection is gone): those are
        redelivered once ``ack_wait_s`` passes.
    """
    failed = 0
    for msg in handles:
        if not isinstance(msg, Msg):
            continue
        try:
            await getattr(msg, how.value)()
        except Exception:  # noqa: BLE001 - redelivery covers it; the caller counts it
            failed += 1
    return failed


def commands(replies: list[bytes], how: Settle) -> bytes:
    """The PUB operations that settle ``replies`` (ack subjects) ``how``, as one piece of bytes."""
    body = _BODY[how]
    tail = b" %d\r\n%s\r\n" % (len(body), body)
    return b"PUB " + (tail + b"PUB ").join(replies) + tail


class Acks:
    """Settles a batch's handles at once (ack subjects pipelined on ``nc``; ``Msg`` handles as
    :func:`settle` does).

    Args:
        nc: the connection the ack subjects are published on (any connection to the cluster).
    """

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        problems = private.write_problems(nc)
        if problems:
            log.warning("durable ingest acks one publish each (nats-py changed: %s)", "; ".join(problems))
        self._pipelined = not problems
        self.sent: Counter[str] = Counter()  # acks, naks and terms written, by kind (for /metrics)

    async def settle(self, handles: Iterable[object], how: Settle) -> int:
        """Settle every handle ``how``; returns how many could not be (left to redelivery)."""
        handles = list(handles)
        self.sent[how.value] += len(handles)
        replies = [handle for handle in handles if isinstance(handle, bytes)]
        failed = await settle(handles, how) if len(replies) < len(handles) else 0
        if replies:
            failed += await self._write(replies, how)
        return failed

    async def _write(self, replies: list[bytes], how: Settle) -> int:
        nc = self._nc
        if nc.is_closed:
            return len(replies)
        try:
            if self._pipelined:
                size = len(_BODY[how]) * len(replies)
                await private.write_commands(nc, commands(replies, how), len(replies), size)
            else:
                for reply in replies:
                    await nc.publish(reply.decode(), _BODY[how])
        except Exception:  # noqa: BLE001 - redelivery covers it; the caller counts it
            return len(replies)
        return 0
