"""The log-event batching gateway: ingest per-entry events, publish logBatchCreated batches."""

__all__: list[str] = []
