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
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import platformdirs

from plait.converter import dumps, loads, structure
from plait.errors import PlaitError, RunNotFoundError, StoreError
from plait.loops import LoopLocal
from plait.records import (
    EdgeRecord,
    NodeRecord,
    NodeStatus,
    RunRecord,
    RunStatus,
    StatusChange,
)
from plait_provenance_sqlite import _schema

__all__ = ["DEFAULT_FILENAME", "NodeNotFoundError", "NodeOutput", "SqliteProvenance"]

T = TypeVar("T")

DEFAULT_FILENAME: Final = "provenance.sqlite3"
#: Commits between two WAL checkpoints (each runs on a worker thread). A checkpoint costs
#: two fsyncs whatever its size (about 10 ms on a VM disk): every 4,000 commits that is
#: 2.5 us per node, and the WAL stays under about 20 MB (a node commit is about one page).
CHECKPOINT_EVERY: Final = 4000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SQLITE_BUSY: Final = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_FINAL_RUN: Final = frozenset(s.value for s in RunStatus if s.is_final)
_DONE_NODE: Final = frozenset(s.value for s in NodeStatus if s.has_output)
# statuses an execution reaches only after running
_ENDED_NODE: Final = frozenset({"completed", "failed", "cancelled", "paused"})


class NodeNotFoundError(PlaitError, LookupError):
    """The run exists but has no execution of that node label."""


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


_json_str: Final = json.encoder.encode_basestring_ascii


