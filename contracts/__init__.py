"""The platform's logging events as Pydantic v2 models, and CloudEvents over NATS."""

from contracts.cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    ContentMode,
    DecodedEvent,
    decode,
    decode_contract,
    encode_binary,
    encode_structured,
    make_attributes,
)
from contracts.errors import ContractError, DecodeError, FieldError, GatewayError, RejectReason
from contracts.events import CONTRACTS, ENTRY_REJECTED_SUBJECT, contract_for_type, subject_for
from contracts.models import (
    LEVELS,
    ContractModel,
    EntryRejected,
    ErrorPatternDetected,
    GatewayConfigured,
    LogArchived,
    LogBatchCreated,
    LogEntryCreated,
    LogLevel,
    LogStreamStarted,
    StrictLogEntryCreated,
    TimeRange,
)
from contracts.schemas import export_schemas, json_schema

__all__ = [
    "CONTRACTS",
    "ENTRY_REJECTED_SUBJECT",
    "LEVELS",
    "STRUCTURED_CONTENT_TYPE",
    "ContentMode",
    "ContractError",
    "ContractModel",
    "DecodeError",
    "DecodedEvent",
    "EntryRejected",
    "ErrorPatternDetected",
    "FieldError",
    "GatewayConfigured",
    "GatewayError",
    "LogArchived",
    "LogBatchCreated",
    "LogEntryCreated",
    "LogLevel",
    "LogStreamStarted",
    "RejectReason",
    "StrictLogEntryCreated",
    "TimeRange",
    "contract_for_type",
    "decode",
    "decode_contract",
    "encode_binary",
    "encode_structured",
    "export_schemas",
    "json_schema",
    "make_attributes",
    "subject_for",
]
