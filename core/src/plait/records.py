"""The one data model: frozen attrs records for events, storage rows and API results.

Timestamps are timezone-aware UTC, durations are milliseconds. Values that leave the
process (``inputs``, ``output``, ``source_inputs``) are JSON-safe data produced by the one
converter in :mod:`plait.converter`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from plait.errors import ArgumentError

__all__ = [
    "BackendInfo",
    "BackendKind",
    "CacheStats",
    "EdgeRecord",
    "MapProgress",
    "NodeRecord",
    "NodeStatus",
    "PluginInfo",
    "RunOwner",
    "RunRecord",
    "RunStatus",
    "RunTree",
    "StatusChange",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only clock records use)."""
    return datetime.now(UTC)


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self is not RunStatus.RUNNING

    @classmethod
    def _missing_(cls, value: object) -> RunStatus:
        raise ArgumentError(
            f"{value!r:.60} is not a run status (status must be one of: "
            f"{', '.join(s.value for s in cls)})"
        )


class NodeStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @classmethod
    def _missing_(cls, value: object) -> NodeStatus:
        raise ArgumentError(
            f"{value!r:.60} is not a node status (status must be one of: "
            f"{', '.join(s.value for s in cls)})"
        )

    @property
    def has_output(self) -> bool:
        """Completed and skipped (copied by a replay) nodes carry an output."""
        return self in (NodeStatus.COMPLETED, NodeStatus.SKIPPED)


@attrs.frozen(kw_only=True)
class RunOwner:
    """The process that owns a run: its pid and host, and ``started``, an opaque token of
    when that process started (``""`` when unknown), so that a later process that happens to
    get the same pid is not taken for the owner. See :mod:`plait.owners`."""

    pid: int
    host: str
    started: str = ""


@attrs.frozen(kw_only=True)
class RunRecord:
    """One run of a DAG: its identity, owner, inputs and latest status.

    The owner is ``owner_pid`` on ``owner_host``, whose process started at
    ``owner_started`` (see :class:`RunOwner`); ``attempt`` counts the times the run was
    started or claimed by a restart.
    """

    run_id: str
    dag_nsref: str
    status: RunStatus
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    source_inputs: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    parent_run_id: str | None = None
    replay_of: str | None = None
    correlation_id: str | None = None
    attempt: int = 1
    owner_pid: int = 0
    owner_host: str = ""
    owner_started: str = ""
    failed_node: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None

    @property
    def owner(self) -> RunOwner:
        """Who owns the run, as one record."""
        return RunOwner(pid=self.owner_pid, host=self.owner_host, started=self.owner_started)


@attrs.frozen(kw_only=True)
class NodeRecord:
    """One node execution inside a run, with where it ran and what it produced.

    ``attempt`` counts executions of this node in this run (retries and restarts).
    ``output`` is JSON-safe; ``restorable`` is false when the output could not be stored
    faithfully, in which case a restart executes the node again.
    """

    run_id: str
    label: str
    status: NodeStatus
    updated_at: datetime
    node_type: str = "function"
    attempt: int = 1
    inputs: dict[str, Any] | None = None
    output: Any = None
    restorable: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    executor: str | None = None
    host: str | None = None
    pid: int | None = None
    worker: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


@attrs.frozen(kw_only=True)
class EdgeRecord:
    """A value that travelled from ``upstream`` to ``downstream`` in a run."""

    run_id: str
    upstream: str
    downstream: str
    parameter: str | None
    traversed_at: datetime
    upstream_attempt: int = 1
    downstream_attempt: int = 1


@attrs.frozen(kw_only=True)
class RunTree:
    """A run with its nodes, its edges and its sub-runs, each a tree too (see
    :func:`plait.inspection.inspect_run`).

    ``name`` is the sub-run's nsref below its parent's (``"each[3]"``, ``"step[even]"``,
    ``"enrich/call:lookup#1"``; ``""`` at the root) and ``via`` the node type that made it
    (``"map"``, ``"call"``, ``"switch"``, or ``"ctx.call"``). Node records come without
    their outputs (``output is None``): ask for one with
    :meth:`plait.inspection.node_output`.
    """

    run: RunRecord
    nodes: tuple[NodeRecord, ...] = ()
    edges: tuple[EdgeRecord, ...] = ()
    children: tuple[RunTree, ...] = ()
    name: str = ""
    via: str = ""

    def node(self, label: str) -> NodeRecord:
        """The record of node ``label`` (a LookupError naming the run if there is none)."""
        for record in self.nodes:
            if record.label == label:
                return record
        raise LookupError(f"run {self.run.run_id!r} has no node {label!r}")

    def children_of(self, label: str) -> tuple[RunTree, ...]:
        """The sub-runs node ``label`` made (its elements, its branch, its calls)."""
        return tuple(
            child
            for child in self.children
            if child.name.partition("/call:")[0].split("[", 1)[0] == label
        )

    def walk(self) -> list[RunTree]:
        """This tree and every sub-run below it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@attrs.frozen(kw_only=True)
class StatusChange:
    """One status transition of a run (``label is None``) or of a node."""

    run_id: str
    label: str | None
    status: str
    at: datetime
    attempt: int = 1


@attrs.frozen(kw_only=True)
class MapProgress:
    """Progress of a map node: ``done`` of ``total`` elements finished."""

    run_id: str
    label: str
    key: str
    done: int
    total: int
    status: NodeStatus


class BackendKind(enum.StrEnum):
    EXECUTOR = "executor"
    PROVENANCE = "provenance"
    CACHE = "cache"
    TRIGGER_STORE = "trigger-store"


@attrs.frozen(kw_only=True)
class BackendInfo:
    """What a registration hook returns: a backend's name and how to build it.

    ``factory(**options)`` returns an object implementing the matching protocol
    (:class:`plait.protocols.Executor`, ``ProvenanceBackend`` or ``CacheBackend``).
    ``distribution`` is filled in by the plugin host from installed metadata.
    """

    name: str
    factory: Callable[..., Any] = attrs.field(eq=False)
    description: str = ""
    distribution: str | None = None


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A plugin as ``plait plugins`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    provides: tuple[str, ...] = ()
    error: str | None = None


@attrs.frozen(kw_only=True)
class CacheStats:
    """Counters of one cached callable (``callable_id`` is ``"module:qualname"``).

    ``hits`` were served from the cache (including callers that waited for a concurrent
    identical call), ``misses`` computed a value that was absent or past ``max_ttl``,
    ``refreshes`` recomputed a value early (between ``min_ttl`` and ``max_ttl``); ``entries``
    is how many values are stored.
    """

    callable_id: str
    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    entries: int = 0

    @property
    def calls(self) -> int:
        return self.hits + self.misses + self.refreshes
