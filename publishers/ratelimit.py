"""A token bucket that may go into debt, with time passed in (no clock of its own)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Limits a rate over time; ``None`` means unlimited.

    Spending may take the balance below zero (a large batch is sent whole);
    the debt then delays the next send, so the long-run rate holds.

    Args:
        rate_per_s: tokens added per second.
        burst: most tokens that can be saved up (defaults to one second's worth).
        now: the current time, in seconds.
    """

    def __init__(self, rate_per_s: float | None, *, burst: float | None = None, now: float = 0.0) -> None:
        if rate_per_s is not None and not rate_per_s > 0:  # NaN too
            raise ValueError(f"rate must be positive, got {rate_per_s}")
        self.rate = rate_per_s
        self.burst = burst if burst is not None else (rate_per_s or 0.0)
        self._tokens = self.burst
        self._at = now

    def _refill(self, now: float) -> None:
        if self.rate is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def wait_s(self, now: float, need: float = 0.0) -> float:
        """Seconds until the balance covers ``need`` (0 when it already does)."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        short = need - self._tokens
        return 0.0 if short <= 0 else short / self.rate

    def spend(self, now: float, amount: float) -> None:
        """Take ``amount`` tokens, going into debt if needed."""
        if self.rate is not None:
            self._refill(now)
            self._tokens -= amount
