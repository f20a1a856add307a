"""``Dag``: the builder. Nodes, edges, ``>>``, validation.

A Dag is compiled into a :class:`~plait._plan.Plan` (arrays of nodes with integer successor
lists and parameter bindings, wired by type in :mod:`plait._wiring`) the first time it is
validated; the runner executes plans. The plan is rebuilt only when the Dag changes, so
validating before every run costs nothing. :mod:`plait.render` draws a Dag.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from plait import arguments
from plait._plan import EdgeKey, Plan, PlanNode, compile_plan
from plait.errors import (
    ArgumentError,
    ArgumentTypeError,
    DagValidationError,
    DuplicateNameError,
    SwitchKeyError,
)
from plait.factory import DagFactory, stand_in
from plait.introspect import EMPTY, CallableInfo, ParamInfo, describe, type_name
from plait.namespace import Namespace, NamespaceNode
from plait.run_inputs import source_inputs

if TYPE_CHECKING:
    from plait.runner import DagRunResult

# Plan and PlanNode are compiled in plait._plan; they are named here too for the runner.
__all__ = [
    "CallNode",
    "CompositeNode",
    "Dag",
    "DagNode",
    "Edge",
    "MapNode",
    "Plan",
    "PlanNode",
    "SwitchNode",
]

_NOT_IDENT = re.compile(r"\W")
_FUNCTION = types.FunctionType
_new = object.__new__


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

    def foreign_end_problems(self, dag: Dag) -> list[str]:
        """What validation reports about this edge in ``dag``: each end that is not one of
        ``dag``'s nodes (none for an edge between two of them)."""
        return [
            f"edge {self.upstream.label!r} -> {self.downstream.label!r}: node "
            f"{end.label!r} is not in DAG {dag.nsref!r} (unknown label)"
            for end in (self.upstream, self.downstream)
            if not dag._holds(end)
        ]


class DagNode:
    """A callable placed in a Dag under a unique ``label``.

    ``a >> b`` adds an edge and returns ``b``. ``b.bind(x=a)`` feeds ``a``'s output to
    parameter ``x`` of ``b`` explicitly; ``b.after(a)`` orders without passing a value.
    """

    kind = "function"

    #: ``target``: what the node runs: its namespace entry, or a plain function that the
    #: namespace registers on first look (:meth:`Namespace.defer`); None for a composite.
    #: ``options``: None for the defaults, else (executor, retries, retry_backoff,
    #: timeout). ``index``: its position in its Dag. ``_in``: the upstream of its first
    #: plain edge (to find the same edge added again). Read them, do not set them.
    __slots__ = ("_in", "dag", "index", "label", "options", "target")

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
        self.options = _node_options(label, executor, retries, retry_backoff, timeout)
        self.dag = dag
        self.label = label
        self.target: NamespaceNode | Callable[..., Any] | None = nsnode
        self.index = -1
        self._in: DagNode | None = None

    # ------------------------------------------------------------------ options
    @property
    def executor(self) -> str | None:
        options = self.options
        return None if options is None else options[0]

    @property
    def retries(self) -> int:
        options = self.options
        return 0 if options is None else options[1]

    @property
    def retry_backoff(self) -> float:
        options = self.options
        return 0.1 if options is None else options[2]

    @property
    def timeout(self) -> float | None:
        options = self.options
        return None if options is None else options[3]

    # ------------------------------------------------------------------ wiring sugar
    def __rshift__(self, other: DagNode | Sequence[DagNode]) -> Any:
        if isinstance(other, DagNode):
            self.dag.connect(self, other)
            return other
        if not isinstance(other, list | tuple | set | frozenset):
            raise ArgumentTypeError(
                f"{self.label!r} >> ...: edges connect DagNodes (or a list of them), "
                f"got {other!r:.60}"
            )
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
    def nsnode(self) -> NamespaceNode | None:
        """The node's namespace entry (None for a composite)."""
        entry = self.target
        if entry is None or type(entry) is NamespaceNode:
            return entry
        namespace = self.dag.namespace
        namespace.settle()  # it registers this node's function at its label
        return namespace.get(self.label)

    @property
    def info(self) -> CallableInfo:
        entry = self.target
        assert entry is not None
        if type(entry) is NamespaceNode:
            return entry.info
        return describe(entry)  # what its entry will read: the function, no local names

    @property
    def call(self) -> Callable[..., Any]:
        entry = self.target
        assert entry is not None
        return entry.call if type(entry) is NamespaceNode else entry

    @property
    def shape_key(self) -> tuple[int, int, int]:
        """The ids of what :attr:`info` reads (function, local names, call): nodes with one
        key have one signature."""
        entry = self.target
        assert entry is not None
        if type(entry) is NamespaceNode:
            return (id(entry.fn), id(entry.localns), id(entry.call))
        return (id(entry), id(None), id(entry))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


