"""A client of the gateways' control service: status, the effective config, live changes.

Each method addresses one gateway by its id, or every gateway (``gateway=None``);
every gateway answers for itself, so a request to all returns one reply per
gateway. Replies are returned as JSON-ready dicts validated by the contracts'
models (:class:`contracts.control.StatusReply`, ``ConfigReply``, ``ConfigSetReply``).
:meth:`ControlClient.query` is the exception: the gateways share one stream, so one
gateway answers a page (a :class:`contracts.query.QueryPage`); :meth:`ControlClient.pages`
asks again with each page's cursor until the last.
This module needs only the contracts and nats-py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from contracts.control import (
    ConfigGetRequest,
    ConfigReply,
    ConfigSetReply,
    ConfigSetRequest,
    ControlReply,
    ControlRequest,
    ErrorReply,
    QueryReply,
    StatusReply,
    StatusRequest,
)
from contracts.errors import DecodeError, GatewayError
from contracts.jsonsafe import loads
from contracts.query import LogQuery, QueryPage
from gateway.control.subjects import control_subject

__all__ = ["ControlClient", "ControlError"]

_ERROR_HEADER = "Nats-Service-Error"  # (nats.micro's error reply header)
_REPLIES: dict[str, type[ControlReply]] = {
    "status": StatusReply,
    "config_get": ConfigReply,
    "config_set": ConfigSetReply,
    "query": QueryReply,
}


class ControlError(GatewayError):
    """A request no gateway answered, or one a gateway refused; the message says which and why.

    Attributes:
        replies: every reply received (errors included), as dicts.
    """

    def __init__(self, message: str, replies: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.replies = replies or []


class ControlClient:
    """Asks gateways over NATS (see the module docstring).

    Args:
        nc: a connected client whose user may publish to the control subjects.
        timeout_s: how long to wait for a gateway addressed by id, or for all to answer.
        settle_s: with every gateway addressed, stop waiting once no reply came for this long.
        client: how this client names itself to the gateways (shown as ``control:<client>``).
        prefix: the gateways' subject prefix, if they run with one.
    """

    def __init__(
        self,
        nc: Client,
        *,
        timeout_s: float = 2.0,
        settle_s: float = 0.3,
        client: str | None = None,
        prefix: str = "",
    ) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._settle_s = min(settle_s, timeout_s)
        self._client = client
        self._prefix = prefix

    async def status(self, gateway: str | None = None) -> list[dict[str, Any]]:
        """Counts, buffered, spooled, in flight, connection, uptime and version of each gateway.

        Raises:
            ControlError: no gateway answered.
        """
        return await self._ask(StatusRequest(client=self._client), gateway)

    async def config_get(self, gateway: str | None = None) -> list[dict[str, Any]]:
        """Each gateway's effective settings (secrets masked) and which may change live.

        Raises:
            ControlError: no gateway answered.
        """
        return await self._ask(ConfigGetRequest(client=self._client), gateway)

    async def config_set(
        self, changes: Mapping[str, Any], *, gateway: str | None = None, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Apply ``changes`` (setting names as in the config file) live; ``dry_run`` only checks.

        Raises:
            ControlError: no gateway answered, or one refused (``replies`` holds every answer).
        """
        request = ConfigSetRequest(client=self._client, changes=dict(changes), dryRun=dry_run)
        return await self._ask(request, gateway)

    async def query(self, query: LogQuery, *, gateway: str | None = None) -> QueryPage:
        """One page of ``query`` from the gateway ``gateway``, or from any one gateway (None).

        Ask again with ``query.model_copy(update={"cursor": page.nextCursor})`` for the next
        page. A page may hold fewer than ``query.limit`` entries and still have a cursor (it
        is cut to stay under the server's ``max_payload``); the last one has no cursor.

        Raises:
            ControlError: no gateway answered, or it refused the query or its cursor (the
                message names the field; ``replies`` holds the error reply).
        """
        subject = control_subject("query", gateway, self._prefix)
        body = query.model_dump_json(exclude_none=True).encode()
        reply = _reply("query", (await self._one(subject, body))[0])
        if "error" in reply:
            raise ControlError(f"gateway {reply['gatewayId']}: {reply['error']}", [reply])
        return QueryPage.model_validate({"entries": reply["entries"], "nextCursor": reply.get("nextCursor")})

    async def pages(self, query: LogQuery, *, gateway: str | None = None) -> AsyncIterator[QueryPage]:
        """Every page of ``query`` from its cursor (if any) to the last, asked for one at a time.

        Raises:
            ControlError: as :meth:`query`.
        """
        while True:
            page = await self.query(query, gateway=gateway)
            yield page
            if page.nextCursor is None:
                return
            query = query.model_copy(update={"cursor": page.nextCursor})

    async def _ask(self, request: ControlRequest, gateway: str | None) -> list[dict[str, Any]]:
        subject = control_subject(request.ENDPOINT, gateway, self._prefix)
        messages = await (
            self._gather(subject, request) if gateway is None else self._one(subject, request.to_bytes())
        )
        if not messages:
            raise ControlError(
                f"no gateway answered on {subject} within {self._timeout_s:g}s: is one running "
                "(with the control service on, and this subject prefix)?"
            )
        replies = [_reply(request.ENDPOINT, msg) for msg in messages]
        errors = [r for r in replies if "error" in r]
        if errors:
            said = "; ".join(f"gateway {r['gatewayId']}: {r['error']}" for r in errors)
            raise ControlError(said, replies)
        return replies

    async def _one(self, subject: str, body: bytes) -> list[Msg]:
        try:
            return [await self._nc.request(subject, body, timeout=self._timeout_s)]
        except nats.errors.NoRespondersError:
            raise ControlError(f"no gateway answers on {subject}: is one running with that id?") from None
        except nats.errors.TimeoutError:
            raise ControlError(
                f"the gateway did not answer on {subject} within {self._timeout_s:g}s"
            ) from None

    async def _gather(self, subject: str, request: ControlRequest) -> list[Msg]:
        """Every reply to one request: until ``timeout_s``, or ``settle_s`` after the last reply."""
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox)
        got: list[Msg] = []
        try:
            await self._nc.publish(subject, request.to_bytes(), reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._timeout_s
            while (left := deadline - loop.time()) > 0:
                wait = left if not got else min(left, self._settle_s)
                try:
                    msg = await sub.next_msg(timeout=wait)
                except nats.errors.TimeoutError:
                    break
                if (msg.headers or {}).get("Status") == "503":
                    break  # no responders: nobody subscribes there
                got.append(msg)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        return got


def _reply(endpoint: str, msg: Msg) -> dict[str, Any]:
    """A reply's body, validated; a gateway's error reply as an :class:`ErrorReply` dict."""
    model: type[ControlReply] = ErrorReply if _ERROR_HEADER in (msg.headers or {}) else _REPLIES[endpoint]
    try:
        return model.model_validate(loads(msg.data)).model_dump(mode="json")
    except (DecodeError, ValidationError) as exc:
        raise ControlError(f"a reply on {msg.subject} is not a {model.__name__}: {exc}") from None
