"""A fast path for validating ``LogEntryCreated`` data that pydantic still rules.

Validating an entry with the pydantic model costs a few microseconds, a large
share of the gateway's time per entry. :func:`plainly_valid_entry` checks
already-parsed JSON in plain Python and answers only when the answer is
certain: it returns ``createdAt`` as epoch seconds for data that the model
certainly accepts, and None for everything else (a missing or mistyped field,
a timestamp in any form but the platform's own, ...), where the caller must ask
the model, which then accepts or rejects with its usual field errors. So the
outcome is always the model's; only common valid entries take the fast path.
A property test holds it to that against the model on valid and hostile data.

The data must come from a JSON parser (:func:`contracts.jsonsafe.loads`): the
check relies on JSON's types (object keys are strings, every value is JSON),
which is what lets ``metadata`` pass as any object.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from contracts.models import LEVELS

__all__ = ["plainly_valid_entry", "platform_epoch"]

_LEVELS: Final = frozenset(LEVELS)
_OPTIONAL_TEXT: Final = ("component", "userId", "sessionId")
_NOT_GIVEN: Final[Any] = ""  # a str: an absent optional text field passes its check
_NO_METADATA: Final[dict[str, Any]] = {}
# The platform's own form, 2025-10-13T08:00:00.000Z; every other RFC 3339 form goes to the model.
_PLATFORM_TIME: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
# Entries arriving together often share a timestamp (millisecond resolution): remember a few.
_EPOCHS: dict[str, float] = {}
_MAX_EPOCHS: Final = 4096


def plainly_valid_entry(data: Any, *, strict: bool = False) -> float | None:
    """``createdAt`` as epoch seconds if ``data`` is certainly a valid entry, else None (ask the model).

    The model is :class:`~contracts.models.LogEntryCreated` (the platform's: ``logId``
    and ``source`` may be empty), or :class:`~contracts.models.StrictLogEntryCreated`
    when ``strict``. Either way only the platform's own ``createdAt`` form is answered here.
    """
    if type(data) is not dict:
        return None
    try:
        log_id, level, message = data["logId"], data["level"], data["message"]
        source, created = data["source"], data["createdAt"]
    except KeyError:
        return None
    if (
        type(log_id) is not str
        or type(level) is not str
        or level not in _LEVELS
        or type(message) is not str
        or type(source) is not str
        or type(created) is not str
        or (strict and not (log_id and source))
    ):
        return None
    for name in _OPTIONAL_TEXT:
        if type(data.get(name, _NOT_GIVEN)) is not str:  # present, it must be text (null is not)
            return None
    if type(data.get("metadata", _NO_METADATA)) is not dict:
        return None
    return platform_epoch(created)


def platform_epoch(created: str) -> float | None:
    """``created`` in epoch seconds if it is in the platform's own form and names a moment, else None."""
    epoch = _EPOCHS.get(created)
    if epoch is not None:
        return epoch
    if len(created) != 24 or _PLATFORM_TIME.fullmatch(created) is None:
        return None
    try:
        epoch = datetime.fromisoformat(created).timestamp()
    except ValueError:  # no such date or time (February 30th, hour 24): the model says why
        return None
    if len(_EPOCHS) >= _MAX_EPOCHS:
        _EPOCHS.clear()
    _EPOCHS[created] = epoch
    return epoch
