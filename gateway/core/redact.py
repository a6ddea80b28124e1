"""Optional redaction of secrets before anything leaves the host (pure, no I/O).

Values under sensitive metadata keys are replaced whole; secrets recognised by
pattern (bearer tokens, cloud access keys, JWTs, ``password=...``) are replaced
inside the message and inside any metadata string. Every replacement is counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_KEYS", "DEFAULT_PATTERNS", "MARKER", "Redactor"]

MARKER = "[REDACTED]"
DEFAULT_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "cookie",
    "set-cookie",
    "credentials",
)
DEFAULT_PATTERNS = (
    r"(?i:\bbearer\s+[a-z0-9\-._~+/]+=*)",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
    r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b",  # Slack tokens
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\b",  # JWTs
    r"(?i:\b(?:password|passwd|secret|token|api[_-]?key)\s*[=:]\s*[^\s,;&]+)",
)


@dataclass
class Redactor:
    """Replaces secrets in an entry's data; ``count`` tallies every replacement."""

    keys: Iterable[str] = DEFAULT_KEYS
    patterns: Iterable[str] = DEFAULT_PATTERNS
    count: int = 0
    _keys: frozenset[str] = field(init=False, repr=False)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys = frozenset(k.lower() for k in self.keys)
        patterns = [f"(?:{p})" for p in self.patterns]
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def entry(self, data: dict[str, Any]) -> int:
        """Redact an entry in place (``message`` and ``metadata``); returns how many replacements."""
        before = self.count
        message = data.get("message")
        if isinstance(message, str):
            data["message"] = self._text(message)
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            self._mapping(metadata)
        return self.count - before

    def _text(self, text: str) -> str:
        if self._pattern is None:
            return text
        redacted, hits = self._pattern.subn(MARKER, text)
        self.count += hits
        return redacted

    def _mapping(self, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            if key.lower() in self._keys:
                if value != MARKER:
                    mapping[key] = MARKER
                    self.count += 1
            else:
                mapping[key] = self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            self._mapping(value)
        elif isinstance(value, list):
            value[:] = [self._value(item) for item in value]
        return value
