"""Cold start of ``log-gateway run`` against a running server: process start to "ready".

Usage: ``.venv/bin/python scripts/cold_start.py [RUNS]``. Starts its own
nats-server, then runs the gateway RUNS times (default 7) and prints each time
and the median. The platform's budget is 800 ms.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

from gateway.process.natsserver import NatsServer


def once(url: str) -> float:
    """Seconds from starting ``log-gateway run`` until it prints that it is ready."""
    command = [
        shutil.which("log-gateway") or "log-gateway",
        "run",
        "--nats-url",
        url,
        "--stream-name",
        "COLD",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603
    try:
        for line in proc.stdout or ():
            if "log-gateway: ready" in line:
                return time.perf_counter() - started
        raise SystemExit("the gateway exited before it was ready")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with NatsServer() as server:
        times = [once(server.url) * 1000 for _ in range(runs)]
    print("cold start (ms):", " ".join(f"{t:.0f}" for t in times), f"| median {statistics.median(times):.0f}")


if __name__ == "__main__":
    main()
