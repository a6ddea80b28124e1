"""Every setting as a flag, a ``LOG_GATEWAY_*`` variable and a config file key, read in this one place.

A flag wins over its variable, which wins over the ``--config`` file, which wins
over the default. A bad value is a :class:`SettingError` naming the setting; the
CLI turns it into exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.errors import GatewayError
from gateway.config import (
    AlertConfig,
    DurableIngest,
    GatewayConfig,
    SpoolConfig,
    Subjects,
    ThrottleLimits,
    default_gateway_id,
)
from gateway.consumers.options import WIRE_FORMS, ArchiveConfig, Compression, SendOptions, TailOptions
from gateway.core.limits import BatchLimits, BufferLimits, OverflowPolicy
from gateway.core.patterns import PatternLimits
from gateway.core.redact import DEFAULT_KEYS
from gateway.mcp.config import McpHttpSettings
from gateway.otlp.config import ExportConfig, OtlpConfig
from gateway.process.configfile import read_config
from gateway.process.connection import ConnectionSettings, redact_url
from gateway.spool.store import FsyncPolicy
from publishers.config import PublishPolicy, StreamSpec

if TYPE_CHECKING:
    from contracts.query import LogQuery
    from gateway.consumers.querycli import QueryOutput

__all__ = [
    "ARCHIVE_OPTIONS",
    "ASYNCAPI_OPTIONS",
    "CONNECTION_OPTIONS",
    "CTL_OPTIONS",
    "MCP_HTTP_OPTIONS",
    "MCP_OPTIONS",
    "OTLP_EXPORT_OPTIONS",
    "QUERY_OPTIONS",
    "RUN_OPTIONS",
    "SEND_OPTIONS",
    "TAIL_OPTIONS",
    "Option",
    "SettingError",
    "add_config_option",
    "add_options",
    "add_query_filters",
    "archive_config",
    "asyncapi_config",
    "check_bench",
    "check_config",
    "connection_settings",
    "effective_settings",
    "gateway_config",
    "mcp_http_settings",
    "otlp_export_config",
    "otlp_settings",
    "parse_setting",
    "query_from_args",
    "query_settings",
    "read_options",
    "read_sourced",
    "required_connection",
    "run_settings",
    "send_options",
    "state_dir",
    "tail_options",
]


class SettingError(GatewayError, ValueError):
    """A setting has a bad value; the message names it."""


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _level(text: str) -> str:
    level = text.strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError(f"expected debug, info, warning or error, got {text!r}")
    return level


def _level_name(text: str) -> str:
    level = text.strip().lower()
    if level not in ("debug", "info", "warn", "error", "fatal"):
        raise ValueError(f"expected debug, info, warn, error or fatal, got {text!r}")
    return level


def _color(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "always", "never"):
        raise ValueError(f"expected auto, always or never, got {text!r}")
    return value


def _ingest(text: str) -> str:
    value = text.strip().lower()
    if value not in ("core", "jetstream"):
        raise ValueError(f"expected core or jetstream, got {text!r}")
    return value


def _choice(kind: type[StrEnum]) -> Callable[[str], Any]:
    """A parser for ``kind``'s values whose error lists the choices."""
    names = [str(member.value) for member in kind]
    choices = ", ".join(names[:-1]) + " or " + names[-1]

    def parse(text: str) -> StrEnum:
        try:
            return kind(text.strip().lower())
        except ValueError:
            raise ValueError(f"expected {choices}, got {text!r}") from None

    return parse


