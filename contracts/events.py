"""The event types, the subjects they travel on, and the contract for each."""

from __future__ import annotations

import re

from contracts.models import (
    ContractModel,
    EntryRejected,
    ErrorPatternDetected,
    GatewayConfigured,
    LogArchived,
    LogBatchCreated,
    LogEntryCreated,
    LogStreamStarted,
)

__all__ = [
    "CONTRACTS",
    "ENTRY_REJECTED_SUBJECT",
    "contract_for_type",
    "subject_for",
    "validate_subject",
    "validate_subject_token",
]

CONTRACTS: tuple[type[ContractModel], ...] = (
    LogEntryCreated,
    LogStreamStarted,
    ErrorPatternDetected,
    LogArchived,
    LogBatchCreated,
    EntryRejected,
    GatewayConfigured,
)
ENTRY_REJECTED_SUBJECT = EntryRejected.EVENT_TYPE
_BY_TYPE = {model.EVENT_TYPE: model for model in CONTRACTS}
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


def contract_for_type(event_type: str) -> type[ContractModel] | None:
    """The contract whose CloudEvents ``type`` is ``event_type``, if any."""
    return _BY_TYPE.get(event_type)


def validate_subject_token(token: str, what: str = "subject token") -> str:
    """Check one subject token holds only safe characters (no wildcards, dots or spaces).

    Raises:
        ValueError: naming ``what`` and the offending value.
    """
    if not _TOKEN.match(token):
        raise ValueError(f"{what} {token[:64]!r} may hold only letters, digits, '_' and '-'")
    return token


def validate_subject(subject: str, what: str = "subject") -> str:
    """Check a literal subject: dot-separated safe tokens, no wildcards.

    Raises:
        ValueError: naming ``what`` and the offending value.
    """
    for token in subject.split("."):
        validate_subject_token(token, what)
    return subject


def subject_for(event_type: str, prefix: str = "") -> str:
    """The subject an event type travels on: its type, after an optional prefix.

    Raises:
        ValueError: the prefix is not a valid literal subject.
    """
    if not prefix:
        return event_type
    validate_subject(prefix, "subject prefix")
    return f"{prefix}.{event_type}"
