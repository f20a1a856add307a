"""The read API's queries: each takes the connection, inside one read transaction.

``SqliteProvenance`` runs them on a worker thread (see its ``_read``); ``where`` names the
store file in error messages.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from plait import arguments
from plait.converter import loads
from plait.errors import PlaitError, RunNotFoundError
from plait.inspection import child_name, sub_run_order, without_outputs
from plait.records import (
    EdgeRecord,
    LogRecord,
    NodeRecord,
    NodeStatus,
    RunRecord,
    RunStatus,
    RunTree,
    StatusChange,
)
from plait_provenance_sqlite import _schema
from plait_provenance_sqlite._writer import RUN_RANGE_JOIN
from plait_provenance_sqlite.codec import (
    EDGES,
    LOGS,
    NODES,
    RUN_MASK,
    RUNS,
    dt,
    edge_row,
    parse_list,
    query_us,
)

__all__ = [
    "DONE_NODE",
    "NodeNotFoundError",
    "edges",
    "get_run",
    "latest_node",
    "latest_nodes",
    "lineage",
    "list_runs_sql",
    "logs",
    "node_attempts",
    "page_bound",
    "purge",
    "run_data",
    "run_range",
    "runs",
    "runs_page",
    "run_tree",
    "status_history",
]

DONE_NODE: Final = frozenset(s.value for s in NodeStatus if s.has_output)
_NODES_OF_RANGE: Final = f"SELECT {NODES.select} FROM node_executions WHERE row_no BETWEEN ? AND ?"
_RUNS_NODES: Final = f"SELECT n.run_id, n.label, n.attempt, n.history {RUN_RANGE_JOIN}"
_LABEL: Final = NODES.at["label"]
_ATTEMPT: Final = NODES.at["attempt"]
_EXECUTION: Final = NODES.getter("label", "attempt")
# an edge traversal is recorded once, wherever it is kept
_EDGE_IDENTITY: Final = EDGES.getter(
    "upstream", "upstream_attempt", "downstream", "downstream_attempt", "parameter"
)
_EDGE_ORDER: Final = EDGES.getter("traversed_at", "downstream", "upstream")
#: keyset paging of runs: (started_at, run_id) of a page's last row
page_bound: Final = RUNS.getter("started_at", "run_id")


class NodeNotFoundError(PlaitError, LookupError):
    """The run exists but has no execution of that node label."""


def run_range(conn: sqlite3.Connection, run_id: str, where: str) -> tuple[int, int]:
    """The first and last row number of the run's node executions (it must exist)."""
    found = conn.execute("SELECT run_no FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if found is None:
        raise RunNotFoundError(f"run {run_id!r} not found in the provenance store {where}")
    (run_no,) = found
    base: int = run_no << _schema.RUN_SHIFT
    return base, base | RUN_MASK


def get_run(conn: sqlite3.Connection, run_id: str, where: str) -> RunRecord:
    row = conn.execute(f"SELECT {RUNS.select} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFoundError(f"run {run_id!r} not found in the provenance store {where}")
    run: RunRecord = RUNS.decode(row)
    return run


def list_runs_sql(
    *,
    status: RunStatus | str | None,
    dag_nsref: str | None,
    parent_run_id: str | None,
    started_after: datetime | None,
    started_before: datetime | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The query of runs matching every given filter, newest first, and its parameters."""
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
        params.append(query_us(started_after, "started_after"))
    if started_before is not None:
        where.append("started_at < ?")
        params.append(query_us(started_before, "started_before"))
    sql = f"SELECT {RUNS.select} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, run_id DESC"
    if limit is not None:
        arguments.count(limit, name="limit", where="list_runs()", minimum=0)
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def runs(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[RunRecord]:
    return [RUNS.decode(row) for row in conn.execute(sql, params)]


def runs_page(
    conn: sqlite3.Connection,
    where: str,
    params: Sequence[Any],
    bound: tuple[int, str] | None,
    page: int,
) -> list[Any]:
    """Run rows matching ``where``, oldest first, the ``page`` after ``bound``."""
    sql = f"SELECT {RUNS.select} FROM runs WHERE {where}"
    args = list(params)
    if bound is not None:
        sql += " AND (started_at, run_id) > (?, ?)"
        args.extend(bound)
    sql += " ORDER BY started_at, run_id LIMIT ?"
    args.append(page)
    return conn.execute(sql, args).fetchall()


def latest_nodes(conn: sqlite3.Connection, span: tuple[int, int]) -> list[NodeRecord]:
    """The latest attempt of each label, labels in the order they were first recorded."""
    latest: dict[str, Any] = {}
    for row in conn.execute(_NODES_OF_RANGE, span):
        seen = latest.get(row[_LABEL])
        if seen is None or row[_ATTEMPT] > seen[_ATTEMPT]:
            latest[row[_LABEL]] = row
    return [NODES.decode(row) for row in latest.values()]


def node_attempts(conn: sqlite3.Connection, span: tuple[int, int], label: str) -> list[NodeRecord]:
    rows = conn.execute(f"{_NODES_OF_RANGE} AND label = ? ORDER BY attempt", (*span, label))
    return [NODES.decode(row) for row in rows]


def latest_node(
    conn: sqlite3.Connection, run_id: str, span: tuple[int, int], label: str
) -> NodeRecord:
    row = conn.execute(
        f"{_NODES_OF_RANGE} AND label = ? ORDER BY attempt DESC LIMIT 1", (*span, label)
    ).fetchone()
    if row is None:
        raise NodeNotFoundError(f"run {run_id!r} has no execution of node {label!r}")
    node: NodeRecord = NODES.decode(row)
    return node


def edges(conn: sqlite3.Connection, run_id: str, span: tuple[int, int]) -> list[EdgeRecord]:
    """Every edge traversal of a run, inline ones and loose ones, in time order."""
    found: dict[tuple[Any, ...], Any] = {}
    for (text,) in conn.execute(
        "SELECT edges FROM node_executions WHERE row_no BETWEEN ? AND ? AND edges != ''", span
    ):
        for entry in parse_list(text):
            row = edge_row(run_id, entry)
            found.setdefault(_EDGE_IDENTITY(row), row)
    for row in conn.execute(
        f"SELECT {EDGES.select} FROM edge_traversals WHERE run_id = ?", (run_id,)
    ):
        found.setdefault(_EDGE_IDENTITY(row), row)
    return [EDGES.decode(row) for row in sorted(found.values(), key=_EDGE_ORDER)]


def lineage(
    conn: sqlite3.Connection, run_id: str, span: tuple[int, int], label: str
) -> list[NodeRecord]:
    """The upstream executions that fed the latest execution of ``label``, nearest first."""
    (attempt,) = conn.execute(
        "SELECT max(attempt) FROM node_executions WHERE row_no BETWEEN ? AND ? AND label = ?",
        (*span, label),
    ).fetchone()
    if attempt is None:
        raise NodeNotFoundError(f"run {run_id!r} has no execution of node {label!r}")
    feeders: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for edge in edges(conn, run_id, span):
        feeders.setdefault((edge.downstream, edge.downstream_attempt), set()).add(
            (edge.upstream, edge.upstream_attempt)
        )
    order: list[tuple[str, int]] = []
    seen = {(label, attempt)}
    frontier = [(label, attempt)]
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
    for row in conn.execute(_NODES_OF_RANGE, span):
        key = _EXECUTION(row)
        if key in seen:
            records[key] = NODES.decode(row)
    return [records[key] for key in order if key in records]


def run_tree(conn: sqlite3.Connection, run_id: str, where: str) -> RunTree:
    """The run with its nodes (without outputs), edges and sub-runs, recursively, read in
    one transaction (three indexed queries per run)."""
    return _subtree(conn, get_run(conn, run_id, where), "", "", where)


def _subtree(conn: sqlite3.Connection, run: RunRecord, name: str, via: str, where: str) -> RunTree:
    span = run_range(conn, run.run_id, where)
    nodes = without_outputs(latest_nodes(conn, span))
    types = {n.label: n.node_type for n in nodes}
    subs = runs(conn, f"SELECT {RUNS.select} FROM runs WHERE parent_run_id = ?", (run.run_id,))
    children = tuple(
        _subtree(conn, sub, *child_name(run, types, sub), where)
        for sub in sorted(subs, key=sub_run_order)
    )
    return RunTree(
        run=run,
        nodes=nodes,
        edges=tuple(edges(conn, run.run_id, span)),
        children=children,
        name=name,
        via=via,
    )


def status_history(
    conn: sqlite3.Connection, run_ids: Sequence[str], label: str | None = None
) -> list[StatusChange]:
    """Status changes of runs (and their nodes, or only of node ``label``), time order."""
    marks = ", ".join("?" * len(run_ids))
    changes: list[tuple[int, int, StatusChange]] = []
    if label is None:
        for run_id, text in conn.execute(
            f"SELECT run_id, history FROM runs WHERE run_id IN ({marks})", run_ids
        ):
            for status, at, attempt in parse_list(text):
                change = StatusChange(
                    run_id=run_id, label=None, status=status, at=dt(at), attempt=attempt
                )
                changes.append((at, 0, change))
        rows = conn.execute(f"{_RUNS_NODES} WHERE r.run_id IN ({marks})", run_ids)
    else:
        rows = conn.execute(
            f"{_RUNS_NODES} WHERE r.run_id IN ({marks}) AND n.label = ?", (*run_ids, label)
        )
    for run_id, node_label, attempt, text in rows:
        for status, at in parse_list(text):
            change = StatusChange(
                run_id=run_id, label=node_label, status=status, at=dt(at), attempt=attempt
            )
            changes.append((at, 1, change))
    changes.sort(key=lambda c: (c[0], c[1]))
    return [change for _, _, change in changes]


def run_data(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    rows = conn.execute("SELECT key, value FROM run_data WHERE run_id = ?", (run_id,))
    return {key: loads(value) for key, value in rows}


def purge(
    conn: sqlite3.Connection, roots: str, params: Sequence[Any], *, keep_running: bool
) -> int:
    """Delete the top-level runs ``roots`` selects with all their sub-runs, in one transaction.

    With ``keep_running``, a tree in which any run is still running is left whole.
    """
    tree = (
        "WITH RECURSIVE tree(root, run_id, status) AS ("
        f"SELECT run_id, run_id, status FROM runs WHERE {roots} "
        "UNION SELECT t.root, r.run_id, r.status FROM runs r JOIN tree t "
        "ON r.parent_run_id = t.run_id) "
    )
    chosen = "SELECT run_id FROM tree"
    if keep_running:
        chosen += " WHERE root NOT IN (SELECT root FROM tree WHERE status = 'running')"
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS purge_ids (run_id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM purge_ids")
        conn.execute(f"{tree} INSERT OR IGNORE INTO purge_ids {chosen}", params)
        (count,) = conn.execute("SELECT count(*) FROM purge_ids").fetchone()
        conn.executemany(
            "DELETE FROM node_executions WHERE row_no BETWEEN ? AND ?",
            [
                (run_no << _schema.RUN_SHIFT, run_no << _schema.RUN_SHIFT | RUN_MASK)
                for (run_no,) in conn.execute(
                    "SELECT run_no FROM runs WHERE run_id IN (SELECT run_id FROM purge_ids)"
                )
            ],
        )
        for table in ("edge_traversals", "run_data", "node_logs", "runs"):
            conn.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM purge_ids)")
        conn.execute("DELETE FROM purge_ids")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    deleted: int = count
    return deleted


def logs(
    conn: sqlite3.Connection, run_id: str, label: str | None, after_seq: int | None
) -> list[LogRecord]:
    """The log lines of a run (of one node), by time, then node, then ``seq``."""
    sql = f"SELECT {LOGS.select} FROM node_logs WHERE run_id = ?"
    params: list[Any] = [run_id]
    if label is not None:
        sql += " AND label = ?"
        params.append(label)
    if after_seq is not None:
        sql += " AND seq > ?"
        params.append(after_seq)
    decode = LOGS.decode
    return [decode(row) for row in conn.execute(sql + " ORDER BY at, label, seq", params)]
