"""Rate-limited log lines say how many like them were held back."""

from __future__ import annotations

import logging

import pytest

from gateway.logs import RateLimitedLog


def test_a_held_back_line_is_counted_in_the_next_one(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warn = RateLimitedLog(logging.getLogger("log_gateway.test"), interval_s=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="log_gateway.test"):
        for _ in range(7):
            warn.warning("reject:invalid_entry", "rejected a message: %s", "bad level")
            now[0] += 0.5
        now[0] = 6.0
        warn.warning("reject:invalid_entry", "rejected a message: %s", "bad level")
    assert [r.getMessage() for r in caplog.records] == [
        "rejected a message: bad level",
        "rejected a message: bad level (and 6 more invalid_entry in 5 s)",
    ]
