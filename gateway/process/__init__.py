"""Process edges: the command line, settings, the FastStream app, HTTP probes, metrics,
the embedded nats-server and connection settings."""

__all__: list[str] = []
