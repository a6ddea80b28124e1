"""What the MCP tools reach on NATS: the stream (queries), the entry subject, the control service."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from contracts.errors import ContractError
from contracts.events import subject_for
from contracts.models import LogEntryCreated
from gateway.mcp.tools import LogMessageResult, PlatformLevel, entry_level
from publishers.emit import EventPublisher

__all__ = ["Backend", "ToolFailed"]


class ToolFailed(Exception):
    """A tool cannot do what was asked; the message tells a person what to change."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Backend:
    """The connection and where things are on it.

    Attributes:
        nc: a connected nats-py client.
        stream: the JetStream stream holding the gateway's batches.
        subject_prefix: the gateway's ``--subject-prefix``.
        archive_dir: the archive's segment directory, queried beside the stream (none: stream only).
        timeout_s: how long a request to the control service may take.
    """

    nc: Client
    stream: str
    subject_prefix: str = ""
    archive_dir: Path | None = None
    timeout_s: float = 5.0

    async def log(
        self,
        *,
        logger: str,
        level: PlatformLevel,
        message: str,
        metadata: Mapping[str, Any] | None,
        trace_id: str | None,
    ) -> LogMessageResult:
        """Publish one ``LogEntryCreated`` CloudEvent on the entry subject, as a service would.

        Raises:
            ToolFailed: the entry is not valid (the message names the field).
        """
        publisher = EventPublisher(self.nc, source=logger, subject_prefix=self.subject_prefix)
        fields = {} if trace_id is None else {"traceId": trace_id}
        try:
            entry: LogEntryCreated = await publisher.log(
                entry_level(level), message, metadata=metadata, **fields
            )
        except ContractError as exc:
            raise ToolFailed(str(exc)) from None
        await self.nc.flush(
            timeout=max(1, round(self.timeout_s))
        )  # on the server before we say it was published
        return LogMessageResult(
            logId=entry.logId,
            subject=subject_for(LogEntryCreated.EVENT_TYPE, self.subject_prefix),
            level=entry.level,
            createdAt=entry.createdAt,
        )
