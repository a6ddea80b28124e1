"""The accumulator wakes its taker exactly when it must: no batch becomes due sooner unseen.

The taker (the sender) sleeps until ``next_due()``; an offer that makes a batch due sooner
than that (one sealed, or the first opened) must call ``on_ready``, and offers into an
open batch that only fill it need not (the common case, on the hot path).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import Accumulator, Admission, BatchLimits, BufferLimits, OverflowPolicy, Stats
from tests.test_core_accumulator import encoder, sized

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["offer"] * 6 + ["take", "release"]),
        st.integers(300, 900),  # entry size
        st.sampled_from(["a", "b", "c"]),  # source
        st.floats(0, 0.05),  # time step
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    OPERATIONS,
    st.booleans(),
    st.integers(1, 6),
    st.sampled_from(list(OverflowPolicy)),
    st.integers(3, 12),
)
def test_an_offer_that_makes_a_batch_due_sooner_wakes_the_taker(
    operations: list[tuple[str, int, str, float]],
    per_source: bool,
    max_entries: int,
    overflow: OverflowPolicy,
    buffered: int,
) -> None:
    limits = BatchLimits(max_entries=max_entries, max_bytes=4096, per_source=per_source, max_open_sources=2)
    woken: list[int] = []
    acc = Accumulator(
        limits,
        BufferLimits(max_entries=buffered, overflow=overflow),
        encoder(max_entries).overhead_for,
        Stats(),
        on_ready=lambda: woken.append(1),
    )
    now, taken, n = 0.0, [], 0
    for operation, size, source, step in operations:
        now += step
        if operation == "take":
            if (batch := acc.take(now)) is not None:
                taken.append(batch)
            continue
        if operation == "release":
            if taken:
                acc.release(taken.pop(0))
            continue
        n += 1
        due_before = acc.next_due()
        woken.clear()
        admission = acc.offer(sized(n, size, now, source=source))
        due_after = acc.next_due()
        sooner = due_after is not None and due_after < (math.inf if due_before is None else due_before)
        if sooner:
            assert woken, (admission, due_before, due_after)


def test_filling_an_open_batch_wakes_no_one_until_it_is_sealed() -> None:
    woken: list[int] = []
    limits = BatchLimits(max_entries=5)
    acc = Accumulator(
        limits, BufferLimits(), encoder(5).overhead_for, Stats(), on_ready=lambda: woken.append(1)
    )
    calls = []
    for n in range(10):
        assert acc.offer(sized(n, 400)) is Admission.ACCEPTED
        calls.append(len(woken))
    # Woken when the first batch opened, when it was sealed (the second opens then too), when
    # the second was sealed; not for the entries between.
    assert calls == [1, 1, 1, 1, 2, 3, 3, 3, 3, 4]
