"""The disk spool: order, restart recovery, torn tails, the size cap, segments, fsync policies, the lock.

Everything runs on the real filesystem (pytest's tmp_path); damage is done to
the files themselves, the way a crash or a bad disk would leave them.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.errors import GatewayError
from gateway.spool import (
    FsyncPolicy,
    Spool,
    SpoolCorruptError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    SpoolRecord,
)

SUBJECT = "cortex_logging.batch.created"
HEADER_BYTES = 9  # version u8, length u32, crc u32


def rec(n: int, size: int = 16, entries: int = 1) -> SpoolRecord:
    """Record ``n``: its own msg id, a body of ``size`` bytes, spooled at a time that rises with ``n``."""
    return SpoolRecord(
        subject=SUBJECT,
        headers={"Nats-Msg-Id": f"batch-{n}", "content-type": "application/cloudevents+json"},
        body=f"body-{n}:".encode().ljust(size, b"x")[:size],
        entries=entries,
        spooled_at=1_700_000_000.25 + n,
    )


def drain(spool: Spool) -> list[SpoolRecord]:
    """Every record, oldest first, committed one by one as a replay would."""
    out: list[SpoolRecord] = []
    while (record := spool.peek()) is not None:
        out.append(record)
        spool.commit()
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def fill(spool: Spool, numbers: range, size: int = 16) -> list[SpoolRecord]:
    records = [rec(n, size) for n in numbers]
    for record in records:
        spool.append(record)
    return records


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# -- order and content ------------------------------------------------------------


def test_round_trip_keeps_order_and_content(spool_dir: Path) -> None:
    odd = SpoolRecord(SUBJECT, {"Nats-Msg-Id": "é-☃", "x": ""}, b"", 0, 1.5)
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        records = [*fill(spool, range(5)), odd]
        spool.append(odd)
        assert spool.records == 6
        assert drain(spool) == records
        assert spool.peek() is None
        assert (spool.records, spool.entries, spool.size_bytes) == (0, 0, 0)
        assert spool.oldest_spooled_at() is None


def test_peek_returns_the_same_record_until_commit(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        fill(spool, range(2))
        first = spool.peek()
        assert first == rec(0)
        assert spool.peek() is first
        assert spool.records == 2
        spool.commit()
        assert spool.peek() == rec(1)


def test_sizes_entries_and_oldest_follow_appends_and_commits(spool_dir: Path) -> None:
    records = [rec(0, 10, entries=3), rec(1, 500, entries=0), rec(2, 50, entries=7)]
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=300) as spool:
        for record in records:
            spool.append(record)
        framed = [Spool.framed_size(r) for r in records]
        assert framed[1] - framed[0] == 490  # the body is stored as is
        assert (spool.size_bytes, spool.entries, spool.records) == (sum(framed), 10, 3)
        assert spool.oldest_spooled_at() == records[0].spooled_at
        spool.commit()
        assert (spool.size_bytes, spool.entries, spool.records) == (sum(framed[1:]), 7, 2)
        assert spool.oldest_spooled_at() == records[1].spooled_at
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert (spool.size_bytes, spool.entries, spool.records) == (sum(framed[1:]), 7, 2)
        assert spool.oldest_spooled_at() == records[1].spooled_at


# -- restart ------------------------------------------------------------------


def test_reopen_returns_only_unconsumed_records_in_order(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=200) as spool:
        records = fill(spool, range(7), size=60)
        assert len(segments(spool_dir)) > 2
        assert drain_n(spool, 3) == records[:3]
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=200) as spool:
        assert spool.recovery.records == 4
        assert spool.recovered_corrupt_bytes == 0
        assert not spool.recovery.cursor_reset
        spool.append(rec(7, 60))
        assert drain_n(spool, 1) == records[3:4]
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=200) as spool:
        assert drain(spool) == [*records[4:], rec(7, 60)]
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.records == 0
        assert segments(spool_dir) == []


def drain_n(spool: Spool, n: int) -> list[SpoolRecord]:
    out: list[SpoolRecord] = []
    for _ in range(n):
        record = spool.peek()
        assert record is not None
        out.append(record)
        spool.commit()
    return out


def test_record_published_but_not_committed_is_replayed_after_restart(spool_dir: Path) -> None:
    """A crash between publish and commit: the record comes again, same Nats-Msg-Id (JetStream dedups)."""
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        fill(spool, range(2))
        published = spool.peek()
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        again = spool.peek()
        assert again == published
        assert again is not None
        assert again.headers["Nats-Msg-Id"] == "batch-0"
        assert spool.records == 2


# -- damage ---------------------------------------------------------------------


def damage_tail(path: Path, how: str, frame_bytes: int) -> int:
    """Damage the last frame of ``path`` as a crash or bad disk would; returns the bytes then invalid."""
    size = path.stat().st_size
    if how == "truncated":
        os.truncate(path, size - 5)
        return frame_bytes - 5
    if how == "flipped_payload":
        flip(path, size - 3)
        return frame_bytes
    extra = {"short_garbage": b"\x01\x02\x03", "garbage": os.urandom(37), "zeros": bytes(4096)}[how]
    with path.open("ab") as f:
        f.write(extra)
    return len(extra)


def flip(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("how", ["truncated", "flipped_payload", "short_garbage", "garbage", "zeros"])
def test_torn_or_damaged_tail_is_truncated_and_counted(spool_dir: Path, how: str) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        records = fill(spool, range(3), size=40)
    [path] = segments(spool_dir)
    intact = path.stat().st_size
    lost = damage_tail(path, how, Spool.framed_size(records[2]))
    kept = records if how in {"short_garbage", "garbage", "zeros"} else records[:2]
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovered_corrupt_bytes == lost
        assert spool.recovery.damaged_segments == 1
        assert spool.records == len(kept)
        assert path.stat().st_size == sum(Spool.framed_size(r) for r in kept)
        assert path.stat().st_size <= intact
        spool.append(rec(9, 40))
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovered_corrupt_bytes == 0
        assert drain(spool) == [*kept, rec(9, 40)]


@pytest.mark.parametrize("where", ["payload", "crc", "length", "version"])
def test_records_after_a_damaged_frame_in_its_segment_are_lost_with_it(spool_dir: Path, where: str) -> None:
    """Damage in the middle: that frame and the rest of its segment go; later segments stay."""
    frame = Spool.framed_size(rec(0, 60))
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=3 * frame) as spool:
        records = fill(spool, range(9), size=60)  # three records per segment
    first, second, third = segments(spool_dir)
    flip(second, frame + {"payload": 30, "crc": 6, "length": 2, "version": 0}[where])
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovered_corrupt_bytes == 2 * frame
        assert spool.recovery.damaged_segments == 1
        assert second.stat().st_size == frame
        assert third.stat().st_size == 3 * frame
        assert drain(spool) == [*records[:4], *records[6:]]
    assert not first.exists()


def test_unreadable_segment_fails_open_and_releases_the_lock(spool_dir: Path) -> None:
    blocker = spool_dir / f"{0:020d}.seg"
    blocker.mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        Spool.open(spool_dir, max_bytes=1024)
    blocker.rmdir()
    with Spool.open(spool_dir, max_bytes=1024) as spool:
        assert spool.records == 0


def test_frame_with_good_checksum_but_undecodable_content_counts_as_damaged(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        fill(spool, range(1))
    [path] = segments(spool_dir)
    payload = struct.pack(">I", 5) + b"notjs"
    prefix = struct.pack(">BI", 1, len(payload))
    forged = prefix + struct.pack(">I", zlib.crc32(payload, zlib.crc32(prefix))) + payload
    with path.open("ab") as f:
        f.write(forged)
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovered_corrupt_bytes == len(forged)
        assert drain(spool) == [rec(0)]


def test_damage_while_open_raises_on_peek_and_commit_skips_it(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        fill(spool, range(2), size=40)
        [path] = segments(spool_dir)
        flip(path, HEADER_BYTES + 20)
        with pytest.raises(SpoolCorruptError) as caught:
            spool.peek()
        assert caught.value.offset == 0
        assert caught.value.entries == 1
        assert caught.value.path == path
        assert isinstance(caught.value, ValueError)
        spool.commit()
        assert drain(spool) == [rec(1, 40)]


@pytest.mark.parametrize(
    "cursor",
    [b"", b"{not json", b"[1, 2]", b"{}", b'{"segment": -1, "offset": 0}', b'{"segment": 0, "offset": true}'],
)
def test_unreadable_cursor_replays_from_the_oldest_segment(spool_dir: Path, cursor: bytes) -> None:
    """Duplicates of the oldest segment's consumed records, never a loss."""
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        records = fill(spool, range(4))
        drain_n(spool, 2)
    (spool_dir / "cursor").write_bytes(cursor)
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovery.cursor_reset
        assert drain(spool) == records
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert not spool.recovery.cursor_reset
        assert spool.records == 0


