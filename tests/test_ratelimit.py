"""The token bucket that paces publishing: unlimited, debt, refill cap, long-run rate, and the
sliding-window bound (``burst + rate * W`` plus the last spend; the pacer: ``rate * W`` plus the last)."""

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
    bucket.spend(3.0, 12.0)
    assert bucket.wait_s(3.0) == pytest.approx(0.2)


def test_explicit_burst() -> None:
    bucket = TokenBucket(4.0, burst=1.0)
    assert bucket.burst == 1.0
    assert bucket.wait_s(0.0, 1.0) == 0.0
    bucket.spend(0.0, 1.0)
    assert bucket.wait_s(0.0, 1.0) == 0.25


@pytest.mark.parametrize("burst", [1.0, 0.0])
def test_a_need_above_the_burst_is_refused_not_waited_for_forever(burst: float) -> None:
    """The balance never rises above ``burst``: any wait offered for more would be a lie."""
    bucket = TokenBucket(4.0, burst=burst)
    with pytest.raises(ValueError, match="can never be met"):
        bucket.wait_s(0.0, burst + 1.0)
    assert TokenBucket(None, burst=burst).wait_s(0.0, burst + 1.0) == 0.0  # unlimited: no need too big


@pytest.mark.parametrize("burst", [-1.0, -1e-9, math.nan])
def test_rejects_a_negative_burst(burst: float) -> None:
    with pytest.raises(ValueError, match="burst must not be negative"):
        TokenBucket(1.0, burst=burst)


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
    with pytest.raises(ValueError, match="can never be met"):
        bucket.wait_s(1000.0, 6.0)
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


# -- the pacer and the sliding-window bound -------------------------------------------------------


def test_pacer_starts_empty_and_spends_into_debt() -> None:
    bucket = TokenBucket.pacer(100.0, now=5.0)
    assert bucket.burst == 0.0
    assert bucket.wait_s(5.0) == 0.0  # the first batch goes at once ...
    bucket.spend(5.0, 50.0)
    assert bucket.wait_s(5.0) == 0.5  # ... and the next waits until it is paid for
    assert bucket.wait_s(5.25) == 0.25
    assert bucket.wait_s(5.5) == 0.0


def test_pacer_saves_nothing_while_idle_or_stalled() -> None:
    bucket = TokenBucket.pacer(100.0, now=0.0)
    bucket.spend(0.0, 100.0)
    assert bucket.wait_s(1000.0) == 0.0  # an hour of stall: paid off, nothing saved
    bucket.spend(1000.0, 100.0)
    assert bucket.wait_s(1000.0) == 1.0  # so a second batch at once must wait its full turn


def test_pacer_back_to_back_keeps_the_rate_exactly() -> None:
    bucket = TokenBucket.pacer(4.0, now=0.0)
    now, times = 0.0, []
    for _ in range(9):
        now += bucket.wait_s(now)
        times.append(now)
        bucket.spend(now, 1.0)
    assert times == pytest.approx([i * 0.25 for i in range(9)])


def test_unlimited_pacer_never_waits() -> None:
    bucket = TokenBucket.pacer(None)
    bucket.spend(0.0, 1e18)
    assert bucket.wait_s(0.0) == 0.0


def paced_sends(
    bucket: TokenBucket, rate: float, sends: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Send as a sender does: idle, wait ``wait_s``, spend. Each send is (idle s, amount in s of rate)."""
    now, out = 0.0, []
    for idle, amount_s in sends:
        now += idle
        now += bucket.wait_s(now)
        amount = amount_s * rate
        bucket.spend(now, amount)
        out.append((now, amount))
    return out


def worst_excess(sent: list[tuple[float, float]], rate: float, window_s: float) -> float:
    """Over every closed window of ``window_s``: most spent beyond ``rate * window_s`` + its last spend."""
    worst = -math.inf
    for i, (start, _) in enumerate(sent):
        inside = [amount for at, amount in sent[i:] if at - start <= window_s]
        worst = max(worst, sum(inside) - inside[-1] - rate * window_s)
    return worst


SENDS = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(0.0, 0.5), st.floats(1.0, 100.0)),  # back to back, a pause, a stall
        st.floats(0.0, 2.0),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.5, 1e6), window_s=st.floats(0.05, 5.0), sends=SENDS)
def test_pacer_never_exceeds_rate_times_window_plus_the_last_spend(
    rate: float, window_s: float, sends: list[tuple[float, float]]
) -> None:
    """In ANY sliding window, at the start, in steady flow and after stalls: <= rate * W + one spend."""
    sent = paced_sends(TokenBucket.pacer(rate, now=0.0), rate, sends)
    total = sum(amount for _, amount in sent)
    assert worst_excess(sent, rate, window_s) <= 1e-9 * max(1.0, total)


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.5, 1e6), window_s=st.floats(0.05, 5.0), sends=SENDS)
def test_unit_spends_allow_rate_times_window_plus_one(
    rate: float, window_s: float, sends: list[tuple[float, float]]
) -> None:
    """The batch count: at most ``rate * W + 1`` batches in any window."""
    bucket = TokenBucket.pacer(rate, now=0.0)
    sent = paced_sends(bucket, 1.0, [(idle, 1.0) for idle, _ in sends])
    for start, _ in sent:
        count = sum(1 for at, _ in sent if start <= at <= start + window_s)
        assert count <= rate * window_s * (1 + 1e-9) + 1 + 1e-9


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.5, 1e6), burst_s=st.floats(0.0, 3.0), window_s=st.floats(0.05, 5.0), sends=SENDS)
def test_a_bucket_allows_its_burst_more_and_a_full_one_uses_it(
    rate: float, burst_s: float, window_s: float, sends: list[tuple[float, float]]
) -> None:
    """The general bound: ``burst + rate * W`` + the last spend; a bucket that starts full reaches past
    ``rate * W`` + one spend, which is why the sender's buckets are pacers."""
    burst = burst_s * rate
    sent = paced_sends(TokenBucket(rate, burst=burst, now=0.0), rate, sends)
    total = sum(amount for _, amount in sent)
    assert worst_excess(sent, rate, window_s) <= burst + 1e-9 * max(1.0, total + burst)


def test_a_full_bucket_overspends_the_first_window() -> None:
    """What the issue measured: starting full with a second's savings, three batches go at once."""
    sent = paced_sends(TokenBucket(300_000.0, now=0.0), 1.0, [(0.0, 137_000.0)] * 6)
    assert [at for at, _ in sent[:3]] == [0.0, 0.0, 0.0]
    assert worst_excess(sent, 300_000.0, 1.0) > 0
    paced = paced_sends(TokenBucket.pacer(300_000.0), 1.0, [(0.0, 137_000.0)] * 6)
    assert worst_excess(paced, 300_000.0, 1.0) <= 0
