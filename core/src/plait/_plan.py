"""Compiling a Dag into a :class:`Plan`: arrays of nodes with integer successor lists and
parameter bindings, in topological order. The runner executes plans.

:func:`compile_plan` indexes the edges, orders the nodes (Kahn's algorithm; a cycle is
named), and wires each node in order (:mod:`plait._wiring`). Every problem found is
raised at the end as one :class:`DagValidationError`.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from plait._wiring import Incoming, Wiring
from plait.converter import json_equal, structure, to_json_safe
from plait.errors import ConversionError, DagValidationError, InputError
from plait.introspect import EMPTY, ParamInfo

if TYPE_CHECKING:
    from plait.dag import Dag, DagNode, Edge

__all__ = ["EdgeKey", "Plan", "PlanNode", "compile_plan", "input_dicts"]

#: An edge as a Dag stores it: (upstream label, downstream label, param, order_only).
EdgeKey = tuple[str, str, str | None, bool]

_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


class PlanNode:
    """A node as the runner sees it: integer indices, bindings, resolved types."""

    __slots__ = (
        "bindings",
        "call",
        "context_param",
        "context_type",
        "executor",
        "fast_inline",
        "index",
        "inline",
        "input_params",
        "is_async",
        "kind",
        "label",
        "n_upstream",
        "node",
        "output_type",
        "param_types",
        "retries",
        "retry_backoff",
        "successors",
        "timeout",
        "upstreams",
    )

    def __init__(self, index: int, node: DagNode) -> None:
        self.index = index
        self.node = node
        self.label = node.label
        self.kind = node.kind
        self.executor = node.executor
        self.retries = node.retries
        self.retry_backoff = node.retry_backoff
        self.timeout = node.timeout
        self.successors: tuple[int, ...] = ()
        self.upstreams: tuple[int, ...] = ()
        self.n_upstream = 0
        #: (upstream index, parameter name, collect into a list)
        self.bindings: tuple[tuple[int, str, bool], ...] = ()
        #: parameters fed by run inputs (source nodes) - data params nothing else feeds
        self.input_params: tuple[ParamInfo, ...] = ()
        #: parameter name -> annotation; read-only, and shared by the plan nodes of one
        #: callable (a 100,000-node chain of one function holds one)
        self.param_types: Mapping[str, Any] = _NO_PARAMS
        self.context_param: str | None = None
        self.context_type: Any = None
        self.output_type: Any = EMPTY
        self.call: Callable[..., Any] | None = None
        self.is_async = False
        self.inline = False
        self.fast_inline = False


class Plan:
    """A validated, compiled Dag."""

    __slots__ = ("by_label", "dag", "nodes", "order", "sinks", "sources")

    def __init__(self, dag: Dag, nodes: list[PlanNode], order: list[int]) -> None:
        self.dag = dag
        self.nodes = nodes
        self.order = order
        self.by_label = {n.label: n for n in nodes}
        self.sources = [n.index for n in nodes if n.n_upstream == 0]
        self.sinks = [n.index for n in nodes if not n.successors]

    def descendants(self, labels: Iterable[str]) -> set[int]:
        """Indices of the named nodes and everything downstream of them."""
        todo = [self.by_label[label].index for label in labels]
        seen = set(todo)
        while todo:
            for s in self.nodes[todo.pop()].successors:
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
        return seen

    def structure_inputs(self, source_inputs: dict[str, dict[str, Any]], *, stored: bool) -> None:
        """Check run inputs against source parameters; raise one InputError listing all.

        A value must survive the trip to JSON and back as its parameter's type, since a
        restart restores the inputs from their JSON form: ``"abc"`` or ``"1"`` for an
        ``int`` is refused. A value that is not an instance of its parameter's class but
        makes the trip unchanged (a ``str`` for a ``Path``, an ``int`` for a ``float``) is
        replaced by the restored value, so a run and its restart see the same inputs.
        ``stored`` says whether the run's inputs are recorded; when not, a value that has no
        JSON form is passed as it is.
        """
        problems = self._unknown_inputs(source_inputs)
        for i in self.sources:
            node = self.nodes[i]
            given = source_inputs.get(node.label, {})
            for p in node.input_params:
                if p.name in given:
                    problem = _fit_input(node.label, p, given, stored=stored)
                    if problem:
                        problems.append(problem)
                elif p.required:
                    problems.append(
                        f"node {node.label!r}: missing input for required parameter {p.describe()}"
                    )
        if problems:
            raise InputError("invalid run inputs:\n" + "\n".join(f"  - {p}" for p in problems))

    def _unknown_inputs(self, source_inputs: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        for label, params in source_inputs.items():
            node = self.by_label.get(label)
            if node is None:
                problems.append(
                    f"input for unknown node {label!r} (nodes: {', '.join(self.by_label)})"
                )
                continue
            if not isinstance(params, dict):
                problems.append(f"inputs of node {label!r} must be a dict of parameter values")
                continue
            known = {p.name for p in node.input_params}
            for name in params:
                if name not in known:
                    problems.append(
                        f"node {label!r} has no input parameter {name!r} "
                        f"(inputs: {', '.join(sorted(known)) or 'none'})"
                    )
        return problems


def input_dicts(source_inputs: Any) -> dict[str, dict[str, Any]]:
    """A copy of ``source_inputs`` (``{"label": {"param": value}}``) as plain dicts;
    :class:`InputError` naming ``source_inputs`` (and the label) when its shape is wrong."""
    if source_inputs is None:
        return {}
    if not isinstance(source_inputs, Mapping):
        raise InputError(
            "source_inputs must map node labels to {parameter: value} dicts, got "
            f"{type(source_inputs).__name__} {source_inputs!r:.80}"
        )
    out: dict[str, dict[str, Any]] = {}
    for label, params in source_inputs.items():
        if not isinstance(params, Mapping):
            raise InputError(
                f"source_inputs[{label!r}] must map parameter names of node {label!r} to "
                f"values, got {type(params).__name__} {params!r:.80}"
            )
        out[label] = dict(params)
    return out


def _fit_input(label: str, param: ParamInfo, given: dict[str, Any], *, stored: bool) -> str:
    """Why ``given[param.name]`` does not fit ``param`` (empty when it does); replaces the
    value by its restored form when that differs only in type (see ``structure_inputs``)."""
    tp = param.annotation
    if tp is EMPTY or tp is Any:
        return ""
    value = given[param.name]
    try:
        instance = isinstance(tp, type) and isinstance(value, tp)
    except TypeError:  # a protocol that is not runtime checkable, say
        instance = False
    if instance:
        return ""
    where = f"node {label!r}: input {param.name!r}"
    try:
        data = to_json_safe(value, where=where)
    except ConversionError as exc:
        return str(exc) if stored else ""
    try:
        restored = structure(data, tp, where=where)
        same = json_equal(to_json_safe(restored, tp, where=where), data)
    except ConversionError:
        same = False
    if not same:
        return (
            f"{where} expects {param.describe()}, got {type(value).__name__} {value!r:.80}, "
            f"which a restart could not restore as it was"
        )
    if isinstance(tp, type):
        given[param.name] = restored
    return ""


# ---------------------------------------------------------------------- compilation
@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while compiling a plan.

    Compilation allocates a few acyclic objects per node; on a 100,000-node DAG the
    collector's repeated passes over them made compile time grow faster than the DAG.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Graph:
    """The edges of a Dag by node index: incoming edges, successors, predecessors."""

    __slots__ = ("incoming", "preds", "succ")

    def __init__(self, n: int) -> None:
        #: per node, its incoming edges (see :data:`plait._wiring.Incoming`)
        self.incoming: list[list[Incoming]] = [[] for _ in range(n)]
        self.succ: list[list[int]] = [[] for _ in range(n)]
        #: per node, its distinct upstreams in the order their first edge was added (lists,
        #: not sets: a set costs 216 bytes a node while compiling)
        self.preds: list[list[int]] = [[] for _ in range(n)]

    def drop_repeats(self) -> None:
        """Keep one (upstream, downstream) pair for an upstream that feeds a node twice
        (two parameters, or a value and an ordering edge): O(edges)."""
        repeated: set[int] = set()
        for d, ups in enumerate(self.preds):
            if len(ups) > 1:
                unique = list(dict.fromkeys(ups))
                if len(unique) < len(ups):
                    self.preds[d] = unique
                    repeated.update(unique)
        for u in repeated:
            self.succ[u] = list(dict.fromkeys(self.succ[u]))


def compile_plan(
    dag: Dag, nodes: Mapping[str, DagNode], edges: Mapping[EdgeKey, Edge | None]
) -> Plan:
    """Compile ``dag`` (its ``nodes`` by label, its ``edges`` by key, the value an
    :class:`~plait.dag.Edge` when an end is not one of its nodes) into a plan; raise one
    :class:`DagValidationError` listing every problem."""
    with _gc_paused():
        problems: list[str] = []
        pnodes = [PlanNode(i, node) for i, node in enumerate(nodes.values())]
        graph = _index_edges(dag, pnodes, edges, problems)
        order = _topological(pnodes, graph.succ, graph.preds, problems)
        wiring = Wiring(pnodes, problems)
        succ, preds, incoming = graph.succ, graph.preds, graph.incoming
        for i in order:  # every node, unless there is a cycle (a problem: no plan then)
            pn = pnodes[i]
            ups = preds[i]
            pn.successors = tuple(succ[i])
            pn.upstreams = tuple(sorted(ups)) if len(ups) > 1 else tuple(ups)
            pn.n_upstream = len(ups)
            wiring.wire(pn, incoming[i])
        if problems:
            raise DagValidationError(problems, dag=dag.nsref)
        return Plan(dag, pnodes, order)


def _index_edges(
    dag: Dag,
    pnodes: list[PlanNode],
    edges: Mapping[EdgeKey, Edge | None],
    problems: list[str],
) -> _Graph:
    # the plan nodes' own index objects: bindings and successor tuples share them
    index = {pn.label: pn.index for pn in pnodes}
    graph = _Graph(len(index))
    incoming, succ, preds = graph.incoming, graph.succ, graph.preds
    for (up_label, down_label, param, order_only), e in edges.items():
        if e is not None:  # an end is not one of this Dag's nodes
            problems.extend(e.foreign_end_problems(dag))
            continue
        u, d = index[up_label], index[down_label]
        if u == d:
            problems.append(f"cycle: {up_label} -> {up_label}")
            continue
        incoming[d].append((u, param, order_only))
        preds[d].append(u)
        succ[u].append(d)
    graph.drop_repeats()
    return graph


def _topological(
    pnodes: list[PlanNode], succ: list[list[int]], preds: list[list[int]], problems: list[str]
) -> list[int]:
    indeg = [len(p) for p in preds]
    ready = deque(i for i, d in enumerate(indeg) if d == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for s in succ[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) < len(pnodes):
        left = {i for i, d in enumerate(indeg) if d > 0}
        cycle = _find_cycle(left, succ, preds)
        problems.append("cycle: " + " -> ".join(pnodes[i].label for i in cycle))
    return order


def _find_cycle(left: set[int], succ: list[list[int]], preds: list[list[int]]) -> list[int]:
    """One cycle inside ``left`` (nodes that Kahn's algorithm could not order).

    ``left`` also holds nodes that are only downstream of a cycle; they are dropped first,
    so that the walk along successors cannot run into a node without one.
    """
    left = set(left)
    onward = {i: sum(1 for s in succ[i] if s in left) for i in left}
    dead = [i for i, n in onward.items() if n == 0]
    while dead:
        i = dead.pop()
        left.discard(i)
        for p in preds[i]:
            if p in left:
                onward[p] -= 1
                if onward[p] == 0:
                    dead.append(p)
    start = min(left)
    path: list[int] = []
    pos: dict[int, int] = {}
    node = start
    while node not in pos:
        pos[node] = len(path)
        path.append(node)
        node = next(s for s in succ[node] if s in left)
    return [*path[pos[node] :], node]
