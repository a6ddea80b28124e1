"""``log-gateway ctl``: the control service from the command line.

``ctl status``, ``ctl config get`` and ``ctl config set NAME=VALUE ...`` ask one
gateway (``--gateway ID``) or every gateway (the default, ``--all``); each
answers for itself. ``ctl query`` (the filters of ``log-gateway query``) asks one
gateway, or any one of them (they share the stream), for a page, or with
``--to-end`` for every page in turn. Output is for people unless ``--json``. Exit
status: 0, 1 when no gateway answered or one refused (the reason on stderr), 2
for bad usage.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from nats.aio.client import Client

from contracts.query import LogQuery
from gateway.consumers.querycli import format_row
from gateway.control.client import ControlClient, ControlError

__all__ = ["parse_assignments", "run_ctl", "run_ctl_query"]


def parse_assignments(items: Sequence[str]) -> dict[str, str | None]:
    """``NAME=VALUE`` pairs as a change; ``NAME=`` restores the default.

    Raises:
        ValueError: an item without ``=`` or without a name.
    """
    changes: dict[str, str | None] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"expected SETTING=VALUE (e.g. max_batch_delay_ms=50), got {item!r}")
        changes[name.strip()] = value if value != "" else None
    return changes


def _who() -> str:
    """How ``ctl`` names itself to the gateways: ``ctl-<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    name = f"ctl-{user}@{socket.gethostname()}"
    return "".join(c for c in name if "\x21" <= c <= "\x7e")[:128] or "ctl"


async def run_ctl(
    nc: Client,
    action: str,
    *,
    gateway: str | None,
    changes: dict[str, str | None] | None = None,
    dry_run: bool = False,
    as_json: bool = False,
    timeout_s: float = 2.0,
    prefix: str = "",
) -> int:
    """Run ``action`` (``status``, ``config get``, ``config set``), print the replies; the exit status."""
    client = ControlClient(nc, timeout_s=timeout_s, client=_who(), prefix=prefix)
    try:
        if action == "status":
            replies = await client.status(gateway)
        elif action == "config get":
            replies = await client.config_get(gateway)
        else:
            replies = await client.config_set(changes or {}, gateway=gateway, dry_run=dry_run)
    except ControlError as exc:
        if as_json and exc.replies:
            print(json.dumps(exc.replies, indent=2))
        print(f"log-gateway: ctl {action}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(replies, indent=2))
    else:
        print("\n".join(_human(action, reply) for reply in sorted(replies, key=lambda r: r["gatewayId"])))
    return 0


async def run_ctl_query(
    nc: Client,
    query: LogQuery,
    *,
    gateway: str | None,
    to_end: bool = False,
    as_json: bool = False,
    timeout_s: float = 2.0,
    prefix: str = "",
    out: TextIO = sys.stdout,
) -> int:
    """Print a page of ``query`` (its cursor on stderr), or all pages with ``to_end``; the exit status."""
    client = ControlClient(nc, timeout_s=timeout_s, client=_who(), prefix=prefix)
    cursor = None
    try:
        async for page in client.pages(query, gateway=gateway):
            for entry in page.entries:
                out.write(entry.to_json().decode() if as_json else format_row(entry, color=False))
                out.write("\n")
            out.flush()
            cursor = page.nextCursor
            if not to_end:
                break
    except ControlError as exc:
        print(f"log-gateway: ctl query: {exc}", file=sys.stderr)
        return 1
    if cursor is not None and not to_end:
        print(f"log-gateway: more entries: add --cursor {cursor}", file=sys.stderr)
    return 0


def _human(action: str, reply: dict[str, Any]) -> str:
    if action == "status":
        return _status_lines(reply)
    if action == "config get":
        return _config_lines(reply)
    return f"{reply['gatewayId']}: {reply['message']}"


def _status_lines(reply: dict[str, Any]) -> str:
    counts, held, out = reply["counts"], reply["buffered"], reply["inFlight"]
    conn = reply["connection"]
    spooled = reply.get("spooled")
    lines = [
        f"{reply['gatewayId']}  {'ready' if reply['ready'] else 'NOT READY'}  "
        f"version {reply['version']}  up {reply['uptimeS']:.1f}s",
        f"  received {counts['received']}  published {counts['published']} in {counts['batches']} batches  "
        f"rejected {counts['rejected']}  dropped {counts['dropped']}",
        f"  buffered {held['entries']} entries ({held['bytes']} bytes)  "
        f"in flight {out['batches']} batches ({out['entries']} entries)",
        f"  spooled {spooled['entries']} entries ({spooled['bytes']} bytes)" if spooled else "  spool: none",
        f"  nats {'connected to ' + str(conn.get('url')) if conn['connected'] else 'DISCONNECTED'}"
        f"  reconnects {conn.get('reconnects', 0)}",
    ]
    if reply.get("failedTasks"):
        lines.append(f"  failed tasks: {', '.join(reply['failedTasks'])}")
    return "\n".join(lines)


def _config_lines(reply: dict[str, Any]) -> str:
    settings, live = reply["settings"], set(reply["live"])
    width = max(len(name) for name in settings)
    rows = [
        f"  {name:<{width}}  {_text(value):<20}  {'live' if name in live else 'restart'}"
        for name, value in settings.items()
    ]
    return "\n".join([f"{reply['gatewayId']}:", *rows])


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)
