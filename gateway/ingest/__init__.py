"""Per-entry messages in: the wire splitter, header blocks, the decoder, admission, fates,
and the two intake modes (core NATS subscriptions, a durable JetStream consumer)."""

__all__: list[str] = []
