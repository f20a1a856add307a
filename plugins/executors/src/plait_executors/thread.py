from __future__ import annotations

import anyio
import anyio.to_thread

from plait import arguments
from plait.executors import CallResult, NodeCall
from plait.loops import LoopLocal

DEFAULT_MAX_WORKERS = 40


class ThreadExecutor:
    """Runs sync callables on anyio worker threads, at most ``max_workers`` at once.

    The call's placement names the worker thread. Uses a capacity limiter of its own
    (anyio's default limiter is never touched).
    Context variables of the calling task are visible in the worker thread. When the run
    is cancelled, the executor stops waiting; the thread finishes its call in the background
    (Python cannot interrupt a thread).
    """

    name = "thread"

    def __init__(self, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        arguments.count(max_workers, name="max_workers", where="ThreadExecutor()", minimum=1)
        self.max_workers = max_workers
        # one limiter per event loop: a limiter cannot cross asyncio and trio loops
        self._limiter = LoopLocal(lambda: anyio.CapacityLimiter(self.max_workers))

    async def run(self, call: NodeCall, /) -> CallResult:
        return await anyio.to_thread.run_sync(
            call, limiter=self._limiter.get(), abandon_on_cancel=True
        )

    async def aclose(self) -> None:
        return None
