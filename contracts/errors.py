"""One error root for the project, and errors that carry what a person needs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ContractError",
    "DecodeError",
    "FieldError",
    "GatewayError",
    "RejectReason",
]


class GatewayError(Exception):
    """Root of every error raised by cortex-log-gateway."""


class RejectReason(StrEnum):
    """Why an incoming message was rejected; used as a metric label and on the wire."""

    INVALID_JSON = "invalid_json"
    DUPLICATE_KEY = "duplicate_key"
    TOO_DEEP = "too_deep"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    INVALID_ENVELOPE = "invalid_envelope"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    UNEXPECTED_TYPE = "unexpected_type"
    INVALID_ENTRY = "invalid_entry"
    OVERSIZE = "oversize"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation problem: the dotted field path and what was wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContractError(GatewayError, ValueError):
    """An event's data does not match its contract.

    Attributes:
        event: the contract's name (e.g. ``LogEntryCreated``).
        errors: each field that failed and why.
    """

    def __init__(self, event: str, errors: list[FieldError]) -> None:
        self.event = event
        self.errors = errors
        detail = "; ".join(str(e) for e in errors) or "invalid"
        super().__init__(f"invalid {event}: {detail}")


class DecodeError(GatewayError, ValueError):
    """A message could not be turned into an event.

    Attributes:
        reason: machine-readable cause, one of :class:`RejectReason`.
        detail: a sentence a person can act on.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")
