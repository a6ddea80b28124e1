"""OTLP logs in and out (the ``otlp`` extra): the mapping between OTLP LogRecords and
``LogEntryCreated`` entries (``mapping``), the OTLP/HTTP receiver of ``log-gateway run
--otlp-port`` (``receiver``), and ``log-gateway otlp-export`` (``export``).

Nothing is imported here: each module needs the extra (protobuf, opentelemetry-proto,
aiohttp), and ``log-gateway run`` without ``--otlp-port`` must not pay for it.
"""

__all__: list[str] = []
