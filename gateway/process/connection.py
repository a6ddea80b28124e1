"""How to reach NATS: servers and every way NATS authenticates, as one typed object."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client
from nats.errors import Error as NatsError

from contracts.errors import GatewayError
from contracts.events import validate_subject

__all__ = ["ConnectFailed", "ConnectionSettings", "connect_within", "redact_url"]

log = logging.getLogger("log_gateway")

# The two blocks nats-py reads from a credentials file. It scans for the JWT
# line without an end-of-file check, so a file without it would hang start-up.
_CREDS_MARKERS = ("BEGIN NATS USER JWT", "BEGIN USER NKEY SEED")


def redact_url(url: str) -> str:
    """``url`` without any user, password or token, for logs and error messages.

    A malformed URL (``user:pw@host:4222`` with no scheme, ``nats:/user:pw@host``)
    parses without a network location, so everything before its last ``@`` goes.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
    if "@" in url:
        return "***@" + url.rpartition("@")[2]
    return url


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{name} {str(path)!r} is not a readable file: {exc.strerror}") from None


def _check_user_seed(path: Path) -> None:
    """Refuse a seed file that nats-py could not sign with; the message never shows the seed."""
    import nkeys  # noqa: PLC0415 - only a seed file needs it (and PyNaCl), not every start

    try:
        prefix, _ = nkeys.decode_seed(bytearray(_read(path, "nkey_seed_file").strip()))
    except (nkeys.NkeysError, ValueError):
        prefix = None
    if prefix != nkeys.PREFIX_BYTE_USER:
        raise ValueError(f"nkey_seed_file {str(path)!r} does not hold a user NKEY seed (SU...)")


def _check_creds(path: Path) -> None:
    """Refuse a credentials file without a user JWT and seed block (nats-py would hang on it)."""
    text = _read(path, "creds_file").decode(errors="replace")
    if not all(marker in text for marker in _CREDS_MARKERS):
        raise ValueError(
            f"creds_file {str(path)!r} is not a NATS credentials file "
            "(needs a user JWT block and a user NKEY seed block)"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionSettings:
    """Servers and credentials; secrets are kept out of ``repr``."""

    servers: tuple[str, ...] = ()
    name: str = "log-gateway"
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    creds_file: Path | None = None
    nkey_seed_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    inbox_prefix: str = "_INBOX"

    def __post_init__(self) -> None:
        for url in self.servers:
            if urlsplit(url).scheme not in ("nats", "tls", "ws", "wss"):
                raise ValueError(
                    f"nats_url {redact_url(url)!r} must start with nats://, tls://, ws:// or wss://"
                )
        validate_subject(self.inbox_prefix, "inbox_prefix")
        if (self.user is None) != (self.password is None):
            raise ValueError("nats_user and nats_password must be given together")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        for name in ("creds_file", "nkey_seed_file", "tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {str(path)!r} is not a readable file")
        if self.nkey_seed_file is not None:
            _check_user_seed(Path(self.nkey_seed_file))
        if self.creds_file is not None:
            _check_creds(Path(self.creds_file))

    def __repr__(self) -> str:
        """Every field but the secrets, with the server URLs' user, password or token cut out."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        shown["servers"] = tuple(redact_url(url) for url in self.servers)
        return f"ConnectionSettings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context verifying the server (and presenting a client certificate), if configured."""
        if self.tls_ca is None and self.tls_cert is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls_ca) if self.tls_ca else None)
        if self.tls_cert is not None and self.tls_key is not None:
            context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        return context

    def nats_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        kwargs: dict[str, Any] = {
            "servers": list(self.servers),
            "name": self.name,
            "inbox_prefix": self.inbox_prefix,
        }
        optional = {
            "user": self.user,
            "password": self.password,
            "token": self.token,
            "user_credentials": str(self.creds_file) if self.creds_file else None,
            "nkeys_seed": str(self.nkey_seed_file) if self.nkey_seed_file else None,
            "tls": self.ssl_context(),
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        return kwargs

    def broker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for FastStream's ``NatsBroker`` (and so nats-py's connect)."""
        # Imported here: reading the settings does not load FastStream (``run`` loads it with the app).
        from faststream.security import BaseSecurity, SASLPlaintext  # noqa: PLC0415

        context = self.ssl_context()
        kwargs: dict[str, Any] = {
            "servers": list(self.servers),
            "name": self.name,
            "inbox_prefix": self.inbox_prefix,
        }
        if self.user is not None and self.password is not None:
            kwargs["security"] = SASLPlaintext(self.user, self.password, ssl_context=context)
        elif context is not None:
            kwargs["security"] = BaseSecurity(ssl_context=context)
        if self.token is not None:
            kwargs["token"] = self.token
        if self.creds_file is not None:
            kwargs["user_credentials"] = str(self.creds_file)
        if self.nkey_seed_file is not None:
            kwargs["nkeys_seed"] = str(self.nkey_seed_file)
        return kwargs


class ConnectFailed(GatewayError):
    """Not connected within the connect timeout; the message says where and why."""


async def connect_within(settings: ConnectionSettings, timeout_s: float) -> Client:
    """A nats-py client connected to ``settings.servers`` within ``timeout_s``.

    nats-py retries a refused first connection for about two minutes and logs a
    traceback at each try; here each error is kept (the last one is reported),
    and once connected a later one is logged in one line.

    Raises:
        ConnectFailed: not connected in time (or the client gave up first).
    """
    last: list[BaseException] = []
    client = Client()

    async def on_error(exc: Exception) -> None:
        last[:] = [exc]
        if client.is_connected:
            log.warning("nats: %s", exc or type(exc).__name__)

    try:
        async with asyncio.timeout(timeout_s):
            await client.connect(**settings.nats_kwargs(), error_cb=on_error)
    except (TimeoutError, OSError, NatsError) as exc:
        await client.close()
        servers = ", ".join(redact_url(url) for url in settings.servers)
        cause = last[0] if last else exc
        raise ConnectFailed(
            f"not connected to {servers} within {timeout_s:g}s (--connect-timeout-s): "
            f"{str(cause) or type(cause).__name__}"
        ) from None
    return client
