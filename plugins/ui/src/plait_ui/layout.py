"""A layered (Sugiyama-style) drawing of a DAG, computed on the server in O(nodes + edges).

Layers come from the longest path from a source, node order inside a layer from two
barycenter sweeps, coordinates from the layer and the order. The result is plain data that a
template turns into SVG: boxes with their corner, wires with their SVG path.

Drawn left to right. A layer with more than :data:`MAX_PER_COLUMN` nodes (a wide fan-out) is
wrapped into several columns so a 1,000-node DAG stays a picture a person can scroll. Nodes
with no edge at all in a DAG that has edges (nodes a failed run never reached) go into a
last layer of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

__all__ = ["BOX_HEIGHT", "BOX_WIDTH", "MAX_PER_COLUMN", "Box", "Picture", "Wire", "lay_out"]

BOX_WIDTH = 168
BOX_HEIGHT = 28
COLUMN_GAP = 64
ROW_GAP = 12
MARGIN = 8
MAX_PER_COLUMN = 24


@attrs.frozen(kw_only=True)
class Box:
    """Where one node is drawn: its top-left corner."""

    label: str
    x: int
    y: int


@attrs.frozen(kw_only=True)
class Wire:
    """One edge, as an SVG path from the right side of ``upstream`` to the left of
    ``downstream``."""

    upstream: str
    downstream: str
    path: str


@attrs.frozen(kw_only=True)
class Picture:
    width: int
    height: int
    boxes: tuple[Box, ...]
    wires: tuple[Wire, ...]


def _layers(n: int, succ: list[list[int]], pred: list[list[int]]) -> list[int]:
    """Longest path from a source (Kahn's order); nodes on a cycle go after the rest."""
    remaining = [len(p) for p in pred]
    layer = [0] * n
    ready = [i for i in range(n) if remaining[i] == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for nxt in succ[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                ready.append(nxt)
    if seen < n:  # records never form a cycle, but a drawing must not loop forever
        last = max(layer, default=0) + 1
        for i in range(n):
            if remaining[i]:
                layer[i] = last
    if any(succ) or any(pred):
        loose = max(layer) + 1
        for i in range(n):
            if not succ[i] and not pred[i]:
                layer[i] = loose
    return layer


def _sweep(columns: list[list[int]], neighbours: list[list[int]], pos: list[float]) -> None:
    """Reorder each layer by the mean position of its neighbours in earlier-swept layers."""
    for column in columns:
        keys = {}
        for rank, node in enumerate(column):
            around = neighbours[node]
            keys[node] = sum(pos[m] for m in around) / len(around) if around else rank
        column.sort(key=keys.__getitem__)
        for rank, node in enumerate(column):
            pos[node] = rank


def _wire(x1: int, y1: int, x2: int, y2: int) -> str:
    bend = max(24, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


def lay_out(labels: Sequence[str], edges: Iterable[tuple[str, str]]) -> Picture:
    """Place ``labels`` (in the order given) and draw ``edges`` between them.

    Edges naming an unknown label, self-edges and repeats are ignored.
    """
    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for up, down in edges:
        a, b = index.get(up), index.get(down)
        if a is None or b is None or a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        pairs.append((a, b))
        succ[a].append(b)
        pred[b].append(a)
    layer = _layers(n, succ, pred)
    columns: list[list[int]] = [[] for _ in range(max(layer, default=-1) + 1)]
    for i in range(n):
        columns[layer[i]].append(i)
    pos = [0.0] * n
    for column in columns:
        for rank, node in enumerate(column):
            pos[node] = rank
    _sweep(columns, pred, pos)
    _sweep(columns[::-1], succ, pos)
    _sweep(columns, pred, pos)
    return _place(labels, columns, pairs)


def _place(
    labels: Sequence[str], columns: list[list[int]], pairs: list[tuple[int, int]]
) -> Picture:
    step_y = BOX_HEIGHT + ROW_GAP
    tallest = max((min(len(c), MAX_PER_COLUMN) for c in columns), default=0)
    height = 2 * MARGIN + tallest * step_y - ROW_GAP
    xy: dict[int, tuple[int, int]] = {}
    x = MARGIN
    for column in columns:
        for start in range(0, len(column), MAX_PER_COLUMN):
            chunk = column[start : start + MAX_PER_COLUMN]
            top = MARGIN + (tallest - len(chunk)) * step_y // 2
            for row, node in enumerate(chunk):
                xy[node] = (x, top + row * step_y)
            x += BOX_WIDTH + COLUMN_GAP
    width = max(x - COLUMN_GAP + MARGIN, 2 * MARGIN)
    boxes = tuple(Box(label=labels[i], x=xy[i][0], y=xy[i][1]) for i in sorted(xy))
    half = BOX_HEIGHT // 2
    wires = tuple(
        Wire(
            upstream=labels[a],
            downstream=labels[b],
            path=_wire(xy[a][0] + BOX_WIDTH, xy[a][1] + half, xy[b][0], xy[b][1] + half),
        )
        for a, b in pairs
    )
    return Picture(width=width, height=max(height, 2 * MARGIN), boxes=boxes, wires=wires)
