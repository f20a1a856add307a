"""What the pages show, read from any provenance backend.

Only :class:`plait.protocols.ProvenanceBackend` is required. Richer reads (edge traversals,
attempts, status history, lineage, logs) are used when the backend has them, the way
``plait show`` does, so a third-party store gets every page it can support.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from plait.errors import PlaitError
from plait.protocols import ProvenanceBackend
from plait.records import EdgeRecord, NodeRecord, RunRecord, RunStatus, StatusChange

__all__ = [
    "BadQueryError",
    "NodeView",
    "PageNotFoundError",
    "RunFilter",
    "RunView",
    "RunsPage",
    "decode_cursor",
    "encode_cursor",
    "load_node",
    "load_run",
    "parse_when",
    "runs_page",
]

#: Widest single read of the runs page when it skips sub-runs (it doubles up to this).
MAX_FETCH = 5_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class BadQueryError(PlaitError, ValueError):
    """A query parameter of a page that the page cannot use (names the parameter)."""


class PageNotFoundError(PlaitError, LookupError):
    """A page about something the store does not have (a node label, say)."""


@attrs.frozen(kw_only=True)
class RunFilter:
    """The filters of the runs page. ``sub_runs`` includes the sub-runs of map/call nodes."""

    status: RunStatus | None = None
    dag: str | None = None
    after: datetime | None = None
    before: datetime | None = None
    sub_runs: bool = False


@attrs.frozen(kw_only=True)
class RunsPage:
    runs: tuple[RunRecord, ...]
    next_cursor: str | None


def encode_cursor(run: RunRecord) -> str:
    """A keyset position: the run's start (epoch microseconds) and id."""
    return f"{(run.started_at - _EPOCH) // _MICRO}_{run.run_id}"


def decode_cursor(text: str) -> tuple[datetime, str]:
    micros, sep, run_id = text.partition("_")
    try:
        at = _EPOCH + int(micros) * _MICRO
    except (ValueError, OverflowError):
        at = None
    if not sep or not run_id or at is None:
        raise BadQueryError(f"cursor {text!r} is not a position in the runs list")
    return at, run_id


