"""One run in flight: its values, statuses, attempts, ready set and run data. One owner:
only the event loop thread mutates it, through the scheduler and the composite runs."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio.abc

from plait._plan import Plan, PlanNode, spelled
from plait.context import DagContext
from plait.converter import JSON_SCALARS, json_equal, structure, to_json_safe
from plait.dag import CompositeNode
from plait.errors import RestartError
from plait.introspect import EMPTY, type_name
from plait.logcapture import DEFAULT_LIMIT, LogCapture
from plait.protocols import ProvenanceBackend
from plait.records import NodeRecord, NodeStatus, RunRecord

#: the value of a node that has not produced one
NOT_DONE: Final = object()
#: a task running nodes that never await lets others run after this many
CHECKPOINT_EVERY: Final = 64
HOST: Final = socket.gethostname()
#: the nodes that run a sub-DAG (per element, or once)
COMPOSITES: Final = CompositeNode

#: the node type of a switch branch's record (see ``recording.branches_skipped``)
SKIPPED_BRANCH: Final = "branch"

#: node index -> its restored output and the record it came from (restart, replay)
Prefill = dict[int, tuple[Any, NodeRecord]]


class RunState:
    """Everything about one run in flight."""

    def __init__(
        self,
        plan: Plan,
        run: RunRecord,
        inputs: Mapping[str, Mapping[str, Any]],
        prov: ProvenanceBackend,
        *,
        observing: bool,
        log_level: int | None = None,
        log_limit: int = DEFAULT_LIMIT,
    ) -> None:
        n = len(plan)
        self.plan = plan
        self.run = run
        self.run_id = run.run_id
        self.inputs = inputs
        self.prov = prov
        self.record_values = bool(getattr(prov, "stores_values", False))
        self.observing = observing
        self.recording = self.record_values or observing
        #: nodes' log lines are kept (the store keeps values and a level is set)
        self.capture = self.record_values and log_level is not None
        self.log_level = log_level
        self.log_limit = log_limit
        #: per node, the ``seq`` of its next log line
        self.log_seq: list[int] = [0] * n
        self.values: list[Any] = [NOT_DONE] * n
        self.status: list[NodeStatus] = [NodeStatus.PENDING] * n
        self.attempts: list[int] = [0] * n
        self.remaining: list[int] = plan.n_upstream.copy()
        self.ready: deque[int] = deque()
        self.data: dict[str, Any] = {}
        self.stopping = False
        self.paused = False
        self.failure: tuple[PlanNode, BaseException] | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        self.sub_runs: dict[str, RunRecord] | None = None  # restart: sub-runs by nsref
        #: the runner's environment (set when the run starts; ``ctx.call`` needs it)
        self.env: Any = None
        #: a sub-run of a ``ctx.call``: its caller holds a limiter slot, it takes none
        self.nested = False
        #: calls made by each node through ``ctx.call`` (numbering their sub-runs)
        self.calls: dict[str, int] = {}

    def set_data(self, key: str, value: Any, json_data: Any) -> None:
        self.data[key] = value
        if self.record_values:
            self.prov.write_run_data(self.run_id, key, json_data)

    def call_entry(self, caller: str, nsref: str, kwargs: dict[str, Any]) -> Any:
        """``ctx.call`` from node ``caller`` (in a worker thread): see plait._engine.calls."""
        from plait._engine import calls  # it imports the scheduler, which imports us

        return calls.call(self.env, self, caller, nsref, kwargs)

    async def acall_entry(self, caller: str, nsref: str, kwargs: dict[str, Any]) -> Any:
        """``await ctx.acall`` from node ``caller``: see plait._engine.calls."""
        from plait._engine import calls

        return await calls.acall(self.env, self, caller, nsref, kwargs)

    def context_of(self, node: PlanNode | int) -> DagContext:
        """The context of ``node`` (or of the node of that index) in this run (of the class
        its parameter asks for)."""
        if type(node) is int:
            node = self.plan.node(node)
        assert isinstance(node, PlanNode)
        cls: type[DagContext] = (
            node.context_type if isinstance(node.context_type, type) else DagContext
        )
        return cls(
            dag_nsref=self.run.dag_nsref, node_label=node.label, run_id=self.run_id, run=self
        )

    def kwargs_of(self, node: PlanNode) -> dict[str, Any]:
        """The arguments of ``node``: its given inputs, its upstreams' values, its context."""
        values = self.values
        kwargs: dict[str, Any] = {}
        given = self.inputs.get(node.label)
        if given:
            kwargs.update(given)
        for up, param, collect in node.bindings:
            if collect:
                kwargs.setdefault(param, []).append(values[up])
            else:
                kwargs[param] = values[up]
        if node.context_param is not None:
            kwargs[node.context_param] = self.context_of(node)
        return kwargs

    def kwargs_at(self, idx: int) -> dict[str, Any]:
        """:meth:`kwargs_of` the node of index ``idx``, from the plan's columns."""
        plan = self.plan
        values = self.values
        bindings = plan.bindings[idx]
        given = self.inputs.get(plan.labels[idx])
        if type(bindings) is str and not given:  # its one upstream feeds one parameter
            kwargs = {bindings: values[plan.upstreams[idx]]}  # type: ignore[index]
        else:
            kwargs = dict(given) if given else {}
            for up, param, collect in plan.bindings_of(idx):
                if collect:
                    kwargs.setdefault(param, []).append(values[up])
                else:
                    kwargs[param] = values[up]
        context = plan.specs[idx].context_param
        if context is not None:
            kwargs[context] = self.context_of(idx)
        return kwargs

    def mark_done(self, idx: int, value: Any) -> None:
        self.values[idx] = value
        remaining = self.remaining
        successors = self.plan.successors[idx]
        if isinstance(successors, int):  # one successor (see plait._plan.Adjacent)
            remaining[successors] -= 1
            if remaining[successors] == 0:
                self.ready.append(successors)
            return
        for s in successors:
            remaining[s] -= 1
            if remaining[s] == 0:
                self.ready.append(s)

    def restore(
        self,
        data: Mapping[str, Any],
        attempts: Mapping[str, int],
        log_seq: Mapping[str, int] | None = None,
    ) -> None:
        """A resumed run gets its run data, its nodes' attempt counts and where their log
        lines go on (see :func:`next_log_seqs`) back."""
        self.data.update(data)
        by_label = self.plan.by_label
        for label, n in attempts.items():
            pn = by_label.get(label)
            if pn is not None:
                self.attempts[pn.index] = n
        for label, seq in (log_seq or {}).items():
            pn = by_label.get(label)
            if pn is not None:
                self.log_seq[pn.index] = seq

    def log_capture(self, node: PlanNode, offset: int = 0) -> LogCapture | None:
        """What to keep of the log lines of ``node``'s current attempt (``None``: nothing;
        ``offset`` lines of it were kept already, by earlier tries)."""
        if not self.capture or isinstance(node.node, COMPOSITES):
            return None
        assert self.log_level is not None
        idx = node.index
        return LogCapture(
            run_id=self.run_id,
            label=node.label,
            attempt=self.attempts[idx],
            first_seq=self.log_seq[idx] + offset,
            level=self.log_level,
            limit=self.log_limit,
        )

    def prefill(self, prefill: Prefill, *, copied: bool) -> None:
        """Restored outputs count as done (``skipped`` when ``copied`` by a replay); every
        other node without pending upstreams is ready."""
        plan = self.plan
        for i, (value, _rec) in prefill.items():
            self.status[i] = NodeStatus.SKIPPED if copied else NodeStatus.COMPLETED
            self.values[i] = value
        for i in prefill:
            for s in spelled(plan.successors[i]):
                self.remaining[s] -= 1
        self.ready.extend(i for i in plan.order if self.remaining[i] == 0 and i not in prefill)

    def fail(self, node: PlanNode, exc: BaseException, *, fail_fast: bool) -> None:
        """``node`` failed: the run's first failure is kept; fail-fast cancels the rest."""
        if self.failure is None:
            self.failure = (node, exc)
        if fail_fast:
            self.stopping = True
            if self.tg is not None:  # None: a map element run synchronously, no tasks
                self.tg.cancel_scope.cancel()

    def pause(self) -> None:
        self.paused = self.stopping = True


