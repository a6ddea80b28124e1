"""Which settings change live, a requested change read into settings, and settings shown as JSON.

Names are the config file's keys (the flag names with underscores). A value
is read by the setting's own parser (:func:`gateway.process.settings.parse_setting`),
so a change accepts exactly what a flag or the config file would.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from contracts.errors import GatewayError
from gateway.process.connection import redact_url
from gateway.process.settings import RUN_OPTIONS, Option, SettingError, parse_setting

__all__ = [
    "LIVE",
    "OPTIONS",
    "ChangeRefused",
    "needs_restart",
    "read_change",
    "shown",
    "shown_settings",
]

OPTIONS: dict[str, Option] = {opt.dest: opt for opt in RUN_OPTIONS}
LIVE = frozenset(
    {
        "max_batch_entries",
        "max_batch_bytes",
        "max_batch_delay_ms",
        "per_source",
        "max_open_sources",
        "max_publish_rate",
        "max_publish_bytes_rate",
        "max_in_flight",
        "max_buffered_entries",
        "max_buffered_bytes",
        "overflow",
        "alerts",
        "alert_threshold",
        "alert_window_s",
        "alert_cooldown_s",
        "alert_max_patterns",
        "max_alert_rate",
        "redact",
        "redact_keys",
        "log_level",
        "shutdown_timeout_s",
    }
)
"""The settings a running gateway takes without a restart; every other one needs a restart."""


class ChangeRefused(GatewayError, ValueError):
    """A change was not applied: the message names the settings and says why.

    Attributes:
        settings: the settings at fault (empty when the message names them otherwise).
    """

    def __init__(self, message: str, settings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.settings = settings


def read_change(change: Mapping[str, Any]) -> dict[str, Any]:
    """Each named setting's value, parsed; ``None`` means the setting's default.

    Raises:
        ChangeRefused: an unknown name (the nearest known one suggested) or a bad value.
    """
    values: dict[str, Any] = {}
    for name, value in change.items():
        opt = OPTIONS.get(name)
        if opt is None:
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ChangeRefused(f"unknown setting {name[:64]!r}{hint}", (name,))
        try:
            values[name] = opt.default if value is None else parse_setting(opt, value, name)
        except SettingError as exc:
            raise ChangeRefused(str(exc), (name,)) from None
    return values


def needs_restart(names: list[str]) -> ChangeRefused | None:
    """The refusal of a change to ``names``, when any of them cannot change while running."""
    fixed = sorted(name for name in names if name not in LIVE)
    if not fixed:
        return None
    return ChangeRefused(
        f"{', '.join(fixed)} cannot change while the gateway runs: restart it with the new "
        f"setting{'s' if len(fixed) > 1 else ''} (nothing was changed)",
        tuple(fixed),
    )


def shown(name: str, value: Any) -> JsonValue:
    """A setting's value as JSON: secrets as ``***``, URLs without credentials."""
    if value is None:
        return None
    if OPTIONS[name].secret:
        return "***"
    if name == "nats_url":
        return [redact_url(url) for url in value]
    return _json(value)


def _json(value: Any) -> JsonValue:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, frozenset | set | tuple):
        return sorted(value) if not isinstance(value, tuple) else list(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)  # (a Path)


def shown_settings(values: Mapping[str, Any]) -> dict[str, JsonValue]:
    """Every ``run`` setting in ``values`` as JSON (see :func:`shown`)."""
    return {name: shown(name, values[name]) for name in OPTIONS if name in values}
