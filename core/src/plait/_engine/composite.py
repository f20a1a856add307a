"""Composite nodes at run time: map and call nodes run their sub-DAG per element.

Every element is a sub-run of the parent run (nsref ``"<parent>/<label>[<key>]"``), sharing
the parent's :class:`~plait._engine.environment.Environment` (backends, plugin host,
limiter, pause state) by reference. Its run data is its own (stored under its run id,
given back when it resumes), starting from a copy of the parent's. :class:`CompositeRun`
picks the cheapest way to run the elements that keeps the records the run asked for;
every node of an element is called through :mod:`plait._engine.attempt`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import anyio
import anyio.abc
import anyio.lowlevel

from plait._engine import recording, scheduler
from plait._engine.attempt import Raised, call_element_node, call_inline
from plait._engine.environment import Environment
from plait._engine.run import (
    CHECKPOINT_EVERY,
    COMPOSITES,
    NOT_DONE,
    Prefill,
    RunState,
    next_log_seqs,
    restorable,
)
from plait._plan import Plan, PlanNode
from plait.context import CURRENT_CONTEXT, DagContext
from plait.converter import structure
from plait.dag import MapNode, SwitchNode
from plait.errors import CompositeError, DagPause, MapInputError
from plait.records import MapProgress, NodeRecord, NodeStatus, RunRecord, RunStatus


async def run_composite(
    env: Environment, state: RunState, node: PlanNode, kwargs: dict[str, Any]
) -> Any:
    """Execute a map, call or switch node: its sub-DAG once per element (or once; a switch
    runs the branch its key chooses)."""
    comp = node.node
    assert isinstance(comp, COMPOSITES)
    if isinstance(comp, SwitchNode):
        key, value, branch = comp.route(_first(kwargs))
        if state.record_values:
            recording.branches_skipped(state, node, [k for k in comp.branches if k != key])
        plan = comp.plan_of(branch)
        job = CompositeRun(env, state, node, plan, keys=[key], elems=[value])
        await job.run()
        return job.results[0]
    plan = comp.sub_plan()
    if not isinstance(comp, MapNode):
        job = CompositeRun(env, state, node, plan, keys=[None], elems=[_first(kwargs)])
        await job.run()
        return job.results[0]
    items = _first(kwargs) if kwargs else []
    if isinstance(items, Mapping):
        keys: list[Any] = list(items.keys())
        elems = list(items.values())
    elif isinstance(items, list | tuple):
        keys = list(range(len(items)))
        elems = list(items)
    else:
        raise MapInputError(
            f"map node {node.label!r} needs a list or a dict from its upstream, "
            f"got {type(items).__qualname__}"
        )
    job = CompositeRun(env, state, node, plan, keys=keys, elems=elems, limit=comp.max_concurrency)
    await job.run()
    if comp.flatten:
        return _flattened(node, keys, job.results)
    if isinstance(items, Mapping):
        return dict(zip(keys, job.results, strict=True))
    return job.results


def _flattened(node: PlanNode, keys: list[Any], results: list[Any]) -> list[Any]:
    """The elements' lists joined in order (``flatten=True``)."""
    flat: list[Any] = []
    for key, result in zip(keys, results, strict=True):
        if not isinstance(result, list | tuple):
            raise MapInputError(
                f"map node {node.label!r} (flatten=True): element {key!r} returned "
                f"{type(result).__qualname__}, not a list"
            )
        flat.extend(result)
    return flat


def _first(kwargs: dict[str, Any]) -> Any:
    return next(iter(kwargs.values()), None)


class _SubFailure:
    """A node of an element's sub-DAG failed (``run_id``: the sub-run, if any)."""

    __slots__ = ("exc", "label", "run_id")

    def __init__(self, label: str | None, exc: BaseException | None, run_id: str | None) -> None:
        self.label = label
        self.exc = exc
        self.run_id = run_id