def restorable(
    plan: Plan, old: RunRecord, records: Sequence[NodeRecord], rerun: set[int]
) -> Prefill:
    """The outputs of ``old``'s nodes a new attempt of it can reuse (not those in ``rerun``)."""
    prefill: Prefill = {}
    for rec in records:
        node = plan.by_label.get(rec.label)
        if node is None and rec.node_type == SKIPPED_BRANCH:
            continue  # a switch's branch that did not run: nothing to restore
        if node is None:
            raise RestartError(
                f"run {old.run_id!r} has node {rec.label!r}, which DAG {plan.dag.nsref!r} "
                "does not have: is it the DAG that made the run?"
            )
        if node.index in rerun or not rec.status.has_output or not rec.restorable:
            continue
        prefill[node.index] = (_restored_output(plan, old, rec, node), rec)
    return prefill


async def next_log_seqs(prov: ProvenanceBackend, run_id: str) -> dict[str, int]:
    """Per node of a recorded run, the ``seq`` its next log line takes (a restart goes on
    numbering where the earlier attempts stopped)."""
    after: dict[str, int] = {}
    for line in await prov.get_logs(run_id):
        if line.seq >= after.get(line.label, 0):
            after[line.label] = line.seq + 1
    return after


def _restored_output(plan: Plan, old: RunRecord, rec: NodeRecord, node: PlanNode) -> Any:
    """``rec``'s stored output as ``node``'s return type. Refused (naming the node) when the
    value does not come back as it was stored: the DAG's return type changed since the run
    (stored ``1``, now ``-> str``), and converting it would feed downstream nodes a value
    the node never returned."""
    where = f"run {old.run_id} node {rec.label!r} output"
    value = structure(rec.output, node.output_type, where=where)
    tp = node.output_type
    if (
        tp is EMPTY
        or tp is Any
        or (type(value) in JSON_SCALARS and type(value) is type(rec.output))
    ):
        return value  # nothing converted (the common case: no second conversion)
    if not json_equal(to_json_safe(value, tp, where=where), rec.output):
        raise RestartError(
            f"run {old.run_id!r}: node {rec.label!r} now returns "
            f"{type_name(tp)}, but its recorded output {rec.output!r:.80} does "
            "not convert to that unchanged (did the DAG change since the run?); replay the "
            f"run with rerun_nodes={{{rec.label!r}}} to compute it again"
        )
    return value
