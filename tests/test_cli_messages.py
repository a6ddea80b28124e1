"""What a new user sees when a command cannot do its work: one clear line and a non-zero exit.

Every test runs the real command in a subprocess.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from contracts import LogEntryCreated
from gateway.consumers.segments import Compression, SegmentWriter
from gateway.process.natsserver import NatsServer
from tests.helpers import entries

LOG_GATEWAY = str(Path(sys.executable).parent / "log-gateway")

# Runs the CLI with the named modules made unimportable: ``sys.modules[name] = None``
# makes ``import name`` (and of any submodule) raise ImportError, exactly what a
# plain install without that package sees.
WITHOUT = (
    "import sys\n"
    "for name in sys.argv.pop(1).split(','):\n"
    "    sys.modules[name] = None\n"
    "from gateway.process.cli import main\n"
    "sys.exit(main())\n"
)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOG_GATEWAY_")}


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOG_GATEWAY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        cwd=cwd,
        check=False,
    )


def run_without(modules: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``log-gateway ARGS`` as if the comma-separated ``modules`` were not installed."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        cwd=cwd,
        check=False,
    )


def test_asyncapi_yaml_without_pyyaml_names_the_extra() -> None:
    """``sys.modules["yaml"] = None`` in the child: PyYAML looks uninstalled."""
    result = run_without("yaml", "asyncapi", "--yaml")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "log-gateway: asyncapi --yaml needs pyyaml, which is not installed; "
        "install it with: pip install 'cortex-log-gateway[yaml]'"
    ]
    assert result.stdout == ""


def test_asyncapi_json_does_not_need_pyyaml() -> None:
    """The check is for --yaml only: JSON works with PyYAML made unimportable."""
    result = run_without("yaml", "asyncapi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{")


def test_the_yaml_extra_carries_pyyaml() -> None:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("pyyaml") for dep in project["optional-dependencies"]["yaml"])
    assert not any(dep.startswith("pyyaml") for dep in project["dependencies"])


def test_bench_without_its_extra_says_so_before_measuring(tmp_path: Path) -> None:
    """``sys.modules["opentelemetry"] = None`` in the child: the bench extra looks uninstalled."""
    out = tmp_path / "results"
    result = run_without("opentelemetry", "bench", "--quick", "--out", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "log-gateway: bench needs opentelemetry-sdk, which is not installed; "
        "install it with: pip install 'cortex-log-gateway[bench]'"
    ]
    assert not out.exists()  # checked up front: nothing was measured


def test_bench_without_matplotlib_names_it(tmp_path: Path) -> None:
    """``sys.modules["matplotlib"] = None`` in the child."""
    result = run_without("matplotlib", "bench", "--quick", "--out", str(tmp_path / "r"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "bench needs matplotlib" in result.stderr
    assert "pip install 'cortex-log-gateway[bench]'" in result.stderr
    assert "Traceback" not in result.stderr


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("command", [["tail"], ["archive", "--dir", "DIR"]])
def test_an_unreachable_server_is_one_line_after_the_connect_timeout(
    tmp_path: Path, command: list[str]
) -> None:
    """Before: about two minutes of nats-py tracebacks, then NoServersError (here: the 60 s timeout)."""
    out = tmp_path / "segments"
    args = [str(out) if arg == "DIR" else arg for arg in command]
    url = f"nats://user:hunter2@127.0.0.1:{closed_port()}"
    result = run_cli(*args, "--nats-url", url, "--connect-timeout-s", "1", timeout=30)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"log-gateway: cannot start: not connected to nats://***@{url.rsplit('@', 1)[1]} "
        "within 1s (--connect-timeout-s): "
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert "archiving to" not in result.stdout  # no directory was made, so none is announced
    assert not out.exists()


def test_a_bad_connect_timeout_for_tail_is_a_setting_error() -> None:
    result = run_cli("tail", "--nats-url", "nats://127.0.0.1:4222", "--connect-timeout-s", "0")
    assert result.returncode == 2
    assert result.stderr == "log-gateway: invalid setting: --connect-timeout-s must be positive, got 0.0\n"


async def test_archive_announces_its_directory_once_it_exists(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    out = tmp_path / "a" / "b"
    proc = await asyncio.create_subprocess_exec(
        LOG_GATEWAY,
        "archive",
        "--nats-url",
        nats_server.url,
        "--dir",
        str(out),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode() == f"log-gateway: archiving to {out}\n"
        assert out.is_dir()
    finally:
        proc.kill()
        await proc.wait()


def segment(directory: Path, count: int) -> Path:
    writer = SegmentWriter(directory, compression=Compression.ZSTD, fsync=False)
    for data in entries(count):
        writer.write(LogEntryCreated.parse(data), now=0.0)
    info = writer.finish()
    assert info is not None
    return info.path


def test_archive_read_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    """``archive-read seg | head -2``: the reader closes the pipe with most of the output unread.

    Before: ``BrokenPipeError`` and a traceback.
    """
    path = segment(tmp_path, 3000)  # ~1 MB of JSON: far more than a pipe buffers
    with subprocess.Popen(
        [LOG_GATEWAY, "archive-read", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        head = [proc.stdout.readline(), proc.stdout.readline()]
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=30) == 141, stderr
    assert stderr == ""
    assert [LogEntryCreated.parse_json(line).logId for line in head] == [e["logId"] for e in entries(2)]


def test_archive_read_prints_every_entry(tmp_path: Path) -> None:
    result = run_cli("archive-read", str(segment(tmp_path, 5)))
    assert result.returncode == 0, result.stderr
    assert [LogEntryCreated.parse_json(line).logId for line in result.stdout.splitlines()] == [
        e["logId"] for e in entries(5)
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.ndjson.zst", None, "{path}: No such file or directory"),
        ("notes.txt", b"hi\n", "{path} is not a .ndjson.zst or .ndjson.gz segment"),
        (
            "fake.ndjson.zst",
            b"hi\n",
            "{path} is not a segment: zstd decompress error: Unknown frame descriptor",
        ),
        ("fake.ndjson.gz", b"hi\n", "{path} is not a segment: Not a gzipped file (b'hi')"),
    ],
)
def test_archive_read_of_a_file_that_is_no_segment_is_one_line(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    """Before: a raw FileNotFoundError, ValueError, ZstdError or BadGzipFile traceback."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = run_cli("archive-read", str(path))
    assert result.returncode == 1
    assert result.stderr == "log-gateway: archive-read: " + expected.format(path=path) + "\n"


