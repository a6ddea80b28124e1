"""Many publishes in one write: whole ``HPUB`` operations queued on a nats-py connection at once.

``Client.publish`` validates the subject, builds the header block and the
protocol line, and queues them, for each message; the logging handler's
worker publishes a thousand messages on one constant subject with one of a
few header sets, so it builds the operations itself (the same bytes
``publish`` would write: :func:`header_block`, :func:`hpub`) and queues them
in one piece. That takes two names of nats-py that are not its public API,
listed and checked here (:func:`write_problems`); where the check fails, or
the connection is not up (``publish`` then bounds what it buffers), the
handler publishes one message at a time as before. Known to hold for nats-py
2.16 (pinned below 3 in pyproject); ``gateway.ingest.nats_private`` keeps the
same two names for the gateway's acks (``publishers`` may not import it).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping

from nats.aio.client import Client
from nats.errors import BadHeaderError, BadSubjectError

__all__ = ["header_block", "hpub", "subject_bytes", "write_commands", "write_problems"]

# As nats-py's publish: header names are tokens, values are trimmed and CR/LF become spaces.
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_SUBJECT_INVALID = re.compile(r"[ \t\r\n]")


def write_problems(nc: Client) -> list[str]:
    """The private names :func:`write_commands` needs that this client lacks (or whose shape changed)."""
    problems = []
    send = getattr(type(nc), "_send_command", None)
    if not (
        inspect.iscoroutinefunction(send) and list(inspect.signature(send).parameters)[:2] == ["self", "cmd"]
    ):
        problems.append("Client._send_command is not a coroutine (self, cmd, ...)")
    if not inspect.iscoroutinefunction(getattr(type(nc), "_flush_pending", None)):
        problems.append("Client._flush_pending is not a coroutine")
    return problems


def subject_bytes(subject: str) -> bytes:
    """``subject`` for :func:`hpub`, checked once as ``publish`` checks it each time.

    Raises:
        BadSubjectError: empty, or with whitespace or CR/LF.
    """
    if not subject or _SUBJECT_INVALID.search(subject):
        raise BadSubjectError
    return subject.encode()


def header_block(headers: Mapping[str, str]) -> bytes:
    """The header block ``Client.publish(..., headers=headers)`` writes.

    Raises:
        BadHeaderError: a header name that is not a token.
    """
    lines = [b"NATS/1.0\r\n"]
    for name, value in headers.items():
        key = name.strip()
        if not key:
            continue
        if not _HEADER_KEY.fullmatch(key):
            raise BadHeaderError(key)
        lines.append(f"{key}: {value.strip().translate(_HEADER_VALUE_NEWLINES)}\r\n".encode())
    lines.append(b"\r\n")
    return b"".join(lines)


def hpub(subject: bytes, block: bytes, body: bytes) -> bytes:
    """One ``HPUB`` operation: ``body`` with the header ``block`` on ``subject`` (no reply)."""
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (subject, len(block), len(block) + len(body), block, body)


async def write_commands(nc: Client, commands: list[bytes], payload: int) -> None:
    """Queue ``commands`` (whole operations, ``payload`` bytes of bodies) for nats-py's flusher in
    one piece and kick it; counted in ``nc.stats`` as ``publish`` counts them."""
    nc.stats["out_msgs"] += len(commands)
    nc.stats["out_bytes"] += payload
    await nc._send_command(b"".join(commands))
    await nc._flush_pending()
