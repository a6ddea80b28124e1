"""logBatchCreated encoding (byte bound, splicing, envelope) and the core's counters and histogram."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.cloudevents import decode_contract
from contracts.models import LogBatchCreated
from contracts.timestamps import parse_timestamp
from gateway.core import (
    BatchEncoder,
    DropReason,
    LatencyHistogram,
    PendingEntry,
    SealedBatch,
    Stats,
)
from gateway.core.encode import MSG_ID_HEADER, header_size
from tests import samples

NOW_TEXT = "2025-10-13T09:00:00.000Z"


def pending(data: dict[str, object], raw: bytes | None = None, received_at: float = 0.0) -> PendingEntry:
    """An entry as ingest holds it; ``raw`` is its JSON exactly as sent (else orjson's)."""
    created = str(data["createdAt"])
    return PendingEntry(
        data=raw if raw is not None else orjson.dumps(data),
        level=str(data["level"]),
        source=str(data["source"]),
        created_at=parse_timestamp(created).timestamp(),
        created_text=created,
        received_at=received_at,
    )


def batch_of(entries: list[PendingEntry], source: str | None = None, overhead: int = 0) -> SealedBatch:
    batch = SealedBatch(source, overhead)
    for entry in entries:
        batch.append(entry)
    return batch


def counting_ids() -> Callable[[], str]:
    """Batch ids of a fixed 36-character length, distinct and predictable."""
    counter = itertools.count()
    return lambda: f"batch-{next(counter):030d}"


def nats_headers(headers: dict[str, str]) -> bytes:
    """The header block nats-py sends for ``headers`` (``NATS/1.0``, ``key: value`` lines, blank line)."""
    return b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"


ENCODER = BatchEncoder(gateway_id="gw-host-1", ce_source="//log-gateway/gw-host-1", max_entries=500)


# -- the envelope ----------------------------------------------------------------


def test_body_is_a_structured_cloudevent_with_matching_ids() -> None:
    entries = [pending(samples.entry(n)) for n in range(5)]
    encoded = ENCODER.encode(batch_of(entries), sequence=7, dropped={}, now=NOW_TEXT)
    body = json.loads(encoded.body)
    assert body["specversion"] == "1.0"
    assert body["type"] == "cortex_logging.batch.created" == LogBatchCreated.EVENT_TYPE
    assert body["source"] == "//log-gateway/gw-host-1"
    assert body["time"] == NOW_TEXT
    assert body["datacontenttype"] == "application/json"
    assert body["id"] == body["data"]["batchId"] == encoded.batch_id == encoded.headers[MSG_ID_HEADER]
    assert encoded.headers == {
        "content-type": "application/cloudevents+json",
        "Nats-Msg-Id": encoded.batch_id,
    }
    assert len(encoded.batch_id) == 36
    # The project's decoder and the cloudevents SDK both accept it.
    event, batch = decode_contract(encoded.headers, encoded.body, LogBatchCreated)
    assert event.attributes["id"] == encoded.batch_id
    assert batch.sequence == encoded.sequence == 7
    assert batch.count == encoded.count == 5
    assert batch.gatewayId == "gw-host-1"
    assert batch.createdAt == NOW_TEXT
    assert batch.source is None
    assert [e.to_data() for e in batch.entries] == [samples.entry(n) for n in range(5)]
    sdk_event = JSONFormat().read(None, encoded.body)
    assert sdk_event.get_id() == encoded.batch_id
    assert sdk_event.get_type() == LogBatchCreated.EVENT_TYPE


def test_each_batch_gets_a_new_id() -> None:
    batch = batch_of([pending(samples.entry(1))])
    ids = {ENCODER.encode(batch, sequence=1, dropped={}, now=NOW_TEXT).batch_id for _ in range(20)}
    assert len(ids) == 20


def test_per_source_batch_names_its_source() -> None:
    entries = [pending(samples.entry(n, source="payments-api")) for n in range(3)]
    encoded = ENCODER.encode(batch_of(entries, "payments-api"), sequence=1, dropped={}, now=NOW_TEXT)
    parsed = LogBatchCreated.parse_json(json.dumps(json.loads(encoded.body)["data"]))
    assert parsed.source == "payments-api"


def test_entries_are_spliced_byte_for_byte() -> None:
    # Spacing, key order and \u escapes that orjson would never write: a re-serialisation would change them.
    odd = [
        json.dumps(samples.entry(0, message='caf\u00e9 \u2603 "quoted"'), indent=None, ensure_ascii=True),
        json.dumps(samples.entry(1), separators=(" , ", " : "), sort_keys=True),
        json.dumps(samples.entry(2, metadata={"n": 1.50, "nested": {"z": [1, 2]}}), indent=2),
    ]
    raws = [text.encode() for text in odd]
    entries = [pending(json.loads(raw), raw) for raw in raws]
    encoded = ENCODER.encode(batch_of(entries), sequence=1, dropped={}, now=NOW_TEXT)
    assert b",".join(raws) in encoded.body
    for raw in raws:
        assert raw in encoded.body
    assert encoded.body.endswith(b",".join(raws) + b"]}}")
    parsed = LogBatchCreated.parse_json(json.dumps(json.loads(encoded.body)["data"]))
    assert [e.to_data() for e in parsed.entries] == [json.loads(raw) for raw in raws]


def test_created_span_is_min_and_max_even_out_of_order() -> None:
    texts = [
        "2025-10-13T08:00:05.000Z",
        "2025-10-13T07:59:59.999Z",
        "2025-10-13T08:00:09.500+00:00",
        "2025-10-13T10:00:00.000+02:00",  # 08:00:00 UTC: neither end
        "2025-10-13T08:00:01Z",
        "2025-10-13T09:00:10.25+01:00",  # 08:00:10.25 UTC: the last
        "2025-10-13T08:00:00.000Z",
    ]
    entries = [pending(samples.entry(n, createdAt=text)) for n, text in enumerate(texts)]
    encoded = ENCODER.encode(batch_of(entries), sequence=1, dropped={}, now=NOW_TEXT)
    data = json.loads(encoded.body)["data"]
    assert data["firstCreatedAt"] == "2025-10-13T07:59:59.999Z"
    assert data["lastCreatedAt"] == "2025-10-13T09:00:10.25+01:00"
    LogBatchCreated.parse_json(json.dumps(data))


@settings(max_examples=100, deadline=None)
@given(seconds=st.lists(st.integers(0, 86_399), min_size=1, max_size=30))
def test_created_span_property(seconds: list[int]) -> None:
    # Equal times written two ways: the first of equals is the one reported.
    forms = (".000Z", "Z", "+00:00")
    texts = [
        f"2025-10-13T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{forms[n % 3]}"
        for n, s in enumerate(seconds)
    ]
    entries = [pending(samples.entry(n, createdAt=text)) for n, text in enumerate(texts)]
    data = json.loads(ENCODER.encode(batch_of(entries), sequence=1, dropped={}, now=NOW_TEXT).body)["data"]
    assert data["firstCreatedAt"] == texts[seconds.index(min(seconds))]
    assert data["lastCreatedAt"] == texts[seconds.index(max(seconds))]


def test_level_counts_and_drop_report() -> None:
    entries = [pending(samples.entry(n)) for n in (0, 3, 4, 8, 13, 14, 19)]  # debug, error x3, fatal x3
    dropped = {"overflow_oldest": 3, "publish_failed": 40, "shutdown": 0}
    encoded = ENCODER.encode(batch_of(entries), sequence=2, dropped=dropped, now=NOW_TEXT)
    data = json.loads(encoded.body)["data"]
    assert data["levelCounts"] == {"debug": 1, "error": 3, "fatal": 3}
    assert data["droppedByReason"] == dropped
    assert data["droppedSinceLast"] == 43 == sum(data["droppedByReason"].values())
    assert encoded.dropped == dropped
    parsed = LogBatchCreated.parse_json(json.dumps(data))
    assert parsed.droppedSinceLast == 43


def test_no_drops_reports_zero() -> None:
    encoded = ENCODER.encode(batch_of([pending(samples.entry(1))]), sequence=1, dropped={}, now=NOW_TEXT)
    data = json.loads(encoded.body)["data"]
    assert data["droppedSinceLast"] == 0
    assert data["droppedByReason"] == {}


# -- sizes -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"), min_size=1),
        st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=40),
        max_size=5,
    )
)
def test_header_size_matches_the_nats_encoding(headers: dict[str, str]) -> None:
    assert header_size(headers) == len(nats_headers(headers))


