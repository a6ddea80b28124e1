"""``log-gateway tail``: batched entries as they arrive, for a person at a terminal first."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts.cloudevents import decode_contract
from contracts.errors import DecodeError
from contracts.models import EntryRejected, ErrorPatternDetected, LogEntryCreated
from gateway.consumers.options import TailOptions
from gateway.consumers.subscribe import BatchSubscriber, Filters, SubscriberConfig
from gateway.core.announce import stream_started

__all__ = ["TailOptions", "format_alert", "format_entry", "format_rejected", "level_label", "place", "tail"]

_RESET = "\x1b[0m"
_COLORS = {
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warn": "\x1b[33m",
    "error": "\x1b[31m",
    "fatal": "\x1b[1;97;41m",
}
_ALERT = "\x1b[1;95m"


def level_label(level: str, *, color: bool) -> str:
    """The level, upper case in five columns, coloured for a terminal."""
    label = f"{level.upper():5}"
    return f"{_COLORS[level]}{label}{_RESET}" if color else label


def place(entry: LogEntryCreated) -> str:
    """Where an entry comes from: ``source`` or ``source/component``."""
    return entry.source + (f"/{entry.component}" if entry.component else "")


def format_entry(entry: LogEntryCreated, *, color: bool) -> str:
    """One line: time, level, source/component, message, then metadata as JSON."""
    clock = entry.createdAt[11:23] if len(entry.createdAt) >= 23 else entry.createdAt
    level = level_label(entry.level, color=color)
    extra = f" {json.dumps(entry.metadata, separators=(',', ':'))}" if entry.metadata else ""
    return f"{clock} {level} {place(entry)}: {entry.message}{extra}"


def format_alert(data: dict[str, Any], *, color: bool) -> str:
    """An alert, marked so it stands out among entries."""
    text = (
        f"!! ALERT {str(data.get('severity', '?')).upper()} {data.get('source', '?')}: "
        f"{data.get('pattern')} x{data.get('occurrences')} in {data.get('timeWindow')}"
    )
    return f"{_ALERT}{text}{_RESET}" if color else text


def format_rejected(data: dict[str, Any], *, color: bool) -> str:
    """A rejected message: why, where it came in, and how big it was."""
    text = (
        f"!! REJECTED {data.get('reason', '?')} on {data.get('subject', '?')} "
        f"({data.get('payloadBytes', '?')} bytes): {data.get('detail', '')}"
    )
    return f"{_COLORS['error']}{text}{_RESET}" if color else text


async def tail(nc: Client, options: TailOptions, stop: asyncio.Event, out: TextIO = sys.stdout) -> None:
    """Print entries (and alerts, and with ``rejected`` the rejections) until ``stop`` is set."""
    write = _writer(out, stop)
    alerts = await nc.subscribe(options.alert_subject, cb=_on_alert(options, write))
    if options.rejected:
        await nc.subscribe(options.rejected_subject, cb=_on_rejected(options, write))
    filters = Filters(levels=options.levels, sources=options.sources)
    config = SubscriberConfig(durable=None, subject=options.batch_subject)
    async with BatchSubscriber(nc, config, filters=filters) as sub:
        printer = asyncio.ensure_future(_print_entries(sub, options, write))
        await nc.flush()  # subscribed before saying so
        headers, body = stream_started(
            started_by="tail",
            destination="console",
            fmt="json" if options.as_json else "text",
            filters={"levels": sorted(options.levels), "sources": sorted(options.sources or [])},
        )
        await nc.publish(options.stream_started_subject, body, headers=headers)
        await stop.wait()
        printer.cancel()
    await alerts.unsubscribe()


def _writer(out: TextIO, stop: asyncio.Event) -> Callable[[str], None]:
    def write(line: str) -> None:
        try:
            out.write(line + "\n")
            out.flush()
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            stop.set()

    return write


def _on_alert(options: TailOptions, write: Callable[[str], None]) -> Callable[[Msg], Any]:
    async def on_alert(msg: Msg) -> None:
        try:
            event, alert = decode_contract(msg.headers, msg.data, ErrorPatternDetected)
        except DecodeError:
            return
        data = event.data if isinstance(event.data, dict) else alert.to_data()
        if options.sources is not None and data.get("source") not in options.sources:
            return
        write(json.dumps({"alert": data}) if options.as_json else format_alert(data, color=options.color))

    return on_alert


def _on_rejected(options: TailOptions, write: Callable[[str], None]) -> Callable[[Msg], Any]:
    async def on_rejected(msg: Msg) -> None:
        try:
            event, rejected = decode_contract(msg.headers, msg.data, EntryRejected)
        except DecodeError:
            return
        data = event.data if isinstance(event.data, dict) else rejected.to_data()
        write(
            json.dumps({"rejected": data}) if options.as_json else format_rejected(data, color=options.color)
        )

    return on_rejected


async def _print_entries(sub: BatchSubscriber, options: TailOptions, write: Callable[[str], None]) -> None:
    async for entry in sub.entries():
        write(entry.to_json().decode() if options.as_json else format_entry(entry, color=options.color))
