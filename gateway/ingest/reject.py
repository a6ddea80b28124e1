"""Entries the gateway will not batch: counted, logged (rate-limited) and forwarded to
``cortex_logging.entry.rejected`` for diagnosis; and entries it failed on (a bug),
counted as dropped ``ingest_failed``."""

from __future__ import annotations

from nats.aio.client import Client

from gateway.core.encode import header_size
from gateway.core.limits import DropReason
from gateway.core.stats import Stats
from gateway.ingest.decode import rejected_message
from gateway.ingest.fastpath import Headers
from gateway.logs import RateLimitedLog

__all__ = ["MAX_REJECTED_BYTES", "Rejects", "oversize"]

# A rejected message is forwarded for diagnosis; 64 KiB of it is plenty and
# keeps a flood of garbage from costing the bus more than the garbage itself.
MAX_REJECTED_BYTES = 64 * 1024


class Rejects:
    """Counts and forwards rejected messages; counts messages ingest failed on.

    Args:
        nc: the connection rejected messages are forwarded on.
        subject: where they go.
        gateway_id: named in each forwarded event.
        stats: ``rejected`` (by reason) and ``ingest_failed`` drops are counted here.
        warn: rate-limited warnings.
    """

    def __init__(self, nc: Client, subject: str, gateway_id: str, stats: Stats, warn: RateLimitedLog) -> None:
        self._nc = nc
        self._subject = subject
        self._gateway_id = gateway_id
        self._stats = stats
        self._warn = warn

    async def reject(self, subject: bytes, headers: Headers, body: bytes, reason: str, detail: str) -> None:
        """Count a rejected message and forward it, whole or cut to fit (best effort: a forward
        that fails is counted in ``reject_forward_failed`` and logged)."""
        self._stats.reject(reason)
        text = subject.decode(errors="replace")
        self._warn.warning("reject:" + reason, "rejected a message on %s: %s: %s", text, reason, detail)
        limit = min(self._nc.max_payload, MAX_REJECTED_BYTES)
        out_headers, out_body = rejected_message(
            reason=reason,
            detail=detail,
            subject=text,
            headers=headers,
            body=body,
            gateway_id=self._gateway_id,
            max_bytes=limit,
        )
        size = header_size(out_headers) + len(out_body)
        if size > limit:  # never sent: the server would close the connection over it
            self._unforwarded(f"even cut short the event takes {size} bytes, over {limit}")
            return
        try:
            await self._nc.publish(self._subject, out_body, headers=out_headers)
        except Exception as exc:  # noqa: BLE001 - counted; forwarding is best effort
            self._unforwarded(repr(exc))

    def _unforwarded(self, why: str) -> None:
        self._stats.reject_forward_failed += 1
        self._warn.warning("reject-forward", "could not forward a rejected message: %s", why)

    def failed(self, subject: bytes) -> None:
        """Ingest raised on a message (a bug, not bad input): count it dropped, log the traceback."""
        self._stats.drop(DropReason.INGEST_FAILED)
        text = subject.decode(errors="replace")
        self._warn.warning(
            "ingest-failed", "failed on a message on %s (counted as dropped)", text, exc_info=True
        )


def oversize(size: int) -> str:
    """The detail of an ``oversize`` rejection."""
    return f"entry of {size} bytes fits no batch"