def test_cursor_past_the_end_of_its_segment_keeps_later_segments(spool_dir: Path) -> None:
    """A segment cut short under the cursor (power loss without fsync) holds nothing unconsumed."""
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=100) as spool:
        records = fill(spool, range(3), size=60)  # one record per segment
        drain_n(spool, 1)
    second = segments(spool_dir)[0]
    seq = int(second.name[:20])
    (spool_dir / "cursor").write_bytes(orjson.dumps({"segment": seq, "offset": 10_000}))
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovered_corrupt_bytes == 0
        assert not second.exists()
        assert drain(spool) == records[2:]
        spool.append(rec(5))
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert drain(spool) == [rec(5)]


def test_consumed_segment_left_by_a_crash_is_deleted_and_unknown_files_kept(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=100) as spool:
        records = fill(spool, range(3), size=60)
        drain_n(spool, 2)
        [tail] = segments(spool_dir)
    stale = spool_dir / f"{int(tail.name[:20]) - 1:020d}.seg"
    stale.write_bytes(b"left behind between the cursor write and the unlink")
    strangers = [spool_dir / "notes.txt", spool_dir / "123.seg"]
    for path in strangers:
        path.write_bytes(b"not ours")
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert not stale.exists()
        assert spool.recovered_corrupt_bytes == 0
        assert drain(spool) == records[2:]
    assert all(p.read_bytes() == b"not ours" for p in strangers)


