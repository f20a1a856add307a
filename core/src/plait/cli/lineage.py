"""``plait lineage``: which upstream node executions fed a node's output in a run."""

from __future__ import annotations

from pathlib import Path

import rich_click as click
from rich.table import Table
from rich.text import Text

from plait.cli.common import (
    State,
    echo_json,
    format_ms,
    format_when,
    json_option,
    make_console,
    pass_state,
    recorded_provenance_options,
    status_text,
    to_json,
)
from plait.cli.config import provenance_for
from plait.cli.loading import resolve_run
from plait.errors import BackendError, NodeNotFoundError
from plait.protocols import ProvenanceBackend
from plait.records import NodeRecord, RunRecord

__all__ = ["lineage"]


async def _lineage(
    prov: ProvenanceBackend, run_id: str, label: str
) -> tuple[RunRecord, NodeRecord, list[NodeRecord]]:
    query = getattr(prov, "lineage", None)
    if query is None:
        raise BackendError(
            f"the provenance backend {type(prov).__name__} has no lineage query "
            "(the 'sqlite' backend has one)"
        )
    await prov.open()
    try:
        run = await resolve_run(prov, run_id)
        nodes = {n.label: n for n in await prov.get_node_executions(run.run_id)}
        if label not in nodes:
            known = ", ".join(sorted(nodes)) or "none"
            raise NodeNotFoundError(f"run {run.run_id} has no node {label!r} (nodes: {known})")
        feeders: list[NodeRecord] = list(await query(run.run_id, label))
    finally:
        await prov.aclose()
    return run, nodes[label], feeders


@click.command()
@click.argument("run_id")
@click.argument("label")
@recorded_provenance_options
@json_option
@pass_state
def lineage(
    state: State,
    run_id: str,
    label: str,
    provenance: str | None,
    store: Path | None,
    as_json: bool,
) -> None:
    """The upstream executions whose outputs fed node LABEL in run RUN_ID, transitively,
    nearest first (the attempts that actually fed it, after restarts).

    RUN_ID may be a unique prefix of the id.
    """
    prov = provenance_for(state, {"provenance": provenance, "store": store})
    run, node, feeders = state.run(lambda: _lineage(prov, run_id, label))
    if as_json:
        echo_json(
            {"run_id": run.run_id, "node": to_json(node), "lineage": [to_json(n) for n in feeders]}
        )
        return
    console = make_console()
    console.print(
        Text.assemble(
            ("lineage of ", "bold"),
            (label, "bold"),
            f" (attempt {node.attempt}, ",
            status_text(node.status),
            f") in run {run.run_id}",
        )
    )
    if not feeders:
        console.print("  no upstream node fed it (a source node)")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NODE", "ATTEMPT", "STATUS", "FINISHED", "DURATION", "EXECUTOR"):
        table.add_column(column, no_wrap=True)
    for n in feeders:
        table.add_row(
            n.label,
            str(n.attempt),
            status_text(n.status),
            format_when(n.finished_at),
            format_ms(n.duration_ms),
            n.executor or "",
        )
    console.print(table)
