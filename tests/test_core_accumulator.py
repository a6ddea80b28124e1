"""The pure batching core: thresholds, exact byte bound, overflow policy, counts that add up.

Time is passed in (``received_at``, ``take(now)``), so nothing here sleeps.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts.models import LEVELS, LogBatchCreated
from contracts.timestamps import parse_timestamp
from gateway.core import (
    Accumulator,
    Admission,
    BatchEncoder,
    BatchLimits,
    BufferLimits,
    DropReason,
    OverflowPolicy,
    PendingEntry,
    SealedBatch,
    Stats,
)
from tests import samples

NOW_TEXT = "2025-10-13T09:00:00.000Z"


def make_entry(
    n: int,
    received_at: float = 0.0,
    *,
    source: str | None = None,
    level: str | None = None,
    pad: int = 0,
) -> PendingEntry:
    """Entry number ``n`` as ingest would hold it, optionally with another source, level or size."""
    changes: dict[str, Any] = {}
    if source is not None:
        changes["source"] = source
    if level is not None:
        changes["level"] = level
    if pad:
        changes["message"] = "m" * pad
    data = samples.entry(n, **changes)
    return PendingEntry(
        data=orjson.dumps(data),
        level=data["level"],
        source=data["source"],
        created_at=parse_timestamp(data["createdAt"]).timestamp(),
        created_text=data["createdAt"],
        received_at=received_at,
    )


def sized(n: int, size: int, received_at: float = 0.0, **changes: Any) -> PendingEntry:
    """Entry number ``n`` whose JSON is exactly ``size`` bytes (its message padded)."""
    base = make_entry(n, received_at, pad=1, **changes)
    entry = make_entry(n, received_at, pad=size - len(base.data) + 1, **changes)
    assert len(entry.data) == size
    return entry


def log_ids(batch: SealedBatch) -> list[str]:
    return [orjson.loads(e.data)["logId"] for e in batch.entries]


def encoder(max_entries: int) -> BatchEncoder:
    return BatchEncoder(gateway_id="gw-test-1", ce_source="//log-gateway/gw-test-1", max_entries=max_entries)


def make_acc(
    limits: BatchLimits | None = None,
    buffer: BufferLimits | None = None,
    stats: Stats | None = None,
) -> Accumulator:
    limits = limits or BatchLimits()
    return Accumulator(
        limits, buffer or BufferLimits(), encoder(limits.max_entries).overhead_for, stats or Stats()
    )


def drain(acc: Accumulator, now: float = 1e9) -> list[SealedBatch]:
    """Seal and take everything queued (and release it)."""
    acc.seal_all()
    out = []
    while (batch := acc.take(now)) is not None:
        acc.release(batch)
        out.append(batch)
    return out


def room_for(limits: BatchLimits, entries: list[PendingEntry], source: str | None = None) -> int:
    """The accumulator's own bound for a batch of ``entries``."""
    overhead = encoder(limits.max_entries).overhead_for(source)
    return overhead + sum(len(e.data) for e in entries) + len(entries) - 1


# -- thresholds ------------------------------------------------------------------


def test_batch_is_sealed_at_max_entries() -> None:
    acc = make_acc(BatchLimits(max_entries=3, max_delay_ms=1000))
    for n in range(7):
        assert acc.offer(make_entry(n, 0.0)) is Admission.ACCEPTED
    # Two full batches are ready at once, long before the delay; the seventh entry waits.
    assert acc.has_waiting
    assert acc.next_due() == 0.0
    first, second = acc.take(0.0), acc.take(0.0)
    assert first is not None
    assert second is not None
    assert log_ids(first) == ["log-00000000", "log-00000001", "log-00000002"]
    assert log_ids(second) == ["log-00000003", "log-00000004", "log-00000005"]
    assert acc.take(0.0) is None
    assert acc.queued_entries == 1
    assert acc.next_due() == pytest.approx(1.0)


