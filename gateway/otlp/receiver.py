"""The OTLP/HTTP logs receiver of ``log-gateway run --otlp-port``: ``POST /v1/logs``.

Each LogRecord becomes entry data (``gateway.otlp.mapping``) and goes through the same
decoder, admission, batching, limits and accounting as an entry from NATS: it is counted
received, then batched, rejected (with a reason, forwarded to ``cortex_logging.entry.rejected``)
or dropped (with a reason). What the gateway did not take is said in the response's
``partial_success``. A 200 means the gateway holds the records, as core NATS ingest does.

Under ``--overflow block`` a request the buffer has no room for is not held: it gets 503 with
``Retry-After`` before any of its records is taken, so the client's retry cannot duplicate one.

The HTTP/1.1 server is ``gateway.otlp.http`` (h11 on asyncio streams; its docstring says why).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.errors import DecodeError, RejectReason
from gateway.core.accumulator import ACCEPTED, BLOCKED, DROPPED, Accumulator
from gateway.core.entry import PendingEntry
from gateway.core.limits import DropReason, OverflowPolicy
from gateway.core.stats import Stats
from gateway.ingest.admission import Gate
from gateway.ingest.decode import EntryDecoder
from gateway.ingest.reject import Rejects, oversize
from gateway.logs import RateLimitedLog
from gateway.otlp.config import OtlpConfig
from gateway.otlp.http import HttpRequest, HttpServer, Reply
from gateway.otlp.mapping import BadRequest, entries_of, parse_json_request, parse_protobuf_request

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = ["PROTOBUF", "OtlpCollector", "OtlpReceiver", "ReceiverStats"]

log = logging.getLogger("log_gateway")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PATH = "/v1/logs"
_SUBJECT = b"otlp:" + PATH.encode()  # the "subject" a rejected record came in on
# google.rpc.Code values for the Status of an error response.
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAVAILABLE = 3, 8, 14


@dataclass
class ReceiverStats:
    """What the receiver answered: requests by HTTP status, and requests turned away as throttled."""

    responses: dict[int, int] = field(default_factory=dict)
    throttled: int = 0


@dataclass
class _Outcome:
    """What became of one request's records."""

    not_taken: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str) -> None:
        self.not_taken += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def message(self) -> str:
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items()))
        return f"{self.not_taken} log records not taken: {parts}"


