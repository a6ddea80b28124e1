"""What ``log-gateway run`` loads before it is ready: the hot path, and not what only other
commands or optional features need (the cold start budget is 800 ms; README, "Built on
FastStream"); and the lazily loaded public names still resolve."""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.process.cli import build_parser
from gateway.process.collector import collector_paused
from gateway.process.hidden import import_hiding
from gateway.process.natsserver import NatsServer

# Run as `log-gateway run` runs; at the ready line, write the loaded modules' names to
# argv[1] and stop the gateway with SIGTERM (its ordinary stop).
_AT_READY = """
import json, os, signal, sys
from gateway.process import cli

class Watch:
    def __init__(self, out):
        self._out = out
    def write(self, text):
        if "log-gateway: ready" in text:
            with open(sys.argv[1], "w") as f:
                json.dump(sorted(sys.modules), f)
            os.kill(os.getpid(), signal.SIGTERM)
        return self._out.write(text)
    def __getattr__(self, name):
        return getattr(self._out, name)

sys.stdout = Watch(sys.stdout)
sys.exit(cli.main(sys.argv[2:]))
"""

# Only other commands (query, ctl, mcp, archive, tail, send, bench, otlp-export) or a run's
# optional features (--mcp, --otlp-port, --http-port, --config) need these.
NOT_BEFORE_READY = (
    "mcp",
    "uvicorn",
    "click",
    "starlette",
    "gateway.mcp.server",
    "gateway.mcp.serve",
    "gateway.mcp.http",
    "gateway.mcp.backend",
    "gateway.otlp.receiver",
    "gateway.otlp.http",
    "gateway.otlp.mapping",
    "gateway.otlp.export",
    "h11",
    "google.protobuf",
    "gateway.consumers.archiver",
    "gateway.consumers.subscribe",
    "gateway.consumers.segments",
    "gateway.consumers.tail",
    "gateway.consumers.send",
    "gateway.consumers.query",
    "gateway.consumers.querycli",
    "gateway.control.ctl",
    "zstandard",
    "gateway.bench",
    "duckdb",
    "matplotlib",
    "opentelemetry.trace",
    "opentelemetry.sdk",
    "publishers.emit",
    "publishers.handler",
    "publishers.tracing",
    "prometheus_client",
    "cloudevents",
    "dateutil",
    "tomllib",
)

# What the first entry needs: loaded before "ready", not on the hot path's first use.
BEFORE_READY = (
    "faststream.nats",
    "gateway.process.app",
    "gateway.service",
    "gateway.ingest.fastpath",
    "gateway.ingest.core_intake",
    "gateway.ingest.decode",
    "contracts.canonical",
    "gateway.core.pipeline",
    "gateway.core.encode",
    "gateway.sender",
    "publishers.jetstream",
    "gateway.control.service",
)

# Settings, and pytest-cov's subprocess coverage (which loads tomllib to read pyproject.toml): a
# user's `log-gateway run` has neither.
_NOT_PASSED = ("LOG_GATEWAY_", "COV_CORE_", "COVERAGE_")

LAZY_PACKAGES = ("gateway", "gateway.consumers", "publishers")


def _modules_at_ready(url: str, out: Path) -> set[str]:
    stream = "COLD" + uuid.uuid4().hex[:8].upper()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_PASSED)}
    command = [sys.executable, "-c", _AT_READY, str(out), "run", "--nats-url", url, "--stream-name", stream]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "log-gateway: ready" in done.stdout
    return set(json.loads(out.read_text()))


def test_a_default_run_is_ready_with_the_hot_path_and_nothing_else(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    loaded = _modules_at_ready(nats_server.url, tmp_path / "modules.json")
    assert [name for name in BEFORE_READY if name not in loaded] == []
    unneeded = sorted(
        name for name in loaded if any(name == m or name.startswith(m + ".") for m in NOT_BEFORE_READY)
    )
    assert unneeded == []


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_of_a_lazy_package_resolves(package: str) -> None:
    """In a fresh process: ``from package import *`` gives each name of ``__all__``, the object
    its home module defines; an unknown name is an AttributeError."""
    code = (
        f"import importlib, {package} as pkg\n"
        f"names = {{}}\n"
        f"exec('from {package} import *', names)\n"
        "missing = [n for n in pkg.__all__ if n not in names]\n"
        "assert not missing, missing\n"
        "for n in pkg.__all__:\n"
        "    home = importlib.import_module(pkg._HOMES[n])\n"
        "    assert names[n] is getattr(home, n) is getattr(pkg, n), n\n"
        "try:\n"
        "    pkg.NoSuchName\n"
        "except AttributeError as exc:\n"
        "    assert 'NoSuchName' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
        "print(len(pkg.__all__))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(importlib.import_module(package).__all__) > 0


def test_import_hiding_hides_only_during_the_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cold_optional.py").write_text("VALUE = 1\n")
    (tmp_path / "cold_user.py").write_text(
        "try:\n    import cold_optional\n    HAS = True\nexcept ImportError:\n    HAS = False\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("cold_user", "cold_optional"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    user = import_hiding("cold_user", ("cold_optional",))
    assert user.HAS is False
    assert "cold_optional" not in sys.modules
    assert importlib.import_module("cold_optional").VALUE == 1  # afterwards, as usual


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def test_a_command_builds_its_own_parser_only_and_anything_else_gets_all() -> None:
    every = list(_commands(build_parser()))
    assert {"run", "query", "ctl", "mcp", "bench", "archive", "otlp-export"} <= set(every)
    only_run = _commands(build_parser("run"))
    assert list(only_run) == ["run"]
    assert list(_commands(build_parser("no-such-command"))) == every
    run_flags = {flag for action in only_run["run"]._actions for flag in action.option_strings}
    assert {"--nats-url", "--config", "--mcp", "--otlp-port", "--http-port"} <= run_flags


def test_collector_paused_skips_passes_freezes_what_was_made_and_restores_the_collector() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    with collector_paused():
        assert not gc.isenabled()
        made = [[i] for i in range(5000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # one that was off stays off
    finally:
        gc.enable()
