"""The settings of the MCP front ends, checked once at the edge (pure: imports no SDK)."""

import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["McpHttpSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True, slots=True)
class McpHttpSettings:
    """Where ``/mcp`` listens, the bearer token it asks for (required off loopback), and the
    archive directory ``query_logs`` reads beside the stream (none: the stream only)."""

    host: str = "127.0.0.1"
    port: int = 9465
    token: str | None = None
    archive_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"mcp_port must be 0..65535, got {self.port}")
        if self.token == "":
            raise ValueError("mcp_token must not be empty")
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"mcp_token is required to serve MCP on {self.host}, which is not a loopback address: "
                "anyone who reaches it could query the logs and change the gateway's settings"
            )
