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


# A ``MSG``/``HMSG`` control line, read: (subject, sid, reply (b"" when there is none), header
# size (0 for MSG), total size: the header block and the payload). A plain tuple, as Frame: a
# JetStream delivery's line (a new ack subject each time, never cached) is read once per
# message, and making a NamedTuple costs as much as splitting the line.
MessageLine = tuple[bytes, int, bytes, int, int]


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

    __slots__ = ("limit", "lines", "numbers", "plain")

    def __init__(self, limit: int = MAX_KNOWN_LINES) -> None:
        self.limit = limit
        self.lines: dict[bytes, MessageLine] = {}
        # The sids and sizes of lines already read, as ints: a line that is not cached (one with
        # a reply subject) is read with three lookups here instead of three int() of bytes, each
        # several times dearer. Bounded: cleared once it holds ``limit``.
        self.numbers: dict[bytes, int] = {}
        # The last split held no frame with headers: the next may be split at its line ends
        # at once (see split_frames); one with headers would waste that split.
        self.plain = True

    def read(self, line: bytes) -> MessageLine | None:
        """The line, read (remembered if it may come again); None if it is no message line.

        For a line not in :attr:`lines` (the splitters look there first): a line with a reply
        subject (a JetStream delivery's ack subject: each is new) is read, not looked up twice.
        """
        if len(self.numbers) >= self.limit:
            self.numbers.clear()
        known = _read_line(line, self.numbers)
        if known is not None and not known[2]:
            if len(self.lines) >= self.limit:
                self.lines.clear()
            self.lines[line] = known
        return known


def parse_line(line: bytes) -> MessageLine | None:
    """``MSG subject sid [reply] size`` or ``HMSG subject sid [reply] header-size size`` (no line end),
    read; None for anything else, a malformed message line included (nats-py's parser says what is wrong)."""
    return _read_line(line, {})


def _read_line(line: bytes, numbers: dict[bytes, int]) -> MessageLine | None:
    """:func:`parse_line`, the digits converted through ``numbers`` (each new one added)."""
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
    if not (sid.isdigit() and total.isdigit() and head.isdigit()):
        return None
    get = numbers.get
    if (sid_n := get(sid)) is None or (head_n := get(head)) is None or (total_n := get(total)) is None:
        sid_n, head_n, total_n = (numbers.setdefault(digits, int(digits)) for digits in (sid, head, total))
    if head_n > total_n:
        return None
    return (args[1], sid_n, args[3] if count == 5 else b"", head_n, total_n)


def split_frames(buf: bytes, cache: LineCache | None = None) -> Split:
    """The complete message frames at the front of ``buf``, and where and why splitting stopped.

    Splitting is independent of how the bytes arrived: the frames of ``a + b``
    are those of ``a`` followed by those of ``a[consumed:] + b``, as long as ``a``
    stopped with :attr:`Stop.END` or :attr:`Stop.PARTIAL`.
    """
    cache = cache or LineCache()
    frames: list[Frame] = []
    # Plain MSG frames (bare entries) split at every line end in one call while the stream
    # holds only those; a header block holds line ends, so frames with headers go one by one.
    pos = _split_plain(buf, cache, frames) if cache.plain and buf.startswith(b"MSG ") else 0
    return _split_from(buf, pos, cache, frames)


def _split_plain(buf: bytes, cache: LineCache, frames: list[Frame]) -> int:
    """The ``MSG`` frames at the front of ``buf`` (which holds no ``HMSG``), split at every line
    end in one call; returns where they end, for :func:`_split_from` to go on from.

    A payload holding no line end (JSON, as publishers write it, holds none) is the piece after
    its control line; a frame it is not so for (a payload holding one, the last piece, which no
    line end has followed yet, a line that is no ``MSG`` line) ends the run, and from there the
    frame-by-frame loop reads on, exactly. Each frame taken here is one that loop would take:
    its line, ``size`` bytes of payload, and the line end after them.
    """
    known, read, append = cache.lines, cache.read, frames.append
    pieces = buf.split(b"\r\n")
    pos = 0
    for line, body in zip(pieces[0:-2:2], pieces[1:-1:2], strict=True):
        if (msg := known.get(line)) is None and (msg := read(line)) is None:
            break
        subject, sid, reply, head, total = msg
        if head or total != len(body):
            break
        append((subject, sid, reply, None, body))
        pos += len(line) + total + 4
    return pos


def _split_from(buf: bytes, pos: int, cache: LineCache, frames: list[Frame]) -> Split:
    """:func:`split_frames` from ``pos`` on, one frame at a time, after ``frames``; notes in
    ``cache.plain`` whether it met a frame with headers."""
    known, read = cache.lines, cache.read
    append = frames.append
    size, plain = len(buf), True
    stop_at: Stop | None = None
    line = None
    while (end := buf.find(b"\r\n", pos)) >= 0:
        line = buf[pos:end]
        if (msg := known.get(line)) is None and (msg := read(line)) is None:
            stop_at = Stop.CONTROL
            break
        subject, sid, reply, head, total = msg
        start = end + 2
        stop = start + total
        if stop + 2 > size:
            stop_at, line = Stop.PARTIAL, None
            break
        headers = None
        if head:
            headers, plain = buf[start : start + head], False
        append((subject, sid, reply, headers, buf[start + head : stop]))
        pos = stop + 2
    cache.plain = plain
    if stop_at is None:
        return Split(frames, pos, Stop.END if pos == size else Stop.PARTIAL)
    return Split(frames, pos, stop_at, line)
