"""Pydantic models mirroring the platform's logging events, field for field.

Names on the wire are camelCase, exactly as the TypeScript schemas have them, so
the Python attributes use the same names. Fields a newer producer adds are kept
(``extra="allow"``) and written back out unchanged. Optional fields may be
absent but not ``null``, as in the platform's schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    JsonValue,
    ValidationError,
    model_validator,
)
from pydantic_core import CoreSchema

from contracts.errors import ContractError, FieldError
from contracts.timestamps import RFC3339_PATTERN, Timestamp, parse_timestamp

__all__ = [
    "LEVELS",
    "ContractModel",
    "EntryRejected",
    "ErrorPatternDetected",
    "GatewayConfigured",
    "LogArchived",
    "LogBatchCreated",
    "LogEntryCreated",
    "LogLevel",
    "LogStreamStarted",
    "SettingChange",
    "Severity",
    "StreamDestination",
    "StreamFormat",
    "StrictLogEntryCreated",
    "TimeRange",
    "contract_errors",
]

LogLevel = Literal["debug", "info", "warn", "error", "fatal"]
Severity = Literal["low", "medium", "high", "critical"]
StreamDestination = Literal["console", "file", "database", "external"]
StreamFormat = Literal["json", "text", "structured"]
LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warn", "error", "fatal")


class _NotNull:
    """Validate ``X | None`` as plain ``X``: an optional field may be absent (its
    default is None) but not null, as in the platform's schemas. Done in the core
    schema, so no Python code runs per field."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        return schema["schema"] if schema["type"] == "nullable" else schema


Opt = _NotNull()
NonEmpty = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0)]


class ContractModel(BaseModel):
    """Base of every contract: strict types, unknown fields carried through."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    EVENT_TYPE: ClassVar[str] = ""

    @classmethod
    def parse(cls, data: Any) -> Self:
        """Validate already-parsed JSON data.

        Raises:
            ContractError: naming this event, each bad field and what was wrong.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ContractError(cls.__name__, contract_errors(exc)) from None

    @classmethod
    def parse_json(cls, data: bytes | str) -> Self:
        """Validate a JSON document (use :func:`contracts.jsonsafe.loads` for untrusted bytes).

        Raises:
            ContractError: naming this event, each bad field and what was wrong.
        """
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise ContractError(cls.__name__, contract_errors(exc)) from None

    def to_json(self) -> bytes:
        """The event data as JSON, with exactly the fields it was given (unknown ones too)."""
        return self.model_dump_json(exclude_unset=True).encode()

    def to_data(self) -> dict[str, Any]:
        """The event data as a JSON-ready dict, with exactly the fields it was given."""
        return self.model_dump(mode="json", exclude_unset=True)


# What a pattern means, said in words: pydantic's message shows the raw regex.
_PATTERNS = {
    RFC3339_PATTERN: "an RFC 3339 date-time with seconds and a time zone, such as 2025-10-13T08:00:00.000Z",
}


def contract_errors(exc: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into (dotted field, message) pairs."""
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "(root)"
        message = err["msg"]
        expected = (
            _PATTERNS.get(err.get("ctx", {}).get("pattern", ""))
            if err["type"] == "string_pattern_mismatch"
            else None
        )
        if expected is not None:
            message = f"expected {expected}, got {str(err['input'])[:64]!r}"
        out.append(FieldError(field, message))
    return out


class LogEntryCreated(ContractModel):
    """One log entry (``cortex_logging.entry.created``).

    As the platform's own schema has it: ``logId``, ``source`` and ``createdAt``
    are any strings, empty ones too. Where the gateway needs a time it parses
    ``createdAt`` (:func:`contracts.timestamps.lenient_epoch`);
    :class:`StrictLogEntryCreated` is the stricter contract ``--strict`` asks for.
    """

    EVENT_TYPE: ClassVar[str] = "cortex_logging.entry.created"

    logId: str
    level: LogLevel
    message: str
    source: str
    component: Annotated[str | None, Opt] = None
    userId: Annotated[str | None, Opt] = None
    sessionId: Annotated[str | None, Opt] = None
    metadata: Annotated[dict[str, JsonValue] | None, Opt] = None
    createdAt: str


class StrictLogEntryCreated(LogEntryCreated):
    """A log entry held to more than the platform asks: ``logId`` and ``source`` not
    empty, ``createdAt`` an RFC 3339 date-time (the gateway's ``--strict``)."""

    logId: NonEmpty
    source: NonEmpty
    createdAt: Timestamp


class LogStreamStarted(ContractModel):
    """A stream of log events began (``cortex_logging.stream.started``)."""

    EVENT_TYPE: ClassVar[str] = "cortex_logging.stream.started"

    streamId: NonEmpty
    filters: Annotated[dict[str, JsonValue] | None, Opt] = None
    destination: StreamDestination
    format: StreamFormat
    startedBy: NonEmpty
    startedAt: Timestamp


class ErrorPatternDetected(ContractModel):
    """A recurring error pattern crossed its threshold (``cortex_logging.error_pattern.detected``)."""

    EVENT_TYPE: ClassVar[str] = "cortex_logging.error_pattern.detected"

    patternId: NonEmpty
    pattern: NonEmpty
    occurrences: Annotated[int, Field(gt=0)]
    severity: Severity
    timeWindow: NonEmpty
    firstOccurrence: Timestamp
    lastOccurrence: Timestamp
    detectedAt: Timestamp

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.firstOccurrence, self.lastOccurrence, "lastOccurrence")
        return self


class TimeRange(ContractModel):
    """An inclusive span of time."""

    start: Timestamp
    end: Timestamp

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.start, self.end, "end")
        return self