def test_batch_is_sealed_before_it_would_exceed_max_bytes() -> None:
    limits = BatchLimits(max_entries=500, max_bytes=4096, max_delay_ms=1000)
    enc = encoder(limits.max_entries)
    acc = make_acc(limits)
    entries = [make_entry(n, 0.0, pad=300) for n in range(40)]
    for entry in entries:
        assert acc.offer(entry) is Admission.ACCEPTED
    batches = drain(acc)
    assert [e for b in batches for e in b.entries] == entries
    assert len(batches) > 2
    for i, batch in enumerate(batches):
        encoded = enc.encode(batch, sequence=i + 1, dropped={}, now=NOW_TEXT)
        assert encoded.size <= limits.max_bytes
        assert room_for(limits, list(batch.entries)) <= limits.max_bytes
        if i < len(batches) - 1:
            # Sealed only because the next entry would not have fitted.
            nxt = batches[i + 1].entries[0]
            assert room_for(limits, [*batch.entries, nxt]) > limits.max_bytes


def test_batch_exactly_at_max_bytes_is_kept_whole() -> None:
    base = BatchLimits(max_entries=500, max_bytes=100_000)
    entries = [make_entry(n, 0.0, pad=200) for n in range(5)]
    exact = BatchLimits(max_entries=500, max_bytes=room_for(base, entries))
    acc = make_acc(exact)
    for entry in entries:
        assert acc.offer(entry) is Admission.ACCEPTED
    assert [len(b.entries) for b in drain(acc)] == [5]
    one_less = BatchLimits(max_entries=500, max_bytes=room_for(base, entries) - 1)
    acc = make_acc(one_less)
    for entry in entries:
        assert acc.offer(entry) is Admission.ACCEPTED
    assert [len(b.entries) for b in drain(acc)] == [4, 1]


def test_open_batch_is_due_exactly_after_max_delay() -> None:
    limits = BatchLimits(max_entries=100, max_delay_ms=250)
    acc = make_acc(limits)
    opened = 12.375
    assert acc.next_due() is None
    assert acc.take(opened) is None
    acc.offer(make_entry(0, opened))
    acc.offer(make_entry(1, opened + 0.2))
    due = opened + limits.max_delay_s
    assert acc.next_due() == due
    assert acc.take(opened) is None
    assert acc.take(math.nextafter(due, -math.inf)) is None
    batch = acc.take(due)
    assert batch is not None
    assert log_ids(batch) == ["log-00000000", "log-00000001"]
    assert acc.take(due + 100) is None
    assert acc.next_due() is None


def test_open_batch_is_taken_after_its_due_time() -> None:
    acc = make_acc(BatchLimits(max_delay_ms=100))
    acc.offer(make_entry(0, 5.0))
    batch = acc.take(99.0)
    assert batch is not None
    assert batch.opened_at == 5.0


def test_sealed_batches_come_first_and_in_order() -> None:
    acc = make_acc(BatchLimits(max_entries=2, max_delay_ms=10, per_source=True))
    acc.offer(make_entry(0, 0.0, source="a"))  # open, due at 0.01
    for n, source in [(1, "b"), (2, "c"), (3, "b"), (4, "c")]:
        acc.offer(make_entry(n, 0.001 * n, source=source))
    # At a time when the open batch of "a" is overdue, the sealed ones still go first, FIFO.
    taken = [acc.take(1.0) for _ in range(4)]
    assert [log_ids(b) for b in taken if b is not None] == [
        ["log-00000001", "log-00000003"],
        ["log-00000002", "log-00000004"],
        ["log-00000000"],
    ]
    assert taken[3] is None


def test_per_source_puts_one_source_per_batch() -> None:
    acc = make_acc(BatchLimits(per_source=True, max_entries=500))
    sources = ["a", "b", "c", "a", "a", "c"]
    for n, source in enumerate(sources):
        assert acc.offer(make_entry(n, 0.0, source=source)) is Admission.ACCEPTED
    batches = drain(acc)
    assert {b.source: log_ids(b) for b in batches} == {
        "a": ["log-00000000", "log-00000003", "log-00000004"],
        "b": ["log-00000001"],
        "c": ["log-00000002", "log-00000005"],
    }
    for batch in batches:
        assert {e.source for e in batch.entries} == {batch.source}


def test_without_per_source_sources_share_a_batch() -> None:
    acc = make_acc(BatchLimits(max_entries=500))
    for n, source in enumerate(["a", "b", "c"]):
        acc.offer(make_entry(n, 0.0, source=source))
    (batch,) = drain(acc)
    assert batch.source is None
    assert len(batch.entries) == 3


