"""The one data model: frozen attrs records for events, storage rows and API results.

Timestamps are timezone-aware UTC, durations are milliseconds. Values that leave the
process (``inputs``, ``output``, ``source_inputs``) are JSON-safe data produced by the one
converter in `plait.converter`.
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
    "LogRecord",
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
    """The run is in flight (or its process died before it finished: restart it)."""
    COMPLETED = "completed"
    """Every node completed (or was skipped by a replay)."""
    FAILED = "failed"
    """A node raised; `failed_node` and the error fields say which and why."""
    PAUSED = "paused"
    """A node raised `DagPause`; restart the run to go on from there."""
    CANCELLED = "cancelled"
    """The run was cancelled (Ctrl-C, a cancel scope, a timeout)."""

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
    """Known to the run, not started (its upstreams are not done)."""
    RUNNING = "running"
    """Executing now."""
    COMPLETED = "completed"
    """Returned a value: `output` holds it."""
    FAILED = "failed"
    """Raised: the error fields hold the exception."""
    SKIPPED = "skipped"
    """Not executed: a replay or restart copied its output from an earlier run."""
    CANCELLED = "cancelled"
    """Stopped because the run failed elsewhere or was cancelled."""
    PAUSED = "paused"
    """Raised `DagPause`: the run stopped here and can be restarted."""

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
    ``dag_ref`` is where the DAG came from, when it was loaded by reference
    (``"module:attr"``, as ``plait run`` loads it): ``plait restart`` and ``plait replay``
    load it from there. ``resumed_at`` is when the current attempt began (``None``: the
    first attempt, which began at ``started_at``), ``earlier_ms`` the work time of the
    attempts before it: :meth:`work_ms` counts work, not the idle time between attempts.
    """

    run_id: str
    """The run's id (a UUID4 hex string); a unique prefix is enough on the command line."""
    dag_nsref: str
    """The DAG's namespace reference (`Dag.nsref`): which DAG ran."""
    status: RunStatus
    """The run's latest status."""
    started_at: datetime
    """When the run started (UTC)."""
    updated_at: datetime
    """When the record last changed (UTC)."""
    finished_at: datetime | None = None
    """When the run reached a final status (UTC); `None` while it runs."""
    source_inputs: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    """The inputs the run was given, per source node: `{label: {parameter: value}}`, JSON-safe."""
    parent_run_id: str | None = None
    """For the sub-run of a map or call node: the run holding that node."""
    replay_of: str | None = None
    """For a replay: the run it replays."""
    correlation_id: str | None = None
    """A free-form id given by the caller (`--correlation-id`), stored as is."""
    attempt: int = 1
    """1 for a new run, one more on each restart."""
    owner_pid: int = 0
    """The id of the process running (or last running) the run."""
    owner_host: str = ""
    """The host name of that process."""
    owner_started: str = ""
    """When the owning process started (an opaque token; `""` when unknown)."""
    failed_node: str | None = None
    """The label of the node that failed the run, if one did."""
    error_type: str | None = None
    """The qualified class name of the run's error (`module.Class`)."""
    error_message: str | None = None
    """The error's message."""
    traceback: str | None = None
    """The error's formatted traceback."""
    dag_ref: str | None = None
    """Where the DAG can be loaded from (`module:attr` or a `--config` NSREF, as `plait run`
    took it), so that `plait restart` and `plait replay` need no `--dag`; `None` when the
    run was not started by reference."""
    resumed_at: datetime | None = None
    """When the current attempt began (UTC); `None` for the first attempt, which began at
    `started_at`."""
    earlier_ms: float = 0.0
    """The work time, in milliseconds, of the attempts before the current one."""

    def work_ms(self, now: datetime | None = None) -> float | None:
        """Milliseconds of work of every attempt so far: the earlier attempts' and the
        current one's, up to its end (or to ``now``, default: the current time, while it
        runs). ``None`` for a run that is not running and has no end (its owner died)."""
        end = self.finished_at
        if end is None:
            if self.status is not RunStatus.RUNNING:
                return None
            end = now or utcnow()
        begun = self.resumed_at or self.started_at
        return self.earlier_ms + max((end - begun).total_seconds() * 1000.0, 0.0)

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
    """The run this execution belongs to."""
    label: str
    """The node's label in its DAG."""
    status: NodeStatus
    """The execution's latest status."""
    updated_at: datetime
    """When the record last changed (UTC)."""
    node_type: str = "function"
    """What kind of node: `function`, `map` or `call`."""
    attempt: int = 1
    """Which execution of this node in this run (retries and restarts add one)."""
    inputs: dict[str, Any] | None = None
    """The arguments it was called with, by parameter, JSON-safe."""
    output: Any = None
    """What it returned, JSON-safe (through the converter)."""
    restorable: bool = False
    """Whether `output` restores the value faithfully; if not, a restart runs the node again."""
    started_at: datetime | None = None
    """When the execution started (UTC)."""
    finished_at: datetime | None = None
    """When it finished (UTC)."""
    duration_ms: float | None = None
    """How long it ran, in milliseconds."""
    executor: str | None = None
    """The name of the executor that ran it (`thread`, `process`, ...)."""
    host: str | None = None
    """The host it ran on."""
    pid: int | None = None
    """The id of the process it ran in."""
    worker: str | None = None
    """The thread (or dask worker) it ran on."""
    error_type: str | None = None
    """The qualified class name of the exception it raised."""
    error_message: str | None = None
    """The exception's message."""
    traceback: str | None = None
    """The exception's formatted traceback."""


