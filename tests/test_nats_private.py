"""The private nats-py names the ingest fast path relies on, checked on the installed nats-py.

If an upgrade of nats-py moves or reshapes one, a test here fails naming it and
the version, instead of the gateway quietly falling back to its slower path.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from types import ModuleType

import pytest
from nats.aio.client import Client

from gateway.ingest import bursts, fastpath, nats_private
from gateway.ingest.nats_private import CLIENT_NAMES, NATS_PY_VERSION, SUBSCRIPTION_NAMES, PrivateName
from tests.helpers import parse_python, until


def _why(private: PrivateName) -> str:
    return (
        f"nats-py {NATS_PY_VERSION}: {private.qualified} is missing or changed (expected {private.shape}); "
        "the ingest fast path (gateway.ingest.fastpath) relies on it: see gateway/ingest/nats_private.py"
    )


@pytest.mark.parametrize("private", CLIENT_NAMES, ids=lambda p: p.qualified)
async def test_every_client_name_exists_with_its_shape(nc: Client, private: PrivateName) -> None:
    assert private.check(nc), _why(private)


@pytest.mark.parametrize("private", SUBSCRIPTION_NAMES, ids=lambda p: p.qualified)
async def test_every_subscription_name_exists_with_its_shape(
    nc: Client, subject: str, private: PrivateName
) -> None:
    sub = await nc.subscribe(subject, pending_msgs_limit=7, pending_bytes_limit=100)
    assert private.check(sub), _why(private)


async def test_a_missing_name_is_reported_by_name_and_version(nc: Client, subject: str) -> None:
    sub = await nc.subscribe(subject)
    del sub._pending_size
    problems = nats_private.subscription_problems(sub)
    assert problems == [f"Subscription._pending_size: expected an int (nats-py {NATS_PY_VERSION})"]
    nc._ps.buf = b""  # type: ignore[assignment]  # a shape the fast path does not know
    assert nats_private.client_problems(nc) == [
        f"Client._ps.buf: expected a bytearray: what is read and not yet parsed (nats-py {NATS_PY_VERSION})"
    ]
    assert not fastpath.fast_path_supported(nc)
    nc._ps.buf = bytearray()


def test_a_check_that_cannot_run_counts_as_missing() -> None:
    class NotAClient:
        pass

    problems = nats_private.client_problems(NotAClient(), everything=True)  # type: ignore[arg-type]
    assert len(problems) == len(CLIENT_NAMES) - 2  # the two source checks read nats-py itself
    assert all(NATS_PY_VERSION in problem for problem in problems)


async def test_the_accessors_read_and_write_what_they_name(nc: Client, subject: str) -> None:
    sub = await nc.subscribe(subject, pending_msgs_limit=7, pending_bytes_limit=100)
    assert nats_private.subscription_id(sub) == sub._id
    assert nats_private.pending_limits(sub) == (7, 100)
    nats_private.count_received(sub)
    nats_private.set_pending_bytes(sub, nats_private.pending_bytes(sub) + 5)
    assert (sub.delivered, sub.pending_bytes) == (1, 5)
    assert nats_private.read_buffer(nc) is nc._ps.buf
    assert nats_private.between_operations(nc)
    assert nats_private.installed(nc) is nc
    assert nats_private.process_msg(nc) == nc._process_msg
    assert nats_private.parser_parse(nc) == nc._ps.parse


async def test_a_stand_in_pending_queue_is_what_nats_py_counts_and_drains_on(
    nc: Client, subject: str
) -> None:
    sub = await nc.subscribe(subject, pending_msgs_limit=3)
    await nc.publish(subject, b"queued")
    await nc.flush()
    await until(lambda: sub.pending_msgs == 1)
    assert [msg.data for msg in nats_private.take_queued(sub)] == [b"queued"]

    class Stand:
        def qsize(self) -> int:
            return 42

        def empty(self) -> bool:
            return False

        async def join(self) -> None:
            pass

    nats_private.set_pending_queue(sub, Stand())
    assert sub.pending_msgs == 42
    nats_private.restore_pending_queue(sub)
    assert isinstance(sub._pending_queue, asyncio.Queue)
    assert sub._pending_queue.maxsize == 3


def _private_attributes(path: Path) -> set[str]:
    tree = parse_python(path.read_text())
    return {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr.startswith("_")
    }


@pytest.mark.parametrize("module", [fastpath, bursts], ids=lambda m: m.__name__)
def test_the_fast_path_touches_no_private_nats_py_name_itself(module: ModuleType) -> None:
    listed = {private.name for private in (*CLIENT_NAMES, *SUBSCRIPTION_NAMES)}
    listed |= {"_process_msg", "_ps", "_pending_queue", "_pending_size", "_received", "_id", "_error_cb"}
    path = Path(str(module.__file__))
    touched = _private_attributes(path)
    assert not touched & listed, touched & listed
    tree = parse_python(path.read_text())
    on_nats_objects = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and isinstance(node.value, ast.Name)
        and node.value.id in ("nc", "sub", "parser", "msg", "queue")
    ]
    assert not on_nats_objects