def test_max_open_sources_seals_the_oldest_open_batch() -> None:
    acc = make_acc(BatchLimits(per_source=True, max_open_sources=2, max_delay_ms=1000))
    acc.offer(make_entry(0, 0.0, source="a"))
    acc.offer(make_entry(1, 0.1, source="b"))
    acc.offer(make_entry(2, 0.2, source="a"))
    assert not acc.has_waiting
    acc.offer(make_entry(3, 0.3, source="c"))  # third source: "a" (opened first) is sealed
    assert acc.has_waiting
    sealed = acc.take(0.3)
    assert sealed is not None
    assert sealed.source == "a"
    assert log_ids(sealed) == ["log-00000000", "log-00000002"]
    assert acc.take(0.3) is None
    acc.offer(make_entry(4, 0.4, source="a"))  # "b" is now the oldest open batch
    sealed = acc.take(0.4)
    assert sealed is not None
    assert sealed.source == "b"
    assert {b.source: log_ids(b) for b in drain(acc)} == {"c": ["log-00000003"], "a": ["log-00000004"]}


# -- admission -------------------------------------------------------------------


def test_entry_larger_than_any_batch_is_oversize_and_not_held() -> None:
    limits = BatchLimits(max_bytes=2048)
    stats = Stats()
    acc = make_acc(limits, stats=stats)
    acc.offer(make_entry(0, 0.0))
    held = (acc.held_entries, acc.held_bytes, acc.queued_entries)
    big = make_entry(1, 0.0, pad=2048)
    assert acc.offer(big) is Admission.OVERSIZE
    assert (acc.held_entries, acc.held_bytes, acc.queued_entries) == held
    assert stats.total_dropped == 0
    assert [log_ids(b) for b in drain(acc)] == [["log-00000000"]]


def test_largest_entry_that_fits_alone_is_accepted() -> None:
    limits = BatchLimits(max_bytes=2048)
    overhead = encoder(limits.max_entries).overhead_for(None)
    acc = make_acc(limits)
    assert acc.offer(sized(0, limits.max_bytes - overhead)) is Admission.ACCEPTED
    (batch,) = drain(acc)
    assert encoder(limits.max_entries).encode(batch, sequence=1, dropped={}, now=NOW_TEXT).size <= 2048
    assert acc.offer(sized(1, limits.max_bytes - overhead + 1)) is Admission.OVERSIZE
    assert acc.held_entries == 0


def test_block_policy_refuses_without_holding_or_counting() -> None:
    stats = Stats()
    acc = make_acc(buffer=BufferLimits(max_entries=3, overflow=OverflowPolicy.BLOCK), stats=stats)
    for n in range(3):
        assert acc.offer(make_entry(n)) is Admission.ACCEPTED
    held = (acc.held_entries, acc.held_bytes, acc.queued_entries)
    assert acc.offer(make_entry(3)) is Admission.BLOCKED
    assert (acc.held_entries, acc.held_bytes, acc.queued_entries) == held
    assert stats.total_dropped == 0
    assert [log_ids(b) for b in drain(acc)] == [["log-00000000", "log-00000001", "log-00000002"]]


def test_block_policy_on_the_byte_cap() -> None:
    first = make_entry(0, pad=500)
    acc = make_acc(buffer=BufferLimits(max_bytes=len(first.data) + 10, overflow=OverflowPolicy.BLOCK))
    assert acc.offer(first) is Admission.ACCEPTED
    assert acc.offer(make_entry(1, pad=11)) is Admission.BLOCKED
    assert acc.held_bytes == len(first.data)


def test_drop_newest_policy_drops_and_counts_the_new_entry() -> None:
    stats = Stats()
    acc = make_acc(buffer=BufferLimits(max_entries=2, overflow=OverflowPolicy.DROP_NEWEST), stats=stats)
    assert acc.offer(make_entry(0)) is Admission.ACCEPTED
    assert acc.offer(make_entry(1)) is Admission.ACCEPTED
    held = (acc.held_entries, acc.held_bytes)
    assert acc.offer(make_entry(2)) is Admission.DROPPED
    assert acc.offer(make_entry(3)) is Admission.DROPPED
    assert (acc.held_entries, acc.held_bytes) == held
    assert stats.dropped == Counter({"overflow_newest": 2})
    assert stats.take_unreported() == {"overflow_newest": 2}
    assert [log_ids(b) for b in drain(acc)] == [["log-00000000", "log-00000001"]]


