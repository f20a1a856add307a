"""``DagRunner``: event-driven concurrent execution of a plan on anyio.

A node starts the moment its last upstream completes. Cheap ``@inline`` nodes run directly
in the scheduling task (no task spawned, no thread hop); everything else runs in its own task
of one task group: coroutines on the loop, sync callables on an executor. The first failure
cancels the task group (fail-fast). Work per node is O(its edges).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
import uuid
import warnings
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Self

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from plait import defaults
from plait.context import CURRENT_CONTEXT, DagContext
from plait.converter import JSON_SCALARS, dumps, loads, structure, to_json_safe
from plait.dag import Dag, Plan, PlanNode, _Composite
from plait.errors import (
    ConversionError,
    DagPause,
    NodeTimeoutError,
    PlaitWarning,
    RestartError,
)
from plait.executors import NodeCall, Placement
from plait.introspect import EMPTY
from plait.null import NullProvenance
from plait.plugins import PluginHost, default_host
from plait.protocols import Executor, ProvenanceBackend
from plait.records import (
    BackendKind,
    EdgeRecord,
    NodeRecord,
    NodeStatus,
    RunRecord,
    RunStatus,
    utcnow,
)

__all__ = ["DagRunResult", "DagRunner"]

_NOT_DONE: Final = object()
_CHECKPOINT_EVERY: Final = 64
_HOST: Final = socket.gethostname()
_PID = os.getpid()  # refreshed after fork, see _after_fork below
_LOOP_WORKER: Final = "event-loop"


@attrs.frozen(kw_only=True)
class DagRunResult:
    """How a run ended. ``outputs`` holds the sink nodes' values by label."""

    run_id: str
    status: RunStatus
    outputs: dict[str, Any] = attrs.field(factory=dict)
    failed_node: str | None = None
    error: str | None = None
    error_type: str | None = None
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.COMPLETED


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {
        "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "error_message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


class _RunState:
    """Everything about one run in flight. Only the event loop thread mutates it."""

    def __init__(
        self,
        runner: DagRunner,
        plan: Plan,
        run: RunRecord,
        inputs: Mapping[str, Mapping[str, Any]],
        prov: ProvenanceBackend,
    ) -> None:
        n = len(plan.nodes)
        self.runner = runner
        self.plan = plan
        self.run = run
        self.run_id = run.run_id
        self.inputs = inputs
        self.prov = prov
        self.record_values = bool(getattr(prov, "stores_values", False))
        self.host = runner.host
        self.observing = runner.host.observing
        self.recording = self.record_values or self.observing
        self.values: list[Any] = [_NOT_DONE] * n
        self.status: list[NodeStatus] = [NodeStatus.PENDING] * n
        self.attempts: list[int] = [0] * n
        self.remaining: list[int] = [p.n_upstream for p in plan.nodes]
        self.ready: deque[int] = deque()
        self.data: dict[str, Any] = {}
        self.stopping = False
        self.paused = False
        self.failure: tuple[PlanNode, BaseException] | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        self.restored_records: dict[int, NodeRecord] = {}
        self.sub_runs: dict[str, RunRecord] | None = None  # restart: sub-runs by nsref

    def set_data(self, key: str, value: Any, json_data: Any) -> None:
        self.data[key] = value
        if self.record_values:
            self.prov.write_run_data(self.run_id, key, json_data)

    def context_of(self, node: PlanNode) -> DagContext:
        """The context of ``node`` in this run (of the class its parameter asks for)."""
        cls: type[DagContext] = (
            node.context_type if isinstance(node.context_type, type) else DagContext
        )
        return cls(
            dag_nsref=self.run.dag_nsref, node_label=node.label, run_id=self.run_id, run=self
        )

    def mark_done(self, idx: int, value: Any) -> None:
        self.values[idx] = value
        remaining = self.remaining
        for s in self.plan.nodes[idx].successors:
            remaining[s] -= 1
            if remaining[s] == 0:
                self.ready.append(s)


class DagRunner:
    """Runs a :class:`~plait.dag.Dag`, recording into a provenance backend.

    ``provenance``, ``executor`` and ``cache`` are backend names (looked up through the
    plugins; defaults from ``PLAIT_PROVENANCE``, ``PLAIT_EXECUTOR``, ``PLAIT_CACHE``) or
    instances. ``max_concurrency`` bounds the nodes running at once. With
    ``fail_fast=False`` a failure does not cancel independent branches.
    """

    def __init__(
        self,
        dag: Dag,
        provenance: ProvenanceBackend | str | None = None,
        executor: Executor | str | None = None,
        cache: Any = None,
        max_concurrency: int | None = None,
        *,
        fail_fast: bool = True,
        host: PluginHost | None = None,
        provenance_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(dag, Dag):
            raise TypeError(f"DagRunner takes a Dag, got {dag!r}")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.dag = dag
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        self.host = host or default_host()
        self._provenance_spec = provenance or defaults.provenance_name()
        self._provenance_options = dict(provenance_options or {})
        self._provenance: ProvenanceBackend | None = None
        self._executor_spec: Executor | str = executor or defaults.executor_name()
        self._executors: dict[str, Executor] = {}
        self._owned_executors: list[Executor] = []
        self.cache = cache
        self._pause_requested = False
        self._active: list[_RunState] = []
        self._limiter: anyio.CapacityLimiter | None = None
        self._held = False

    # ------------------------------------------------------------------ resources
    @property
    def provenance(self) -> ProvenanceBackend:
        """The provenance backend (built from its name on first use)."""
        if self._provenance is None:
            spec = self._provenance_spec
            if spec is None:
                self._provenance = NullProvenance()
            elif isinstance(spec, str):
                self._provenance = self.host.create(
                    BackendKind.PROVENANCE, spec, **self._provenance_options
                )
            else:
                self._provenance = spec
        return self._provenance

    def _executor(self, name: str | None) -> Executor:
        """The executor a node asked for by name (or the runner's), built once per run.

        An executor instance given to the runner also serves nodes that name it
        (``DagRunner(dag, executor=DaskExecutor(address=...))`` with ``executor="dask"``).
        """
        spec = self._executor_spec
        key = name or (spec if isinstance(spec, str) else "")
        ex = self._executors.get(key)
        if ex is None:
            if not isinstance(spec, str) and (name is None or name == spec.name):
                ex = spec
            else:
                ex = self.host.create(BackendKind.EXECUTOR, key)
                self._owned_executors.append(ex)
            self._executors[key] = ex
        return ex

    async def _close_executors(self) -> None:
        owned, self._owned_executors = self._owned_executors, []
        self._executors.clear()
        for ex in owned:
            await ex.aclose()

    # ------------------------------------------------------------------ lifetime
    async def __aenter__(self) -> Self:
        """Keep the provenance backend and executors open across runs until the block ends.

        Without ``async with``, each run opens and closes them itself (a SQLite store then
        checkpoints its WAL at every run's end; a process pool starts at every run).
        """
        await self.provenance.open()
        self._held = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what ``async with`` kept open (executors the runner built, provenance)."""
        if not self._held:
            return
        self._held = False
        with anyio.CancelScope(shield=True):
            await self._close_executors()
            await self.provenance.aclose()

    @contextlib.asynccontextmanager
    async def _backends_open(self, prov: ProvenanceBackend) -> AsyncIterator[None]:
        """Open ``prov`` for one operation and close it (and our executors) afterwards,
        unless ``async with`` holds them open."""
        if self._held:
            yield
            return
        await prov.open()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_executors()
                await prov.aclose()

    def pause(self) -> None:
        """Stop starting new nodes; in-flight nodes finish and the run ends ``paused``."""
        self._pause_requested = True
        for state in self._active:
            state.paused = True
            state.stopping = True

    # ------------------------------------------------------------------ public entry points
    async def run(
        self,
        source_inputs: Mapping[str, Mapping[str, Any]] | None = None,
        dag_nsref: str | None = None,
        correlation_id: str | None = None,
    ) -> DagRunResult:
        """Run the DAG once. ``source_inputs`` maps source labels to parameter values."""
        plan = self.dag.plan()
        inputs = {k: dict(v) for k, v in (source_inputs or {}).items()}
        plan.structure_inputs(inputs)
        prov = self.provenance
        now = utcnow()
        record = RunRecord(
            run_id=uuid.uuid4().hex,
            dag_nsref=dag_nsref or self.dag.nsref,
            status=RunStatus.RUNNING,
            started_at=now,
            updated_at=now,
            source_inputs=self._json_inputs(plan, inputs, prov),
            correlation_id=correlation_id,
            owner_pid=os.getpid(),
            owner_host=_HOST,
        )
        return await self._run_top(plan, record, inputs, prov, prefill=None)

    async def restart(self, run_id: str, *, force: bool = False) -> DagRunResult:
        """Resume a paused, failed or cancelled run (or one whose owner died) in place.

        Completed nodes are not executed again: their outputs are restored from provenance
        with their annotated types. ``force=True`` takes over a run that still looks alive.
        """
        prov = self.provenance
        if not prov.stores_values:
            raise RestartError(
                f"cannot restart run {run_id!r}: the provenance backend "
                f"{type(prov).__name__} keeps no history (use provenance='sqlite')"
            )
        async with self._backends_open(prov):
            old = await prov.get_run(run_id)
            self._check_restartable(old, force)
            plan = self.dag.plan()
            records = await prov.get_node_executions(run_id)
            inputs = self._restore_inputs(plan, old)
            prefill = self._restorable(plan, old, records, rerun=set())
            data = await prov.load_run_data(run_id)
            subs = {r.dag_nsref: r for r in await prov.list_runs(parent_run_id=run_id)}
        record = resumed(old)
        attempts = {r.label: r.attempt for r in records}
        return await self._run_top(
            plan,
            record,
            inputs,
            prov,
            prefill=prefill,
            data=data,
            attempts=attempts,
            sub_runs=subs,
        )

    async def replay(
        self, run_id: str, rerun_nodes: Sequence[str] | set[str] | frozenset[str]
    ) -> DagRunResult:
        """A new run, linked to ``run_id``, that re-executes ``rerun_nodes`` and everything
        downstream of them; every other node is copied from the old run as ``skipped``."""
        prov = self.provenance
        if not prov.stores_values:
            raise RestartError(
                f"cannot replay run {run_id!r}: the provenance backend "
                f"{type(prov).__name__} keeps no history (use provenance='sqlite')"
            )
        plan = self.dag.plan()
        unknown = sorted(set(rerun_nodes) - set(plan.by_label))
        if unknown:
            raise RestartError(
                f"cannot replay run {run_id!r}: DAG {self.dag.nsref!r} has no node "
                f"{', '.join(map(repr, unknown))} (nodes: {', '.join(plan.by_label)})"
            )
        async with self._backends_open(prov):
            old = await prov.get_run(run_id)
            if old.status is RunStatus.RUNNING:
                raise RestartError(f"cannot replay run {run_id!r}: it is still running")
            records = await prov.get_node_executions(run_id)
            inputs = self._restore_inputs(plan, old)
            prefill = self._restorable(plan, old, records, rerun=plan.descendants(rerun_nodes))
            data = await prov.load_run_data(run_id)
        now = utcnow()
        record = RunRecord(
            run_id=uuid.uuid4().hex,
            dag_nsref=old.dag_nsref,
            status=RunStatus.RUNNING,
            started_at=now,
            updated_at=now,
            source_inputs=old.source_inputs,
            replay_of=run_id,
            correlation_id=old.correlation_id,
            owner_pid=os.getpid(),
            owner_host=_HOST,
        )
        return await self._run_top(
            plan, record, inputs, prov, prefill=prefill, data=data, copied=True
        )

    # ------------------------------------------------------------------ restart helpers
    def _check_restartable(self, old: RunRecord, force: bool) -> None:
        rid = old.run_id
        if old.status is RunStatus.COMPLETED:
            raise RestartError(f"run {rid!r} already completed; use replay() to run it again")
        if old.status is RunStatus.RUNNING and not force:
            if old.owner_host != _HOST:
                raise RestartError(
                    f"run {rid!r} is marked running on host {old.owner_host!r}; plait cannot "
                    "tell whether it is alive there (pass force=True to take it over)"
                )
            if old.owner_pid == os.getpid() or _pid_alive(old.owner_pid):
                raise RestartError(
                    f"run {rid!r} is still running in process {old.owner_pid} "
                    "(pass force=True to take it over)"
                )

    def _restore_inputs(self, plan: Plan, old: RunRecord) -> dict[str, dict[str, Any]]:
        inputs: dict[str, dict[str, Any]] = {}
        for label, params in old.source_inputs.items():
            node = plan.by_label.get(label)
            if node is None:
                raise RestartError(
                    f"run {old.run_id!r} has inputs for node {label!r}, which DAG "
                    f"{self.dag.nsref!r} does not have: is it the DAG that made the run?"
                )
            types = {p.name: p.annotation for p in node.input_params}
            inputs[label] = {
                k: structure(v, types.get(k, EMPTY), where=f"run {old.run_id} input {label}.{k}")
                for k, v in params.items()
            }
        return inputs

    def _restorable(
        self, plan: Plan, old: RunRecord, records: Sequence[NodeRecord], rerun: set[int]
    ) -> dict[int, tuple[Any, NodeRecord]]:
        prefill: dict[int, tuple[Any, NodeRecord]] = {}
        for rec in records:
            node = plan.by_label.get(rec.label)
            if node is None:
                raise RestartError(
                    f"run {old.run_id!r} has node {rec.label!r}, which DAG {self.dag.nsref!r} "
                    "does not have: is it the DAG that made the run?"
                )
            if node.index in rerun or not rec.status.has_output or not rec.restorable:
                continue
            value = structure(
                rec.output, node.output_type, where=f"run {old.run_id} node {rec.label!r} output"
            )
            prefill[node.index] = (value, rec)
        return prefill

    # ------------------------------------------------------------------ the run
    def _json_inputs(
        self, plan: Plan, inputs: Mapping[str, Mapping[str, Any]], prov: ProvenanceBackend
    ) -> dict[str, dict[str, Any]]:
        if not prov.stores_values:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for label, params in inputs.items():
            types = plan.by_label[label].param_types
            out[label] = {
                k: to_json_safe(v, types.get(k), where=f"input {label}.{k}")
                for k, v in params.items()
            }
        return out

    async def _run_top(
        self,
        plan: Plan,
        record: RunRecord,
        inputs: Mapping[str, Mapping[str, Any]],
        prov: ProvenanceBackend,
        *,
        prefill: dict[int, tuple[Any, NodeRecord]] | None,
        data: dict[str, Any] | None = None,
        attempts: dict[str, int] | None = None,
        copied: bool = False,
        sub_runs: dict[str, RunRecord] | None = None,
    ) -> DagRunResult:
        async with self._backends_open(prov):
            if self.max_concurrency is not None:
                self._limiter = anyio.CapacityLimiter(self.max_concurrency)
            state = _RunState(self, plan, record, inputs, prov)
            state.sub_runs = sub_runs
            if data:
                state.data.update(data)
            if attempts:
                for label, n in attempts.items():
                    state.attempts[plan.by_label[label].index] = n
            return await self._execute(state, prefill or {}, copied=copied)

    async def _execute(
        self, state: _RunState, prefill: dict[int, tuple[Any, NodeRecord]], *, copied: bool
    ) -> DagRunResult:
        plan, prov = state.plan, state.prov
        if state.record_values:
            prov.write_run(state.run)
        if state.observing:
            self.host.on_run_start(state.run)
        self._start_records(state, prefill, copied)
        for i, (value, _rec) in prefill.items():
            state.status[i] = NodeStatus.SKIPPED if copied else NodeStatus.COMPLETED
            state.values[i] = value
        for i in prefill:
            for s in plan.nodes[i].successors:
                state.remaining[s] -= 1
        state.ready.extend(i for i in plan.order if state.remaining[i] == 0 and i not in prefill)
        if state.record_values:
            await prov.commit()
        self._active.append(state)
        if self._pause_requested:
            state.paused = state.stopping = True
        try:
            async with anyio.create_task_group() as tg:
                state.tg = tg
                await self._drain(state)
        except BaseException as exc:
            # the caller cancelled us (or KeyboardInterrupt): record and re-raise
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt)
            with anyio.CancelScope(shield=True):
                await self._finish(
                    state, RunStatus.CANCELLED if cancelled else RunStatus.FAILED, exc
                )
            raise
        finally:
            self._active.remove(state)
        if state.failure is not None:
            return await self._finish(state, RunStatus.FAILED, state.failure[1])
        if all(v is not _NOT_DONE for v in state.values):
            return await self._finish(state, RunStatus.COMPLETED, None)
        return await self._finish(state, RunStatus.PAUSED, None)

    def _start_records(
        self, state: _RunState, prefill: dict[int, tuple[Any, NodeRecord]], copied: bool
    ) -> None:
        """A replay copies the old run's outputs as ``skipped`` records up front. (Nodes get
        no ``pending`` record here: those that never start get one when the run ends.)"""
        if not (state.record_values and copied and prefill):
            return
        now = utcnow()
        state.prov.write_nodes(
            [
                attrs.evolve(rec, run_id=state.run_id, status=NodeStatus.SKIPPED, updated_at=now)
                for _value, rec in prefill.values()
            ]
        )

    async def _finish(
        self, state: _RunState, status: RunStatus, exc: BaseException | None
    ) -> DagRunResult:
        result = self._close_run(state, status, exc)
        if state.record_values:
            await state.prov.commit()
        if state.observing:
            self.host.on_run_finish(state.run)
        return result

    def _close_run(
        self, state: _RunState, status: RunStatus, exc: BaseException | None
    ) -> DagRunResult:
        """Record how the run ended (buffered, not committed) and build its result."""
        now = utcnow()
        failed = state.failure[0].label if state.failure and status is RunStatus.FAILED else None
        fields: dict[str, Any] = {}
        if exc is not None:
            fields = _error_fields(exc)
        run = attrs.evolve(
            state.run,
            status=status,
            updated_at=now,
            finished_at=now,
            failed_node=failed,
            **fields,
        )
        state.run = run
        if state.record_values:
            if NodeStatus.PENDING in state.status:
                # one batched write per run instead of one row per node before it starts
                state.prov.write_nodes(
                    [
                        NodeRecord(
                            run_id=state.run_id,
                            label=pn.label,
                            status=NodeStatus.PENDING,
                            updated_at=now,
                            node_type=pn.kind,
                            attempt=state.attempts[pn.index],
                        )
                        for pn in state.plan.nodes
                        if state.status[pn.index] is NodeStatus.PENDING
                    ]
                )
            state.prov.write_run(run)
        outputs = {}
        if status is RunStatus.COMPLETED:
            outputs = {state.plan.nodes[i].label: state.values[i] for i in state.plan.sinks}
        return DagRunResult(
            run_id=run.run_id,
            status=status,
            outputs=outputs,
            failed_node=failed,
            error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
            error_type=fields.get("error_type"),
            exception=exc,
        )

    # ------------------------------------------------------------------ scheduling
    async def _drain(self, state: _RunState, *, keep: bool = False) -> PlanNode | None:
        """Start every ready node: fast inline nodes right here, others as tasks.

        With ``keep``, the first node that needs a task of its own is returned instead of
        started: the calling task (one whose node has just finished) runs it next.
        """
        ready = state.ready
        nodes = state.plan.nodes
        tg = state.tg
        assert tg is not None
        inline_ok = self._limiter is None
        since_checkpoint = 0
        kept: PlanNode | None = None
        while ready and not state.stopping:
            idx = ready.popleft()
            node = nodes[idx]
            if node.fast_inline and inline_ok:
                self._run_inline(state, node)
                if state.record_values:
                    await state.prov.commit()
                since_checkpoint += 1
                if since_checkpoint >= _CHECKPOINT_EVERY:
                    since_checkpoint = 0
                    await anyio.lowlevel.checkpoint()
            elif keep and kept is None:
                kept = node
            else:
                tg.start_soon(self._run_task, state, node, name=f"plait node {node.label}")
        return kept

    def _kwargs(self, state: _RunState, node: PlanNode) -> dict[str, Any]:
        values = state.values
        kwargs: dict[str, Any] = {}
        given = state.inputs.get(node.label)
        if given:
            kwargs.update(given)
        for up, param, collect in node.bindings:
            if collect:
                kwargs.setdefault(param, []).append(values[up])
            else:
                kwargs[param] = values[up]
        if node.context_param is not None:
            kwargs[node.context_param] = state.context_of(node)
        return kwargs

    def _run_inline(self, state: _RunState, node: PlanNode) -> None:
        idx = node.index
        kwargs = self._kwargs(state, node)
        # An inline node is recorded once, when it has ended: the store learns when it
        # started from ``started_at``. Unless hooks watch, no running record is even built.
        started: NodeRecord | None = None
        begun: tuple[datetime, dict[str, Any] | None] | None = None
        if state.observing:
            started = self._node_started(state, node, kwargs, "inline", buffered=False)
        elif state.record_values:
            begun = self._begin(state, node, kwargs)
        state.status[idx] = NodeStatus.RUNNING
        t0 = time.perf_counter()
        token = CURRENT_CONTEXT.set(
            kwargs[node.context_param] if node.context_param else (state, node)
        )
        try:
            assert node.call is not None
            value = node.call(**kwargs)
        except DagPause as exc:
            if begun is not None:
                started = self._running_record(state, node, *begun, "inline")
            self._node_paused(state, node, started, exc)
            return
        except Exception as exc:
            if begun is not None:
                started = self._running_record(state, node, *begun, "inline")
            self._node_failed(state, node, started, exc)
            return
        finally:
            CURRENT_CONTEXT.reset(token)
        if begun is not None:
            begun_at, inputs = begun
            state.status[idx] = NodeStatus.COMPLETED
            state.prov.write_nodes(
                (
                    self._completed_record(
                        state,
                        node,
                        state.attempts[idx],
                        inputs,
                        begun_at,
                        "inline",
                        _PID,
                        value,
                        t0,
                        None,
                    ),
                )
            )
            state.mark_done(idx, value)
        else:
            self._node_completed(state, node, started, value, t0, None)

    async def _run_task(self, state: _RunState, node: PlanNode) -> None:
        """Run ``node``, then start what it made ready. Of those, the first that needs a task
        is run by this one, not a new one: a chain runs in one task, while a fan-out's other
        branches get tasks of their own and run concurrently."""
        limiter = self._limiter
        ran = 0
        next_node: PlanNode | None = node
        while next_node is not None:
            node = next_node
            if ran == _CHECKPOINT_EVERY:
                # a chain of nodes that never await (async ones, say) still lets others run
                ran = 0
                await anyio.lowlevel.checkpoint()
            if state.stopping:
                return
            ran += 1
            if limiter is not None and not isinstance(node.node, _Composite):
                async with limiter:
                    if not state.stopping:  # pause() or a failure may come while we wait
                        await self._run_node(state, node)
            else:
                await self._run_node(state, node)
            next_node = await self._drain(state, keep=True)  # starts nothing once stopping

    async def _run_node(self, state: _RunState, node: PlanNode) -> None:
        idx = node.index
        kwargs = self._kwargs(state, node)
        started = None
        if state.recording:
            started = self._node_started(state, node, kwargs, self._where(node))
        state.status[idx] = NodeStatus.RUNNING
        if state.record_values:
            # durable before the call: after a crash the store shows what was in flight
            await state.prov.commit()
        ctx = kwargs.get(node.context_param) if node.context_param else None
        attempt = 0
        while True:
            t0 = time.perf_counter()
            try:
                if node.timeout is not None:
                    try:
                        with anyio.fail_after(node.timeout):
                            value, placement = await self._call(state, node, kwargs, ctx)
                    except TimeoutError as exc:
                        raise NodeTimeoutError(
                            f"node {node.label!r} timed out after {node.timeout} s"
                        ) from exc
                else:
                    value, placement = await self._call(state, node, kwargs, ctx)
            except DagPause as exc:
                self._node_paused(state, node, started, exc)
                return
            except anyio.get_cancelled_exc_class():
                self._node_cancelled(state, node, started)
                raise
            except Exception as exc:
                if attempt < node.retries and not state.stopping:
                    delay = node.retry_backoff * (2**attempt)
                    attempt += 1
                    state.attempts[idx] += 1
                    try:
                        await anyio.sleep(delay)
                    except anyio.get_cancelled_exc_class():
                        self._node_cancelled(state, node, started)
                        raise
                    continue
                self._node_failed(state, node, started, exc)
                return
            break
        self._node_completed(state, node, started, value, t0, placement)
        if state.record_values:
            await state.prov.commit()

    def _where(self, node: PlanNode) -> str:
        if isinstance(node.node, _Composite):
            return node.kind
        if node.is_async:
            return "async"
        if node.inline:
            return "inline"
        return node.executor or str(
            self._executor_spec
            if isinstance(self._executor_spec, str)
            else getattr(self._executor_spec, "name", type(self._executor_spec).__name__)
        )

    async def _call(
        self, state: _RunState, node: PlanNode, kwargs: dict[str, Any], ctx: Any
    ) -> tuple[Any, Placement | None]:
        if isinstance(node.node, _Composite):
            return await self._run_composite(state, node, kwargs), None
        assert node.call is not None
        if not (node.is_async or node.inline):
            executor = self._executor(node.executor)
            call = NodeCall(
                label=node.label,
                function=node.call,
                arguments=kwargs,
                context=ctx or state.context_of(node),
                # no record to say where it ran: the worker is not asked
                record_placement=state.recording,
            )
            return await executor.run(call)
        token = CURRENT_CONTEXT.set(ctx or (state, node))
        try:
            if node.is_async:
                return await node.call(**kwargs), None
            return node.call(**kwargs), None
        finally:
            CURRENT_CONTEXT.reset(token)

    # ------------------------------------------------------------------ node records
    def _node_started(
        self,
        state: _RunState,
        node: PlanNode,
        kwargs: dict[str, Any],
        where: str,
        *,
        buffered: bool = True,
    ) -> NodeRecord:
        """The ``running`` record of a node: to the hooks, and unless ``buffered`` is false
        to the provenance store."""
        begun_at, inputs = self._begin(state, node, kwargs)
        rec = self._running_record(state, node, begun_at, inputs, where)
        if buffered and state.record_values:
            state.prov.write_nodes((rec,))
        if state.observing:
            self.host.on_node_start(rec)
        return rec

    def _begin(
        self, state: _RunState, node: PlanNode, kwargs: dict[str, Any]
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
            nodes = state.plan.nodes
            attempts = state.attempts
            run_id = state.run_id
            state.prov.write_edges(
                [
                    EdgeRecord(
                        run_id=run_id,
                        upstream=nodes[u].label,
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

    @staticmethod
    def _running_record(
        state: _RunState,
        node: PlanNode,
        begun_at: datetime,
        inputs: dict[str, Any] | None,
        where: str,
    ) -> NodeRecord:
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
            host=_HOST,
            pid=_PID,
        )

    def _ended(self, state: _RunState, rec: NodeRecord) -> None:
        if state.record_values:
            state.prov.write_nodes((rec,))
        if state.observing:
            self.host.on_node_finish(rec)

    def _node_completed(
        self,
        state: _RunState,
        node: PlanNode,
        started: NodeRecord | None,
        value: Any,
        t0: float,
        placement: Placement | None,
    ) -> None:
        state.status[node.index] = NodeStatus.COMPLETED
        if started is not None:
            self._ended(
                state,
                self._completed_record(
                    state,
                    node,
                    started.attempt,
                    started.inputs,
                    started.started_at,
                    started.executor,
                    started.pid,
                    value,
                    t0,
                    placement,
                ),
            )
        state.mark_done(node.index, value)

    def _completed_record(
        self,
        state: _RunState,
        node: PlanNode,
        attempt: int,
        inputs: dict[str, Any] | None,
        begun_at: datetime | None,
        where: str | None,
        pid: int | None,
        value: Any,
        t0: float,
        placement: Placement | None,
    ) -> NodeRecord:
        """The record of an execution that produced ``value`` (built directly rather than
        with ``attrs.evolve``: this runs once per node)."""
        duration = (time.perf_counter() - t0) * 1000.0
        output, restorable = self._storable(node, value) if state.record_values else (None, False)
        if placement is None:
            host, worker = _HOST, _LOOP_WORKER
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

    def _storable(self, node: PlanNode, value: Any) -> tuple[Any, bool]:
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

    def _node_failed(
        self, state: _RunState, node: PlanNode, started: NodeRecord | None, exc: BaseException
    ) -> None:
        state.status[node.index] = NodeStatus.FAILED
        if started is not None:
            self._ended(state, _ending(started, NodeStatus.FAILED, **_error_fields(exc)))
        if state.failure is None:
            state.failure = (node, exc)
        if self.fail_fast:
            state.stopping = True
            if state.tg is not None:  # None: a map element run synchronously, no tasks
                state.tg.cancel_scope.cancel()

    def _node_paused(
        self, state: _RunState, node: PlanNode, started: NodeRecord | None, exc: DagPause
    ) -> None:
        state.status[node.index] = NodeStatus.PAUSED
        state.paused = state.stopping = True
        if started is not None:
            ended = _ending(started, NodeStatus.PAUSED, error_message=exc.reason or None)
            self._ended(state, ended)

    def _node_cancelled(self, state: _RunState, node: PlanNode, started: NodeRecord | None) -> None:
        state.status[node.index] = NodeStatus.CANCELLED
        if started is not None:
            self._ended(state, _ending(started, NodeStatus.CANCELLED))

    # ------------------------------------------------------------------ composite nodes
    async def _run_composite(self, state: _RunState, node: PlanNode, kwargs: dict[str, Any]) -> Any:
        from plait._composite import run_composite  # imports this module: import on use

        return await run_composite(self, state, node, kwargs)


def _after_fork() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def _ending(started: NodeRecord, status: NodeStatus, **fields: Any) -> NodeRecord:
    """The record of a node execution that ended without an output (failed, paused...)."""
    now = utcnow()
    duration = None
    if started.started_at is not None:
        duration = (now - started.started_at).total_seconds() * 1000.0
    return attrs.evolve(
        started, status=status, updated_at=now, finished_at=now, duration_ms=duration, **fields
    )


def resumed(old: RunRecord) -> RunRecord:
    """``old`` as it restarts in this process: running again, one attempt more, no error."""
    return attrs.evolve(
        old,
        status=RunStatus.RUNNING,
        updated_at=utcnow(),
        finished_at=None,
        attempt=old.attempt + 1,
        owner_pid=os.getpid(),
        owner_host=_HOST,
        failed_node=None,
        error_type=None,
        error_message=None,
        traceback=None,
    )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
