"""Redaction of secrets before anything leaves the host: replaced, counted, nothing else touched."""

from __future__ import annotations

import json
from typing import Any

from nats.aio.client import Client

from gateway.core.redact import MARKER, Redactor
from gateway.process.natsserver import NatsServer
from tests import samples
from tests.helpers import config, log_ids, publish_entries, running_gateway, stored_batches, until

SECRETS = [
    "Authorization: Bearer abc.DEF-123_xyz==",
    "key AKIAIOSFODNN7EXAMPLE used",
    "token ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijk",
    "login with password=hunter2 failed",
    "api_key: sk-live-42",
]


def test_patterns_in_messages_are_replaced_and_counted() -> None:
    redactor = Redactor()
    for text in SECRETS:
        data: dict[str, Any] = {"message": text}
        assert redactor.entry(data) == 1, text
        assert MARKER in data["message"]
    assert redactor.count == len(SECRETS)
    assert "hunter2" not in json.dumps([Redactor().entry(d) or d for d in [{"message": SECRETS[4]}]])


def test_sensitive_keys_are_replaced_at_any_depth_and_nothing_else() -> None:
    data: dict[str, Any] = {
        "message": "plain text, nothing sensitive: timeout after 5ms",
        "metadata": {
            "Password": "p@ss",
            "user": "ada",
            "nested": {"token": 123, "list": [{"secret": "s"}, "Bearer zzz.yyy", 7]},
            "cookie": None,
        },
    }
    redactor = Redactor()
    assert redactor.entry(data) == 5
    assert data == {
        "message": "plain text, nothing sensitive: timeout after 5ms",
        "metadata": {
            "Password": MARKER,
            "user": "ada",
            "nested": {"token": MARKER, "list": [{"secret": MARKER}, MARKER, 7]},
            "cookie": MARKER,
        },
    }
    assert redactor.entry(data) == 0  # already redacted: nothing new to count


def test_custom_keys() -> None:
    data: dict[str, Any] = {"message": "m", "metadata": {"ssn": "123-45-6789", "password": "kept"}}
    assert Redactor(keys=["SSN"], patterns=[]).entry(data) == 1
    assert data["metadata"] == {"ssn": MARKER, "password": "kept"}


async def test_gateway_redacts_before_publishing(nats_server: NatsServer, nc: Client) -> None:
    cfg = config(redact=True)
    sent = [
        samples.entry(
            1, message="call failed: Bearer sekret.token.value", metadata={"authorization": "Basic xyz"}
        ),
        samples.entry(2, message="all good"),
    ]
    async with running_gateway(nats_server.url, cfg) as (gateway, _):
        await publish_entries(nc, sent)
        await until(lambda: gateway.stats.published == 2)
    batches = await stored_batches(nc.jetstream(), cfg.stream.name)
    body = b"".join(b.body for b in batches)
    assert b"sekret" not in body
    assert b"Basic xyz" not in body
    stored = {e.logId: e for b in batches for e in b.batch.entries}
    assert stored[sent[0]["logId"]].message == f"call failed: {MARKER}"
    assert stored[sent[1]["logId"]].message == "all good"
    assert sorted(log_ids(batches)) == sorted(e["logId"] for e in sent)
    assert gateway.redactor is not None
    assert gateway.redactor.count == 2
