"""``SqliteProvenance``: plait's provenance store in one SQLite file.

Write path: the runner's ``write_*`` calls only append to in-memory buffers (under a
``threading.Lock``, since run data can be written from worker threads); a node record becomes
its row right away, merged with earlier records of the same execution. :meth:`commit` writes
the whole buffer in one transaction: the commit after a node is a single ``INSERT`` (or
``UPDATE``) of about one page, as the schema (version 3, see ``_schema``) gives each run a
range of row numbers at the end of the table. When the database is free that transaction
runs right on the event loop (it is small, and a thread hop would cost more than the write);
when another process holds the write lock, the commit moves to a worker thread that waits
with SQLite's busy handler and retries with backoff, so the event loop never waits for
another process. Every :data:`CHECKPOINT_EVERY` commits the WAL is checkpointed on a worker
thread.

Reads run on a worker thread (a capacity limiter of our own), inside one read transaction
so multi-statement queries see one snapshot. Queries first commit this backend's own
buffered writes, so a backend always reads what it wrote.

One connection per backend, shared under an ``anyio.Lock`` (``check_same_thread=False``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import platformdirs

from plait import arguments
from plait.converter import structure
from plait.errors import OutputNotStoredError, StoreError
from plait.loops import LoopLocal
from plait.records import (
    EdgeRecord,
    NodeRecord,
    NodeStatus,
    RunRecord,
    RunStatus,
    StatusChange,
)
from plait_provenance_sqlite import _queries, _schema
from plait_provenance_sqlite._batch import Batch, Buffer
from plait_provenance_sqlite._queries import NodeNotFoundError
from plait_provenance_sqlite._writer import OrphanNodesError, Writer, is_busy, retrying
from plait_provenance_sqlite.codec import RUNS, query_us, us

__all__ = ["DEFAULT_FILENAME", "NodeNotFoundError", "NodeOutput", "SqliteProvenance"]

T = TypeVar("T")

DEFAULT_FILENAME: Final = "provenance.sqlite3"
#: Commits between two WAL checkpoints (each runs on a worker thread). A checkpoint costs
#: two fsyncs whatever its size (about 10 ms on a VM disk): every 4,000 commits that is
#: 2.5 us per node, and the WAL stays under about 20 MB (a node commit is about one page).
CHECKPOINT_EVERY: Final = 4000

_RUN_ID: Final = RUNS.at["run_id"]


@attrs.frozen(kw_only=True)
class NodeOutput:
    """The stored output of a node's latest execution.

    ``output`` is JSON-safe data (or the value restored as ``as_type`` when asked for);
    ``restorable`` is false when the runner could not store it faithfully.
    """

    run_id: str
    label: str
    attempt: int
    status: NodeStatus
    output: Any
    restorable: bool


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents, each new one with mode 0700."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):
            new.mkdir(mode=0o700)


class SqliteProvenance:
    """Provenance of plait runs in one SQLite file (backend name ``sqlite``).

    ``path`` is a ``str`` or ``Path``; ``None`` means
    ``platformdirs.user_data_dir("plait")/provenance.sqlite3``, resolved when the store
    opens. A new file is created with mode 0600 (new directories 0700). ``timeout`` is how
    many seconds a write waits for other processes holding the database before failing.

    Use as ``async with SqliteProvenance(path) as prov:``, or let a ``DagRunner`` open and
    close it. Every query opens it on demand.
    """

    stores_values = True

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0
    ) -> None:
        self._requested = (
            None
            if path is None
            else arguments.file_path(path, name="path", where="SqliteProvenance()").expanduser()
        )
        self._path: Path | None = self._requested
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._buffer = Buffer()
        self._writer = Writer()
        self._inflight = 0  # operations holding the connection across an await
        self._commits = 0
        # a lock or limiter cannot cross event loops (asyncio vs trio, or anyio.run twice)
        self._loop_tools: LoopLocal[tuple[anyio.Lock, anyio.CapacityLimiter]] = LoopLocal(
            lambda: (anyio.Lock(fast_acquire=True), anyio.CapacityLimiter(1))
        )

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"SqliteProvenance({str(self.path)!r}, {state})"

    @property
    def path(self) -> Path:
        """The database file (the platformdirs default when none was given)."""
        if self._path is None:
            return Path(platformdirs.user_data_dir("plait")) / DEFAULT_FILENAME
        return self._path

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> SqliteProvenance:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[tuple[sqlite3.Connection | None, Any]]:
        """Hold the connection for work that awaits (threads); the fast commit path waits."""
        db_lock, limiter = self._loop_tools.get()
        async with db_lock:
            self._inflight += 1
            try:
                yield self._conn, limiter
            finally:
                self._inflight -= 1

    async def open(self) -> None:
        """Open (creating or migrating) the database; refuse files that are not ours."""
        if self._conn is not None:
            return
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                self._conn = await anyio.to_thread.run_sync(self._open_sync, limiter=limiter)

    def _open_sync(self) -> sqlite3.Connection:
        path = self._path = self.path
        _schema.check_file(path)
        _make_private_dirs(path.parent)
        if not path.exists():
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create provenance store {str(path)!r}: {exc}") from exc
        try:
            conn = sqlite3.connect(
                path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open provenance store {str(path)!r}: {exc}") from exc
        try:
            _schema.prepare(conn, path)
            conn.execute("PRAGMA synchronous = NORMAL")
            # checkpoints (with their fsyncs) run on a worker thread, never inside a commit
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            # the event-loop fast path must never wait: contention moves to a thread
            conn.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot use provenance store {str(path)!r}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._commits = 0
        return conn

    async def aclose(self) -> None:
        """Commit what is buffered, checkpoint and close the connection. Safe to call twice."""
        if self._conn is None:
            return
        try:
            await self.commit()
        finally:
            with anyio.CancelScope(shield=True):
                async with self._exclusive() as (conn, limiter):
                    self._conn = None
                    if conn is not None:
                        # the last connection to close checkpoints the WAL: not on the loop
                        await anyio.to_thread.run_sync(self._close_sync, conn, limiter=limiter)

    @staticmethod
    def _close_sync(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # busy or locked: another process will checkpoint
        finally:
            conn.close()

    # ------------------------------------------------------------------ buffered writes
    def write_run(self, run: RunRecord) -> None:
        """Buffer the run's latest record (and a history entry if its status changed)."""
        self._buffer.add_run(run)

    def write_nodes(self, nodes: Sequence[NodeRecord]) -> None:
        """Buffer node records; a later record of the same execution replaces an earlier one.

        A history entry is kept per status change. When the first record of an execution
        already has it finished (the runner records an ``@inline`` node once, when it is
        done), its ``running`` transition is taken from ``started_at``.
        """
        self._buffer.add_nodes(nodes)

    def write_edges(self, edges: Sequence[EdgeRecord]) -> None:
        self._buffer.add_edges(edges)

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        """Buffer a run-scoped value (JSON-safe data). Thread-safe."""
        self._buffer.add_data(run_id, key, value)

    # ------------------------------------------------------------------ commit
    async def commit(self) -> None:
        """Make every buffered write durable, in one transaction."""
        if not self._buffer:
            return
        conn = self._conn
        if conn is None or self._inflight:
            await self._commit_exclusive()
            return
        # fast path, synchronous on the loop: nothing else can use the connection meanwhile
        batch = self._buffer.take()
        try:
            self._writer.write(conn, batch)
        except BaseException as exc:
            self._restore(batch, exc)
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                await self._commit_exclusive()  # another process writes: wait on a thread
                return
            error = self._write_error(exc)
            if error is exc:
                raise
            raise error from exc
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY:
            await self.checkpoint()

    async def _commit_exclusive(self) -> None:
        if self._conn is None:
            await self.open()
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                raise StoreError(f"provenance store {str(self.path)!r} is closed")
            batch = self._buffer.take()
            if not batch:
                return
            write = partial(self._writer.write, conn, batch)
            try:
                with anyio.CancelScope(shield=True):  # a started write is seen through
                    await anyio.to_thread.run_sync(
                        retrying, conn, self.timeout, write, limiter=limiter
                    )
            except BaseException as exc:
                self._restore(batch, exc)
                error = self._write_error(exc)
                if error is exc:
                    raise
                raise error from exc
            self._commits += 1

    def _restore(self, batch: Batch, exc: BaseException) -> None:
        """Keep a batch that failed to commit for the next commit (minus orphan records)."""
        if isinstance(exc, OrphanNodesError):  # they can never be written
            batch.drop_run(exc.run_id)
        self._buffer.put_back(batch)

    def _write_error(self, exc: BaseException) -> BaseException:
        """The error a failed commit raises: a StoreError naming the file, or ``exc``."""
        if isinstance(exc, OrphanNodesError):
            return StoreError(
                f"node records of run {exc.run_id!r} were not stored in "
                f"{str(self.path)!r}: the run has no run record (write_run it first)"
            )
        if isinstance(exc, sqlite3.Error):
            return StoreError(f"cannot write to provenance store {str(self.path)!r}: {exc}")
        return exc

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file (on a worker thread) and sync it to disk.

        Runs by itself every :data:`CHECKPOINT_EVERY` commits and when the store closes.
        """
        if self._conn is None:
            return
        async with self._exclusive() as (conn, limiter):
            self._commits = 0
            if conn is not None:
                with contextlib.suppress(sqlite3.OperationalError):  # busy: try again later
                    await anyio.to_thread.run_sync(
                        conn.execute, "PRAGMA wal_checkpoint(PASSIVE)", limiter=limiter
                    )

    # ------------------------------------------------------------------ reads
    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Commit own writes, then run ``fn(conn)`` in one read transaction on a thread."""
        await self.commit()
        if self._conn is None:
            await self.open()
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                raise StoreError(f"provenance store {str(self.path)!r} is closed")

            def in_snapshot() -> T:
                conn.execute("BEGIN")
                try:
                    return fn(conn)
                finally:
                    conn.execute("COMMIT")

            try:
                return await anyio.to_thread.run_sync(
                    retrying, conn, self.timeout, in_snapshot, limiter=limiter
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read provenance store {str(self.path)!r}: {exc}") from exc

    @property
    def _where(self) -> str:
        """The store file, as error messages name it."""
        return repr(str(self.path))

    async def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`~plait.errors.RunNotFoundError` naming ``run_id``."""
        return await self._read(partial(_queries.get_run, run_id=run_id, where=self._where))

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        dag_nsref: str | None = None,
        parent_run_id: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first.

        ``started_after`` is inclusive, ``started_before`` exclusive (aware datetimes).
        """
        sql, params = _queries.list_runs_sql(
            status=status,
            dag_nsref=dag_nsref,
            parent_run_id=parent_run_id,
            started_after=started_after,
            started_before=started_before,
            limit=limit,
        )
        return await self._read(partial(_queries.runs, sql=sql, params=params))

    async def _in_run(
        self, run_id: str, fn: Callable[[sqlite3.Connection, tuple[int, int]], T]
    ) -> T:
        """``fn(conn, span)`` with the row range of the run (RunNotFoundError if none)."""
        where = self._where

        def query(conn: sqlite3.Connection) -> T:
            return fn(conn, _queries.run_range(conn, run_id, where))

        return await self._read(query)

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        """Latest record of every node of the run, in the order they were first recorded."""
        return await self._in_run(run_id, _queries.latest_nodes)

    async def get_node_attempts(self, run_id: str, label: str) -> list[NodeRecord]:
        """Every execution of one node in the run, oldest attempt first."""
        return await self._in_run(
            run_id, lambda conn, span: _queries.node_attempts(conn, span, label)
        )

    async def get_node_output(self, run_id: str, label: str, as_type: Any = None) -> NodeOutput:
        """The output of the node's latest execution; restored as ``as_type`` if given.

        Raises :class:`RunNotFoundError` or :class:`NodeNotFoundError` naming what is missing,
        :class:`~plait.errors.OutputNotStoredError` when ``as_type`` is asked of an output
        that was recorded as not restorable.
        """
        node = await self._in_run(
            run_id, lambda conn, span: _queries.latest_node(conn, run_id, span, label)
        )
        output = node.output
        if as_type is not None and node.status.has_output:
            if not node.restorable:
                raise OutputNotStoredError(
                    f"run {run_id!r}: the output of node {label!r} was not stored (it had no "
                    "JSON form when the node ran), so it cannot be restored as "
                    f"{getattr(as_type, '__qualname__', as_type)}"
                )
            output = structure(output, as_type, where=f"output of node {label!r}")
        return NodeOutput(
            run_id=run_id,
            label=label,
            attempt=node.attempt,
            status=node.status,
            output=output,
            restorable=node.restorable,
        )

    async def get_pending_nodes(self, run_id: str) -> list[NodeRecord]:
        """Nodes whose latest execution has not produced an output.

        That is every node recorded as pending, running, failed, cancelled or paused: what a
        restart of the run has to execute (besides nodes never recorded at all).
        """
        nodes = await self._in_run(run_id, _queries.latest_nodes)
        return [node for node in nodes if node.status.value not in _queries.DONE_NODE]

    async def get_edge_traversals(self, run_id: str) -> list[EdgeRecord]:
        """Every value that travelled along an edge in the run, in time order."""
        return await self._in_run(run_id, lambda conn, span: _queries.edges(conn, run_id, span))

    async def lineage(self, run_id: str, label: str) -> list[NodeRecord]:
        """The upstream executions that fed the latest execution of ``label``, transitively.

        Follows recorded edge traversals (so a restarted node's lineage names the attempts
        whose outputs it actually received), nearest first; the node itself is not included.
        """
        return await self._in_run(
            run_id, lambda conn, span: _queries.lineage(conn, run_id, span, label)
        )

    async def status_history(self, run_id: str, label: str | None = None) -> list[StatusChange]:
        """Every status transition of the run and its nodes (or of node ``label``), in order.

        Changes of the run itself have ``label is None``.
        """
        return await self._in_run(
            run_id, lambda conn, _span: _queries.status_history(conn, [run_id], label)
        )

    async def load_run_data(self, run_id: str) -> dict[str, Any]:
        """Every run-scoped value stored for ``run_id`` (empty when none)."""
        return await self._read(partial(_queries.run_data, run_id=run_id))

    # ------------------------------------------------------------------ export, purge
    async def _run_pages(
        self, where: str, params: Sequence[Any], page: int
    ) -> AsyncIterator[list[Any]]:
        """Run rows matching ``where``, oldest first, ``page`` at a time (keyset paging)."""
        bound: tuple[int, str] | None = None
        while True:
            rows = await self._read(
                partial(_queries.runs_page, where=where, params=params, bound=bound, page=page)
            )
            if rows:
                yield rows
            if len(rows) < page:
                return
            bound = _queries.page_bound(rows[-1])

    async def iter_runs(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[list[RunRecord]]:
        """Runs started in ``[start, end)``, oldest first, in lists of ``batch_size``."""
        arguments.count(batch_size, name="batch_size", where="SqliteProvenance", minimum=1)
        low = -(2**62) if start is None else query_us(start, "start")
        high = 2**62 if end is None else query_us(end, "end")
        async for rows in self._run_pages(
            "started_at >= ? AND started_at < ?", (low, high), batch_size
        ):
            yield [RUNS.decode(row) for row in rows]

    async def iter_history(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[list[StatusChange]]:
        """Status changes at times in ``[start, end)`` in lists of at most ``batch_size``.

        Grouped by run (runs in start order), each run's changes in time order.
        """
        arguments.count(batch_size, name="batch_size", where="SqliteProvenance", minimum=1)
        low = -(2**62) if start is None else query_us(start, "start")
        high = 2**62 if end is None else query_us(end, "end")
        pending: list[StatusChange] = []
        # a run has changes in the window only if it started before its end and was last
        # updated after its start
        async for rows in self._run_pages("started_at < ? AND updated_at >= ?", (high, low), 100):
            run_ids = [row[_RUN_ID] for row in rows]
            by_run: dict[str, list[StatusChange]] = {run_id: [] for run_id in run_ids}
            for change in await self._read(partial(_queries.status_history, run_ids=run_ids)):
                if low <= us(change.at) < high:
                    by_run[change.run_id].append(change)
            for changes in by_run.values():
                pending.extend(changes)
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending

    async def purge(
        self,
        *,
        older_than: datetime | timedelta | None = None,
        status: RunStatus | str | None = None,
    ) -> int:
        """Delete finished runs (and their sub-runs, nodes, edges, history and data).

        ``older_than`` is a moment or an age (runs started before it); ``status`` keeps only
        runs in that status. Running runs are deleted only when ``status="running"`` is
        asked for explicitly. Returns how many runs were deleted.
        """
        where = []
        params: list[Any] = []
        if status is None:
            where.append("status != 'running'")
        else:
            where.append("status = ?")
            params.append(RunStatus(status).value)
        if older_than is not None:
            if isinstance(older_than, timedelta):
                older_than = datetime.now(UTC) - older_than
            where.append("started_at < ?")
            params.append(query_us(older_than, "older_than"))
        chosen = f"SELECT run_id FROM runs WHERE {' AND '.join(where)}"
        await self.commit()
        if self._conn is None:
            await self.open()
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                raise StoreError(f"provenance store {str(self.path)!r} is closed")
            self._writer.run_rows.clear()  # a purged run's rows are gone
            delete = partial(_queries.purge, conn, chosen, params)
            try:
                return await anyio.to_thread.run_sync(
                    retrying, conn, self.timeout, delete, limiter=limiter
                )
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot purge provenance store {str(self.path)!r}: {exc}"
                ) from exc


#: The name the SPEC and ``lythonic`` users know.
DagProvenance = SqliteProvenance
