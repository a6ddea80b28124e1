"""The gateway control service's requests and replies (``log-gateway ctl``, the MCP tool).

Requests are strict: an unknown field, a wrong type or an oversized change is a
:class:`contracts.errors.ContractError` naming the field, answered with an
:class:`ErrorReply`, never a crash. Replies allow fields a newer gateway adds.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from contracts.errors import ContractError, FieldError
from contracts.jsonsafe import loads
from contracts.models import SettingChange, contract_errors
from contracts.query import LogQuery

__all__ = [
    "MAX_REQUEST_BYTES",
    "ConfigGetRequest",
    "ConfigReply",
    "ConfigSetReply",
    "ConfigSetRequest",
    "ConnectionStatus",
    "ControlReply",
    "ControlRequest",
    "ErrorCode",
    "ErrorReply",
    "QueryReply",
    "StatusReply",
    "StatusRequest",
    "query_request",
]

MAX_REQUEST_BYTES = 64 * 1024
"""A larger request body is refused before it is parsed."""

ErrorCode = Literal["bad_request", "refused", "internal"]
SettingName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
ClientName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def _body(name: str, data: bytes) -> Any:
    """An untrusted body as JSON data (empty means ``{}``), refused when too large."""
    if len(data) > MAX_REQUEST_BYTES:
        raise ContractError(
            name, [FieldError("(root)", f"body of {len(data)} bytes exceeds {MAX_REQUEST_BYTES}")]
        )
    return loads(data) if data.strip() else {}


def query_request(data: bytes) -> LogQuery:
    """The body of a ``query`` request: a :class:`contracts.query.LogQuery` as JSON.

    Raises:
        ContractError: too large, or not safe JSON.
        contracts.errors.DecodeError: the body is not strict JSON.
        contracts.query.QueryError: not a query (each bad field named), or a bad cursor.
    """
    return LogQuery.parse(_body("LogQuery", data))


class ControlRequest(BaseModel):
    """Base of every request: strict, unknown fields refused; ``client`` names the caller.

    Each model's validator is built on its first use, not on import (``defer_build``): a
    gateway that is never asked does not build them in its cold start.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
    ENDPOINT: ClassVar[str] = ""

    client: ClientName | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Validate an untrusted request body (empty means ``{}``).

        Raises:
            ContractError: too large, not safe JSON, or not this request (the field named).
            contracts.errors.DecodeError: the body is not strict JSON.
        """
        value = _body(cls.__name__, data)
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise ContractError(cls.__name__, contract_errors(exc)) from None

    def to_bytes(self) -> bytes:
        """The request as JSON."""
        return self.model_dump_json(exclude_none=True).encode()


class StatusRequest(ControlRequest):
    """Ask for counts, buffers, connection, uptime and version."""

    ENDPOINT: ClassVar[str] = "status"


class ConfigGetRequest(ControlRequest):
    """Ask for the effective settings (secrets masked)."""

    ENDPOINT: ClassVar[str] = "config_get"


class ConfigSetRequest(ControlRequest):
    """Change settings while running; ``dryRun`` validates without applying.

    Values are JSON (as in the config file: ``50``, ``true``, ``"drop_oldest"``,
    ``["a", "b"]``) or the text a flag takes (``"50"``); ``null`` restores the default.
    """

    ENDPOINT: ClassVar[str] = "config_set"

    changes: Annotated[dict[SettingName, JsonValue], Field(min_length=1, max_length=100)]
    dryRun: bool = False


class ControlReply(BaseModel):
    """Base of every reply: the gateway that answered; fields a newer gateway adds are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    gatewayId: str


class ConnectionStatus(BaseModel):
    """The gateway's main NATS connection."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    connected: bool
    url: str | None = None
    reconnects: int = 0


class StatusReply(ControlReply):
    """What one gateway holds and has done."""

    version: str
    uptimeS: float
    ready: bool
    connection: ConnectionStatus
    counts: dict[str, int]
    dropped: dict[str, int]
    rejected: dict[str, int]
    buffered: dict[str, int]
    inFlight: dict[str, int]
    spooled: dict[str, int] | None = None
    failedTasks: list[str] = Field(default_factory=list)


class ConfigReply(ControlReply):
    """The effective settings (secrets as ``***``) and which of them may change live."""

    settings: dict[str, JsonValue]
    live: list[str]


class ConfigSetReply(ControlReply):
    """What a change did (or, with ``dryRun``, would do)."""

    applied: bool
    dryRun: bool
    changes: list[SettingChange]
    message: str


class ErrorReply(ControlReply):
    """A request the gateway would not or could not carry out; ``error`` says why."""

    code: ErrorCode
    error: str


class QueryReply(ControlReply):
    """One page of a query (a :class:`contracts.query.QueryPage`): ``nextCursor`` None on the last.

    A page may hold fewer than ``limit`` entries and still have a cursor: it is cut
    to stay under the server's ``max_payload``.
    """

    entries: list[dict[str, JsonValue]]
    nextCursor: str | None = None
