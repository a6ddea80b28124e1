"""The ``log-gateway`` command: ``run``, ``asyncapi``, ``schemas``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.settings import (
    RUN_OPTIONS,
    SettingError,
    add_options,
    connection_settings,
    gateway_config,
    read_options,
)

__all__ = ["build_parser", "main"]

log = logging.getLogger("log_gateway")


def _state_dir(values: dict[str, Any]) -> Path:
    if values["state_dir"] is not None:
        return Path(values["state_dir"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cortex-log-gateway"


def _run(args: argparse.Namespace) -> int:
    values = read_options(args, RUN_OPTIONS)
    config = gateway_config(values)
    connection = connection_settings(values)
    logging.basicConfig(
        level=values["log_level"].upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from gateway.natsserver import NatsServer

    server = None
    if not connection.servers:
        server = NatsServer(store_dir=_state_dir(values) / "nats").start()
        connection = dataclasses.replace(connection, servers=(server.url,))
        print(f"log-gateway: embedded nats-server at {server.url}", flush=True)
    try:
        return asyncio.run(_serve(config, connection, values))
    finally:
        if server is not None:
            server.stop()


async def _serve(config: Any, connection: Any, values: dict[str, Any]) -> int:
    from contracts.errors import GatewayError
    from gateway.app import build_app
    from gateway.service import ConfigError

    holder = build_app(config, connection, http_port=values["http_port"], http_host=values["http_host"])
    try:
        await holder.app.run()
    except ConfigError as exc:
        print(f"log-gateway: invalid setting: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"log-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    report = holder.report
    return 1 if report is not None and report.unpublished else 0


def _asyncapi(args: argparse.Namespace) -> int:
    from gateway.app import build_asyncapi

    values = read_options(args, RUN_OPTIONS)
    text = build_asyncapi(gateway_config(values), yaml=args.yaml)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from contracts.schemas import export_schemas

    for path in export_schemas(Path(args.dir)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="log-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway (an embedded nats-server when no URL is given)")
    add_options(run, RUN_OPTIONS)
    run.set_defaults(func=_run)
    spec = commands.add_parser(
        "asyncapi", help="print the AsyncAPI document of every subject the gateway speaks"
    )
    add_options(spec, RUN_OPTIONS)
    spec.add_argument("--yaml", action="store_true", help="YAML instead of JSON")
    spec.add_argument("--out", help="write to this file instead of standard output")
    spec.set_defaults(func=_asyncapi)
    schemas = commands.add_parser("schemas", help="write the JSON Schema of every contract into DIR")
    schemas.add_argument("dir", metavar="DIR")
    schemas.set_defaults(func=_schemas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``log-gateway``; returns the exit status (2 for a bad setting)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except SettingError as exc:
        print(f"log-gateway: invalid setting: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
