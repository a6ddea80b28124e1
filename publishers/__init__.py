"""Putting events on the bus: JetStream publishing with retries, idempotency and rate limits."""

__all__: list[str] = []
