"""``JsonlProvenance``: every record plait writes, appended to one JSON-lines file.

Each line is one record: ``{"kind": "run" | "node" | "edge" | "data" | "log", ...fields}``. A
later line for the same run (the same node of a run, the same log line) supersedes an earlier
one, so reading
folds the file from the top. Appends are cheap and the file is easy to grep, ship or load
into a dataframe; queries read the whole file, so keep it for small histories.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from plait.converter import get_converter
from plait.errors import RunNotFoundError
from plait.owners import claimed
from plait.records import EdgeRecord, LogRecord, NodeRecord, RunOwner, RunRecord, RunStatus, utcnow

__all__ = ["JsonlProvenance"]

DEFAULT_PATH = "plait-runs.jsonl"


@attrs.define
class _History:
    """The file, folded: the latest record of every run and node."""

    runs: dict[str, RunRecord] = attrs.Factory(dict)
    nodes: dict[str, dict[str, NodeRecord]] = attrs.Factory(dict)
    edges: dict[str, list[EdgeRecord]] = attrs.Factory(dict)
    data: dict[str, dict[str, Any]] = attrs.Factory(dict)
    logs: dict[str, dict[tuple[str, int], LogRecord]] = attrs.Factory(dict)


class JsonlProvenance:
    """A plait provenance backend (protocol :class:`plait.protocols.ProvenanceBackend`).

    ``path`` defaults to ``$PLAIT_JSONL_PATH``, else ``plait-runs.jsonl`` in the current
    directory.
    """

    #: plait converts inputs and outputs to JSON-safe data for backends that store them.
    stores_values = True

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get("PLAIT_JSONL_PATH", DEFAULT_PATH)
        self.path = Path(chosen).expanduser()
        self._lock = threading.Lock()  # write_run_data may come from worker threads
        self._pending: list[str] = []
        self._converter = get_converter()

    def __repr__(self) -> str:
        return f"JsonlProvenance({str(self.path)!r})"

    # -- lifecycle: plait opens the backend before a run and closes it after ----------
    async def open(self) -> None:
        await anyio.to_thread.run_sync(lambda: self.path.parent.mkdir(parents=True, exist_ok=True))

    async def aclose(self) -> None:
        await self.commit()

    # -- writes: cheap and synchronous, they only buffer --------------------------------
    def _buffer(self, kind: str, fields: dict[str, Any]) -> None:
        line = json.dumps({"kind": kind, **fields}, separators=(",", ":"))
        with self._lock:
            self._pending.append(line)

    def write_run(self, run: RunRecord) -> None:
        self._buffer("run", self._converter.unstructure(run))

    def write_nodes(self, nodes: Sequence[NodeRecord]) -> None:
        for node in nodes:
            self._buffer("node", self._converter.unstructure(node))

    def write_edges(self, edges: Sequence[EdgeRecord]) -> None:
        for edge in edges:
            self._buffer("edge", self._converter.unstructure(edge))

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        self._buffer("data", {"run_id": run_id, "key": key, "value": value})

    def write_logs(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            self._buffer("log", self._converter.unstructure(record))

    # -- commit: make the buffered writes durable ---------------------------------------
    async def commit(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
        if lines:
            # shielded: lines taken from the buffer are written even if the caller is
            # cancelled meanwhile (a failing node cancels the run's other tasks)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._append, lines)

    def _append(self, lines: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    # -- queries -----------------------------------------------------------------------
    def _fold(self) -> _History:
        history = _History()
        if not self.path.exists():
            return history
        structure = self._converter.structure
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                fields = json.loads(line)
                kind = fields.pop("kind")
                if kind == "run":
                    run = structure(fields, RunRecord)
                    history.runs[run.run_id] = run
                elif kind == "node":
                    node = structure(fields, NodeRecord)
                    history.nodes.setdefault(node.run_id, {})[node.label] = node
                elif kind == "edge":
                    edge = structure(fields, EdgeRecord)
                    history.edges.setdefault(edge.run_id, []).append(edge)
                elif kind == "log":
                    log = structure(fields, LogRecord)
                    history.logs.setdefault(log.run_id, {})[log.label, log.seq] = log
                elif kind == "data":
                    history.data.setdefault(fields["run_id"], {})[fields["key"]] = fields["value"]
        return history

    async def _history(self) -> _History:
        return await anyio.to_thread.run_sync(self._fold)

    # -- ownership: a claim is read, check and append under one lock on the file --------
    async def claim_run(
        self,
        run_id: str,
        expected_attempt: int,
        owner: RunOwner,
        *,
        expected_owner: RunOwner | None = None,
    ) -> RunRecord:
        await self.commit()
        decide = functools.partial(
            claimed,
            expected_attempt=expected_attempt,
            owner=owner,
            expected_owner=expected_owner,
            at=utcnow(),
        )
        return await anyio.to_thread.run_sync(self._claim, run_id, decide)

    def _claim(self, run_id: str, decide: Callable[[RunRecord], RunRecord]) -> RunRecord:
        # flock serializes claims of every process (and thread: each opens its own file)
        with self.path.open("a", encoding="utf-8") as locked:
            fcntl.flock(locked.fileno(), fcntl.LOCK_EX)
            runs = self._fold().runs
            if run_id not in runs:
                raise RunNotFoundError(f"run {run_id!r} not found in {str(self.path)!r}")
            run = decide(runs[run_id])
            fields = {"kind": "run", **self._converter.unstructure(run)}
            locked.write(json.dumps(fields, separators=(",", ":")) + "\n")
            locked.flush()
            os.fsync(locked.fileno())
        return run

    async def get_run(self, run_id: str) -> RunRecord:
        runs = (await self._history()).runs
        if run_id not in runs:
            raise RunNotFoundError(f"run {run_id!r} not found in {str(self.path)!r}")
        return runs[run_id]

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
        found = [
            run
            for run in (await self._history()).runs.values()
            if (status is None or run.status == status)
            and (dag_nsref is None or run.dag_nsref == dag_nsref)
            and (parent_run_id is None or run.parent_run_id == parent_run_id)
            and (started_after is None or run.started_at >= started_after)
            and (started_before is None or run.started_at < started_before)
        ]
        found.sort(key=lambda run: run.started_at, reverse=True)
        return found if limit is None else found[:limit]

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        history = await self._history()
        if run_id not in history.runs:
            raise RunNotFoundError(f"run {run_id!r} not found in {str(self.path)!r}")
        return list(history.nodes.get(run_id, {}).values())

    async def get_edge_traversals(self, run_id: str) -> list[EdgeRecord]:
        return list((await self._history()).edges.get(run_id, []))

    async def load_run_data(self, run_id: str) -> dict[str, Any]:
        return dict((await self._history()).data.get(run_id, {}))

    async def get_logs(
        self, run_id: str, label: str | None = None, after_seq: int | None = None
    ) -> list[LogRecord]:
        lines = (await self._history()).logs.get(run_id, {}).values()
        found = [
            log
            for log in lines
            if (label is None or log.label == label) and (after_seq is None or log.seq > after_seq)
        ]
        return sorted(found, key=lambda log: (log.at, log.label, log.seq))