# how the elements of one composite execution run
_LEAN_SYNC: Final = "lean-sync"  # all @inline, nothing observes: plain calls, no records
_SYNC: Final = "sync"  # all @inline, recorded: a sub-run each, run in this task, no tasks
_LEAN_ASYNC: Final = "lean-async"  # a chain, nothing observes: awaited calls, no records
_FULL: Final = "full"  # anything else: a sub-run each through the scheduler


def _mode(state: RunState, plan: Plan) -> str:
    nodes = plan.nodes
    lean = not state.recording and all(
        n.context_param is None
        and not isinstance(n.node, COMPOSITES)
        and n.retries == 0
        and n.timeout is None
        for n in nodes
    )
    if all(n.fast_inline for n in nodes):
        return _LEAN_SYNC if lean else _SYNC
    chain = all(len(n.successors) <= 1 and n.n_upstream <= 1 for n in nodes)
    return _LEAN_ASYNC if lean and chain else _FULL


class CompositeRun:
    """One execution of a map node (or a call node: one element with key ``None``).

    Every element is a sub-run of the parent run (nsref ``"<parent>/<label>[<key>]"``). When
    nothing records or observes the sub-runs, elements skip the records altogether: an
    ``@inline`` sub-DAG is then a loop of plain calls. Elements of a recorded ``@inline``
    sub-DAG run one after the other in this task, each committed (its sub-run and node
    records in one transaction) before the next starts. Other sub-DAGs run on at most
    ``limit`` (and the runner's ``max_concurrency``) worker tasks, each taking the next
    element when it is done.
    """

    def __init__(
        self,
        env: Environment,
        state: RunState,
        node: PlanNode,
        plan: Plan,
        *,
        keys: list[Any],
        elems: list[Any],
        limit: int | None = None,
    ) -> None:
        self.env = env
        self.state = state
        self.node = node
        self.plan = plan
        self.keys = keys
        self.elems = elems
        self.total = len(elems)
        self.limit = limit
        self.is_map = isinstance(node.node, MapNode)
        #: element sub-runs are named by their key: a map's elements, a switch's branch
        self.keyed = self.is_map or isinstance(node.node, SwitchNode)
        self.results: list[Any] = [None] * self.total
        self.finished = 0
        self.next = 0
        self.stop = False
        self.failures: list[tuple[int, _SubFailure]] = []
        self.paused: list[int] = []
        self.tg: anyio.abc.TaskGroup | None = None
        source = plan.nodes[plan.sources[0]]
        self.source = source.label
        self.param = source.input_params[0].name if source.input_params else None
        self.sink = plan.nodes[plan.sinks[0]]
        self.sub_runs = state.sub_runs or None
        self.todo: Sequence[int] = range(self.total)
        #: restart: element -> (its sub-run, that sub-run's node records, its run data, its
        #: own sub-runs)
        #: element -> its prior sub-run, node records, run data, child runs, log seqs
        self.resume: dict[
            int,
            tuple[
                RunRecord, list[NodeRecord], dict[str, Any], dict[str, RunRecord], dict[str, int]
            ],
        ] = {}
        self.mode = _mode(state, plan)
        self.order = [plan.nodes[i] for i in plan.order]
        #: the element and node a lean ``@inline`` element is at (see :meth:`context_of`)
        self.at = 0
        self.at_node = self.order[0]

    def context_of(self, where: tuple[int, PlanNode] | None) -> DagContext:
        """The context of a node of an element that has no run of its own (nothing records
        it): it names the element's sub-DAG and the parent run. ``where`` is the element and
        the node, or ``None`` for the ones a lean ``@inline`` element is at."""
        i, pn = (self.at, self.at_node) if where is None else where
        return DagContext(dag_nsref=self._nsref(i), node_label=pn.label, run_id=self.state.run_id)

    # ------------------------------------------------------------------ driving
    async def run(self) -> None:
        if self.sub_runs:
            await self._prepare_restart()
        if self.mode in (_LEAN_SYNC, _SYNC) or len(self.todo) <= 1:
            await self._run_here()
        else:
            workers = len(self.todo)
            for bound in (self.limit, self.env.max_concurrency):
                if bound is not None:
                    workers = min(workers, bound)
            async with anyio.create_task_group() as tg:
                self.tg = tg
                for _ in range(workers):
                    tg.start_soon(self._worker)
            self.tg = None
        if self.failures:
            raise self._error()
        if self.finished < self.total:
            await self._raise_paused()

    async def _raise_paused(self) -> None:
        if self.state.stopping and not self.state.paused:
            await anyio.lowlevel.checkpoint()  # the parent is failing: take its cancel
        head = f"{self.node.kind} node {self.node.label!r}"
        if not self.is_map:
            raise DagPause(f"{head}: sub-DAG {self.plan.dag.nsref!r} paused")
        what = f"element {self.keys[self.paused[0]]!r} paused" if self.paused else "paused"
        raise DagPause(f"{head}: {what} after {self.finished} of {self.total} elements")

    async def _run_here(self) -> None:
        """Every element in this task, one after the other (checkpointing now and then)."""
        token = CURRENT_CONTEXT.set((self, None))  # lean @inline elements: see context_of
        single = self.order[0].call if len(self.order) == 1 else None
        try:
            if self.mode == _LEAN_SYNC and single is not None and not self.resume:
                await self._run_single_here(single)
            else:
                await self._run_elements_here()
        finally:
            CURRENT_CONTEXT.reset(token)
        if self.state.record_values:
            await self.state.prov.commit()

    async def _run_single_here(self, call: Callable[..., Any]) -> None:
        """The elements of a one-node ``@inline`` sub-DAG that nothing records: one plain
        call each (the hot loop of a lean map)."""
        state = self.state
        param = self.param
        elems = self.elems
        since = 0
        for i in self.todo:
            if self.stop or state.stopping:
                break
            self.at = i
            value = call_inline(call, {param: elems[i]} if param is not None else {})
            if type(value) is Raised:
                self._raised(i, self.at_node.label, value)
            else:
                self._completed(i, value)
            since += 1
            if since >= CHECKPOINT_EVERY:
                since = 0
                await anyio.lowlevel.checkpoint()

    async def _run_elements_here(self) -> None:
        state = self.state
        mode = self.mode
        since = 0
        for i in self.todo:
            if self.stop or state.stopping:
                break
            if i in self.resume:
                await self._element_full(i)
            elif mode == _LEAN_SYNC:
                self.at = i
                value = self._lean_sync(self.elems[i])
                if type(value) is Raised:
                    self._raised(i, self.at_node.label, value)
                else:
                    self._completed(i, value)
            elif mode == _SYNC:
                self._element_sync(i)
                if state.record_values:
                    # durable before the next element starts: after a crash, at most the
                    # element in flight runs again
                    await state.prov.commit()
            elif mode == _LEAN_ASYNC:
                await self._element_lean_async(i)
            else:
                await self._element_full(i)
            since += 1
            if since >= CHECKPOINT_EVERY:
                since = 0
                if state.record_values:
                    await state.prov.commit()
                await anyio.lowlevel.checkpoint()

    async def _prepare_restart(self) -> None:
        """Reuse the outputs of completed sub-runs; note where the others stopped.

        Reads the store one element at a time, before any element runs.
        """
        assert self.sub_runs is not None
        prov = self.state.prov
        sink = self.sink
        todo = []
        for i in range(self.total):
            prior = self.sub_runs.get(self._nsref(i))
            if prior is None:
                todo.append(i)
                continue
            records = await prov.get_node_executions(prior.run_id)
            if prior.status is RunStatus.COMPLETED:
                out = next(
                    (
                        r
                        for r in records
                        if r.label == sink.label and r.restorable and r.status.has_output
                    ),
                    None,
                )
                if out is not None:
                    where = f"run {prior.run_id} node {out.label!r} output"
                    self._completed(i, structure(out.output, sink.output_type, where=where))
                    continue
            data = await prov.load_run_data(prior.run_id)
            children = await prov.list_runs(parent_run_id=prior.run_id)
            seqs = await next_log_seqs(prov, prior.run_id) if self.state.capture else {}
            self.resume[i] = (prior, records, data, {r.dag_nsref: r for r in children}, seqs)
            todo.append(i)
        self.todo = todo

    async def _worker(self) -> None:
        state = self.state
        lean = self.mode == _LEAN_ASYNC
        todo = self.todo
        while self.next < len(todo) and not self.stop and not state.stopping:
            i = todo[self.next]
            self.next += 1
            if lean and i not in self.resume:
                await self._element_lean_async(i)
            else:
                await self._element_full(i)

    # ------------------------------------------------------------------ outcomes
    def _completed(self, i: int, value: Any) -> None:
        self.results[i] = value
        self._progress(i, NodeStatus.COMPLETED)

    def _raised(self, i: int, label: str, raised: Raised) -> None:
        if raised.paused:
            self._paused(i)
        else:
            self._failed(i, _SubFailure(label, raised.error, None))

    def _failed(self, i: int, failure: _SubFailure) -> None:
        self.failures.append((i, failure))
        self._progress(i, NodeStatus.FAILED)
        if self.env.fail_fast:
            self.stop = True
            if self.tg is not None:
                self.tg.cancel_scope.cancel()

    def _paused(self, i: int) -> None:
        self.paused.append(i)
        self.stop = True

    def _progress(self, i: int, status: NodeStatus) -> None:
        self.finished += 1
        state = self.state
        if self.is_map and state.observing:
            self.env.host.on_map_progress(
                MapProgress(
                    run_id=state.run_id,
                    label=self.node.label,
                    key=str(self.keys[i]),
                    done=self.finished,
                    total=self.total,
                    status=status,
                )
            )

    def _error(self) -> CompositeError:
        i, first = self.failures[0]
        node = self.node
        key = self.keys[i]
        what = f"element {key!r}" if self.is_map else f"sub-DAG {self.plan.dag.nsref!r}"
        where = f" at node {first.label!r}" if first.label else ""
        run = f" (sub-run {first.run_id})" if first.run_id else ""
        exc = first.exc
        cause = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        message = f"{node.kind} node {node.label!r}: {what} failed{where}{run}{cause}"
        positions = sorted(j for j, _ in self.failures)
        if len(positions) > 1:
            others = [repr(self.keys[j]) for j in positions if j != i]
            more = ", ..." if len(others) > 5 else ""
            message += f" (and {len(others)} more failed elements: {', '.join(others[:5])}{more})"
        err = CompositeError(
            message,
            node=node.label,
            key=key,
            failed_keys=[self.keys[j] for j in positions],
            sub_run_id=first.run_id,
        )
        err.__cause__ = exc
        return err

    # ------------------------------------------------------------------ one element
    def _nsref(self, i: int) -> str:
        base = f"{self.state.run.dag_nsref}/{self.node.label}"
        return f"{base}[{self.keys[i]}]" if self.keyed else base

    def _inputs(self, i: int) -> dict[str, dict[str, Any]]:
        return {self.source: {self.param: self.elems[i]}} if self.param is not None else {}

    def _lean_sync(self, arg: Any) -> Any:
        """The sub-DAG as plain calls, in topological order (every node is ``@inline``): the
        sink's value, or :class:`Raised` (``at_node`` is then the node that raised)."""
        param = self.param
        order = self.order
        values: list[Any] = [None] * len(order)
        source = self.plan.sources[0]
        for pn in order:
            kwargs = _lean_kwargs(pn, values, source, param, arg)
            assert pn.call is not None
            self.at_node = pn
            value = call_inline(pn.call, kwargs)
            if type(value) is Raised:
                return value
            values[pn.index] = value
        return values[self.sink.index]

    async def _element_lean_async(self, i: int) -> None:
        """A chain sub-DAG as awaited calls (the runner's limiter bounds non-inline nodes)."""
        limiter = self.env.limiter
        param = self.param
        arg = self.elems[i]
        source = self.plan.sources[0]
        values: list[Any] = [None] * len(self.order)
        for pn in self.order:
            kwargs = _lean_kwargs(pn, values, source, param, arg)
            if limiter is not None and not pn.inline:
                async with limiter:
                    value = await call_element_node(self.env, pn, kwargs, (self, (i, pn)))
            else:
                value = await call_element_node(self.env, pn, kwargs, (self, (i, pn)))
            if type(value) is Raised:
                self._raised(i, pn.label, value)
                return
            values[pn.index] = value
        self._completed(i, values[self.sink.index])

    def _sub_run(
        self, i: int, record: RunRecord | None = None, data: dict[str, Any] | None = None
    ) -> RunState:
        """The state of element ``i``'s sub-run (a new one unless ``record`` resumes one)."""
        state = self.state
        inputs = self._inputs(i)
        if record is None:
            record = recording.new_run(
                self._nsref(i),
                recording.json_inputs(self.plan, inputs, state.prov),
                correlation_id=state.run.correlation_id,
                parent_run_id=state.run_id,
            )
        st = RunState(
            self.plan,
            record,
            inputs,
            state.prov,
            observing=state.observing,
            log_level=state.log_level,
            log_limit=state.log_limit,
        )
        st.env = self.env
        if state.data:
            st.data.update(state.data)
        if data:
            st.data.update(data)  # as DagRunner.restart gives a run its data back
        return st

    def _element_sync(self, i: int) -> None:
        """A recorded sub-run of an all-``@inline`` sub-DAG, in this task; not committed."""
        env = self.env
        st = self._sub_run(i)
        recording.run_started(env.host, st, {}, copied=False)
        values = st.values
        for pn in self.order:
            if st.paused or (st.failure is not None and env.fail_fast):
                break
            if any(values[u] is NOT_DONE for u in pn.upstreams):
                continue  # downstream of a failure (continue mode)
            scheduler.run_inline(env, st, pn)
        if st.failure is not None:
            status = RunStatus.FAILED
        elif st.paused:
            status = RunStatus.PAUSED
        else:
            status = RunStatus.COMPLETED
        failure = st.failure
        recording.run_closed(st, status, failure[1] if failure else None)
        if st.observing:
            env.host.on_run_finish(st.run)
        if failure is not None:
            self._failed(i, _SubFailure(failure[0].label, failure[1], st.run_id))
        elif status is RunStatus.PAUSED:
            self._paused(i)
        else:
            self._completed(i, values[self.sink.index])

    async def _element_full(self, i: int) -> None:
        """A sub-run through the scheduler; on a restart, resumed in place or reused."""
        resume = self.resume.get(i)
        prefill: Prefill = {}
        if resume is None:
            st = self._sub_run(i)
        else:
            prior, records, data, children, seqs = resume
            prefill = restorable(self.plan, prior, records, rerun=set())
            st = self._sub_run(i, recording.resumed(prior), data)
            st.sub_runs = children
            st.restore({}, {rec.label: rec.attempt for rec in records}, seqs)
        status, exc = await scheduler.execute(self.env, st, prefill, copied=False)
        if status is RunStatus.COMPLETED:
            self._completed(i, st.values[self.sink.index])
        elif status is RunStatus.PAUSED:
            self._paused(i)
        else:
            failed = st.failure[0].label if st.failure else None
            self._failed(i, _SubFailure(failed, exc, st.run_id))


def _lean_kwargs(
    pn: PlanNode, values: list[Any], source: int, param: str | None, arg: Any
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if pn.index == source and param is not None:
        kwargs[param] = arg
    for up, name, collect in pn.bindings:
        if collect:
            kwargs.setdefault(name, []).append(values[up])
        else:
            kwargs[name] = values[up]
    return kwargs
