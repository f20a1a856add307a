"""``pool``: sync nodes on a ``concurrent.futures`` thread pool owned by the executor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread

from plait.executors import CallResult, NodeCall
from plait.loops import wait_done


class PoolExecutor:
    """Runs node calls on at most ``max_workers`` threads named ``pool-worker_<n>``."""

    name = "pool"

    def __init__(self, max_workers: int = 4) -> None:
        if max_workers < 1:
            raise ValueError(f"PoolExecutor: max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, call: NodeCall, /) -> CallResult:
        if self._pool is None:  # started on first use, not when plait builds the executor
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="pool-worker")
        # ``call()`` calls the node's function with its arguments, makes the node's context
        # current meanwhile, and returns (value, placement, log_lines): the placement names
        # this thread
        future = self._pool.submit(call)
        try:
            await wait_done(future)  # without blocking the event loop
        except BaseException:
            future.cancel()  # cancelled while waiting: a call not started never runs
            raise
        return future.result()  # (value, placement, log_lines), or the node's exception raised

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await anyio.to_thread.run_sync(pool.shutdown)