def test_drop_oldest_policy_keeps_the_newest() -> None:
    stats = Stats()
    acc = make_acc(
        BatchLimits(max_entries=2),
        BufferLimits(max_entries=5, overflow=OverflowPolicy.DROP_OLDEST),
        stats=stats,
    )
    for n in range(9):
        assert acc.offer(make_entry(n, 0.1 * n)) is Admission.ACCEPTED
        assert acc.held_entries == min(n + 1, 5)
    assert stats.dropped == Counter({"overflow_oldest": 4})
    batches = drain(acc)
    assert [e for b in batches for e in log_ids(b)] == [f"log-{n:08d}" for n in range(4, 9)]
    assert acc.held_entries == 0
    assert acc.held_bytes == 0


def test_drop_oldest_by_bytes_evicts_as_many_as_needed() -> None:
    stats = Stats()
    small = [sized(n, 300) for n in range(4)]
    acc = make_acc(buffer=BufferLimits(max_bytes=1200, overflow=OverflowPolicy.DROP_OLDEST), stats=stats)
    for entry in small:
        assert acc.offer(entry) is Admission.ACCEPTED
    assert acc.offer(sized(9, 601)) is Admission.ACCEPTED  # needs the room of three small ones
    assert stats.dropped == Counter({"overflow_oldest": 3})
    assert acc.held_bytes == 300 + 601
    assert [log_ids(b) for b in drain(acc)] == [["log-00000003", "log-00000009"]]


def test_drop_oldest_never_evicts_entries_already_taken() -> None:
    stats = Stats()
    acc = make_acc(
        BatchLimits(max_entries=2),
        BufferLimits(max_entries=3, overflow=OverflowPolicy.DROP_OLDEST),
        stats=stats,
    )
    acc.offer(make_entry(0))
    acc.offer(make_entry(1))
    in_flight = acc.take(0.0)
    assert in_flight is not None
    acc.offer(make_entry(2))
    assert acc.offer(make_entry(3)) is Admission.ACCEPTED  # evicts 2, the oldest one not yet taken
    assert stats.dropped == Counter({"overflow_oldest": 1})
    assert log_ids(in_flight) == ["log-00000000", "log-00000001"]
    acc.seal_all()
    also_in_flight = acc.take(0.0)
    assert also_in_flight is not None
    assert log_ids(also_in_flight) == ["log-00000003"]
    # Everything held is in flight: nothing may be evicted, so the newest is dropped.
    assert acc.offer(make_entry(4)) is Admission.DROPPED
    assert stats.dropped == Counter({"overflow_oldest": 1, "overflow_newest": 1})
    assert acc.held_entries == 3
    acc.release(in_flight)
    assert acc.offer(make_entry(5)) is Admission.ACCEPTED


def test_drop_oldest_that_cannot_make_room_evicts_nothing() -> None:
    """When evicting every queued entry still would not make room, the queue should be left alone.

    The two in-flight entries fill the byte cap; no eviction can admit the new entry, so it is
    dropped, but the queued ones must not be sacrificed for nothing.
    """
    stats = Stats()
    in_flight = [make_entry(n, pad=400) for n in range(2)]
    queued = [make_entry(n, pad=10) for n in range(2, 5)]
    cap = sum(len(e.data) for e in [*in_flight, *queued])
    acc = make_acc(
        BatchLimits(max_entries=2),
        BufferLimits(max_bytes=cap, overflow=OverflowPolicy.DROP_OLDEST),
        stats=stats,
    )
    for entry in [*in_flight, *queued]:
        assert acc.offer(entry) is Admission.ACCEPTED
    taken = acc.take(0.0)
    assert taken is not None
    assert log_ids(taken) == ["log-00000000", "log-00000001"]
    room = cap - len(in_flight[0].data) - len(in_flight[1].data)
    too_big = sized(9, room + 1)
    assert acc.offer(too_big) is Admission.DROPPED
    assert stats.dropped == Counter({"overflow_newest": 1})
    assert acc.queued_entries == 3


def test_drop_oldest_per_source_evicts_the_oldest_entry() -> None:
    """Per source, a full batch of a later source may be waiting while an older entry is still open."""
    stats = Stats()
    acc = make_acc(
        BatchLimits(max_entries=2, per_source=True),
        BufferLimits(max_entries=3, overflow=OverflowPolicy.DROP_OLDEST),
        stats=stats,
    )
    acc.offer(make_entry(0, 0.0, source="a"))  # open
    acc.offer(make_entry(1, 1.0, source="b"))
    acc.offer(make_entry(2, 2.0, source="b"))  # "b" full: sealed, waiting
    assert acc.offer(make_entry(3, 3.0, source="c")) is Admission.ACCEPTED
    assert stats.dropped == Counter({"overflow_oldest": 1})
    kept = sorted(e for b in drain(acc) for e in log_ids(b))
    assert kept == ["log-00000001", "log-00000002", "log-00000003"]  # entry 0 was the oldest


