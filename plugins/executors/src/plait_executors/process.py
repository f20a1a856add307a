"""``process``: sync nodes in a bounded pool of worker processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from plait import arguments
from plait.errors import ArgumentError, ExecutorError
from plait.executors import CallResult, NodeCall
from plait.loops import LoopLocal, wait_done
from plait.pickling import callable_name
from plait_executors._pickling import dumps_call, dumps_result

T = TypeVar("T")

START_METHODS = ("spawn", "forkserver")


#: how often a worker checks that the process that started it is still alive (seconds)
PARENT_POLL = 0.2
_PR_SET_PDEATHSIG = 1


def _exit_with_runner(runner: int, pdeathsig: bool) -> None:
    """Worker initializer: end this worker when the runner process ``runner`` dies.

    A worker finishing a node after its runner was killed would do work a restart does
    again. On Linux the kernel kills the worker (``PR_SET_PDEATHSIG``) when the thread that
    started it dies, so that is asked only when the runner's main thread started the pool
    and is the worker's parent (``spawn``). Everywhere, a daemon thread checks every
    :data:`PARENT_POLL` seconds that the worker's parent is the same and the runner alive
    (with ``forkserver`` the parent is the fork server, which may outlive the runner).
    """
    started_by = os.getppid()
    if pdeathsig and started_by == runner and sys.platform.startswith("linux"):
        import ctypes  # here: only the Linux workers of a main-thread pool need it

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def runner_alive() -> bool:
        if os.getppid() != started_by:
            return False
        try:
            os.kill(runner, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return not _zombie(runner)

    if not runner_alive():
        os._exit(1)  # the runner died before this worker was ready

    def watch() -> None:
        while runner_alive():
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="plait-runner-watch", daemon=True).start()


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (Linux; elsewhere: no)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


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
    are terminated by :meth:`aclose`. Workers end when the runner's process dies (killed
    included), so no node finishes after its runner is gone. A worker that dies (killed,
    segfault) fails its node with :class:`ExecutorError`; the pool is replaced, so a retry of
    the node or the next node gets fresh workers.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None, *, start_method: str = "spawn") -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        arguments.count(max_workers, name="max_workers", where="ProcessExecutor()", minimum=1)
        if start_method not in START_METHODS:
            raise ArgumentError(
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
                    self.max_workers,
                    mp_context=multiprocessing.get_context(self.start_method),
                    initializer=_exit_with_runner,
                    initargs=(os.getpid(), threading.current_thread() is threading.main_thread()),
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
