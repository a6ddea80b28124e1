"""The wire splitter on bytes alone: no server, no nats-py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest import wire
from gateway.ingest.wire import Frame, LineCache, Split, Stop, parse_line, split_frames
from tests.helpers import parse_python

HEAD = b"NATS/1.0\r\nce-id: 1\r\n\r\n"


def msg(subject: bytes, sid: int, body: bytes, reply: bytes = b"") -> bytes:
    return b"MSG %s %d %s%d\r\n%s\r\n" % (subject, sid, reply + b" " if reply else b"", len(body), body)


def hmsg(subject: bytes, sid: int, head: bytes, body: bytes, reply: bytes = b"") -> bytes:
    line = b"HMSG %s %d %s%d %d\r\n" % (
        subject,
        sid,
        reply + b" " if reply else b"",
        len(head),
        len(head) + len(body),
    )
    return line + head + body + b"\r\n"


def split_all(
    stream: bytes, cuts: list[int], cache: LineCache | None = None
) -> tuple[list[Frame], list[bytes]]:
    """Feed ``stream`` in pieces as the fast path does: keep what was not consumed, and
    step over a control line (the caller would hand it to nats-py's parser)."""
    frames: list[Frame] = []
    controls: list[bytes] = []
    pending, pos, turn = b"", 0, 0
    while pos < len(stream) or pending:
        size = cuts[turn % len(cuts)] if cuts else len(stream)
        pending += stream[pos : pos + size]
        pos, turn = pos + size, turn + 1
        while True:
            split = split_frames(pending, cache)
            frames += split.frames
            pending = pending[split.consumed :]
            if split.stop is not Stop.CONTROL:
                break
            assert split.control is not None
            controls.append(split.control)
            pending = pending[len(split.control) + 2 :]
        if pos >= len(stream):
            assert pending == b"", pending
            break
    return frames, controls


def test_msg_and_hmsg_with_and_without_reply() -> None:
    stream = (
        msg(b"a.b", 1, b"one")
        + msg(b"a", 22, b"", b"in.box")
        + hmsg(b"c", 3, HEAD, b"x")
        + hmsg(b"d", 4, HEAD, b"", b"r")
    )
    assert split_frames(stream) == Split(
        [
            (b"a.b", 1, b"", None, b"one"),
            (b"a", 22, b"in.box", None, b""),
            (b"c", 3, b"", HEAD, b"x"),
            (b"d", 4, b"r", HEAD, b""),
        ],
        len(stream),
        Stop.END,
    )


def test_payloads_holding_line_ends_and_any_byte_are_taken_by_their_size() -> None:
    body = bytes(range(256)) + b"\r\nMSG x 1 3\r\nabc\r\n"
    assert split_frames(msg(b"s", 1, body) + hmsg(b"s", 1, HEAD, body)).frames == [
        (b"s", 1, b"", None, body),
        (b"s", 1, b"", HEAD, body),
    ]


def test_fields_split_by_any_whitespace_as_nats_py_reads_them() -> None:
    assert split_frames(b"MSG in  7 reply.1\t4\r\nbody\r\n").frames == [(b"in", 7, b"reply.1", None, b"body")]


@pytest.mark.parametrize("cut", range(1, len(msg(b"s", 1, b"hello")) + len(hmsg(b"s", 2, HEAD, b"hi"))))
def test_a_buffer_cut_at_any_byte_stops_where_the_partial_frame_starts(cut: int) -> None:
    first = msg(b"s", 1, b"hello")
    stream = first + hmsg(b"s", 2, HEAD, b"hi")
    split = split_frames(stream[:cut])
    whole = 1 if cut >= len(first) else 0
    assert split.frames == [(b"s", 1, b"", None, b"hello")][:whole]
    assert split.consumed == (len(first) if whole else 0)
    assert split.stop is (Stop.END if cut == len(first) else Stop.PARTIAL)
    rest = split_frames(stream[split.consumed :])
    assert split.frames + rest.frames == split_frames(stream).frames


@pytest.mark.parametrize(
    "line", [b"PING", b"PONG", b"+OK", b"-ERR 'Unknown Protocol Operation'", b'INFO {"server_id":"x"}']
)
def test_a_control_line_between_messages_stops_the_split_there(line: bytes) -> None:
    before = msg(b"s", 1, b"a")
    stream = before + line + b"\r\n" + msg(b"s", 1, b"b")
    assert split_frames(stream) == Split([(b"s", 1, b"", None, b"a")], len(before), Stop.CONTROL, line)


@pytest.mark.parametrize(
    "line",
    [
        b"MSG s x 3",  # sid not a number
        b"MSG s 1 -3",  # negative size
        b"MSG s 1",  # no size
        b"MSG s 1 r x 3",  # a field too many
        b"HMSG s 1 3",  # no header size
        b"HMSG s 1 abc 5",  # header size not a number
        b"HMSG s 1 9 5",  # a header block larger than the whole
        b"msg s 1 3",  # nats-py's parser matches upper case only
        b"",  # an empty line
        b"SUB s 1",
    ],
)
def test_a_malformed_or_unknown_line_is_left_to_nats_py(line: bytes) -> None:
    assert parse_line(line) is None
    assert split_frames(line + b"\r\nabc\r\n") == Split([], 0, Stop.CONTROL, line)


def test_an_incomplete_line_or_payload_waits_for_more() -> None:
    assert split_frames(b"") == Split([], 0, Stop.END)
    assert split_frames(b"MSG s 1 5") == Split([], 0, Stop.PARTIAL)
    assert split_frames(b"PIN") == Split([], 0, Stop.PARTIAL)
    assert split_frames(b"MSG s 1 5\r\nhello") == Split([], 0, Stop.PARTIAL)  # its line end not yet read
    assert split_frames(b"MSG s 1 5\r\nhello\r") == Split([], 0, Stop.PARTIAL)


def test_large_sizes() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    assert split_frames(hmsg(b"s", 1, HEAD, big)).frames == [(b"s", 1, b"", HEAD, big)]
    subject = b"s." + b"x" * 5000  # a control line past nats-py's 4096-byte default
    assert split_frames(msg(subject, 1, b"a")).frames == [(subject, 1, b"", None, b"a")]
    huge = b"MSG s 1 %d\r\nabc" % (1 << 62)  # a size no buffer will reach: it waits, as nats-py does
    assert split_frames(huge) == Split([], 0, Stop.PARTIAL)
    assert parse_line(b"MSG s 18446744073709551616 3") == (b"s", 1 << 64, b"", 0, 3)


def test_the_cache_remembers_lines_without_a_reply_and_stays_bounded() -> None:
    cache = LineCache(limit=2)
    stream = msg(b"a", 1, b"x") + msg(b"b", 1, b"y") + msg(b"a", 1, b"z", b"reply")
    assert split_frames(stream, cache).frames == split_frames(stream).frames
    assert set(cache.lines) == {b"MSG a 1 1", b"MSG b 1 1"}  # not the one with a reply
    split_frames(msg(b"c", 1, b"x"), cache)
    assert set(cache.lines) == {b"MSG c 1 1"}  # full: started again
    assert cache.read(b"PING") is None
    assert LineCache().limit == wire.MAX_KNOWN_LINES


def test_lines_with_a_reply_are_read_through_the_cache_s_numbers_which_stay_bounded() -> None:
    """Every JetStream delivery's line is new (its ack subject): its sid and sizes come from the
    cache's numbers, read exactly as without a cache, and the numbers never pass the limit."""
    cache = LineCache(limit=8)
    for size in range(40):
        line = b"HMSG s 7 $JS.ACK.S.C.1.%d.%d.0.0 %d %d" % (size, size, size // 2, size)
        assert cache.read(line) == parse_line(line) == (b"s", 7, line.split()[3], size // 2, size)
        assert len(cache.numbers) <= 8
    assert cache.lines == {}  # (lines with a reply are not kept)
    assert cache.read(b"HMSG s 7 r 9 3") is None  # a header block larger than the message


def test_the_splitter_imports_nothing_from_nats() -> None:
    tree = parse_python(Path(wire.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] in ("nats", "gateway", "asyncio")]


_names = st.binary(min_size=1, max_size=12).map(lambda b: b"s." + b.hex().encode())
_frame = st.tuples(
    _names,
    st.integers(0, 10**6),
    st.one_of(st.just(b""), _names),
    st.one_of(st.none(), st.binary(max_size=40).map(lambda b: b"NATS/1.0\r\n" + b + b"\r\n\r\n")),
    st.binary(max_size=200),
)
_controls = st.sampled_from([b"PING", b"PONG", b"+OK", b"-ERR 'x'", b"INFO {}"])


def _encode(frame: Frame) -> bytes:
    subject, sid, reply, headers, payload = frame
    return (
        msg(subject, sid, payload, reply) if headers is None else hmsg(subject, sid, headers, payload, reply)
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_frame, _controls), max_size=25),
    st.lists(st.integers(1, 120), min_size=1, max_size=20),
    st.booleans(),
)
def test_splitting_does_not_depend_on_how_the_buffer_is_chunked(
    items: list[Frame | bytes], cuts: list[int], cached: bool
) -> None:
    stream = b"".join(item + b"\r\n" if isinstance(item, bytes) else _encode(item) for item in items)
    frames, controls = split_all(stream, cuts, LineCache(limit=3) if cached else None)
    assert frames == [item for item in items if not isinstance(item, bytes)]
    assert controls == [item for item in items if isinstance(item, bytes)]
    assert (frames, controls) == split_all(stream, [])


_tricky_payload = st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"MSG s 1 3", b"ab", b"{}"]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_names, st.one_of(st.just(b""), _names), _tricky_payload.map(b"".join)), max_size=25),
    st.integers(0, 3000),
)
def test_plain_frames_split_at_line_ends_at_once_are_those_read_one_by_one(
    items: list[tuple[bytes, bytes, bytes]], cut: int
) -> None:
    """The one-call split of plain MSG frames (payloads holding line ends and frame-like text
    included, the buffer cut anywhere) finds what the frame-by-frame loop finds."""
    stream = b"".join(msg(subject, 1, payload, reply) for subject, reply, payload in items)[:cut]
    cache = LineCache()
    assert cache.plain
    one_by_one = wire._split_from(stream, 0, LineCache(), [])
    assert split_frames(stream, cache) == one_by_one
    assert split_frames(stream, cache) == one_by_one  # the lines now cached
    assert cache.plain


def test_after_a_frame_with_headers_the_next_split_goes_frame_by_frame() -> None:
    cache = LineCache()
    split_frames(hmsg(b"s", 1, HEAD, b"x"), cache)
    assert not cache.plain
    stream = msg(b"s", 1, b"a") + msg(b"s", 1, b"b\r\nc")
    assert split_frames(stream, cache).frames == [(b"s", 1, b"", None, b"a"), (b"s", 1, b"", None, b"b\r\nc")]
    assert cache.plain  # that split held none: the next may go at once again