def test_encoded_size_counts_headers_and_body() -> None:
    encoded = ENCODER.encode(batch_of([pending(samples.entry(1))]), sequence=1, dropped={}, now=NOW_TEXT)
    assert encoded.size == len(nats_headers(encoded.headers)) + len(encoded.body)


@settings(max_examples=150, deadline=None)
@given(
    max_entries=st.sampled_from([1, 9, 10, 99, 100, 500, 999, 1000, 12_345]),
    count=st.integers(1, 30),
    source=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    sequence=st.one_of(st.integers(1, 10), st.just(2**63 - 1)),
    # Up to 10**18 each, so their sum (droppedSinceLast) stays within the 19 digits of a 64-bit count.
    dropped=st.dictionaries(st.sampled_from([str(r) for r in DropReason]), st.integers(0, 10**18)),
    stamps=st.lists(
        st.sampled_from(
            [
                "2025-10-13T08:00:00.123456789+00:00",
                "2025-10-13t08:00:00.123456789-11:30",
                "2025-10-13T08:00:00Z",
                "2025-10-13T08:00:00.000Z",
            ]
        ),
        min_size=1,
    ),
)
def test_encoded_batch_stays_within_the_overhead_bound(
    *,
    max_entries: int,
    count: int,
    source: str | None,
    sequence: int,
    dropped: dict[str, int],
    stamps: list[str],
) -> None:
    """overhead_for(source) + entry bytes + commas bounds the message, whatever the counts and times."""
    count = min(count, max_entries)
    enc = BatchEncoder(gateway_id='gw-\u00e9"x"', ce_source="//log-gateway/\u2603", max_entries=max_entries)
    entries = [
        pending(samples.entry(n, createdAt=stamps[n % len(stamps)], **({"source": source} if source else {})))
        for n in range(count)
    ]
    overhead = enc.overhead_for(source)
    batch = batch_of(entries, source, overhead)
    encoded = enc.encode(batch, sequence=sequence, dropped=dropped, now=NOW_TEXT)
    bound = overhead + batch.data_bytes + count - 1
    assert encoded.size <= bound
    assert batch.size_with(0) - 1 == bound
    data = json.loads(encoded.body)["data"]
    assert data["count"] == count
    assert data.get("source") == source


