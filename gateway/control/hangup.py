"""``SIGHUP``: re-read the settings (the ``--config`` file, flags and variables as at start) and
apply what differs, through :meth:`gateway.control.apply.Reconfigurer.reload`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Any

from contracts.errors import GatewayError
from gateway.control.apply import Reconfigurer

__all__ = ["reload_now", "watch_sighup"]

log = logging.getLogger("log_gateway.control")


async def reload_now(control: Reconfigurer, read: Callable[[], Mapping[str, Any]]) -> bool:
    """Re-read and apply; a bad file or a refused change is logged and changes nothing.

    Returns:
        True when the settings were read and the difference (if any) applied.
    """
    try:
        values = read()
    except GatewayError as exc:  # (a SettingError: the file or a value is bad)
        log.error("SIGHUP: the settings were not reloaded, the running ones stay: %s", exc)  # noqa: TRY400
        return False
    try:
        result = await control.reload(values, origin="sighup")
    except GatewayError as exc:
        log.error("SIGHUP: the new settings were refused, the running ones stay: %s", exc)  # noqa: TRY400
        return False
    if not result.changes:
        log.info("SIGHUP: settings re-read; nothing changed")
    return True


def watch_sighup(control: Reconfigurer, read: Callable[[], Mapping[str, Any]]) -> Callable[[], None]:
    """Reload on every ``SIGHUP`` (one at a time, in order); returns what stops watching."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()
    lock = asyncio.Lock()

    async def one() -> bool:
        async with lock:
            try:
                return await reload_now(control, read)
            except Exception:  # a bug: said with its traceback; the running settings stay
                log.exception("SIGHUP: reloading the settings failed")
                return False

    def hangup() -> None:
        task = loop.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)

    def stop() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return stop
