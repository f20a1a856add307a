"""Drawing a Dag: Mermaid flowcharts and Graphviz digraphs, nodes coloured by status.

``dag.to_mermaid()`` and ``dag.to_dot()`` call these functions; the command line uses
:data:`STATUS_COLOURS` to colour the nodes of a recorded run the same way.

A composite node (a :class:`~plait.MapNode` or :class:`~plait.CallNode`) is drawn as a
subroutine box (Mermaid) or a 3-D box (DOT); a switch node as a hexagon (Mermaid) or a
diamond (DOT) labelled with its branch keys; an ordering-only edge is dashed; an edge bound
to a parameter is labelled with the parameter's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from plait.dag import CompositeNode, Dag, DagNode, Edge, SwitchNode
from plait.errors import DagValidationError

__all__ = ["STATUS_COLOURS", "to_dot", "to_mermaid"]

STATUS_COLOURS: Mapping[str, str] = MappingProxyType(
    {
        "pending": "#eeeeee",
        "running": "#fff3b0",
        "completed": "#b7e4c7",
        "failed": "#f4a3a3",
        "skipped": "#cfe2ff",
        "cancelled": "#d3d3d3",
        "paused": "#ffd8a8",
    }
)
"""Node status (a `NodeStatus` value) -> fill colour (`#rrggbb`)."""

_NO_STATUS_COLOUR = "#ffffff"


def to_mermaid(dag: Dag, statuses: Mapping[str, str] | None = None) -> str:
    """A Mermaid flowchart of ``dag``; ``statuses`` (label -> status) colours the nodes.

    Raises `DagValidationError` when an edge names a node of another Dag.
    """
    nodes, edges = _drawable(dag)
    ids = {label: f"n{i}" for i, label in enumerate(nodes)}
    lines = ["flowchart TD"]
    for label, node in nodes.items():
        text = _text(node).replace('"', "#quot;")
        if isinstance(node, SwitchNode):
            shape = f'{{{{"{text}"}}}}'
        elif isinstance(node, CompositeNode):
            shape = f'[["{text}"]]'
        else:
            shape = f'["{text}"]'
        lines.append(f"    {ids[label]}{shape}")
    for edge in edges:
        arrow = "-.->" if edge.order_only else "-->"
        tag = f"|{edge.param}|" if edge.param else ""
        lines.append(f"    {ids[edge.upstream.label]} {arrow}{tag} {ids[edge.downstream.label]}")
    if statuses:
        for status, colour in STATUS_COLOURS.items():
            lines.append(f"    classDef {status} fill:{colour}")
        for label, status in statuses.items():
            if label in ids:
                lines.append(f"    class {ids[label]} {status}")
    return "\n".join(lines) + "\n"


def to_dot(dag: Dag, statuses: Mapping[str, str] | None = None) -> str:
    """A Graphviz digraph of ``dag``; ``statuses`` (label -> status) colours the nodes.

    Raises `DagValidationError` when an edge names a node of another Dag.
    """
    nodes, edges = _drawable(dag)
    lines = [f"digraph {_quote(dag.nsref)} {{", "    rankdir=TB;"]
    for label, node in nodes.items():
        if isinstance(node, SwitchNode):
            attrs = ["shape=diamond", f"label={_quote(_text(node))}"]
        else:
            attrs = ["shape=box3d" if isinstance(node, CompositeNode) else "shape=box"]
        if statuses and label in statuses:
            colour = STATUS_COLOURS.get(statuses[label], _NO_STATUS_COLOUR)
            attrs.append(f'style=filled, fillcolor="{colour}"')
        lines.append(f"    {_quote(label)} [{', '.join(attrs)}];")
    for edge in edges:
        extra = []
        if edge.param:
            extra.append(f"label={_quote(edge.param)}")
        if edge.order_only:
            extra.append("style=dashed")
        tail = f" [{', '.join(extra)}]" if extra else ""
        lines.append(f"    {_quote(edge.upstream.label)} -> {_quote(edge.downstream.label)}{tail};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _text(node: DagNode) -> str:
    """What a node's box says: its label, and a switch's branch keys."""
    if isinstance(node, SwitchNode):
        return f"{node.label}: {' | '.join(str(key) for key in node.branches)}"
    return node.label


def _drawable(dag: Dag) -> tuple[dict[str, DagNode], list[Edge]]:
    """The nodes and edges to draw; a drawing needs both ends of every edge, so an edge to
    another Dag's node is refused with the problem validation reports for it."""
    edges = dag.edges
    problems = [problem for edge in edges for problem in edge.foreign_end_problems(dag)]
    if problems:
        raise DagValidationError(problems, dag=dag.nsref)
    return dag.nodes, edges


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