class OtlpCollector(Collector):
    """``log_gateway_otlp_responses_total{code}`` and ``log_gateway_otlp_throttled_total``."""

    def __init__(self, stats: ReceiverStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        responses = CounterMetricFamily(
            "log_gateway_otlp_responses", "OTLP/HTTP requests answered, by status code", labels=["code"]
        )
        for code, count in sorted(self._stats.responses.items()):
            responses.add_metric([str(code)], count)
        yield responses
        yield CounterMetricFamily(
            "log_gateway_otlp_throttled",
            "OTLP/HTTP requests turned away (503) because the buffer was full",
            value=self._stats.throttled,
        )


class OtlpReceiver:
    """Serves ``POST /v1/logs`` into a running gateway's ingest.

    Args:
        config: where to listen, the body limit, the Retry-After.
        decoder, gate, rejects, stats: the gateway's, shared with NATS ingest.
        acc: what the gateway holds (for the room a request needs under ``block``).
        warn: rate-limited warnings.
    """

    def __init__(
        self,
        config: OtlpConfig,
        *,
        decoder: EntryDecoder,
        gate: Gate,
        rejects: Rejects,
        stats: Stats,
        acc: Accumulator,
        warn: RateLimitedLog,
    ) -> None:
        self.config = config
        self.port = config.port
        self._decoder = decoder
        self._gate = gate
        self._rejects = rejects
        self._stats = stats
        self._acc = acc
        self._warn = warn
        self.stats = ReceiverStats()
        self._server: HttpServer | None = None

    @classmethod
    def for_gateway(cls, config: OtlpConfig, gateway: Gateway) -> OtlpReceiver:
        """A receiver feeding ``gateway`` (started)."""
        return cls(
            config,
            decoder=gateway.decoder,
            gate=gateway.gate,
            rejects=gateway.rejects,
            stats=gateway.stats,
            acc=gateway.acc,
            warn=gateway.warn,
        )

    async def start(self) -> None:
        """Listen; :attr:`port` is the bound port afterwards.

        Raises:
            OSError: the address cannot be bound.
        """
        config = self.config
        server = HttpServer(
            host=config.host,
            port=config.port,
            max_body_bytes=config.max_body_bytes,
            refuse=self._refusal,
            answer=self._answer,
            too_large=lambda: _status(413, _RESOURCE_EXHAUSTED, _too_large(config.max_body_bytes), False),
        )
        await server.start()
        self._server = server
        self.port = server.port

    async def stop(self) -> None:
        """Stop listening; requests being answered finish first. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    def collector(self) -> OtlpCollector:
        """The receiver's Prometheus metrics."""
        return OtlpCollector(self.stats)

    def _count(self, reply: Reply) -> Reply:
        self.stats.responses[reply.status] = self.stats.responses.get(reply.status, 0) + 1
        return reply

    def _refusal(self, request: HttpRequest) -> Reply | None:
        """The answer to a request refused before its body is read: another path (404) or method
        (405), an unsupported content type or encoding (415), a stated length over the limit
        (413); None to go on."""
        if request.path != PATH:
            return self._count(_plain(404, f"not found: OTLP logs go to POST {PATH}\n"))
        if request.method != "POST":
            return self._count(_plain(405, f"{PATH} takes POST\n", Allow="POST"))
        kind = _media_type(request)
        if kind not in (PROTOBUF, JSON):
            return self._count(_plain(415, f"unsupported Content-Type {kind!r}: send {PROTOBUF} or {JSON}\n"))
        encoding = _encoding(request)
        if encoding not in ("gzip", "identity"):
            return self._count(_plain(415, f"unsupported Content-Encoding {encoding!r}: send gzip or none\n"))
        limit = self.config.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            return self._count(_status(413, _RESOURCE_EXHAUSTED, _too_large(limit), kind == JSON))
        return None

    async def _answer(self, request: HttpRequest, body: bytes) -> Reply:
        as_json = _media_type(request) == JSON
        limit = self.config.max_body_bytes
        try:
            if _encoding(request) == "gzip":
                body = _gunzip(body, limit)
            parsed = parse_json_request(body) if as_json else parse_protobuf_request(body)
        except _TooLarge:
            reply = _status(413, _RESOURCE_EXHAUSTED, _too_large(limit) + " once gunzipped", as_json)
        except BadRequest as exc:
            reply = _status(400, _INVALID_ARGUMENT, str(exc), as_json)
        else:
            reply = await self._take(parsed, as_json)
        return self._count(reply)

    async def _take(self, parsed: ExportLogsServiceRequest, as_json: bool) -> Reply:
        # (protobuf parses at most 100 nested messages, so entry data nests far less deeply than
        # the 255 levels orjson writes; the decoder then refuses more than 32, as for NATS.)
        bodies = [orjson.dumps(data) for data in entries_of(parsed)]
        if not self._room_for(bodies):
            self.stats.throttled += 1
            self._warn.warning("otlp-full", "OTLP request of %d records turned away: full", len(bodies))
            reply = _status(503, _UNAVAILABLE, "the gateway's buffer is full; retry later", as_json)
            reply.headers["Retry-After"] = str(self.config.retry_after_s)
            return reply
        outcome = _Outcome()
        for body in bodies:
            await self._admit(body, outcome)
        response = ExportLogsServiceResponse()
        if outcome.not_taken:
            partial = ExportLogsPartialSuccess(
                rejected_log_records=outcome.not_taken, error_message=outcome.message()
            )
            response.partial_success.CopyFrom(partial)
        return _message(200, response, as_json)

    def _room_for(self, bodies: list[bytes]) -> bool:
        """Under ``block``: does the buffer have room for the whole request now? A request larger
        than the whole buffer is taken as far as it fits (the rest in ``partial_success``)."""
        acc = self._acc
        buffer = acc.buffer
        if buffer.overflow is not OverflowPolicy.BLOCK or not bodies:
            return True
        size = sum(len(body) for body in bodies)
        if len(bodies) > buffer.max_entries or size > buffer.max_bytes:
            return acc.held_entries == 0
        entries_fit = acc.held_entries + len(bodies) <= buffer.max_entries
        return entries_fit and acc.held_bytes + size <= buffer.max_bytes

    async def _admit(self, body: bytes, outcome: _Outcome) -> None:
        """One record, as core ingest takes one message: received, then batched, rejected or dropped."""
        self._stats.received += 1
        try:
            entry = self._decoder.decode(None, body)
        except DecodeError as exc:
            outcome.add(exc.reason)
            await self._rejects.reject(_SUBJECT, None, body, exc.reason, exc.detail)
            return
        except Exception:  # noqa: BLE001 - as on NATS ingest: a bug on one record is counted and logged
            outcome.add(DropReason.INGEST_FAILED)
            self._rejects.failed(_SUBJECT)
            return
        admission = self._gate.admit(entry)
        if admission is ACCEPTED:
            return
        if admission is DROPPED:  # (counted as dropped by the accumulator)
            outcome.add(DropReason.OVERFLOW_NEWEST)
        elif admission is BLOCKED:
            self._blocked(entry, outcome)
        else:
            outcome.add(RejectReason.OVERSIZE)
            await self._rejects.reject(_SUBJECT, None, body, RejectReason.OVERSIZE, oversize(len(entry.data)))

    def _blocked(self, entry: PendingEntry, outcome: _Outcome) -> None:
        """No room after all (the request outgrew the buffer, or redaction grew an entry): the
        request is not held; the record is counted dropped and reported."""
        self._stats.drop(DropReason.OVERFLOW_NEWEST)
        outcome.add(DropReason.OVERFLOW_NEWEST)


class _TooLarge(Exception):
    """A gzip body inflates beyond the limit."""


def _gunzip(body: bytes, limit: int) -> bytes:
    """``body`` gunzipped, never inflating more than ``limit`` + 1 bytes.

    Raises:
        _TooLarge: it inflates beyond ``limit``.
        BadRequest: it is not (whole) gzip.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"Content-Encoding gzip, but the body is not gzip: {exc}") from None
    if len(out) > limit:
        raise _TooLarge
    if not inflater.eof:
        raise BadRequest("Content-Encoding gzip, but the gzip stream is cut short")
    return out


def _too_large(limit: int) -> str:
    return f"request body over {limit} bytes (--otlp-max-body-bytes)"


def _media_type(request: HttpRequest) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _encoding(request: HttpRequest) -> str:
    return request.headers.get("content-encoding", "identity").strip().lower() or "identity"


def _plain(status: int, text: str, **headers: str) -> Reply:
    return Reply(status, "text/plain; charset=utf-8", text.encode(), dict(headers))


def _status(status: int, code: int, message: str, as_json: bool) -> Reply:
    """An error response: a google.rpc.Status in the request's encoding, as OTLP/HTTP asks."""
    return _message(status, Status(code=code, message=message), as_json)


def _message(status: int, message: Message, as_json: bool) -> Reply:
    if as_json:
        text: Any = json_format.MessageToJson(message, indent=None)
        return Reply(status, JSON, text.encode())
    return Reply(status, PROTOBUF, message.SerializeToString())
