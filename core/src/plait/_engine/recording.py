"""Every record the engine builds: run records, node records, edge traversals.

Records go to the provenance store (buffered; the scheduler commits) when it keeps values,
and to the plugins' hooks when anyone observes. A node's ``completed`` record is built
field by field (no ``attrs.evolve``): that runs once per node on the hot path.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from plait._engine.attempt import Raised
from plait._engine.run import HOST, SKIPPED_BRANCH, Prefill, RunState
from plait._plan import Plan, PlanNode
from plait.converter import JSON_SCALARS, dumps, loads, to_json_safe
from plait.errors import ConversionError, DagPause, PlaitWarning
from plait.executors import Placement
from plait.introspect import EMPTY
from plait.owners import resumed_by, this_process
from plait.plugins import PluginHost
from plait.protocols import ProvenanceBackend
from plait.records import (
    EdgeRecord,
    LogRecord,
    NodeRecord,
    NodeStatus,
    RunRecord,
    RunStatus,
    utcnow,
)

LOOP_WORKER: Final = "event-loop"
#: the node type of the record of a switch's branch that did not run
BRANCH: Final = SKIPPED_BRANCH
_PID = os.getpid()  # refreshed after fork, see _after_fork below


def _after_fork() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


# ---------------------------------------------------------------------- runs
_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET: Final = (4 << 76) | (0x8000 << 48)


def new_run_id() -> str:
    """A new run id: ``uuid.uuid4().hex``, without building the ``UUID`` object (one per
    map element)."""
    bits = int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET
    return f"{bits:032x}"


def new_run(
    dag_nsref: str,
    source_inputs: dict[str, dict[str, Any]],
    *,
    correlation_id: str | None = None,
    parent_run_id: str | None = None,
    replay_of: str | None = None,
    dag_ref: str | None = None,
) -> RunRecord:
    """The record of a run starting now in this process."""
    now = utcnow()
    owner = this_process()
    return RunRecord(
        run_id=new_run_id(),
        dag_nsref=dag_nsref,
        status=RunStatus.RUNNING,
        started_at=now,
        updated_at=now,
        source_inputs=source_inputs,
        parent_run_id=parent_run_id,
        replay_of=replay_of,
        correlation_id=correlation_id,
        owner_pid=owner.pid,
        owner_host=owner.host,
        owner_started=owner.started,
        dag_ref=dag_ref,
    )


def resumed(old: RunRecord) -> RunRecord:
    """``old`` as it restarts in this process: running again, one attempt more, no error.

    The work of its earlier attempts is added up (up to when the last one ended, or was last
    heard of), so the idle time before the restart does not count as work. (A sub-run,
    resumed by its parent; a top-level run is claimed through the store.)
    """
    return resumed_by(old, this_process(), utcnow())


def json_inputs(
    plan: Plan, inputs: Mapping[str, Mapping[str, Any]], prov: ProvenanceBackend
) -> dict[str, dict[str, Any]]:
    """The source inputs as the run record stores them (nothing when nothing is stored)."""
    if not prov.stores_values:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for label, params in inputs.items():
        types = plan.by_label[label].param_types
        out[label] = {
            k: to_json_safe(v, types.get(k), where=f"input {label}.{k}") for k, v in params.items()
        }
    return out


def run_started(host: PluginHost, state: RunState, prefill: Prefill, *, copied: bool) -> None:
    """The run's record, to the store and the hooks. A replay copies the old run's outputs
    as ``skipped`` records up front. (Nodes get no ``pending`` record here: those that never
    start get one when the run ends.)"""
    if state.record_values:
        state.prov.write_run(state.run)
    if state.observing:
        host.on_run_start(state.run)
    if state.record_values and copied and prefill:
        now = utcnow()
        state.prov.write_nodes(
            [
                attrs.evolve(rec, run_id=state.run_id, status=NodeStatus.SKIPPED, updated_at=now)
                for _value, rec in prefill.values()
            ]
        )


def error_fields(exc: BaseException) -> dict[str, Any]:
    return {
        "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "error_message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def ended_run(
    run: RunRecord, status: RunStatus, now: datetime, failed_node: str | None
) -> RunRecord:
    """``run`` ended at ``now`` without an error (``attrs.evolve``, field by field: it runs
    once per map element; a test checks that it keeps every field)."""
    return RunRecord(
        run_id=run.run_id,
        dag_nsref=run.dag_nsref,
        status=status,
        started_at=run.started_at,
        updated_at=now,
        finished_at=now,
        source_inputs=run.source_inputs,
        parent_run_id=run.parent_run_id,
        replay_of=run.replay_of,
        correlation_id=run.correlation_id,
        attempt=run.attempt,
        owner_pid=run.owner_pid,
        owner_host=run.owner_host,
        owner_started=run.owner_started,
        failed_node=failed_node,
        error_type=run.error_type,
        error_message=run.error_message,
        traceback=run.traceback,
        dag_ref=run.dag_ref,
        resumed_at=run.resumed_at,
        earlier_ms=run.earlier_ms,
    )


def run_closed(state: RunState, status: RunStatus, exc: BaseException | None) -> RunRecord:
    """Record how the run ended (buffered, not committed): its record and a ``pending``
    record of every node that never started (one batched write per run)."""
    now = utcnow()
    failed = state.failure[0].label if state.failure and status is RunStatus.FAILED else None
    if exc is None:
        run = ended_run(state.run, status, now, failed)
    else:
        run = attrs.evolve(
            state.run,
            status=status,
            updated_at=now,
            finished_at=now,
            failed_node=failed,
            **error_fields(exc),
        )
    state.run = run
    if state.record_values:
        if NodeStatus.PENDING in state.status:
            state.prov.write_nodes(
                [
                    NodeRecord(
                        run_id=state.run_id,
                        label=state.plan.labels[i],
                        status=NodeStatus.PENDING,
                        updated_at=now,
                        node_type=state.plan.specs[i].kind,
                        attempt=state.attempts[i],
                    )
                    for i, status in enumerate(state.status)
                    if status is NodeStatus.PENDING
                ]
            )
        state.prov.write_run(run)
    return run


# ---------------------------------------------------------------------- nodes
def begin(
    state: RunState, node: PlanNode, kwargs: dict[str, Any]
) -> tuple[datetime, dict[str, Any] | None]:
    """A node starts: one attempt more, its inputs as JSON-safe data, and the edge
    traversals that fed it to the store. Returns the moment and the inputs."""
    idx = node.index
    state.attempts[idx] += 1
    now = utcnow()
    if not state.record_values:
        return now, None
    inputs = {}
    for k, v in kwargs.items():
        if k == node.context_param:
            continue
        try:
            inputs[k] = to_json_safe(v, node.param_types.get(k), where=k)
        except ConversionError:
            inputs[k] = f"<unstorable {type(v).__qualname__}>"
    if node.bindings:
        labels = state.plan.labels
        attempts = state.attempts
        run_id = state.run_id
        state.prov.write_edges(
            [
                EdgeRecord(
                    run_id=run_id,
                    upstream=labels[u],
                    downstream=node.label,
                    parameter=param,
                    traversed_at=now,
                    upstream_attempt=attempts[u],
                    downstream_attempt=attempts[idx],
                )
                for u, param, _c in node.bindings
            ]
        )
    return now, inputs


def running(
    state: RunState,
    node: PlanNode,
    begun_at: datetime,
    inputs: dict[str, Any] | None,
    where: str,
) -> NodeRecord:
    """The ``running`` record of a node that began at ``begun_at``."""
    return NodeRecord(
        run_id=state.run_id,
        label=node.label,
        status=NodeStatus.RUNNING,
        updated_at=begun_at,
        node_type=node.kind,
        attempt=state.attempts[node.index],
        inputs=inputs,
        started_at=begun_at,
        executor=where,
        host=HOST,
        pid=_PID,
    )


def started(
    host: PluginHost,
    state: RunState,
    node: PlanNode,
    kwargs: dict[str, Any],
    where: str,
    *,
    buffered: bool = True,
) -> NodeRecord:
    """A node starts: its ``running`` record, to the hooks, and unless ``buffered`` is false
    to the provenance store."""
    begun_at, inputs = begin(state, node, kwargs)
    rec = running(state, node, begun_at, inputs, where)
    if buffered and state.record_values:
        state.prov.write_nodes((rec,))
    if state.observing:
        host.on_node_start(rec)
    return rec


def logged(state: RunState, node: PlanNode, lines: Sequence[LogRecord]) -> None:
    """A node's log lines, to the store (before its final record: committed with it)."""
    if lines:
        state.prov.write_logs(lines)
        state.log_seq[node.index] = lines[-1].seq + 1


