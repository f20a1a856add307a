"""Helpers for backends that keep anyio primitives (limiters, locks, events).

anyio primitives belong to one event loop; a backend object may outlive a loop (``anyio.run``
twice, or asyncio then trio). :class:`LoopLocal` keeps one value per running loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["LoopLocal", "wait_done"]

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """A value built by ``factory`` once per running event loop.

    >>> import anyio
    >>> limiter = LoopLocal(lambda: anyio.CapacityLimiter(4))
    >>> async def main() -> bool:
    ...     return limiter.get() is limiter.get()
    >>> anyio.run(main)
    True
    """

    __slots__ = ("_factory", "_loop", "_value")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._loop: object | None = None
        self._value: T | None = None

    def get(self) -> T:
        """The value for the running loop (built on first use in that loop)."""
        # current_token() returns a new wrapper each call: compare the native loop object
        loop = anyio.lowlevel.current_token().native_token
        if self._loop is not loop or self._value is None:
            self._value = self._factory()
            self._loop = loop
        return self._value


# --------------------------------------------------------------------------- futures
# A future's done-callback runs in some other thread; it wakes the loop with the loop's own
# thread-safe "call soon" (asyncio ``call_soon_threadsafe``, trio ``run_sync_soon``), so no
# thread is parked per pending future. Works under asyncio and trio.


class _Waitable(Protocol):
    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...


def _call_soon_threadsafe() -> Callable[[Callable[[], object]], None]:
    native: Any = anyio.lowlevel.current_token().native_token
    schedule = getattr(native, "run_sync_soon", None)  # trio's TrioToken
    if schedule is None:
        schedule = native.call_soon_threadsafe  # asyncio's loop

    def call_soon(fn: Callable[[], object]) -> None:
        # RuntimeError: the loop is gone (asyncio: closed; trio: RunFinishedError)
        with contextlib.suppress(RuntimeError):
            schedule(fn)

    return call_soon


async def wait_done(future: _Waitable) -> None:
    """Return once a ``concurrent.futures``-style ``future`` is done, without blocking the
    event loop; cancellable (the future itself is left alone)."""
    if future.done():
        await anyio.lowlevel.checkpoint()
        return
    done = anyio.Event()
    call_soon = _call_soon_threadsafe()
    future.add_done_callback(lambda _f: call_soon(done.set))
    await done.wait()
