"""Scheduling a run: the ready queue, the chain a task keeps, the inline fast path.

A node starts the moment its last upstream completes. Cheap ``@inline`` nodes run right in
the scheduling task (no task spawned, no thread hop, no outcome object unless they raise);
everything else runs in a task of the run's task group, and a task whose node finished
runs the first newly ready node itself (a chain runs in one task). The first failure
cancels the task group (fail-fast). Work per node is O(its edges). Outcomes of attempts
come back here as values and are recorded here.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel

from plait._engine import recording
from plait._engine.attempt import Raised, Returned, attempt, call_inline
from plait._engine.environment import Environment
from plait._engine.run import CHECKPOINT_EVERY, COMPOSITES, NOT_DONE, Prefill, RunState
from plait._plan import PlanNode
from plait.context import CURRENT_CONTEXT
from plait.logcapture import NodeLines, lines_of
from plait.records import NodeRecord, NodeStatus, RunStatus


async def execute(
    env: Environment, state: RunState, prefill: Prefill, *, copied: bool
) -> tuple[RunStatus, BaseException | None]:
    """Run ``state``'s plan to its end; record it and say how it ended (and why)."""
    state.env = env
    recording.run_started(env.host, state, prefill, copied=copied)
    state.prefill(prefill, copied=copied)
    if state.record_values:
        await state.prov.commit()
    env.active.append(state)
    if env.pause_requested:
        state.pause()
    try:
        async with anyio.create_task_group() as tg:
            state.tg = tg
            await drain(env, state)
    except BaseException as exc:
        # the caller cancelled us (or KeyboardInterrupt): record and re-raise
        interrupted = _interrupted(exc)
        cancelled = interrupted or isinstance(exc, anyio.get_cancelled_exc_class())
        with anyio.CancelScope(shield=True):
            await finish(env, state, RunStatus.CANCELLED if cancelled else RunStatus.FAILED, exc)
        if interrupted and not isinstance(exc, KeyboardInterrupt):
            # trio delivers Ctrl-C inside a node's task: the caller gets it as it was sent
            raise KeyboardInterrupt from exc
        raise
    finally:
        env.active.remove(state)
    if state.failure is not None:
        return await finish(env, state, RunStatus.FAILED, state.failure[1])
    if all(v is not NOT_DONE for v in state.values):
        return await finish(env, state, RunStatus.COMPLETED, None)
    return await finish(env, state, RunStatus.PAUSED, None)


def _interrupted(exc: BaseException) -> bool:
    """Is ``exc`` a KeyboardInterrupt, or a group of exceptions holding one?"""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return False


async def finish(
    env: Environment, state: RunState, status: RunStatus, exc: BaseException | None
) -> tuple[RunStatus, BaseException | None]:
    recording.run_closed(state, status, exc)
    if state.record_values:
        await state.prov.commit()
    if state.observing:
        env.host.on_run_finish(state.run)
    return status, exc


async def drain(env: Environment, state: RunState, *, keep: bool = False) -> PlanNode | None:
    """Start every ready node: fast inline nodes right here, others as tasks.

    With ``keep``, the first node that needs a task of its own is returned instead of
    started: the calling task (one whose node has just finished) runs it next.
    """
    ready = state.ready
    plan = state.plan
    specs = plan.specs
    tg = state.tg
    assert tg is not None
    inline_ok = env.limiter is None
    since_checkpoint = 0
    kept: PlanNode | None = None
    while ready and not state.stopping:
        i = ready.popleft()
        if specs[i].fast_inline and inline_ok:
            run_inline_at(env, state, i)
            if state.record_values:
                await state.prov.commit()
            since_checkpoint += 1
            if since_checkpoint >= CHECKPOINT_EVERY:
                since_checkpoint = 0
                await anyio.lowlevel.checkpoint()
        elif keep and kept is None:
            kept = plan.node(i)
        else:
            node = plan.node(i)
            tg.start_soon(run_task, env, state, node, name=f"plait node {node.label}")
    return kept


async def run_task(env: Environment, state: RunState, node: PlanNode) -> None:
    """Run ``node``, then start what it made ready. Of those, the first that needs a task
    is run by this one, not a new one: a chain runs in one task, while a fan-out's other
    branches get tasks of their own and run concurrently."""
    limiter = env.limiter
    ran = 0
    next_node: PlanNode | None = node
    while next_node is not None:
        node = next_node
        if ran == CHECKPOINT_EVERY:
            # a chain of nodes that never await (async ones, say) still lets others run
            ran = 0
            await anyio.lowlevel.checkpoint()
        if state.stopping:
            return
        ran += 1
        if limiter is not None and not isinstance(node.node, COMPOSITES) and not state.nested:
            async with limiter:
                if not state.stopping:  # pause() or a failure may come while we wait
                    await run_node(env, state, node)
        else:
            await run_node(env, state, node)
        next_node = await drain(env, state, keep=True)  # starts nothing once stopping


def where(env: Environment, node: PlanNode) -> str:
    """What a node's records name as its executor."""
    if isinstance(node.node, COMPOSITES):
        return node.kind
    if node.is_async:
        return "async"
    if node.inline:
        return "inline"
    return env.executor_label(node.executor)


