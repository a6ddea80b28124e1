"""The ``log-gateway`` command and its sub-commands (see :data:`DESCRIPTION`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from gateway.process.collector import collector_paused

# The settings bring pydantic, the contracts, nats-py and the gateway's config: objects that live
# as long as the process, which the collector's passes during the import walk to free nothing.
with collector_paused():
    importlib.import_module("gateway.process.settings")

from gateway.process.settings import (
    ARCHIVE_OPTIONS,
    ASYNCAPI_OPTIONS,
    CTL_OPTIONS,
    MCP_OPTIONS,
    OTLP_EXPORT_OPTIONS,
    QUERY_OPTIONS,
    RUN_OPTIONS,
    SEND_OPTIONS,
    TAIL_OPTIONS,
    SettingError,
    add_config_option,
    add_options,
    add_query_filters,
    archive_config,
    asyncapi_config,
    check_bench,
    check_config,
    effective_settings,
    mcp_http_settings,
    otlp_export_config,
    otlp_settings,
    query_from_args,
    query_settings,
    read_options,
    required_connection,
    run_settings,
    send_options,
    state_dir,
    tail_options,
)

__all__ = ["DESCRIPTION", "build_parser", "main"]

DESCRIPTION = (
    "Batch Cortex log entries from NATS into logBatchCreated CloudEvents on JetStream, "
    "and the tools around it: run the gateway (run), describe what it speaks (asyncapi, schemas), "
    "archive batches to files and read them back (archive, archive-read), watch entries live (tail), "
    "ask for past entries (query), steer running gateways (ctl), publish test entries (send), "
    "forward them over OTLP (otlp-export), measure it (bench) and serve the platform's MCP tools "
    "to agents (mcp). 'log-gateway COMMAND --help' lists a command's flags."
)

log = logging.getLogger("log_gateway")


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run(args: argparse.Namespace) -> int:
    values = read_options(args, RUN_OPTIONS)
    config, connection = run_settings(values)
    if values["mcp"]:
        _require_mcp("run --mcp")
    if otlp_settings(values) is not None:
        _require("run --otlp-port", "otlp", _OTLP_MODULES)
    _configure_logging(values["log_level"])
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the gateway is up and reloads on it
    from contracts.errors import GatewayError
    from gateway.process import supervisor
    from gateway.process.embedded import EmbeddedServer

    server = None
    if not connection.servers:
        server = EmbeddedServer(state_dir(values), values["nats_port"])
        try:
            connection = dataclasses.replace(connection, servers=(server.start().url,))
        except GatewayError as exc:
            print(f"log-gateway: cannot start: {exc}", file=sys.stderr)
            return 1
        print(f"log-gateway: embedded nats-server at {connection.servers[0]}", flush=True)
    try:
        if values["workers"] > 1:
            return supervisor.supervise(
                supervisor.Workers(
                    count=values["workers"],
                    argv=tuple(args.argv),
                    servers=connection.servers,
                    gateway_id=values["gateway_id"],
                    http_port=values["http_port"],
                    spool_dir=values["spool_dir"],
                )
            )
        supervisor.die_with_supervisor()
        _import_app(mcp=values["mcp"])
        return asyncio.run(_serve(config, connection, values, args))
    finally:
        if server is not None:
            server.stop()


def _import_app(*, mcp: bool) -> None:
    """Load the FastStream app (and the hot path) before the loop starts; uvicorn only for ``--mcp``."""
    from gateway.process.collector import collector_paused
    from gateway.process.hidden import import_hiding

    with collector_paused():
        import_hiding("gateway.process.app", () if mcp else ("uvicorn",))


def _build_app(config: Any, connection: Any, values: dict[str, Any], args: argparse.Namespace) -> Any:
    from gateway.process.app import build_app

    return build_app(
        config,
        connection,
        http_port=values["http_port"],
        http_host=values["http_host"],
        values=values,
        reread=lambda: read_options(args, RUN_OPTIONS),
        mcp=mcp_http_settings(values),
        summary_interval_s=values["summary_interval_s"],
        otlp=otlp_settings(values),
    )


async def _serve(config: Any, connection: Any, values: dict[str, Any], args: argparse.Namespace) -> int:
    from nats.errors import Error as NatsError

    from contracts.errors import GatewayError
    from gateway.config import ConfigError
    from gateway.process.connection import redact_url

    holder = _build_app(config, connection, values, args)
    try:
        if not await _started_in_time(holder, values["connect_timeout_s"]):
            servers = ", ".join(redact_url(url) for url in connection.servers)
            print(
                f"log-gateway: cannot start: not connected and ready within {values['connect_timeout_s']:g}s "
                f"(--connect-timeout-s); is NATS reachable at {servers}?",
                file=sys.stderr,
            )
            return 1
    except ConfigError as exc:
        print(f"log-gateway: invalid setting: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"log-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    except NatsError as exc:
        # FastStream gives up at once on what retrying cannot fix (an authorization
        # violation, a bad URL option): say so in one line, not with a traceback.
        print(f"log-gateway: cannot start: NATS connection failed: {exc}", file=sys.stderr)
        return 1
    report = holder.report
    return 1 if report is not None and report.unpublished else 0


async def _started_in_time(holder: Any, timeout_s: float) -> bool:
    """Run the app; False if it was not ready within ``timeout_s`` (then it is stopped)."""
    run = asyncio.create_task(holder.app.run())
    ready = asyncio.create_task(holder.ready.wait())
    done, _ = await asyncio.wait({run, ready}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    if not done:
        run.cancel()
        ready.cancel()
        await asyncio.gather(run, ready, return_exceptions=True)
        return False
    ready.cancel()
    await run  # runs until SIGTERM/SIGINT; raises what start-up raised
    return True


async def _until_signalled(work: Any, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await work


def _archive(args: argparse.Namespace) -> int:
    values = read_options(args, ARCHIVE_OPTIONS)
    connection = required_connection(values)
    config = archive_config(values)
    _configure_logging(values["log_level"])
    return asyncio.run(_archive_main(connection, config, values["connect_timeout_s"]))


async def _archive_main(connection: Any, config: Any, timeout_s: float) -> int:
    from gateway.consumers.archiver import Archiver

    def archive(nc: Any, stop: asyncio.Event) -> Any:
        archiver = Archiver(nc, config)  # creates the directory
        print(f"log-gateway: archiving to {config.directory}", flush=True)
        return archiver.run(stop)

    return await _connected_until_signalled(connection, timeout_s, archive)


async def _connected_until_signalled(connection: Any, timeout_s: float, work: Any) -> int:
    """Connect within ``timeout_s``, run ``work(nc, stop)`` until SIGTERM/SIGINT sets ``stop``, drain.

    Returns 1 (having said why in one line) when not connected in time.
    """
    from gateway.process.connection import ConnectFailed, connect_within

    try:
        nc = await connect_within(connection, timeout_s)
    except ConnectFailed as exc:
        print(f"log-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    try:
        await _until_signalled(work(nc, stop), stop)
    finally:
        await nc.drain()
    return 0


def _archive_read(args: argparse.Namespace) -> int:
    """Print each file's entries; one line and status 1 for a file that is missing or no segment.

    A reader that goes away (``| head``) ends the output quietly with status 141,
    as a tool killed by SIGPIPE would.
    """
    from gateway.consumers.segments import read_segment

    try:
        for name in args.files:
            for entry in read_segment(Path(name)):
                sys.stdout.write(entry.to_json().decode() + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would flush stdout again at exit and fail the same way: point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        print(f"log-gateway: archive-read: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"log-gateway: archive-read: {exc}", file=sys.stderr)
        return 1
    return 0


def _tail(args: argparse.Namespace) -> int:
    values = read_options(args, TAIL_OPTIONS)
    connection = required_connection(values)
    options = tail_options(values, isatty=sys.stdout.isatty)
    return asyncio.run(_tail_main(connection, options, values["connect_timeout_s"]))


async def _tail_main(connection: Any, options: Any, timeout_s: float) -> int:
    from gateway.consumers.tail import tail

    return await _connected_until_signalled(connection, timeout_s, lambda nc, stop: tail(nc, options, stop))


def _query(args: argparse.Namespace) -> int:
    """One page, or with ``--all`` the whole result; a query that cannot run is one line and status 2."""
    values = read_options(args, QUERY_OPTIONS)
    query, output, connection = query_settings(args, values, isatty=sys.stdout.isatty)
    try:
        return asyncio.run(_query_main(query, output, connection, values["connect_timeout_s"]))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


async def _query_main(query: Any, output: Any, connection: Any, timeout_s: float) -> int:
    from nats.errors import Error as NatsError

    from contracts.query import QueryError
    from gateway.consumers.querycli import run_query
    from gateway.process.connection import ConnectFailed, connect_within

    nc = None
    try:
        if connection is not None:
            nc = await connect_within(connection, timeout_s)
        await run_query(nc, query, output)
    except ConnectFailed as exc:
        print(f"log-gateway: cannot query: {exc}", file=sys.stderr)
        return 1
    except QueryError as exc:
        print(f"log-gateway: query: {exc}", file=sys.stderr)
        return 2
    except NatsError as exc:  # JetStream off, no permission, a timeout: say so, no traceback
        print(f"log-gateway: query: NATS: {exc!r}", file=sys.stderr)
        return 1
    finally:
        if nc is not None:
            await nc.close()
    return 0


def _send(args: argparse.Namespace) -> int:
    values = read_options(args, SEND_OPTIONS)
    connection = required_connection(values)
    return asyncio.run(_send_main(connection, send_options(values), values["connect_timeout_s"]))


async def _send_main(connection: Any, options: Any, timeout_s: float) -> int:
    from gateway.consumers.send import send
    from gateway.process.connection import ConnectFailed, connect_within, redact_url

    try:
        nc = await connect_within(connection, timeout_s)
    except ConnectFailed as exc:
        print(f"log-gateway: cannot send: {exc}", file=sys.stderr)
        return 1
    try:
        ids = await send(nc, options)
    finally:
        await nc.drain()
    where = ", ".join(redact_url(url) for url in connection.servers)
    noun = "entry" if len(ids) == 1 else "entries"
    print(f"log-gateway: sent {len(ids)} {options.form} {noun} to {options.subject} at {where}", flush=True)
    print(f"log-gateway: first logId {ids[0]}", flush=True)
    return 0


class MissingExtra(Exception):
    """A command needs an optional dependency that is not installed."""


def _require(what: str, extra: str, modules: dict[str, str]) -> None:
    """Import ``modules`` (module: its package) now: a missing one is one line naming the extra.

    Raises:
        MissingExtra: a module cannot be imported.
    """
    for module, package in modules.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(
                f"{what} needs {package}, which is not installed; "
                f"install it with: pip install 'cortex-log-gateway[{extra}]'"
            ) from None


def _require_mcp(what: str) -> None:
    _require(what, "mcp", {"mcp.server": "mcp", "uvicorn": "uvicorn"})


def _mcp(args: argparse.Namespace) -> int:
    """``log-gateway mcp``: the MCP server on stdin/stdout; logs (and errors) go to stderr."""
    values = read_options(args, MCP_OPTIONS)
    connection = required_connection(values)
    _require_mcp("mcp")
    _configure_logging(values["log_level"])
    return asyncio.run(_mcp_main(connection, values))


async def _mcp_main(connection: Any, values: dict[str, Any]) -> int:
    from gateway.mcp.serve import serve_stdio
    from gateway.process.connection import ConnectFailed, connect_within

    # The SDK reads stdin in a thread that no cancellation interrupts, so a handler that
    # stops gracefully would wait for the host's next line: SIGTERM and SIGINT keep their
    # default action and end the process. Nothing answered is lost (log_message answers
    # once its entry is on the server); the host's usual stop, closing stdin, exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    try:
        nc = await connect_within(connection, values["connect_timeout_s"])
    except ConnectFailed as exc:
        print(f"log-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        await serve_stdio(
            nc,
            stream=values["stream_name"],
            subject_prefix=values["subject_prefix"],
            archive_dir=values["archive_dir"],
        )
    finally:
        await nc.drain()
    return 0


def _bench_query(args: argparse.Namespace) -> int:
    """``bench --query``: the query engine over an archive it writes, against DuckDB's read_json."""
    _require("bench --query", "bench", {"duckdb": "duckdb"})
    import json
    import tempfile

    from gateway.bench.querybench import QueryBenchConfig, format_query_results, run_query_bench

    out = Path(args.out)
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    check_bench(entries, 1)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix="query-archive-") as archive:
        results = run_query_bench(QueryBenchConfig(directory=Path(archive), entries=entries))
    (out / "query-results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "query-results.md").write_text(format_query_results(results) + "\n")
    print(format_query_results(results))
    print(f"log-gateway: results in {out}/query-results.json and query-results.md")
    return 0


# What the OTLP receiver and exporter import (module: its package), all in the otlp extra.
_OTLP_MODULES = {
    "opentelemetry.proto.logs.v1.logs_pb2": "opentelemetry-proto",
    "google.rpc.status_pb2": "googleapis-common-protos",
    "h11": "h11",
}


def _otlp_export(args: argparse.Namespace) -> int:
    values = read_options(args, OTLP_EXPORT_OPTIONS)
    connection = required_connection(values)
    config = otlp_export_config(values)
    _require("otlp-export", "otlp", _OTLP_MODULES)
    _configure_logging(values["log_level"])
    return asyncio.run(_otlp_export_main(connection, config, values["connect_timeout_s"]))


async def _otlp_export_main(connection: Any, config: Any, timeout_s: float) -> int:
    from gateway.otlp.export import OtlpExporter

    def export(nc: Any, stop: asyncio.Event) -> Any:
        print(f"log-gateway: exporting batches to {config.endpoint}", flush=True)
        return OtlpExporter(nc, config).run(stop)

    return await _connected_until_signalled(connection, timeout_s, export)


def _bench_pino(args: argparse.Namespace) -> int:
    """``bench --pino``: the pino transport's node benchmark beside a real gateway."""
    import json

    from gateway.bench.pinobench import format_pino_results, pino_bench_problem, run_pino_bench

    problem = pino_bench_problem()
    if problem is not None:
        print(f"log-gateway: {problem}", file=sys.stderr)
        return 2
    count, rounds = args.entries or (2_000 if args.quick else 20_000), args.rounds or (1 if args.quick else 3)
    check_bench(count, rounds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = run_pino_bench(count, rounds)
    (out / "pino-results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "pino-results.md").write_text(format_pino_results(results) + "\n")
    print(format_pino_results(results))
    print(f"log-gateway: results in {out}/pino-results.json and pino-results.md")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.query:
        return _bench_query(args)
    if args.pino:
        return _bench_pino(args)
    _require("bench", "bench", {"opentelemetry.sdk._logs": "opentelemetry-sdk", "matplotlib": "matplotlib"})
    from gateway.bench import BenchConfig, run_bench

    out = Path(args.out)
    config = BenchConfig.quick(out) if args.quick else BenchConfig(out_dir=out)
    if args.entries is not None or args.rounds is not None:
        config = dataclasses.replace(
            config, entries=args.entries or config.entries, rounds=args.rounds or config.rounds
        )
    check_bench(config.entries, config.rounds)
    run_bench(config)
    print((out / "results.md").read_text())
    print(f"log-gateway: results in {out}/results.json, results.md and batch_size.png")
    return 0


def _asyncapi(args: argparse.Namespace) -> int:
    from gateway.process.app import build_asyncapi

    if args.yaml:
        _require("asyncapi --yaml", "yaml", {"yaml": "pyyaml"})
    values = read_options(args, ASYNCAPI_OPTIONS)
    text = build_asyncapi(asyncapi_config(values), yaml=args.yaml)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def _config_check(args: argparse.Namespace) -> int:
    count = check_config(args.file)
    print(f"log-gateway: {args.file} is valid ({count} settings)")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    print("\n".join(effective_settings(args)))
    return 0


def _add_config_command(commands: Any) -> None:
    config = commands.add_parser("config", help="check a config file, or show the effective settings")
    actions = config.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate a config file without starting anything")
    check.add_argument("file", metavar="FILE", type=Path)
    check.set_defaults(func=_config_check)
    show = actions.add_parser("show", help="print every run setting, its source and value (secrets masked)")
    add_config_option(show)
    add_options(show, RUN_OPTIONS)
    show.set_defaults(func=_config_show)


def _ctl(args: argparse.Namespace) -> int:
    from gateway.control.ctl import parse_assignments

    values = read_options(args, CTL_OPTIONS)
    connection = required_connection(values)
    action = args.action if args.action == "status" else f"config {args.config_action}"
    try:
        changes = parse_assignments(args.changes) if action == "config set" else None
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    return asyncio.run(_ctl_main(connection, values, action, args, changes))


async def _ctl_main(connection: Any, values: dict[str, Any], action: str, args: Any, changes: Any) -> int:
    from gateway.control.ctl import run_ctl
    from gateway.process.connection import ConnectFailed, connect_within

    try:
        nc = await connect_within(connection, values["connect_timeout_s"])
    except ConnectFailed as exc:
        print(f"log-gateway: ctl: cannot connect: {exc}", file=sys.stderr)
        return 1
    try:
        return await run_ctl(
            nc,
            action,
            gateway=args.gateway,
            changes=changes,
            dry_run=getattr(args, "dry_run", False),
            as_json=values["json"],
            timeout_s=values["timeout_s"],
            prefix=values["subject_prefix"],
        )
    finally:
        await nc.close()


def _ctl_query(args: argparse.Namespace) -> int:
    values = read_options(args, CTL_OPTIONS)
    connection = required_connection(values)
    query = query_from_args(args)
    return asyncio.run(_ctl_query_main(connection, values, query, args))


async def _ctl_query_main(connection: Any, values: dict[str, Any], query: Any, args: Any) -> int:
    from gateway.control.ctl import run_ctl_query
    from gateway.process.connection import ConnectFailed, connect_within

    try:
        nc = await connect_within(connection, values["connect_timeout_s"])
    except ConnectFailed as exc:
        print(f"log-gateway: ctl: cannot connect: {exc}", file=sys.stderr)
        return 1
    try:
        return await run_ctl_query(
            nc,
            query,
            gateway=args.gateway,
            to_end=args.to_end,
            as_json=values["json"],
            timeout_s=values["timeout_s"],
            prefix=values["subject_prefix"],
        )
    finally:
        await nc.close()


def _add_ctl_query(actions: Any) -> None:
    query = actions.add_parser(
        "query", help="a page of entries from the gateways' stream, through the control service"
    )
    add_query_filters(query)
    add_options(query, CTL_OPTIONS)
    query.add_argument(
        "--gateway", metavar="ID", help="ask this gateway (default: any one; they share the stream)"
    )
    query.add_argument("--to-end", action="store_true", help="every page in turn, not only the first")
    query.set_defaults(func=_ctl_query)


def _ctl_target(parser: argparse.ArgumentParser) -> None:
    add_options(parser, CTL_OPTIONS)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--gateway", metavar="ID", help="ask only the gateway with this id")
    target.add_argument(
        "--all", action="store_true", help="ask every gateway; each answers for itself (the default)"
    )
    parser.set_defaults(func=_ctl)


def _add_ctl_command(commands: Any) -> None:
    ctl = commands.add_parser("ctl", help="steer running gateways over NATS: status, config get, config set")
    actions = ctl.add_subparsers(dest="action", required=True)
    _ctl_target(actions.add_parser("status", help="counts, buffers, connection, uptime and version"))
    config = actions.add_parser("config", help="the effective settings, or change them live")
    config_actions = config.add_subparsers(dest="config_action", required=True)
    _ctl_target(config_actions.add_parser("get", help="each gateway's settings; which may change live"))
    change = config_actions.add_parser("set", help="change settings live (NAME= restores the default)")
    change.add_argument("changes", nargs="+", metavar="SETTING=VALUE", help="e.g. max_batch_delay_ms=50")
    change.add_argument("--dry-run", action="store_true", help="validate only; change nothing")
    _ctl_target(change)
    _add_ctl_query(actions)


def _schemas(args: argparse.Namespace) -> int:
    from contracts.schemas import export_schemas

    for path in export_schemas(Path(args.dir)):
        print(path)
    return 0


def _add_bench_command(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="measure the gateway against raw NATS, naive publishing, OpenTelemetry"
    )
    bench.add_argument("--quick", action="store_true", help="a smoke run that checks everything works")
    bench.add_argument(
        "--out",
        default="bench-results",
        help="directory for results.json, results.md, the PNG [default %(default)s]",
    )
    bench.add_argument("--entries", type=int, help="entries per measurement")
    bench.add_argument("--rounds", type=int, help="rounds per measurement")
    bench.add_argument(
        "--query",
        action="store_true",
        help="instead: query 1,000,000 archived entries (--entries), against DuckDB's read_json",
    )
    bench.add_argument(
        "--pino",
        action="store_true",
        help="instead: the pino transport's caller cost and end-to-end rate (node, publishers/pino)",
    )
    bench.set_defaults(func=_bench)


def _add_mcp_command(commands: Any) -> None:
    mcp = commands.add_parser(
        "mcp", help="serve the MCP tools (query_logs, log_message, ...) over stdio, for an agent host"
    )
    add_options(mcp, MCP_OPTIONS)
    mcp.set_defaults(func=_mcp)


def _add_query_and_send_commands(commands: Any) -> None:
    query = commands.add_parser(
        "query", help="ask the stream and the archive for entries: a page, or the whole result"
    )
    add_query_filters(query)
    add_options(query, QUERY_OPTIONS)
    query.set_defaults(func=_query)
    send = commands.add_parser("send", help="publish test entries (level, message, source, wire form)")
    add_options(send, SEND_OPTIONS)
    send.set_defaults(func=_send)


class _Version(argparse.Action):
    """``--version``: the installed version, read from the package metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"{parser.prog} {version('cortex-log-gateway')}")
        parser.exit()


class _Inert:
    """What a sub-command that was not asked for is built into: every call does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """The sub-commands, of which only ``only`` (all when None) is built: ``log-gateway run`` does
    not build the twenty other parsers and their hundreds of flags on every start."""

    def __init__(self, commands: Any, only: str | None) -> None:
        self._commands, self._only = commands, only
        self.found = only is None

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self._only is None or name == self._only:
            self.found = True
            return self._commands.add_parser(name, **kwargs)
        return _Inert()


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names, when it starts with one (the top level has options only)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every sub-command; with ``only``, of that one alone (if it exists)."""
    parser = argparse.ArgumentParser(prog="log-gateway", description=DESCRIPTION)
    parser.add_argument("--version", action=_Version)
    commands: Any = _OnlyCommand(parser.add_subparsers(dest="command", required=True), only)
    run = commands.add_parser("run", help="run the gateway (an embedded nats-server when no URL is given)")
    add_config_option(run)
    add_options(run, RUN_OPTIONS)
    run.set_defaults(func=_run)
    spec = commands.add_parser(
        "asyncapi", help="print the AsyncAPI document of every subject the gateway speaks"
    )
    add_options(spec, ASYNCAPI_OPTIONS)
    spec.add_argument("--yaml", action="store_true", help="YAML instead of JSON")
    spec.add_argument("--out", help="write to this file instead of standard output")
    spec.set_defaults(func=_asyncapi)
    archive = commands.add_parser("archive", help="write batches to compressed NDJSON segment files")
    add_options(archive, ARCHIVE_OPTIONS)
    archive.set_defaults(func=_archive)
    read = commands.add_parser("archive-read", help="print the entries of segment files, one JSON per line")
    read.add_argument("files", nargs="+", metavar="FILE")
    read.set_defaults(func=_archive_read)
    tail = commands.add_parser("tail", help="show batched entries and alerts as they arrive")
    add_options(tail, TAIL_OPTIONS)
    tail.set_defaults(func=_tail)
    _add_query_and_send_commands(commands)
    _add_bench_command(commands)
    _add_mcp_command(commands)
    export = commands.add_parser("otlp-export", help="forward stored batches to an OTLP/HTTP logs endpoint")
    add_options(export, OTLP_EXPORT_OPTIONS)
    export.set_defaults(func=_otlp_export)
    schemas = commands.add_parser("schemas", help="write the JSON Schema of every contract into DIR")
    schemas.add_argument("dir", metavar="DIR")
    schemas.set_defaults(func=_schemas)
    _add_config_command(commands)
    _add_ctl_command(commands)
    if not commands.found:  # not a command: the whole parser says which are
        return build_parser()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``log-gateway``; returns the exit status (2 for a bad setting)."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_in(given)).parse_args(given)
    args.argv = given
    try:
        status: int = args.func(args)
    except SettingError as exc:
        print(f"log-gateway: invalid setting: {exc}", file=sys.stderr)
        return 2
    except MissingExtra as exc:
        print(f"log-gateway: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
