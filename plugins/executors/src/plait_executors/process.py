"""``process``: sync nodes in a bounded pool of worker processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from plait.errors import ExecutorError
from plait.executors import CallResult, NodeCall
from plait.loops import LoopLocal, wait_done
from plait.pickling import callable_name
from plait_executors._pickling import dumps_call, dumps_result

T = TypeVar("T")

START_METHODS = ("spawn", "forkserver")


def _run_pickled(payload: bytes) -> bytes:
    """Runs in a worker process: unpickle the call, run it, pickle its result.

    The worker of the call's placement is the worker process's name."""
    call: NodeCall = pickle.loads(payload)
    worker = multiprocessing.current_process().name if call.record_placement else None
    return dumps_result(call, call(worker=worker))


class ProcessExecutor:
    """Runs sync callables in a pool of at most ``max_workers`` worker processes.

    The pool starts on first use (``spawn`` by default, or ``forkserver``; never ``fork``,
    which is unsafe in a process running threads). The callable and its arguments are pickled
    before submission: a function that is not importable or an argument that cannot be
    pickled fails the node with :class:`~plait.errors.ExecutorError` naming them; so does a
    return value that cannot be pickled. The event loop is never blocked (asyncio or trio).

    Calls wait for a free worker before they are submitted, so cancellation drops every call
    that has not started; calls already running in a worker are abandoned, and their workers
    are terminated by :meth:`aclose`. A worker that dies (killed,
    segfault) fails its node with :class:`ExecutorError`; the pool is replaced, so a retry of
    the node or the next node gets fresh workers.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None, *, start_method: str = "spawn") -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if max_workers < 1:
            raise ValueError(f"ProcessExecutor: max_workers must be >= 1, got {max_workers}")
        if start_method not in START_METHODS:
            raise ValueError(
                f"ProcessExecutor: start_method must be one of {START_METHODS}, "
                f"got {start_method!r}"
            )
        self.max_workers = max_workers
        self.start_method = start_method
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._abandoned: set[Future[bytes]] = set()
        self._limiter = LoopLocal(lambda: anyio.CapacityLimiter(self.max_workers))

    def _current_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.max_workers, mp_context=multiprocessing.get_context(self.start_method)
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False)

    def _submit(self, payload: bytes) -> tuple[ProcessPoolExecutor, Future[bytes]]:
        pool = self._current_pool()
        try:
            return pool, pool.submit(_run_pickled, payload)
        except BrokenProcessPool:  # a worker died since the last call: start afresh
            self._discard(pool)
            pool = self._current_pool()
            return pool, pool.submit(_run_pickled, payload)

    async def run(self, call: NodeCall, /) -> CallResult:
        payload = dumps_call(call, self.name)
        # Calls wait here, not in the pool, until a worker is free: a cancelled call that
        # was never submitted never runs, and the pool holds no cancelled futures (which
        # CPython 3.11 trips over when a worker dies).
        async with self._limiter.get():
            pool, future = self._submit(payload)
            try:
                await wait_done(future)
            except BaseException:
                # running (or about to) in a worker: abandoned, terminated by aclose()
                self._abandoned.add(future)
                future.add_done_callback(self._abandoned.discard)
                raise
        try:
            data = future.result()
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise ExecutorError(
                f"a worker process of the process executor died while running "
                f"{callable_name(call)} (killed, out of memory or crashed); the pool is "
                "restarted for later calls"
            ) from exc
        try:
            return cast(CallResult, pickle.loads(data))
        except Exception as exc:
            raise ExecutorError(
                f"the result of {callable_name(call)} cannot be unpickled in the runner "
                f"process: {type(exc).__name__}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Shut the pool down, terminating the workers of abandoned calls.

        No ``cancel_futures``: the pool only ever holds calls a worker is free for, and
        CPython 3.11 fails on cancelled futures in a pool whose workers were terminated.
        """
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        if any(not f.done() for f in list(self._abandoned)):
            _terminate_workers(pool)
        self._abandoned.clear()
        await anyio.to_thread.run_sync(lambda: pool.shutdown(wait=True))


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.terminate()
