"""``dask``: sync nodes on a ``dask.distributed`` cluster."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import uuid
from collections.abc import Iterable
from functools import partial
from typing import Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
from distributed import Client, Future, LocalCluster, get_worker
from distributed.protocol import pickle

from plait import arguments
from plait.errors import ExecutorError
from plait.executors import CallResult, NodeCall
from plait.loops import LoopLocal
from plait.pickling import callable_name
from plait_dask._pickling import dumps_call, dumps_result

T = TypeVar("T")

ADDRESS_ENV = "PLAIT_DASK_ADDRESS"


def _run_on_worker(payload: bytes) -> bytes:
    """Runs on a Dask worker: unpickle the call, run it, pickle its result.

    The worker of the call's placement is the Dask worker's address (asked for only when
    the runner records placement).
    """
    call: NodeCall = pickle.loads(payload)
    worker = None
    if call.record_placement:
        with contextlib.suppress(ValueError):  # ValueError: not on a worker (called directly)
            worker = get_worker().address
    return dumps_result(call, call(worker=worker))


class DaskExecutor:
    """Runs sync callables as tasks on a ``dask.distributed`` cluster.

    Where: ``client`` (a synchronous :class:`distributed.Client` you own), else the scheduler
    at ``address``, else ``$PLAIT_DASK_ADDRESS``, else a :class:`distributed.LocalCluster`
    of ``n_workers`` processes (``threads_per_worker`` threads each) on the loopback
    interface, started on first use and closed by :meth:`aclose`.

    Calls are pickled in the runner process (Dask's pickler: pickle, then cloudpickle); what
    cannot be pickled fails the node with :class:`~plait.errors.ExecutorError` naming it.
    Waiting never blocks the event loop (asyncio or trio): the calls started in one turn of
    the loop are submitted together, and one thread per client fetches the results of the
    tasks that finished meanwhile with one ``client.gather``, then wakes each loop once.
    Cancelling the run cancels the tasks. Dask reschedules a task whose worker died (up to
    ``distributed.scheduler.allowed-failures`` times), then the node fails with
    :class:`ExecutorError`. Workers only compute: provenance stays in the runner process.
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        client: Client | None = None,
    ) -> None:
        if n_workers is not None:
            arguments.count(n_workers, name="n_workers", where="DaskExecutor()", minimum=1)
        arguments.count(
            threads_per_worker, name="threads_per_worker", where="DaskExecutor()", minimum=1
        )
        if address is not None:
            arguments.instance(address, str, name="address", where="DaskExecutor()")
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self._lock = threading.Lock()
        self._client = client
        self._owns_client = client is None
        self._cluster: LocalCluster | None = None
        self._states: LoopLocal[_LoopState] = LoopLocal(_LoopState)
        self._fetcher_: _Fetcher | None = None

    # ------------------------------------------------------------------ connection
    def _connect(self) -> Client:
        with self._lock:
            if self._client is None:
                address = self.address or os.environ.get(ADDRESS_ENV) or None
                if address is None:
                    self._cluster = LocalCluster(
                        n_workers=self.n_workers or os.cpu_count() or 1,
                        threads_per_worker=self.threads_per_worker,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=":0",  # any free port: None means 8787, shared
                    )
                    address = self._cluster.scheduler_address
                try:
                    self._client = Client(address, set_as_default=False)
                except OSError as exc:
                    raise ExecutorError(
                        f"dask executor: cannot reach the Dask scheduler at {address!r}: {exc}"
                    ) from exc
            return self._client

    async def client(self) -> Client:
        """The synchronous client, connecting (or starting a local cluster) on first use."""
        if self._client is not None:
            return self._client
        return await anyio.to_thread.run_sync(self._connect)

    def _loop_state(self) -> _LoopState:
        return self._states.get()  # anyio primitives cannot cross event loops

    # ------------------------------------------------------------------ running
    async def _submit(self, client: Client, payload: bytes, key: str) -> Future[Any]:
        """Submit with the other calls made in the same turn of the event loop.

        The first call of a turn yields once (shielded), so every node started in that turn
        (the elements of a map, say) joins, then submits them all with one ``client.map``:
        one message to the scheduler instead of one per task.
        """
        state = self._loop_state()
        batch = state.batch
        leader = batch is None
        if batch is None:
            batch = state.batch = _Batch()
        entry = batch.add(payload, key)
        if leader:
            await anyio.lowlevel.cancel_shielded_checkpoint()
            state.batch = None
            batch.flush(client)
        else:
            try:
                await batch.flushed.wait()
            except BaseException:
                entry.cancelled = True  # cancelled before the flush: never submitted
                raise
        if entry.future is None:
            raise ExecutorError(f"dask executor: submitting {key} failed: {batch.error!r}")
        return entry.future

    async def run(self, call: NodeCall, /) -> CallResult:
        payload = dumps_call(call)
        client = await self.client()
        name = callable_name(call)
        state = self._loop_state()
        future = await self._submit(client, payload, f"{name}-{uuid.uuid4().hex}")
        waiter = _Waiter(future, name, state)
        try:
            self._fetcher(client).watch(waiter)
            await waiter.done.wait()
            if waiter.error is not None:
                raise waiter.error
        except BaseException:
            waiter.abandoned = True
            with anyio.CancelScope(shield=True):
                if not future.done():
                    await anyio.to_thread.run_sync(_cancel, future)
            raise
        finally:
            future.release()
        return cast(CallResult, pickle.loads(waiter.data))

    def _fetcher(self, client: Client) -> _Fetcher:
        fetcher = self._fetcher_
        if fetcher is None or fetcher.client is not client:
            with self._lock:
                fetcher = self._fetcher_
                if fetcher is None or fetcher.client is not client:
                    fetcher = self._fetcher_ = _Fetcher(client)
        return fetcher

    async def aclose(self) -> None:
        """Close the client and the local cluster, if this executor created them."""
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            cluster, self._cluster = self._cluster, None
            fetcher, self._fetcher_ = self._fetcher_, None
            if fetcher is not None:
                fetcher.close()
            if client is not None and self._owns_client:
                client.close()
            if cluster is not None:
                cluster.close()
            if not self._owns_client:
                self._client = client