def test_per_source_batch_is_due_after_an_eviction_elsewhere() -> None:
    """An open batch stays due at its own opened_at + max_delay even after another one lost entries."""
    acc = make_acc(
        BatchLimits(max_entries=10, per_source=True, max_delay_ms=100),
        BufferLimits(max_entries=3, overflow=OverflowPolicy.DROP_OLDEST),
    )
    acc.offer(make_entry(0, 0.00, source="a"))
    acc.offer(make_entry(1, 0.01, source="b"))  # "b" opened at 0.01: due at 0.11
    acc.offer(make_entry(2, 0.05, source="a"))
    acc.offer(make_entry(3, 0.06, source="c"))  # evicts entry 0; "a" now opened at 0.05
    assert acc.next_due() == pytest.approx(0.11)
    batch = acc.take(0.12)
    assert batch is not None
    assert batch.source == "b"


# -- release, clear, accounting ----------------------------------------------------


def test_release_frees_room() -> None:
    acc = make_acc(BatchLimits(max_entries=2), BufferLimits(max_entries=2, overflow=OverflowPolicy.BLOCK))
    first, second = make_entry(0), make_entry(1)
    acc.offer(first)
    acc.offer(second)
    batch = acc.take(0.0)
    assert batch is not None
    assert acc.queued_entries == 0
    assert acc.held_entries == 2  # in flight still counts
    assert acc.held_bytes == len(first.data) + len(second.data)
    assert acc.offer(make_entry(2)) is Admission.BLOCKED
    acc.release(batch)
    assert (acc.held_entries, acc.held_bytes) == (0, 0)
    assert acc.offer(make_entry(2)) is Admission.ACCEPTED


def test_clear_returns_queued_count_and_keeps_in_flight_held() -> None:
    acc = make_acc(BatchLimits(max_entries=3, per_source=True))
    for n in range(3):
        acc.offer(make_entry(n, source="a"))
    in_flight = acc.take(0.0)
    assert in_flight is not None
    entries = [make_entry(n, source="ab"[n % 2], pad=n) for n in range(3, 10)]
    for entry in entries:
        acc.offer(entry)
    assert acc.queued_entries == 7
    assert len(acc.clear()) == 7
    assert acc.queued_entries == 0
    assert acc.next_due() is None
    assert acc.take(1e9) is None
    assert acc.held_entries == 3
    assert acc.held_bytes == in_flight.data_bytes
    acc.release(in_flight)
    assert (acc.held_entries, acc.held_bytes) == (0, 0)
    assert acc.clear() == []


def test_sealed_batch_bookkeeping() -> None:
    batch = SealedBatch(source=None, overhead=1000)
    entries = [make_entry(n, float(n), pad=n) for n in range(3)]
    for entry in entries:
        batch.append(entry)
    assert batch.data_bytes == sum(len(e.data) for e in entries)
    assert batch.opened_at == 0.0
    assert batch.size_with(7) == 1000 + batch.data_bytes + 7 + 3
    assert batch.pop_oldest() is entries[0]
    assert batch.opened_at == 1.0
    assert batch.data_bytes == len(entries[1].data) + len(entries[2].data)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_batch_entries"):
        BatchLimits(max_entries=0)
    with pytest.raises(ValueError, match="max_batch_bytes"):
        BatchLimits(max_bytes=2047)
    with pytest.raises(ValueError, match="max_batch_delay_ms"):
        BatchLimits(max_delay_ms=0)
    with pytest.raises(ValueError, match="max_open_sources"):
        BatchLimits(max_open_sources=0)
    with pytest.raises(ValueError, match="max_buffered_entries"):
        BufferLimits(max_entries=0)
    with pytest.raises(ValueError, match="max_buffered_bytes"):
        BufferLimits(max_bytes=0)


# -- properties --------------------------------------------------------------------


