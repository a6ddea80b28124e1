"""Error-pattern detection: messages reduced to signatures, counted in a sliding window.

Pure: time comes in as arguments. Memory is bounded twice over: each pattern
counts in at most 60 buckets (1/60 of the window each), and at most
``max_patterns`` patterns are tracked, the least recently seen forgotten first.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict, deque
from dataclasses import dataclass

import msgspec

__all__ = ["SEVERITIES", "Alert", "PatternDetector", "PatternLimits", "severity_for", "signature"]

SEVERITIES = ("low", "medium", "high", "critical")
_BUCKETS = 60

# Order matters: larger shapes first, so a UUID is not masked as hex and numbers.
# Each mask names what any match needs (one of these substrings; _DIGIT: a
# decimal digit), so a message without it skips that pattern: most masks have
# nothing to do in most messages, and a skipped search is the same as one that
# finds nothing. No mask puts any of these back (masks are "<...>" and letters),
# so looking at the message once, before masking, is enough.
_DIGIT = "0-9"
_MASKS: tuple[tuple[re.Pattern[str], str, frozenset[str]], ...] = (
    (re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"), "<str>", frozenset(('"', "'"))),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE), "<url>", frozenset(("://",))),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
        "<uuid>",
        frozenset("-"),
    ),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "<email>", frozenset("@")),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>", frozenset(".")),
    (re.compile(r"\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b", re.IGNORECASE), "<ip>", frozenset(":")),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.@%+-]+){2,}/?|(?:\\[\w.@%+-]+){2,}\\?"), "<path>", frozenset("/\\")),
    (
        re.compile(
            r"\b(?:0x)?[0-9a-f]*\d[0-9a-f]*[a-f][0-9a-f]*\b|\b(?:0x)?[0-9a-f]*[a-f][0-9a-f]*\d[0-9a-f]*\b",
            re.IGNORECASE,
        ),
        "<hex>",
        frozenset((_DIGIT,)),
    ),
    (re.compile(r"\b[A-Za-z]+[-_]?\d[\w-]*\b"), "<id>", frozenset((_DIGIT,))),
    (re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<num>", frozenset((_DIGIT,))),
)
_NEEDS = frozenset().union(*(needs for _, _, needs in _MASKS)) - {_DIGIT}
_FIRST_DIGIT_MASK = next(i for i, (_, _, needs) in enumerate(_MASKS) if _DIGIT in needs)
assert all(_DIGIT in needs for _, _, needs in _MASKS[_FIRST_DIGIT_MASK:])  # noqa: S101
_ANY_DIGIT = re.compile(r"\d")
# A need's first character is in any message that holds it: one scan for all of them.
_ANY_NEED = re.compile("[" + re.escape("".join(sorted({need[0] for need in _NEEDS}))) + "]")


def signature(message: str, max_length: int = 200) -> str:
    """``message`` with its variable parts masked, so occurrences of one error look alike.

    ``timeout after 1532ms to 10.0.0.7`` and ``timeout after 20ms to 10.0.0.9``
    both become ``timeout after <num>ms to <ip>``. Runs of whitespace become one
    space (``str.split`` and ``\\s`` agree on what whitespace is).
    """
    text = message[: max_length * 4]
    if _ANY_NEED.search(text) is not None:  # most messages need none of the masks before the digit ones
        present = {need for need in _NEEDS if need in text}
        for pattern, mask, needs in _MASKS[:_FIRST_DIGIT_MASK]:
            if not needs.isdisjoint(present):
                text = pattern.sub(mask, text)
    words = text.split()
    for index, word in enumerate(words):
        # No digit mask matches across whitespace, so each is applied word by
        # word, and only to words with a digit: most words have none.
        if not word.isalpha() and _ANY_DIGIT.search(word) is not None:  # letters only: no digit
            masked = _MASKED_WORDS.get(word)
            words[index] = masked if masked is not None else _masked_word(word)
    return " ".join(words)[:max_length]


# Words with digits recur (durations, status codes, ports): remember a few thousand masked.
_MASKED_WORDS: dict[str, str] = {}
_MAX_MASKED_WORDS = 4096


def _masked_word(word: str) -> str:
    if word.isdecimal():  # digits only: the number mask takes it whole, no other can match
        masked = "<num>"
    else:
        masked = word
        for pattern, mask, _ in _MASKS[_FIRST_DIGIT_MASK:]:
            masked = pattern.sub(mask, masked)
    if len(_MASKED_WORDS) >= _MAX_MASKED_WORDS:
        _MASKED_WORDS.clear()
    _MASKED_WORDS[word] = masked
    return masked


def severity_for(occurrences: int, threshold: int, fatal: int) -> str:
    """Severity rises with the rate (occurrences per threshold) and with fatal entries."""
    ratio = occurrences / threshold
    rank = 0 if ratio < 2 else 1 if ratio < 4 else 2 if ratio < 8 else 3
    if fatal:
        rank = min(3, rank + 1)
    return SEVERITIES[rank]


@dataclass(frozen=True, kw_only=True, slots=True)
class PatternLimits:
    """When a pattern alerts: ``threshold`` occurrences within ``window_s``; then quiet for
    ``cooldown_s`` unless its severity rises."""

    threshold: int = 5
    window_s: float = 60.0
    cooldown_s: float = 300.0
    max_patterns: int = 10_000

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"alert_threshold must be at least 1, got {self.threshold}")
        if not self.window_s > 0:
            raise ValueError(f"alert_window_s must be positive, got {self.window_s}")
        if not self.cooldown_s >= 0:
            raise ValueError(f"alert_cooldown_s must not be negative, got {self.cooldown_s}")
        if self.max_patterns < 1:
            raise ValueError(f"alert_max_patterns must be at least 1, got {self.max_patterns}")


@dataclass(frozen=True, slots=True)
class Alert:
    """A pattern crossed its threshold (or rose in severity)."""

    pattern_id: str
    source: str
    pattern: str
    occurrences: int
    severity: str
    first_occurrence: str
    last_occurrence: str


# The two below are msgspec Structs, not dataclasses: a pattern seen once (each of a flood of
# distinct error messages) makes one of each, and their C constructors cost a fraction.
class _Bucket(msgspec.Struct):
    slot: int
    first: str
    first_at: float
    last: str
    last_at: float
    count: int = 0
    fatal: int = 0


class _Pattern(msgspec.Struct):
    """One pattern's window: its non-empty buckets, oldest first, and running totals."""

    source: str
    text: str
    buckets: deque[_Bucket] = msgspec.field(default_factory=deque)
    count: int = 0
    fatal: int = 0
    alerted_at: float | None = None
    alerted_rank: int = -1


