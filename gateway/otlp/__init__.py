"""OTLP logs in and out (the ``otlp`` extra): the mapping between OTLP LogRecords and
``LogEntryCreated`` entries (``mapping``), the OTLP/HTTP receiver of ``log-gateway run
--otlp-port`` (``receiver``, on the small HTTP/1.1 server of ``http``), and ``log-gateway otlp-export``
(``export``); ``config`` holds their settings.

Nothing is imported here: every module but ``config`` needs the extra (protobuf,
opentelemetry-proto, h11), and ``log-gateway run`` without ``--otlp-port`` must not pay for it.
"""

__all__: list[str] = []