class Run:
    """Drives an accumulator through random steps, tracking what went in and checking what comes out."""

    def __init__(self, limits: BatchLimits, buffer: BufferLimits) -> None:
        self.limits = limits
        self.buffer = buffer
        self.stats = Stats()
        self.enc = encoder(limits.max_entries)
        self.acc = Accumulator(limits, buffer, self.enc.overhead_for, self.stats)
        self.clock = 100.0
        self.offered = 0
        self.admissions: Counter[Admission] = Counter()
        self.taken: list[PendingEntry] = []
        self.in_flight: list[SealedBatch] = []
        self.order: dict[str, int] = {}  # logId -> offer index
        self.sequence = 0

    def step(self, kind: str, arg: Any) -> None:
        if kind == "offer":
            self.offer(*arg)
        elif kind == "advance":
            self.clock += arg
        elif kind == "take":
            due = self.acc.next_due()
            batch = self.take()
            assert (batch is not None) == (due is not None and due <= self.clock)
        elif kind == "release":
            if self.in_flight:
                self.acc.release(self.in_flight.pop(arg % len(self.in_flight)))
        else:
            self.acc.seal_all()
            assert self.acc.next_due() in (None, 0.0)
        self.check_counts()

    def offer(self, source: str, level: str, pad: int) -> None:
        acc, policy = self.acc, self.buffer.overflow
        n = self.offered
        entry = make_entry(n, self.clock, source=source, level=level, pad=pad)
        self.order[f"log-{n:08d}"] = n
        self.offered += 1
        held = (acc.held_entries, acc.held_bytes)
        admission = acc.offer(entry)
        self.admissions[admission] += 1
        if admission is not Admission.ACCEPTED:
            # Nothing held, and nothing evicted for nothing (DROPPED under drop_oldest too).
            assert (acc.held_entries, acc.held_bytes) == held
        if admission is Admission.OVERSIZE:
            overhead = self.enc.overhead_for(source if self.limits.per_source else None)
            assert overhead + len(entry.data) > self.limits.max_bytes
        if policy is not OverflowPolicy.DROP_OLDEST:
            assert self.stats.dropped[DropReason.OVERFLOW_OLDEST] == 0
        if policy is OverflowPolicy.BLOCK:
            assert admission is not Admission.DROPPED
        else:
            assert admission is not Admission.BLOCKED

    def take(self) -> SealedBatch | None:
        batch = self.acc.take(self.clock)
        if batch is not None:
            self.check_batch(batch)
            self.in_flight.append(batch)
        return batch

    def check_batch(self, batch: SealedBatch) -> None:
        """Encode a taken batch and check it against the contract and the limits."""
        self.sequence += 1
        dropped = self.stats.take_unreported()
        encoded = self.enc.encode(batch, sequence=self.sequence, dropped=dropped, now=NOW_TEXT)
        assert encoded.size <= self.limits.max_bytes
        body = json.loads(encoded.body)
        assert body["id"] == body["data"]["batchId"] == encoded.batch_id
        parsed = LogBatchCreated.parse_json(json.dumps(body["data"]))
        entries = list(batch.entries)
        assert 1 <= parsed.count == len(entries) == encoded.count <= self.limits.max_entries
        assert [e.to_json() for e in parsed.entries] == [e.data for e in entries]
        assert parsed.levelCounts == Counter(e.level for e in entries)
        assert parsed.sequence == self.sequence
        assert parsed.droppedSinceLast == sum(dropped.values())
        if self.limits.per_source:
            assert batch.source is not None
            assert parsed.source == batch.source
            assert {e.source for e in entries} == {batch.source}
        else:
            assert batch.source is None
            assert parsed.source is None
        self.taken.extend(entries)

    def check_counts(self) -> None:
        acc = self.acc
        accounted = (
            len(self.taken)
            + acc.queued_entries
            + self.stats.total_dropped
            + self.admissions[Admission.OVERSIZE]
            + self.admissions[Admission.BLOCKED]
        )
        assert self.offered == accounted
        assert self.admissions[Admission.DROPPED] == self.stats.dropped[DropReason.OVERFLOW_NEWEST]
        assert acc.held_entries == acc.queued_entries + sum(len(b.entries) for b in self.in_flight)
        assert acc.held_bytes >= sum(b.data_bytes for b in self.in_flight)
        assert acc.held_entries <= self.buffer.max_entries
        assert acc.held_bytes <= self.buffer.max_bytes

    def finish(self) -> None:
        """Shut down: seal, take and release everything, then check order and uniqueness."""
        self.acc.seal_all()
        while self.take() is not None:
            pass
        self.check_counts()
        for batch in self.in_flight:
            self.acc.release(batch)
        self.in_flight.clear()
        assert (self.acc.held_entries, self.acc.held_bytes, self.acc.queued_entries) == (0, 0, 0)
        ids = [orjson.loads(e.data)["logId"] for e in self.taken]
        assert len(ids) == len(set(ids))
        last_seen: dict[str, int] = {}
        for entry, log_id in zip(self.taken, ids, strict=True):
            index = self.order[log_id]
            assert index > last_seen.get(entry.source, -1)
            last_seen[entry.source] = index