def _node_options(
    label: str, executor: Any, retries: Any, retry_backoff: Any, timeout: Any
) -> tuple[str | None, int, float, float | None] | None:
    """A node's options (None for the defaults); ArgumentError naming the node if wrong."""
    if (
        retries == 0
        and retry_backoff == 0.1
        and timeout is None
        and executor is None
        and type(retries) is int
        and type(retry_backoff) is float
    ):
        return None  # the common case, checked by the cheap test above
    where = f"node {label!r}"
    if executor is not None:
        arguments.instance(executor, str, name="executor", where=where)
    arguments.count(retries, name="retries", where=where, minimum=0)
    arguments.seconds(retry_backoff, name="retry_backoff", where=where, zero=True)
    if timeout is not None:
        arguments.seconds(timeout, name="timeout", where=where, zero=False)
    return (executor, retries, float(retry_backoff), None if timeout is None else float(timeout))


class CompositeNode(DagNode):
    """A node that runs a sub-DAG: a :class:`CallNode` or a :class:`MapNode`."""

    __slots__ = ("sub",)

    def __init__(self, dag: Dag, label: str, sub: Dag, **options: Any) -> None:
        super().__init__(dag, label, None, **options)
        self.sub = sub

    def sub_plan(self) -> Plan:
        """The sub-DAG's plan; it must have exactly one source and one sink."""
        return self.plan_of(self.sub)

    def plan_of(self, sub: Dag) -> Plan:
        """``sub``'s plan, checked as a sub-DAG of this node: exactly one source (taking
        one value) and one sink; a DagValidationError otherwise."""
        plan = sub.plan()
        problems = []
        what = f"{self.kind} node {self.label!r}: sub-DAG {sub.nsref!r}"
        if len(plan.sources) != 1:
            problems.append(
                f"{what} must have exactly one source node, it has {len(plan.sources)}: "
                f"{', '.join(plan.labels[i] for i in plan.sources) or 'none'}"
            )
        if len(plan.sinks) != 1:
            problems.append(
                f"{what} must have exactly one sink node, it has {len(plan.sinks)}: "
                f"{', '.join(plan.labels[i] for i in plan.sinks) or 'none'}"
            )
        if not problems:
            src = plan.node(plan.sources[0])
            if len(src.input_params) > 1 or any(p.required for p in src.input_params[1:]):
                problems.append(
                    f"{self.kind} node {self.label!r}: the source {src.label!r} of sub-DAG "
                    f"{sub.nsref!r} must take one value, it takes "
                    f"{', '.join(p.describe() for p in src.input_params)}"
                )
        if problems:
            raise DagValidationError(problems, dag=self.dag.nsref)
        return plan

    def sub_input(self) -> ParamInfo | None:
        """The parameter of the sub-DAG's source that takes this node's input, if any."""
        plan = self.sub_plan()
        params = plan.node(plan.sources[0]).input_params
        return params[0] if params else None

    def sub_output_type(self) -> Any:
        """The output type of the sub-DAG's sink (of each element's run, for a map)."""
        plan = self.sub_plan()
        return plan.specs[plan.sinks[0]].output_type


