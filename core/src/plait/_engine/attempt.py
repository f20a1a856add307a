"""One attempt of one node: the call, its timeout, its retries with backoff, a pause.

Every node and every map/call element is called here, and how the call ended comes back
as one value (as pytest's ``CallInfo`` does): :class:`Returned` (the value, where it ran,
when the attempt began) or :class:`Raised` (the exception; ``paused`` when it is a
:class:`~plait.errors.DagPause`). Cancellation is not an outcome: it propagates, and the
caller records the node as cancelled on its way out.

The cheapest nodes (``@inline`` ones, lean map elements) are called by
:func:`call_inline`, which returns the value itself when the call returned: no outcome
object is built on that path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from plait._engine.environment import Environment
from plait._engine.run import COMPOSITES, RunState
from plait._plan import PlanNode
from plait.context import CURRENT_CONTEXT, DagContext
from plait.errors import DagPause, NodeTimeoutError
from plait.executors import CallResult, NodeCall, Placement
from plait.logcapture import LogCapture, emit, lines_of
from plait.records import LogRecord


class Raised:
    """An attempt that raised ``error``: ``paused`` if it asked the run to pause; ``lines``
    are the log lines its tries kept."""

    __slots__ = ("error", "lines", "paused")

    def __init__(self, error: Exception, lines: Sequence[LogRecord] = ()) -> None:
        self.error = error
        self.paused = isinstance(error, DagPause)  # the one place a pause is recognised
        self.lines = lines


class Returned:
    """An attempt that returned ``value``; ``placement`` says where it ran (``None``: on
    the event loop, or nothing asked); ``started`` is its ``time.perf_counter()`` start;
    ``lines`` are the log lines its tries kept."""

    __slots__ = ("lines", "placement", "started", "value")

    def __init__(
        self,
        value: Any,
        placement: Placement | None,
        started: float,
        lines: Sequence[LogRecord] = (),
    ) -> None:
        self.value = value
        self.placement = placement
        self.started = started
        self.lines = lines


Outcome = Returned | Raised


def call_inline(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Call ``fn(**kwargs)`` here: its value, or :class:`Raised` when it raised."""
    try:
        return fn(**kwargs)
    except Exception as exc:
        return Raised(exc)


async def attempt(
    env: Environment, state: RunState, node: PlanNode, kwargs: dict[str, Any]
) -> Outcome:
    """Call ``node`` until it returns, pauses, or fails with no retry left.

    Each failed try waits ``retry_backoff * 2**n`` seconds and counts one attempt more in
    the run (unless the run is stopping). Cancellation propagates.
    """
    retries_left = node.retries
    delay = node.retry_backoff
    kept: list[LogRecord] = []  # the log lines of every try
    while True:
        started = time.perf_counter()
        logs = state.log_capture(node, len(kept)) if state.capture else None
        try:
            if node.timeout is None:
                value, placement, lines = await _call(env, state, node, kwargs, logs)
            else:
                value, placement, lines = await _timed_call(env, state, node, kwargs, logs)
        except Exception as exc:
            shipped = lines_of(exc)
            emit(shipped)  # a worker process's lines print here (once, above any display)
            kept.extend(shipped)
            raised = Raised(exc, kept)
            if raised.paused or retries_left == 0 or state.stopping:
                return raised
            retries_left -= 1
            state.attempts[node.index] += 1
            await anyio.sleep(delay)
            delay *= 2
            continue
        if lines:
            emit(lines)
            kept.extend(lines)
        return Returned(value, placement, started, kept)


async def _timed_call(
    env: Environment,
    state: RunState,
    node: PlanNode,
    kwargs: dict[str, Any],
    logs: LogCapture | None,
) -> CallResult:
    assert node.timeout is not None
    try:
        with anyio.fail_after(node.timeout):
            return await _call(env, state, node, kwargs, logs)
    except TimeoutError as exc:
        raise NodeTimeoutError(f"node {node.label!r} timed out after {node.timeout} s") from exc


async def _call(
    env: Environment,
    state: RunState,
    node: PlanNode,
    kwargs: dict[str, Any],
    logs: LogCapture | None,
) -> CallResult:
    """One call of ``node``: a composite's elements, a coroutine or an ``@inline`` function
    on the loop, anything else through its executor as a :class:`NodeCall`. ``logs`` says
    which log lines to keep (collected where the call runs)."""
    if isinstance(node.node, COMPOSITES):
        return await env.run_composite(env, state, node, kwargs), None, ()
    function = node.call
    assert function is not None
    ctx: DagContext | None = kwargs[node.context_param] if node.context_param else None
    if not (node.is_async or node.inline):
        call = NodeCall(
            label=node.label,
            function=function,
            arguments=kwargs,
            context=ctx or state.context_of(node),
            # no record to say where it ran: the worker is not asked
            record_placement=state.recording,
            logs=logs,
        )
        return await env.executor(node.executor).run(call)
    token = CURRENT_CONTEXT.set(ctx or (state, node))
    try:
        if logs is None:
            if node.is_async:
                return await function(**kwargs), None, ()
            return function(**kwargs), None, ()
        with logs.collect() as collected:
            value = await function(**kwargs) if node.is_async else function(**kwargs)
        return value, None, collected.records()
    finally:
        CURRENT_CONTEXT.reset(token)


async def call_element_node(
    env: Environment, node: PlanNode, kwargs: dict[str, Any], context: Any
) -> Any:
    """Call a node of a map/call element that has no run of its own (nothing records it):
    its value, or :class:`Raised`. ``context`` is what :func:`plait.current_context` answers
    (a DagContext, or a ``(source, node)`` pair that builds one)."""
    function = node.call
    assert function is not None
    if node.is_async or node.inline:
        token = CURRENT_CONTEXT.set(context)
        try:
            if node.is_async:
                return await function(**kwargs)
            return function(**kwargs)
        except Exception as exc:
            return Raised(exc)
        finally:
            CURRENT_CONTEXT.reset(token)
    if type(context) is tuple:
        source, where = context
        context = source.context_of(where)
    call = NodeCall(label=node.label, function=function, arguments=kwargs, context=context)
    try:
        value, _placement, _lines = await env.executor(node.executor).run(call)
    except Exception as exc:
        return Raised(exc)
    return value