def ended(host: PluginHost, state: RunState, rec: NodeRecord) -> None:
    """A node's final record, to the store and the hooks."""
    if state.record_values:
        state.prov.write_nodes((rec,))
    if state.observing:
        host.on_node_finish(rec)


def completed(
    state: RunState,
    node: PlanNode,
    attempt: int,
    inputs: dict[str, Any] | None,
    begun_at: datetime | None,
    where: str | None,
    value: Any,
    started_at: float,
    placement: Placement | None,
) -> NodeRecord:
    """The record of an execution that produced ``value``; ``started_at`` is its
    ``time.perf_counter()`` start, ``placement`` where it ran (``None``: on the loop)."""
    duration = (time.perf_counter() - started_at) * 1000.0
    output, restorable = storable(node, value) if state.record_values else (None, False)
    if placement is None:
        host, pid, worker = HOST, _PID, LOOP_WORKER
    else:
        host, pid, worker = placement.host, placement.pid, placement.worker
    now = utcnow()
    return NodeRecord(
        run_id=state.run_id,
        label=node.label,
        status=NodeStatus.COMPLETED,
        updated_at=now,
        node_type=node.kind,
        attempt=attempt,
        inputs=inputs,
        output=output,
        restorable=restorable,
        started_at=begun_at,
        finished_at=now,
        duration_ms=duration,
        executor=where,
        host=host,
        pid=pid,
        worker=worker,
    )


