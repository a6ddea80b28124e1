"""Live reconfiguration, one code path for SIGHUP, the control service and the MCP tool.

:meth:`Reconfigurer.apply` takes a change (setting names as in the config file)
and who asked; it validates the whole new configuration with the same rules as
at start (:func:`gateway.process.settings.gateway_config`), refuses settings that
need a restart, and applies it to the running gateway for the next batch. Each
applied change is logged (old -> new, origin), counted
(``log_gateway_config_changes_total``) and announced as a
``cortex_logging.gateway.configured`` event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from nats.aio.client import Client

from contracts.cloudevents import encode_structured, make_attributes
from contracts.models import GatewayConfigured, SettingChange
from contracts.timestamps import now_timestamp
from gateway.config import GatewayConfig
from gateway.control.changes import ChangeRefused, needs_restart, read_change, shown
from gateway.core import BatchLimits
from gateway.process.settings import SettingError, gateway_config

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["ChangeRefused", "ChangeResult", "Reconfigurer", "origin_kind"]

log = logging.getLogger("log_gateway.control")
_MCP_ORIGIN = "control:mcp"  # (gateway.mcp.backend's ControlClient names itself "mcp")
_SOURCES = "_sources"  # (read_options' record of where each value came from: not a setting)


def origin_kind(origin: str) -> str:
    """The metric label of an origin: ``sighup``, ``control`` (``control:<client>``) or ``mcp``
    (the MCP server reaches the gateway as the control service's client ``mcp``)."""
    if origin == _MCP_ORIGIN:
        return "mcp"
    return origin.split(":", 1)[0][:32] or "unknown"


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a change did (``applied``) or, with ``dry_run``, would do; values shown as JSON."""

    gateway_id: str
    applied: bool
    dry_run: bool
    changes: tuple[SettingChange, ...]

    @property
    def message(self) -> str:
        """One line a person reads."""
        if not self.changes:
            return "nothing to change: every setting already has that value"
        moved = ", ".join(f"{c.setting} {c.old!r} -> {c.new!r}" for c in self.changes)
        return f"{'would change' if self.dry_run else 'changed'} {moved}"


class Reconfigurer:
    """Applies changes to one running gateway (see the module docstring).

    Args:
        gateway: the started gateway.
        values: the settings it was started with (``read_options``' values of ``run``).
        nc: the gateway's main connection: the server's ``max_payload``, and where the
            announcement goes.
    """

    def __init__(self, gateway: Gateway, values: Mapping[str, Any], nc: Client) -> None:
        self._gateway = gateway
        self._nc = nc
        self._values = _settings(values, gateway.config.gateway_id)
        self._lock = asyncio.Lock()

    @property
    def values(self) -> dict[str, Any]:
        """The settings in force (parsed values, secrets included: show them with ``shown``)."""
        return dict(self._values)

    async def apply(self, change: Mapping[str, Any], *, origin: str, dry_run: bool = False) -> ChangeResult:
        """Validate ``change`` as a whole and apply it for the next batch (unless ``dry_run``).

        Values are what a flag takes (``"50"``) or a config-file type (``50``, ``true``,
        ``["a"]``); ``None`` restores a setting's default.

        Raises:
            ChangeRefused: an unknown setting, a bad value, a setting that needs a restart,
                or a rule of the whole configuration broken; nothing was changed.
        """
        try:
            parsed = read_change(change)
        except ChangeRefused as exc:
            self._refused(origin, exc)
            raise
        return await self.apply_values(self._values | parsed, origin=origin, dry_run=dry_run)

    async def reload(self, values: Mapping[str, Any], *, origin: str = "sighup") -> ChangeResult:
        """Apply every setting of ``values`` (``read_options`` of ``run`` again) that differs.

        Raises:
            ChangeRefused: as :meth:`apply`.
        """
        return await self.apply_values(_settings(values, self._gateway.config.gateway_id), origin=origin)

    async def apply_values(
        self, values: Mapping[str, Any], *, origin: str, dry_run: bool = False
    ) -> ChangeResult:
        """:meth:`apply` of parsed settings: every ``run`` setting, as ``read_options`` gives them.

        Raises:
            ChangeRefused: as :meth:`apply`.
        """
        async with self._lock:
            new = dict(values)
            moved = [name for name in self._values if new.get(name) != self._values[name]]
            try:
                config, limits = self._validated(new, moved)
            except ChangeRefused as exc:
                self._refused(origin, exc)
                raise
            changes = tuple(
                SettingChange(setting=n, old=shown(n, self._values[n]), new=shown(n, new[n])) for n in moved
            )
            result = ChangeResult(config.gateway_id, bool(moved) and not dry_run, dry_run, changes)
            if result.applied:
                self._apply(new, config, limits)
                await self._announce(result, origin)
            return result

    def _validated(self, new: dict[str, Any], moved: list[str]) -> tuple[GatewayConfig, BatchLimits]:
        refused = needs_restart(moved)
        if refused is not None:
            raise refused
        try:
            config = gateway_config(new)
        except SettingError as exc:
            raise ChangeRefused(f"{exc} (nothing was changed)") from None
        max_payload = self._nc.max_payload
        if "max_batch_bytes" in moved and config.batch.max_bytes > max_payload:
            raise ChangeRefused(
                f"max_batch_bytes ({config.batch.max_bytes}) exceeds the server's max_payload "
                f"({max_payload}) (nothing was changed)",
                ("max_batch_bytes",),
            )
        return config, config.batch.within(max_payload)

    def _apply(self, new: dict[str, Any], config: GatewayConfig, limits: BatchLimits) -> None:
        self._gateway.retune(config, limits)
        if new["log_level"] != self._values["log_level"]:
            logging.getLogger().setLevel(str(new["log_level"]).upper())
        self._values = new

    async def _announce(self, result: ChangeResult, origin: str) -> None:
        gateway = self._gateway
        gateway.config_changes[origin_kind(origin)] += 1
        log.warning("configuration changed by %s: %s", origin, result.message.removeprefix("changed "))
        event = GatewayConfigured(
            gatewayId=result.gateway_id,
            origin=origin,
            changes=list(result.changes),
            configuredAt=now_timestamp(),
        )
        attrs = make_attributes(GatewayConfigured.EVENT_TYPE, f"//log-gateway/{result.gateway_id}")
        headers, body = encode_structured(attrs, orjson.dumps(event.to_data()))
        headers["Nats-Msg-Id"] = attrs["id"]
        try:  # (best effort, as the stream announcement: the change is made and logged either way)
            await self._nc.publish(gateway.config.subjects.configured, body, headers=headers)
        except Exception as exc:  # noqa: BLE001 - a closed or reconnecting connection must not undo the change
            log.warning("could not announce the configuration change: %r", exc)

    def _refused(self, origin: str, exc: ChangeRefused) -> None:
        self._gateway.config_refused[origin_kind(origin)] += 1
        log.warning("configuration change by %s refused: %s", origin, exc)


def _settings(values: Mapping[str, Any], gateway_id: str) -> dict[str, Any]:
    """``values`` without the record of sources, with the running gateway's id when none was set."""
    out = {name: value for name, value in values.items() if name != _SOURCES}
    out["gateway_id"] = out.get("gateway_id") or gateway_id
    return out
