"""The control service on NATS, built on nats-py's services framework (``nats.micro``).

It is discoverable the standard way (``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``;
the ``nats micro`` commands list it) as ``log-gateway``, with the gateway's id in
its metadata. Endpoints (``status``, ``config_get``, ``config_set``) answer on the
subjects of :mod:`gateway.control.subjects`, for this gateway alone and for all.
``query`` answers one page of a :class:`contracts.query.LogQuery` over the stream
the batches are stored in; its ``all`` form is answered by one gateway (the stream
is shared), and a page is cut to stay under the server's ``max_payload``.
Every request is validated with the contracts' models; a malformed or hostile
one gets an :class:`contracts.control.ErrorReply` (and the framework's error
headers), never a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig
from pydantic import BaseModel

from contracts.control import (
    ConfigGetRequest,
    ConfigReply,
    ConfigSetReply,
    ConfigSetRequest,
    ErrorCode,
    ErrorReply,
    QueryReply,
    StatusRequest,
    query_request,
)
from contracts.errors import ContractError, DecodeError
from contracts.query import QueryError
from gateway.control.apply import ChangeRefused, Reconfigurer
from gateway.control.changes import LIVE, shown_settings
from gateway.control.status import gateway_status
from gateway.control.subjects import ENDPOINTS, QUERY_GROUP, SERVICE_NAME, control_subject
from publishers.roundtrip import server_has_read

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["ControlService"]

log = logging.getLogger("log_gateway.control")
_STATUS_CODES: dict[ErrorCode, str] = {"bad_request": "400", "refused": "409", "internal": "500"}
_MAX_ERROR = 2000  # characters of an error message sent back
_REPLY_ROOM = 8 * 1024
"""Bytes of ``max_payload`` kept for a query reply's envelope (gatewayId, nextCursor, headers)."""


class ControlService:
    """Answers control requests for one running gateway.

    Args:
        nc: the gateway's main connection.
        gateway: the started gateway.
        reconfigurer: the one path of live changes.
        version: the gateway's version, in ``$SRV.INFO`` and ``status``.
    """

    def __init__(self, nc: Client, gateway: Gateway, reconfigurer: Reconfigurer, *, version: str) -> None:
        self._nc = nc
        self._gateway = gateway
        self._control = reconfigurer
        self._version = version
        self._started_at = time.monotonic()
        self._service: Service | None = None
        self._stream: str | None = None

    async def start(self) -> None:
        """Subscribe the endpoints and the discovery subjects."""
        gateway_id = self._gateway.config.gateway_id
        prefix = self._gateway.config.subjects.prefix
        service = Service(
            self._nc,
            ServiceConfig(
                name=SERVICE_NAME,
                version=self._version,
                description="cortex-log-gateway control: status, effective config, live changes",
                metadata={"gateway_id": gateway_id},
                queue_group=gateway_id,  # one group per gateway: a request to all reaches each
            ),
        )
        await service.start()
        handlers = {
            "status": self._status,
            "config_get": self._config_get,
            "config_set": self._config_set,
            "query": self._query,
        }
        for endpoint in ENDPOINTS:
            for target in (gateway_id, None):
                config = EndpointConfig(
                    name=endpoint,
                    handler=_guarded(handlers[endpoint], gateway_id),
                    # (a query's answer is the same from any gateway: one of them answers the all-form)
                    queue_group=QUERY_GROUP if endpoint == "query" and target is None else None,
                    subject=control_subject(endpoint, target, prefix),
                    metadata={"target": "all" if target is None else "gateway"},
                )
                await service.add_endpoint(config)
        await server_has_read(self._nc)  # (answering once the server has the SUBs)
        self._service = service

    async def stop(self) -> None:
        """Stop answering (idempotent)."""
        if self._service is not None:
            await self._service.stop()

    @property
    def service(self) -> Service | None:
        """The running ``nats.micro`` service (None before :meth:`start`)."""
        return self._service

    async def _status(self, data: bytes) -> BaseModel:
        StatusRequest.from_bytes(data)
        uptime = time.monotonic() - self._started_at
        return gateway_status(self._gateway, self._nc, version=self._version, uptime_s=uptime)

    async def _config_get(self, data: bytes) -> BaseModel:
        ConfigGetRequest.from_bytes(data)
        settings = shown_settings(self._control.values)
        return ConfigReply(gatewayId=self._gateway.config.gateway_id, settings=settings, live=sorted(LIVE))

    async def _config_set(self, data: bytes) -> BaseModel:
        request = ConfigSetRequest.from_bytes(data)
        origin = f"control:{request.client or 'anonymous'}"
        result = await self._control.apply(request.changes, origin=origin, dry_run=request.dryRun)
        return ConfigSetReply(
            gatewayId=result.gateway_id,
            applied=result.applied,
            dryRun=result.dry_run,
            changes=list(result.changes),
            message=result.message,
        )

    async def _query(self, data: bytes) -> BaseModel:
        from gateway.consumers.query import query_page  # noqa: PLC0415 - loaded by the first query

        query = query_request(data)
        if query.regex:  # (Python's re has no time limit: one pattern could stall the gateway's loop)
            raise QueryError(
                "regex: not answered inside the gateway (a regular expression can take unbounded time); "
                "use a substring filter, or 'log-gateway query --regex' from elsewhere"
            )
        config = self._gateway.config
        if self._stream is None:
            self._stream = await _stream_of(self._nc, config.subjects.batch, config.stream.name)
        ask = partial(query_page, self._nc, query, stream=self._stream, subject=config.subjects.batch)
        page = await ask(max_bytes=max(self._nc.max_payload - _REPLY_ROOM, 1))
        return QueryReply(gatewayId=config.gateway_id, **page.to_data())


async def _stream_of(nc: Client, subject: str, default: str) -> str:
    """The stream the batches are stored in: another may already capture their subject."""
    try:
        return await nc.jetstream().find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        return default


def _guarded(
    answer: Callable[[bytes], Awaitable[BaseModel]], gateway_id: str
) -> Callable[[Request], Awaitable[None]]:
    """A framework handler around ``answer``: every failure becomes an error reply."""

    async def handle(request: Request) -> None:
        try:
            reply = await answer(request.data)
        except (ContractError, DecodeError, QueryError) as exc:
            await _error(request, gateway_id, "bad_request", str(exc))
        except ChangeRefused as exc:
            await _error(request, gateway_id, "refused", str(exc))
        except Exception as exc:
            log.exception("control request on %s failed", request.subject)
            await _error(request, gateway_id, "internal", f"the gateway failed on this request: {exc!r}")
        else:
            try:
                await _respond(request, reply.model_dump_json().encode(), None)
            except nats.errors.MaxPayloadError:  # (a query's page is cut to fit: not expected)
                log.exception("a control reply on %s exceeds the server's max_payload", request.subject)
                await _error(request, gateway_id, "internal", "the reply exceeds the server's max_payload")

    return handle


async def _error(request: Request, gateway_id: str, code: ErrorCode, message: str) -> None:
    message = message[:_MAX_ERROR]
    body = ErrorReply(gatewayId=gateway_id, code=code, error=message).model_dump_json().encode()
    # The framework's error headers, so generic tools (the nats CLI) see an error too.
    headers = {
        "Nats-Service-Error": " ".join(message.split()),
        "Nats-Service-Error-Code": _STATUS_CODES[code],
    }
    await _respond(request, body, headers)


async def _respond(request: Request, body: bytes, headers: dict[str, str] | None) -> None:
    try:
        await request.respond(body, headers=headers)
    except ValueError:
        log.debug("a control request on %s had no reply subject", request.subject)
