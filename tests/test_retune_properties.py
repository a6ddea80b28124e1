"""Live changes of the pure core: limits changed at any moment between offers and takes.

Every batch is made under one set of entry and byte limits (its entries were all
accepted under them) and stays within them; every entry comes out once.
"""

from __future__ import annotations

import dataclasses

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import LogBatchCreated
from gateway.core import BatchEncoder, BatchLimits, BufferLimits, Stats
from gateway.core.encode import header_size
from gateway.core.pipeline import BatchPipeline, ReadyBatch
from gateway.ingest.decode import EntryDecoder
from publishers.ratelimit import TokenBucket
from tests import samples

limits_st = st.builds(
    BatchLimits,
    max_entries=st.integers(1, 12),
    max_bytes=st.integers(2048, 6000),
    max_delay_ms=st.integers(1, 5),
    per_source=st.booleans(),
    max_open_sources=st.integers(1, 3),
)
steps = st.lists(
    st.one_of(st.just("offer"), st.just("take"), limits_st),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(limits_st, steps)
def test_each_batch_is_made_under_one_set_of_limits_and_every_entry_comes_out_once(
    first: BatchLimits, plan: list[str | BatchLimits]
) -> None:
    buffer = BufferLimits(max_entries=10_000, max_bytes=10**8)
    encoder = BatchEncoder(gateway_id="gw-retune", ce_source="//retune", max_entries=first.max_entries)
    pipeline = BatchPipeline(first, buffer, encoder, Stats())
    decoder = EntryDecoder(max_batch_bytes=2048, clock=lambda: 0.0)
    versions: list[BatchLimits] = [first]
    made_under: dict[int, int] = {}
    out: list[ReadyBatch] = []
    now = 0.0
    for i, step in enumerate(plan):
        now += 0.001
        if isinstance(step, BatchLimits):
            pipeline.retune(step, buffer)
            if dataclasses.replace(step, max_delay_ms=versions[-1].max_delay_ms) != versions[-1]:
                versions.append(step)  # (a new delay alone applies to the open batches too)
        elif step == "offer":
            entry = decoder.decode(None, orjson.dumps(samples.entry(i, source=f"s{i % 3}")))
            pipeline.offer(entry)
            made_under[i] = len(versions) - 1
        else:
            out += _take_all(pipeline, now)
    pipeline.acc.seal_all()
    out += _take_all(pipeline, 1e9)
    ids: list[int] = []
    for ready in out:
        batch = LogBatchCreated.parse(orjson.loads(ready.encoded.body)["data"])
        batch_ids = [int(entry.logId.removeprefix("log-")) for entry in batch.entries]
        under = {made_under[i] for i in batch_ids}
        assert len(under) == 1, "a batch mixes entries accepted under different limits"
        limits = versions[under.pop()]
        assert batch.count <= limits.max_entries
        assert header_size(ready.encoded.headers) + len(ready.encoded.body) <= limits.max_bytes
        ids += batch_ids
    assert sorted(ids) == sorted(made_under)
    assert len(ids) == len(set(ids))
    assert pipeline.acc.held_entries == 0


def _take_all(pipeline: BatchPipeline, now: float) -> list[ReadyBatch]:
    taken = []
    while (ready := pipeline.take(now, "2025-10-13T08:00:00.000Z")) is not None:
        pipeline.settle(ready, kept=True)
        taken.append(ready)
    return taken


@given(st.floats(0.5, 50), st.floats(0.5, 50), st.integers(1, 20))
def test_a_new_rate_keeps_what_is_owed(old: float, new: float, spent: int) -> None:
    bucket = TokenBucket.pacer(old, now=0.0)
    bucket.spend(0.0, float(spent))
    owed_s = bucket.wait_s(0.0)
    bucket.set_rate(new, 0.0)
    # The debt is the same, paid back at the new rate: no burst, no debt forgiven.
    assert abs(bucket.wait_s(0.0) - owed_s * old / new) < 1e-6
    bucket.set_rate(None, 0.0)
    assert bucket.wait_s(0.0) == 0.0
    bucket.set_rate(new, 1.0)
    assert bucket.wait_s(1.0) == 0.0  # from unlimited: nothing owed, nothing saved
    bucket.spend(1.0, 1.0)
    assert bucket.wait_s(1.0) > 0