def completed_after(
    state: RunState,
    node: PlanNode,
    begun: NodeRecord,
    value: Any,
    started_at: float,
    placement: Placement | None,
) -> NodeRecord:
    """The ``completed`` record that follows the ``running`` record ``begun``."""
    return completed(
        state,
        node,
        begun.attempt,
        begun.inputs,
        begun.started_at,
        begun.executor,
        value,
        started_at,
        placement,
    )


def branches_skipped(state: RunState, node: PlanNode, keys: list[Any]) -> None:
    """A switch node chose a branch: each other branch gets a ``skipped`` record in the run
    (label ``"<switch>[<key>]"``, node type :data:`BRANCH`, no output), buffered."""
    now = utcnow()
    attempt = state.attempts[node.index]
    state.prov.write_nodes(
        [
            NodeRecord(
                run_id=state.run_id,
                label=f"{node.label}[{key}]",
                status=NodeStatus.SKIPPED,
                updated_at=now,
                node_type=BRANCH,
                attempt=attempt,
            )
            for key in keys
        ]
    )


def storable(node: PlanNode, value: Any) -> tuple[Any, bool]:
    """``value`` as JSON-safe data and whether a restart can restore it from that."""
    if type(value) in JSON_SCALARS and value == value:
        return value, True
    try:
        data = to_json_safe(value, node.output_type, where=f"node {node.label!r} output")
        # without a type, only plain JSON comes back as it went in
        if node.output_type in (EMPTY, Any) and loads(dumps(data)) != value:
            raise ConversionError(
                f"node {node.label!r} output: {type(value).__qualname__} does not "
                "survive JSON without a return annotation"
            )
        return data, True
    except ConversionError as exc:
        warnings.warn(
            f"{exc}; recorded as not restorable (a restart executes node {node.label!r} again)",
            PlaitWarning,
            stacklevel=2,
        )
        return None, False


def ending(begun: NodeRecord, status: NodeStatus, **fields: Any) -> NodeRecord:
    """The record of a node execution that ended without an output (failed, paused...)."""
    now = utcnow()
    duration = None
    if begun.started_at is not None:
        duration = (now - begun.started_at).total_seconds() * 1000.0
    return attrs.evolve(
        begun, status=status, updated_at=now, finished_at=now, duration_ms=duration, **fields
    )


def raised(begun: NodeRecord, outcome: Raised) -> NodeRecord:
    """The record of an execution that raised: ``paused`` (with the pause's reason) or
    ``failed`` (with the error)."""
    exc = outcome.error
    if outcome.paused:
        assert isinstance(exc, DagPause)
        return ending(begun, NodeStatus.PAUSED, error_message=exc.reason or None)
    return ending(begun, NodeStatus.FAILED, **error_fields(exc))
