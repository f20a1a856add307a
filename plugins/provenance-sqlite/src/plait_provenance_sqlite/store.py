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
another process. When the ``-wal`` file passes :data:`WAL_LIMIT` bytes (looked at every
:data:`WAL_CHECK_EVERY` commits) it is checkpointed on a worker thread, and SQLite truncates
it back to that size when it starts over.

Reads run on a worker thread (a capacity limiter of our own), inside one read transaction
so multi-statement queries see one snapshot. Queries first commit this backend's own
buffered writes, so a backend always reads what it wrote.

One connection per backend, shared under an ``anyio.Lock`` (``check_same_thread=False``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
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
from plait.errors import ArgumentError, OutputNotStoredError, PlaitError, StoreError
from plait.inspection import InspectsRuns
from plait.loops import LoopLocal
from plait.owners import claimed
from plait.records import (
    EdgeRecord,
    LogRecord,
    NodeRecord,
    NodeStatus,
    RunOwner,
    RunRecord,
    RunStatus,
    RunTree,
    StatusChange,
)
from plait_provenance_sqlite import _queries, _schema, _writer
from plait_provenance_sqlite._batch import Batch, Buffer
from plait_provenance_sqlite._queries import NodeNotFoundError
from plait_provenance_sqlite._writer import OrphanNodesError, Writer, is_busy, retrying
from plait_provenance_sqlite.codec import RUNS, query_us, us

__all__ = ["DEFAULT_FILENAME", "NodeNotFoundError", "NodeOutput", "SqliteProvenance"]

T = TypeVar("T")

DEFAULT_FILENAME: Final = "provenance.sqlite3"
#: Size of the ``-wal`` file (bytes) past which the store checkpoints it, on a worker thread;
#: also its ``journal_size_limit``: SQLite truncates the file back to this size when the WAL
#: starts over. A checkpoint costs two fsyncs whatever its size (about 10 ms on a VM disk):
#: with node commits of one page (4 KB) that is one checkpoint per ~4,000 nodes, 2.5 us each.
WAL_LIMIT: Final = 16 * 2**20
#: Commits between two looks at the size of the ``-wal`` file (one ``stat``).
WAL_CHECK_EVERY: Final = 32
#: ``synchronous`` values: ``"normal"`` survives a killed process (the default),
#: ``"full"`` also a power loss or OS crash, at the cost of one fsync per commit.
SYNCHRONOUS: Final = ("normal", "full")

_RUN_ID: Final = RUNS.at["run_id"]
# what decoding a damaged row raises: bad JSON or UTF-8 (ValueError), a value of the wrong
# type or shape, a time out of range
_DAMAGE: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError)


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