# --------------------------------------------------------------------------- time
def _us(dt: datetime) -> int:
    """Exact integer microseconds since the epoch of an aware datetime."""
    td = dt - _EPOCH
    return (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds


def _us_or_none(dt: datetime | None) -> int | None:
    return None if dt is None else _us(dt)


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _dt_or_none(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _query_us(value: datetime, name: str) -> int:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return _us(value)


# --------------------------------------------------------------------------- rows
_RUN_COLUMNS: Final = (
    "run_id, dag_nsref, status, started_at, updated_at, finished_at, source_inputs, "
    "parent_run_id, replay_of, correlation_id, attempt, owner_pid, owner_host, failed_node, "
    "error_type, error_message, traceback"
)
# appends the new entries of a comma-separated JSON list column to the stored ones
_APPEND = (
    "{col} = CASE WHEN excluded.{col} = '' THEN {col} WHEN {col} = '' THEN excluded.{col} "
    "ELSE {col} || ',' || excluded.{col} END"
)
_RUN_UPSERT: Final = (
    f"INSERT INTO runs ({_RUN_COLUMNS}, history) VALUES ({', '.join('?' * 18)}) "
    "ON CONFLICT (run_id) DO UPDATE SET dag_nsref = excluded.dag_nsref, "
    "status = excluded.status, started_at = excluded.started_at, "
    "updated_at = excluded.updated_at, finished_at = excluded.finished_at, "
    "source_inputs = excluded.source_inputs, parent_run_id = excluded.parent_run_id, "
    "replay_of = excluded.replay_of, correlation_id = excluded.correlation_id, "
    "attempt = excluded.attempt, owner_pid = excluded.owner_pid, "
    "owner_host = excluded.owner_host, failed_node = excluded.failed_node, "
    "error_type = excluded.error_type, error_message = excluded.error_message, "
    "traceback = excluded.traceback, " + _APPEND.format(col="history")
)

_NODE_COLUMNS: Final = (
    "run_id, label, attempt, status, node_type, recorded_at, updated_at, inputs, output, "
    "restorable, started_at, finished_at, duration_ms, executor, host, pid, worker, "
    "error_type, error_message, traceback"
)
_RUN_MASK: Final = (1 << _schema.RUN_SHIFT) - 1
# A node row is the 20 columns above plus history and edges: parameters ?1..?22. A new
# execution takes the next row number of its run's range (?23..?24), chosen inside the
# statement so that two processes writing one run (a forced restart) cannot collide.
_NODE_INSERT: Final = (
    f"INSERT INTO node_executions (row_no, {_NODE_COLUMNS}, history, edges) VALUES ("
    "ifnull((SELECT row_no FROM node_executions WHERE row_no BETWEEN ?23 AND ?24 "
    "ORDER BY row_no DESC LIMIT 1) + 1, ?23), " + ", ".join(f"?{i}" for i in range(1, 23)) + ")"
)
# appends the new entries (?N) of a comma-separated JSON list column to the stored ones
_APPEND_PARAM = (
    "{col} = CASE WHEN ?{n} = '' THEN {col} WHEN {col} = '' THEN ?{n} ELSE {col} || ',' || ?{n} END"
)
# a later record of the same execution keeps what an earlier one knew (inputs, placement)
_NODE_UPDATE: Final = (
    "UPDATE node_executions SET status = ?4, node_type = ?5, updated_at = ?7, "
    "inputs = ifnull(?8, inputs), output = ?9, restorable = ?10, "
    "started_at = ifnull(?11, started_at), finished_at = ?12, duration_ms = ?13, "
    "executor = ifnull(?14, executor), host = ifnull(?15, host), pid = ifnull(?16, pid), "
    "worker = ifnull(?17, worker), error_type = ?18, error_message = ?19, traceback = ?20, "
    + _APPEND_PARAM.format(col="history", n=21)
    + ", "
    + _APPEND_PARAM.format(col="edges", n=22)
    + " WHERE row_no = ?23 AND ?1 = run_id AND ?2 = label AND ?3 = attempt"
)
# each run joined with the rows of its range
_RUN_RANGE_JOIN: Final = (
    "FROM runs AS r JOIN node_executions AS n "
    f"ON n.row_no BETWEEN r.run_no << {_schema.RUN_SHIFT} "
    f"AND (r.run_no << {_schema.RUN_SHIFT}) | {_RUN_MASK}"
)
_RUNS_NODES: Final = f"SELECT n.run_id, n.label, n.attempt, n.history {_RUN_RANGE_JOIN}"
#: run ids per query in ``IN (...)`` lists (SQLite's default limit is 999 parameters)
_IN_CHUNK: Final = 500
_EDGE_COLUMNS: Final = (
    "run_id, upstream, upstream_attempt, downstream, downstream_attempt, parameter, traversed_at"
)
_EDGE_INSERT: Final = (
    f"INSERT OR IGNORE INTO edge_traversals ({_EDGE_COLUMNS}) VALUES ({', '.join('?' * 7)})"
)
_DATA_UPSERT: Final = (
    "INSERT INTO run_data (run_id, key, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at"
)


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.dag_nsref,
        run.status.value,
        _us(run.started_at),
        _us(run.updated_at),
        _us_or_none(run.finished_at),
        dumps(run.source_inputs),
        run.parent_run_id,
        run.replay_of,
        run.correlation_id,
        run.attempt,
        run.owner_pid,
        run.owner_host,
        run.failed_node,
        run.error_type,
        run.error_message,
        run.traceback,
    )


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        dag_nsref=row[1],
        status=RunStatus(row[2]),
        started_at=_dt(row[3]),
        updated_at=_dt(row[4]),
        finished_at=_dt_or_none(row[5]),
        source_inputs=loads(row[6]),
        parent_run_id=row[7],
        replay_of=row[8],
        correlation_id=row[9],
        attempt=row[10],
        owner_pid=row[11],
        owner_host=row[12],
        failed_node=row[13],
        error_type=row[14],
        error_message=row[15],
        traceback=row[16],
    )


def _node_row(node: NodeRecord) -> list[Any]:
    """The 20 column values of a record (history and edges are added at commit)."""
    inputs = node.inputs
    output = node.output
    updated_at = node.updated_at
    updated = _us(updated_at)
    started_at = node.started_at
    finished_at = node.finished_at
    return [
        node.run_id,
        node.label,
        node.attempt,
        node.status.value,
        node.node_type,
        updated,  # recorded_at: kept from the first record of the execution
        updated,
        None if inputs is None else dumps(inputs),
        None if output is None else dumps(output),
        1 if node.restorable else 0,
        None if started_at is None else _us(started_at),
        # usually the moment of the update itself
        updated if finished_at is updated_at else _us_or_none(finished_at),
        node.duration_ms,
        node.executor,
        node.host,
        node.pid,
        node.worker,
        node.error_type,
        node.error_message,
        node.traceback,
    ]


