"""``Dag``: nodes, edges, wiring by type, validation, rendering.

A Dag is compiled into a :class:`Plan` (arrays of nodes with integer successor lists and
parameter bindings) the first time it is validated; the runner executes plans. The plan is
rebuilt only when the Dag changes, so validating before every run costs nothing.
"""

from __future__ import annotations

import contextlib
import gc
import re
import sys
import typing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

from plait.errors import DagValidationError, DuplicateNameError, InputError
from plait.introspect import EMPTY, CallableInfo, ParamInfo, type_name
from plait.namespace import Namespace, NamespaceNode

if TYPE_CHECKING:
    from plait.runner import DagRunResult

__all__ = ["CallNode", "Dag", "DagNode", "Edge", "MapNode", "Plan", "PlanNode"]

_NOT_IDENT = re.compile(r"\W")


class Edge:
    """``upstream -> downstream``; ``param`` binds explicitly; ``order_only`` carries no value."""

    __slots__ = ("downstream", "order_only", "param", "upstream")

    def __init__(
        self, upstream: DagNode, downstream: DagNode, param: str | None, order_only: bool
    ) -> None:
        self.upstream = upstream
        self.downstream = downstream
        self.param = param
        self.order_only = order_only

    def __repr__(self) -> str:
        tail = f" [{self.param}]" if self.param else (" [order]" if self.order_only else "")
        return f"<Edge {self.upstream.label} -> {self.downstream.label}{tail}>"


