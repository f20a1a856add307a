"""Minimal in-memory backends: what the contracts in ``plait.testing`` ask for, and no more.

The ``Broken*`` variants each get one thing wrong; the contract must notice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from plait.errors import RunNotFoundError
from plait.owners import claimed
from plait.records import EdgeRecord, LogRecord, NodeRecord, RunOwner, RunRecord, RunStatus, utcnow


class MemoryProvenance:
    stores_values = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Any]] = []
        self.runs: dict[str, RunRecord] = {}
        self.nodes: dict[str, dict[str, NodeRecord]] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, int], LogRecord] = {}

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        await self.commit()

    def _buffer(self, kind: str, item: Any) -> None:
        with self._lock:
            self._pending.append((kind, item))

    def write_run(self, run: RunRecord) -> None:
        self._buffer("run", run)

    def write_nodes(self, nodes: Sequence[NodeRecord]) -> None:
        for node in nodes:
            self._buffer("node", node)

    def write_edges(self, edges: Sequence[EdgeRecord]) -> None:
        return None

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        self._buffer("data", (run_id, key, value))

    def write_logs(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            self._buffer("log", record)

    async def commit(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for kind, item in pending:
            if kind == "run":
                self.runs[item.run_id] = item
            elif kind == "node":
                self.nodes.setdefault(item.run_id, {})[item.label] = item
            elif kind == "log":
                self.logs[item.run_id, item.label, item.seq] = item
            else:
                run_id, key, value = item
                self.data.setdefault(run_id, {})[key] = value

    async def get_run(self, run_id: str) -> RunRecord:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"run {run_id!r} not found") from None

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
            r
            for r in self.runs.values()
            if (status is None or r.status == status)
            and (dag_nsref is None or r.dag_nsref == dag_nsref)
            and (parent_run_id is None or r.parent_run_id == parent_run_id)
            and (started_after is None or r.started_at >= started_after)
            and (started_before is None or r.started_at < started_before)
        ]
        found.sort(key=lambda r: r.started_at, reverse=True)
        return found[:limit] if limit is not None else found

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        if run_id not in self.runs:
            raise RunNotFoundError(f"run {run_id!r} not found")
        return list(self.nodes.get(run_id, {}).values())

    async def load_run_data(self, run_id: str) -> dict[str, Any]:
        return dict(self.data.get(run_id, {}))

    async def get_logs(
        self, run_id: str, label: str | None = None, after_seq: int | None = None
    ) -> list[LogRecord]:
        found = [
            r
            for (rid, lbl, seq), r in self.logs.items()
            if rid == run_id
            and (label is None or lbl == label)
            and (after_seq is None or seq > after_seq)
        ]
        return sorted(found, key=lambda r: (r.at, r.label, r.seq))

    async def claim_run(
        self,
        run_id: str,
        expected_attempt: int,
        owner: RunOwner,
        *,
        expected_owner: RunOwner | None = None,
    ) -> RunRecord:
        await self.commit()
        with self._lock:  # one lock: the claim's transaction
            run = claimed(
                await self.get_run(run_id),
                expected_attempt=expected_attempt,
                owner=owner,
                expected_owner=expected_owner,
                at=utcnow(),
            )
            self.runs[run_id] = run
        return run


class BrokenProvenance(MemoryProvenance):
    """Ignores ``limit`` and ``after_seq``, raises a bare KeyError for unknown runs, loses run
    data, and lets every claim win."""

    async def claim_run(
        self,
        run_id: str,
        expected_attempt: int,
        owner: RunOwner,
        *,
        expected_owner: RunOwner | None = None,
    ) -> RunRecord:
        run = await self.get_run(run_id)
        return claimed(run, expected_attempt=run.attempt, owner=owner, at=utcnow())

    async def get_run(self, run_id: str) -> RunRecord:
        return self.runs[run_id]

    async def list_runs(self, **filters: Any) -> list[RunRecord]:
        filters.pop("limit", None)
        return await super().list_runs(**filters)

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        return None

    async def get_logs(
        self, run_id: str, label: str | None = None, after_seq: int | None = None
    ) -> list[LogRecord]:
        return await super().get_logs(run_id, label)


class Entry(NamedTuple):
    value_json: str
    stored_at: float


class MemoryCache:
    """Entries live in the object, not across ``close()`` (``persistent = False``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, str, float, float]] = {}
        self._counters: dict[str, list[int]] = {}
        self._pushbacks: dict[str, float] = {}

    def open(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counters.clear()
            self._pushbacks.clear()

    def lookup(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        return None if found is None else Entry(found[1], found[2])

    def store(
        self, key: str, callable_id: str, value_json: str, stored_at: float, expires_at: float
    ) -> None:
        with self._lock:
            self._entries[key] = (callable_id, value_json, stored_at, expires_at)

    def record_stats(
        self, callable_id: str, *, hits: int = 0, misses: int = 0, refreshes: int = 0
    ) -> None:
        with self._lock:
            counts = self._counters.setdefault(callable_id, [0, 0, 0])
            counts[0] += hits
            counts[1] += misses
            counts[2] += refreshes

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            out = {
                cid: {"hits": h, "misses": m, "refreshes": r, "entries": 0}
                for cid, (h, m, r) in self._counters.items()
            }
            for cid, *_ in self._entries.values():
                out.setdefault(cid, {"hits": 0, "misses": 0, "refreshes": 0, "entries": 0})
                out[cid]["entries"] += 1
        return out

    def clear(self, callable_id: str | None = None) -> int:
        with self._lock:
            keys = [k for k, e in self._entries.items() if callable_id in (None, e[0])]
            for key in keys:
                del self._entries[key]
            if callable_id is None:
                self._counters.clear()
            else:
                self._counters.pop(callable_id, None)
        return len(keys)

    def prune(self, now: float) -> int:
        with self._lock:
            keys = [k for k, e in self._entries.items() if e[3] <= now]
            for key in keys:
                del self._entries[key]
        return len(keys)

    def push_back(self, prefix: str, until: float) -> None:
        with self._lock:
            self._pushbacks[prefix] = until

    def pushbacks(self, now: float) -> dict[str, float]:
        with self._lock:
            return {p: until for p, until in self._pushbacks.items() if until > now}


class BrokenCache(MemoryCache):
    """Prunes only entries strictly before ``now`` and keeps counters on ``clear()``."""

    def prune(self, now: float) -> int:
        return super().prune(now - 1e-9)

    def clear(self, callable_id: str | None = None) -> int:
        with self._lock:
            counters = {k: list(v) for k, v in self._counters.items()}
        dropped = super().clear(callable_id)
        with self._lock:
            self._counters = counters
        return dropped
