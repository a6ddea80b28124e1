"""Background tasks that cannot die silently.

The gateway's loops (the sender, the spool replay) run until they are
cancelled. One that ends any other way (an exception, or a return) is a
failure the process cannot recover from by itself: :class:`TaskWatch` logs it
with its traceback the moment it happens and remembers it, so health checks
can report it; shutdown's ``gather(..., return_exceptions=True)`` can then no
longer hide it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

__all__ = ["Spawn", "TaskWatch", "watched"]

log = logging.getLogger("log_gateway")
T = TypeVar("T")
OnDeath = Callable[["asyncio.Task[Any]", BaseException | None], None]


class Spawn(Protocol):
    """How a room starts a task that must not die silently (:meth:`TaskWatch.spawn`)."""

    def __call__(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]: ...


def watched(coro: Coroutine[Any, Any, T], *, name: str, on_death: OnDeath) -> asyncio.Task[T]:
    """A task running ``coro``; should it end other than by cancellation, the end is logged
    (with the traceback when it raised) and ``on_death(task, exception or None)`` is called."""
    task = asyncio.create_task(coro, name=name)

    def done(finished: asyncio.Task[T]) -> None:
        if finished.cancelled():
            return
        exc = finished.exception()  # (retrieved here, so asyncio does not warn about it later)
        if exc is None:
            log.error("background task %s ended; it should run until stopped", name)
        else:
            log.error("background task %s died", name, exc_info=(type(exc), exc, exc.__traceback__))
        on_death(finished, exc)

    task.add_done_callback(done)
    return task


class TaskWatch:
    """Starts watched tasks and remembers, by name, those that died."""

    def __init__(self) -> None:
        self._failed: list[str] = []

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the watched tasks that ended other than by cancellation, in order of death."""
        return tuple(self._failed)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a watched task named ``name``."""
        return watched(coro, name=name, on_death=self.died)

    def died(self, task: asyncio.Task[Any], exc: BaseException | None) -> None:
        """Remember ``task`` as dead (an :data:`OnDeath` for tasks :func:`watched` elsewhere)."""
        self._failed.append(task.get_name())