@pytest.mark.parametrize("max_entries", [9, 99, 999])
def test_overhead_bound_is_tight_for_the_worst_case(max_entries: int) -> None:
    """The bound is reached when every variable field has its widest value, so it wastes nothing."""
    enc = BatchEncoder(gateway_id="gw", ce_source="//gw", max_entries=max_entries)
    stamp = "2025-10-13T08:00:00.123456789+00:00"
    # A full batch: its count as wide as max_entries allows, every timestamp the widest.
    entries = [pending(samples.entry(n, createdAt=stamp, level="info")) for n in range(max_entries)]
    # 19 digits each, and in total (within 64 bits): with ten reasons one must be a digit short.
    dropped = {str(r): 10**18 for r in DropReason}
    dropped[str(DropReason.INGEST_FAILED)] = 10**17
    assert len(str(sum(dropped.values()))) == len(str(2**63 - 1)) == 19
    batch = batch_of(entries)
    encoded = enc.encode(batch, sequence=2**63 - 1, dropped=dropped, now=NOW_TEXT)
    bound = enc.overhead_for(None) + batch.data_bytes + len(entries) - 1
    # Only levelCounts is narrower than the worst case: one level instead of all five at full count.
    worst_levels = orjson.dumps(dict.fromkeys(["debug", "info", "warn", "error", "fatal"], max_entries))
    short = len(DropReason) * 19 - sum(len(str(n)) for n in dropped.values())
    assert bound - encoded.size == len(worst_levels) - len(orjson.dumps({"info": max_entries})) + short


def test_overhead_for_grows_with_the_source_name() -> None:
    assert ENCODER.overhead_for("ab") - ENCODER.overhead_for("a") == 1
    assert ENCODER.overhead_for("a") > ENCODER.overhead_for(None)
    quoted = ENCODER.overhead_for('"') - ENCODER.overhead_for("a")
    assert quoted == 1  # the escaped quote takes two bytes


def test_custom_id_maker() -> None:
    enc = BatchEncoder(gateway_id="gw", ce_source="//gw", max_entries=10, new_id=counting_ids())
    batch = batch_of([pending(samples.entry(1))])
    first = enc.encode(batch, sequence=1, dropped={}, now=NOW_TEXT)
    second = enc.encode(batch, sequence=2, dropped={}, now=NOW_TEXT)
    # The constructor drew one id to learn their length.
    assert first.batch_id == "batch-" + "1".rjust(30, "0")
    assert second.batch_id == "batch-" + "2".rjust(30, "0")
    assert first.size <= enc.overhead_for(None) + batch.data_bytes


# -- stats -------------------------------------------------------------------------


def test_drops_are_reported_once_and_can_be_put_back() -> None:
    stats = Stats()
    stats.drop(DropReason.OVERFLOW_OLDEST)
    stats.drop("publish_failed", 5)
    stats.drop("shutdown", 0)
    assert stats.take_unreported() == {"overflow_oldest": 1, "publish_failed": 5}
    assert stats.take_unreported() == {}
    stats.drop("publish_failed", 2)
    stats.restore_unreported({"overflow_oldest": 1, "publish_failed": 5})
    assert stats.take_unreported() == {"overflow_oldest": 1, "publish_failed": 7}
    assert stats.dropped == {"overflow_oldest": 1, "publish_failed": 7}
    assert stats.total_dropped == 8
    assert "shutdown" not in stats.dropped


