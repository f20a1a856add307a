"""Wiring: which upstream output feeds which parameter of a node.

:class:`Wiring` wires the nodes of one plan in topological order (a node's upstreams are
wired first, so their output types are known). Each node goes through the same steps:

1. **parameter discovery** (:meth:`Wiring.discover`): the data parameters, the context
   parameter and the output type, as a :class:`Shape`. A callable's shape is worked out once
   per compile for all its nodes (a 100,000-node chain of one function has one); a
   composite's comes from its sub-DAG's source and sink.
2. **binding** (:meth:`Wiring.bind`), whose first branch is the single-edge fast path: one
   edge by type into a node whose shape already knows where a value of that type goes
   (:meth:`Shape.fit`, the type-matching rule below answered once per shape and type).
   Otherwise, in order: **explicit binds** (``b.bind(x=a)``), **type matching** of the
   other edges (:func:`match`: exact type, then **fan-in** into a ``list[T]`` parameter,
   then an unannotated side), **conflicts** (several upstreams on a parameter that does not
   collect them) and the **required checks** (every required parameter of a node with
   upstreams is fed; a source node's parameters are its run inputs).
3. **map output types** (:func:`map_output_type`): a map node returns ``list[T]``, or
   ``dict[K, T]`` over a dict, of its sub-DAG's ``T``.

Every problem found is appended to one list; the plan compiler raises them together.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from plait.errors import DagValidationError
from plait.introspect import EMPTY, CallableInfo, ParamInfo, type_name

if TYPE_CHECKING:
    from plait._plan import Adjacent, Columns, NodeSpec
    from plait.dag import CompositeNode, DagNode, MapNode, SwitchNode

__all__ = ["Incoming", "Shape", "Wiring", "map_output_type", "match"]

#: An edge into a node as wiring sees it: (upstream index, parameter it is bound to or
#: None, ordering only).
Incoming = tuple[int, str | None, bool]
#: A plan node's bindings: (upstream index, parameter name, collect into a list).
Bindings = tuple[tuple[int, str, bool], ...]
#: Parameter name -> what feeds it: (upstream index, collect into a list) per upstream.
Feeds = dict[str, list[tuple[int, bool]]]
#: Where a value goes: a parameter and whether it is collected into the parameter's list;
#: a list of parameters when several fit equally; None when none does.
Target = tuple[ParamInfo, bool] | list[ParamInfo] | None


# ---------------------------------------------------------------------- types
def _list_of(tp: Any) -> Any:
    """``list[tp]`` for a type known only at run time."""
    return list.__class_getitem__(tp)


def _dict_of(key: Any, value: Any) -> Any:
    return dict.__class_getitem__((key, value))


def _list_elem(tp: Any) -> Any:
    """``list[T]`` -> T; a bare ``list`` -> EMPTY; anything else -> None."""
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


def _describe_params(params: Sequence[ParamInfo]) -> str:
    return ", ".join(p.describe() for p in params) or "no parameters"


# ---------------------------------------------------------------------- step 1: shapes
class Shape:
    """What wiring needs to know about a node: its data parameters, its context parameter,
    its output type, and where it takes a lone upstream's value (:meth:`fit`)."""

    __slots__ = (
        "by_name",
        "composite",
        "context_param",
        "context_type",
        "fits",
        "hint_error",
        "inline",
        "is_async",
        "is_map",
        "output_type",
        "param_types",
        "params",
    )

    def __init__(
        self,
        params: tuple[ParamInfo, ...],
        output_type: Any,
        *,
        is_async: bool,
        inline: bool = False,
        is_map: bool = False,
    ) -> None:
        self.params = params
        #: parameter name -> annotation; read-only, shared by the plan nodes of this shape
        self.param_types: Mapping[str, Any] = MappingProxyType(
            {p.name: p.annotation for p in params}
        )
        self.by_name = {p.name: p for p in params}
        self.output_type = output_type
        self.is_async = is_async
        self.inline = inline
        self.is_map = is_map
        #: the composite node this is the shape of (None for a callable's)
        self.composite: CompositeNode | None = None
        self.context_param: str | None = None
        self.context_type: Any = None
        self.hint_error: str | None = None
        #: id(upstream output type) -> (that type, kept so the id stays its own; parameter;
        #: collect): where the only edge into a node puts a value of that type, when that
        #: leaves no required parameter unfed (parameter None otherwise)
        self.fits: dict[int, tuple[Any, str | None, bool]] = {}

    @classmethod
    def of_callable(cls, info: CallableInfo) -> Shape:
        shape = cls(
            info.data_params,
            info.return_type,
            is_async=info.is_async,
            inline=info.inline and not info.is_async,
        )
        shape.hint_error = info.hint_error
        ctx = info.context_param
        if ctx is not None:
            shape.context_param = ctx.name
            ann = ctx.annotation
            if typing.get_origin(ann) is typing.Annotated:
                ann = typing.get_args(ann)[0]
            shape.context_type = ann
        return shape

    @classmethod
    def of_composite(cls, node: CompositeNode) -> Shape:
        """A call node takes its sub-DAG's source parameter; a map node takes a list (or a
        dict) of them; a switch node takes a value (or a ``(key, value)`` pair) for its
        branches. Raises DagValidationError when a sub-DAG cannot be a composite's."""
        if node.kind == "switch":
            _value_type, output_type = cast("SwitchNode", node).branch_types()
            shape = cls((ParamInfo(name="value", annotation=EMPTY),), output_type, is_async=True)
            shape.composite = node
            return shape
        sub_in = node.sub_input()
        output_type = node.sub_output_type()
        is_map = node.kind == "map"
        if is_map and cast("MapNode", node).flatten and _list_elem(output_type) is None:
            raise DagValidationError(
                [
                    f"map node {node.label!r}: flatten=True needs a sub-DAG that returns a "
                    f"list, but sub-DAG {node.sub.nsref!r} returns {type_name(output_type)}"
                ]
            )
        if is_map:
            elem = sub_in.annotation if sub_in else EMPTY
            params: tuple[ParamInfo, ...] = (
                ParamInfo(
                    name=sub_in.name if sub_in else "items",
                    annotation=EMPTY if _is_loose(elem) else _list_of(elem),
                ),
            )
        else:
            params = (sub_in,) if sub_in else ()
        shape = cls(params, output_type, is_async=True, is_map=is_map)
        shape.composite = node
        return shape

    def fit(self, out: Any) -> tuple[Any, str | None, bool]:
        """Where a node of this shape takes ``out`` when nothing else feeds it: the rule of
        :func:`match`, answered once per type, when no required parameter is left unfed."""
        fit = self.fits.get(id(out))
        if fit is None:
            target = match(out, list(self.params), {}, is_map=self.is_map)
            fit = (out, None, False)
            if isinstance(target, tuple):
                param, collect = target
                if not any(p.required and p is not param for p in self.params):
                    fit = (out, param.name, collect)
            self.fits[id(out)] = fit
        return fit


