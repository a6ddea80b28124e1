"""The spooler's decisions on a real disk spool: full-spool policies, damage, disk errors, replay.

The publish function is the only stand-in: a coroutine that takes records or
raises, so the spooler's own rules can be driven exactly (the gateway tests run
it against a real server).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config import SpoolConfig
from gateway.core.limits import DropReason, OverflowPolicy
from gateway.core.stats import Stats
from gateway.spool.replay import Spooler, open_spool
from gateway.spool.store import FsyncPolicy, SpoolError, SpoolRecord
from tests.helpers import until
from tests.test_spool import file_size_limit, flip, segments

MIN = 64 * 1024


class Bus:
    """Takes records while up; raises while down."""

    def __init__(self) -> None:
        self.up = False
        self.got: list[SpoolRecord] = []

    async def publish(self, record: SpoolRecord) -> None:
        if not self.up:
            raise ConnectionError("the bus is away")
        self.got.append(record)


def spooler(directory: Path, bus: Bus, policy: OverflowPolicy, stats: Stats | None = None) -> Spooler:
    config = SpoolConfig(
        directory=directory, max_bytes=MIN, fsync=FsyncPolicy.NEVER, replay_backoff_max_s=0.01
    )
    return Spooler(
        open_spool(config), config, bus.publish, stats or Stats(), policy, wall_clock=lambda: 1000.0
    )


def record(sp: Spooler, n: int, size: int = 20_000) -> SpoolRecord:
    return sp.record("cortex_logging.batch.created", {"Nats-Msg-Id": f"b{n}"}, bytes(size), entries=10)


async def test_block_waits_for_replay_to_make_room(tmp_path: Path) -> None:
    bus, stats = Bus(), Stats()
    sp = spooler(tmp_path, bus, OverflowPolicy.BLOCK, stats)
    for n in range(3):
        assert await sp.put(record(sp, n))
    fourth = asyncio.create_task(sp.put(record(sp, 3)))  # 4 x 20 KB > 64 KiB: must wait
    replay = asyncio.create_task(sp.run())
    for _ in range(20):  # let the replay try (and fail) a few times
        await asyncio.sleep(0)
    assert not fourth.done()
    bus.up = True
    assert await asyncio.wait_for(fourth, 10)
    await until(lambda: not sp.backlog)
    replay.cancel()
    sp.close()
    # in: 4 batches of 10; replayed in order, none dropped.
    assert [r.headers["Nats-Msg-Id"] for r in bus.got] == ["b0", "b1", "b2", "b3"]
    assert (stats.spooled, stats.replayed, stats.published, stats.total_dropped) == (40, 40, 40, 0)


@pytest.mark.parametrize(
    ("policy", "kept"),
    [(OverflowPolicy.DROP_NEWEST, ["b0", "b1", "b2"]), (OverflowPolicy.DROP_OLDEST, ["b1", "b2", "b3"])],
)
async def test_drop_policies_choose_which_batch_goes(
    tmp_path: Path, policy: OverflowPolicy, kept: list[str]
) -> None:
    bus, stats = Bus(), Stats()
    sp = spooler(tmp_path, bus, policy, stats)
    results = [await sp.put(record(sp, n)) for n in range(4)]
    bus.up = True
    replay = asyncio.create_task(sp.run())
    await until(lambda: not sp.backlog)
    replay.cancel()
    sp.close()
    assert [r.headers["Nats-Msg-Id"] for r in bus.got] == kept
    assert results == [True, True, True, policy is OverflowPolicy.DROP_OLDEST]
    assert stats.dropped[DropReason.SPOOL_FULL] == 10
    assert stats.replayed == 30


async def test_a_record_damaged_on_disk_is_skipped_and_counted(tmp_path: Path) -> None:
    bus, stats = Bus(), Stats()
    sp = spooler(tmp_path, bus, OverflowPolicy.BLOCK, stats)
    for n in range(2):
        await sp.put(record(sp, n, size=100))
    [path] = segments(tmp_path)
    flip(path, 40)  # inside the first record's payload
    bus.up = True
    replay = asyncio.create_task(sp.run())
    await until(lambda: not sp.backlog)
    replay.cancel()
    sp.close()
    assert [r.headers["Nats-Msg-Id"] for r in bus.got] == ["b1"]
    assert stats.dropped[DropReason.SPOOL_FAILED] == 10


async def test_a_disk_that_refuses_writes_is_counted_not_raised(tmp_path: Path) -> None:
    stats = Stats()
    sp = spooler(tmp_path, Bus(), OverflowPolicy.BLOCK, stats)
    with file_size_limit(1000):
        assert not await sp.put(record(sp, 0))
        assert not sp.put_nowait(record(sp, 1))
    sp.close()
    assert stats.dropped[DropReason.SPOOL_FAILED] == 20
    assert stats.spooled == 0


async def test_put_nowait_on_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    stats = Stats()
    sp = spooler(tmp_path, Bus(), OverflowPolicy.BLOCK, stats)
    assert [sp.put_nowait(record(sp, n)) for n in range(4)] == [True, True, True, False]
    sp.close()
    assert stats.dropped[DropReason.SPOOL_FULL] == 10


def test_what_a_spool_holds_at_start_is_counted_as_recovered(tmp_path: Path) -> None:
    first = spooler(tmp_path, Bus(), OverflowPolicy.BLOCK)
    first.put_nowait(record(first, 0))
    first.close()
    stats = Stats()
    again = spooler(tmp_path, Bus(), OverflowPolicy.BLOCK, stats)
    assert stats.recovered == 10
    assert again.backlog
    assert again.age_s() == 0.0  # same wall clock
    again.close()


def test_an_unusable_spool_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = SpoolConfig(directory=blocker / "spool")
    with pytest.raises(SpoolError, match="cannot open the spool directory"):
        open_spool(config)
    with pytest.raises(ValueError, match="spool_max_bytes"):
        SpoolConfig(directory=tmp_path, max_bytes=10)
