"""``DagRunner``: run, restart and replay a DAG; pause it; keep its backends open.

The engine behind it lives in :mod:`plait._engine` (what runs share, one run's state, one
attempt of a node, the records, the scheduler, composite nodes). This module is its public
surface: how a run starts, how it is resumed or replayed, and how it ended
(:class:`DagRunResult`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Self

import anyio
import attrs

from plait import arguments, defaults, logcapture
from plait._engine import recording, scheduler
from plait._engine.composite import run_composite
from plait._engine.environment import Environment
from plait._engine.run import Prefill, RunState, next_log_seqs, restorable
from plait._plan import input_dicts
from plait.converter import structure
from plait.dag import Dag, Plan
from plait.errors import ArgumentTypeError, RestartError, RunBusyError
from plait.introspect import EMPTY
from plait.owners import owner_alive, this_process
from plait.plugins import PluginHost, default_host
from plait.protocols import Executor, ProvenanceBackend
from plait.records import RunRecord, RunStatus

__all__ = ["DagRunResult", "DagRunner"]


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

    @classmethod
    def of(cls, state: RunState, status: RunStatus, exc: BaseException | None) -> DagRunResult:
        """The result of the run ``state`` that ended with ``status`` (because of ``exc``)."""
        outputs = {}
        if status is RunStatus.COMPLETED:
            outputs = {state.plan.labels[i]: state.values[i] for i in state.plan.sinks}
        return cls(
            run_id=state.run_id,
            status=status,
            outputs=outputs,
            failed_node=state.run.failed_node,
            error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
            error_type=state.run.error_type,
            exception=exc,
        )


class DagRunner:
    """Runs a :class:`~plait.dag.Dag`, recording into a provenance backend.

    ``provenance`` and ``executor`` are backend names (looked up through the plugins;
    defaults from ``PLAIT_PROVENANCE`` and ``PLAIT_EXECUTOR``) or instances.
    ``max_concurrency`` bounds the nodes running at once. With ``fail_fast=False`` a failure
    does not cancel independent branches.

    The ``logging`` records nodes emit are kept in the provenance store (when it keeps
    values): ``log_level`` and above (``None``: none), at most ``log_limit`` lines per
    attempt of a node (see :mod:`plait.logcapture`).
    """

    def __init__(
        self,
        dag: Dag,
        provenance: ProvenanceBackend | str | None = None,
        executor: Executor | str | None = None,
        max_concurrency: int | None = None,
        *,
        fail_fast: bool = True,
        host: PluginHost | None = None,
        provenance_options: Mapping[str, Any] | None = None,
        log_level: int | None = logcapture.DEFAULT_LEVEL,
        log_limit: int = logcapture.DEFAULT_LIMIT,
    ) -> None:
        _check_runner_arguments(dag, provenance, executor, max_concurrency, fail_fast, host)
        if provenance_options is not None:
            arguments.instance(
                provenance_options, Mapping, name="provenance_options", where="DagRunner()"
            )
        if log_level is not None:
            arguments.instance(log_level, int, name="log_level", where="DagRunner()")
        arguments.count(log_limit, name="log_limit", where="DagRunner()", minimum=1)
        self.dag = dag
        self._env = Environment(
            host=host or default_host(),
            provenance=provenance or defaults.provenance_name(),
            provenance_options=dict(provenance_options or {}),
            executor=executor or defaults.executor_name(),
            max_concurrency=max_concurrency,
            fail_fast=fail_fast,
            run_composite=run_composite,
            log_level=log_level,
            log_limit=log_limit,
        )
        #: log capture held on while ``async with`` holds the runner open
        self._capture: contextlib.AbstractContextManager[None] | None = None

    @property
    def host(self) -> PluginHost:
        """The plugin host backends and hooks come from."""
        return self._env.host

    @property
    def max_concurrency(self) -> int | None:
        return self._env.max_concurrency

    @property
    def fail_fast(self) -> bool:
        return self._env.fail_fast

    @property
    def provenance(self) -> ProvenanceBackend:
        """The provenance backend (built from its name on first use)."""
        return self._env.provenance

    # ------------------------------------------------------------------ lifetime
    async def __aenter__(self) -> Self:
        """Keep the provenance backend and executors open across runs until the block ends.

        Without ``async with``, each run opens and closes them itself (a SQLite store then
        checkpoints its WAL at every run's end; a process pool starts at every run). While
        held, nodes' log records are kept being created (see :func:`plait.logcapture.capturing`)
        across runs, not switched on and off around each run.
        """
        prov = self.provenance
        await prov.open()
        self._env.held = True
        level = self._env.log_level
        if level is not None and prov.stores_values and self._capture is None:
            self._capture = logcapture.capturing(level)
            self._capture.__enter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what ``async with`` kept open (executors the runner built, provenance)."""
        if not self._env.held:
            return
        self._env.held = False
        capture, self._capture = self._capture, None
        try:
            with anyio.CancelScope(shield=True):
                await self._env.close_executors()
                await self.provenance.aclose()
        finally:
            if capture is not None:
                capture.__exit__(None, None, None)

    @contextlib.asynccontextmanager
    async def _backends_open(self, prov: ProvenanceBackend) -> AsyncIterator[None]:
        """Open ``prov`` for one operation and close it (and our executors) afterwards,
        unless ``async with`` holds them open."""
        if self._env.held:
            yield
            return
        await prov.open()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self._env.close_executors()
                await prov.aclose()

    def pause(self) -> None:
        """Stop starting new nodes; in-flight nodes finish and the run ends ``paused``."""
        self._env.pause()

    # ------------------------------------------------------------------ public entry points
    async def run(
        self,
        source_inputs: Mapping[str, Mapping[str, Any]] | None = None,
        dag_nsref: str | None = None,
        correlation_id: str | None = None,
        dag_ref: str | None = None,
    ) -> DagRunResult:
        """Run the DAG once. ``source_inputs`` maps source labels to parameter values.

        ``dag_ref`` records where the DAG can be loaded from (``"module:attr"``, as
        ``plait run`` takes it), so that ``plait restart`` and ``plait replay`` find it.
        """
        for name, value in (
            ("dag_nsref", dag_nsref),
            ("correlation_id", correlation_id),
            ("dag_ref", dag_ref),
        ):
            if value is not None:
                arguments.instance(value, str, name=name, where="DagRunner.run()")
        plan = self.dag.plan()
        inputs = input_dicts(source_inputs)
        prov = self.provenance
        plan.structure_inputs(inputs, stored=prov.stores_values)
        record = recording.new_run(
            dag_nsref or self.dag.nsref,
            recording.json_inputs(plan, inputs, prov),
            correlation_id=correlation_id,
            dag_ref=dag_ref,
        )
        return await self._run_top(plan, record, inputs, prov, prefill={})

    async def restart(self, run_id: str, *, force: bool = False) -> DagRunResult:
        """Resume a paused, failed or cancelled run (or one whose owner died) in place.

        Completed nodes are not executed again: their outputs are restored from provenance
        with their annotated types. The run is claimed through the store
        (:meth:`~plait.protocols.ProvenanceBackend.claim_run`): of two processes restarting
        it at once, one runs it and the other gets :class:`~plait.errors.RunBusyError`
        naming the run and its owner, as does a restart of a run whose owner is alive.
        ``force=True`` takes over a run that still looks alive.
        """
        arguments.instance(run_id, str, name="run_id", where="DagRunner.restart()")
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
            prefill = restorable(plan, old, records, rerun=set())
            data = await prov.load_run_data(run_id)
            subs = {r.dag_nsref: r for r in await prov.list_runs(parent_run_id=run_id)}
            log_seq = await next_log_seqs(prov, run_id) if self._env.log_level is not None else {}
            # ours only if nobody took it since we read it (what we read then still holds)
            claimed = await prov.claim_run(
                run_id, old.attempt, this_process(), expected_owner=old.owner
            )
        return await self._run_top(
            plan,
            claimed,
            inputs,
            prov,
            prefill=prefill,
            data=data,
            attempts={r.label: r.attempt for r in records},
            log_seq=log_seq,
            sub_runs=subs,
        )

    async def replay(
        self, run_id: str, rerun_nodes: Sequence[str] | set[str] | frozenset[str]
    ) -> DagRunResult:
        """A new run, linked to ``run_id``, that re-executes ``rerun_nodes`` and everything
        downstream of them; every other node is copied from the old run as ``skipped``."""
        arguments.instance(run_id, str, name="run_id", where="DagRunner.replay()")
        rerun_nodes = arguments.label_set(rerun_nodes, name="rerun_nodes", where="replay()")
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
            prefill = restorable(plan, old, records, rerun=plan.descendants(rerun_nodes))
            data = await prov.load_run_data(run_id)
        record = recording.new_run(
            old.dag_nsref,
            old.source_inputs,
            correlation_id=old.correlation_id,
            replay_of=run_id,
            dag_ref=old.dag_ref,
        )
        return await self._run_top(
            plan, record, inputs, prov, prefill=prefill, data=data, copied=True
        )

    # ------------------------------------------------------------------ restart helpers
    def _check_restartable(self, old: RunRecord, force: bool) -> None:
        rid = old.run_id
        if old.status is RunStatus.COMPLETED:
            raise RestartError(f"run {rid!r} already completed; use replay() to run it again")
        if old.status is not RunStatus.RUNNING or force:
            return
        alive = owner_alive(old.owner)
        if alive is False:
            return  # its owner died: the run is ours to take
        where = f"process {old.owner_pid} on host {old.owner_host!r}"
        why = (
            f"is still running in {where}"
            if alive
            else f"is marked running by {where}; plait cannot tell whether it is alive there"
        )
        raise RunBusyError(
            f"run {rid!r} {why} (pass force=True to take it over)",
            run_id=rid,
            owner_pid=old.owner_pid,
            owner_host=old.owner_host,
            attempt=old.attempt,
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

    # ------------------------------------------------------------------ the run
    async def _run_top(
        self,
        plan: Plan,
        record: RunRecord,
        inputs: Mapping[str, Mapping[str, Any]],
        prov: ProvenanceBackend,
        *,
        prefill: Prefill,
        data: dict[str, Any] | None = None,
        attempts: dict[str, int] | None = None,
        log_seq: dict[str, int] | None = None,
        copied: bool = False,
        sub_runs: dict[str, RunRecord] | None = None,
    ) -> DagRunResult:
        env = self._env
        state = RunState(
            plan,
            record,
            inputs,
            prov,
            observing=env.host.observing,
            log_level=env.log_level,
            log_limit=env.log_limit,
        )
        state.sub_runs = sub_runs
        state.restore(data or {}, attempts or {}, log_seq)
        if env.held:  # no context manager to enter per run: what a run needs is open
            return await self._execute(state, prefill, copied)
        async with self._backends_open(prov):
            return await self._execute(state, prefill, copied)

    async def _execute(self, state: RunState, prefill: Prefill, copied: bool) -> DagRunResult:
        env = self._env
        env.start_run()
        if state.capture and self._capture is None:
            assert env.log_level is not None
            with logcapture.capturing(env.log_level):
                status, exc = await scheduler.execute(env, state, prefill, copied=copied)
        else:
            status, exc = await scheduler.execute(env, state, prefill, copied=copied)
        return DagRunResult.of(state, status, exc)


def _check_runner_arguments(
    dag: Any, provenance: Any, executor: Any, max_concurrency: Any, fail_fast: Any, host: Any
) -> None:
    where = "DagRunner()"
    arguments.instance(dag, Dag, name="dag", where=where)
    if provenance is not None and not isinstance(provenance, str):
        _backend(provenance, ("open", "aclose", "write_run"), name="provenance")
    if executor is not None and not isinstance(executor, str):
        _backend(executor, ("run",), name="executor")
    if max_concurrency is not None:
        arguments.count(max_concurrency, name="max_concurrency", where=where, minimum=1)
    arguments.flag(fail_fast, name="fail_fast", where=where)
    if host is not None:
        arguments.instance(host, PluginHost, name="host", where=where)


def _backend(value: Any, methods: tuple[str, ...], *, name: str) -> None:
    missing = [m for m in methods if not callable(getattr(value, m, None))]
    if missing:
        raise ArgumentTypeError(
            f"DagRunner(): {name} must be a backend name or an instance, got "
            f"{type(value).__name__} {value!r:.60} (it has no {', '.join(missing)})"
        )
