"""The embedded nats-server of ``log-gateway run`` without ``--nats-url``: its port and its state.

The server listens on the standard port 4222 when it is free (so every example URL
works), else on a free port, and says which. Its state directory is held with an
exclusive ``flock`` for the run's whole life: a second run on the same directory
would start another server on the same JetStream store and rewrite its config, so
it is refused, naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import IO

from contracts.errors import GatewayError
from gateway.process.natsserver import NatsServer

__all__ = ["STANDARD_PORT", "EmbeddedServer", "StateDirBusyError", "port_is_free"]

STANDARD_PORT = 4222
_LOCK_NAME = "log-gateway.lock"


class StateDirBusyError(GatewayError, RuntimeError):
    """Another ``log-gateway run`` holds the state directory."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server listen on ``host:port`` now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedServer:
    """The embedded server: the state directory locked, then nats-server started on a port.

    Args:
        state_dir: where the server keeps its JetStream data (``nats/`` in it) and the lock.
        port: the client port; None takes 4222 when it is free, else any free port;
            0 takes any free port.
    """

    def __init__(self, state_dir: Path, port: int | None) -> None:
        self.state_dir = state_dir
        self._port = port
        self._lock: IO[str] | None = None
        self.server: NatsServer | None = None

    def start(self) -> NatsServer:
        """Lock the state directory and start the server, telling the user where both are.

        Raises:
            StateDirBusyError: another run holds the state directory.
            NatsServerError: the server did not start.
        """
        self._lock = _lock(self.state_dir)
        _say(f"state directory {self.state_dir} (--state-dir)")
        port = self._port
        if port is None:
            port = STANDARD_PORT if port_is_free(STANDARD_PORT) else 0
            if port == 0:
                _say(f"port {STANDARD_PORT} is in use; the embedded nats-server takes a free port")
        try:
            self.server = NatsServer(store_dir=self.state_dir / "nats", port=port or None).start()
        except BaseException:
            self.stop()
            raise
        return self.server

    def stop(self) -> None:
        """Stop the server, then release the state directory; idempotent."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None


def _lock(state_dir: Path) -> IO[str]:
    """``state_dir``'s lock file, held exclusively, with this process's id in it.

    Raises:
        StateDirBusyError: another process holds it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / _LOCK_NAME
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise StateDirBusyError(
            f"state directory {state_dir} is in use by another log-gateway run (pid {holder}); "
            "stop that one, connect to its server with --nats-url, or give this one its own --state-dir"
        ) from None
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    return handle


def _say(text: str) -> None:
    print(f"log-gateway: {text}", file=sys.stdout, flush=True)
