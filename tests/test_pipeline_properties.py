"""Property tests of the whole ingest path without a server: decoder, accumulator, encoder.

For any message, the gateway either batches the entry or rejects it with a
reason; every batch stays within its limits; the counts always add up.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import DecodeError, LogBatchCreated, RejectReason
from gateway.core import (
    Accumulator,
    Admission,
    BatchEncoder,
    BatchLimits,
    BufferLimits,
    EncodedBatch,
    OverflowPolicy,
    Stats,
)
from gateway.core.encode import header_size
from gateway.ingest.decode import EntryDecoder
from tests import samples
from tests.helpers import message

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
)
json_any = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=12,
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[dict[str, str] | None, bytes]:
    """Valid entries in any form, entries with a field broken, and arbitrary bytes or JSON."""
    kind = draw(st.sampled_from(["valid", "broken", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.sampled_from([None, {"content-type": "application/json"}])), draw(
            st.binary(max_size=200)
        )
    if kind == "json":
        return None, json.dumps(draw(json_any), allow_nan=True).encode()
    data: dict[str, Any] = samples.entry(draw(st.integers(0, 10**6)), message=draw(st.text(max_size=3000)))
    if kind == "broken":  # any JSON in place of one field (huge numbers and NaN included)
        data[draw(st.sampled_from(sorted(data)))] = draw(json_any)
        return None, json.dumps(data, allow_nan=True).encode()
    return message(draw(st.sampled_from(["structured", "binary", "bare"])), data)


class Pipeline:
    """The core as the gateway drives it: an accumulator and an encoder, batches kept in memory."""

    def __init__(self, limits: BatchLimits, buffer: BufferLimits) -> None:
        self.stats = Stats()
        self.encoder = BatchEncoder(gateway_id="gw-prop", ce_source="//prop", max_entries=limits.max_entries)
        self.acc = Accumulator(limits, buffer, self.encoder.overhead_for, self.stats)
        self.published: list[EncodedBatch] = []

    def send_due(self, now: float) -> None:
        """Encode and "publish" every batch due at ``now``."""
        while (batch := self.acc.take(now)) is not None:
            encoded = self.encoder.encode(
                batch,
                sequence=len(self.published) + 1,
                dropped=self.stats.take_unreported(),
                now="2025-10-13T08:00:00.000Z",
            )
            self.published.append(encoded)
            self.acc.release(batch)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(messages(), min_size=1, max_size=60),
    st.integers(1, 20),
    st.integers(2048, 8000),
    st.sampled_from(list(OverflowPolicy)),
)
def test_every_message_is_batched_or_rejected_and_limits_hold(
    msgs: list[tuple[dict[str, str] | None, bytes]], max_entries: int, max_bytes: int, policy: OverflowPolicy
) -> None:
    limits = BatchLimits(max_entries=max_entries, max_bytes=max_bytes)
    run = Pipeline(limits, BufferLimits(max_entries=25, overflow=policy))
    decoder = EntryDecoder(max_batch_bytes=max_bytes)
    accepted, rejected, blocked = 0, 0, 0
    reasons: list[RejectReason] = []
    for now, (headers, body) in enumerate(msgs):
        try:
            entry = decoder.decode(headers, body)
        except DecodeError as exc:
            reasons.append(exc.reason)
            rejected += 1
            continue
        admission = run.acc.offer(entry)
        rejected += admission is Admission.OVERSIZE
        blocked += admission is Admission.BLOCKED
        accepted += admission is Admission.ACCEPTED
        if now % 7 == 6:  # the sender takes what is due now and then
            run.send_due(float(now))
    run.acc.seal_all()
    run.send_due(1e9)
    stats, acc, published = run.stats, run.acc, run.published
    entries_out = 0
    for out in published:
        assert header_size(out.headers) + len(out.body) <= max_bytes
        parsed = LogBatchCreated.parse(orjson.loads(out.body)["data"])
        assert parsed.count == len(parsed.entries) <= max_entries
        entries_out += parsed.count
    # Counts add up: every message was batched, rejected, dropped by policy or blocked.
    dropped = stats.total_dropped
    assert accepted == entries_out + stats.dropped.get("overflow_oldest", 0)
    assert len(msgs) == entries_out + rejected + dropped + blocked
    assert acc.held_entries == 0
    assert set(reasons) <= set(RejectReason)