async def run_node(env: Environment, state: RunState, node: PlanNode) -> None:
    """Attempt ``node`` (with its timeout and retries) and record how that ended."""
    kwargs = state.kwargs_of(node)
    begun = None
    if state.recording:
        begun = recording.started(env.host, state, node, kwargs, where(env, node))
    state.status[node.index] = NodeStatus.RUNNING
    if state.record_values:
        # durable before the call: after a crash the store shows what was in flight
        await state.prov.commit()
    try:
        outcome = await attempt(env, state, node, kwargs)
    except anyio.get_cancelled_exc_class() as exc:
        state.status[node.index] = NodeStatus.CANCELLED
        if begun is not None:
            if state.capture:  # what a node on the loop logged before it was cancelled
                own = [
                    x for x in lines_of(exc) if x.run_id == state.run_id and x.label == node.label
                ]
                recording.logged(state, node, own)
            recording.ended(env.host, state, recording.ending(begun, NodeStatus.CANCELLED))
        raise
    if outcome.lines:
        recording.logged(state, node, outcome.lines)
    if type(outcome) is Returned:
        state.status[node.index] = NodeStatus.COMPLETED
        if begun is not None:
            rec = recording.completed_after(
                state, node, begun, outcome.value, outcome.started, outcome.placement
            )
            recording.ended(env.host, state, rec)
        state.mark_done(node.index, outcome.value)
        if state.record_values:
            await state.prov.commit()
    else:
        assert isinstance(outcome, Raised)
        settle_raised(env, state, node, begun, outcome)


def settle_raised(
    env: Environment, state: RunState, node: PlanNode, begun: NodeRecord | None, outcome: Raised
) -> None:
    """``node`` raised: it paused the run, or it failed (fail-fast stops the run)."""
    state.status[node.index] = NodeStatus.PAUSED if outcome.paused else NodeStatus.FAILED
    if begun is not None:
        recording.ended(env.host, state, recording.raised(begun, outcome))
    if outcome.paused:
        state.pause()
    else:
        state.fail(node, outcome.error, fail_fast=env.fail_fast)


def run_inline_at(env: Environment, state: RunState, idx: int) -> None:
    """:func:`run_inline` the node of index ``idx``; when nothing records or observes the
    run, from the plan's columns, without the node's :class:`PlanNode` (unless it raises):
    the path of every node of a long ``@inline`` chain."""
    plan = state.plan
    if state.recording:
        run_inline(env, state, plan.node(idx))
        return
    spec = plan.specs[idx]
    kwargs = state.kwargs_at(idx)
    state.status[idx] = NodeStatus.RUNNING
    context = spec.context_param
    token = CURRENT_CONTEXT.set(kwargs[context] if context else (state, idx))
    try:
        assert spec.call is not None
        value = call_inline(spec.call, kwargs)
    finally:
        CURRENT_CONTEXT.reset(token)
    if type(value) is Raised:
        settle_raised(env, state, plan.node(idx), None, value)
        return
    state.status[idx] = NodeStatus.COMPLETED
    state.mark_done(idx, value)


def run_inline(env: Environment, state: RunState, node: PlanNode) -> None:
    """The fast path of an ``@inline`` node without retries or timeout: called right here.

    It is recorded once, when it has ended: the store learns when it started from
    ``started_at``. Unless hooks watch, no running record is even built.
    """
    idx = node.index
    kwargs = state.kwargs_of(node)
    begun: NodeRecord | None = None
    began: tuple[datetime, dict[str, Any] | None] | None = None
    if state.observing:
        begun = recording.started(env.host, state, node, kwargs, "inline", buffered=False)
    elif state.record_values:
        began = recording.begin(state, node, kwargs)
    state.status[idx] = NodeStatus.RUNNING
    started_at = time.perf_counter()
    token = CURRENT_CONTEXT.set(kwargs[node.context_param] if node.context_param else (state, node))
    try:
        assert node.call is not None
        if state.capture:
            value = _inline_logged(state, node, kwargs)
        else:
            value = call_inline(node.call, kwargs)
    finally:
        CURRENT_CONTEXT.reset(token)
    if type(value) is Raised:
        if began is not None:
            begun = recording.running(state, node, *began, "inline")
        settle_raised(env, state, node, begun, value)
        return
    state.status[idx] = NodeStatus.COMPLETED
    if begun is not None:
        rec = recording.completed_after(state, node, begun, value, started_at, None)
        recording.ended(env.host, state, rec)
    elif began is not None:
        begun_at, inputs = began
        rec = recording.completed(
            state, node, state.attempts[idx], inputs, begun_at, "inline", value, started_at, None
        )
        state.prov.write_nodes((rec,))
    state.mark_done(idx, value)


def _inline_logged(state: RunState, node: PlanNode, kwargs: dict[str, Any]) -> Any:
    """:func:`call_inline` keeping the node's log lines (written before its record)."""
    assert node.call is not None
    assert state.log_level is not None
    idx = node.index
    lines = NodeLines(
        state.run_id,
        node.label,
        state.attempts[idx],
        state.log_seq[idx],
        state.log_level,
        state.log_limit,
    )
    with lines:
        value = call_inline(node.call, kwargs)
    if lines.head:
        recording.logged(state, node, lines.records())
    return value
