"""Jinja2 environment of the pages: autoescape on everything, and the filters they use."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2

from plait.records import NodeRecord, RunRecord, utcnow

__all__ = ["environment"]

#: Longest JSON text shown for one value; more is cut with a note saying how much.
MAX_VALUE_CHARS = 200_000


def when(dt: datetime | None) -> str:
    return "" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 1000:
        return f"{value:.1f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    return f"{value / 60_000:.1f} min"


def run_ms(run: RunRecord) -> float | None:
    """How long the run took, or has been going (a final run without an end: unknown)."""
    end = run.finished_at or (None if run.status.is_final else utcnow())
    return None if end is None else (end - run.started_at).total_seconds() * 1000


def as_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=repr, sort_keys=False)
    if len(text) > MAX_VALUE_CHARS:
        cut = len(text) - MAX_VALUE_CHARS
        text = f"{text[:MAX_VALUE_CHARS]}\n… ({cut:,} more characters not shown)"
    return text


def short_label(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def node_url(run_id: str, label: str) -> str:
    return f"/runs/{quote(run_id, safe='')}/nodes/{quote(label, safe='')}"


def run_url(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}"


def trigger_url(name: str) -> str:
    return f"/triggers/{quote(name, safe='')}"


def fire_url(name: str, fire_id: str) -> str:
    return f"{trigger_url(name)}/fires/{quote(fire_id, safe='')}"


def placement(node: NodeRecord) -> str:
    parts = [node.executor or "", node.host or "", f"pid {node.pid}" if node.pid else ""]
    if node.worker:
        parts.append(node.worker)
    return " · ".join(p for p in parts if p)


def first_line(text: str | None) -> str:
    return "" if not text else text.strip().splitlines()[0] if text.strip() else ""


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("plait_ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        ms=ms,
        run_ms=run_ms,
        as_json=as_json,
        short_label=short_label,
        placement=placement,
        first_line=first_line,
        q=lambda text: quote(str(text), safe=""),
    )
    env.globals.update(
        node_url=node_url, run_url=run_url, trigger_url=trigger_url, fire_url=fire_url
    )
    return env
