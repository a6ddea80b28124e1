"""``archive`` takes only the options it acts on: ``--control`` (the gateway's control service)
is refused with a clear error, not accepted and ignored."""

from __future__ import annotations

from gateway.process.settings import ARCHIVE_OPTIONS, RUN_OPTIONS
from tests.test_cli import run_cli


def test_archive_refuses_control() -> None:
    assert "control" not in {opt.dest for opt in ARCHIVE_OPTIONS}
    assert "control" in {opt.dest for opt in RUN_OPTIONS}
    result = run_cli("archive", "--nats-url", "nats://127.0.0.1:1", "--control", "false")
    assert result.returncode == 2, result.stderr
    assert "unrecognized arguments: --control false" in result.stderr
