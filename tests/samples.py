"""Valid payloads as the platform produces them, one per contract."""

from __future__ import annotations

from typing import Any

ENTRY: dict[str, Any] = {
    "logId": "log-01J9ZK8Q",
    "level": "error",
    "message": "timeout after 1532ms calling payments at 10.0.0.7",
    "source": "payments-api",
    "component": "charge.worker",
    "userId": "user-8812",
    "sessionId": "sess-1f2e3d",
    "metadata": {
        "requestId": "req-77ab",
        "attempt": 3,
        "durationMs": 1532.4,
        "tags": ["a", "b"],
        "ok": False,
    },
    "createdAt": "2025-10-13T08:00:00.000Z",
}
STREAM_STARTED: dict[str, Any] = {
    "streamId": "stream-1",
    "filters": {"level": ["error", "fatal"], "source": "payments-api"},
    "destination": "console",
    "format": "json",
    "startedBy": "ops@example.com",
    "startedAt": "2025-10-13T08:00:00.000Z",
}
PATTERN: dict[str, Any] = {
    "patternId": "pat-9f2c",
    "pattern": "timeout after <num>ms to <ip>",
    "occurrences": 7,
    "severity": "high",
    "timeWindow": "60s",
    "firstOccurrence": "2025-10-13T08:00:00.000Z",
    "lastOccurrence": "2025-10-13T08:00:42.500Z",
    "detectedAt": "2025-10-13T08:00:42.600Z",
}
ARCHIVED: dict[str, Any] = {
    "archiveId": "arch-2025-10-13-0001",
    "timeRange": {"start": "2025-10-13T08:00:00.000Z", "end": "2025-10-13T09:00:00.000Z"},
    "entryCount": 120000,
    "compressedSize": 4194304,
    "destination": "file:///var/log/cortex/segment-0001.ndjson.zst",
    "archivedAt": "2025-10-13T09:00:01.000Z",
}


def entry(n: int, **changes: Any) -> dict[str, Any]:
    """A distinct valid entry number ``n``."""
    levels = ("debug", "info", "warn", "error", "fatal")
    base = {
        "logId": f"log-{n:08d}",
        "level": levels[n % 5],
        "message": f"request {n} handled in {n % 97}ms",
        "source": f"svc-{n % 3}",
        "createdAt": f"2025-10-13T08:{(n // 60) % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z",
    }
    base.update(changes)
    return base


BATCH: dict[str, Any] = {
    "batchId": "b-0001",
    "gatewayId": "gw-host-1",
    "sequence": 1,
    "count": 2,
    "entries": [entry(3), entry(4)],
    "firstCreatedAt": entry(3)["createdAt"],
    "lastCreatedAt": entry(4)["createdAt"],
    "levelCounts": {"error": 1, "fatal": 1},
    "droppedSinceLast": 0,
}