def test_failed_write_leaves_no_torn_frame(spool_dir: Path) -> None:
    """A file-size limit makes the kernel write part of the frame and then fail, as a full disk would."""
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        fill(spool, range(1))
        [path] = segments(spool_dir)
        size = path.stat().st_size
        with file_size_limit(size + 20), pytest.raises(OSError, match="too large"):
            spool.append(rec(1, 500))
        assert path.stat().st_size == size
        assert (spool.records, spool.size_bytes) == (1, size)
        spool.append(rec(2))
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool:
        assert spool.recovered_corrupt_bytes == 0
        assert drain(spool) == [rec(0), rec(2)]


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE lowered to ``limit`` bytes, SIGXFSZ ignored: writes past it fail with EFBIG."""
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, saved[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)
        signal.signal(signal.SIGXFSZ, handler)


# -- the size cap -------------------------------------------------------------------


def test_full_spool_raises_with_size_and_limit_and_has_room_after_commits(spool_dir: Path) -> None:
    frame = Spool.framed_size(rec(0, 100))
    with Spool.open(spool_dir, max_bytes=3 * frame + 10) as spool:
        fill(spool, range(3), size=100)
        with pytest.raises(SpoolFullError) as caught:
            spool.append(rec(3, 100))
        assert (caught.value.size, caught.value.limit, caught.value.record_bytes) == (
            4 * frame,
            3 * frame + 10,
            frame,
        )
        assert isinstance(caught.value, GatewayError)
        assert spool.records == 3
        spool.commit()
        spool.append(rec(3, 100))
        assert drain(spool) == [rec(n, 100) for n in (1, 2, 3)]


def test_record_larger_than_the_whole_spool_is_refused(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=100) as spool:
        with pytest.raises(SpoolFullError, match="limit 100") as caught:
            spool.append(rec(0, 200))
        assert caught.value.size == Spool.framed_size(rec(0, 200))
        assert spool.records == 0
        assert segments(spool_dir) == []


# -- segments ---------------------------------------------------------------------


def test_segments_roll_over_and_consumed_ones_are_deleted(spool_dir: Path) -> None:
    frame = Spool.framed_size(rec(0, 60))
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=2 * frame) as spool:
        fill(spool, range(6), size=60)
        files = segments(spool_dir)
        assert [p.stat().st_size for p in files] == [2 * frame] * 3
        drain_n(spool, 1)
        assert segments(spool_dir) == files
        drain_n(spool, 1)
        assert segments(spool_dir) == files[1:]
        drain_n(spool, 3)
        assert segments(spool_dir) == files[2:]
        drain_n(spool, 1)
        assert segments(spool_dir) == []
        spool.append(rec(6, 60))
        [fresh] = segments(spool_dir)
        assert fresh.name > files[-1].name  # numbers are never reused


def test_record_larger_than_a_segment_gets_one_of_its_own(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=100) as spool:
        spool.append(rec(0, 10))
        spool.append(rec(1, 500))
        spool.append(rec(2, 10))
        sizes = [p.stat().st_size for p in segments(spool_dir)]
        assert sizes == [Spool.framed_size(rec(n, s)) for n, s in ((0, 10), (1, 500), (2, 10))]
        assert drain(spool) == [rec(0, 10), rec(1, 500), rec(2, 10)]


# -- fsync policies -------------------------------------------------------------------


def test_always_fsyncs_every_append_and_commit(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20, fsync=FsyncPolicy.ALWAYS) as spool:
        assert spool.fsync_count == 2  # the normalized cursor: its file, then the directory
        counts = []
        for record in (rec(0), rec(1)):
            before = spool.fsync_count
            spool.append(record)
            counts.append(spool.fsync_count - before)
        assert counts == [2, 1]  # a new segment also syncs the directory
        before = spool.fsync_count
        spool.commit()
        assert spool.fsync_count - before == 2  # the cursor's file before its rename, then the directory
        before = spool.fsync_count
        spool.close()
        assert spool.fsync_count == before  # nothing was pending


def test_never_leaves_fsync_to_the_os_until_asked(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20, segment_bytes=50, fsync=FsyncPolicy.NEVER) as spool:
        fill(spool, range(3), size=40)
        drain_n(spool, 1)
        assert spool.fsync_count == 0
        spool.sync()
        assert spool.fsync_count == 3  # the tail segment, the cursor, the directory
        spool.sync()
        assert spool.fsync_count == 3  # nothing pending: nothing to do
        spool.append(rec(3))
    assert spool.closed
    assert spool.fsync_count == 3  # close leaves it to the OS too


def test_interval_fsyncs_once_the_interval_has_passed(spool_dir: Path) -> None:
    clock = FakeClock()
    spool = Spool.open(
        spool_dir, max_bytes=1 << 20, fsync=FsyncPolicy.INTERVAL, fsync_interval_s=1.0, clock=clock
    )
    assert spool.fsync_count == 0
    clock.now = 0.5
    spool.append(rec(0))
    spool.append(rec(1))
    assert spool.fsync_count == 0
    clock.now = 1.0
    spool.append(rec(2))
    assert spool.fsync_count == 3  # tail segment, the cursor written at open, the directory
    clock.now = 1.9
    spool.commit()
    assert spool.fsync_count == 3
    clock.now = 2.0
    spool.commit()
    assert spool.fsync_count == 5  # the new cursor's file before its rename, then the directory
    spool.append(rec(3))
    spool.close()
    assert spool.fsync_count == 6  # close syncs what is pending: the tail segment


def test_interval_syncs_a_segment_before_retiring_it(spool_dir: Path) -> None:
    clock = FakeClock()
    with Spool.open(
        spool_dir, max_bytes=1 << 20, segment_bytes=50, fsync=FsyncPolicy.INTERVAL, clock=clock
    ) as spool:
        spool.append(rec(0, 40))
        assert spool.fsync_count == 0
        spool.append(rec(1, 40))  # rolls over
        assert spool.fsync_count == 3  # the retired segment, the cursor, the directory
        assert len(segments(spool_dir)) == 2


# -- the lock ------------------------------------------------------------------------


def test_second_open_of_a_directory_is_refused_until_the_first_closes(spool_dir: Path) -> None:
    first = Spool.open(spool_dir, max_bytes=1 << 20)
    first.append(rec(0))
    with pytest.raises(SpoolLockedError, match="in use by another spool") as caught:
        Spool.open(spool_dir, max_bytes=1 << 20)
    assert caught.value.holder == str(os.getpid())
    assert caught.value.directory == spool_dir
    first.close()
    with Spool.open(spool_dir, max_bytes=1 << 20) as second:
        assert drain(second) == [rec(0)]


def test_another_process_holding_the_directory_is_named(spool_dir: Path) -> None:
    code = (
        "import sys; from gateway.spool import Spool\n"
        f"s = Spool.open({str(spool_dir)!r}, max_bytes=1024)\n"
        "print('open', flush=True); sys.stdin.read(); s.close()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline() == "open\n"
        with pytest.raises(SpoolLockedError) as caught:
            Spool.open(spool_dir, max_bytes=1024)
        assert caught.value.holder == str(proc.pid)
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    with Spool.open(spool_dir, max_bytes=1024) as spool:
        assert spool.records == 0


# -- misuse ----------------------------------------------------------------------------


def test_closed_spool_refuses_everything_and_close_is_idempotent(spool_dir: Path) -> None:
    spool = Spool.open(spool_dir, max_bytes=1 << 20)
    spool.append(rec(0))
    spool.close()
    spool.close()
    for call in (lambda: spool.append(rec(1)), spool.peek, spool.commit, spool.sync):
        with pytest.raises(SpoolError, match="is closed"):
            call()


def test_commit_on_an_empty_spool_is_an_error(spool_dir: Path) -> None:
    with Spool.open(spool_dir, max_bytes=1 << 20) as spool, pytest.raises(SpoolError, match="empty"):
        spool.commit()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"segment_bytes": 0}, "segment_bytes"),
        ({"fsync_interval_s": 0.0}, "fsync_interval_s"),
        ({"fsync": "sometimes"}, "sometimes"),
    ],
)
def test_bad_options_are_refused_before_touching_the_disk(
    spool_dir: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Spool.open(spool_dir, **{"max_bytes": 1024, **options})
    assert not spool_dir.exists()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"subject": ""}, ValueError),
        ({"headers": {"Nats-Msg-Id": 1}}, ValueError),
        ({"body": "text"}, TypeError),
        ({"entries": -1}, ValueError),
        ({"entries": True}, ValueError),
        ({"spooled_at": float("nan")}, ValueError),
    ],
)
def test_bad_records_are_refused(changes: dict[str, Any], error: type[Exception]) -> None:
    fields: dict[str, Any] = {
        "subject": SUBJECT,
        "headers": {},
        "body": b"",
        "entries": 0,
        "spooled_at": 0.0,
        **changes,
    }
    with pytest.raises(error):
        SpoolRecord(**fields)


# -- any sequence of operations matches a FIFO ------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 300), st.integers(0, 9)),
        st.tuples(st.just("commit"), st.just(0), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


MAX_BYTES = 1500


@settings(deadline=None, max_examples=150)
@given(ops=OPS, segment_bytes=st.integers(1, 700), policy=st.sampled_from(FsyncPolicy))
def test_any_sequence_of_operations_matches_a_fifo(
    ops: list[tuple[str, int, int]], segment_bytes: int, policy: FsyncPolicy
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        spool = Spool.open(directory, max_bytes=MAX_BYTES, segment_bytes=segment_bytes, fsync=policy)
        model: deque[SpoolRecord] = deque()
        try:
            for n, (op, size, entries) in enumerate(ops):
                spool = apply(spool, model, op, rec(n, size, entries))
                check_against(spool, model)
            assert drain(spool) == list(model)
        finally:
            spool.close()
        assert segments(directory) == []


def apply(spool: Spool, model: deque[SpoolRecord], op: str, record: SpoolRecord) -> Spool:
    """One operation on the spool and on the model; the spool (a new one after ``reopen``)."""
    if op == "append" and sum(map(Spool.framed_size, model)) + Spool.framed_size(record) > MAX_BYTES:
        with pytest.raises(SpoolFullError):
            spool.append(record)
    elif op == "append":
        spool.append(record)
        model.append(record)
    elif op == "commit" and not model:
        with pytest.raises(SpoolError, match="empty"):
            spool.commit()
    elif op == "commit":
        assert spool.peek() == model.popleft()
        spool.commit()
    else:
        spool.close()
        spool = Spool.open(
            spool.directory, max_bytes=MAX_BYTES, segment_bytes=spool.segment_bytes, fsync=spool.policy
        )
        assert (spool.recovery.records, spool.recovered_corrupt_bytes) == (len(model), 0)
    return spool


def check_against(spool: Spool, model: deque[SpoolRecord]) -> None:
    """The spool's counts, head and files agree with the model."""
    assert spool.records == len(model)
    assert spool.entries == sum(r.entries for r in model)
    assert spool.size_bytes == sum(map(Spool.framed_size, model))
    assert spool.peek() == (model[0] if model else None)
    assert spool.oldest_spooled_at() == (model[0].spooled_at if model else None)
    assert sum(p.stat().st_size for p in segments(spool.directory)) >= spool.size_bytes
