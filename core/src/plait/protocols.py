"""The backend protocols. Anything implementing one can be passed to plait as an instance.

Backends are async resources: plait calls ``await backend.open()`` before first use and
``await backend.aclose()`` when it opened them itself. Methods that the runner calls per node
are synchronous and cheap (they buffer); ``commit`` makes buffered writes durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from plait.executors import CallResult, NodeCall
from plait.records import EdgeRecord, LogRecord, NodeRecord, RunOwner, RunRecord, RunStatus, RunTree

__all__ = ["CacheBackend", "CacheEntry", "Executor", "ProvenanceBackend", "RunInspector"]


@runtime_checkable
class Executor(Protocol):
    """Runs the calls of sync nodes somewhere (a thread, a process, a cluster).

    The contract is :class:`~plait.executors.NodeCall`: the runner hands ``run`` one, the
    executor calls it where its work runs and returns what the call returned.
    """

    name: str

    async def run(self, call: NodeCall, /) -> CallResult:
        """Call ``call()`` (or ``call(worker=...)``, naming the worker) where this executor
        runs work and return its result, ``(value, placement, log_lines)``, unchanged. An
        exception the call raises is raised here (it carries the lines logged before it).
        Cancellation must stop waiting for the call."""
        ...

    async def aclose(self) -> None:
        """Release workers. Called by whoever created the executor."""
        ...


@runtime_checkable
class ProvenanceBackend(Protocol):
    """Stores runs, node executions, edges, status history and run-scoped data.

    ``write_*`` methods buffer; the runner awaits :meth:`commit` after a node finishes and
    before any node downstream of it starts. ``stores_values`` tells the runner whether to
    convert inputs and outputs to JSON-safe data for the records it writes.
    """

    stores_values: bool

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    def write_run(self, run: RunRecord) -> None: ...

    def write_nodes(self, nodes: Sequence[NodeRecord]) -> None: ...

    def write_edges(self, edges: Sequence[EdgeRecord]) -> None: ...

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        """Buffer a run-scoped named value (JSON-safe). May be called from any thread."""
        ...

    def write_logs(self, records: Sequence[LogRecord]) -> None:
        """Buffer log lines of nodes (each names its run, node, attempt and ``seq``); they
        are made durable with the node records by the next :meth:`commit`. A record with
        the ``run_id``, ``label`` and ``seq`` of a stored one replaces it."""
        ...

    async def commit(self) -> None: ...

    async def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`plait.errors.RunNotFoundError` naming ``run_id``."""
        ...

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        dag_nsref: str | None = None,
        parent_run_id: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]: ...

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        """Latest record of every node of the run, in execution order.

        Raises :class:`plait.errors.RunNotFoundError` naming ``run_id`` for a run the backend
        has not recorded (a backend that stores nothing returns ``[]``).
        """
        ...

    async def load_run_data(self, run_id: str) -> dict[str, Any]: ...

    async def get_logs(
        self, run_id: str, label: str | None = None, after_seq: int | None = None
    ) -> list[LogRecord]:
        """The stored log lines of the run (of node ``label`` only, when given), ordered by
        time then node then ``seq``; with ``after_seq``, only lines whose ``seq`` is greater
        (to follow one node's lines). A run the backend has not recorded gives ``[]``."""

    async def claim_run(
        self,
        run_id: str,
        expected_attempt: int,
        owner: RunOwner,
        *,
        expected_owner: RunOwner | None = None,
    ) -> RunRecord:
        """Take run ``run_id`` over for ``owner`` atomically, and return it as claimed.

        In one transaction (one lock, across processes): read the run, apply
        :func:`plait.owners.claimed` (the attempt must still be ``expected_attempt`` and,
        when given, the owner ``expected_owner``: what the caller read before deciding to
        take the run), and store the record it returns. So of two processes claiming the
        same run with what they both read, exactly one gets the run; the other gets
        :class:`plait.errors.RunBusyError` naming the run and the owner that won.
        Raises :class:`plait.errors.RunNotFoundError` for an unknown run and
        :class:`plait.errors.RestartError` for a completed one. ``DagRunner.restart`` claims
        every run it resumes through this method; so may anything that sweeps crashed runs.

        .. versionadded:: 0.1
        """
        ...


@runtime_checkable
class RunInspector(Protocol):
    """An optional capability of a provenance backend: the inspection tree of a run.

    :func:`plait.inspection.inspect_run` uses it when a backend has it, and builds the tree
    from the queries above otherwise; :class:`plait.inspection.InspectsRuns` gives a
    backend class that default as a method.
    """

    async def inspect_run(self, run_id: str) -> RunTree:
        """The run with its nodes (outputs not loaded), edges and sub-runs, recursively;
        :class:`plait.errors.RunNotFoundError` naming ``run_id`` when it is not recorded."""
        ...


class CacheEntry(Protocol):
    """A stored cache value: its JSON text and the epoch seconds when it was stored."""

    @property
    def value_json(self) -> str: ...

    @property
    def stored_at(self) -> float: ...


@runtime_checkable
class CacheBackend(Protocol):
    """Key/value store for cached callables. Synchronous: a hit must cost microseconds.

    Implementations must be safe to call from several threads at once, and several
    processes may share one store. plait calls :meth:`open` before first use and
    :meth:`close` when it created the backend itself (by name).
    """

    def open(self) -> None:
        """Open (or create) the store. Idempotent; refuses a store that is not ours."""
        ...

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``, or ``None``. The hot path: no writes."""
        ...

    def store(
        self, key: str, callable_id: str, value_json: str, stored_at: float, expires_at: float
    ) -> None:
        """Insert or replace the entry ``key``; ``expires_at`` (epoch) is when prune drops it."""
        ...

    def record_stats(
        self, callable_id: str, *, hits: int = 0, misses: int = 0, refreshes: int = 0
    ) -> None:
        """Add to the hit/miss/refresh counters of ``callable_id``.

        Called on every cached call: must be cheap. Implementations buffer in memory and
        persist on :meth:`store`, :meth:`stats`, :meth:`close` or periodically.
        """
        ...

    def stats(self) -> dict[str, dict[str, int]]:
        """Per callable id: ``hits``, ``misses``, ``refreshes`` and ``entries`` (all processes)."""
        ...

    def clear(self, callable_id: str | None = None) -> int:
        """Drop the entries (and counters) of ``callable_id``, or of everything; return how
        many entries were dropped."""
        ...

    def prune(self, now: float) -> int:
        """Drop entries whose ``expires_at`` is at or before epoch ``now``; return how many."""
        ...

    def push_back(self, prefix: str, until: float) -> None:
        """Keep a pushback: no probabilistic refresh under ``prefix`` until epoch ``until``.

        Replaces an earlier pushback of the same prefix. Durable, visible to every process
        sharing the store. Called from a worker thread for async callables.

        .. versionadded:: 0.2
        """
        ...

    def pushbacks(self, now: float) -> dict[str, float]:
        """The pushbacks still in force at epoch ``now``: prefix -> until. Called before
        every refresh (rare: only in the ``min_ttl``..``max_ttl`` window), on the event loop
        for async callables, so it must be quick.

        .. versionadded:: 0.2
        """
        ...

    def close(self) -> None:
        """Persist buffered counters and release the store. A later call may reopen it."""
        ...
