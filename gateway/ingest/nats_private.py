"""Every private nats-py name the ingest fast path touches, in one place, with its accessors.

:mod:`gateway.ingest.fastpath` serves the ingest subscriptions without
nats-py's per-message work; for that it reads and replaces parts of nats-py
that are not its public API. They are all listed here (:data:`CLIENT_NAMES`,
:data:`SUBSCRIPTION_NAMES`), each with the shape the fast path expects, and
reached only through the functions below: ``fastpath`` itself touches no
underscore attribute of a nats-py object. Known to hold for nats-py 2.16
(pinned below 3 in pyproject).

Before a fast-path subscription the runtime checks (:func:`client_problems`,
:func:`subscription_problems`) are run, and where one fails the gateway falls
back to reading the subscription's queue (:mod:`gateway.ingest.bursts`).
``tests/test_nats_private.py`` checks every listed name on the installed
nats-py, the ones only a reading of its source can confirm too, and fails
naming the name and the nats-py version.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.client import __version__ as _nats_version
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

__all__ = [
    "CLIENT_NAMES",
    "NATS_PY_VERSION",
    "SUBSCRIPTION_NAMES",
    "WRITE_NAMES",
    "Parse",
    "PendingQueue",
    "PrivateName",
    "ProcessMsg",
    "between_operations",
    "client_problems",
    "count_received",
    "install",
    "installed",
    "parser_parse",
    "pending_bytes",
    "pending_limits",
    "pending_queue",
    "process_msg",
    "read_buffer",
    "report_error",
    "restore_pending_queue",
    "set_pending_bytes",
    "set_pending_queue",
    "subscription_id",
    "subscription_problems",
    "take_queued",
    "write_commands",
    "write_problems",
]

NATS_PY_VERSION: str = _nats_version
# Client._process_msg(sid, subject, reply, data, headers): one message off the parser. The
# headers are the raw block or None; nats-py annotates them bytes (and passes None).
ProcessMsg = Callable[[int, bytes, bytes, bytes, Any], Awaitable[None]]
_PROCESS_MSG_PARAMS = ["self", "sid", "subject", "reply", "data", "headers"]
_SUBSCRIPTION_INTS = ("_id", "_pending_size", "_pending_msgs_limit", "_pending_bytes_limit", "_received")


class Parse(Protocol):
    """``Parser.parse(data=b"")``: take bytes read off the socket (none: go on with the buffer)."""

    def __call__(self, data: bytes = b"", /) -> Awaitable[None]: ...


class PendingQueue(Protocol):
    """What nats-py asks of a callback-less subscription's ``_pending_queue`` (the fast path's sink)."""

    def qsize(self) -> int: ...  # Subscription.pending_msgs

    def empty(self) -> bool: ...  # Subscription.unsubscribe(limit)

    async def join(self) -> None: ...  # Subscription.drain()


@dataclass(frozen=True, slots=True)
class PrivateName:
    """One private name, where it lives, the shape the fast path expects, and how to check it.

    ``check`` takes a ``Client`` (for the owners "Client", "Client._ps" (its
    protocol parser) and "Parser") or a ``Subscription``; ``at_runtime`` False:
    read from the source, checked by the tests only.
    """

    owner: str
    name: str
    shape: str
    check: Callable[[Any], bool]
    at_runtime: bool = True

    @property
    def qualified(self) -> str:
        """``Owner.name``, as a message names it."""
        return f"{self.owner}.{self.name}"


def _source_has(func: Callable[..., object] | None, text: str) -> bool:
    return func is not None and text in inspect.getsource(func)


def _process_msg_shape(nc: Client) -> bool:
    method = getattr(type(nc), "_process_msg", None)
    return inspect.iscoroutinefunction(method) and list(inspect.signature(method).parameters) == (
        _PROCESS_MSG_PARAMS
    )


def _parser(nc: Client) -> Any:
    return getattr(nc, "_ps", None)


def _stats_shape(nc: Client) -> bool:
    stats = getattr(nc, "stats", None)
    return isinstance(stats, dict) and "in_msgs" in stats and "in_bytes" in stats


CLIENT_NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "Client", "_process_msg", "coroutine (self, sid, subject, reply, data, headers)", _process_msg_shape
    ),
    PrivateName("Client", "_ps", "a nats.protocol.parser.Parser", lambda nc: isinstance(_parser(nc), Parser)),
    PrivateName(
        "Client._ps",
        "buf",
        "a bytearray: what is read and not yet parsed",
        lambda nc: isinstance(getattr(_parser(nc), "buf", None), bytearray),
    ),
    PrivateName(
        "Client._ps",
        "state",
        "an int, AWAITING_CONTROL_LINE between operations",
        lambda nc: isinstance(getattr(_parser(nc), "state", None), int),
    ),
    PrivateName(
        "Client._ps",
        "parse",
        "a coroutine method parse(data=b'')",
        lambda nc: inspect.iscoroutinefunction(getattr(_parser(nc), "parse", None)),
    ),
    PrivateName(
        "Client",
        "_subs",
        "a dict of the subscriptions by sid",
        lambda nc: isinstance(getattr(nc, "_subs", None), dict),
    ),
    PrivateName(
        "Client",
        "_error_cb",
        "the error callback, a coroutine function",
        lambda nc: callable(getattr(nc, "_error_cb", None)),
    ),
    PrivateName("Client", "stats", "a dict with in_msgs and in_bytes", _stats_shape),
    PrivateName(
        "Parser",
        "parse",
        "calls self.nc._process_msg for each message",
        lambda _nc: _source_has(
            Parser.parse, "await self.nc._process_msg(sid, subject, reply, payload, hdr)"
        ),
        at_runtime=False,
    ),
    PrivateName(
        "Client",
        "_read_loop",
        "hands what it reads to self._ps.parse",
        lambda _nc: _source_has(Client._read_loop, "await self._ps.parse(b)"),
        at_runtime=False,
    ),
)


def _send_command_shape(nc: Client) -> bool:
    method = getattr(type(nc), "_send_command", None)
    return inspect.iscoroutinefunction(method) and list(inspect.signature(method).parameters)[:2] == [
        "self",
        "cmd",
    ]


# What durable ingest's pipelined acks write with (gateway.ingest.pull): checked on their own, so
# a nats-py without them only sends acks one publish each; core ingest's fast path needs neither.
WRITE_NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "Client",
        "_send_command",
        "coroutine (self, cmd, priority=False): queues raw protocol bytes for the flusher",
        _send_command_shape,
    ),
    PrivateName(
        "Client",
        "_flush_pending",
        "a coroutine method that kicks the flusher",
        lambda nc: inspect.iscoroutinefunction(getattr(nc, "_flush_pending", None)),
    ),
)


def _int_field(name: str) -> Callable[[Subscription], bool]:
    return lambda sub: isinstance(getattr(sub, name, None), int)


SUBSCRIPTION_NAMES: tuple[PrivateName, ...] = (
    *(PrivateName("Subscription", name, "an int", _int_field(name)) for name in _SUBSCRIPTION_INTS),
    PrivateName(
        "Subscription",
        "_pending_queue",
        "an asyncio.Queue of Msg (replaced by the fast path's sink)",
        lambda sub: isinstance(getattr(sub, "_pending_queue", None), asyncio.Queue),
    ),
    PrivateName(
        "Subscription",
        "_drain",
        "waits on self._pending_queue.join()",
        lambda sub: _source_has(type(sub)._drain, "await self._pending_queue.join()"),
        at_runtime=False,
    ),
    PrivateName(
        "Subscription",
        "pending_msgs",
        "is self._pending_queue.qsize()",
        lambda sub: _source_has(type(sub).pending_msgs.fget, "self._pending_queue.qsize()"),
        at_runtime=False,
    ),
)


def _problems(names: tuple[PrivateName, ...], target: object, *, everything: bool) -> list[str]:
    problems = []
    for private in names:
        if not (everything or private.at_runtime):
            continue
        try:
            ok = private.check(target)
        except Exception:  # noqa: BLE001 - a check that cannot run found the shape changed
            ok = False
        if not ok:
            problems.append(f"{private.qualified}: expected {private.shape} (nats-py {NATS_PY_VERSION})")
    return problems


def client_problems(nc: Client, *, everything: bool = False) -> list[str]:
    """What of :data:`CLIENT_NAMES` this client lacks (``everything``: the source checks too)."""
    return _problems(CLIENT_NAMES, nc, everything=everything)


def write_problems(nc: Client) -> list[str]:
    """What of :data:`WRITE_NAMES` this client lacks."""
    return _problems(WRITE_NAMES, nc, everything=False)


def subscription_problems(
    sub: Subscription, *, everything: bool = False, only: tuple[str, ...] | None = None
) -> list[str]:
    """What of :data:`SUBSCRIPTION_NAMES` (``only`` these names) this subscription lacks
    (``everything``: the source checks too)."""
    names = SUBSCRIPTION_NAMES
    if only is not None:
        names = tuple(private for private in names if private.name in only)
    return _problems(names, sub, everything=everything)


# -- the client and its parser ------------------------------------------------


def process_msg(nc: Client) -> ProcessMsg:
    """``nc._process_msg`` as it is now (nats-py's, or what :func:`install` put there)."""
    method: ProcessMsg = nc._process_msg
    return method


def parser_parse(nc: Client) -> Parse:
    """``nc._ps.parse`` as it is now (nats-py's, or what :func:`install` put there)."""
    parse: Parse = nc._ps.parse
    return parse


def installed(nc: Client) -> object | None:
    """The object whose method :func:`install` put in place of ``nc._process_msg``, if any."""
    return getattr(nc._process_msg, "__self__", None)


def install(nc: Client, on_msg: ProcessMsg, parse: Parse) -> None:
    """Put ``on_msg`` in place of ``nc._process_msg`` and ``parse`` in place of ``nc._ps.parse``.

    The read loop calls ``self._ps.parse(...)`` and the parser ``self.nc._process_msg(...)``:
    instance attributes win over the methods.
    """
    setattr(nc, "_process_msg", on_msg)  # noqa: B010 - assigning over a method
    setattr(nc._ps, "parse", parse)  # noqa: B010


def read_buffer(nc: Client) -> bytearray:
    """``nc._ps.buf``: what the connection read and its parser has not taken yet."""
    buf: bytearray = nc._ps.buf
    return buf


def between_operations(nc: Client) -> bool:
    """Is the parser waiting for a control line (not in the middle of a message's payload)?"""
    state: int = nc._ps.state
    return state == AWAITING_CONTROL_LINE


async def report_error(nc: Client, exc: Exception) -> None:
    """Report ``exc`` to the connection's error callback, as nats-py reports its own."""
    await nc._error_cb(exc)


async def write_commands(nc: Client, commands: bytes, messages: int, payload: int) -> None:
    """Queue ``commands`` (whole PUB operations: ``messages`` of them, ``payload`` bytes of
    bodies) for the flusher and kick it once; counted in ``nc.stats`` as nats-py counts publishes."""
    nc.stats["out_msgs"] += messages
    nc.stats["out_bytes"] += payload
    await nc._send_command(commands)
    await nc._flush_pending()


# -- a subscription -------------------------------------------------------------


def subscription_id(sub: Subscription) -> int:
    """``sub._id``: the sid its messages carry."""
    sid: int = sub._id
    return sid


def pending_limits(sub: Subscription) -> tuple[int, int]:
    """``(sub._pending_msgs_limit, sub._pending_bytes_limit)``; 0 means none."""
    return sub._pending_msgs_limit, sub._pending_bytes_limit


def count_received(sub: Subscription, count: int = 1) -> None:
    """``count`` more messages delivered (``sub._received``, read as ``Subscription.delivered``)."""
    sub._received += count


def pending_bytes(sub: Subscription) -> int:
    """``sub._pending_size``: the bytes waiting (``Subscription.pending_bytes``)."""
    return sub._pending_size


def set_pending_bytes(sub: Subscription, size: int) -> None:
    """Set ``sub._pending_size``."""
    sub._pending_size = size


def pending_queue(sub: Subscription) -> asyncio.Queue[Msg]:
    """``sub._pending_queue``: nats-py's queue of the messages received for a callback-less subscription."""
    queue: asyncio.Queue[Msg] = sub._pending_queue
    return queue


def take_queued(sub: Subscription) -> list[Msg]:
    """Empty nats-py's own pending queue, marking each message done; their bytes stay counted."""
    queue = sub._pending_queue
    taken = []
    while not queue.empty():
        taken.append(queue.get_nowait())
        queue.task_done()
    return taken


def set_pending_queue(sub: Subscription, queue: PendingQueue) -> None:
    """Put ``queue`` in place of ``sub._pending_queue``: nats-py counts and drains on it."""
    setattr(sub, "_pending_queue", queue)  # noqa: B010 - not an asyncio.Queue: nats-py only asks PendingQueue of it


def restore_pending_queue(sub: Subscription) -> None:
    """Give ``sub`` back a queue of nats-py's own, bounded as nats-py bounds it."""
    sub._pending_queue = asyncio.Queue(maxsize=sub._pending_msgs_limit)