class SqliteProvenance(InspectsRuns):
    """Provenance of plait runs in one SQLite file (backend name ``sqlite``).

    ``path`` is a ``str`` or ``Path``; ``None`` means
    ``platformdirs.user_data_dir("plait")/provenance.sqlite3``, resolved when the store
    opens. A new file is created with mode 0600 (new directories 0700). ``timeout`` is how
    many seconds a write waits for other processes holding the database before failing.
    ``synchronous`` is ``"normal"`` (committed records survive the process being killed) or
    ``"full"`` (they survive a power loss too; each commit waits for an fsync).

    Use as ``async with SqliteProvenance(path) as prov:``, or let a ``DagRunner`` open and
    close it. Every query opens it on demand.
    """

    stores_values = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 30.0,
        synchronous: str = "normal",
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ArgumentError(
                f"synchronous must be one of {', '.join(map(repr, SYNCHRONOUS))}, "
                f"got {synchronous!r}"
            )
        self._requested = (
            None
            if path is None
            else arguments.file_path(path, name="path", where="SqliteProvenance()").expanduser()
        )
        self._path: Path | None = self._requested
        self.timeout = timeout
        self.synchronous = synchronous
        self._wal: Path | None = None
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
        _schema.identify(path)  # read-only: a refused file keeps its bytes and its -wal
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
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            # checkpoints (with their fsyncs) run on a worker thread, never inside a commit
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
            # the event-loop fast path must never wait: contention moves to a thread
            conn.execute("PRAGMA busy_timeout = 0")
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            conn.close()
            raise StoreError(f"cannot use provenance store {str(path)!r}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._commits = 0
        self._wal = path.with_name(path.name + "-wal")
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

    def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Buffer nodes' log lines; a line with the run, node and ``seq`` of a stored one
        replaces it. Committed with the node records."""
        self._buffer.add_logs(records)

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
        if self._commits >= WAL_CHECK_EVERY:
            await self._bound_wal()

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
        if isinstance(exc, sqlite3.Error | UnicodeDecodeError):  # (a damaged file's message)
            return StoreError(f"cannot write to provenance store {str(self.path)!r}: {exc}")
        return exc

    async def _bound_wal(self) -> None:
        """Checkpoint when the ``-wal`` file has passed :data:`WAL_LIMIT` bytes."""
        self._commits = 0
        try:
            size = os.stat(self._wal).st_size if self._wal is not None else 0
        except OSError:
            return
        if size > WAL_LIMIT:
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file (on a worker thread) and sync it to disk.

        Runs by itself when the ``-wal`` file passes :data:`WAL_LIMIT` bytes and when the
        store closes.
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
    async def _read(self, fn: Callable[[sqlite3.Connection], T], what: str = "") -> T:
        """Commit own writes, then run ``fn(conn)`` in one read transaction on a thread.

        ``what`` names what is read (``"run 'r1'"``) in the StoreError a damaged or
        unreadable file raises.
        """
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

            with self._damage(what):
                return await anyio.to_thread.run_sync(
                    retrying, conn, self.timeout, in_snapshot, limiter=limiter
                )

    @contextlib.contextmanager
    def _damage(self, what: str) -> Iterator[None]:
        """Turn what a damaged file makes SQLite, JSON or a record decoder raise into a
        StoreError naming the file and ``what`` was read."""
        try:
            yield
        except ArgumentError as exc:  # a stored value no record accepts (an unknown status)
            of = f" for {what}" if what else ""
            raise StoreError(
                f"provenance store {self._where} holds damaged data{of}: {exc}"
            ) from exc
        except PlaitError:
            raise
        except sqlite3.Error as exc:
            of = f" ({what})" if what else ""
            raise StoreError(f"cannot read provenance store {self._where}{of}: {exc}") from exc
        except _DAMAGE as exc:
            of = f" for {what}" if what else ""
            raise StoreError(
                f"provenance store {self._where} holds damaged data{of}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    @property
    def _where(self) -> str:
        """The store file, as error messages name it."""
        return repr(str(self.path))

    async def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`~plait.errors.RunNotFoundError` naming ``run_id``."""
        return await self._read(
            partial(_queries.get_run, run_id=run_id, where=self._where), f"run {run_id!r}"
        )

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
        return await self._read(partial(_queries.runs, sql=sql, params=params), "the runs")

    async def _in_run(
        self,
        run_id: str,
        fn: Callable[[sqlite3.Connection, tuple[int, int]], T],
        label: str | None = None,
    ) -> T:
        """``fn(conn, span)`` with the row range of the run (RunNotFoundError if none);
        ``label`` names the node read, in errors."""
        where = self._where

        def query(conn: sqlite3.Connection) -> T:
            return fn(conn, _queries.run_range(conn, run_id, where))

        what = f"run {run_id!r}" if label is None else f"node {label!r} of run {run_id!r}"
        return await self._read(query, what)

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        """Latest record of every node of the run, in the order they were first recorded."""
        return await self._in_run(run_id, _queries.latest_nodes)

    async def get_node_attempts(self, run_id: str, label: str) -> list[NodeRecord]:
        """Every execution of one node in the run, oldest attempt first."""
        return await self._in_run(
            run_id, lambda conn, span: _queries.node_attempts(conn, span, label), label
        )

    async def get_node_output(self, run_id: str, label: str, as_type: Any = None) -> NodeOutput:
        """The output of the node's latest execution; restored as ``as_type`` if given.

        Raises :class:`RunNotFoundError` or :class:`NodeNotFoundError` naming what is missing,
        :class:`~plait.errors.OutputNotStoredError` when ``as_type`` is asked of an output
        that was recorded as not restorable.
        """
        node = await self._in_run(
            run_id, lambda conn, span: _queries.latest_node(conn, run_id, span, label), label
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
        The entries a node called through ``ctx.call`` fed it too: their executions (records
        of the calls' sub-runs, ``run_id`` naming the sub-run) follow the node's own calls
        first, then each upstream execution's.
        """
        upstream = await self._in_run(
            run_id, lambda conn, span: _queries.lineage(conn, run_id, span, label), label
        )
        calls = await self._calls_by_caller(run_id)
        if not calls:
            return upstream
        found = list(calls.get(label, ()))
        for record in upstream:
            found.append(record)
            found.extend(calls.get(record.label, ()))
        return found

    async def _calls_by_caller(self, run_id: str) -> dict[str, list[NodeRecord]]:
        """The node records of the ``ctx.call`` sub-runs of ``run_id``, by calling node."""
        run = await self.get_run(run_id)
        prefix = f"{run.dag_nsref}/"
        calls: dict[str, list[NodeRecord]] = {}
        subs = await self.list_runs(parent_run_id=run_id)
        for sub in sorted(subs, key=lambda r: r.started_at):
            caller, sep, _entry = sub.dag_nsref.removeprefix(prefix).partition("/call:")
            if sep and sub.dag_nsref.startswith(prefix):
                calls.setdefault(caller, []).extend(await self.get_node_executions(sub.run_id))
        return calls

    async def inspect_run(self, run_id: str) -> RunTree:
        """The run with its nodes (outputs not loaded), edges and sub-runs as one tree, read
        in one transaction (the same tree as :func:`plait.inspection.build_run_tree`)."""
        where = self._where
        return await self._read(
            lambda conn: _queries.run_tree(conn, run_id, where), f"the tree of run {run_id!r}"
        )

    async def status_history(self, run_id: str, label: str | None = None) -> list[StatusChange]:
        """Every status transition of the run and its nodes (or of node ``label``), in order.

        Changes of the run itself have ``label is None``.
        """
        return await self._in_run(
            run_id, lambda conn, _span: _queries.status_history(conn, [run_id], label), label
        )

    async def load_run_data(self, run_id: str) -> dict[str, Any]:
        """Every run-scoped value stored for ``run_id`` (empty when none)."""
        return await self._read(
            partial(_queries.run_data, run_id=run_id), f"the data of run {run_id!r}"
        )

    # ------------------------------------------------------------------ ownership
    async def claim_run(
        self,
        run_id: str,
        expected_attempt: int,
        owner: RunOwner,
        *,
        expected_owner: RunOwner | None = None,
    ) -> RunRecord:
        """Take run ``run_id`` over for ``owner`` in one ``IMMEDIATE`` transaction (which
        every process writing the file serializes), and return it as claimed.

        The run must still be at ``expected_attempt`` (and owned by ``expected_owner`` when
        given): what the caller read. Otherwise :class:`~plait.errors.RunBusyError` names
        the run and its owner now; see :meth:`plait.protocols.ProvenanceBackend.claim_run`.
        """
        decide = partial(
            claimed,
            expected_attempt=expected_attempt,
            owner=owner,
            expected_owner=expected_owner,
            at=datetime.now(UTC),
        )
        await self.commit()
        if self._conn is None:
            await self.open()
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                raise StoreError(f"provenance store {str(self.path)!r} is closed")
            take = partial(_writer.claim_run, conn, run_id, self._where, decide)
            with self._damage(f"claim of run {run_id!r}"):
                run = await anyio.to_thread.run_sync(
                    retrying, conn, self.timeout, take, limiter=limiter
                )
        self._buffer.note_run(run)
        return run

    async def get_logs(
        self, run_id: str, label: str | None = None, after_seq: int | None = None
    ) -> list[LogRecord]:
        """The log lines of the run's nodes (of node ``label``; with ``after_seq``, only
        those after it), by time, then node, then ``seq``. Empty for an unknown run."""
        return await self._read(
            partial(_queries.logs, run_id=run_id, label=label, after_seq=after_seq)
        )

    # ------------------------------------------------------------------ export, purge
    async def _run_pages(
        self, where: str, params: Sequence[Any], page: int
    ) -> AsyncIterator[list[Any]]:
        """Run rows matching ``where``, oldest first, ``page`` at a time (keyset paging)."""
        bound: tuple[int, str] | None = None
        while True:
            rows = await self._read(
                partial(_queries.runs_page, where=where, params=params, bound=bound, page=page),
                "the runs",
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
        pages = self._run_pages("started_at >= ? AND started_at < ?", (low, high), batch_size)
        async with contextlib.aclosing(pages):  # closed at once when a read fails
            async for rows in pages:
                with self._damage("the runs"):
                    runs = [RUNS.decode(row) for row in rows]
                yield runs

    def _bucket(self, by_run: dict[str, list[StatusChange]], run_id: str) -> list[StatusChange]:
        """The list of run ``run_id``'s changes; a run the page did not read is damage (an
        index that no longer agrees with its table)."""
        found = by_run.get(run_id)
        if found is None:
            raise StoreError(
                f"provenance store {self._where} holds damaged data: the status history "
                f"names run {run_id!r}, which the runs read do not include"
            )
        return found

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
        pages = self._run_pages("started_at < ? AND updated_at >= ?", (high, low), 100)
        async with contextlib.aclosing(pages):  # closed at once when a read fails
            async for rows in pages:
                run_ids = [row[_RUN_ID] for row in rows]
                by_run: dict[str, list[StatusChange]] = {run_id: [] for run_id in run_ids}
                found = await self._read(
                    partial(_queries.status_history, run_ids=run_ids), "the status history"
                )
                for change in found:
                    if low <= us(change.at) < high:
                        self._bucket(by_run, change.run_id).append(change)
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
        """Delete whole finished runs: top-level runs with every sub-run of theirs (their
        nodes, edges, history and data). Returns how many runs (sub-runs included) went.

        ``older_than`` is a moment or an age (runs started before it); ``status`` keeps only
        top-level runs in that status. A sub-run is never purged on its own, and a run is
        kept while it or any of its sub-runs is running, unless ``status="running"`` is
        asked for explicitly (the run of a crashed process stays ``running``).
        """
        if isinstance(older_than, timedelta):
            if older_than < timedelta(0):
                raise ArgumentError(
                    f"older_than must be an age of zero or more, got {older_than!r} "
                    "(a negative age would purge every finished run)"
                )
            older_than = datetime.now(UTC) - older_than
        roots = ["(parent_run_id IS NULL OR parent_run_id NOT IN (SELECT run_id FROM runs))"]
        params: list[Any] = []
        if status is not None:
            roots.append("status = ?")
            params.append(RunStatus(status).value)
        if older_than is not None:
            roots.append("started_at < ?")
            params.append(query_us(older_than, "older_than"))
        keep_running = status is None or RunStatus(status) is not RunStatus.RUNNING
        delete = partial(
            _queries.purge, roots=" AND ".join(roots), params=params, keep_running=keep_running
        )
        await self.commit()
        if self._conn is None:
            await self.open()
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                raise StoreError(f"provenance store {str(self.path)!r} is closed")
            self._writer.run_rows.clear()  # a purged run's rows are gone
            try:
                return await anyio.to_thread.run_sync(
                    retrying, conn, self.timeout, partial(delete, conn), limiter=limiter
                )
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot purge provenance store {str(self.path)!r}: {exc}"
                ) from exc


#: The name the SPEC and ``lythonic`` users know.
DagProvenance = SqliteProvenance