def test_archive_read_names_the_line_that_is_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "odd.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"logId": "x"}\n'))
    result = run_cli("archive-read", str(path))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"log-gateway: archive-read: {path}, line 1: not a segment entry: invalid LogEntryCreated"
    )


def help_of(*command: str) -> str:
    """``log-gateway COMMAND --help``, one option per line (no wrapping at a wide COLUMNS)."""
    result = subprocess.run(
        [LOG_GATEWAY, *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env() | {"COLUMNS": "2000"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


COMMANDS = (
    "run",
    "asyncapi",
    "schemas",
    "archive",
    "archive-read",
    "tail",
    "send",
    "bench",
    "query",
    "ctl",
    "mcp",
)


def test_the_top_level_help_names_every_command_in_plain_text() -> None:
    """Before: the module docstring, with RST backticks, naming run, asyncapi and schemas only."""
    description = help_of().split("\n\n")[1]
    assert "`" not in description
    missing = [name for name in COMMANDS if f"({name}" not in description and f" {name})" not in description]
    assert missing == []


def test_version_is_the_installed_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"log-gateway {version('cortex-log-gateway')}\n"


def flags(text: str) -> list[str]:
    return re.findall(r"^  (-[-a-z]+)", text, re.MULTILINE)


def test_asyncapi_help_lists_only_what_asyncapi_uses() -> None:
    """Before: all ~60 flags of run."""
    assert flags(help_of("asyncapi")) == ["-h", "--subject-prefix", "--queue-group", "--yaml", "--out"]


def test_asyncapi_uses_its_flags_and_ignores_run_only_variables() -> None:
    env = clean_env() | {"LOG_GATEWAY_MAX_BATCH_ENTRIES": "0"}  # bad for run, nothing to asyncapi
    result = subprocess.run(
        [LOG_GATEWAY, "asyncapi", "--subject-prefix", "acme"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    addresses = {channel["address"] for channel in json.loads(result.stdout)["channels"].values()}
    assert "acme.cortex_logging.batch.created" in addresses


@pytest.mark.parametrize("command", ["tail", "archive"])
def test_tail_and_archive_help_say_a_url_is_required(command: str) -> None:
    """Before: "none starts an embedded server", which only run does."""
    [line] = [line for line in help_of(command).splitlines() if line.lstrip().startswith("--nats-url")]
    assert "embedded server" not in line.replace("no embedded server", "")
    assert "(required: no embedded server)" in line


def test_run_help_still_says_no_url_starts_an_embedded_server() -> None:
    [line] = [line for line in help_of("run").splitlines() if line.lstrip().startswith("--nats-url")]
    assert "none starts an embedded server" in line


@pytest.mark.parametrize("command", ["run", "asyncapi", "archive", "tail", "bench"])
def test_defaults_are_shown_as_typed_or_not_at_all(command: str) -> None:
    """Before: ``default ()``, ``default None``, ``default ]`` (an empty prefix), ``default False``."""
    text = help_of(command)
    for meaningless in (
        "default ()",
        "default None",
        "default ]",
        "default False",
        "default True",
        "default (secret)",
    ):
        assert meaningless not in text
    assert re.findall(r"default [^\s\]]+\]", text)  # the real defaults are still there


def options_of(text: str) -> dict[str, str]:
    """Each option of a help text with its help (argparse may put the help on the next line)."""
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=  -)", text.split("options:\n", 1)[1]):
        flag, _, rest = block.strip().partition(" ")
        found[flag] = " ".join(rest.split())
    return found


def test_defaults_read_like_the_values_a_person_types() -> None:
    options = options_of(help_of("run"))
    shown = {"--per-source": "false", "--alerts": "true", "--overflow": "block", "--connect-timeout-s": "30"}
    for flag, default in shown.items():
        assert options[flag].endswith(f"; default {default}]"), options[flag]
    assert options["--nats-token"].endswith("[LOG_GATEWAY_NATS_TOKEN]")  # no default, and so no secret


def test_a_bad_choice_on_the_command_line_lists_the_choices() -> None:
    """Before: ``'sideways' is not a valid OverflowPolicy``."""
    result = run_cli("run", "--overflow", "sideways")
    assert result.returncode == 2
    assert result.stderr == (
        "log-gateway: invalid setting: --overflow / LOG_GATEWAY_OVERFLOW: "
        "expected block, drop_oldest or drop_newest, got 'sideways'\n"
    )