# ---------------------------------------------------------------------- type matching
def match(out: Any, free: list[ParamInfo], feeds: Feeds, is_map: bool) -> Target:
    """Which free parameter takes a value of type ``out``: exact type, then ``list[out]``
    (fan-in), then an unannotated side; a map node's one parameter takes a list or dict."""
    if is_map:
        return _element_match(out, free)
    if not _is_loose(out):
        target = _exact_match(out, free)
        if target is None:
            target = _fan_in_match(out, free)
        if target is not None:
            return target
    return _loose_match(out, free, feeds)


def _one_or_all(found: list[ParamInfo], collect: bool) -> Target:
    if not found:
        return None
    return (found[0], collect) if len(found) == 1 else found


def _exact_match(out: Any, free: list[ParamInfo]) -> Target:
    return _one_or_all([p for p in free if p.annotation == out], collect=False)


def _fan_in_match(out: Any, free: list[ParamInfo]) -> Target:
    """A ``list[out]`` parameter collects the values of every upstream that feeds it."""
    return _one_or_all([p for p in free if _list_elem(p.annotation) == out], collect=True)


def _loose_match(out: Any, free: list[ParamInfo], feeds: Feeds) -> Target:
    """An unannotated parameter or an unannotated value: the one still unfed, or the only one."""
    loose = [p for p in free if _is_loose(p.annotation) or _is_loose(out)]
    unfed = [p for p in loose if p.name not in feeds]
    if len(unfed) == 1:
        return (unfed[0], False)
    if len(loose) == 1:
        return (loose[0], False)
    if len(unfed) > 1 and _is_loose(out):
        return unfed
    return None


