"""The token bucket that paces publishing: unlimited, debt, refill cap, long-run rate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publishers import TokenBucket


def test_unlimited_never_waits() -> None:
    bucket = TokenBucket(None)
    assert bucket.rate is None
    for now in (0.0, 1.0, 1e9):
        assert bucket.wait_s(now) == 0.0
        assert bucket.wait_s(now, 1e18) == 0.0
        bucket.spend(now, 1e18)
    assert bucket.wait_s(-5.0, math.inf) == 0.0


def test_starts_full_with_one_second_of_burst_by_default() -> None:
    bucket = TokenBucket(10.0, now=3.0)
    assert bucket.burst == 10.0
    assert bucket.wait_s(3.0, 10.0) == 0.0
    assert bucket.wait_s(3.0, 12.0) == pytest.approx(0.2)


def test_explicit_burst() -> None:
    bucket = TokenBucket(4.0, burst=1.0)
    assert bucket.burst == 1.0
    assert bucket.wait_s(0.0, 1.0) == 0.0
    assert bucket.wait_s(0.0, 2.0) == 0.25


def test_debt_delays_by_exactly_the_shortfall_over_the_rate() -> None:
    bucket = TokenBucket(4.0, burst=8.0, now=0.0)
    bucket.spend(0.0, 10.0)  # a large batch is sent whole: the balance goes to -2
    assert bucket.wait_s(0.0) == 0.5  # 2 tokens short at 4 per second
    assert bucket.wait_s(0.0, 2.0) == 1.0  # (2 - -2) / 4
    assert bucket.wait_s(0.25) == 0.25
    assert bucket.wait_s(0.5) == 0.0
    assert bucket.wait_s(0.5, 1.0) == 0.25
    bucket.spend(0.5, 3.0)  # balance 0 - 3
    assert bucket.wait_s(0.5) == 0.75


def test_spending_within_the_balance_needs_no_wait() -> None:
    bucket = TokenBucket(2.0, burst=6.0)
    bucket.spend(0.0, 5.0)
    assert bucket.wait_s(0.0) == 0.0
    assert bucket.wait_s(0.0, 1.0) == 0.0
    assert bucket.wait_s(0.0, 1.5) == 0.25


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(2.0, burst=5.0, now=0.0)
    bucket.spend(0.0, 5.0)
    assert bucket.wait_s(0.0, 5.0) == 2.5
    # Long idle: the balance is full but no fuller.
    assert bucket.wait_s(1000.0, 5.0) == 0.0
    assert bucket.wait_s(1000.0, 6.0) == 0.5
    bucket.spend(1000.0, 6.0)
    assert bucket.wait_s(1000.0) == 0.5


def test_time_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(1.0, burst=1.0, now=10.0)
    bucket.spend(10.0, 1.0)
    assert bucket.wait_s(5.0, 1.0) == 1.0
    assert bucket.wait_s(10.5, 1.0) == 0.5  # refilled from 10.0, not from 5.0
    bucket.spend(9.0, 0.5)  # late reading: spends, refills nothing
    assert bucket.wait_s(10.5, 1.0) == 1.0


@pytest.mark.parametrize("rate", [0.0, -0.0, -1.0, -1e-9, -math.inf])
def test_rejects_non_positive_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate)


def test_rejects_nan_rate() -> None:
    """NaN is not a positive rate; accepted, every wait is NaN (and ``wait <= 0`` never holds)."""
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(math.nan)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1e6),
    burst_s=st.floats(0.1, 5.0),
    sends=st.lists(
        st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 2.0), st.floats(0.0, 10.0)), min_size=1, max_size=50
    ),
)
def test_a_sender_that_waits_keeps_the_long_run_rate(
    rate: float, burst_s: float, sends: list[tuple[float, float, float]]
) -> None:
    """A sender that waits ``wait_s`` before each send never gets ahead of ``burst + rate * elapsed``,
    and waiting exactly ``wait_s`` is enough.

    Each send is (idle seconds, tokens it needs first, tokens it spends), the amounts in seconds of rate.
    """
    burst = burst_s * rate
    start = 12.5
    bucket = TokenBucket(rate, burst=burst, now=start)
    now = start
    spent = 0.0
    for idle, need_s, amount_s in sends:
        need = min(need_s * rate, burst)
        now += idle
        wait = bucket.wait_s(now, need)
        assert wait >= 0.0
        now += wait
        assert bucket.wait_s(now, need) <= 1e-9 * max(1.0, now)
        # Before this send, everything spent so far fits the allowance.
        allowance = burst + rate * (now - start)
        assert spent + need <= allowance * (1 + 1e-9) + 1e-6
        amount = amount_s * rate
        bucket.spend(now, amount)
        spent += amount


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0.5, 1e6), debt_s=st.floats(0.0, 100.0), need_s=st.floats(0.0, 1.0))
def test_wait_is_shortfall_over_rate(rate: float, debt_s: float, need_s: float) -> None:
    bucket = TokenBucket(rate, now=0.0)  # burst = rate: full with one second's worth
    bucket.spend(0.0, rate + debt_s * rate)  # balance -debt
    need = need_s * rate
    assert bucket.wait_s(0.0, need) == pytest.approx((need + debt_s * rate) / rate, rel=1e-9, abs=1e-12)
