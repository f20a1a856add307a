"""The write buffer: what the runner wrote since the last commit, as rows.

A node record becomes its row when it is written (:attr:`NODES.encode <.codec.NODES>`),
merged with earlier records of the same execution; a status change becomes a history entry.
:meth:`Batch.rows` hands a commit its run rows, keyed node rows (history and edges inline)
and the edge rows that belong to no buffered execution.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from plait.converter import dumps
from plait.records import EdgeRecord, LogRecord, NodeRecord, NodeStatus, RunRecord, RunStatus
from plait_provenance_sqlite.codec import (
    EDGES,
    LOGS,
    NODES,
    RUNS,
    edge_entry,
    history_entry,
    us,
)

if tuple(c.name for c in NODES.lists) != ("history", "edges"):
    raise AssertionError("Batch.rows appends a node row's history, then its edges")

__all__ = ["FINAL_RUN", "Batch", "Buffer", "NodeKey", "merge_rows"]

NodeKey = tuple[str, str, int]  # run_id, label, attempt

FINAL_RUN: Final = frozenset(s.value for s in RunStatus if s.is_final)
# statuses an execution reaches only after running
_ENDED_NODE: Final = frozenset({"completed", "failed", "cancelled", "paused"})
_RUNNING: Final = NodeStatus.RUNNING.value
_STATUS: Final = NODES.at["status"]
_UPDATED_AT: Final = NODES.at["updated_at"]
_STARTED_AT: Final = NODES.at["started_at"]
_KEEP_FIRST: Final = NODES.keep_first
_KEEP_IF_NONE: Final = NODES.keep_if_none


def merge_rows(earlier: list[Any], later: list[Any]) -> list[Any]:
    """One execution's row from two of its records: the later one, keeping what only the
    earlier one knew and when the execution was first recorded."""
    for i in _KEEP_FIRST:
        later[i] = earlier[i]
    for i in _KEEP_IF_NONE:
        if later[i] is None:
            later[i] = earlier[i]
    return later


class Batch:
    """Buffered writes: run records, and node rows merged per execution (one per commit;
    a plain class, as one is made for every commit)."""

    __slots__ = ("data", "edges", "logs", "node_history", "nodes", "run_history", "runs")

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.run_history: dict[str, list[str]] = {}
        # the row of each execution, merged from its records (see merge_rows)
        self.nodes: dict[NodeKey, list[Any]] = {}
        self.node_history: dict[NodeKey, list[str]] = {}
        self.edges: list[EdgeRecord] = []
        self.data: dict[tuple[str, str], tuple[Any, ...]] = {}
        # log line rows by (run_id, label, seq): a line written again replaces it
        self.logs: dict[tuple[str, str, int], list[Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.runs or self.nodes or self.edges or self.data or self.logs)

    def merge_older_into(self, newer: Batch) -> None:
        """Add ``newer`` (written while this batch failed to commit) behind this one."""
        self.runs = {**self.runs, **newer.runs}
        nodes = self.nodes
        for key, row in newer.nodes.items():
            mine = nodes.get(key)
            nodes[key] = row if mine is None else merge_rows(mine, row)
        for run_id, entries in newer.run_history.items():
            self.run_history.setdefault(run_id, []).extend(entries)
        for key, entries in newer.node_history.items():
            self.node_history.setdefault(key, []).extend(entries)
        self.edges.extend(newer.edges)
        self.data.update(newer.data)
        self.logs.update(newer.logs)

    def drop_run(self, run_id: str) -> None:
        """Forget the node records and edges of a run (they can never be written)."""
        self.nodes = {k: v for k, v in self.nodes.items() if k[0] != run_id}
        self.edges = [e for e in self.edges if e.run_id != run_id]
        self.logs = {k: v for k, v in self.logs.items() if k[0] != run_id}

    def rows(
        self,
    ) -> tuple[list[list[Any]], list[tuple[NodeKey, list[Any]]], list[list[Any]]]:
        """Run rows, keyed node rows (history and edges inline) and left-over edge rows."""
        run_rows = []
        if self.runs:
            run_history = self.run_history
            encode_run = RUNS.encode
            run_rows = [
                [*encode_run(run), ",".join(run_history.get(run_id, ()))]
                for run_id, run in self.runs.items()
            ]
        inline: dict[NodeKey, list[str]] = {}
        loose = []
        nodes = self.nodes
        encode_edge = EDGES.encode
        for edge in self.edges:
            # the edge lives in the row of its downstream (or else upstream) execution
            key = (edge.run_id, edge.downstream, edge.downstream_attempt)
            if key not in nodes:
                key = (edge.run_id, edge.upstream, edge.upstream_attempt)
                if key not in nodes:
                    loose.append(encode_edge(edge))
                    continue
            inline.setdefault(key, []).append(edge_entry(edge))
        history = self.node_history
        # the LIST columns of NODES, in their order
        node_rows = [
            (key, [*row, ",".join(history.get(key, ())), ",".join(inline.get(key, ()))])
            for key, row in nodes.items()
        ]
        return run_rows, node_rows, loose


class Buffer:
    """The writes since the last commit, shared by the event loop and worker threads (run
    data can be written from a node's thread): every method holds one ``threading.Lock``.

    A history entry is kept per status change: the last status written of each run and
    execution is remembered until the run is final.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = Batch()
        # last status written per run, per (label, attempt) ('' label: the run itself)
        self._last_status: dict[str, dict[tuple[str, int], str]] = {}

    def __bool__(self) -> bool:
        return bool(self._batch)

    def take(self) -> Batch:
        """The buffered writes; the buffer starts empty."""
        with self._lock:
            batch, self._batch = self._batch, Batch()
        return batch

    def put_back(self, batch: Batch) -> None:
        """Keep a batch that failed to commit, ahead of what was written since."""
        with self._lock:
            batch.merge_older_into(self._batch)
            self._batch = batch

    def add_run(self, run: RunRecord) -> None:
        """Buffer the run's latest record (and a history entry if its status changed)."""
        run_id = run.run_id
        status = run.status.value
        with self._lock:
            self._batch.runs[run_id] = run
            seen = self._last_status.setdefault(run_id, {})
            execution = ("", run.attempt)
            changed = seen.get(execution) != status
            seen[execution] = status
            if status in FINAL_RUN:
                del self._last_status[run_id]
            if changed:
                self._batch.run_history.setdefault(run_id, []).append(
                    history_entry(status, us(run.updated_at), run.attempt)
                )

    def note_run(self, run: RunRecord) -> None:
        """Remember the status of a run record written outside the buffer (a claim), so
        that the same status written next adds no second history entry."""
        with self._lock:
            self._last_status.setdefault(run.run_id, {})["", run.attempt] = run.status.value

    def add_nodes(self, nodes: Sequence[NodeRecord]) -> None:
        """Buffer node records; a later record of the same execution is merged into the row.

        When the first record of an execution already has it finished (the runner records
        an ``@inline`` node once, when it is done), its ``running`` transition is taken from
        ``started_at``.
        """
        encode = NODES.encode
        with self._lock:
            buffered = self._batch.nodes
            history = self._batch.node_history
            last_status = self._last_status
            for node in nodes:
                run_id = node.run_id
                key = (run_id, node.label, node.attempt)
                row = encode(node)
                mine = buffered.get(key)
                buffered[key] = row if mine is None else merge_rows(mine, row)
                status = row[_STATUS]
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
                started = row[_STARTED_AT]
                if before is None and started is not None and status in _ENDED_NODE:
                    entries.append(history_entry(_RUNNING, started))
                entries.append(history_entry(status, row[_UPDATED_AT]))

    def add_edges(self, edges: Sequence[EdgeRecord]) -> None:
        with self._lock:
            self._batch.edges.extend(edges)

    def add_logs(self, lines: Sequence[LogRecord]) -> None:
        encode = LOGS.encode
        rows = {(x.run_id, x.label, x.seq): encode(x) for x in lines}
        with self._lock:
            self._batch.logs.update(rows)

    def add_data(self, run_id: str, key: str, value: Any) -> None:
        row = (run_id, key, dumps(value), us(datetime.now(UTC)))
        with self._lock:
            self._batch.data[run_id, key] = row