def parse_when(text: str, name: str) -> datetime:
    """An ISO date or date-time (naive means UTC) from the query parameter ``name``."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadQueryError(
            f"{name}={text!r} is not a date or date-time (2026-05-01 or 2026-05-01T12:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def runs_page(
    prov: ProvenanceBackend, filt: RunFilter, cursor: str | None, size: int
) -> RunsPage:
    """Up to ``size`` runs after ``cursor`` (newest first) and the cursor of the next page.

    Keyset paging over ``list_runs``: each query asks for runs started before the cursor's
    time (plus one microsecond, for runs started in the same microsecond) and drops those
    at or after the cursor, so a page costs the same at run 100,000 as at run 1.
    """
    at_key = decode_cursor(cursor) if cursor else None
    fetch = size + 1 if filt.sub_runs else 4 * size + 1
    out: list[RunRecord] = []
    while True:
        before = filt.before
        if at_key is not None:
            bound = at_key[0] + _MICRO
            before = bound if before is None else min(before, bound)
        batch = await prov.list_runs(
            status=filt.status,
            dag_nsref=filt.dag,
            started_after=filt.after,
            started_before=before,
            limit=fetch,
        )
        for run in batch:
            if at_key is not None and (run.started_at, run.run_id) >= at_key:
                continue
            if filt.sub_runs or run.parent_run_id is None:
                out.append(run)
        if len(out) > size:
            return RunsPage(runs=tuple(out[:size]), next_cursor=encode_cursor(out[size - 1]))
        if len(batch) < fetch:
            return RunsPage(runs=tuple(out), next_cursor=None)
        last = (batch[-1].started_at, batch[-1].run_id)
        if at_key is not None and last >= at_key:
            fetch *= 2  # the whole batch shares the cursor's microsecond: look further
        else:
            at_key = last
            if not filt.sub_runs:  # sub-runs crowd out top-level runs: read wider
                fetch = min(fetch * 2, MAX_FETCH)


@attrs.frozen(kw_only=True)
class RunView:
    """A run with its nodes, the edges its values travelled and its sub-runs."""

    run: RunRecord
    nodes: tuple[NodeRecord, ...]
    edges: tuple[EdgeRecord, ...]
    sub_runs: tuple[RunRecord, ...]

    def element_counts(self) -> dict[str, Counter[str]]:
        """Per map/call node label: how many of its sub-runs ended in each status."""
        prefix = f"{self.run.dag_nsref}/"
        counts: dict[str, Counter[str]] = {}
        for sub in self.sub_runs:
            if sub.dag_nsref.startswith(prefix):
                label = sub.dag_nsref[len(prefix) :].split("[", 1)[0]
                counts.setdefault(label, Counter())[str(sub.status)] += 1
        return counts


async def _edges(prov: ProvenanceBackend, run_id: str) -> tuple[EdgeRecord, ...]:
    get_edges = getattr(prov, "get_edge_traversals", None)
    return tuple(await get_edges(run_id)) if get_edges else ()


async def load_run(prov: ProvenanceBackend, run_id: str) -> RunView:
    run = await prov.get_run(run_id)
    return RunView(
        run=run,
        nodes=tuple(await prov.get_node_executions(run_id)),
        edges=await _edges(prov, run_id),
        sub_runs=tuple(await prov.list_runs(parent_run_id=run_id)),
    )


@attrs.frozen(kw_only=True)
class NodeView:
    """One node of a run, with everything the backend can tell about it.

    A tuple field is ``None`` when the backend cannot answer that question at all.
    """

    run: RunRecord
    node: NodeRecord
    attempts: tuple[NodeRecord, ...] | None
    history: tuple[StatusChange, ...] | None
    lineage: tuple[NodeRecord, ...] | None
    lineage_edges: tuple[tuple[str, str], ...]
    logs: tuple[Any, ...] | None
    elements: tuple[RunRecord, ...]


async def _optional(prov: ProvenanceBackend, method: str, *args: Any, **kw: Any) -> Any:
    fn = getattr(prov, method, None)
    return None if fn is None else tuple(await fn(*args, **kw))


def _lineage_edges(
    label: str, lineage: tuple[NodeRecord, ...] | None, edges: tuple[EdgeRecord, ...]
) -> tuple[tuple[str, str], ...]:
    if not lineage:
        return ()
    inside = {label, *(rec.label for rec in lineage)}
    pairs = dict.fromkeys(
        (e.upstream, e.downstream) for e in edges if e.upstream in inside and e.downstream in inside
    )
    return tuple(pairs)


async def load_node(prov: ProvenanceBackend, run_id: str, label: str) -> NodeView:
    run = await prov.get_run(run_id)
    node = next((n for n in await prov.get_node_executions(run_id) if n.label == label), None)
    if node is None:
        raise PageNotFoundError(f"run {run_id!r} has no node {label!r}")
    lineage = await _optional(prov, "lineage", run_id, label)
    element_prefix = f"{run.dag_nsref}/{label}"
    elements: tuple[RunRecord, ...] = ()
    if node.node_type in ("map", "call"):
        elements = tuple(
            sub
            for sub in reversed(await prov.list_runs(parent_run_id=run_id))
            if sub.dag_nsref == element_prefix or sub.dag_nsref.startswith(element_prefix + "[")
        )
    return NodeView(
        run=run,
        node=node,
        attempts=await _optional(prov, "get_node_attempts", run_id, label),
        history=await _optional(prov, "status_history", run_id, label),
        lineage=lineage,
        lineage_edges=_lineage_edges(label, lineage, await _edges(prov, run_id)),
        logs=await _optional(prov, "get_logs", run_id, label=label),
        elements=elements,
    )