def _element_match(out: Any, free: list[ParamInfo]) -> Target:
    """A map node's parameter takes a list or dict whose elements its sub-DAG accepts."""
    elem = _map_elem(out)
    if not free or elem is None:
        return None
    want = _list_elem(free[0].annotation)
    if want in (None, EMPTY) or _is_loose(elem[1]) or elem[1] == want:
        return (free[0], False)
    return None


# ---------------------------------------------------------------------- map output types
def map_output_type(elem_type: Any, over: Any) -> Any:
    """A map node over a ``dict[K, V]`` returns ``dict[K, T]``, otherwise ``list[T]``, where
    ``T`` is its sub-DAG's output type (unannotated stays unannotated); ``over`` is the type
    of what it maps over."""
    mapped = _map_elem(over)
    if mapped is not None and mapped[0] == "dict":
        if _is_loose(elem_type):
            return EMPTY
        keys = typing.get_args(over)
        return _dict_of(keys[0] if keys else Any, elem_type)
    return elem_type if _is_loose(elem_type) else _list_of(elem_type)


# ---------------------------------------------------------------------- the steps
class Wiring:
    """Wires the nodes of one plan, in topological order, into its columns (see
    :class:`plait._plan.Plan`); every problem goes to ``problems``."""

    __slots__ = ("columns", "labels", "nodes", "problems", "shapes", "specs")

    def __init__(
        self,
        nodes: Sequence[DagNode],
        labels: Sequence[str],
        columns: Columns,
        problems: list[str],
    ) -> None:
        self.nodes = nodes
        self.labels = labels
        self.columns = columns
        self.problems = problems
        #: a callable's shape by the ids of what :attr:`DagNode.info` reads (see
        #: :meth:`callable_shape`)
        self.shapes: dict[tuple[int, int, int], Shape] = {}
        #: the spec and shape of a callable node by its target (and options, unless they
        #: are the defaults): every node of one function with one set of options shares them
        self.specs: dict[Any, tuple[NodeSpec, Shape]] = {}

    def output_type(self, index: int) -> Any:
        """Node ``index``'s output type (EMPTY when it is unknown)."""
        spec = self.columns.specs[index]
        return EMPTY if spec is None else spec.output_type

    def wire(
        self,
        order: Sequence[int],
        upstreams: Sequence[Adjacent],
        incoming: Mapping[int, list[Incoming]],
    ) -> None:
        """Discover each node's parameters, bind its incoming edges (each node has its
        distinct ``upstreams``, and ``incoming`` edges when one is bound or ordering-only),
        type a map's output. The first branch is the single-edge fast path (see the module)."""
        nodes, specs_of = self.nodes, self.specs
        specs, bindings = self.columns.specs, self.columns.bindings
        for i in order:  # every node, unless there is a cycle (a problem: no plan then)
            node = nodes[i]
            options = node.options
            found = specs_of.get(node.target if options is None else (node.target, options))
            if found is None:
                found = self.discover(i)
                if found is None:
                    continue  # its parameters are unknown; the problem is reported
            spec, shape = found
            specs[i] = spec
            ups = upstreams[i]
            if type(ups) is int and i not in incoming:
                # one edge by type and a parameter for it: the answer is the same for every
                # node of this shape, and no problem is possible
                up = specs[ups]
                out = EMPTY if up is None else up.output_type
                fit = shape.fits.get(id(out)) or shape.fit(out)
                if fit[1] is not None and shape.composite is None:
                    bindings[i] = fit[1] if not fit[2] else ((ups, fit[1], True),)
                    continue
            edges = incoming.get(i) or [
                (u, None, False) for u in ((ups,) if isinstance(ups, int) else ups)
            ]
            bound = self.bind(i, shape, edges)
            if len(bound) == 1 and not bound[0][2] and ups == bound[0][0]:
                bindings[i] = bound[0][1]  # its one upstream feeds one parameter
            else:
                bindings[i] = bound
            if shape.composite is not None:
                self.finish_composite(i, shape, spec, bound)

    def finish_composite(self, i: int, shape: Shape, spec: NodeSpec, bound: Bindings) -> None:
        """A map node's output type follows what it maps over; a switch node's branches,
        or those of the switch a map runs per element, must take what they are given."""
        node = shape.composite
        assert node is not None
        if shape.is_map and not cast("MapNode", node).flatten:
            over = self.output_type(bound[0][0]) if bound else EMPTY
            spec.output_type = map_output_type(shape.output_type, over)
        if bound and node.kind in ("switch", "map"):
            self.check_switch(i, node, bound[0][0])

    def check_switch(self, i: int, node: CompositeNode, u: int) -> None:
        """A switch node's branches, or those of the switch a map runs per element, must
        take the values its upstream ``u`` gives."""
        out, up_label = self.output_type(u), self.labels[u]
        if node.kind == "switch":
            switch = cast("SwitchNode", node)
            self.problems.extend(switch.value_problems(out, f"upstream {up_label!r}"))
            return
        plan = node.sub_plan()
        source = plan.dag_nodes[plan.sources[0]]
        elem = _map_elem(out)
        if source.kind == "switch" and elem is not None:
            where = f"map node {self.labels[i]!r} over the elements of {up_label!r}"
            switch = cast("SwitchNode", source)
            self.problems.extend(switch.value_problems(elem[1], where))

    # -------------------------------------------------------------- step 1
    def discover(self, i: int) -> tuple[NodeSpec, Shape] | None:
        """The node's spec and shape; None (a problem reported) if they are unknown."""
        from plait._plan import NodeSpec  # it imports this module

        node = self.nodes[i]
        if node.kind == "function":
            shape = self.callable_shape(node)
            if shape.hint_error:
                self.problems.append(f"node {self.labels[i]!r}: {shape.hint_error}")
                return None
            spec = NodeSpec(node)
            spec.call = node.call
            spec.inline = shape.inline
            spec.fast_inline = shape.inline and spec.retries == 0 and spec.timeout is None
        else:
            composite = cast("CompositeNode", node)
            try:
                shape = Shape.of_composite(composite)
            except DagValidationError as exc:
                self.problems.extend(exc.problems)
                return None
            spec = NodeSpec(node)
        spec.params = shape.params
        spec.param_types = shape.param_types
        spec.output_type = shape.output_type
        spec.is_async = shape.is_async
        spec.context_param = shape.context_param
        spec.context_type = shape.context_type
        if node.kind != "function":
            return spec, shape  # a spec of its own: a map's output type is its own
        key = node.target if node.options is None else (node.target, node.options)
        self.specs[key] = found = (spec, shape)
        return found

    def callable_shape(self, node: DagNode) -> Shape:
        """The node's shape; nodes sharing a callable, its local names and its call share one.

        Those three are all :attr:`DagNode.info` reads, and the nodes keep them alive
        while compiling, so their ids are a sound key.
        """
        key = node.shape_key
        shape = self.shapes.get(key)
        if shape is None:
            shape = self.shapes[key] = Shape.of_callable(node.info)
        return shape

    # -------------------------------------------------------------- step 2
    def bind(self, i: int, shape: Shape, edges: list[Incoming]) -> Bindings:
        """The node's bindings (a source node's parameters are its run inputs)."""
        feeds = self.explicit_binds(i, shape, edges)
        self.match_by_type(i, shape, edges, feeds)
        bindings = self.check_conflicts(i, shape, feeds)
        if edges:
            self.check_required(i, shape, edges, feeds)
        return bindings

    def explicit_binds(self, i: int, shape: Shape, edges: list[Incoming]) -> Feeds:
        """Edges bound to a parameter by name (``b.bind(x=a)``), which must exist."""
        feeds: Feeds = {}
        label = self.labels[i]
        for u, bound, order_only in edges:
            if order_only or bound is None:
                continue
            param = shape.by_name.get(bound)
            if param is None:
                ctx_note = (
                    " (it is the DagContext parameter)" if bound == shape.context_param else ""
                )
                self.problems.append(
                    f"edge {self.labels[u]!r} -> {label!r}: node {label!r} has no "
                    f"parameter {bound!r}{ctx_note} (parameters: {_describe_params(shape.params)})"
                )
                continue
            out = self.output_type(u)
            collect = _list_elem(param.annotation) is not None and out != param.annotation
            feeds.setdefault(bound, []).append((u, collect))
        return feeds

    def match_by_type(self, i: int, shape: Shape, edges: list[Incoming], feeds: Feeds) -> None:
        """Each edge without a parameter feeds the parameter its upstream's type fits."""
        free = [p for p in shape.params if p.name not in feeds]
        for u, bound, order_only in edges:
            if order_only or bound is not None:
                continue
            out = self.output_type(u)
            target = match(out, free, feeds, shape.is_map)
            if isinstance(target, tuple):
                param, collect = target
                feeds.setdefault(param.name, []).append((u, collect))
            elif target:
                self.problems.append(_ambiguous(self.labels[u], out, self.labels[i], target))
            elif shape.params:  # a node without parameters only waits for its upstream
                self.problems.append(_no_fit(self.labels[u], out, self.labels[i], shape.params))

    def check_conflicts(self, i: int, shape: Shape, feeds: Feeds) -> Bindings:
        """The bindings; several upstreams may feed one parameter only if it collects them."""
        bindings: list[tuple[int, str, bool]] = []
        for name, fed in feeds.items():
            if len(fed) > 1 and not all(collect for _, collect in fed):
                ups = ", ".join(repr(self.labels[u]) for u, _ in fed)
                self.problems.append(
                    f"node {self.labels[i]!r}: parameter {shape.by_name[name].describe()} is fed "
                    f"by several upstreams ({ups}); give it a list type to collect them, or bind "
                    "each upstream to its own parameter"
                )
            bindings.extend((u, name, collect) for u, collect in fed)
        return tuple(bindings)

    def check_required(self, i: int, shape: Shape, edges: list[Incoming], feeds: Feeds) -> None:
        """A node with upstreams must have each required parameter fed."""
        for p in shape.params:
            if p.required and p.name not in feeds:
                ups = ", ".join(sorted({repr(self.labels[u]) for u, _p, _o in edges}))
                self.problems.append(
                    f"node {self.labels[i]!r}: required parameter {p.describe()} is fed by "
                    f"nothing (upstreams: {ups}); add an edge, bind one, or give it a default"
                )


def _no_fit(up: str, out: Any, label: str, params: Sequence[ParamInfo]) -> str:
    return (
        f"edge {up!r} -> {label!r}: {up!r} returns {type_name(out)}, "
        f"which fits no parameter of {label!r} ({_describe_params(params)}); bind it "
        f"with {label}.bind(param={up}) or make it ordering-only with "
        f"{label}.after({up})"
    )


def _ambiguous(up: str, out: Any, label: str, params: list[ParamInfo]) -> str:
    return (
        f"edge {up!r} -> {label!r}: {up!r} returns {type_name(out)}, "
        f"which matches several parameters of {label!r}: "
        f"{', '.join(p.describe() for p in params)}; bind it explicitly with "
        f"{label}.bind({params[0].name}={up})"
    )