class _Entry:
    __slots__ = ("cancelled", "future", "key", "payload")

    def __init__(self, payload: bytes, key: str) -> None:
        self.payload = payload
        self.key = key
        self.cancelled = False
        self.future: Future[Any] | None = None


class _Batch:
    """Calls waiting to be submitted together."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.flushed = anyio.Event()
        self.error: BaseException | None = None

    def add(self, payload: bytes, key: str) -> _Entry:
        entry = _Entry(payload, key)
        self.entries.append(entry)
        return entry

    def flush(self, client: Client) -> None:
        live = [e for e in self.entries if not e.cancelled]
        try:
            if live:
                futures = client.map(
                    _run_on_worker,
                    [e.payload for e in live],
                    key=[e.key for e in live],
                    pure=False,
                )
                for entry, future in zip(live, futures, strict=True):
                    entry.future = future
        except Exception as exc:
            self.error = exc
        finally:
            self.flushed.set()


class _LoopState:
    """What the executor keeps per event loop."""

    def __init__(self) -> None:
        self.batch: _Batch | None = None
        native: Any = anyio.lowlevel.current_token().native_token
        # the loop's thread-safe "call soon": trio's run_sync_soon, asyncio's call_soon_threadsafe
        self._call_soon = getattr(native, "run_sync_soon", None) or native.call_soon_threadsafe

    def wake(self, waiters: list[_Waiter]) -> None:
        """From any thread: set the ``done`` event of each waiter, in one turn of the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is gone (asyncio: closed; trio: done)
            self._call_soon(partial(_set_done, waiters))


def _set_done(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        waiter.done.set()


class _Waiter:
    """A ``run`` waiting for its task: the fetcher fills in ``data`` or ``error``."""

    __slots__ = ("abandoned", "data", "done", "error", "future", "name", "state")

    def __init__(self, future: Future[Any], name: str, state: _LoopState) -> None:
        self.future = future
        self.name = name
        self.state = state
        self.done = anyio.Event()
        self.abandoned = False
        self.data: bytes = b""
        self.error: BaseException | None = None


class _Fetcher:
    """Fetches the results of finished tasks in batches, on one thread per client.

    A done-callback queues each finished task; the thread takes everything queued, fetches
    the values with one ``client.gather`` and wakes each event loop once per batch. Failed,
    cancelled or lost tasks are resolved one by one (``future.result()``), which keeps the
    remote exception and its traceback.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._queue: queue.SimpleQueue[_Waiter | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: set[_Waiter] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="plait-dask-fetch", daemon=True)
        self._thread.start()

    def watch(self, waiter: _Waiter) -> None:
        with self._lock:
            if self._closed:
                raise ExecutorError("dask executor: closed")
            self._waiting.add(waiter)
        put = self._queue.put
        waiter.future.add_done_callback(lambda _future: put(waiter))

    def close(self) -> None:
        """Stop the thread; runs still waiting fail with :class:`ExecutorError`."""
        with self._lock:
            self._closed = True
            left, self._waiting = self._waiting, set()
        self._queue.put(None)
        for waiter in left:
            waiter.error = ExecutorError(
                f"dask executor: closed while {waiter.name} was running on the cluster"
            )
        self._wake(left)

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            self._fetch([w for w in batch if w is not None and not w.abandoned])
            if any(w is None for w in batch):
                return

    def _fetch(self, waiters: list[_Waiter]) -> None:
        ready = {w.future.key: w.future for w in waiters if w.future.status == "finished"}
        data: dict[Any, bytes | None] = {}
        if ready:
            # errors="skip": a task whose data was lost meanwhile maps to None, handled below
            with contextlib.suppress(Exception):
                data = self.client.gather(ready, errors="skip")
        outcomes: list[tuple[_Waiter, bytes, BaseException | None]] = []
        for waiter in waiters:
            value = data.get(waiter.future.key)
            error: BaseException | None = None
            if value is None:  # failed, cancelled or lost: the future says why
                try:
                    value = _result(waiter.future, waiter.name)
                except BaseException as exc:
                    error = exc
            outcomes.append((waiter, value or b"", error))
        delivered = []
        with self._lock:
            for waiter, value, error in outcomes:
                if waiter in self._waiting:  # else: closed meanwhile, already failed
                    self._waiting.discard(waiter)
                    waiter.data, waiter.error = value, error
                    delivered.append(waiter)
        self._wake(delivered)

    @staticmethod
    def _wake(waiters: Iterable[_Waiter]) -> None:
        by_loop: dict[_LoopState, list[_Waiter]] = {}
        for waiter in waiters:
            by_loop.setdefault(waiter.state, []).append(waiter)
        for state, group in by_loop.items():
            state.wake(group)


def _cancel(future: Future[Any]) -> None:
    """Blocking: cancel the task, unless the client is already closed (nothing to cancel)."""
    with contextlib.suppress(Exception):
        future.cancel()


def _result(future: Future[Any], name: str) -> Any:
    """Blocking: the finished task's value (or its exception, with the remote traceback)."""
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise ExecutorError(
            f"the Dask workers running {name} kept dying (killed, out of memory or crashed); "
            f"Dask gave up: {exc}"
        ) from exc
