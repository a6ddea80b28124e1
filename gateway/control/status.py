"""What one gateway tells the control service's ``status`` endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nats.aio.client import Client

from contracts.control import ConnectionStatus, StatusReply
from gateway.process.connection import redact_url
from gateway.service import NotStartedError

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["gateway_status"]


def gateway_status(gateway: Gateway, nc: Client, *, version: str, uptime_s: float) -> StatusReply:
    """Counts, what is buffered, in flight and spooled, the connection, uptime and version."""
    stats = gateway.stats
    counts = {
        "received": stats.received,
        "published": stats.published,
        "batches": stats.batches,
        "rejected": stats.total_rejected,
        "dropped": stats.total_dropped,
        "retries": stats.retries,
        "returned": stats.returned,
        "redelivered": stats.redelivered,
        "spooled": stats.spooled,
        "replayed": stats.replayed,
        "recovered": stats.recovered,
    }
    buffered, in_flight = _held(gateway)
    spooler = gateway.spooler
    spooled = None
    if spooler is not None:
        spool = spooler.spool
        spooled = {"entries": spool.entries, "bytes": spool.size_bytes, "batches": spool.records}
    return StatusReply(
        gatewayId=gateway.config.gateway_id,
        version=version,
        uptimeS=round(uptime_s, 3),
        ready=gateway.ready and not gateway.failed,
        connection=_connection(nc),
        counts=counts,
        dropped=dict(stats.dropped),
        rejected=dict(stats.rejected),
        buffered=buffered,
        inFlight=in_flight,
        spooled=spooled,
        failedTasks=list(gateway.failed),
    )


def _held(gateway: Gateway) -> tuple[dict[str, int], dict[str, int]]:
    """Entries held (of them, not yet taken by the sender), and what is being published."""
    try:
        rooms = gateway.rooms
    except NotStartedError:
        return {"entries": 0, "bytes": 0, "queued": 0}, {"batches": 0, "entries": 0}
    acc = rooms.pipeline.acc
    buffered = {"entries": acc.held_entries, "bytes": acc.held_bytes, "queued": acc.queued_entries}
    return buffered, {"batches": rooms.sender.in_flight, "entries": acc.in_flight_entries}


def _connection(nc: Client) -> ConnectionStatus:
    url = nc.connected_url
    return ConnectionStatus(
        connected=nc.is_connected,
        url=redact_url(url.geturl()) if url is not None else None,
        reconnects=int(nc.stats.get("reconnects", 0)),
    )
