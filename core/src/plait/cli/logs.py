"""``plait logs``: the log lines a run's nodes emitted, as the provenance backend keeps them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import anyio
import rich_click as click
from rich.console import Console
from rich.text import Text

from plait.cli.common import (
    State,
    echo_json,
    json_option,
    make_console,
    pass_state,
    recorded_provenance_options,
    to_json,
)
from plait.cli.config import provenance_for
from plait.cli.loading import resolve_run
from plait.errors import NodeNotFoundError
from plait.protocols import ProvenanceBackend
from plait.records import LogRecord, RunRecord

__all__ = ["log_line", "logs", "print_log_lines"]

_LEVEL_STYLE = {
    logging.DEBUG: "bright_black",
    logging.INFO: "",
    logging.WARNING: "yellow",
    logging.ERROR: "red",
    logging.CRITICAL: "bold red",
}
_POLL_SECONDS = 0.5


def log_line(rec: LogRecord, *, label: bool = True) -> Text:
    """``12:00:01.234 INFO     load  pkg.load: message`` (local time)."""
    when = rec.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
    level = logging.getLevelName(rec.level)
    style = _LEVEL_STYLE.get(rec.level, "red" if rec.level > logging.ERROR else "")
    text = Text.assemble((when, "bright_black"), " ", (f"{level:<8}", style), " ")
    if label:
        text.append(rec.label, style="bold")
        text.append("  ")
    text.append(f"{rec.logger}: ", style="bright_black")
    text.append(rec.message, style=style if rec.level >= logging.WARNING else "")
    return text


def print_log_lines(
    console: Console, records: Sequence[LogRecord], *, label: bool = True, indent: str = ""
) -> None:
    for rec in records:
        console.print(Text(indent) + log_line(rec, label=label), soft_wrap=True)
        if rec.exc_text:
            for line in rec.exc_text.rstrip().splitlines():
                console.print(Text(f"{indent}    {line}", style="red"), soft_wrap=True)


async def _node_labels(prov: ProvenanceBackend, run: RunRecord) -> set[str]:
    return {n.label for n in await prov.get_node_executions(run.run_id)}


async def _read_logs(
    prov: ProvenanceBackend, run_id: str, node: str | None
) -> tuple[RunRecord, list[LogRecord]]:
    await prov.open()
    try:
        run = await resolve_run(prov, run_id)
        if node is not None and node not in await _node_labels(prov, run):
            raise NodeNotFoundError(f"run {run.run_id} has no node {node!r}")
        return run, await prov.get_logs(run.run_id, node)
    finally:
        await prov.aclose()


async def _follow(
    prov: ProvenanceBackend, run: RunRecord, node: str | None, console: Console
) -> None:
    """Print new lines until the run is no longer running, then the last ones."""
    seen: set[tuple[str, int]] = set()
    await prov.open()
    try:
        while True:
            current = await prov.get_run(run.run_id)
            fresh = [
                r for r in await prov.get_logs(run.run_id, node) if (r.label, r.seq) not in seen
            ]
            seen.update((r.label, r.seq) for r in fresh)
            print_log_lines(console, fresh, label=node is None)
            console.file.flush()
            if current.status.is_final:
                return
            await anyio.sleep(_POLL_SECONDS)
    finally:
        await prov.aclose()


@click.command()
@click.argument("run_id")
@click.option("--node", "node", default=None, metavar="LABEL", help="Only this node's lines.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new lines while the run is running (nodes' lines are stored when "
    "each attempt ends).",
)
@recorded_provenance_options
@json_option
@pass_state
def logs(
    state: State,
    run_id: str,
    node: str | None,
    follow: bool,
    provenance: str | None,
    store: Path | None,
    as_json: bool,
) -> None:
    """Print the log lines of run RUN_ID's nodes (INFO and above by default), oldest first.

    RUN_ID may be a unique prefix of the id.

    \b
    plait logs 4fb4
    plait logs 4fb4 --node load --follow
    """
    prov = provenance_for(state, {"provenance": provenance, "store": store})
    run, records = state.run(lambda: _read_logs(prov, run_id, node))
    if as_json:
        echo_json([to_json(r) for r in records])
        return
    console = make_console()
    if follow:
        state.run(lambda: _follow(prov, run, node, console))
        return
    if not records:
        where = f"node {node!r} of run" if node else "run"
        console.print(f"no log lines recorded for {where} {run.run_id}")
        return
    print_log_lines(console, records, label=node is None)
