"""A timeline of node start and end as plain data a template draws as SVG bars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from plait.records import NodeRecord

__all__ = ["Bar", "Timeline", "timeline"]

LABEL_WIDTH = 190
PLOT_WIDTH = 720
ROW = 16
#: Narrowest bar drawn, so an instant node is still visible.
MIN_BAR = 2.0


@attrs.frozen(kw_only=True)
class Bar:
    label: str
    status: str
    x: float
    y: int
    width: float
    duration_ms: float | None


@attrs.frozen(kw_only=True)
class Timeline:
    width: int
    height: int
    span_ms: float
    bars: tuple[Bar, ...]


def timeline(nodes: Sequence[NodeRecord], now: datetime) -> Timeline:
    """One bar per node that started, ordered by start; running nodes end at ``now``."""
    started = sorted((n for n in nodes if n.started_at is not None), key=_start)
    if not started:
        return Timeline(width=LABEL_WIDTH + PLOT_WIDTH, height=0, span_ms=0.0, bars=())
    t0 = _start(started[0])
    t1 = max(n.finished_at or max(now, _start(n)) for n in started)
    span = max((t1 - t0).total_seconds(), 1e-6)
    bars = []
    for row, node in enumerate(started):
        begin = (_start(node) - t0).total_seconds() / span * PLOT_WIDTH
        end = ((node.finished_at or now) - t0).total_seconds() / span * PLOT_WIDTH
        bars.append(
            Bar(
                label=node.label,
                status=str(node.status),
                x=round(LABEL_WIDTH + begin, 1),
                y=row * ROW,
                width=round(max(end - begin, MIN_BAR), 1),
                duration_ms=node.duration_ms,
            )
        )
    return Timeline(
        width=LABEL_WIDTH + PLOT_WIDTH,
        height=len(bars) * ROW,
        span_ms=span * 1000,
        bars=tuple(bars),
    )


def _start(node: NodeRecord) -> datetime:
    assert node.started_at is not None
    return node.started_at
