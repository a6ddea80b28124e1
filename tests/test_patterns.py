"""Error-pattern detection (pure core): signatures, thresholds, cooldown, severity, memory."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.patterns import _MASKS, Alert, PatternDetector, PatternLimits, severity_for, signature


def observe(
    det: PatternDetector, message: str, now: float, *, source: str = "svc", fatal: bool = False
) -> Alert | None:
    created = f"2025-10-13T08:{int(now) // 60 % 60:02d}:{int(now) % 60:02d}.000Z"
    return det.observe(source=source, message=message, fatal=fatal, created=created, created_at=now, now=now)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("timeout after 1532ms to 10.0.0.7", "timeout after 20ms to 10.0.0.9"),
        (
            "user 5f0c7a3e-1b2c-4d5e-8f90-123456789abc not found",
            "user 0e0c7a3e-1b2c-4d5e-8f90-aaaaaaaaaaaa not found",
        ),
        ("cannot open /var/lib/app/a.db", "cannot open /srv/data/b.db"),
        ('bad value "abc" for key', 'bad value "something else" for key'),
        ("hash deadbeef01 mismatch", "hash 0123abcdef mismatch"),
        ("GET https://api.example.com/v1/users?id=5 failed", "GET https://other.example.org/x failed"),
    ],
)
def test_variable_parts_are_masked(a: str, b: str) -> None:
    assert signature(a) == signature(b)


def test_different_errors_stay_different() -> None:
    assert signature("timeout after 5ms") != signature("connection refused")
    assert signature("timeout after 1532ms to 10.0.0.7") == "timeout after <num>ms to <ip>"


def test_a_storm_alerts_once_then_stays_quiet_within_the_cooldown() -> None:
    det = PatternDetector(PatternLimits(threshold=5, window_s=60, cooldown_s=300))
    alerts = [observe(det, f"timeout after {i}ms to 10.0.0.{i % 9}", now=i * 0.5) for i in range(9)]
    fired = [a for a in alerts if a is not None]
    assert len(fired) == 1
    assert alerts[4] is fired[0]  # exactly at the 5th occurrence
    alert = fired[0]
    assert alert.occurrences == 5
    assert alert.severity == "low"
    assert alert.first_occurrence == "2025-10-13T08:00:00.000Z"
    assert alert.last_occurrence == "2025-10-13T08:00:02.000Z"


def test_a_rising_storm_raises_severity() -> None:
    det = PatternDetector(PatternLimits(threshold=5, window_s=60, cooldown_s=300))
    fired = [a for i in range(40) if (a := observe(det, f"disk {i} full", now=i * 0.1)) is not None]
    assert [a.severity for a in fired] == ["low", "medium", "high", "critical"]
    assert [a.occurrences for a in fired] == [5, 10, 20, 40]
    assert len({a.pattern_id for a in fired}) == 1


def test_fatal_entries_raise_severity() -> None:
    det = PatternDetector(PatternLimits(threshold=3))
    fired = [a for i in range(3) if (a := observe(det, "kernel panic", now=i, fatal=True)) is not None]
    assert fired[0].severity == "medium"
    assert severity_for(3, 3, fatal=0) == "low"


def test_unrelated_errors_below_the_threshold_do_not_alert() -> None:
    det = PatternDetector(PatternLimits(threshold=5))
    messages = ["disk full", "timeout", "refused", "denied", "overflow", "underflow", "parse error"]
    assert all(observe(det, m, now=i + r * 0.01) is None for i, m in enumerate(messages) for r in range(4))


def test_the_window_slides() -> None:
    det = PatternDetector(PatternLimits(threshold=5, window_s=60))
    assert all(observe(det, "flaky", now=float(i)) is None for i in range(4))
    assert observe(det, "flaky", now=200.0) is None  # the first four have left the window
    assert all(observe(det, "flaky", now=200.0 + i) is None for i in range(3))
    assert observe(det, "flaky", now=204.0) is not None


def test_alerts_again_after_the_cooldown() -> None:
    det = PatternDetector(PatternLimits(threshold=2, window_s=10, cooldown_s=30))
    assert observe(det, "x", now=0) is None
    assert observe(det, "x", now=1) is not None
    assert observe(det, "x", now=2) is None
    assert observe(det, "x", now=40) is None  # window emptied, one occurrence
    assert observe(det, "x", now=41) is not None


def test_pattern_id_is_stable_per_source_and_signature() -> None:
    det = PatternDetector(PatternLimits(threshold=1))
    a = observe(det, "timeout after 5ms", now=0, source="a")
    b = observe(PatternDetector(PatternLimits(threshold=1)), "timeout after 99ms", now=0, source="a")
    c = observe(det, "timeout after 5ms", now=0, source="b")
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.pattern_id == b.pattern_id != c.pattern_id


def test_memory_stays_bounded_with_many_distinct_signatures() -> None:
    det = PatternDetector(PatternLimits(threshold=5, max_patterns=100))
    for i in range(1000):  # 1000 distinct signatures
        observe(
            det,
            f"error kind {'abcdefghij'[i % 10]}{'klmnopqrst'[i // 10 % 10]}{'uvwxyzABCD'[i // 100 % 10]}",
            now=i,
        )
    assert det.tracked == 100
    assert det.forgotten == 900


@pytest.mark.parametrize("bad", [{"threshold": 0}, {"window_s": 0}, {"cooldown_s": -1}, {"max_patterns": 0}])
def test_limits_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="alert_"):
        PatternLimits(**bad)  # type: ignore[arg-type]


def plain_signature(message: str, max_length: int = 200) -> str:
    """Every mask over the whole message, in order, then whitespace: what signature() must equal."""
    text = message[: max_length * 4]
    for pattern, mask, _ in _MASKS:
        text = pattern.sub(mask, text)
    return re.sub(r"\s+", " ", text).strip()[:max_length]


FRAGMENTS = st.sampled_from(
    [
        "timeout",
        "after",
        "1532ms",
        "10.0.0.7",
        "10.0.0.7:8080",
        "fe80::1",
        "::",
        "5f0c7a3e-1b2c-4d5e-8f90-123456789abc",
        "ops@example.com",
        "https://api.example.com/v1?id=5",
        "/var/lib/app.db",
        "C:\\temp\\x",
        "0xdeadbeef",
        "deadbeef01",
        "user42",
        "req_7",
        "-12.5e+3",
        "\u0663\u0664",
        '"quoted 12 value"',
        "'single'",
        '"unterminated',
        "caf\u00e9",
        "\u2003",
        "\t",
        "\n",
        "  ",
        "-",
        ":",
        ".",
        "@",
        "/",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(FRAGMENTS | st.text(max_size=6), max_size=12), st.sampled_from(["", " ", "-", ":"]))
def test_signature_equals_every_mask_applied_in_order(parts: list[str], glue: str) -> None:
    message = glue.join(parts)
    assert signature(message) == plain_signature(message)
    assert signature(message, max_length=10) == plain_signature(message, max_length=10)