def _servers(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _csv(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _default(cls: type[Any], name: str) -> Any:
    """The default of the dataclass ``cls``'s field ``name``: the one place it is written."""
    for spec in dataclasses.fields(cls):
        if spec.name != name:
            continue
        if spec.default is not dataclasses.MISSING:
            return spec.default
        if spec.default_factory is not dataclasses.MISSING:
            return spec.default_factory()
        break
    raise TypeError(f"{cls.__name__}.{name} is not a field with a default")


_LIST = "a string or an array of strings"
# The TOML type a config file gives an option, by the option's parser; any other parser takes a string.
_KINDS: dict[Callable[[str], Any], str] = {
    int: "an integer",
    float: "a number",
    _bool: "a boolean",
    _servers: _LIST,
    _csv: _LIST,
}


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its flag, how its text is parsed, its default and help."""

    flag: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    secret: bool = False

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return "LOG_GATEWAY_" + self.dest.upper()

    @property
    def kind(self) -> str:
        """What a config file must give: an integer, a number, a boolean, a string (or an array)."""
        return _KINDS.get(self.parse, "a string")


_CREDENTIALS = (
    Option("--nats-token", str, None, "token authentication", secret=True),
    Option("--nats-user", str, None, "user for user/password authentication"),
    Option("--nats-password", str, None, "password for user/password authentication", secret=True),
    Option("--nats-creds", Path, None, "credentials file (JWT and NKEY seed)"),
    Option("--nats-nkey-seed", Path, None, "NKEY seed file"),
    Option("--tls-ca", Path, None, "CA certificate that verifies the server"),
    Option("--tls-cert", Path, None, "client certificate (with --tls-key)"),
    Option("--tls-key", Path, None, "client certificate key"),
    Option(
        "--subject-prefix",
        str,
        _default(Subjects, "prefix"),
        "prefix put in front of every subject (unset: none)",
    ),
    Option(
        "--inbox-prefix",
        str,
        _default(ConnectionSettings, "inbox_prefix"),
        "reply inbox prefix (for least-privilege permissions)",
    ),
)
CONNECTION_OPTIONS = (
    Option(
        "--nats-url",
        _servers,
        _default(ConnectionSettings, "servers"),
        "NATS server URL(s), comma-separated; none starts an embedded server",
    ),
    *_CREDENTIALS,
)
"""How ``run`` reaches NATS (an embedded server when no URL is given)."""
_REMOTE_CONNECTION_OPTIONS = (
    Option("--nats-url", _servers, (), "NATS server URL(s), comma-separated (required: no embedded server)"),
    *_CREDENTIALS,
)


def _not_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(f"expected a number of seconds, 0 or more, got {text!r}")
    return value


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {text!r}")
    return port


_CONNECT_TIMEOUT = Option(
    "--connect-timeout-s", float, 30.0, "give up at start if not connected (and ready) by then"
)
_QUERY_ARCHIVE = "archive directory query_logs reads beside the stream (unset: the stream only)"
MCP_HTTP_OPTIONS = (
    Option("--mcp", _bool, False, "serve MCP (streamable HTTP) at /mcp, on a listener of its own"),
    Option(
        "--mcp-host",
        str,
        _default(McpHttpSettings, "host"),
        "address of the /mcp listener (not loopback: --mcp-token is required)",
    ),
    Option("--mcp-port", int, _default(McpHttpSettings, "port"), "port of the /mcp listener (0: any free)"),
    Option(
        "--mcp-token", str, None, "bearer token MCP clients must send (required off loopback)", secret=True
    ),
    Option("--mcp-archive-dir", Path, None, _QUERY_ARCHIVE),
)
"""``run --mcp``: the MCP server over streamable HTTP beside the gateway."""

_OTLP_OPTIONS = (
    Option(
        "--otlp-port",
        int,
        None,
        "serve the OTLP/HTTP logs receiver (POST /v1/logs) on this port, 4318 by convention "
        "(0: any free port; unset: none; needs the otlp extra)",
    ),
    Option("--otlp-host", str, _default(OtlpConfig, "host"), "address of the OTLP receiver"),
    Option(
        "--otlp-max-body-bytes",
        int,
        _default(OtlpConfig, "max_body_bytes"),
        "OTLP request bodies beyond this (as sent or gunzipped) get 413",
    ),
    Option(
        "--otlp-retry-after-s",
        int,
        _default(OtlpConfig, "retry_after_s"),
        "Retry-After of the 503 an OTLP request gets while the buffer is full (block)",
    ),
)

RUN_OPTIONS = (
    *CONNECTION_OPTIONS,
    Option(
        "--state-dir",
        Path,
        None,
        "state directory of the embedded nats-server (unset: $XDG_STATE_HOME/cortex-log-gateway)",
    ),
    Option("--workers", int, 1, "gateway processes sharing the queue group (one per core)"),
    Option("--gateway-id", str, None, "this instance's id (default: host-pid-random)"),
    Option(
        "--queue-group",
        str,
        _default(GatewayConfig, "queue_group"),
        "queue group shared by gateway processes",
    ),
    Option(
        "--max-batch-entries", int, _default(BatchLimits, "max_entries"), "flush a batch at this many entries"
    ),
    Option(
        "--max-batch-bytes",
        int,
        _default(BatchLimits, "max_bytes"),
        "flush before a batch message (headers included) exceeds this",
    ),
    Option(
        "--max-batch-delay-ms",
        int,
        _default(BatchLimits, "max_delay_ms"),
        "flush a batch this long after its oldest entry arrived",
    ),
    Option("--per-source", _bool, _default(BatchLimits, "per_source"), "batch each source separately"),
    Option(
        "--max-open-sources",
        int,
        _default(BatchLimits, "max_open_sources"),
        "most per-source batches open at once",
    ),
    Option(
        "--max-buffered-entries",
        int,
        _default(BufferLimits, "max_entries"),
        "most entries held by the gateway",
    ),
    Option(
        "--max-buffered-bytes",
        int,
        _default(BufferLimits, "max_bytes"),
        "most entry bytes held by the gateway",
    ),
    Option(
        "--overflow",
        _choice(OverflowPolicy),
        _default(BufferLimits, "overflow"),
        "when full: block, drop_oldest or drop_newest",
    ),
    Option(
        "--max-publish-rate",
        float,
        _default(ThrottleLimits, "max_publish_rate"),
        "most batches per second sent to the bus (unset: no limit)",
    ),
    Option(
        "--max-publish-bytes-rate",
        float,
        _default(ThrottleLimits, "max_publish_bytes_rate"),
        "most bytes per second sent to the bus (unset: no limit)",
    ),
    Option(
        "--max-in-flight",
        int,
        _default(ThrottleLimits, "max_in_flight"),
        "most unacknowledged JetStream publishes",
    ),
    Option(
        "--publish-timeout-s",
        float,
        _default(PublishPolicy, "timeout_s"),
        "wait this long for one publish's ack",
    ),
    Option(
        "--publish-retry-deadline-s",
        float,
        _default(PublishPolicy, "retry_deadline_s"),
        "give up on a batch after retrying this long",
    ),
    Option("--stream-name", str, _default(StreamSpec, "name"), "JetStream stream for the gateway's output"),
    Option(
        "--stream-max-age-s", float, _default(StreamSpec, "max_age_s"), "how long the stream keeps messages"
    ),
    Option("--stream-replicas", int, _default(StreamSpec, "replicas"), "stream replicas (3 on a cluster)"),
    Option(
        "--stream-duplicate-window-s",
        float,
        _default(StreamSpec, "duplicate_window_s"),
        "duplicate window of a stream the gateway creates",
    ),
    Option("--ingest", _ingest, "core", "core (subscribe) or jetstream (durable: a work-queue stream)"),
    Option(
        "--ingest-stream",
        str,
        _default(DurableIngest, "stream"),
        "work-queue stream capturing entries (jetstream)",
    ),
    Option(
        "--ingest-durable",
        str,
        _default(DurableIngest, "durable"),
        "durable consumer shared by gateways (jetstream)",
    ),
    Option(
        "--ingest-replicas",
        int,
        _default(DurableIngest, "replicas"),
        "replicas of an ingest stream the gateway creates",
    ),
    Option(
        "--ingest-ack-wait-s",
        float,
        _default(DurableIngest, "ack_wait_s"),
        "redeliver an entry not acknowledged this long",
    ),
    Option(
        "--ingest-max-ack-pending",
        int,
        _default(DurableIngest, "max_ack_pending"),
        "most unacknowledged entries on the consumer",
    ),
    Option("--spool-dir", Path, None, "spool batches the bus would not take here (core ingest; none: drop)"),
    Option(
        "--spool-max-bytes",
        int,
        _default(SpoolConfig, "max_bytes"),
        "most bytes the spool holds; when full --overflow applies",
    ),
    Option(
        "--spool-fsync",
        _choice(FsyncPolicy),
        _default(SpoolConfig, "fsync"),
        "always, interval (each second) or never",
    ),
    Option("--alerts", _bool, _default(AlertConfig, "enabled"), "publish error-pattern alerts"),
    Option(
        "--alert-threshold",
        int,
        _default(PatternLimits, "threshold"),
        "alert when a pattern occurs this many times ...",
    ),
    Option("--alert-window-s", float, _default(PatternLimits, "window_s"), "... within this many seconds"),
    Option(
        "--alert-cooldown-s",
        float,
        _default(PatternLimits, "cooldown_s"),
        "quiet time after a pattern alerts, unless it worsens",
    ),
    Option(
        "--alert-max-patterns",
        int,
        _default(PatternLimits, "max_patterns"),
        "most patterns tracked (least recently seen forgotten)",
    ),
    Option("--max-alert-rate", float, _default(AlertConfig, "max_rate"), "most alerts per second"),
    Option(
        "--redact",
        _bool,
        _default(GatewayConfig, "redact"),
        "replace secrets (sensitive metadata keys, tokens in text) with [REDACTED]",
    ),
    Option(
        "--redact-keys", _csv, None, "metadata keys to redact, comma-separated (default: a built-in list)"
    ),
    _CONNECT_TIMEOUT,
    Option(
        "--shutdown-timeout-s",
        float,
        _default(GatewayConfig, "shutdown_timeout_s"),
        "most time to flush and wait for acks on shutdown",
    ),
    Option(
        "--pending-msgs-limit",
        int,
        _default(GatewayConfig, "pending_msgs_limit"),
        "core ingest: most messages held in the gateway while the buffer is full (beyond: shed, counted)",
    ),
    Option(
        "--pending-bytes-limit",
        int,
        _default(GatewayConfig, "pending_bytes_limit"),
        "core ingest: most bytes held so while the buffer is full (beyond: shed, counted)",
    ),
    Option(
        "--http-port",
        int,
        None,
        "serve /healthz, /readyz and /metrics on this port (0: any free port; unset: no HTTP server)",
    ),
    Option("--http-host", str, "127.0.0.1", "address of the HTTP server"),
    *MCP_HTTP_OPTIONS,
    Option("--log-level", _level, "info", "debug, info, warning or error"),
    Option(
        "--control",
        _bool,
        True,
        "answer the control service on NATS (log-gateway ctl; status, config get/set)",
    ),
    Option(
        "--strict",
        _bool,
        _default(GatewayConfig, "strict_entries"),
        "reject entries with an empty logId or source, or a createdAt that is not RFC 3339 "
        "(default: accept what the platform's schema accepts)",
    ),
    Option(
        "--nats-port",
        _port,
        None,
        "client port of the embedded nats-server (unset: 4222 when free, else any free port; 0: any)",
    ),
    Option(
        "--summary-interval-s",
        _not_negative,
        60.0,
        "log a one-line summary (rates, rejected, dropped, buffered, spooled) this often (0: never)",
    ),
    *_OTLP_OPTIONS,
)


ASYNCAPI_OPTIONS = tuple(opt for opt in RUN_OPTIONS if opt.flag in ("--subject-prefix", "--queue-group"))
"""What the AsyncAPI document depends on: the subjects and the ingest queue group."""


def _compression(text: str) -> str:
    value = text.strip().lower()
    if value not in ("zstd", "gzip"):
        raise ValueError(f"expected zstd or gzip, got {text!r}")
    return value


ARCHIVE_OPTIONS = (
    *_REMOTE_CONNECTION_OPTIONS,
    Option("--dir", Path, None, "directory for the segment files (required)"),
    Option("--compression", _compression, str(_default(ArchiveConfig, "compression")), "zstd or gzip"),
    Option(
        "--max-segment-bytes",
        int,
        _default(ArchiveConfig, "max_segment_bytes"),
        "roll a segment at this many uncompressed bytes",
    ),
    Option(
        "--max-segment-age-s",
        float,
        _default(ArchiveConfig, "max_segment_age_s"),
        "roll a segment this long after it was started",
    ),
    Option(
        "--durable",
        str,
        _default(ArchiveConfig, "durable"),
        "durable consumer name (archivers sharing it share the work)",
    ),
    Option("--stream-name", str, _default(ArchiveConfig, "stream"), "JetStream stream holding the batches"),
    Option("--fsync", _bool, _default(ArchiveConfig, "fsync"), "fsync each finished segment"),
    _CONNECT_TIMEOUT,
    Option("--log-level", _level, "info", "debug, info, warning or error"),
)
OTLP_EXPORT_OPTIONS = (
    *_REMOTE_CONNECTION_OPTIONS,
    Option("--endpoint", str, None, "OTLP/HTTP logs URL, e.g. http://collector:4318/v1/logs (required)"),
    Option(
        "--durable", str, _default(ExportConfig, "durable"), "durable consumer name (a restart resumes there)"
    ),
    Option("--stream-name", str, _default(ExportConfig, "stream"), "JetStream stream holding the batches"),
    Option("--export-timeout-s", float, _default(ExportConfig, "timeout_s"), "wait this long for one export"),
    Option(
        "--export-retry-deadline-s",
        float,
        _default(ExportConfig, "retry_deadline_s"),
        "retry a batch this long (429, 503, 5xx, no answer), then leave it for redelivery",
    ),
    Option(
        "--ack-wait-s",
        float,
        _default(ExportConfig, "ack_wait_s"),
        "the consumer's ack wait (above twice the retry deadline plus one timeout)",
    ),
    _CONNECT_TIMEOUT,
    Option("--log-level", _level, "info", "debug, info, warning or error"),
)
TAIL_OPTIONS = (
    *_REMOTE_CONNECTION_OPTIONS,
    Option("--level", _level_name, _default(TailOptions, "min_level"), "show this level and above"),
    Option("--source", _csv, None, "show only these sources (comma-separated)"),
    Option("--json", _bool, _default(TailOptions, "as_json"), "one JSON entry per line, for piping"),
    Option("--color", _color, "auto", "auto, always or never"),
    _CONNECT_TIMEOUT,
    Option(
        "--rejected",
        _bool,
        _default(TailOptions, "rejected"),
        "also show the messages the gateway rejected (cortex_logging.entry.rejected)",
    ),
)
MCP_OPTIONS = (
    *_REMOTE_CONNECTION_OPTIONS,
    Option("--stream-name", str, _default(StreamSpec, "name"), "stream holding the gateway's batches"),
    Option("--archive-dir", Path, None, _QUERY_ARCHIVE),
    _CONNECT_TIMEOUT,
    Option("--log-level", _level, "warning", "debug, info, warning or error (to stderr: stdout is MCP's)"),
)
"""``log-gateway mcp``: the MCP server over stdio, for an agent host that starts it."""


def _order(text: str) -> str:
    value = text.strip().lower()
    if value not in ("oldest", "newest"):
        raise ValueError(f"expected oldest or newest, got {text!r}")
    return value


QUERY_OPTIONS = (
    Option("--nats-url", _servers, (), "NATS server URL(s), comma-separated (none: the archive alone)"),
    *_CREDENTIALS,
    Option("--stream-name", str, "CORTEX_LOGGING", "JetStream stream holding the batches"),
    Option("--archive-dir", Path, None, "also read the archive's segments in this directory"),
    Option("--json", _bool, False, "one JSON entry per line, for piping"),
    Option("--all", _bool, False, "stream the whole result as NDJSON (no pages)"),
    Option("--color", _color, "auto", "auto, always or never"),
    _CONNECT_TIMEOUT,
)
"""How ``log-gateway query`` reaches the stream and the archive, and how it prints."""
_QUERY_FILTERS = (
    ("--level", "level", "exactly this level: debug, info, warn, error or fatal"),
    ("--min-level", "min_level", "this level and above"),
    ("--start", "start", "entries created at or after this RFC 3339 time"),
    ("--end", "end", "entries created at or before this RFC 3339 time"),
    ("--source", "source", "entries of this source"),
    ("--component", "component", "entries of this component"),
    ("--trace-id", "traceId", "entries of this traceId"),
    ("--filter", "filter", "text in the message (a case-insensitive substring)"),
    ("--limit", "limit", "entries per page, 1 to 1000 [default 100]"),
    ("--cursor", "cursor", "continue after the page that printed this cursor"),
    ("--order", "order", "oldest or newest first [default oldest]"),
)
"""The question itself: flags only (no variable, no file key), so no setting left in the
environment for one command (``LOG_GATEWAY_LEVEL`` for ``tail``) filters another's answer."""


def add_query_filters(parser: argparse.ArgumentParser) -> None:
    """Add the query's filters (the fields of ``contracts.query.LogQuery``) as flags."""
    for flag, field, text in _QUERY_FILTERS:
        parser.add_argument(flag, dest=f"q_{field}", metavar=flag.removeprefix("--").upper(), help=text)
    parser.add_argument(
        "--regex",
        dest="q_regex",
        action="store_true",
        help="--filter is a regular expression (case-insensitive)",
    )


CTL_OPTIONS = (
    *_REMOTE_CONNECTION_OPTIONS,
    Option("--json", _bool, False, "JSON replies (one list per command), for piping"),
    Option("--timeout-s", float, 2.0, "wait this long for the gateways' replies"),
    _CONNECT_TIMEOUT,
)
"""``log-gateway ctl``: a server to reach, how long to wait, how to print."""


def _form(text: str) -> str:
    value = text.strip().lower()
    if value not in WIRE_FORMS:
        raise ValueError(f"expected {', '.join(WIRE_FORMS)}, got {text!r}")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected at least 1, got {text!r}")
    return value


SEND_OPTIONS = (
    *_REMOTE_CONNECTION_OPTIONS,
    Option("--level", _level_name, _default(SendOptions, "level"), "debug, info, warn, error or fatal"),
    Option("--message", str, _default(SendOptions, "message"), "the entries' message"),
    Option("--source", str, _default(SendOptions, "source"), "the entries' source"),
    Option("--count", _at_least_one, _default(SendOptions, "count"), "how many entries to publish"),
    Option("--form", _form, _default(SendOptions, "form"), "wire form: structured, binary or bare"),
    Option(
        "--subject", str, None, "subject to publish on (default: the entry subject, after --subject-prefix)"
    ),
    _CONNECT_TIMEOUT,
)


def send_options(values: Mapping[str, Any]) -> SendOptions:
    """What ``log-gateway send`` publishes."""
    return SendOptions(
        level=values["level"],
        message=values["message"],
        source=values["source"],
        count=values["count"],
        form=values["form"],
        subject=values["subject"] or Subjects(prefix=values["subject_prefix"]).entry,
    )


def _shown(value: Any) -> str | None:
    """A default as a person types it on the command line; None when there is none to show."""
    if value is None or value in ((), "", frozenset()):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def add_options(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    """Add each option as a flag whose help names its variable and, if it has one, its default."""
    for opt in options:
        shown = _shown(opt.default)
        if shown is not None and opt.secret:
            shown = "(secret)"
        where = opt.env if shown is None else f"{opt.env}; default {shown}"
        # A boolean flag may stand alone (--json) or take a value (--json false).
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if opt.parse is _bool else {}
        parser.add_argument(opt.flag, dest=opt.dest, default=None, help=f"{opt.help} [{where}]", **extra)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE``, whose help states the precedence of every setting."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="TOML file of settings, keyed by the flag names with underscores (max_batch_delay_ms = 100); "
        "each setting comes from its flag, else its LOG_GATEWAY_* variable, else this file, else its default",
    )


def read_options(
    args: argparse.Namespace, options: tuple[Option, ...], environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """Each option's value: flag, else variable, else the ``--config`` file (``args.config``), else default.

    Raises:
        SettingError: a value does not parse, or the file is bad; names the flag and variable or the key.
    """
    sourced = read_sourced(args, options, environ)
    values: dict[str, Any] = {dest: value for dest, (value, _) in sourced.items()}
    values[_SOURCES] = {dest: source for dest, (_, source) in sourced.items()}
    return values


def read_sourced(
    args: argparse.Namespace, options: tuple[Option, ...], environ: Mapping[str, str] = os.environ
) -> dict[str, tuple[Any, str]]:
    """:func:`read_options`, each value with where it came from: ``flag``, ``env``, ``file`` or ``default``.

    Raises:
        SettingError: as :func:`read_options`.
    """
    path = getattr(args, "config", None)
    from_file = _file_values(Path(path), options) if path is not None else {}
    values: dict[str, tuple[Any, str]] = {}
    for opt in options:
        text, source = getattr(args, opt.dest, None), "flag"
        if text is None:
            text, source = environ.get(opt.env), "env"
        if text is not None:
            values[opt.dest] = (_parse(opt, text, f"{opt.flag} / {opt.env}"), source)
        elif opt.dest in from_file:
            values[opt.dest] = (from_file[opt.dest], "file")
        else:
            values[opt.dest] = (opt.default, "default")
    return values


def _parse(opt: Option, text: str, where: str) -> Any:
    try:
        return opt.parse(text)
    except ValueError as exc:
        raise SettingError(f"{where}: {exc}") from None


def _file_values(path: Path, options: tuple[Option, ...]) -> dict[str, Any]:
    """Every setting in the file, type-checked and parsed by its option's parser (used or not)."""
    by_name = {opt.dest: opt for opt in options}
    try:
        found = read_config(path, by_name)
    except ValueError as exc:
        raise SettingError(f"{path}: {exc}") from None
    return {
        name: _parse(by_name[name], _file_text(by_name[name], value, f"{path}: {name}"), f"{path}: {name}")
        for name, value in found.items()
    }


_TOML_TYPES = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"))
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "a boolean": (bool,),
    "an integer": (int,),
    "a number": (int, float),
    "a string": (str,),
    _LIST: (str, list),
}


def _file_text(opt: Option, value: Any, where: str) -> str:
    """The text a flag would give for a TOML ``value``, if it has the option's type."""
    kind = opt.kind
    accepted = isinstance(value, _ACCEPTS[kind]) and (kind == "a boolean" or not isinstance(value, bool))
    if isinstance(value, list):
        accepted = accepted and all(isinstance(item, str) and "," not in item for item in value)
    if not accepted:
        got = next((name for cls, name in _TOML_TYPES if isinstance(value, cls)), type(value).__name__)
        raise SettingError(f"{where}: expected {kind}, got {got} {value!r}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def parse_setting(opt: Option, value: Any, where: str) -> Any:
    """``opt``'s value from text (as its flag or variable takes it) or from a config-file type
    (an integer, a number, a boolean, an array of strings: JSON gives the same).

    Raises:
        SettingError: the value does not parse or has the wrong type; names ``where``.
    """
    text = value if isinstance(value, str) else _file_text(opt, value, where)
    return _parse(opt, text, where)


def check_config(path: Path) -> int:
    """Check the config file ``path`` on top of the defaults as ``run`` would; how many settings it sets.

    Raises:
        SettingError: naming the file and the bad key (or the settings that conflict).
    """
    values = read_sourced(argparse.Namespace(config=path), RUN_OPTIONS, environ={})
    try:
        run_settings({dest: value for dest, (value, _) in values.items()})
    except SettingError as exc:
        raise SettingError(f"{path}: {exc}") from None
    return sum(source == "file" for _, source in values.values())


def effective_settings(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The lines of ``config show``: each ``run`` setting, its value (secrets masked) and its source.

    Raises:
        SettingError: a setting is bad, as ``run`` would say.
    """
    sourced = read_sourced(args, RUN_OPTIONS, environ)
    run_settings({dest: value for dest, (value, _) in sourced.items()})
    rows = [("setting", "value", "source")]
    rows += [(opt.dest, _shown_value(opt, sourced[opt.dest][0]), sourced[opt.dest][1]) for opt in RUN_OPTIONS]
    width = [max(len(row[i]) for row in rows) for i in (0, 1)]
    return [f"{name:<{width[0]}}  {value:<{width[1]}}  {source}" for name, value, source in rows]


def _shown_value(opt: Option, value: Any) -> str:
    """``value`` as ``config show`` prints it: secrets as ***, URLs without their credentials."""
    if value is None or value == ():
        return "-"
    if opt.secret:
        return "***"
    if opt.parse is _servers:
        return ",".join(redact_url(url) for url in value)
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return str(value) if value != "" else '""'


_SOURCES = "_sources"
"""The key of ``read_options``' values holding where each setting came from."""
_EVERY_OPTION = {
    opt.dest: opt for opt in (*RUN_OPTIONS, *ARCHIVE_OPTIONS, *TAIL_OPTIONS, *OTLP_EXPORT_OPTIONS)
}


def _named(exc: ValueError, values: Mapping[str, Any]) -> SettingError:
    """``exc`` as a SettingError naming each setting it mentions as the user gave it.

    A config object names its fields (``max_batch_entries must be at least 1``); a
    person typed ``--max-batch-entries``, set ``LOG_GATEWAY_MAX_BATCH_ENTRIES``, or
    wrote the key in the config file.
    """
    sources = values.get(_SOURCES)
    if sources is None:  # (a config file checked alone: its keys are the names)
        return SettingError(str(exc))
    with_file = "file" in sources.values()

    def name(match: re.Match[str]) -> str:
        opt = _EVERY_OPTION.get(match.group(0))
        if opt is None:
            return match.group(0)
        source = sources.get(opt.dest)
        if source == "env":
            return opt.env
        # With a config file in play, a key (set there or not) is named as the file names it.
        return opt.dest if source == "file" or with_file else opt.flag

    return SettingError(re.sub(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", name, str(exc)))


def connection_settings(values: Mapping[str, Any]) -> ConnectionSettings:
    """The connection part of the settings.

    Raises:
        SettingError: naming the bad setting.
    """
    try:
        return ConnectionSettings(
            servers=values["nats_url"],
            token=values["nats_token"],
            user=values["nats_user"],
            password=values["nats_password"],
            creds_file=values["nats_creds"],
            nkey_seed_file=values["nats_nkey_seed"],
            tls_ca=values["tls_ca"],
            tls_cert=values["tls_cert"],
            tls_key=values["tls_key"],
            inbox_prefix=values["inbox_prefix"],
        )
    except ValueError as exc:
        raise _named(exc, values) from None


def gateway_config(values: Mapping[str, Any]) -> GatewayConfig:
    """The gateway part of the settings, with every cross-field rule checked.

    Raises:
        SettingError: naming the bad setting.
    """
    try:
        return GatewayConfig(
            gateway_id=values["gateway_id"] or default_gateway_id(),
            queue_group=values["queue_group"],
            subjects=Subjects(prefix=values["subject_prefix"]),
            batch=_batch(values),
            buffer=BufferLimits(
                max_entries=values["max_buffered_entries"],
                max_bytes=values["max_buffered_bytes"],
                overflow=values["overflow"],
            ),
            throttle=ThrottleLimits(
                max_publish_rate=values["max_publish_rate"],
                max_publish_bytes_rate=values["max_publish_bytes_rate"],
                max_in_flight=values["max_in_flight"],
            ),
            publish=PublishPolicy(
                timeout_s=values["publish_timeout_s"], retry_deadline_s=values["publish_retry_deadline_s"]
            ),
            stream=_stream(values),
            alerts=_alerts(values),
            durable_ingest=_durable(values),
            spool=_spool(values),
            redact=values["redact"],
            redact_keys=tuple(sorted(values["redact_keys"])) if values["redact_keys"] else DEFAULT_KEYS,
            shutdown_timeout_s=values["shutdown_timeout_s"],
            pending_msgs_limit=values["pending_msgs_limit"],
            pending_bytes_limit=values["pending_bytes_limit"],
            strict_entries=values["strict"],
        )
    except ValueError as exc:
        raise _named(exc, values) from None


def _batch(values: Mapping[str, Any]) -> BatchLimits:
    return BatchLimits(
        max_entries=values["max_batch_entries"],
        max_bytes=values["max_batch_bytes"],
        max_delay_ms=values["max_batch_delay_ms"],
        per_source=values["per_source"],
        max_open_sources=values["max_open_sources"],
    )


def _alerts(values: Mapping[str, Any]) -> AlertConfig:
    return AlertConfig(
        enabled=values["alerts"],
        limits=PatternLimits(
            threshold=values["alert_threshold"],
            window_s=values["alert_window_s"],
            cooldown_s=values["alert_cooldown_s"],
            max_patterns=values["alert_max_patterns"],
        ),
        max_rate=values["max_alert_rate"],
    )


def _stream(values: Mapping[str, Any]) -> StreamSpec:
    return StreamSpec(
        name=values["stream_name"],
        max_age_s=values["stream_max_age_s"],
        replicas=values["stream_replicas"],
        duplicate_window_s=values["stream_duplicate_window_s"],
    )


def _spool(values: Mapping[str, Any]) -> SpoolConfig | None:
    if values["spool_dir"] is None:
        return None
    return SpoolConfig(
        directory=values["spool_dir"], max_bytes=values["spool_max_bytes"], fsync=values["spool_fsync"]
    )


def _durable(values: Mapping[str, Any]) -> DurableIngest | None:
    if values["ingest"] == "core":
        return None
    return DurableIngest(
        stream=values["ingest_stream"],
        durable=values["ingest_durable"],
        replicas=values["ingest_replicas"],
        ack_wait_s=values["ingest_ack_wait_s"],
        max_ack_pending=values["ingest_max_ack_pending"],
    )


def asyncapi_config(values: Mapping[str, Any]) -> GatewayConfig:
    """The config the AsyncAPI document describes: ``values`` (of :data:`ASYNCAPI_OPTIONS`), else defaults.

    Raises:
        SettingError: naming the bad setting.
    """
    return gateway_config({opt.dest: opt.default for opt in RUN_OPTIONS} | dict(values))


def run_settings(values: Mapping[str, Any]) -> tuple[GatewayConfig, ConnectionSettings]:
    """The settings of ``run``: the gateway's, the connection's, and the process's checked.

    Raises:
        SettingError: naming the bad setting (the first one, in that order).
    """
    config = gateway_config(values)
    connection = connection_settings(values)
    if values["workers"] < 1:
        raise SettingError(f"--workers must be at least 1, got {values['workers']}")
    _check_connect_timeout(values)
    if mcp_http_settings(values) is not None and values["workers"] > 1:
        raise SettingError("--mcp serves from one gateway process: use it with --workers 1")
    otlp_settings(values)
    return config, connection


def mcp_http_settings(values: Mapping[str, Any]) -> McpHttpSettings | None:
    """The ``/mcp`` listener of ``run --mcp``; None without ``--mcp``.

    Raises:
        SettingError: a bad port, or no token for an address that is not loopback.
    """
    if not values["mcp"]:
        return None
    try:
        return McpHttpSettings(
            host=values["mcp_host"],
            port=values["mcp_port"],
            token=values["mcp_token"],
            archive_dir=values["mcp_archive_dir"],
        )
    except ValueError as exc:
        raise _named(exc, values) from None


def otlp_settings(values: Mapping[str, Any]) -> OtlpConfig | None:
    """The OTLP receiver's settings, None without ``--otlp-port``.

    Raises:
        SettingError: a bad value, or a combination the receiver cannot serve.
    """
    if values.get("otlp_port") is None:
        return None
    if values["ingest"] != "core":
        raise SettingError(
            "--otlp-port needs --ingest core: an OTLP request is answered once its records are "
            "held, and durable ingest acknowledges only what its stream delivered"
        )
    if values["workers"] > 1:
        raise SettingError("--otlp-port serves one port from one process: use --workers 1")
    try:
        return OtlpConfig(
            port=values["otlp_port"],
            host=values["otlp_host"],
            max_body_bytes=values["otlp_max_body_bytes"],
            retry_after_s=values["otlp_retry_after_s"],
        )
    except ValueError as exc:
        raise _named(exc, values) from None


def _check_connect_timeout(values: Mapping[str, Any]) -> None:
    if not values["connect_timeout_s"] > 0:
        raise SettingError(f"--connect-timeout-s must be positive, got {values['connect_timeout_s']}")


def state_dir(values: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Path:
    """Where the embedded nats-server keeps its state: ``--state-dir``, else under ``XDG_STATE_HOME``."""
    if values["state_dir"] is not None:
        return Path(values["state_dir"])
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cortex-log-gateway"


def required_connection(values: Mapping[str, Any]) -> ConnectionSettings:
    """The connection of a command that needs a server (no embedded one).

    Raises:
        SettingError: a bad connection setting, no ``--nats-url``, or a bad ``--connect-timeout-s``.
    """
    connection = connection_settings(values)
    if not connection.servers:
        raise SettingError("--nats-url / LOG_GATEWAY_NATS_URL is required for this command")
    _check_connect_timeout(values)
    return connection


def archive_config(values: Mapping[str, Any]) -> ArchiveConfig:
    """The settings of ``archive``.

    Raises:
        SettingError: no ``--dir``, or naming the bad setting.
    """
    if values["dir"] is None:
        raise SettingError("--dir / LOG_GATEWAY_DIR is required")
    try:
        return ArchiveConfig(
            directory=values["dir"],
            compression=Compression(values["compression"]),
            max_segment_bytes=values["max_segment_bytes"],
            max_segment_age_s=values["max_segment_age_s"],
            durable=values["durable"],
            stream=values["stream_name"],
            fsync=values["fsync"],
        )
    except ValueError as exc:
        raise _named(exc, values) from None


def otlp_export_config(values: Mapping[str, Any]) -> ExportConfig:
    """The settings of ``otlp-export``.

    Raises:
        SettingError: no ``--endpoint``, or naming the bad setting.
    """
    if values["endpoint"] is None:
        raise SettingError("--endpoint / LOG_GATEWAY_ENDPOINT is required")
    try:
        return ExportConfig(
            endpoint=values["endpoint"],
            durable=values["durable"],
            stream=values["stream_name"],
            subject=Subjects(prefix=values["subject_prefix"] or "").batch,
            stream_started_subject=Subjects(prefix=values["subject_prefix"] or "").stream_started,
            timeout_s=values["export_timeout_s"],
            retry_deadline_s=values["export_retry_deadline_s"],
            ack_wait_s=values["ack_wait_s"],
        )
    except ValueError as exc:
        raise _named(exc, values) from None


def tail_options(
    values: Mapping[str, Any], *, isatty: Callable[[], bool], environ: Mapping[str, str] = os.environ
) -> TailOptions:
    """The settings of ``tail``; ``--color auto`` colors a terminal (``isatty()``) unless NO_COLOR is set."""
    color = values["color"] == "always" or (
        values["color"] == "auto" and isatty() and "NO_COLOR" not in environ
    )
    return TailOptions(
        min_level=values["level"],
        sources=values["source"],
        as_json=values["json"],
        color=color and not values["json"],
        rejected=values["rejected"],
    )


def check_bench(entries: int, rounds: int) -> None:
    """``bench`` measures at least 100 entries in at least one round.

    Raises:
        SettingError: when it would not.
    """
    if entries < 100 or rounds < 1:
        raise SettingError("--entries must be at least 100 and --rounds at least 1")


def _color_on(choice: str, isatty: Callable[[], bool], environ: Mapping[str, str]) -> bool:
    """``--color``: always, never, or auto (a terminal, unless NO_COLOR is set)."""
    return choice == "always" or (choice == "auto" and isatty() and "NO_COLOR" not in environ)


def query_settings(
    args: argparse.Namespace,
    values: Mapping[str, Any],
    *,
    isatty: Callable[[], bool],
    environ: Mapping[str, str] = os.environ,
) -> tuple[LogQuery, QueryOutput, ConnectionSettings | None]:
    """The query (from ``args``' filter flags), its output and its connection (None: the archive alone).

    Raises:
        SettingError: a bad filter or setting, named by its flag; neither a URL nor an archive.
    """
    # Imported here, not at the top: `run` reads this module at every start and needs it not.
    from gateway.consumers.querycli import QueryOutput  # noqa: PLC0415

    query = query_from_args(args)
    connection = connection_settings(values) if values["nats_url"] else None
    if connection is None and values["archive_dir"] is None:
        raise SettingError("give --nats-url (the stream) or --archive-dir (the archive), or both")
    _check_connect_timeout(values)
    plain = values["json"] or values["all"]
    color = _color_on(values["color"], isatty, environ)
    output = QueryOutput(
        stream=values["stream_name"],
        archive_dir=values["archive_dir"],
        subject_prefix=values["subject_prefix"],
        as_json=plain,
        all=values["all"],
        color=color and not plain,
    )
    return query, output, connection


def query_from_args(args: argparse.Namespace) -> LogQuery:
    """The query of the filter flags :func:`add_query_filters` added (``query``, ``ctl query``).

    Raises:
        SettingError: a bad filter, named by its flag.
    """
    # Imported here, not at the top: `run` reads this module at every start and needs neither.
    from pydantic import ValidationError  # noqa: PLC0415

    from contracts.query import LogQuery, explain  # noqa: PLC0415

    data = {field: getattr(args, f"q_{field}") for _, field, _ in _QUERY_FILTERS} | {"regex": args.q_regex}
    try:
        return LogQuery.model_validate({field: value for field, value in data.items() if value is not None})
    except ValidationError as exc:
        flags = {field: flag for flag, field, _ in _QUERY_FILTERS} | {"regex": "--regex"}
        raise SettingError(explain(exc, flags)) from None