class DagNode:
    """A callable placed in a Dag under a unique ``label``.

    ``a >> b`` adds an edge and returns ``b``. ``b.bind(x=a)`` feeds ``a``'s output to
    parameter ``x`` of ``b`` explicitly; ``b.after(a)`` orders without passing a value.
    """

    kind = "function"

    __slots__ = ("dag", "executor", "label", "nsnode", "retries", "retry_backoff", "timeout")

    def __init__(
        self,
        dag: Dag,
        label: str,
        nsnode: NamespaceNode | None,
        *,
        executor: str | None = None,
        retries: int = 0,
        retry_backoff: float = 0.1,
        timeout: float | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"node {label!r}: retries must be >= 0, got {retries}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"node {label!r}: timeout must be > 0 seconds, got {timeout}")
        self.dag = dag
        self.label = label
        self.nsnode = nsnode
        self.executor = executor
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.timeout = timeout

    # ------------------------------------------------------------------ wiring sugar
    def __rshift__(self, other: DagNode | Sequence[DagNode]) -> Any:
        if isinstance(other, DagNode):
            self.dag.connect(self, other)
            return other
        for node in other:
            self.dag.connect(self, node)
        return other

    def __rrshift__(self, other: Sequence[DagNode]) -> DagNode:
        for node in other:
            self.dag.connect(node, self)
        return self

    def bind(self, **params: DagNode) -> Self:
        """Feed each upstream's output to the named parameter, overriding type matching."""
        for param, upstream in params.items():
            self.dag.connect(upstream, self, param=param)
        return self

    def after(self, *upstreams: DagNode) -> Self:
        """Run after ``upstreams`` without taking their values (ordering-only edges)."""
        for upstream in upstreams:
            self.dag.connect(upstream, self, order_only=True)
        return self

    # ------------------------------------------------------------------ description
    @property
    def info(self) -> CallableInfo:
        assert self.nsnode is not None
        return self.nsnode.info

    @property
    def call(self) -> Callable[..., Any]:
        assert self.nsnode is not None
        return self.nsnode.call

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


class _Composite(DagNode):
    __slots__ = ("sub",)

    def __init__(self, dag: Dag, label: str, sub: Dag, **options: Any) -> None:
        super().__init__(dag, label, None, **options)
        self.sub = sub

    def sub_plan(self) -> Plan:
        """The sub-DAG's plan; it must have exactly one source and one sink."""
        plan = self.sub.plan()
        problems = []
        if len(plan.sources) != 1:
            problems.append(
                f"{self.kind} node {self.label!r}: sub-DAG {self.sub.nsref!r} must have exactly "
                f"one source node, it has {len(plan.sources)}: "
                f"{', '.join(plan.nodes[i].label for i in plan.sources) or 'none'}"
            )
        if len(plan.sinks) != 1:
            problems.append(
                f"{self.kind} node {self.label!r}: sub-DAG {self.sub.nsref!r} must have exactly "
                f"one sink node, it has {len(plan.sinks)}: "
                f"{', '.join(plan.nodes[i].label for i in plan.sinks) or 'none'}"
            )
        if not problems:
            src = plan.nodes[plan.sources[0]]
            if len(src.input_params) > 1 or any(p.required for p in src.input_params[1:]):
                problems.append(
                    f"{self.kind} node {self.label!r}: the source {src.label!r} of sub-DAG "
                    f"{self.sub.nsref!r} must take one value, it takes "
                    f"{', '.join(p.describe() for p in src.input_params)}"
                )
        if problems:
            raise DagValidationError(problems, dag=self.dag.nsref)
        return plan

    def sub_input(self) -> ParamInfo | None:
        plan = self.sub_plan()
        params = plan.nodes[plan.sources[0]].input_params
        return params[0] if params else None

    def sub_output_type(self) -> Any:
        plan = self.sub_plan()
        return plan.nodes[plan.sinks[0]].output_type


class CallNode(_Composite):
    """Runs a sub-DAG once, with the upstream output as its source's input."""

    kind = "call"
    __slots__ = ()


class MapNode(_Composite):
    """Runs a sub-DAG on each element of an upstream ``list`` or ``dict``, concurrently.

    The result has the upstream's shape: a list in the same order, or a dict with the same
    keys. ``max_concurrency`` bounds the elements in flight for this node.
    """

    kind = "map"
    __slots__ = ("max_concurrency",)

    def __init__(
        self,
        dag: Dag,
        label: str,
        sub: Dag,
        *,
        max_concurrency: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(dag, label, sub, **options)
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"map node {label!r}: max_concurrency must be >= 1")
        self.max_concurrency = max_concurrency


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

    def structure_inputs(self, source_inputs: Mapping[str, Any]) -> None:
        """Check run inputs against source parameters; raise one InputError listing all."""
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
        for i in self.sources:
            node = self.nodes[i]
            given = source_inputs.get(node.label, {})
            for p in node.input_params:
                if p.required and p.name not in given:
                    problems.append(
                        f"node {node.label!r}: missing input for required parameter {p.describe()}"
                    )
        if problems:
            raise InputError("invalid run inputs:\n" + "\n".join(f"  - {p}" for p in problems))


def _list_of(tp: Any) -> Any:
    """``list[tp]`` for a type known only at run time."""
    return list.__class_getitem__(tp)


def _dict_of(key: Any, value: Any) -> Any:
    return dict.__class_getitem__((key, value))


def _list_elem(tp: Any) -> Any:
    if typing.get_origin(tp) is list:
        args = typing.get_args(tp)
        return args[0] if args else EMPTY
    return None


def _is_loose(tp: Any) -> bool:
    return tp is EMPTY or tp is Any


def _map_elem(tp: Any) -> tuple[str, Any] | None:
    """``list[T]`` -> ("list", T); ``dict[K, T]`` -> ("dict", T); unannotated -> ("any", EMPTY)."""
    if _is_loose(tp):
        return ("any", EMPTY)
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin in (list, Sequence, typing.get_origin(Sequence[int])):
        return ("list", args[0] if args else EMPTY)
    if origin is dict:
        return ("dict", args[1] if len(args) == 2 else EMPTY)
    return None


#: An edge as a Dag stores it: (upstream label, downstream label, param, order_only).
_EdgeKey = tuple[str, str, str | None, bool]


class Dag:
    """A directed acyclic graph of callables. Use ``with Dag() as dag:`` to validate on exit."""

    def __init__(self, nsref: str = "dag", namespace: Namespace | None = None) -> None:
        self.nsref = nsref
        self.namespace = namespace if namespace is not None else Namespace()
        self._nodes: dict[str, DagNode] = {}
        #: Edges in the order they were added, by key. The value is None for an edge between
        #: two of this Dag's nodes (they are found by label), and the :class:`Edge` itself for
        #: one naming a node from elsewhere, which validation reports. A key holds only
        #: strings, None and a bool, so the garbage collector soon stops tracking it: a large
        #: Dag costs the collector its nodes and no more (issue 7).
        self._edges: dict[_EdgeKey, Edge | None] = {}
        self._plan: Plan | None = None

    # ------------------------------------------------------------------ building
    def node(
        self,
        target: Callable[..., Any] | NamespaceNode | Dag,
        label: str | None = None,
        *,
        executor: str | None = None,
        retries: int = 0,
        retry_backoff: float = 0.1,
        timeout: float | None = None,
    ) -> DagNode:
        """Add a node. A plain callable is registered in the Dag's namespace; a Dag becomes
        a :class:`CallNode`. ``executor`` picks the executor for a sync callable by name."""
        if isinstance(target, Dag):
            label = label or target.nsref
            self._check_label(label)
            node: DagNode = CallNode(
                self,
                label,
                target,
                executor=executor,
                retries=retries,
                retry_backoff=retry_backoff,
                timeout=timeout,
            )
        else:
            if isinstance(target, NamespaceNode):
                nsnode = target
                label = label or target.name
            else:
                if not callable(target):
                    raise TypeError(
                        f"dag.node() takes a callable, a NamespaceNode or a Dag, got {target!r}"
                    )
                label = label or getattr(target, "__name__", None) or type(target).__name__
                localns = None
                if "<locals>" in getattr(target, "__qualname__", ""):
                    # a nested function: its annotations may name the caller's local types
                    localns = dict(sys._getframe(1).f_locals)
                nsnode = self.namespace.register(target, self._free_nsref(label), localns=localns)
            self._check_label(label)
            node = DagNode(
                self,
                label,
                nsnode,
                executor=executor,
                retries=retries,
                retry_backoff=retry_backoff,
                timeout=timeout,
            )
        self._nodes[label] = node
        self._plan = None
        return node

    def map(
        self,
        sub_dag: Dag,
        label: str | None = None,
        *,
        max_concurrency: int | None = None,
        retries: int = 0,
        timeout: float | None = None,
    ) -> MapNode:
        """Add a :class:`MapNode` running ``sub_dag`` on each element of its upstream."""
        if not isinstance(sub_dag, Dag):
            raise TypeError(f"dag.map() takes a Dag, got {sub_dag!r}")
        label = label or f"map_{sub_dag.nsref}"
        self._check_label(label)
        node = MapNode(
            self,
            label,
            sub_dag,
            max_concurrency=max_concurrency,
            retries=retries,
            timeout=timeout,
        )
        self._nodes[label] = node
        self._plan = None
        return node

    def _check_label(self, label: str) -> None:
        if not isinstance(label, str) or not label:
            raise ValueError(f"node label must be a non-empty string, got {label!r}")
        if label in self._nodes:
            raise DuplicateNameError(
                f"DAG {self.nsref!r} already has a node labelled {label!r}; pass label=... "
                "to add the same callable twice"
            )

    def _free_nsref(self, label: str) -> str:
        if type(label) is str and label.isascii() and label.isidentifier():
            base = label  # nothing to replace: the common case, without the regex
        else:
            base = _NOT_IDENT.sub("_", label)
            if base[0].isdigit():
                base = f"_{base}"
        nsref, n = base, 1
        while nsref in self.namespace:
            n += 1
            nsref = f"{base}_{n}"
        return nsref

    def connect(
        self,
        upstream: DagNode,
        downstream: DagNode,
        *,
        param: str | None = None,
        order_only: bool = False,
    ) -> DagNode:
        """Add ``upstream -> downstream``; returns ``downstream``. Same edge twice is one."""
        for end in (upstream, downstream):
            if not isinstance(end, DagNode):
                raise TypeError(f"edges connect DagNodes, got {end!r}")
        key = (upstream.label, downstream.label, param, order_only)
        if key in self._edges:
            return downstream
        if self._holds(upstream) and self._holds(downstream):
            self._edges[key] = None
        else:
            self._edges[key] = Edge(upstream, downstream, param, order_only)
        self._plan = None
        return downstream

    def _holds(self, node: DagNode) -> bool:
        return node.dag is self and self._nodes.get(node.label) is node

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.validate()

    # ------------------------------------------------------------------ inspection
    @property
    def nodes(self) -> dict[str, DagNode]:
        return dict(self._nodes)

    @property
    def edges(self) -> list[Edge]:
        """The edges in the order they were added (records made for this call)."""
        nodes = self._nodes
        return [
            Edge(nodes[key[0]], nodes[key[1]], key[2], key[3]) if edge is None else edge
            for key, edge in self._edges.items()
        ]

    def __getitem__(self, label: str) -> DagNode:
        try:
            return self._nodes[label]
        except KeyError:
            raise KeyError(f"DAG {self.nsref!r} has no node {label!r}") from None

    def __len__(self) -> int:
        return len(self._nodes)

    def validate(self) -> None:
        """Raise one :class:`DagValidationError` listing every problem, or return."""
        self.plan()

    def plan(self) -> Plan:
        """The compiled plan (validated); cached until the Dag changes."""
        if self._plan is None:
            with _gc_paused():
                self._plan = _compile(self)
        return self._plan

    # ------------------------------------------------------------------ running
    async def __call__(self, **kwargs: Any) -> DagRunResult:
        """Run once with null provenance; ``kwargs`` go to source parameters by name."""
        from plait.runner import DagRunner

        plan = self.plan()
        inputs: dict[str, dict[str, Any]] = {}
        used: set[str] = set()
        for i in plan.sources:
            node = plan.nodes[i]
            for p in node.input_params:
                if p.name in kwargs:
                    inputs.setdefault(node.label, {})[p.name] = kwargs[p.name]
                    used.add(p.name)
        unknown = sorted(set(kwargs) - used)
        if unknown:
            names = sorted({p.name for i in plan.sources for p in plan.nodes[i].input_params})
            raise InputError(
                f"DAG {self.nsref!r}: no source node takes {', '.join(map(repr, unknown))} "
                f"(source parameters: {', '.join(names) or 'none'})"
            )
        return await DagRunner(self).run(source_inputs=inputs)

    # ------------------------------------------------------------------ rendering
    def _foreign_edge_problems(self, edge: Edge) -> list[str]:
        return [
            f"edge {edge.upstream.label!r} -> {edge.downstream.label!r}: node "
            f"{end.label!r} is not in DAG {self.nsref!r} (unknown label)"
            for end in (edge.upstream, edge.downstream)
            if not self._holds(end)
        ]

    def _check_drawable(self) -> None:
        """A drawing needs both ends of every edge: refuse edges to another Dag's nodes."""
        problems = [
            problem
            for edge in self._edges.values()
            if edge is not None
            for problem in self._foreign_edge_problems(edge)
        ]
        if problems:
            raise DagValidationError(problems, dag=self.nsref)

    def to_mermaid(self, statuses: dict[str, str] | None = None) -> str:
        """A Mermaid flowchart; ``statuses`` (label -> status) colours the nodes."""
        self._check_drawable()
        ids = {label: f"n{i}" for i, label in enumerate(self._nodes)}
        lines = ["flowchart TD"]
        for label, node in self._nodes.items():
            text = label.replace('"', "#quot;")
            shape = f'[["{text}"]]' if isinstance(node, _Composite) else f'["{text}"]'
            lines.append(f"    {ids[label]}{shape}")
        for upstream, downstream, param, order_only in self._edges:
            arrow = "-.->" if order_only else "-->"
            tag = f"|{param}|" if param else ""
            lines.append(f"    {ids[upstream]} {arrow}{tag} {ids[downstream]}")
        if statuses:
            for status, colour in _STATUS_COLOURS.items():
                lines.append(f"    classDef {status} fill:{colour}")
            for label, status in statuses.items():
                if label in ids:
                    lines.append(f"    class {ids[label]} {status}")
        return "\n".join(lines) + "\n"

    def to_dot(self, statuses: dict[str, str] | None = None) -> str:
        """A Graphviz digraph; ``statuses`` (label -> status) colours the nodes."""
        self._check_drawable()

        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"digraph {q(self.nsref)} {{", "    rankdir=TB;"]
        for label, node in self._nodes.items():
            attrs_ = ["shape=box3d" if isinstance(node, _Composite) else "shape=box"]
            if statuses and label in statuses:
                colour = _STATUS_COLOURS.get(statuses[label], "#ffffff")
                attrs_.append(f'style=filled, fillcolor="{colour}"')
            lines.append(f"    {q(label)} [{', '.join(attrs_)}];")
        for upstream, downstream, param, order_only in self._edges:
            extra = []
            if param:
                extra.append(f"label={q(param)}")
            if order_only:
                extra.append("style=dashed")
            tail = f" [{', '.join(extra)}]" if extra else ""
            lines.append(f"    {q(upstream)} -> {q(downstream)}{tail};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<Dag {self.nsref!r}: {len(self._nodes)} nodes, {len(self._edges)} edges>"


_STATUS_COLOURS = {
    "pending": "#eeeeee",
    "running": "#fff3b0",
    "completed": "#b7e4c7",
    "failed": "#f4a3a3",
    "skipped": "#cfe2ff",
    "cancelled": "#d3d3d3",
    "paused": "#ffd8a8",
}


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


def _compile(dag: Dag) -> Plan:
    problems: list[str] = []
    index = {label: i for i, label in enumerate(dag._nodes)}
    pnodes = [PlanNode(i, node) for i, node in enumerate(dag._nodes.values())]
    #: per node, its incoming edges: (upstream index, param, order_only)
    incoming: list[list[tuple[int, str | None, bool]]] = [[] for _ in pnodes]
    succ: list[list[int]] = [[] for _ in pnodes]
    preds: list[set[int]] = [set() for _ in pnodes]
    for (up_label, down_label, param, order_only), e in dag._edges.items():
        if e is not None:  # an end is not one of this Dag's nodes
            problems.extend(dag._foreign_edge_problems(e))
            continue
        u, d = index[up_label], index[down_label]
        if u == d:
            problems.append(f"cycle: {up_label} -> {up_label}")
            continue
        incoming[d].append((u, param, order_only))
        ups = preds[d]
        if u not in ups:
            ups.add(u)
            succ[u].append(d)

    order = _topological(pnodes, succ, preds, problems)
    shapes: dict[tuple[int, int, int], _Shape] = {}
    for i in order:  # every node, unless there is a cycle (a problem: no plan then)
        pn = pnodes[i]
        ups = preds[i]
        pn.successors = tuple(succ[i])
        pn.upstreams = tuple(sorted(ups)) if len(ups) > 1 else tuple(ups)
        pn.n_upstream = len(ups)
        _wire(pn, incoming[i], pnodes, shapes, problems)
    if problems:
        raise DagValidationError(problems, dag=dag.nsref)
    return Plan(dag, pnodes, order)


def _topological(
    pnodes: list[PlanNode], succ: list[list[int]], preds: list[set[int]], problems: list[str]
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


def _find_cycle(left: set[int], succ: list[list[int]], preds: list[set[int]]) -> list[int]:
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


def _describe_params(params: Sequence[ParamInfo]) -> str:
    return ", ".join(p.describe() for p in params) or "no parameters"


class _Shape:
    """What wiring needs from a callable's :class:`CallableInfo`, worked out once per compile
    for all the nodes of one callable (a 100,000-node chain of one function has one)."""

    __slots__ = (
        "by_name",
        "context_param",
        "context_type",
        "fits",
        "hint_error",
        "inline",
        "is_async",
        "output_type",
        "param_types",
        "params",
    )

    def __init__(self, info: CallableInfo) -> None:
        self.hint_error = info.hint_error
        self.params = info.data_params
        self.param_types = MappingProxyType({p.name: p.annotation for p in self.params})
        self.by_name = {p.name: p for p in self.params}
        ctx = info.context_param
        self.context_param = None if ctx is None else ctx.name
        ann = None if ctx is None else ctx.annotation
        if typing.get_origin(ann) is typing.Annotated:
            ann = typing.get_args(ann)[0]
        self.context_type = ann
        self.output_type = info.return_type
        self.is_async = info.is_async
        self.inline = info.inline and not info.is_async
        #: id(upstream output type) -> (that type, kept so the id stays its own; parameter;
        #: collect): where the only edge into a node puts a value of that type, when that
        #: leaves no required parameter unfed (parameter None otherwise)
        self.fits: dict[int, tuple[Any, str | None, bool]] = {}

    def fit(self, out: Any) -> tuple[Any, str | None, bool]:
        """Where a node of this shape takes ``out`` when nothing else feeds it."""
        fit = self.fits.get(id(out))
        if fit is None:
            target = _match(out, list(self.params), {}, is_map=False)
            fit = (out, None, False)
            if isinstance(target, tuple):
                param, collect = target
                if not any(p.required and p is not param for p in self.params):
                    fit = (out, param.name, collect)
            self.fits[id(out)] = fit
        return fit


def _shape_of(node: DagNode, shapes: dict[tuple[int, int, int], _Shape]) -> _Shape:
    """The node's shape; nodes sharing a callable, its local names and its call share one.

    Those three are all :attr:`NamespaceNode.info` reads, and the nodes keep them alive
    while compiling, so their ids are a sound key.
    """
    nsnode = node.nsnode
    assert nsnode is not None
    key = (id(nsnode.fn), id(nsnode.localns), id(nsnode.call))
    shape = shapes.get(key)
    if shape is None:
        shape = shapes[key] = _Shape(nsnode.info)
    return shape


def _wire(
    pn: PlanNode,
    edges: list[tuple[int, str | None, bool]],
    pnodes: list[PlanNode],
    shapes: dict[tuple[int, int, int], _Shape],
    problems: list[str],
) -> None:
    node = pn.node
    label = node.label
    shape: _Shape | None = None
    if isinstance(node, _Composite):
        try:
            sub_in = node.sub_input()
            sub_out = node.sub_output_type()
        except DagValidationError as exc:
            problems.extend(exc.problems)
            return
        if isinstance(node, MapNode):
            elem = sub_in.annotation if sub_in else EMPTY
            params: tuple[ParamInfo, ...] = (
                ParamInfo(
                    name=sub_in.name if sub_in else "items",
                    annotation=_list_of(elem) if not _is_loose(elem) else EMPTY,
                ),
            )
        else:
            params = (sub_in,) if sub_in else ()
        pn.output_type = sub_out
        pn.is_async = True
        pn.param_types = MappingProxyType({p.name: p.annotation for p in params})
        by_name = {p.name: p for p in params}
    else:
        shape = _shape_of(node, shapes)
        if shape.hint_error:
            problems.append(f"node {label!r}: {shape.hint_error}")
            return
        params = shape.params
        by_name = shape.by_name
        pn.context_param = shape.context_param
        pn.context_type = shape.context_type
        pn.output_type = shape.output_type
        pn.call = node.call
        pn.is_async = shape.is_async
        pn.inline = shape.inline
        pn.fast_inline = shape.inline and node.retries == 0 and node.timeout is None
        pn.param_types = shape.param_types
        if len(edges) == 1:
            # the common case, one edge by type and a required parameter for it: no problems
            # possible, and the same answer for every node of this shape (see _Shape.fit)
            u, bound, order_only = edges[0]
            if bound is None and not order_only:
                _out, name, collect = shape.fit(pnodes[u].output_type)
                if name is not None:
                    pn.bindings = ((u, name, collect),)
                    pn.input_params = ()
                    return

    assigned: dict[str, list[tuple[int, bool]]] = {}
    explicit: set[str] = set()
    implicit: list[int] = []
    for u, bound, order_only in edges:
        if order_only:
            continue
        if bound is None:
            implicit.append(u)
            continue
        if bound not in by_name:
            ctx_note = " (it is the DagContext parameter)" if bound == pn.context_param else ""
            problems.append(
                f"edge {pnodes[u].label!r} -> {label!r}: node {label!r} has no parameter "
                f"{bound!r}{ctx_note} (parameters: {_describe_params(params)})"
            )
            continue
        explicit.add(bound)
        collect = _list_elem(by_name[bound].annotation) not in (None,) and (
            pnodes[u].output_type != by_name[bound].annotation
        )
        assigned.setdefault(bound, []).append((u, collect))

    free = [p for p in params if p.name not in explicit]
    is_map = isinstance(node, MapNode)
    for u in implicit:
        up = pnodes[u]
        out = up.output_type
        target = _match(out, free, assigned, is_map)
        if target is None:
            if not params:
                continue  # a node without parameters only waits for its upstream
            problems.append(
                f"edge {up.label!r} -> {label!r}: {up.label!r} returns {type_name(out)}, "
                f"which fits no parameter of {label!r} ({_describe_params(params)}); bind it "
                f"with {label}.bind(param={up.label}) or make it ordering-only with "
                f"{label}.after({up.label})"
            )
            continue
        if isinstance(target, list):
            problems.append(
                f"edge {up.label!r} -> {label!r}: {up.label!r} returns {type_name(out)}, "
                f"which matches several parameters of {label!r}: "
                f"{', '.join(p.describe() for p in target)}; bind it explicitly with "
                f"{label}.bind({target[0].name}={up.label})"
            )
            continue
        param, collect = target
        assigned.setdefault(param.name, []).append((up.index, collect))

    bindings: list[tuple[int, str, bool]] = []
    for name, feeds in assigned.items():
        if len(feeds) > 1 and not all(c for _, c in feeds):
            ups = ", ".join(repr(pnodes[u].label) for u, _ in feeds)
            problems.append(
                f"node {label!r}: parameter {by_name[name].describe()} is fed by several "
                f"upstreams ({ups}); give it a list type to collect them, or bind each "
                "upstream to its own parameter"
            )
        bindings.extend((u, name, c) for u, c in feeds)
    if is_map and len(assigned) == 1:
        (feeds,) = assigned.values()
        mapped = _map_elem(pnodes[feeds[0][0]].output_type)
        if mapped is not None and mapped[0] == "dict":
            keys = typing.get_args(pnodes[feeds[0][0]].output_type)
            key_t = keys[0] if keys else Any
            out = pn.output_type
            pn.output_type = EMPTY if _is_loose(out) else _dict_of(key_t, out)
        elif not _is_loose(pn.output_type):
            pn.output_type = _list_of(pn.output_type)
    elif is_map and not _is_loose(pn.output_type):
        pn.output_type = _list_of(pn.output_type)
    pn.bindings = tuple(bindings)

    if edges:
        for p in params:
            if p.required and p.name not in assigned:
                ups = ", ".join(sorted({repr(pnodes[u].label) for u, _p, _o in edges}))
                problems.append(
                    f"node {label!r}: required parameter {p.describe()} is fed by nothing "
                    f"(upstreams: {ups}); add an edge, bind one, or give it a default"
                )
        pn.input_params = ()
    else:
        pn.input_params = tuple(p for p in params if p.name not in assigned)


def _match(
    out: Any, free: list[ParamInfo], assigned: dict[str, list[tuple[int, bool]]], is_map: bool
) -> tuple[ParamInfo, bool] | list[ParamInfo] | None:
    """Which free parameter takes a value of type ``out``: exact type, then list[out]
    (fan-in), then an unannotated side. Returns a list when ambiguous, None when none."""
    if is_map:
        if free and _map_elem(out) is not None:
            elem = _map_elem(out)
            want = _list_elem(free[0].annotation)
            if want in (None, EMPTY) or elem is None or _is_loose(elem[1]) or elem[1] == want:
                return (free[0], False)
        return None
    if not _is_loose(out):
        exact = [p for p in free if p.annotation == out]
        if len(exact) == 1:
            return (exact[0], False)
        if len(exact) > 1:
            return exact
        fan_in = [p for p in free if _list_elem(p.annotation) == out]
        if len(fan_in) == 1:
            return (fan_in[0], True)
        if len(fan_in) > 1:
            return fan_in
    loose = [p for p in free if _is_loose(p.annotation) or _is_loose(out)]
    unfed = [p for p in loose if p.name not in assigned]
    if len(unfed) == 1:
        return (unfed[0], False)
    if len(loose) == 1:
        return (loose[0], False)
    if len(unfed) > 1 and _is_loose(out):
        return unfed
    return None
