"""A round trip that proves the server has read everything written before it."""

from __future__ import annotations

from nats.aio.client import Client

__all__ = ["server_has_read"]


async def server_has_read(nc: Client, round_trip_s: float = 2.0) -> None:
    """Return once the server has read every command written on ``nc`` before this call.

    One ``flush`` is not that: nats-py 2.16 writes a flush's PING straight to the socket, ahead
    of PUBs and SUBs still queued for its flusher, so its PONG can come back before the server
    has read them (a subscription not yet in place, a permissions ``-ERR`` not yet received).
    The first round trip makes the flusher write them; the second PING goes out after them, so
    its PONG comes back after the server has taken (or refused) each one.

    Raises:
        nats.errors.FlushTimeoutError: a round trip took longer than ``round_trip_s`` seconds.
    """
    whole = max(1, round(round_trip_s))  # (nats-py's flush takes whole seconds)
    await nc.flush(timeout=whole)
    await nc.flush(timeout=whole)