def _node_from_row(row: Sequence[Any]) -> NodeRecord:
    return NodeRecord(
        run_id=row[0],
        label=row[1],
        attempt=row[2],
        status=NodeStatus(row[3]),
        node_type=row[4],
        updated_at=_dt(row[6]),
        inputs=None if row[7] is None else loads(row[7]),
        output=None if row[8] is None else loads(row[8]),
        restorable=bool(row[9]),
        started_at=_dt_or_none(row[10]),
        finished_at=_dt_or_none(row[11]),
        duration_ms=row[12],
        executor=row[13],
        host=row[14],
        pid=row[15],
        worker=row[16],
        error_type=row[17],
        error_message=row[18],
        traceback=row[19],
    )


def _edge_from_row(row: Sequence[Any]) -> EdgeRecord:
    return EdgeRecord(
        run_id=row[0],
        upstream=row[1],
        upstream_attempt=row[2],
        downstream=row[3],
        downstream_attempt=row[4],
        parameter=row[5],
        traversed_at=_dt(row[6]),
    )


def _parse_list(text: str) -> list[Any]:
    return loads(f"[{text}]") if text else []


_NodeKey = tuple[str, str, int]


# row positions a later record of an execution leaves as they were when it has nothing
# to say: inputs, started_at, executor, host, pid, worker
_KEEP_IF_NONE: Final = (7, 10, 13, 14, 15, 16)


def _merge_rows(earlier: list[Any], later: list[Any]) -> list[Any]:
    """One execution's row from two of its records: the later one, keeping what only the
    earlier one knew and when the execution was first recorded."""
    later[5] = earlier[5]  # recorded_at
    for i in _KEEP_IF_NONE:
        if later[i] is None:
            later[i] = earlier[i]
    return later