def limits_strategy() -> st.SearchStrategy[tuple[BatchLimits, BufferLimits]]:
    batch = st.builds(
        BatchLimits,
        max_entries=st.integers(1, 50),
        max_bytes=st.integers(2048, 20_000),
        max_delay_ms=st.integers(1, 500),
        per_source=st.booleans(),
        max_open_sources=st.integers(1, 4),
    )
    buffer = st.builds(
        BufferLimits,
        max_entries=st.integers(1, 30),
        max_bytes=st.integers(500, 12_000),
        overflow=st.sampled_from(OverflowPolicy),
    )
    return st.tuples(batch, buffer)


pad = st.one_of(st.integers(0, 300), st.integers(0, 3000), st.integers(15_000, 21_000))
entry_spec = st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.sampled_from(LEVELS), pad)
# Offers half the time; the rest split between the clock, the sender and shutdown.
op = st.one_of(
    st.tuples(st.just("offer"), entry_spec),
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 0.3)),
        st.tuples(st.just("take"), st.none()),
        st.tuples(st.just("release"), st.integers(0, 10)),
        st.tuples(st.just("seal_all"), st.none()),
    ),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=limits_strategy(), ops=st.lists(op, min_size=20, max_size=150))
def test_random_runs_keep_every_invariant(limits: tuple[BatchLimits, BufferLimits], ops: list[Any]) -> None:
    """(a) every batch encodes to a valid logBatchCreated within the limits; (b) every offered entry
    is taken, queued, dropped, oversize or blocked; (c) none twice, and in order within its source."""
    run = Run(*limits)
    for kind, arg in ops:
        run.step(kind, arg)
    run.finish()
    for admission in run.admissions:
        event(f"{run.buffer.overflow}: some {admission}")
    if run.stats.dropped[DropReason.OVERFLOW_OLDEST]:
        event("some evicted")
    event(f"batches taken: {min(run.sequence, 5)}")


@settings(max_examples=150, deadline=None)
@given(
    max_entries=st.integers(1, 5),
    cap=st.integers(1, 10),
    per_source=st.booleans(),
    steps=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 199), st.integers(0, 3)), max_size=60),
)
def test_drop_oldest_keeps_exactly_the_newest(
    max_entries: int, cap: int, per_source: bool, steps: list[tuple[str, int, int]]
) -> None:
    """The entries that survive eviction are exactly the newest ones, per source too.

    Each step offers an entry of a source and size, then one time in four takes (and releases) a
    batch; the model keeps the not-yet-taken entries in arrival order and evicts from the front,
    as many as the accumulator counted.
    """
    stats = Stats()
    acc = make_acc(
        BatchLimits(max_entries=max_entries, per_source=per_source),
        BufferLimits(max_entries=cap, max_bytes=cap * 400, overflow=OverflowPolicy.DROP_OLDEST),
        stats=stats,
    )
    model: list[str] = []
    for n, (source, pad, take) in enumerate(steps):
        evicted = stats.dropped[DropReason.OVERFLOW_OLDEST]
        assert acc.offer(make_entry(n, float(n), source=source, pad=pad)) is Admission.ACCEPTED
        model.append(f"log-{n:08d}")
        del model[: stats.dropped[DropReason.OVERFLOW_OLDEST] - evicted]
        assert acc.queued_entries == len(model)
        batch = acc.take(1e9) if take == 0 else None
        if batch is not None:
            ids = log_ids(batch)
            assert ids == [i for i in model if i in ids]  # all still queued, in arrival order
            model = [i for i in model if i not in ids]
            acc.release(batch)
    assert sorted(e for b in drain(acc) for e in log_ids(b)) == model
