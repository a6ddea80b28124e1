"""NATS keys and decentralized-auth JWTs, made inside the tests (no key material is committed).

NKEYs are ed25519 keys encoded by the ``nkeys`` package. The JWTs follow the
NATS JWT v2 format: header ``{"typ":"JWT","alg":"ed25519-nkey"}``, registered
claims plus a ``nats`` section naming the claim ``type`` and ``version: 2``,
``jti`` the base32 SHA-512/256 of the registered claims, and an ed25519
signature over ``base64url(header).base64url(claims)``. That is all a
nats-server in operator mode (``resolver: MEMORY``) needs, so the tests need
neither ``nsc`` nor any fixed keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

__all__ = ["KeyPair", "OperatorSetup", "creds_text", "new_key", "operator_setup", "sign_jwt"]

_PREFIXES = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_JETSTREAM = ("mem_storage", "disk_storage", "streams", "consumer")
# Unlimited account limits, JetStream included: -1 means no limit, and any
# JetStream storage limit other than 0 turns JetStream on for the account.
_UNLIMITED_ACCOUNT = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}


@dataclass(frozen=True)
class KeyPair:
    """One NKEY: its seed (the secret, ``S...``) and its public key (``O...``, ``A...``, ``U...``)."""

    seed: str
    public: str

    def sign(self, data: bytes) -> bytes:
        """The raw ed25519 signature of ``data``."""
        signed: bytes = nkeys.from_seed(bytearray(self.seed.encode())).sign(data)
        return signed


def new_key(kind: str) -> KeyPair:
    """A fresh random key of ``kind`` (``operator``, ``account`` or ``user``)."""
    seed = nkeys.encode_seed(os.urandom(32), _PREFIXES[kind])
    public = nkeys.from_seed(bytearray(seed)).public_key
    return KeyPair(seed=seed.decode(), public=public.decode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign_jwt(issuer: KeyPair, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS v2 JWT about ``subject``, with the ``nats`` section given, signed by ``issuer``."""
    registered: dict[str, Any] = {"iat": int(time.time()), "iss": issuer.public, "name": name, "sub": subject}
    # jti: a hash of the registered claims without it, as the NATS JWT library makes it.
    digest = hashlib.new("sha512_256", _compact(registered)).digest()
    claims = {"jti": base64.b32encode(digest).rstrip(b"=").decode(), **registered, "nats": nats}
    signing_input = f"{_b64url(_compact(_HEADER))}.{_b64url(_compact(claims))}"
    return f"{signing_input}.{_b64url(issuer.sign(signing_input.encode()))}"


def creds_text(user_jwt: str, user: KeyPair) -> str:
    """A ``.creds`` file in the standard layout: the user JWT, then the user's NKEY seed."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )


@dataclass(frozen=True)
class OperatorSetup:
    """An operator, a system account and one JetStream-enabled account with a user."""

    operator: KeyPair
    system: KeyPair
    account: KeyPair
    user: KeyPair
    operator_jwt: str
    system_jwt: str
    account_jwt: str

    def server_config(self) -> str:
        """nats-server configuration for operator mode with every account preloaded."""
        return (
            f"operator: {self.operator_jwt}\n"
            f"system_account: {self.system.public}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f"  {self.system.public}: {self.system_jwt}\n"
            f"  {self.account.public}: {self.account_jwt}\n"
            "}\n"
        )

    def user_creds(self, path: Path, name: str = "log-gateway", user: KeyPair | None = None) -> Path:
        """Write a ``.creds`` file for a user of the account (``self.user`` unless given)."""
        user = user or self.user
        nats = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}
        path.write_text(creds_text(sign_jwt(self.account, user.public, name, nats), user))
        path.chmod(0o600)
        return path


def operator_setup() -> OperatorSetup:
    """Fresh keys and signed JWTs for an operator-mode nats-server with JetStream."""
    operator, system, account = new_key("operator"), new_key("account"), new_key("account")
    operator_nats = {"system_account": system.public, "type": "operator", "version": 2}
    account_nats = {"limits": _UNLIMITED_ACCOUNT, "type": "account", "version": 2}
    system_nats = {"limits": {k: v for k, v in _UNLIMITED_ACCOUNT.items() if k not in _JETSTREAM}}
    return OperatorSetup(
        operator=operator,
        system=system,
        account=account,
        user=new_key("user"),
        operator_jwt=sign_jwt(operator, operator.public, "test-operator", operator_nats),
        system_jwt=sign_jwt(operator, system.public, "SYS", {**system_nats, "type": "account", "version": 2}),
        account_jwt=sign_jwt(operator, account.public, "LOGS", account_nats),
    )
