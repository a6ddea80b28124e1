"""The rooms of ARCHITECTURE.md, held by their imports: a forbidden import fails here.

Every module's imports are read with ``ast`` (function-level imports too), so
the check needs no import of the code and sees lazy imports as well.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import parse_python

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contracts", "gateway", "publishers")
_RUNTIME = (
    "gateway.alerts",
    "gateway.assembly",
    "gateway.ingest",
    "gateway.process",
    "gateway.sender",
    "gateway.service",
    "gateway.spool",
)


@dataclass(frozen=True)
class Rule:
    """Modules under ``where`` must not import anything under one of ``never``
    (``allow`` lists exceptions under a forbidden prefix)."""

    where: str
    never: tuple[str, ...]
    why: str
    allow: tuple[str, ...] = ()


RULES = (
    Rule("contracts", ("gateway", "publishers"), "the contracts stand alone"),
    Rule(
        "gateway.core",
        ("nats", "faststream", "asyncio", "os", "fcntl", "socket", "gateway", "publishers"),
        "the core is pure: no NATS, no event loop, no files or sockets, no other room",
        allow=("gateway.core",),
    ),
    Rule("publishers", ("gateway",), "egress and emitters use only the pure core", allow=("gateway.core",)),
    Rule(
        "gateway.consumers",
        (*_RUNTIME, "gateway.config"),
        "consumer tools run elsewhere: contracts, the core and NATS only",
    ),
    Rule(
        "gateway.mcp",
        (
            "gateway.ingest",
            "gateway.spool",
            "gateway.sender",
            "gateway.service",
            "gateway.process",
            "gateway.control",
        ),
        "the MCP server reaches a gateway over NATS, as any agent would (the control service's client)",
        allow=("gateway.control.client", "gateway.control.subjects"),
    ),
    Rule("gateway.ingest.wire", ("nats",), "the wire splitter is pure: bytes in, frames out"),
    Rule(
        "gateway.config",
        (*_RUNTIME, "nats", "faststream", "publishers.jetstream", "publishers.stream"),
        "config classes import no runtime code",
    ),
    Rule(
        "gateway.control.client",
        ("gateway", "publishers", "faststream"),
        "the control client is for tools that only ask gateways: contracts and nats",
        allow=("gateway.control.client", "gateway.control.subjects"),
    ),
    Rule(
        "gateway.control.subjects",
        ("gateway", "publishers", "faststream", "nats"),
        "the control subjects are names only",
        allow=("gateway.control.subjects",),
    ),
    Rule(
        "gateway.otlp.mapping",
        ("nats", "faststream", "asyncio", "aiohttp", "h11", "gateway", "publishers"),
        "the OTLP mapping is pure: protobuf messages in, entry data out, and back",
    ),
    Rule("gateway.otlp.http", ("gateway", "contracts", "publishers", "nats"), "HTTP only, for any app"),
    Rule(
        "gateway.otlp.export",
        (*_RUNTIME, "gateway.config"),
        "the exporter is a consumer tool: contracts, the core, the consumers, NATS and HTTP only",
    ),
    Rule(
        "gateway.spool",
        ("gateway.ingest", "gateway.sender", "gateway.service", "gateway.process"),
        "the spool stores",
    ),
)


# Modules that may import the OTLP modules needing the otlp extra (beyond gateway.otlp.config).
_OTLP_IMPORTERS = ("gateway.otlp", "gateway.process.cli", "gateway.process.app", "tests")


def test_only_the_otlp_commands_import_the_otlp_extra() -> None:
    found = [
        f"{module} imports {name}"
        for module, source in project_sources()
        if not any(_under(module, p) for p in _OTLP_IMPORTERS)
        for name in imports_of(source, module)
        if _under(name, "gateway.otlp") and not _under(name, "gateway.otlp.config") and name != "gateway.otlp"
    ]
    assert found == []


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str) -> Iterator[str]:
    """Every module ``source`` imports (relative imports resolved against ``module``)."""
    for node in ast.walk(parse_python(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def violations(sources: Iterable[tuple[str, str]]) -> list[str]:
    """``module imports name: why`` for each forbidden import in ``(module, source)`` pairs."""
    found = []
    for module, source in sources:
        for rule in RULES:
            if not _under(module, rule.where):
                continue
            for name in imports_of(source, module):
                bad = any(_under(name, p) for p in rule.never) and not any(
                    _under(name, a) for a in rule.allow
                )
                if bad:
                    found.append(f"{module} imports {name}: {rule.why}")
    return sorted(set(found))


def project_sources() -> Iterator[tuple[str, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path.read_text(encoding="utf-8")


def test_no_room_imports_what_it_must_not() -> None:
    assert violations(project_sources()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("gateway.core.pipeline", "import nats\n", "gateway.core.pipeline imports nats"),
        (
            "gateway.core.stats",
            "from gateway.sender import Sender\n",
            "gateway.core.stats imports gateway.sender",
        ),
        ("gateway.core.stats", "def f():\n    import asyncio\n", "gateway.core.stats imports asyncio"),
        (
            "publishers.handler",
            "from gateway.service import Gateway\n",
            "publishers.handler imports gateway.service",
        ),
        (
            "gateway.consumers.tail",
            "from ..ingest import decode\n",
            "gateway.consumers.tail imports gateway.ingest",
        ),
        (
            "gateway.config",
            "from publishers.jetstream import X\n",
            "gateway.config imports publishers.jetstream",
        ),
        ("contracts.models", "import gateway.core\n", "contracts.models imports gateway.core"),
    ],
)
def test_a_forbidden_import_is_found(module: str, source: str, expected: str) -> None:
    found = violations([*project_sources(), (module, source)])
    assert any(line.startswith(expected + ":") for line in found), found


def test_allowed_imports_pass() -> None:
    allowed = [
        ("publishers.library", "from gateway.core.pipeline import BatchPipeline\n"),
        ("gateway.core.pipeline", "from gateway.core.accumulator import Accumulator\nimport orjson\n"),
        ("gateway.consumers.tail", "from gateway.core.announce import stream_started\nimport nats\n"),
    ]
    assert violations(allowed) == []


def test_every_module_of_the_project_is_checked() -> None:
    names = {module for module, _ in project_sources()}
    assert {"gateway.core.pipeline", "gateway.sender", "gateway.service", "publishers.library"} <= names


def _rooms_named_in(text: str) -> set[str]:
    """The ``gateway/...`` paths in the first column of a markdown table."""
    rooms = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1].startswith("`gateway/"):
            rooms.add(cells[1].strip("`").rstrip("/"))
    return rooms


def _rooms_on_disk() -> set[str]:
    gateway = ROOT / "gateway"
    packages = {f"gateway/{p.name}" for p in gateway.iterdir() if (p / "__init__.py").exists()}
    return packages | {"gateway/sender.py", "gateway/service.py"}


def test_readme_architecture_and_code_name_the_same_rooms() -> None:
    architecture = _rooms_named_in((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    readme = _rooms_named_in((ROOT / "README.md").read_text(encoding="utf-8"))
    on_disk = _rooms_on_disk()
    assert on_disk <= architecture | {"gateway/bench"}, on_disk - architecture
    assert on_disk <= readme, on_disk - readme
    assert architecture <= on_disk | {p for p in architecture if (ROOT / p).is_file()}


def test_the_entry_path_names_functions_that_exist() -> None:
    """Each ``module.Class.method`` in ARCHITECTURE.md's numbered path is a real name."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").split("## One entry", 1)[1]
    steps = re.findall(r"`((?:ingest|core|sender|publishers)\.[A-Za-z_.]+)`", text)
    assert len(steps) >= 7
    for dotted in (s for s in steps if not s.endswith(".py")):
        parts = ("gateway." + dotted if not dotted.startswith(("gateway.", "publishers.")) else dotted).split(
            "."
        )
        for cut in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                assert hasattr(obj, attr), f"{dotted}: no {attr}"
                obj = getattr(obj, attr)
            break
        else:
            pytest.fail(f"{dotted} names no module")


@pytest.mark.parametrize(
    "first", ["publishers", "gateway", "gateway.core", "contracts", "gateway.process.cli"]
)
def test_each_package_imports_first_in_a_fresh_interpreter(first: str) -> None:
    """No import cycle: whichever package a program imports first, everything loads."""
    code = f"import {first}; import gateway, publishers, contracts; print(gateway.Gateway.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "Gateway"
