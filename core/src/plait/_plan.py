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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from plait._wiring import Bindings, Incoming, Wiring
from plait.converter import json_equal, structure, to_json_safe
from plait.errors import ConversionError, DagValidationError, InputError
from plait.introspect import EMPTY, ParamInfo

if TYPE_CHECKING:
    from plait.dag import Dag, DagNode, Edge

__all__ = [
    "NO_NODES",
    "Adjacent",
    "EdgeKey",
    "NodeSpec",
    "Plan",
    "PlanNode",
    "compile_plan",
    "input_dicts",
    "spelled",
]

#: An edge as a Dag stores it: (upstream label, downstream label, param, order_only).
EdgeKey = tuple[str, str, str | None, bool]

_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})

#: A node's successors (or upstreams) in a plan's column: the index itself when there is
#: one (no object per node: a chain holds none), else a tuple (empty for none).
Adjacent = int | tuple[int, ...]
#: what a column holds for a node without successors (or upstreams)
NO_NODES: tuple[int, ...] = ()


def spelled(adjacent: Adjacent) -> tuple[int, ...]:
    """A column's :data:`Adjacent` as a tuple."""
    return (adjacent,) if type(adjacent) is int else adjacent  # type: ignore[return-value]


class NodeSpec:
    """What the plan nodes of one callable with one set of options share (a composite node
    has one of its own): the call, its resolved types, how it runs."""

    __slots__ = (
        "call",
        "context_param",
        "context_type",
        "executor",
        "fast_inline",
        "inline",
        "is_async",
        "kind",
        "output_type",
        "param_types",
        "params",
        "retries",
        "retry_backoff",
        "timeout",
    )

    def __init__(self, node: DagNode) -> None:
        self.kind = node.kind
        self.executor = node.executor
        self.retries = node.retries
        self.retry_backoff = node.retry_backoff
        self.timeout = node.timeout
        #: the data parameters (a source node's are its run inputs)
        self.params: tuple[ParamInfo, ...] = ()
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


class PlanNode:
    """A node as the runner sees it: integer indices, bindings, resolved types (a record
    made from the plan's columns the first time :meth:`Plan.node` is asked for it)."""

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

    def __init__(self, plan: Plan, index: int) -> None:
        spec = plan.specs[index]
        self.index = index
        self.node = plan.dag_nodes[index]
        self.label = plan.labels[index]
        self.kind = spec.kind
        self.executor = spec.executor
        self.retries = spec.retries
        self.retry_backoff = spec.retry_backoff
        self.timeout = spec.timeout
        self.successors: tuple[int, ...] = spelled(plan.successors[index])
        self.upstreams: tuple[int, ...] = spelled(plan.upstreams[index])
        self.n_upstream = len(self.upstreams)
        #: (upstream index, parameter name, collect into a list)
        self.bindings: Bindings = plan.bindings_of(index)
        #: parameters fed by run inputs (source nodes) - data params nothing else feeds
        self.input_params: tuple[ParamInfo, ...] = () if self.upstreams else spec.params
        self.param_types: Mapping[str, Any] = spec.param_types
        self.context_param: str | None = spec.context_param
        self.context_type: Any = spec.context_type
        self.output_type: Any = spec.output_type
        self.call: Callable[..., Any] | None = spec.call
        self.is_async = spec.is_async
        self.inline = spec.inline
        self.fast_inline = spec.fast_inline