class PatternDetector:
    """Counts error patterns per source and signature; says when one should alert."""

    def __init__(self, limits: PatternLimits) -> None:
        self.limits = limits
        self._width = limits.window_s / _BUCKETS
        # Keyed by (source, signature); the stable id is hashed only when a pattern alerts.
        self._patterns: OrderedDict[tuple[str, str], _Pattern] = OrderedDict()
        self.forgotten = 0

    def retune(self, limits: PatternLimits) -> None:
        """New thresholds from now on. A new window restarts the counting (the buckets are
        slices of the old window); threshold, cooldown and the pattern cap apply at once."""
        if limits.window_s != self.limits.window_s:
            self._patterns.clear()
            self._width = limits.window_s / _BUCKETS
        while len(self._patterns) > limits.max_patterns:
            self._patterns.popitem(last=False)
            self.forgotten += 1
        self.limits = limits

    def observe(
        self, *, source: str, message: str, fatal: bool, created: str, created_at: float, now: float
    ) -> Alert | None:
        """Count one error or fatal entry seen at ``now``; an :class:`Alert` if one is due."""
        text = signature(message)
        key = (source, text)
        state = self._patterns.get(key)
        if state is None:
            state = self._patterns[key] = _Pattern(source, text)
            if len(self._patterns) > self.limits.max_patterns:
                self._patterns.popitem(last=False)
                self.forgotten += 1
        else:
            self._patterns.move_to_end(key)
        self._count(state, fatal, created, created_at, int(now // self._width))
        return self._maybe_alert(state, now)

    def _count(self, state: _Pattern, fatal: bool, created: str, created_at: float, slot: int) -> None:
        buckets = state.buckets
        while buckets and buckets[0].slot <= slot - _BUCKETS:  # left the window
            gone = buckets.popleft()
            state.count -= gone.count
            state.fatal -= gone.fatal
        if not buckets or buckets[-1].slot != slot:
            buckets.append(_Bucket(slot, created, created_at, created, created_at))
        bucket = buckets[-1]
        bucket.count += 1
        bucket.fatal += fatal
        state.count += 1
        state.fatal += fatal
        if created_at < bucket.first_at:
            bucket.first, bucket.first_at = created, created_at
        if created_at >= bucket.last_at:
            bucket.last, bucket.last_at = created, created_at

    def _maybe_alert(self, state: _Pattern, now: float) -> Alert | None:
        if state.count < self.limits.threshold:
            return None
        severity = severity_for(state.count, self.limits.threshold, state.fatal)
        rank = SEVERITIES.index(severity)
        cooling = state.alerted_at is not None and now - state.alerted_at < self.limits.cooldown_s
        if cooling and rank <= state.alerted_rank:
            return None
        state.alerted_at, state.alerted_rank = now, rank
        first = min(state.buckets, key=lambda b: b.first_at)
        last = max(state.buckets, key=lambda b: b.last_at)
        return Alert(
            pattern_id(state.source, state.text),
            state.source,
            state.text,
            state.count,
            severity,
            first.first,
            last.last,
        )

    @property
    def tracked(self) -> int:
        """How many patterns are being counted."""
        return len(self._patterns)


def pattern_id(source: str, text: str) -> str:
    """Stable id of a pattern: the same source and signature always give the same id."""
    return "pat-" + hashlib.sha256(f"{source}\0{text}".encode()).hexdigest()[:16]