class _Batch:
    """Buffered writes: run records, and node rows merged per execution (one per commit;
    a plain class, as one is made for every commit)."""

    __slots__ = ("data", "edges", "node_history", "nodes", "run_history", "runs")

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.run_history: dict[str, list[str]] = {}
        # the row of each execution, merged from its records (see _merge_rows)
        self.nodes: dict[_NodeKey, list[Any]] = {}
        self.node_history: dict[_NodeKey, list[str]] = {}
        self.edges: list[EdgeRecord] = []
        self.data: dict[tuple[str, str], tuple[Any, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.runs or self.nodes or self.edges or self.data)

    def merge_older_into(self, newer: _Batch) -> None:
        """Add ``newer`` (written while this batch failed to commit) behind this one."""
        self.runs = {**self.runs, **newer.runs}
        nodes = self.nodes
        for key, row in newer.nodes.items():
            mine = nodes.get(key)
            nodes[key] = row if mine is None else _merge_rows(mine, row)
        for run_id, entries in newer.run_history.items():
            self.run_history.setdefault(run_id, []).extend(entries)
        for key, entries in newer.node_history.items():
            self.node_history.setdefault(key, []).extend(entries)
        self.edges.extend(newer.edges)
        self.data.update(newer.data)

    def rows(
        self,
    ) -> tuple[
        list[tuple[Any, ...]], list[tuple[_NodeKey, tuple[Any, ...]]], list[tuple[Any, ...]]
    ]:
        """Run rows, keyed node rows (history and edges inline) and left-over edge rows."""
        run_rows = []
        if self.runs:
            run_history = self.run_history
            run_rows = [
                (*_run_row(run), ",".join(run_history.get(run_id, ())))
                for run_id, run in self.runs.items()
            ]
        inline: dict[_NodeKey, list[str]] = {}
        loose = []
        nodes = self.nodes
        for edge in self.edges:
            at = _us(edge.traversed_at)
            # the edge lives in the row of its downstream (or else upstream) execution
            key = (edge.run_id, edge.downstream, edge.downstream_attempt)
            if key not in nodes:
                key = (edge.run_id, edge.upstream, edge.upstream_attempt)
                if key not in nodes:
                    loose.append(
                        (
                            edge.run_id,
                            edge.upstream,
                            edge.upstream_attempt,
                            edge.downstream,
                            edge.downstream_attempt,
                            edge.parameter,
                            at,
                        )
                    )
                    continue
            param = edge.parameter
            entry = (
                f"[{_json_str(edge.upstream)},{edge.upstream_attempt:d},"
                f"{_json_str(edge.downstream)},{edge.downstream_attempt:d},"
                f"{'null' if param is None else _json_str(param)},{at:d}]"
            )
            inline.setdefault(key, []).append(entry)
        history = self.node_history
        node_rows = [
            (key, (*row, ",".join(history.get(key, ())), ",".join(inline.get(key, ()))))
            for key, row in nodes.items()
        ]
        return run_rows, node_rows, loose


@attrs.define
class _RunRows:
    """Where one run's node executions live: its row range and each execution's row."""

    base: int  # run_no << RUN_SHIFT
    by_execution: dict[tuple[str, int], int]  # (label, attempt) -> row_no


class _OrphanNodesError(Exception):
    """Node records of a run that has no run record (write_run was never called)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _SQLITE_BUSY


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
        self._requested = None if path is None else Path(path).expanduser()
        self._path: Path | None = self._requested
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._buffer_lock = threading.Lock()
        self._buffer = _Batch()
        # last status written per run, per (label, attempt) ('' label: the run itself)
        self._last_status: dict[str, dict[tuple[str, int], str]] = {}
        self._inflight = 0  # operations holding the connection across an await
        self._commits = 0
        # row numbers of the executions of runs this backend is writing
        self._run_rows: dict[str, _RunRows] = {}
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
    def _changed(self, run_id: str, key: tuple[str, int], status: str, final_run: bool) -> bool:
        # caller holds the buffer lock: is this a real transition (worth a history entry)?
        seen = self._last_status.get(run_id)
        if seen is None:
            seen = self._last_status[run_id] = {}
        changed = seen.get(key) != status
        seen[key] = status
        if final_run:
            del self._last_status[run_id]
        return changed

    def write_run(self, run: RunRecord) -> None:
        """Buffer the run's latest record (and a history entry if its status changed)."""
        status = run.status.value
        with self._buffer_lock:
            self._buffer.runs[run.run_id] = run
            if self._changed(run.run_id, ("", run.attempt), status, status in _FINAL_RUN):
                self._buffer.run_history.setdefault(run.run_id, []).append(
                    f'["{status}",{_us(run.updated_at)},{run.attempt}]'
                )

    def write_nodes(self, nodes: Sequence[NodeRecord]) -> None:
        """Buffer node records; a later record of the same execution replaces an earlier one.

        A history entry is kept per status change. When the first record of an execution
        already has it finished (the runner records an ``@inline`` node once, when it is
        done), its ``running`` transition is taken from ``started_at``.
        """
        with self._buffer_lock:
            buffered = self._buffer.nodes
            history = self._buffer.node_history
            last_status = self._last_status
            for node in nodes:
                run_id = node.run_id
                key = (run_id, node.label, node.attempt)
                row = _node_row(node)
                mine = buffered.get(key)
                buffered[key] = row if mine is None else _merge_rows(mine, row)
                status = row[3]
                seen = last_status.get(run_id)
                if seen is None:
                    seen = last_status[run_id] = {}
                execution = key[1:]
                before = seen.get(execution)
                if before == status:
                    continue
                seen[execution] = status
                entries = history.get(key)
                if entries is None:
                    entries = history[key] = []
                if before is None and status in _ENDED_NODE and row[10] is not None:
                    entries.append(f'["running",{row[10]}]')
                entries.append(f'["{status}",{row[6]}]')

    def write_edges(self, edges: Sequence[EdgeRecord]) -> None:
        with self._buffer_lock:
            self._buffer.edges.extend(edges)

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        """Buffer a run-scoped value (JSON-safe data). Thread-safe."""
        row = (run_id, key, dumps(value), _us(datetime.now(UTC)))
        with self._buffer_lock:
            self._buffer.data[run_id, key] = row

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
        with self._buffer_lock:
            batch, self._buffer = self._buffer, _Batch()
        try:
            self._write(conn, batch)
        except BaseException as exc:
            self._restore(batch, exc)
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
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
            with self._buffer_lock:
                batch, self._buffer = self._buffer, _Batch()
            if not batch:
                return
            try:
                with anyio.CancelScope(shield=True):  # a started write is seen through
                    await anyio.to_thread.run_sync(
                        self._retrying, lambda: self._write(conn, batch), limiter=limiter
                    )
            except BaseException as exc:
                self._restore(batch, exc)
                error = self._write_error(exc)
                if error is exc:
                    raise
                raise error from exc
            self._commits += 1

    def _restore(self, batch: _Batch, exc: BaseException) -> None:
        """Keep a batch that failed to commit for the next commit (minus orphan records)."""
        if isinstance(exc, _OrphanNodesError):  # they can never be written
            batch.nodes = {k: v for k, v in batch.nodes.items() if k[0] != exc.run_id}
            batch.edges = [e for e in batch.edges if e.run_id != exc.run_id]
        with self._buffer_lock:
            batch.merge_older_into(self._buffer)
            self._buffer = batch

    def _write_error(self, exc: BaseException) -> BaseException:
        """The error a failed commit raises: a StoreError naming the file, or ``exc``."""
        if isinstance(exc, _OrphanNodesError):
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

    def _write(self, conn: sqlite3.Connection, batch: _Batch) -> None:
        run_rows, node_rows, loose_edges = batch.rows()
        if len(node_rows) == 1 and not (run_rows or loose_edges or batch.data):
            # the common commit after one node: one statement is its own transaction
            ((key, row),) = node_rows
            rows = self._run_rows.get(key[0])
            if rows is not None:
                self._put_node(conn, rows, key, row)
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if run_rows:
                conn.executemany(_RUN_UPSERT, run_rows)
            known = self._run_rows
            unknown = {key[0] for key, _row in node_rows if key[0] not in known}
            if unknown:
                self._load_run_rows(conn, unknown)
            for key, row in node_rows:
                rows = known.get(key[0])
                if rows is None:
                    raise _OrphanNodesError(key[0])
                self._put_node(conn, rows, key, row)
            if loose_edges:
                conn.executemany(_EDGE_INSERT, loose_edges)
            if batch.data:
                conn.executemany(_DATA_UPSERT, batch.data.values())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # row numbers handed out inside the rolled-back transaction are void
            for key, _row in node_rows:
                self._run_rows.pop(key[0], None)
            raise
        for row in run_rows:
            if row[2] in _FINAL_RUN:  # a later write of the run reloads its rows
                self._run_rows.pop(row[0], None)

    def _load_run_rows(self, conn: sqlite3.Connection, run_ids: set[str]) -> None:
        """Learn where the executions of these runs live (inside the write transaction).

        Two queries per 500 runs, however many runs (a map's elements are sub-runs). A run
        with no run record stays unknown.
        """
        ordered = sorted(run_ids)
        for start in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            loaded = {
                run_id: _RunRows(run_no << _schema.RUN_SHIFT, {})
                for run_id, run_no in conn.execute(
                    f"SELECT run_id, run_no FROM runs WHERE run_id IN ({marks})", chunk
                )
            }
            for run_id, label, attempt, row_no in conn.execute(
                f"SELECT r.run_id, n.label, n.attempt, n.row_no {_RUN_RANGE_JOIN} "
                f"WHERE r.run_id IN ({marks})",
                chunk,
            ):
                loaded[run_id].by_execution[label, attempt] = row_no
            self._run_rows.update(loaded)

    @staticmethod
    def _put_node(
        conn: sqlite3.Connection, rows: _RunRows, key: _NodeKey, row: tuple[Any, ...]
    ) -> None:
        slot = (key[1], key[2])
        row_no = rows.by_execution.get(slot)
        # (an update that finds no row: the run was purged meanwhile; record it anew)
        if row_no is not None and conn.execute(_NODE_UPDATE, (*row, row_no)).rowcount == 1:
            return
        cursor = conn.execute(_NODE_INSERT, (*row, rows.base, rows.base | _RUN_MASK))
        rows.by_execution[slot] = cursor.lastrowid  # type: ignore[assignment]

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a worker thread, waiting out other processes' locks with backoff."""
        conn = self._conn
        assert conn is not None
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        conn.execute(f"PRAGMA busy_timeout = {max(1, int(self.timeout * 1000))}")
        try:
            while True:
                try:
                    return fn()
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

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
                return await anyio.to_thread.run_sync(self._retrying, in_snapshot, limiter=limiter)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read provenance store {str(self.path)!r}: {exc}") from exc

    def _run_range(self, conn: sqlite3.Connection, run_id: str) -> tuple[int, int]:
        """The first and last row number of the run's node executions (it must exist)."""
        found = conn.execute("SELECT run_no FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if found is None:
            raise RunNotFoundError(
                f"run {run_id!r} not found in the provenance store {str(self.path)!r}"
            )
        base: int = found[0] << _schema.RUN_SHIFT
        return base, base | _RUN_MASK

    async def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`~plait.errors.RunNotFoundError` naming ``run_id``."""

        def query(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(
                    f"run {run_id!r} not found in the provenance store {str(self.path)!r}"
                )
            return _run_from_row(row)

        return await self._read(query)

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
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(RunStatus(status).value)
        if dag_nsref is not None:
            where.append("dag_nsref = ?")
            params.append(dag_nsref)
        if parent_run_id is not None:
            where.append("parent_run_id = ?")
            params.append(parent_run_id)
        if started_after is not None:
            where.append("started_at >= ?")
            params.append(_query_us(started_after, "started_after"))
        if started_before is not None:
            where.append("started_at < ?")
            params.append(_query_us(started_before, "started_before"))
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, got {limit}")
            sql += " LIMIT ?"
            params.append(limit)

        def query(conn: sqlite3.Connection) -> list[RunRecord]:
            return [_run_from_row(row) for row in conn.execute(sql, params)]

        return await self._read(query)

    @staticmethod
    def _latest_nodes(conn: sqlite3.Connection, span: tuple[int, int]) -> list[NodeRecord]:
        # the latest attempt of each label, labels in the order they were first recorded
        latest: dict[str, tuple[Any, ...]] = {}
        for row in conn.execute(
            f"SELECT {_NODE_COLUMNS} FROM node_executions WHERE row_no BETWEEN ? AND ?", span
        ):
            seen = latest.get(row[1])
            if seen is None or row[2] > seen[2]:
                latest[row[1]] = row
        return [_node_from_row(row) for row in latest.values()]

    @staticmethod
    def _edges(conn: sqlite3.Connection, run_id: str, span: tuple[int, int]) -> list[EdgeRecord]:
        """Every edge traversal of a run, inline ones and loose ones, in time order."""
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for (text,) in conn.execute(
            "SELECT edges FROM node_executions WHERE row_no BETWEEN ? AND ? AND edges != ''", span
        ):
            for entry in _parse_list(text):
                found.setdefault(tuple(entry[:5]), (run_id, *entry))
        for row in conn.execute(
            f"SELECT {_EDGE_COLUMNS} FROM edge_traversals WHERE run_id = ?", (run_id,)
        ):
            found.setdefault(tuple(row[1:6]), row)
        rows = sorted(found.values(), key=lambda r: (r[6], r[3], r[1]))
        return [_edge_from_row(row) for row in rows]

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        """Latest record of every node of the run, in the order they were first recorded."""

        def query(conn: sqlite3.Connection) -> list[NodeRecord]:
            return self._latest_nodes(conn, self._run_range(conn, run_id))

        return await self._read(query)

    async def get_node_attempts(self, run_id: str, label: str) -> list[NodeRecord]:
        """Every execution of one node in the run, oldest attempt first."""

        def query(conn: sqlite3.Connection) -> list[NodeRecord]:
            rows = conn.execute(
                f"SELECT {_NODE_COLUMNS} FROM node_executions "
                "WHERE row_no BETWEEN ? AND ? AND label = ? ORDER BY attempt",
                (*self._run_range(conn, run_id), label),
            )
            return [_node_from_row(row) for row in rows]

        return await self._read(query)

    async def get_node_output(self, run_id: str, label: str, as_type: Any = None) -> NodeOutput:
        """The output of the node's latest execution; restored as ``as_type`` if given.

        Raises :class:`RunNotFoundError` or :class:`NodeNotFoundError` naming what is missing.
        """

        def query(conn: sqlite3.Connection) -> NodeRecord:
            row = conn.execute(
                f"SELECT {_NODE_COLUMNS} FROM node_executions "
                "WHERE row_no BETWEEN ? AND ? AND label = ? ORDER BY attempt DESC LIMIT 1",
                (*self._run_range(conn, run_id), label),
            ).fetchone()
            if row is None:
                raise NodeNotFoundError(f"run {run_id!r} has no execution of node {label!r}")
            return _node_from_row(row)

        node = await self._read(query)
        output = node.output
        if as_type is not None and node.status.has_output:
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

        def query(conn: sqlite3.Connection) -> list[NodeRecord]:
            return [
                node
                for node in self._latest_nodes(conn, self._run_range(conn, run_id))
                if node.status.value not in _DONE_NODE
            ]

        return await self._read(query)

    async def get_edge_traversals(self, run_id: str) -> list[EdgeRecord]:
        """Every value that travelled along an edge in the run, in time order."""

        def query(conn: sqlite3.Connection) -> list[EdgeRecord]:
            return self._edges(conn, run_id, self._run_range(conn, run_id))

        return await self._read(query)

    async def lineage(self, run_id: str, label: str) -> list[NodeRecord]:
        """The upstream executions that fed the latest execution of ``label``, transitively.

        Follows recorded edge traversals (so a restarted node's lineage names the attempts
        whose outputs it actually received), nearest first; the node itself is not included.
        """

        def query(conn: sqlite3.Connection) -> list[NodeRecord]:
            span = self._run_range(conn, run_id)
            row = conn.execute(
                "SELECT max(attempt) FROM node_executions "
                "WHERE row_no BETWEEN ? AND ? AND label = ?",
                (*span, label),
            ).fetchone()
            if row[0] is None:
                raise NodeNotFoundError(f"run {run_id!r} has no execution of node {label!r}")
            feeders: dict[tuple[str, int], set[tuple[str, int]]] = {}
            for edge in self._edges(conn, run_id, span):
                feeders.setdefault((edge.downstream, edge.downstream_attempt), set()).add(
                    (edge.upstream, edge.upstream_attempt)
                )
            order: list[tuple[str, int]] = []
            seen = {(label, row[0])}
            frontier = [(label, row[0])]
            while frontier:
                upper = []
                for key in frontier:
                    for up in sorted(feeders.get(key, ())):
                        if up not in seen:
                            seen.add(up)
                            order.append(up)
                            upper.append(up)
                frontier = upper
            records = {}
            for node_row in conn.execute(
                f"SELECT {_NODE_COLUMNS} FROM node_executions WHERE row_no BETWEEN ? AND ?", span
            ):
                key = (node_row[1], node_row[2])
                if key in seen:
                    records[key] = _node_from_row(node_row)
            return [records[key] for key in order if key in records]

        return await self._read(query)

    @staticmethod
    def _history(
        conn: sqlite3.Connection, run_ids: Sequence[str], label: str | None = None
    ) -> list[StatusChange]:
        """Status changes of runs (and their nodes, or only of node ``label``), time order."""
        marks = ", ".join("?" * len(run_ids))
        changes: list[tuple[int, int, StatusChange]] = []
        if label is None:
            for run_id, text in conn.execute(
                f"SELECT run_id, history FROM runs WHERE run_id IN ({marks})", run_ids
            ):
                for status, at, attempt in _parse_list(text):
                    changes.append(
                        (
                            at,
                            0,
                            StatusChange(
                                run_id=run_id,
                                label=None,
                                status=status,
                                at=_dt(at),
                                attempt=attempt,
                            ),
                        )
                    )
            rows = conn.execute(f"{_RUNS_NODES} WHERE r.run_id IN ({marks})", run_ids)
        else:
            rows = conn.execute(
                f"{_RUNS_NODES} WHERE r.run_id IN ({marks}) AND n.label = ?", (*run_ids, label)
            )
        for run_id, node_label, attempt, text in rows:
            for status, at in _parse_list(text):
                changes.append(
                    (
                        at,
                        1,
                        StatusChange(
                            run_id=run_id,
                            label=node_label,
                            status=status,
                            at=_dt(at),
                            attempt=attempt,
                        ),
                    )
                )
        changes.sort(key=lambda c: (c[0], c[1]))
        return [change for _, _, change in changes]

    async def status_history(self, run_id: str, label: str | None = None) -> list[StatusChange]:
        """Every status transition of the run and its nodes (or of node ``label``), in order.

        Changes of the run itself have ``label is None``.
        """

        def query(conn: sqlite3.Connection) -> list[StatusChange]:
            self._run_range(conn, run_id)
            return self._history(conn, [run_id], label)

        return await self._read(query)

    async def load_run_data(self, run_id: str) -> dict[str, Any]:
        """Every run-scoped value stored for ``run_id`` (empty when none)."""

        def query(conn: sqlite3.Connection) -> dict[str, Any]:
            rows = conn.execute("SELECT key, value FROM run_data WHERE run_id = ?", (run_id,))
            return {key: loads(value) for key, value in rows}

        return await self._read(query)

    # ------------------------------------------------------------------ export, purge
    async def _run_pages(
        self, where: str, params: Sequence[Any], page: int
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Run rows matching ``where``, oldest first, ``page`` at a time (keyset paging)."""
        bound: tuple[int, str] | None = None
        while True:
            sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where}"
            args = list(params)
            if bound is not None:
                sql += " AND (started_at, run_id) > (?, ?)"
                args.extend(bound)
            sql += " ORDER BY started_at, run_id LIMIT ?"
            args.append(page)

            def query(conn: sqlite3.Connection, sql: str = sql, args: list[Any] = args) -> Any:
                return conn.execute(sql, args).fetchall()

            rows = await self._read(query)
            if rows:
                yield rows
            if len(rows) < page:
                return
            bound = (rows[-1][3], rows[-1][0])

    async def iter_runs(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[list[RunRecord]]:
        """Runs started in ``[start, end)``, oldest first, in lists of ``batch_size``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        low = -(2**62) if start is None else _query_us(start, "start")
        high = 2**62 if end is None else _query_us(end, "end")
        async for rows in self._run_pages(
            "started_at >= ? AND started_at < ?", (low, high), batch_size
        ):
            yield [_run_from_row(row) for row in rows]

    async def iter_history(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[list[StatusChange]]:
        """Status changes at times in ``[start, end)`` in lists of at most ``batch_size``.

        Grouped by run (runs in start order), each run's changes in time order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        low = -(2**62) if start is None else _query_us(start, "start")
        high = 2**62 if end is None else _query_us(end, "end")
        pending: list[StatusChange] = []
        # a run has changes in the window only if it started before its end and was last
        # updated after its start
        async for rows in self._run_pages("started_at < ? AND updated_at >= ?", (high, low), 100):
            run_ids = [row[0] for row in rows]

            def query(conn: sqlite3.Connection, run_ids: list[str] = run_ids) -> Any:
                return self._history(conn, run_ids)

            by_run: dict[str, list[StatusChange]] = {run_id: [] for run_id in run_ids}
            for change in await self._read(query):
                if low <= _us(change.at) < high:
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
            params.append(_query_us(older_than, "older_than"))
        chosen = f"SELECT run_id FROM runs WHERE {' AND '.join(where)}"
        purge_sql = (
            "WITH RECURSIVE doomed(run_id) AS ("
            f"{chosen} UNION SELECT r.run_id FROM runs r JOIN doomed d "
            "ON r.parent_run_id = d.run_id) "
        )

        def delete(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS purge_ids (run_id TEXT PRIMARY KEY)")
                conn.execute("DELETE FROM purge_ids")
                conn.execute(f"{purge_sql} INSERT INTO purge_ids SELECT run_id FROM doomed", params)
                count: int = conn.execute("SELECT count(*) FROM purge_ids").fetchone()[0]
                conn.executemany(
                    "DELETE FROM node_executions WHERE row_no BETWEEN ? AND ?",
                    [
                        (run_no << _schema.RUN_SHIFT, run_no << _schema.RUN_SHIFT | _RUN_MASK)
                        for (run_no,) in conn.execute(
                            "SELECT run_no FROM runs WHERE run_id IN (SELECT run_id FROM purge_ids)"
                        )
                    ],
                )
                for table in ("edge_traversals", "run_data", "runs"):
                    conn.execute(
                        f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM purge_ids)"
                    )
                conn.execute("DELETE FROM purge_ids")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return count

        await self.commit()
        if self._conn is None:
            await self.open()
        async with self._exclusive() as (conn, limiter):
            if conn is None:
                raise StoreError(f"provenance store {str(self.path)!r} is closed")
            self._run_rows.clear()  # a purged run's rows are gone
            try:
                return await anyio.to_thread.run_sync(
                    self._retrying, lambda: delete(conn), limiter=limiter
                )
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot purge provenance store {str(self.path)!r}: {exc}"
                ) from exc


#: The name the SPEC and ``lythonic`` users know.
DagProvenance = SqliteProvenance
