"""Wait for a future without blocking the event loop (as ``plait_executors._wake`` does).

The future's done-callback runs in some other thread; it wakes the loop with the loop's own
thread-safe, non-blocking "call soon" (asyncio ``call_soon_threadsafe``, trio
``run_sync_soon``), so no thread is parked per pending future. Works under asyncio and trio.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import anyio.lowlevel


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
    """Return once ``future`` is done; cancellable (the future itself is left alone)."""
    if future.done():
        await anyio.lowlevel.checkpoint()
        return
    done = anyio.Event()
    call_soon = _call_soon_threadsafe()
    future.add_done_callback(lambda _f: call_soon(done.set))
    await done.wait()