def test_rejections_are_counted_by_reason() -> None:
    stats = Stats()
    stats.reject("oversize")
    stats.reject("oversize")
    stats.reject("invalid_entry")
    assert stats.rejected == {"oversize": 2, "invalid_entry": 1}
    assert stats.total_rejected == 3


def test_histogram_observe_is_cumulative() -> None:
    hist = LatencyHistogram(buckets=(0.1, 1.0, 10.0))
    for value in (0.05, 0.1, 0.5, 2.0, 50.0):
        hist.observe(value)
    assert hist.counts == [2, 3, 4]
    assert hist.count == 5
    assert hist.total == pytest.approx(52.65)


def test_histogram_quantile() -> None:
    hist = LatencyHistogram(buckets=(0.1, 1.0, 10.0))
    assert hist.quantile(0.5) == math.inf
    for value in (0.05, 0.05, 0.5, 5.0):
        hist.observe(value)
    assert hist.quantile(0.0) == 0.1
    assert hist.quantile(0.5) == 0.1
    assert hist.quantile(0.51) == 1.0
    assert hist.quantile(0.75) == 1.0
    assert hist.quantile(0.99) == 10.0
    assert hist.quantile(1.0) == 10.0
    hist.observe(100.0)  # beyond every bucket
    assert hist.quantile(1.0) == math.inf


def test_observe_batch_at_the_bucket_bounds() -> None:
    hist = LatencyHistogram(buckets=(0.25, 0.5, 1.0))
    one_by_one = LatencyHistogram(buckets=(0.25, 0.5, 1.0))
    received = [0.0, 0.5, 0.75, 1.0, 1.25]
    hist.observe_batch(received, 1.25)  # latencies 1.25, 0.75, 0.5, 0.25, 0: three exactly on a bound
    for r in received:
        one_by_one.observe(1.25 - r)
    assert hist.counts == one_by_one.counts == [2, 3, 4]
    assert hist.count == 5
    assert hist.total == one_by_one.total == 2.75


DYADIC_BUCKETS = (1 / 256, 1 / 64, 1 / 16, 0.25, 0.5, 1.0, 4.0, 16.0, 64.0)


@settings(max_examples=200, deadline=None)
@given(
    received=st.lists(st.integers(0, 100_000), max_size=40).map(sorted),
    later=st.one_of(st.integers(0, 100_000), st.sampled_from([0, 4, 16, 64, 256, 512, 1024, 4096])),
    base=st.sampled_from([0.0, 1024.0, 2.0**20]),
)
def test_observe_batch_equals_observing_each(received: list[int], later: int, base: float) -> None:
    """Times in 1/1024 s steps and power-of-two bounds make every subtraction exact (ties included),
    so the bisection must agree with observing each latency, entry by entry."""
    times = [base + r / 1024 for r in received]
    done_at = base + (max(received, default=0) + later) / 1024
    batch = LatencyHistogram(buckets=DYADIC_BUCKETS)
    each = LatencyHistogram(buckets=DYADIC_BUCKETS)
    batch.observe_batch(times, done_at)
    for t in times:
        each.observe(done_at - t)
    assert batch.counts == each.counts
    assert batch.count == each.count == len(times)
    assert batch.total == each.total
    for q in (0.0, 0.5, 0.9, 1.0):
        assert batch.quantile(q) == each.quantile(q)


@settings(max_examples=200, deadline=None)
@given(
    received=st.lists(st.floats(0.0, 120.0), max_size=40).map(sorted),
    later=st.floats(0.0, 90.0),
    base=st.floats(0.0, 1e6),
)
def test_observe_batch_with_the_default_buckets(received: list[float], later: float, base: float) -> None:
    """With arbitrary clock readings the two agree except where a latency is a rounding error from a bound."""
    times = [base + r for r in received]
    done_at = base + max(received, default=0.0) + later
    batch = LatencyHistogram()
    each = LatencyHistogram()
    batch.observe_batch(times, done_at)
    for t in times:
        each.observe(done_at - t)
    for bound, got, want in zip(batch.buckets, batch.counts, each.counts, strict=True):
        near = sum(1 for t in times if abs((done_at - t) - bound) <= 1e-12 * max(1.0, done_at))
        assert abs(got - want) <= near
    assert batch.count == each.count == len(times)
    assert batch.total == pytest.approx(each.total, rel=1e-9, abs=1e-6)