class LogArchived(ContractModel):
    """A segment of log entries was archived (``cortex_logging.log.archived``)."""

    EVENT_TYPE: ClassVar[str] = "cortex_logging.log.archived"

    archiveId: NonEmpty
    timeRange: TimeRange
    entryCount: Count
    compressedSize: Count
    destination: NonEmpty
    archivedAt: Timestamp


class LogBatchCreated(ContractModel):
    """Many log entries in one event (``cortex_logging.batch.created``).

    ``sequence`` rises by one per batch a gateway instance publishes, so a gap
    tells a consumer a batch is missing; ``droppedSinceLast`` counts the entries
    that instance dropped since its previous batch, so loss is never silent.
    """

    EVENT_TYPE: ClassVar[str] = "cortex_logging.batch.created"

    batchId: NonEmpty
    gatewayId: NonEmpty
    sequence: Annotated[int, Field(ge=1)]
    count: Annotated[int, Field(ge=1)]
    entries: Annotated[list[LogEntryCreated], Field(min_length=1)]
    firstCreatedAt: Timestamp
    lastCreatedAt: Timestamp
    levelCounts: dict[LogLevel, Count]
    droppedSinceLast: Count
    droppedByReason: Annotated[dict[str, Count] | None, Opt] = None
    createdAt: Annotated[Timestamp | None, Opt] = None
    source: Annotated[str | None, Opt] = None  # the entries' source under --per-source: any string

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.count != len(self.entries):
            raise ValueError(f"count is {self.count} but entries holds {len(self.entries)}")
        seen: dict[str, int] = {}
        for entry in self.entries:
            seen[entry.level] = seen.get(entry.level, 0) + 1
        declared = {level: n for level, n in self.levelCounts.items() if n}
        if declared != seen:
            raise ValueError(f"levelCounts {declared} do not match the entries' levels {seen}")
        if self.droppedByReason is not None and sum(self.droppedByReason.values()) != self.droppedSinceLast:
            raise ValueError("droppedByReason does not add up to droppedSinceLast")
        _check_order(self.firstCreatedAt, self.lastCreatedAt, "lastCreatedAt")
        return self


class EntryRejected(ContractModel):
    """A message the gateway could not accept, forwarded so it never disappears silently.

    ``payload`` holds as much of the original body as fits (as text when it is
    UTF-8, else ``payloadBase64``); ``payloadBytes`` is the original size.
    ``headers`` is an excerpt of the original headers, bounded like the payload;
    ``headersTruncated`` says whether headers were cut or left out (absent when
    the message had none). ``truncated`` is true when the event does not hold
    the whole message: the payload or the headers were cut.
    """

    EVENT_TYPE: ClassVar[str] = "cortex_logging.entry.rejected"

    reason: NonEmpty
    detail: str
    subject: NonEmpty
    headers: Annotated[dict[str, str] | None, Opt] = None
    payload: Annotated[str | None, Opt] = None
    payloadBase64: Annotated[str | None, Opt] = None
    payloadBytes: Count
    truncated: bool
    headersTruncated: Annotated[bool | None, Opt] = None
    gatewayId: NonEmpty
    rejectedAt: Timestamp


class SettingChange(ContractModel):
    """One setting a live change moved: its name (the config file key) and its values."""

    setting: NonEmpty
    old: JsonValue
    new: JsonValue


class GatewayConfigured(ContractModel):
    """A running gateway applied a configuration change (``cortex_logging.gateway.configured``).

    ``origin`` says who asked, as the transport tells it: ``sighup`` (the config
    file re-read), ``control:<client>`` (the control service on NATS; the client
    names itself) or ``mcp``. Secrets show as ``***``.
    """

    EVENT_TYPE: ClassVar[str] = "cortex_logging.gateway.configured"

    gatewayId: NonEmpty
    origin: NonEmpty
    changes: Annotated[list[SettingChange], Field(min_length=1)]
    configuredAt: Timestamp


def _check_order(first: str, last: str, name: str) -> None:
    if parse_timestamp(first) > parse_timestamp(last):
        raise ValueError(f"{name} {last} is earlier than {first}")