class Plan:
    """A validated, compiled Dag: columns indexed by node (position in the Dag).

    Each node's label, Dag node, successors, upstreams (sorted), number of upstreams,
    bindings and :class:`NodeSpec` are in a list of its own. Successors and upstreams are
    :data:`Adjacent` (:func:`spelled` makes them tuples); a node's bindings are a parameter
    name when its one upstream feeds that parameter (and nothing else feeds it), and a
    tuple of (upstream, parameter, collect) otherwise (:meth:`bindings_of` spells both
    out). A 100,000-node chain holds no object per node beyond these lists (issue 18).
    The runner's fast path reads the columns; everything else asks for :class:`PlanNode`
    records (:meth:`node`, :attr:`nodes`, :attr:`by_label`), made on first use.
    """

    __slots__ = (
        "_all",
        "_by_label",
        "_index",
        "_labelled",
        "_views",
        "bindings",
        "dag",
        "dag_nodes",
        "labels",
        "n_upstream",
        "order",
        "sinks",
        "sources",
        "specs",
        "successors",
        "upstreams",
    )

    def __init__(
        self,
        dag: Dag,
        labelled: Mapping[str, DagNode],
        dag_nodes: list[DagNode],
        labels: list[str],
        columns: Columns,
        order: Sequence[int],
    ) -> None:
        self.dag = dag
        #: the Dag's nodes by label (the Dag copies its dict before it drops a node): a
        #: node's ``index`` there, checked against ``dag_nodes``, finds it by label
        self._labelled = labelled
        self.dag_nodes = dag_nodes
        self.labels = labels
        self.successors: list[Adjacent] = columns.successors
        self.upstreams: list[Adjacent] = columns.upstreams
        self.n_upstream: list[int] = columns.n_upstream
        self.bindings: list[Bindings | str] = columns.bindings
        self.specs: list[NodeSpec] = columns.specs
        self.order = order
        self.sources = [i for i, ups in enumerate(self.upstreams) if ups is NO_NODES]
        self.sinks = [i for i, succ in enumerate(self.successors) if succ is NO_NODES]
        self._views: dict[int, PlanNode] = {}
        self._all: list[PlanNode] | None = None
        self._by_label: _ByLabel | None = None
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def node(self, index: int) -> PlanNode:
        """The record of node ``index`` (made once)."""
        view = self._views.get(index)
        if view is None:
            view = self._views[index] = PlanNode(self, index)
        return view

    @property
    def nodes(self) -> list[PlanNode]:
        """Every node's record, by index."""
        if self._all is None:
            self._all = [self.node(i) for i in range(len(self.labels))]
        return self._all

    @property
    def by_label(self) -> Mapping[str, PlanNode]:
        """Node records by label."""
        if self._by_label is None:
            self._by_label = _ByLabel(self)
        return self._by_label

    def index_of(self, label: str) -> int | None:
        """The index of the node labelled ``label``, or None."""
        node = self._labelled.get(label)
        if node is None:
            return None
        index = node.index
        if index < len(self.dag_nodes) and self.dag_nodes[index] is node:
            return index
        # a node added since, or one moved along by a node taken out: by the labels
        if self._index is None:
            self._index = {label: i for i, label in enumerate(self.labels)}
        return self._index.get(label)

    def bindings_of(self, index: int) -> Bindings:
        """Node ``index``'s bindings: (upstream index, parameter, collect into a list)."""
        bindings = self.bindings[index]
        if type(bindings) is str:
            return ((self.upstreams[index], bindings, False),)  # type: ignore[return-value]
        return bindings  # type: ignore[return-value]

    def descendants(self, labels: Iterable[str]) -> set[int]:
        """Indices of the named nodes and everything downstream of them."""
        todo = [self.by_label[label].index for label in labels]
        seen = set(todo)
        while todo:
            for s in spelled(self.successors[todo.pop()]):
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
            label = self.labels[i]
            given = source_inputs.get(label, {})
            for p in self.specs[i].params:
                if p.name in given:
                    problem = _fit_input(label, p, given, stored=stored)
                    if problem:
                        problems.append(problem)
                elif p.required:
                    problems.append(
                        f"node {label!r}: missing input for required parameter {p.describe()}"
                    )
        if problems:
            raise InputError("invalid run inputs:\n" + "\n".join(f"  - {p}" for p in problems))

    def _unknown_inputs(self, source_inputs: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        for label, params in source_inputs.items():
            node = self.by_label.get(label)
            if node is None:
                problems.append(
                    f"input for unknown node {label!r} (nodes: {', '.join(self.labels)})"
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


class _ByLabel(Mapping[str, PlanNode]):
    """A plan's node records by label (see :meth:`Plan.index_of`)."""

    __slots__ = ("_plan",)

    def __init__(self, plan: Plan) -> None:
        self._plan = plan

    def __getitem__(self, label: str) -> PlanNode:
        index = self._plan.index_of(label) if type(label) is str else None
        if index is None:
            raise KeyError(label)
        return self._plan.node(index)

    def __contains__(self, label: object) -> bool:
        return type(label) is str and self._plan.index_of(label) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan.labels)

    def __len__(self) -> int:
        return len(self._plan.labels)


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


class Columns:
    """The per-node lists of a plan, filled while it is compiled (see :class:`Plan`)."""

    __slots__ = ("bindings", "n_upstream", "specs", "successors", "upstreams")

    def __init__(
        self, successors: list[Adjacent], upstreams: list[Adjacent], n_upstream: list[int]
    ) -> None:
        n = len(successors)
        self.successors = successors
        self.upstreams = upstreams
        self.n_upstream = n_upstream
        self.bindings: list[Bindings | str] = [()] * n
        self.specs: list[NodeSpec] = [None] * n  # type: ignore[list-item]  # set by wiring


def compile_plan(
    dag: Dag,
    nodes: Mapping[str, DagNode],
    ups: Sequence[int],
    downs: Sequence[int],
    extra: Mapping[int, Edge | tuple[str | None, bool]],
) -> Plan:
    """Compile ``dag`` into a plan; raise one :class:`DagValidationError` listing every
    problem. ``nodes`` are its nodes by label; its edges, in the order they were added, go
    from ``ups[k]`` to ``downs[k]`` (positions in ``nodes``), ``extra[k]`` holding the
    parameter and order-only flag of an edge that has them, or the
    :class:`~plait.dag.Edge` of one naming a node from elsewhere."""
    with _gc_paused():
        problems: list[str] = []
        dag_nodes = list(nodes.values())
        labels = list(nodes)
        # the nodes' own position objects: the columns hold these, no new ones
        ints = [node.index for node in dag_nodes]
        graph = _Graph(dag, labels, ints, problems)
        graph.add_edges(ups, downs, extra)
        succ, preds = graph.succ, graph.preds
        n_upstream = [1 if type(p) is int else len(p) for p in preds]
        order = _topological(labels, ints, succ, preds, n_upstream.copy(), problems)
        upstreams = preds.copy() if graph.several else preds
        for i in graph.several:
            upstreams[i] = tuple(sorted(preds[i]))
        columns = Columns(succ, upstreams, n_upstream)
        Wiring(dag_nodes, labels, columns, problems).wire(order, preds, graph.incoming)
        if problems:
            raise DagValidationError(problems, dag=dag.nsref)
        if order == ints:  # the nodes were added in an order that runs: say it in 48 bytes
            order = range(len(ints))  # type: ignore[assignment]
        return Plan(dag, nodes, dag_nodes, labels, columns, order)


class _Graph:
    """A Dag's edges by node index while compiling: per node, its distinct successors and
    its distinct upstreams (in the order of their first edge), each :data:`Adjacent` (the
    index itself for one: no object per node), and the incoming edges of each node that
    has a bound or ordering-only one."""

    __slots__ = ("dag", "incoming", "ints", "labels", "preds", "problems", "several", "succ")

    def __init__(self, dag: Dag, labels: list[str], ints: list[int], problems: list[str]) -> None:
        self.dag = dag
        self.labels = labels
        self.ints = ints
        self.problems = problems
        self.succ: list[Any] = [NO_NODES] * len(ints)
        self.preds: list[Any] = [NO_NODES] * len(ints)
        self.incoming: dict[int, list[Incoming]] = {}
        #: the nodes with several upstreams
        self.several: list[int] = []

    def add_edges(
        self,
        ups: Sequence[int],
        downs: Sequence[int],
        extra: Mapping[int, Edge | tuple[str | None, bool]],
    ) -> None:
        ints, succ, preds, incoming = self.ints, self.succ, self.preds, self.incoming
        several_succ: list[int] = []
        for at, (u, d) in enumerate(zip(ups, downs, strict=True)):
            more = extra.get(at) if extra else None
            if (more is not None or u == d or incoming) and not self.note_edge(u, d, more):
                continue
            s = succ[u]
            if s is NO_NODES:
                succ[u] = ints[d]
            elif type(s) is int:
                succ[u] = [s, ints[d]]
                several_succ.append(u)
            else:
                s.append(ints[d])
            p = preds[d]
            if p is NO_NODES:
                preds[d] = ints[u]
            elif type(p) is int:
                preds[d] = [p, ints[u]]
                self.several.append(d)
            else:
                p.append(ints[u])
        for column, many in ((succ, several_succ), (preds, self.several)):
            for i in many:  # an upstream feeding a node twice is one upstream
                distinct = tuple(dict.fromkeys(column[i]))
                column[i] = distinct[0] if len(distinct) == 1 else distinct
        self.several = [i for i in self.several if type(preds[i]) is tuple]

    def note_edge(self, u: int, d: int, more: Edge | tuple[str | None, bool] | None) -> bool:
        """Report an edge that names a node from elsewhere or loops, keep one that is bound
        or ordering-only (or goes into a node with such) among the incoming edges of its
        node; False for an edge the graph does not take."""
        if more is not None and not isinstance(more, tuple):
            self.problems.extend(more.foreign_end_problems(self.dag))  # an end from elsewhere
            return False
        if u == d:
            self.problems.append(f"cycle: {self.labels[u]} -> {self.labels[u]}")
            return False
        into = self.incoming.get(d)
        if more is not None:
            if into is None:  # its plain edges so far, then this one
                into = self.incoming[d] = [(p, None, False) for p in spelled(self.preds[d])]
            into.append((self.ints[u], *more))
        elif into is not None:
            into.append((self.ints[u], None, False))
        return True


def _topological(
    labels: list[str],
    ints: list[int],
    succ: list[Adjacent],
    preds: list[Adjacent],
    indeg: list[int],
    problems: list[str],
) -> list[int]:
    ready = deque(i for i, d in zip(ints, indeg, strict=True) if d == 0)
    order: list[int] = []
    popleft, push, append = ready.popleft, ready.append, order.append
    while ready:
        i = popleft()
        append(i)
        s = succ[i]
        if isinstance(s, int):
            indeg[s] -= 1
            if indeg[s] == 0:
                push(s)
            continue
        for t in s:
            indeg[t] -= 1
            if indeg[t] == 0:
                push(t)
    if len(order) < len(labels):
        left = {i for i, d in enumerate(indeg) if d > 0}
        cycle = _find_cycle(left, [spelled(s) for s in succ], [spelled(p) for p in preds])
        problems.append("cycle: " + " -> ".join(labels[i] for i in cycle))
    return order


def _find_cycle(
    left: set[int], succ: list[tuple[int, ...]], preds: list[tuple[int, ...]]
) -> list[int]:
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
