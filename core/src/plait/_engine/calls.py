"""Calls of namespace entries from inside a node: ``ctx.call`` and ``await ctx.acall``.

Each call is a sub-run of the calling node's run (``parent_run_id``), with nsref
``"<run dag>/<caller label>/call:<entry nsref>#<n>"`` (``n`` counts the caller's calls in
this run) and one node, the entry. ``acall`` runs that sub-run through the scheduler like
any run (the entry's executor, the one attempt path). ``call`` is for sync nodes in worker
threads: the entry runs right in the calling thread (a thread waiting on another thread for
its work could starve the pool), while its records are made on the event loop.

The entry is looked up in the namespace of the DAG the calling node belongs to. Sub-runs of
calls are not reused by a restart: a node is atomic, so a completed node (and every call it
made) is restored, and a node that runs again makes its calls again.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
import anyio.from_thread

from plait._engine import recording, scheduler
from plait._engine.attempt import Raised, Returned, call_inline
from plait._engine.environment import Environment
from plait._engine.run import RunState
from plait._plan import Plan, PlanNode
from plait.context import CURRENT_CONTEXT
from plait.dag import Dag
from plait.errors import CallError, DagPause, NsrefError, PlaitError
from plait.records import NodeStatus, RunStatus

#: what a call's records name as the executor of an entry run by ``ctx.call``
CALLER_THREAD = "caller-thread"


def entry_plan(state: RunState, caller: str, nsref: str) -> Plan:
    """A one-node plan of the entry ``nsref`` in the namespace of ``state``'s DAG."""
    dag = state.plan.dag
    try:
        nsnode = dag.namespace.get(nsref)
    except NsrefError as exc:
        known = ", ".join(dag.namespace.nsrefs()) or "none"
        raise CallError(
            f"node {caller!r}: ctx.call({nsref!r}): {exc} in the namespace of DAG "
            f"{dag.nsref!r} (entries: {known})"
        ) from None
    sub = Dag(f"call:{nsref}", namespace=dag.namespace)
    sub.node(nsnode, label=nsnode.name)
    return sub.plan()


def sub_run(
    env: Environment, state: RunState, caller: str, nsref: str, kwargs: dict[str, Any]
) -> RunState:
    """The state of a new call sub-run (its inputs checked: an InputError names them)."""
    plan = entry_plan(state, caller, nsref)
    label = plan.labels[0]
    inputs = {label: kwargs}
    plan.structure_inputs(inputs, stored=state.prov.stores_values)
    calls = state.calls
    n = calls[caller] = calls.get(caller, 0) + 1
    record = recording.new_run(
        f"{state.run.dag_nsref}/{caller}/call:{nsref}#{n}",
        recording.json_inputs(plan, inputs, state.prov),
        correlation_id=state.run.correlation_id,
        parent_run_id=state.run_id,
    )
    st = RunState(
        plan,
        record,
        inputs,
        state.prov,
        observing=state.observing,
        log_level=state.log_level,
        log_limit=state.log_limit,
    )
    st.env = env
    st.nested = True  # the caller holds a slot of the limiter: do not wait for another
    return st


def _result(st: RunState, status: RunStatus, exc: BaseException | None) -> Any:
    if status is RunStatus.COMPLETED:
        return st.values[st.plan.sinks[0]]
    if exc is not None:
        raise exc
    raise DagPause(f"call sub-run {st.run_id} paused")


async def acall(
    env: Environment, state: RunState, caller: str, nsref: str, kwargs: dict[str, Any]
) -> Any:
    """Run the entry as a sub-run (through the scheduler); its value, or its exception."""
    st = sub_run(env, state, caller, nsref, kwargs)
    status, exc = await scheduler.execute(env, st, {}, copied=False)
    return _result(st, status, exc)


def call(env: Environment, state: RunState, caller: str, nsref: str, kwargs: dict[str, Any]) -> Any:
    """From a worker thread: run the entry in this thread, recorded on the event loop."""
    try:
        anyio.get_current_task()
    except RuntimeError:
        pass  # not on the event loop: good
    else:
        raise CallError(
            f"node {caller!r}: ctx.call({nsref!r}) on the event loop would block it; "
            "an async or @inline node uses await ctx.acall(...)"
        )
    try:
        begin = functools.partial(_begin, env, state, caller, nsref, kwargs)
        st, node, begun = anyio.from_thread.run_sync(begin)
    except RuntimeError as exc:
        if isinstance(exc, PlaitError):
            raise
        raise CallError(
            f"node {caller!r}: ctx.call({nsref!r}) works in the threads of the run's "
            f"executor (not in {type(exc).__name__}: {exc})"
        ) from exc
    args = dict(kwargs)
    if node.context_param is not None:
        args[node.context_param] = st.context_of(node)
    started = time.perf_counter()
    token = CURRENT_CONTEXT.set(st.context_of(node))
    try:
        assert node.call is not None
        if node.is_async:
            value = anyio.from_thread.run(_awaited, node, args)
        else:
            value = call_inline(node.call, args)
    finally:
        CURRENT_CONTEXT.reset(token)
    outcome = value if type(value) is Raised else Returned(value, None, started)
    end = functools.partial(_end, env, st, node, begun, outcome)
    status, error = anyio.from_thread.run(end)
    return _result(st, status, error)


async def _awaited(node: PlanNode, kwargs: dict[str, Any]) -> Any:
    assert node.call is not None
    try:
        return await node.call(**kwargs)
    except Exception as exc:
        return Raised(exc)


def _begin(
    env: Environment, state: RunState, caller: str, nsref: str, kwargs: dict[str, Any]
) -> tuple[RunState, PlanNode, Any]:
    """On the event loop: the sub-run and its node's ``running`` record."""
    st = sub_run(env, state, caller, nsref, kwargs)
    node = st.plan.node(0)
    recording.run_started(env.host, st, {}, copied=False)
    begun = None
    if st.recording:
        where = "async" if node.is_async else CALLER_THREAD
        begun = recording.started(env.host, st, node, st.kwargs_of(node), where)
    st.status[node.index] = NodeStatus.RUNNING
    return st, node, begun


async def _end(
    env: Environment, st: RunState, node: PlanNode, begun: Any, outcome: Returned | Raised
) -> tuple[RunStatus, BaseException | None]:
    """On the event loop: how the entry ended, and the sub-run closed (committed)."""
    if type(outcome) is Raised:
        scheduler.settle_raised(env, st, node, begun, outcome)
        status = RunStatus.PAUSED if outcome.paused else RunStatus.FAILED
        return await scheduler.finish(env, st, status, outcome.error)
    assert isinstance(outcome, Returned)
    st.status[node.index] = NodeStatus.COMPLETED
    if begun is not None:
        rec = recording.completed_after(st, node, begun, outcome.value, outcome.started, None)
        recording.ended(env.host, st, rec)
    st.mark_done(node.index, outcome.value)
    return await scheduler.finish(env, st, RunStatus.COMPLETED, None)