class CallNode(CompositeNode):
    """Runs a sub-DAG once, with the upstream output as its source's input."""

    kind = "call"
    __slots__ = ()


class MapNode(CompositeNode):
    """Runs a sub-DAG on each element of an upstream ``list`` or ``dict``, concurrently.

    The result has the upstream's shape: a list in the same order, or a dict with the same
    keys. ``max_concurrency`` bounds the elements in flight for this node. With ``flatten``
    the sub-DAG returns a list per element and the node returns one list: the elements'
    lists joined in order.
    """

    kind = "map"
    __slots__ = ("flatten", "max_concurrency")

    def __init__(
        self,
        dag: Dag,
        label: str,
        sub: Dag,
        *,
        max_concurrency: int | None = None,
        flatten: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(dag, label, sub, **options)
        if max_concurrency is not None:
            arguments.count(
                max_concurrency, name="max_concurrency", where=f"map node {label!r}", minimum=1
            )
        self.max_concurrency = max_concurrency
        self.flatten = flatten


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _is_loose(tp: Any) -> bool:
    return tp is EMPTY or tp is Any


class SwitchNode(CompositeNode):
    """Runs one of several sub-DAGs (its branches), chosen by a key for each value.

    The upstream gives a ``(key, value)`` pair, or a value from which ``select(value)``
    computes the key. The branch registered under the key runs as a sub-run (nsref
    ``"<parent>/<label>[<key>]"``) with the value as its source's input, and its output is
    the node's output; the other branches do not run. Every branch takes the same value type
    and returns the same type. ``sub`` is the first branch.
    """

    kind = "switch"
    __slots__ = ("branches", "select")

    def __init__(
        self,
        dag: Dag,
        label: str,
        branches: dict[Any, Dag],
        *,
        select: Callable[[Any], Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(dag, label, next(iter(branches.values())), **options)
        self.branches = branches
        self.select = select

    def route(self, given: Any) -> tuple[Any, Any, Dag]:
        """The key, the value and the branch for what the upstream gave.

        Raises :class:`~plait.errors.SwitchKeyError` naming the key and the known ones when
        no branch handles the key (or when ``given`` is not a ``(key, value)`` pair)."""
        if self.select is None:
            if not isinstance(given, tuple | list) or len(given) != 2:
                raise SwitchKeyError(
                    f"switch node {self.label!r} routes on (key, value) pairs, got "
                    f"{type(given).__qualname__}; pass select= to compute the key from the value"
                )
            key, value = given
        else:
            value = given
            key = self.select(value)
        try:
            return key, value, self.branches[key]
        except (KeyError, TypeError):
            raise SwitchKeyError(
                f"switch node {self.label!r}: no branch for key {key!r} "
                f"(branches: {', '.join(map(repr, self.branches))})"
            ) from None

    def branch_types(self) -> tuple[Any, Any]:
        """The value type every branch takes and the type every branch returns (unannotated
        branches fit any); a DagValidationError names each branch that disagrees."""
        problems: list[str] = []
        plans: dict[Any, Plan] = {}
        for key, sub in self.branches.items():
            try:
                plans[key] = self.plan_of(sub)
            except DagValidationError as exc:
                problems.extend(exc.problems)
        found: dict[str, tuple[Any, Any]] = {}  # "input"/"output" -> (type, first key)
        for key, plan in plans.items():
            params = plan.node(plan.sources[0]).input_params
            sides = {
                "input": params[0].annotation if params else EMPTY,
                "output": plan.specs[plan.sinks[0]].output_type,
            }
            for side, tp in sides.items():
                if _is_loose(tp):
                    continue
                seen = found.setdefault(side, (tp, key))
                if seen[0] != tp:
                    problems.append(
                        f"switch node {self.label!r}: branch {key!r} {side} type is "
                        f"{type_name(tp)}, but branch {seen[1]!r} {side} type is "
                        f"{type_name(seen[0])}"
                    )
        if problems:
            raise DagValidationError(problems, dag=self.dag.nsref)
        return found.get("input", (EMPTY,))[0], found.get("output", (EMPTY,))[0]

    def value_problems(self, value_type: Any, source: str) -> list[str]:
        """What is wrong with routing values of ``value_type`` (what ``source`` gives: a
        pair unless ``select`` is set) through the branches."""
        if _is_loose(value_type):
            return []
        if self.select is None:
            args = typing.get_args(value_type)
            if typing.get_origin(value_type) is not tuple or len(args) != 2:
                return [
                    f"switch node {self.label!r} routes on (key, value) pairs, but {source} "
                    f"gives {type_name(value_type)}; return tuple[K, V], or pass select="
                ]
            value_type = args[1]
            if _is_loose(value_type):
                return []
        problems = []
        for key, sub in self.branches.items():
            plan = self.plan_of(sub)
            params = plan.node(plan.sources[0]).input_params
            want = params[0].annotation if params else EMPTY
            if not _is_loose(want) and want != value_type:
                problems.append(
                    f"switch node {self.label!r}: branch {key!r} takes {type_name(want)}, "
                    f"but {source} gives values of type {type_name(value_type)}"
                )
        return problems


class Dag:
    """A directed acyclic graph of callables. Use ``with Dag() as dag:`` to validate on exit."""

    def __init__(self, nsref: str = "dag", namespace: Namespace | None = None) -> None:
        self.nsref = arguments.instance(nsref, str, name="nsref", where="Dag()")
        if namespace is not None:
            arguments.instance(namespace, Namespace, name="namespace", where="Dag()")
        self.namespace = namespace if namespace is not None else Namespace()
        #: the nodes by label, in the order they were added (a node's ``index`` is its
        #: position here)
        self._nodes: dict[str, DagNode] = {}
        #: the edges in the order they were added: the positions of their ends in
        #: ``_nodes`` (-1 for an end that is not one of this Dag's nodes); an edge that
        #: binds a parameter or only orders has (param, order_only) in ``_extra`` under its
        #: position, one naming a node from elsewhere its :class:`Edge`, which validation
        #: reports. Lists of shared ints hold no object per edge (issues 7 and 18).
        self._ups: list[int] = []
        self._downs: list[int] = []
        self._extra: dict[int, Edge | tuple[str | None, bool]] = {}
        #: keys (up, down, param, order_only) of the edges ``_in`` does not find: a second
        #: upstream's plain edge, and every bound or ordering-only one
        self._keys: set[tuple[int, int, str | None, bool]] = set()
        #: keys by labels of the edges naming a node from elsewhere
        self._foreign: set[EdgeKey] = set()
        self._plan: Plan | None = None

    # ------------------------------------------------------------------ building
    def node(
        self,
        target: Callable[..., Any] | NamespaceNode | Dag | DagFactory[Any],
        label: str | None = None,
        *,
        executor: str | None = None,
        retries: int = 0,
        retry_backoff: float = 0.1,
        timeout: float | None = None,
    ) -> DagNode:
        """Add a node. A plain callable is registered in the Dag's namespace; a Dag (or a
        ``@dag_factory``) becomes a :class:`CallNode`. ``executor`` picks the executor for a
        sync callable by name."""
        if type(target) is not _FUNCTION or "<locals>" in target.__qualname__:
            return self._node_of(target, label, executor, retries, retry_backoff, timeout)
        # a module-level function: the path of every node of a large DAG
        label = label or target.__name__
        if type(label) is not str or not label or label in self._nodes:
            self._check_label(label)  # raises
        options = None  # the defaults (the test _node_options makes first, without a call)
        if not (
            executor is None
            and timeout is None
            and retries == 0
            and retry_backoff == 0.1
            and type(retries) is int
            and type(retry_backoff) is float
        ):
            options = _node_options(label, executor, retries, retry_backoff, timeout)
        node = _new(DagNode)
        node.dag = self
        node.label = label
        node.target = target
        node.options = options
        node._in = None
        if not self.namespace.defer(node, self):  # registered on first look, or now:
            node.target = self.namespace.register_free(target, self._free_base(label))
        node.index = len(self._nodes)
        self._nodes[label] = node
        self._plan = None
        return node

    def _node_of(
        self,
        target: Callable[..., Any] | NamespaceNode | Dag | DagFactory[Any],
        label: str | None,
        executor: str | None,
        retries: int,
        retry_backoff: float,
        timeout: float | None,
    ) -> DagNode:
        """:meth:`node` for anything but a module-level function."""
        options: dict[str, Any] = {
            "executor": executor,
            "retries": retries,
            "retry_backoff": retry_backoff,
            "timeout": timeout,
        }
        if not isinstance(target, Dag):
            stand = stand_in(target)
            if stand is not None:
                target, label = stand[0], label or stand[1]
        if isinstance(target, Dag):
            label = label or target.nsref
            self._check_label(label)
            return self._add(CallNode(self, label, target, **options))
        if isinstance(target, NamespaceNode):
            nsnode = target
            label = label or target.name
        else:
            if not callable(target):
                raise ArgumentTypeError(
                    "dag.node(): target must be a callable, a NamespaceNode or a Dag, "
                    f"got {target!r:.60}"
                )
            label = label or getattr(target, "__name__", None) or type(target).__name__
            localns = None
            if "<locals>" in getattr(target, "__qualname__", ""):
                # a nested function: its annotations may name the caller's local types
                localns = dict(sys._getframe(2).f_locals)
            self._check_label(label)
            _node_options(label, executor, retries, retry_backoff, timeout)  # checked first
            nsnode = self.namespace.register_free(target, self._free_base(label), localns)
        self._check_label(label)
        return self._add(DagNode(self, label, nsnode, **options))

    def _add(self, node: DagNode) -> DagNode:
        node.index = len(self._nodes)
        self._nodes[node.label] = node
        self._plan = None
        return node

    def map(
        self,
        sub_dag: Dag | SwitchNode | DagFactory[Any],
        label: str | None = None,
        *,
        max_concurrency: int | None = None,
        flatten: bool = False,
        retries: int = 0,
        timeout: float | None = None,
    ) -> MapNode:
        """Add a :class:`MapNode` running ``sub_dag`` on each element of its upstream.

        ``sub_dag`` may be a switch node of this Dag that nothing is connected to
        (``dag.map(dag.switch({...}))``): it moves into a one-node sub-DAG, and each element
        is routed on its own. With ``flatten`` the sub-DAG returns a list per element and
        the map returns them joined into one list."""
        if isinstance(sub_dag, SwitchNode):
            sub_dag = self._detach(sub_dag)
        stand = None if isinstance(sub_dag, Dag) else stand_in(sub_dag)
        if stand is not None:
            sub_dag, label = stand[0], label or f"map_{stand[1]}"
        if not isinstance(sub_dag, Dag):
            raise ArgumentTypeError(
                f"dag.map(): sub_dag must be a Dag or a switch node, got {sub_dag!r:.60}"
            )
        label = label or f"map_{sub_dag.nsref}"
        self._check_label(label)
        node = MapNode(
            self,
            label,
            sub_dag,
            max_concurrency=max_concurrency,
            flatten=flatten,
            retries=retries,
            timeout=timeout,
        )
        self._add(node)
        return node

    def switch(
        self,
        branches: Mapping[Any, Dag | DagFactory[Any] | NamespaceNode | Callable[..., Any]],
        label: str = "switch",
        *,
        select: Callable[[Any], Any] | None = None,
        retries: int = 0,
        timeout: float | None = None,
    ) -> SwitchNode:
        """Add a :class:`SwitchNode`: ``branches`` maps each key to a sub-DAG (a Dag, a
        ``@dag_factory`` built with its defaults, or a namespace entry holding a Dag) or a
        callable (a one-node sub-DAG). The upstream gives ``(key, value)`` pairs, or values whose
        key ``select(value)`` computes."""
        if not isinstance(branches, Mapping) or not branches:
            raise TypeError(f"switch node {label!r}: branches must be a non-empty dict")
        if select is not None and not callable(select):
            raise TypeError(f"switch node {label!r}: select must be callable, got {select!r}")
        self._check_label(label)
        localns = dict(sys._getframe(1).f_locals)  # a branch's annotations may name them
        subs: dict[Any, Dag] = {}
        for key, target in branches.items():
            stand = None if isinstance(target, Dag) else stand_in(target)
            if stand is not None:  # a @dag_factory (built with its defaults), an entry's Dag
                target = stand[0]
            if isinstance(target, Dag):
                subs[key] = target
            elif isinstance(target, NamespaceNode) or callable(target):
                sub = Dag(f"{label}[{key}]")
                if not isinstance(target, NamespaceNode):
                    target = sub.namespace.register_free(
                        target, sub._free_base(_name_of(target)), localns
                    )
                sub.node(target, label=_name_of(target.fn))
                subs[key] = sub
            else:
                raise TypeError(
                    f"switch node {label!r}: branch {key!r} must be a Dag or a callable, "
                    f"got {target!r}"
                )
        node = SwitchNode(self, label, subs, select=select, retries=retries, timeout=timeout)
        self._add(node)
        return node

    def _detach(self, node: SwitchNode) -> Dag:
        """Move ``node`` (of this Dag, without edges) into a one-node Dag of its own."""
        label = node.label
        if not self._holds(node) or self._touches(node):
            raise ValueError(
                f"dag.map() takes a switch node of DAG {self.nsref!r} that nothing is "
                f"connected to; {label!r} is not one"
            )
        # a new dict: a plan compiled before finds its nodes by label in the old one
        self._nodes = {key: kept for key, kept in self._nodes.items() if kept is not node}
        gone = node.index
        for later in list(self._nodes.values())[gone:]:
            later.index -= 1
        self._ups = [i - 1 if i > gone else i for i in self._ups]
        self._downs = [i - 1 if i > gone else i for i in self._downs]
        self._keys = {(u - (u > gone), d - (d > gone), p, o) for u, d, p, o in self._keys}
        self._plan = None
        sub = Dag(label)
        node.dag = sub
        sub._add(node)
        return sub

    def _touches(self, node: DagNode) -> bool:
        """Does an edge name ``node``'s label at either end?"""
        i = node.index
        if i in self._ups or i in self._downs:
            return True
        return any(
            node.label in (e.upstream.label, e.downstream.label)
            for e in self._extra.values()
            if isinstance(e, Edge)
        )

    def _check_label(self, label: str) -> None:
        if not isinstance(label, str):
            raise ArgumentTypeError(f"node label must be a str, got {label!r:.60}")
        if not label:
            raise ArgumentError("node label must not be empty")
        if label in self._nodes:
            raise DuplicateNameError(
                f"DAG {self.nsref!r} already has a node labelled {label!r}; pass label=... "
                "to add the same callable twice"
            )

    @staticmethod
    def _free_base(label: str) -> str:
        """The namespace leaf a node registers under: its label made an identifier."""
        if type(label) is str and label.isascii() and label.isidentifier():
            base = label  # nothing to replace: the common case, without the regex
        else:
            base = _NOT_IDENT.sub("_", label)
            if not base.isidentifier():  # a leading digit, or a character no name may hold
                base = "".join(c if f"_{c}".isidentifier() else "_" for c in f"_{base}")
        return base

    def connect(
        self,
        upstream: DagNode,
        downstream: DagNode,
        *,
        param: str | None = None,
        order_only: bool = False,
    ) -> DagNode:
        """Add ``upstream -> downstream``; returns ``downstream``. Same edge twice is one."""
        if not (isinstance(upstream, DagNode) and isinstance(downstream, DagNode)):
            # callers are not always typed: say which end is not a node
            end = downstream if isinstance(upstream, DagNode) else upstream  # type: ignore[unreachable]
            raise ArgumentTypeError(f"edges connect DagNodes, got {end!r:.60}")
        nodes = self._nodes
        if not (
            upstream.dag is self
            and downstream.dag is self
            and nodes.get(upstream.label) is upstream
            and nodes.get(downstream.label) is downstream
        ):
            self._connect_foreign(upstream, downstream, param, order_only)
        elif param is None and not order_only and downstream._in is None and not self._foreign:
            # the first plain edge into a node (every edge of a chain): new, and no key kept
            downstream._in = upstream
            self._ups.append(upstream.index)
            self._downs.append(downstream.index)
            self._plan = None
        elif not self._has_edge(upstream, downstream, param, order_only):
            if param is None and not order_only and downstream._in is None:
                downstream._in = upstream
            else:
                self._keys.add((upstream.index, downstream.index, param, order_only))
                if param is not None or order_only:
                    self._extra[len(self._ups)] = (param, order_only)
            self._ups.append(upstream.index)
            self._downs.append(downstream.index)
            self._plan = None
        return downstream

    def _has_edge(
        self, upstream: DagNode, downstream: DagNode, param: str | None, order_only: bool
    ) -> bool:
        """Is there an edge ``upstream -> downstream`` (two of this Dag's nodes) already, or
        one between nodes from elsewhere with the same labels?"""
        if param is None and not order_only and downstream._in is upstream:
            return True
        if (upstream.index, downstream.index, param, order_only) in self._keys:
            return True
        foreign = self._foreign
        return bool(foreign) and (upstream.label, downstream.label, param, order_only) in foreign

    def _connect_foreign(
        self, upstream: DagNode, downstream: DagNode, param: str | None, order_only: bool
    ) -> None:
        """Keep an edge naming a node from elsewhere, for validation to report, unless an
        edge between nodes of the same labels is there already."""
        key = (upstream.label, downstream.label, param, order_only)
        if key in self._foreign:
            return
        nodes = self._nodes
        up, down = nodes.get(key[0]), nodes.get(key[1])
        if up is not None and down is not None and self._has_edge(up, down, param, order_only):
            return
        self._foreign.add(key)
        self._extra[len(self._ups)] = Edge(upstream, downstream, param, order_only)
        self._ups.append(-1)
        self._downs.append(-1)
        self._plan = None

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
        nodes = list(self._nodes.values())
        extra = self._extra
        edges = []
        for at, (u, d) in enumerate(zip(self._ups, self._downs, strict=True)):
            more = extra.get(at)
            if more is None:
                edges.append(Edge(nodes[u], nodes[d], None, False))
            elif isinstance(more, Edge):
                edges.append(more)
            else:
                edges.append(Edge(nodes[u], nodes[d], *more))
        return edges

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
            self._plan = compile_plan(self, self._nodes, self._ups, self._downs, self._extra)
        return self._plan

    # ------------------------------------------------------------------ running
    async def __call__(self, **kwargs: Any) -> DagRunResult:
        """Run once with null provenance; ``kwargs`` go to source parameters by name, or,
        given as ``label={...}``, to the source node of that label (see
        :mod:`plait.run_inputs`)."""
        from plait.runner import DagRunner

        plan = self.plan()
        inputs = source_inputs(self.nsref, [plan.node(i) for i in plan.sources], kwargs)
        return await DagRunner(self).run(source_inputs=inputs)

    # ------------------------------------------------------------------ rendering
    def to_mermaid(self, statuses: dict[str, str] | None = None) -> str:
        """A Mermaid flowchart; ``statuses`` (label -> status) colours the nodes
        (see `plait.render.to_mermaid`)."""
        from plait import render  # it imports this module

        return render.to_mermaid(self, statuses)

    def to_dot(self, statuses: dict[str, str] | None = None) -> str:
        """A Graphviz digraph; ``statuses`` (label -> status) colours the nodes
        (see `plait.render.to_dot`)."""
        from plait import render  # it imports this module

        return render.to_dot(self, statuses)

    def __repr__(self) -> str:
        return f"<Dag {self.nsref!r}: {len(self._nodes)} nodes, {len(self._ups)} edges>"
