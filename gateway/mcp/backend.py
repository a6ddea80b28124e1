"""What the MCP tools reach on NATS: the stream (queries), the entry subject, the control service."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from pydantic import JsonValue, ValidationError

from contracts.errors import ContractError
from contracts.events import subject_for
from contracts.models import LogBatchCreated, LogEntryCreated
from contracts.query import CursorError, LogQuery, QueryError
from gateway.consumers.query import query_page
from gateway.control.client import ControlClient, ControlError
from gateway.mcp.tools import GatewayReplies, LogMessageResult, PlatformLevel, QueryLogsResult, entry_level
from publishers.emit import EventPublisher
from publishers.roundtrip import server_has_read

__all__ = ["Backend", "BadCursor", "ToolFailed"]


class ToolFailed(Exception):
    """A tool cannot do what was asked; the message tells a person what to change."""


class BadCursor(ToolFailed):
    """The cursor is not one of this query's (an invalid-params error in MCP)."""


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
    timeout_s: float = 2.0

    async def query(self, data: Mapping[str, Any]) -> QueryLogsResult:
        """One page of the query ``data`` (``LogQuery`` fields) over the stream and the archive.

        Raises:
            BadCursor: the cursor is malformed or belongs to a query with other filters.
            ToolFailed: the query is not valid, or the stream cannot be read.
        """
        try:
            query = LogQuery.parse(dict(data))
            page = await query_page(
                self.nc,
                query,
                stream=self.stream,
                archive_dir=self.archive_dir,
                subject=subject_for(LogBatchCreated.EVENT_TYPE, self.subject_prefix),
            )
        except CursorError as exc:
            raise BadCursor(str(exc)) from None
        except QueryError as exc:
            raise ToolFailed(str(exc)) from None
        except NatsError as exc:
            what = str(exc) or type(exc).__name__
            raise ToolFailed(
                f"cannot read the stream {self.stream} on NATS: {what} "
                "(is JetStream up, and may this user use the stream's JetStream API?)"
            ) from None
        return QueryLogsResult.model_validate(page.to_data())

    async def status(self, *, gateway: str | None, include_config: bool) -> GatewayReplies:
        """Each gateway's status (``gateway``: that one only), with its settings if asked.

        Raises:
            ToolFailed: no gateway answered.
        """
        control = self._control()
        try:
            replies = await control.status(gateway)
            if include_config:
                settings = {r["gatewayId"]: r for r in await control.config_get(gateway)}
                replies = [r | {"config": settings.get(r["gatewayId"])} for r in replies]
        except ControlError as exc:
            raise ToolFailed(str(exc)) from None
        return GatewayReplies(gateways=replies)

    async def configure(
        self, changes: Mapping[str, JsonValue], *, gateway: str | None, dry_run: bool
    ) -> GatewayReplies:
        """Change settings of the running gateways (``gateway``: that one only) as ``run`` validates them.

        Raises:
            ToolFailed: the change is refused (the message names the setting and why), or no gateway answered.
        """
        try:
            replies = await self._control().config_set(changes, gateway=gateway, dry_run=dry_run)
        except ControlError as exc:
            raise ToolFailed(f"not applied: {exc}") from None
        except ValidationError as exc:  # (the request itself: a setting name that is none)
            said = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ToolFailed(f"not applied: {said}") from None
        return GatewayReplies(gateways=replies)

    async def _refusal_after(self, before: BaseException | None) -> BaseException | None:
        """The connection error that came after ``before`` by the time the server read the entry."""
        await server_has_read(self.nc, self.timeout_s)
        error = self.nc.last_error
        return None if error is before else error

    def _control(self) -> ControlClient:
        return ControlClient(self.nc, timeout_s=self.timeout_s, client="mcp", prefix=self.subject_prefix)

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
            ToolFailed: the entry is not valid (the message names the field), or the server refused it.
        """
        publisher = EventPublisher(self.nc, source=logger, subject_prefix=self.subject_prefix)
        fields = {} if trace_id is None else {"traceId": trace_id}
        subject = subject_for(LogEntryCreated.EVENT_TYPE, self.subject_prefix)
        before = self.nc.last_error
        try:
            entry: LogEntryCreated = await publisher.log(
                entry_level(level), message, metadata=metadata, **fields
            )
        except ContractError as exc:
            raise ToolFailed(str(exc)) from None
        error = await self._refusal_after(before)
        if error is not None and f'"{subject}"' in str(error):
            raise ToolFailed(f"the NATS server refused the entry: {error} (this user may not publish there)")
        return LogMessageResult(
            logId=entry.logId, subject=subject, level=entry.level, createdAt=entry.createdAt
        )
