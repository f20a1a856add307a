"""The commit of a batch: its rows written to the connection in one transaction.

The commit after a node is a single ``INSERT`` (or ``UPDATE``) of about one page: each run
owns a range of row numbers at the end of ``node_executions`` (schema version 3, see
``_schema``), and the :class:`Writer` remembers where the executions of the runs it writes
live, so no statement looks them up.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import attrs

from plait.errors import RunNotFoundError
from plait.records import RunRecord
from plait_provenance_sqlite import _schema
from plait_provenance_sqlite._batch import FINAL_RUN, Batch, NodeKey
from plait_provenance_sqlite.codec import (
    EDGES,
    LOGS,
    NODES,
    RUN_DATA,
    RUN_MASK,
    RUNS,
    history_entry,
    us,
)

__all__ = [
    "RUN_RANGE_JOIN",
    "OrphanNodesError",
    "RunRows",
    "Writer",
    "claim_run",
    "is_busy",
    "retrying",
]

T = TypeVar("T")

_SQLITE_BUSY: Final = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_RUN_UPSERT: Final = RUNS.upsert()
#: a new run (fails on a run id that is stored: the upsert below takes over)
_RUN_INSERT: Final = RUNS.insert()
#: the upsert, returning the run's number and whether any execution of it is stored
_RUN_UPSERT_RETURNING: Final = (
    f"{_RUN_UPSERT} RETURNING run_no, EXISTS (SELECT 1 FROM node_executions WHERE row_no "
    f"BETWEEN run_no << {_schema.RUN_SHIFT} AND (run_no << {_schema.RUN_SHIFT}) | {RUN_MASK})"
)
# a new execution takes the next row number of its run's range
_NODE_INSERT: Final = NODES.insert_numbered("row_no")
# a later record of the same execution (kept columns: see the NODES declaration)
_NODE_UPDATE: Final = NODES.update_by_number("row_no")
_EDGE_INSERT: Final = EDGES.insert("INSERT OR IGNORE")
_DATA_UPSERT: Final = RUN_DATA.upsert()
_LOG_UPSERT: Final = LOGS.upsert()
_RUN_ID: Final = RUNS.at["run_id"]
_RUN_STATUS: Final = RUNS.at["status"]
#: each run joined with the rows of its range
RUN_RANGE_JOIN: Final = (
    "FROM runs AS r JOIN node_executions AS n "
    f"ON n.row_no BETWEEN r.run_no << {_schema.RUN_SHIFT} "
    f"AND (r.run_no << {_schema.RUN_SHIFT}) | {RUN_MASK}"
)
#: each run with the rows of its range, if any
RUN_RANGE_LEFT_JOIN: Final = RUN_RANGE_JOIN.replace(" JOIN ", " LEFT JOIN ", 1)
#: run ids per query in ``IN (...)`` lists (SQLite's default limit is 999 parameters)
IN_CHUNK: Final = 500


@attrs.define
class RunRows:
    """Where one run's node executions live: its row range and each execution's row."""

    base: int  # run_no << RUN_SHIFT
    by_execution: dict[tuple[str, int], int]  # (label, attempt) -> row_no


class OrphanNodesError(Exception):
    """Node records of a run that has no run record (write_run was never called)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def is_busy(exc: sqlite3.Error) -> bool:
    """Did another connection hold the lock?"""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _SQLITE_BUSY