@attrs.frozen(kw_only=True)
class EdgeRecord:
    """A value that travelled from ``upstream`` to ``downstream`` in a run."""

    run_id: str
    """The run the value travelled in."""
    upstream: str
    """The label of the node that produced the value."""
    downstream: str
    """The label of the node that received it."""
    parameter: str | None
    """The downstream parameter that received it (`None` for an ordering-only edge)."""
    traversed_at: datetime
    """When the value was handed over (UTC)."""
    upstream_attempt: int = 1
    """Which execution of the upstream node produced it."""
    downstream_attempt: int = 1
    """Which execution of the downstream node received it."""


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
class LogRecord:
    """One stdlib ``logging`` record emitted while a node ran, as provenance keeps it.

    ``seq`` numbers the lines of one node in one run from 0, across attempts (so
    ``after_seq`` pages through them); ``attempt`` is the node's attempt that emitted it.
    ``level`` is the stdlib level number (``logging.INFO`` is 20), ``logger`` the logger's
    name, ``message`` the formatted message (``record.getMessage()``), ``exc_text`` the
    formatted exception when the record carried one. A node's lines are bounded: past the
    limit, one record from the ``plait`` logger says how many lines were not kept.
    """

    run_id: str
    """The run the node ran in."""
    label: str
    """The node's label."""
    attempt: int = 1
    """The node's attempt that emitted the line."""
    seq: int = 0
    """The line's number among the node's lines in the run, from 0, across attempts."""
    at: datetime
    """When the record was created (UTC)."""
    level: int
    """The stdlib level number (`logging.INFO` is 20)."""
    logger: str
    """The name of the logger that emitted it."""
    message: str
    """The formatted message (`record.getMessage()`)."""
    exc_text: str | None = None
    """The formatted exception, when the record carried one."""


@attrs.frozen(kw_only=True)
class StatusChange:
    """One status transition of a run (``label is None``) or of a node."""

    run_id: str
    """The run."""
    label: str | None
    """The node's label, or `None` for the run itself."""
    status: str
    """The status entered (a `RunStatus` or `NodeStatus` value)."""
    at: datetime
    """When (UTC)."""
    attempt: int = 1
    """Which execution (of the run, or of the node) changed status."""


@attrs.frozen(kw_only=True)
class MapProgress:
    """Progress of a map node: ``done`` of ``total`` elements finished."""

    run_id: str
    """The run holding the map node."""
    label: str
    """The map node's label."""
    key: str
    """Which map element finished, as its key in the map's input."""
    done: int
    """How many elements have finished."""
    total: int
    """How many elements there are."""
    status: NodeStatus
    """How the element that just finished ended."""


class BackendKind(enum.StrEnum):
    EXECUTOR = "executor"
    """Runs node callables (`Executor`)."""
    PROVENANCE = "provenance"
    """Records runs (`ProvenanceBackend`)."""
    CACHE = "cache"
    """Stores cached values (`CacheBackend`)."""
    TRIGGER_STORE = "trigger-store"
    """Keeps trigger state for the engine (`TriggerStore`)."""


@attrs.frozen(kw_only=True)
class BackendInfo:
    """What a registration hook returns: a backend's name and how to build it.

    ``factory(**options)`` returns an object implementing the matching protocol
    ([`Executor`][plait.protocols.Executor],
    [`ProvenanceBackend`][plait.protocols.ProvenanceBackend] or
    [`CacheBackend`][plait.protocols.CacheBackend]). ``distribution`` is filled in by the
    plugin host from installed metadata.
    """

    name: str
    """The name the backend is chosen by (`thread`, `sqlite`, ...)."""
    factory: Callable[..., Any] = attrs.field(eq=False)
    """Called with the backend's options, returns the backend."""
    description: str = ""
    """One line for `plait plugins`."""
    distribution: str | None = None
    """The distribution that registered it (filled in by the plugin host)."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A plugin as ``plait plugins`` shows it."""

    name: str
    """The plugin's entry-point name."""
    distribution: str | None
    """The distribution that declares the entry point."""
    version: str | None
    """That distribution's version."""
    provides: tuple[str, ...] = ()
    """What it registers, as `kind:name` (`executor:thread`, `cache:sqlite`)."""
    error: str | None = None
    """Why it failed to load (with the traceback); `None` when it loaded."""


@attrs.frozen(kw_only=True)
class CacheStats:
    """Counters of one cached callable (``callable_id`` is ``"module:qualname"``).

    ``hits`` were served from the cache (including callers that waited for a concurrent
    identical call), ``misses`` computed a value that was absent or past ``max_ttl``,
    ``refreshes`` recomputed a value early (between ``min_ttl`` and ``max_ttl``); ``entries``
    is how many values are stored.
    """

    callable_id: str
    """The cached callable, as `module:qualname`."""
    hits: int = 0
    """Calls served from the cache."""
    misses: int = 0
    """Calls that computed a value that was absent or past `max_ttl`."""
    refreshes: int = 0
    """Calls that recomputed a value early, between `min_ttl` and `max_ttl`."""
    entries: int = 0
    """Values stored."""

    @property
    def calls(self) -> int:
        return self.hits + self.misses + self.refreshes
