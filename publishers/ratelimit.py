"""A token bucket that may go into debt, with time passed in (no clock of its own).

The bound it gives: a sender that spends only when :meth:`TokenBucket.wait_s`
says 0 spends, in any closed window of ``W`` seconds, at most
``burst + rate * W`` plus the last spend in the window. (Just before the first
spend in the window the balance is at most ``burst``; the window adds at most
``rate * W``; every spend but the last leaves a balance the last one still
found covering its need, at least 0.) A budget that must hold in every window
("``rate * W`` plus one batch") therefore needs ``burst == 0``: see
:meth:`TokenBucket.pacer`.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Limits a rate over time; ``None`` means unlimited.

    Spending may take the balance below zero (a large batch is sent whole);
    the debt then delays the next send, so the long-run rate holds. The
    balance never rises above ``burst``, however long nothing is spent.

    Args:
        rate_per_s: tokens added per second.
        burst: most tokens that can be saved up (defaults to one second's worth);
            the bucket starts with this many.
        now: the current time, in seconds.
    """

    def __init__(self, rate_per_s: float | None, *, burst: float | None = None, now: float = 0.0) -> None:
        if rate_per_s is not None and not rate_per_s > 0:  # NaN too
            raise ValueError(f"rate must be positive, got {rate_per_s}")
        if burst is not None and not burst >= 0:  # NaN too
            raise ValueError(f"burst must not be negative, got {burst}")
        self.rate = rate_per_s
        self.burst = burst if burst is not None else (rate_per_s or 0.0)
        self._tokens = self.burst
        self._at = now

    @classmethod
    def pacer(cls, rate_per_s: float | None, *, now: float = 0.0) -> TokenBucket:
        """A bucket that saves nothing: it starts empty, idle time adds nothing, each spend is debt.

        Spent only when :meth:`wait_s` (with no ``need``) says 0, it allows in
        any window of ``W`` seconds at most ``rate * W`` plus the last spend:
        the same at the start, in steady flow and after any stall.
        """
        return cls(rate_per_s, burst=0.0, now=now)

    def _refill(self, now: float) -> None:
        if self.rate is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def wait_s(self, now: float, need: float = 0.0) -> float:
        """Seconds until the balance covers ``need`` (0 when it already does).

        Raises:
            ValueError: ``need`` is more than the bucket can ever hold.
        """
        if self.rate is None:
            return 0.0
        if need > self.burst:
            raise ValueError(f"a need of {need} can never be met by a burst of {self.burst}")
        self._refill(now)
        short = need - self._tokens
        return 0.0 if short <= 0 else short / self.rate

    def spend(self, now: float, amount: float) -> None:
        """Take ``amount`` tokens, going into debt if needed."""
        if self.rate is not None:
            self._refill(now)
            self._tokens -= amount

    def set_rate(self, rate_per_s: float | None, now: float) -> None:
        """Change the rate from ``now`` on, keeping what is owed (a debt still delays the next spend).

        The balance up to ``now`` is settled at the old rate; a pacer (``burst == 0``) stays a pacer.

        Raises:
            ValueError: the rate is not positive.
        """
        if rate_per_s is not None and not rate_per_s > 0:  # NaN too
            raise ValueError(f"rate must be positive, got {rate_per_s}")
        self._refill(now)
        if self.rate is None:
            self._tokens = self.burst  # an unlimited bucket owed nothing
        self.rate = rate_per_s
        self._tokens = min(self._tokens, self.burst)