def retrying(conn: sqlite3.Connection, timeout: float, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a worker thread, waiting out other processes' locks with backoff."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    conn.execute(f"PRAGMA busy_timeout = {max(1, int(timeout * 1000))}")
    try:
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def claim_run(
    conn: sqlite3.Connection,
    run_id: str,
    where: str,
    decide: Callable[[RunRecord], RunRecord],
) -> RunRecord:
    """In one ``IMMEDIATE`` transaction: read run ``run_id``, let ``decide`` turn it into
    the claimed record (or raise), and store that with its history entry."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(f"SELECT {RUNS.select} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"run {run_id!r} not found in the provenance store {where}")
        run: RunRecord = decide(RUNS.decode(row))
        entry = history_entry(run.status.value, us(run.updated_at), run.attempt)
        conn.execute(_RUN_UPSERT, [*RUNS.encode(run), entry])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return run


class Writer:
    """Writes batches; knows the row numbers of the runs it has written.

    A run this writer does not know is inserted as a new run, and its row number comes back
    with the statement (``lastrowid``): the executions of a run it created need no query.
    Only when the run is stored already (a unique-key conflict) is it upserted instead,
    returning its number and whether any execution of it is stored. A commit of one
    statement (a node, or a run record) is that statement alone, which SQLite commits by
    itself; anything larger is one transaction.
    """

    def __init__(self) -> None:
        self.run_rows: dict[str, RunRows] = {}

    def write(self, conn: sqlite3.Connection, batch: Batch) -> None:
        """Commit ``batch`` (one statement, or one transaction); raises with nothing written."""
        run_rows, node_rows, loose_edges = batch.rows()
        if not (loose_edges or batch.data or batch.logs) and len(run_rows) + len(node_rows) == 1:
            if run_rows:
                # a run starting or ending: one statement (a run that ends is forgotten)
                run_row = run_rows[0]
                self._put_run(conn, run_row, learn=run_row[_RUN_STATUS] not in FINAL_RUN)
                self._forget_final(run_rows)
                return
            ((key, row),) = node_rows
            rows = self.run_rows.get(key[0])
            if rows is not None:  # the common commit after one node
                self._put_node(conn, rows, key, row)
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._put_all(conn, batch, run_rows, node_rows, loose_edges)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # row numbers handed out inside the rolled-back transaction are void
            for key, _row in node_rows:
                self.run_rows.pop(key[0], None)
            for run_row in run_rows:
                self.run_rows.pop(run_row[_RUN_ID], None)
            raise
        self._forget_final(run_rows)

    def _forget_final(self, run_rows: list[list[Any]]) -> None:
        for run_row in run_rows:
            if run_row[_RUN_STATUS] in FINAL_RUN:  # a later write of the run reloads its rows
                self.run_rows.pop(run_row[_RUN_ID], None)

    def _put_run(self, conn: sqlite3.Connection, run_row: list[Any], *, learn: bool) -> None:
        """Write a run's record; with ``learn``, learn its row range unless it is known."""
        run_id = run_row[_RUN_ID]
        if not learn or run_id in self.run_rows:
            conn.execute(_RUN_UPSERT, run_row)
            return
        try:  # a run this writer does not know is a new one, mostly: its row number is new
            run_no = conn.execute(_RUN_INSERT, run_row).lastrowid
        except sqlite3.IntegrityError:  # stored already (resumed, or written by another store)
            ((run_no, stored),) = conn.execute(_RUN_UPSERT_RETURNING, run_row).fetchall()
            if stored:  # it has executions: the first commit of a node loads them
                return
        self.run_rows[run_id] = RunRows(run_no << _schema.RUN_SHIFT, {})

    def _put_all(
        self,
        conn: sqlite3.Connection,
        batch: Batch,
        run_rows: list[list[Any]],
        node_rows: list[tuple[NodeKey, list[Any]]],
        loose_edges: list[list[Any]],
    ) -> None:
        for run_row in run_rows:
            self._put_run(conn, run_row, learn=True)
        known = self.run_rows
        unknown = {key[0] for key, _row in node_rows if key[0] not in known}
        if unknown:
            self._load_run_rows(conn, unknown)
        for key, row in node_rows:
            rows = known.get(key[0])
            if rows is None:
                raise OrphanNodesError(key[0])
            self._put_node(conn, rows, key, row)
        if loose_edges:
            conn.executemany(_EDGE_INSERT, loose_edges)
        if batch.data:
            conn.executemany(_DATA_UPSERT, batch.data.values())
        if batch.logs:
            conn.executemany(_LOG_UPSERT, batch.logs.values())

    def _load_run_rows(self, conn: sqlite3.Connection, run_ids: set[str]) -> None:
        """Learn where the executions of these runs live (inside the write transaction).

        One query per 500 runs, however many runs (a map's elements are sub-runs). A run
        with no run record stays unknown.
        """
        ordered = sorted(run_ids)
        for start in range(0, len(ordered), IN_CHUNK):
            chunk = ordered[start : start + IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            loaded: dict[str, RunRows] = {}
            for run_id, run_no, label, attempt, row_no in conn.execute(
                f"SELECT r.run_id, r.run_no, n.label, n.attempt, n.row_no {RUN_RANGE_LEFT_JOIN} "
                f"WHERE r.run_id IN ({marks})",
                chunk,
            ):
                rows = loaded.get(run_id)
                if rows is None:
                    rows = loaded[run_id] = RunRows(run_no << _schema.RUN_SHIFT, {})
                if row_no is not None:
                    rows.by_execution[label, attempt] = row_no
            self.run_rows.update(loaded)

    @staticmethod
    def _put_node(conn: sqlite3.Connection, rows: RunRows, key: NodeKey, row: list[Any]) -> None:
        slot = (key[1], key[2])
        row_no = rows.by_execution.get(slot)
        # (an update that finds no row: the run was purged meanwhile; record it anew)
        if row_no is not None and conn.execute(_NODE_UPDATE, (*row, row_no)).rowcount == 1:
            return
        cursor = conn.execute(_NODE_INSERT, (*row, rows.base, rows.base | RUN_MASK))
        rows.by_execution[slot] = cursor.lastrowid  # type: ignore[assignment]
