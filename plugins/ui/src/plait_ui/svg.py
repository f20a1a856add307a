"""The DAG picture and the timeline as SVG markup, every value escaped.

Written as plain string building rather than template macros: a 1,000-node run page draws
thousands of elements, and this is several times faster than a Jinja2 macro per node. Every
piece of data goes through :func:`markupsafe.escape`; the result is :class:`Markup`, which
templates insert as is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from markupsafe import Markup, escape

from plait.records import NodeRecord
from plait_ui.layout import BOX_HEIGHT, BOX_WIDTH, Picture
from plait_ui.render import ms, node_url, short_label
from plait_ui.timeline import ROW, Timeline

__all__ = ["dag_svg", "timeline_svg"]

_ARROW = (
    '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
    'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" '
    'class="arrowhead"/></marker></defs>'
)


def _counts_text(counts: Counter[str] | None) -> str:
    if not counts:
        return ""
    return " · sub-runs: " + ", ".join(f"{k} {s}" for s, k in counts.items())


def _node(x: int, y: int, node: NodeRecord, counts: Counter[str] | None, current: bool) -> str:
    label = node.label
    kind = node.node_type
    title = f"{label} · {kind} · {node.status}"
    if node.duration_ms is not None:
        title += f" · {ms(node.duration_ms)}"
    title += _counts_text(counts)
    text = short_label(label, 20 if counts else 22)
    if counts:
        text += f" \u00d7{sum(counts.values())}"  # multiplication sign
    inner = ""
    if kind in ("map", "call"):
        inner = (
            f'<rect class="inner" x="{x + 3}" y="{y + 3}" width="{BOX_WIDTH - 6}" '
            f'height="{BOX_HEIGHT - 6}" rx="3"/>'
        )
    return (
        f'<a class="node st-{escape(node.status)} kind-{escape(kind)}'
        f'{" current" if current else ""}" href="{escape(node_url(node.run_id, label))}" '
        f'data-label="{escape(label)}" data-status="{escape(node.status)}">'
        f"<title>{escape(title)}</title>"
        f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="5"/>{inner}'
        f'<text x="{x + 10}" y="{y + BOX_HEIGHT // 2 + 4}">{escape(text)}</text></a>'
    )


def dag_svg(
    picture: Picture,
    nodes: Mapping[str, NodeRecord],
    counts: Mapping[str, Counter[str]],
    *,
    name: str,
    current: str | None = None,
) -> Markup:
    """The picture of ``nodes`` laid out as ``picture``; ``current`` is outlined."""
    w, h = picture.width, picture.height
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(name)}">',
        _ARROW,
        '<g class="wires">',
    ]
    parts.extend(
        f'<path class="wire" d="{escape(wire.path)}" data-up="{escape(wire.upstream)}" '
        f'data-down="{escape(wire.downstream)}" marker-end="url(#arrow)"/>'
        for wire in picture.wires
    )
    parts.append("</g>")
    parts.extend(
        _node(box.x, box.y, nodes[box.label], counts.get(box.label), box.label == current)
        for box in picture.boxes
    )
    parts.append("</svg>")
    return Markup("\n".join(parts))


def timeline_svg(timeline: Timeline, *, name: str) -> Markup:
    """One labelled bar per started node."""
    w, h = timeline.width, timeline.height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(name)}">'
    ]
    parts.extend(
        f'<g class="bar st-{escape(bar.status)}"><title>{escape(bar.label)} · '
        f"{escape(bar.status)} · {escape(ms(bar.duration_ms))}</title>"
        f'<text x="4" y="{bar.y + ROW - 4}">{escape(short_label(bar.label, 26))}</text>'
        f'<rect x="{bar.x}" y="{bar.y + 3}" width="{bar.width}" height="10" rx="2"/></g>'
        for bar in timeline.bars
    )
    parts.append("</svg>")
    return Markup("\n".join(parts))
