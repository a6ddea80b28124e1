"""The NATS wire splitter: complete ``MSG`` and ``HMSG`` frames off a read buffer, bytes only.

Given what a connection has read, :func:`split_frames` takes the complete
message frames at its front, in one loop with no coroutine per message, and
stops at the first thing that is not one: the start of a frame (or of a line)
not yet read whole, or a line that is not a message (``PING``, ``PONG``,
``+OK``, ``-ERR``, ``INFO``, or a line it cannot read). It says how many bytes
the frames took and why it stopped; from there the caller hands the buffer to
nats-py's own parser, which knows every other operation and says what is wrong
with a malformed line.

It reads a frame as nats-py's parser does: ``MSG subject sid [reply] size`` or
``HMSG subject sid [reply] header-size size``, fields split by any whitespace,
then ``size`` bytes (the header block first) and the two bytes that end the
frame. It imports nothing from nats, does no I/O and keeps no state but an
optional :class:`LineCache`: under a flood a few control lines repeat (the
same subject and sid, a handful of sizes), and one already read is looked up,
not split again.
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple

__all__ = [
    "MAX_KNOWN_LINES",
    "Frame",
    "LineCache",
    "MessageLine",
    "Split",
    "Stop",
    "parse_line",
    "split_frames",
]

# Control lines a LineCache remembers before it starts again (most differ only in the size).
MAX_KNOWN_LINES: Final = 4096


class MessageLine(NamedTuple):
    """A ``MSG``/``HMSG`` control line, read."""

    subject: bytes
    sid: int
    reply: bytes  # b"" when there is none
    header_size: int  # 0 for MSG
    total_size: int  # the header block and the payload


# One message: (subject, sid, reply, raw header block or None for MSG, payload). A plain tuple,
# not a NamedTuple: one is made per message in the hot loop, and a NamedTuple's __new__
# (or tuple.__new__) costs about 0.3 us more each, as much as the rest of the split.
Frame = tuple[bytes, int, bytes, bytes | None, bytes]


class Stop(enum.Enum):
    """Why :func:`split_frames` stopped where it did (``Split.consumed``)."""

    END = "end"  # every byte was a complete frame
    PARTIAL = "partial"  # a frame or a line starts there that is not read whole yet
    CONTROL = "control"  # a complete line starts there that is not a message frame


class Split(NamedTuple):
    """What :func:`split_frames` found: the frames, the bytes they took and why it stopped there."""

    frames: list[Frame]
    consumed: int
    stop: Stop
    control: bytes | None = None  # with Stop.CONTROL: that line, without its line end


class LineCache:
    """Message control lines already read, bounded: cleared when it reaches ``limit`` lines.

    Only lines without a reply subject are kept: those are the ones a flood repeats.
    """

    __slots__ = ("limit", "lines")

    def __init__(self, limit: int = MAX_KNOWN_LINES) -> None:
        self.limit = limit
        self.lines: dict[bytes, MessageLine] = {}

    def read(self, line: bytes) -> MessageLine | None:
        """The line, read (remembered if it may come again); None if it is no message line."""
        known = self.lines.get(line)
        if known is None and (known := parse_line(line)) is not None and not known.reply:
            if len(self.lines) >= self.limit:
                self.lines.clear()
            self.lines[line] = known
        return known


def parse_line(line: bytes) -> MessageLine | None:
    """``MSG subject sid [reply] size`` or ``HMSG subject sid [reply] header-size size`` (no line end),
    read; None for anything else, a malformed message line included (nats-py's parser says what is wrong)."""
    args = line.split()
    count = len(args)
    if count in (4, 5) and args[0] == b"MSG":
        head = b"0"
    elif count in (5, 6) and args[0] == b"HMSG":
        head = args[-2]
        count -= 1
    else:
        return None
    sid, total = args[2], args[-1]
    if not (sid.isdigit() and total.isdigit() and head.isdigit()) or int(head) > int(total):
        return None
    return MessageLine(args[1], int(sid), args[3] if count == 5 else b"", int(head), int(total))


def split_frames(buf: bytes, cache: LineCache | None = None) -> Split:
    """The complete message frames at the front of ``buf``, and where and why splitting stopped.

    Splitting is independent of how the bytes arrived: the frames of ``a + b``
    are those of ``a`` followed by those of ``a[consumed:] + b``, as long as ``a``
    stopped with :attr:`Stop.END` or :attr:`Stop.PARTIAL`.
    """
    cache = cache or LineCache()
    known, read = cache.lines, cache.read
    frames: list[Frame] = []
    append = frames.append
    pos, size = 0, len(buf)
    while (end := buf.find(b"\r\n", pos)) >= 0:
        line = buf[pos:end]
        if (msg := known.get(line)) is None and (msg := read(line)) is None:
            return Split(frames, pos, Stop.CONTROL, line)
        subject, sid, reply, head, total = msg
        start = end + 2
        stop = start + total
        if stop + 2 > size:
            return Split(frames, pos, Stop.PARTIAL)
        headers = buf[start : start + head] if head else None
        append((subject, sid, reply, headers, buf[start + head : stop]))
        pos = stop + 2
    return Split(frames, pos, Stop.END if pos == size else Stop.PARTIAL)
