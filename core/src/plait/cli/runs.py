"""``plait runs`` and ``plait show``: what the provenance store knows of past runs."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import attrs
import rich_click as click
from rich.console import Console
from rich.pretty import pretty_repr
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from plait.cli.common import (
    State,
    echo_json,
    first_line,
    format_ms,
    format_when,
    json_option,
    make_console,
    parse_since,
    pass_state,
    recorded_provenance_options,
    run_ms,
    status_text,
    to_json,
)
from plait.cli.config import dag_for, provenance_for
from plait.cli.loading import resolve_run
from plait.cli.logs import print_log_lines
from plait.inspection import inspect_run
from plait.protocols import ProvenanceBackend
from plait.records import (
    EdgeRecord,
    LogRecord,
    NodeRecord,
    NodeStatus,
    RunRecord,
    RunStatus,
    RunTree,
)
from plait.render import STATUS_COLOURS

__all__ = ["runs", "show"]

_LAST_LOG_LINES = 10


async def _list_runs(
    prov: ProvenanceBackend,
    *,
    status: str | None,
    dag_nsref: str | None,
    since: datetime | None,
    limit: int,
    include_sub_runs: bool,
) -> list[RunRecord]:
    """Newest first; sub-runs of map and call nodes only with ``include_sub_runs``."""
    await prov.open()
    try:
        out: list[RunRecord] = []
        before: datetime | None = None
        page = max(limit * 4, 200) if limit else None
        while True:
            batch = await prov.list_runs(
                status=status,
                dag_nsref=dag_nsref,
                started_after=since,
                started_before=before,
                limit=page,
            )
            out.extend(r for r in batch if include_sub_runs or r.parent_run_id is None)
            if limit and len(out) >= limit:
                return out[:limit]
            if page is None or len(batch) < page:
                return out
            before = batch[-1].started_at
    finally:
        await prov.aclose()


def _run_detail(r: RunRecord) -> str:
    detail = []
    if r.failed_node:
        detail.append(f"failed at {r.failed_node}")
    if r.replay_of:
        detail.append(f"replay of {r.replay_of[:12]}")
    if r.attempt > 1:
        detail.append(f"attempt {r.attempt}")
    if r.parent_run_id:
        detail.append(f"sub-run of {r.parent_run_id[:12]}")
    return ", ".join(detail)


@click.command()
@click.option(
    "--status",
    type=click.Choice([s.value for s in RunStatus]),
    default=None,
    help="Only runs with this status.",
)
@click.option(
    "--dag",
    "dag_ref",
    default=None,
    metavar="MODULE:DAG",
    help="Only runs of this DAG (imported to learn its name).",
)
@click.option(
    "--nsref",
    "dag_nsref",
    default=None,
    metavar="NAME",
    help="Only runs of the DAG of this name (the DAG column), without importing it.",
)
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only runs started since WHEN: a date/time (2024-05-01T12:00) or a duration "
    "back from now (30m, 12h, 7d, 2w).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="At most N runs (0: all).",
)
@click.option("--all", "include_sub_runs", is_flag=True, help="Include sub-runs of map nodes.")
@recorded_provenance_options
@json_option
@pass_state
def runs(
    state: State,
    status: str | None,
    dag_ref: str | None,
    dag_nsref: str | None,
    since: str | None,
    limit: int,
    include_sub_runs: bool,
    provenance: str | None,
    store: Path | None,
    as_json: bool,
) -> None:
    """List recorded runs, newest first."""
    if dag_ref is not None:
        dag, configured_nsref = dag_for(state, dag_ref)
        name = configured_nsref or dag.nsref
        if dag_nsref is not None and dag_nsref != name:
            raise click.BadParameter(
                f"--dag {dag_ref} is the DAG {name!r}, not {dag_nsref!r}", param_hint="--nsref"
            )
        dag_nsref = name
    prov = provenance_for(state, {"provenance": provenance, "store": store})
    records = state.run(
        lambda: _list_runs(
            prov,
            status=status,
            dag_nsref=dag_nsref,
            since=parse_since(since),
            limit=limit,
            include_sub_runs=include_sub_runs,
        )
    )
    if as_json:
        echo_json([to_json(r) for r in records])
        return
    console = make_console()
    if not records:
        filtered = status or dag_nsref or since
        console.print("no runs match" if filtered else "no runs recorded yet (try: plait demo)")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("RUN ID", "DAG", "STATUS", "STARTED", "DURATION", "DETAIL"):
        table.add_column(column, no_wrap=column in ("RUN ID", "STARTED", "DURATION"))
    for r in records:
        table.add_row(
            r.run_id,
            r.dag_nsref,
            status_text(r.status),
            format_when(r.started_at),
            format_ms(run_ms(r)),
            _run_detail(r),
        )
    console.print(table)


@attrs.frozen(kw_only=True)
class _Shown:
    """Everything ``plait show`` prints of a run."""

    run: RunRecord
    nodes: list[NodeRecord]
    edges: list[EdgeRecord]
    subs: list[RunRecord]
    #: the last log lines of each failed node
    failed_logs: dict[str, list[LogRecord]]


async def _load_run(prov: ProvenanceBackend, run_id: str) -> _Shown:
    await prov.open()
    try:
        run = await resolve_run(prov, run_id)
        nodes = await prov.get_node_executions(run.run_id)
        get_edges = getattr(prov, "get_edge_traversals", None)
        edges: list[EdgeRecord] = list(await get_edges(run.run_id)) if get_edges else []
        subs = await prov.list_runs(parent_run_id=run.run_id)
        failed_logs = {
            n.label: (await prov.get_logs(run.run_id, n.label))[-_LAST_LOG_LINES:]
            for n in nodes
            if n.status is NodeStatus.FAILED
        }
    finally:
        await prov.aclose()
    return _Shown(run=run, nodes=nodes, edges=edges, subs=subs, failed_logs=failed_logs)


def _element_counts(run: RunRecord, subs: list[RunRecord]) -> dict[str, Counter[str]]:
    """Per map/call node label: how many of its sub-runs ended in each status."""
    prefix = f"{run.dag_nsref}/"
    counts: dict[str, Counter[str]] = {}
    for sub in subs:
        if sub.dag_nsref.startswith(prefix):
            label = sub.dag_nsref[len(prefix) :].split("[", 1)[0]
            counts.setdefault(label, Counter())[str(sub.status)] += 1
    return counts


def _records_mermaid(nodes: list[NodeRecord], edges: list[EdgeRecord]) -> str:
    """A Mermaid flowchart of a run from its records (nodes and traversed edges)."""
    ids = {n.label: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart TD"]
    for n in nodes:
        text = n.label.replace('"', "#quot;")
        shape = f'[["{text}"]]' if n.node_type in ("map", "call", "switch") else f'["{text}"]'
        lines.append(f"    {ids[n.label]}{shape}")
    seen: set[tuple[str, str]] = set()
    for e in edges:
        pair = (e.upstream, e.downstream)
        if pair in seen or e.upstream not in ids or e.downstream not in ids:
            continue
        seen.add(pair)
        tag = f"|{e.parameter}|" if e.parameter else ""
        lines.append(f"    {ids[e.upstream]} -->{tag} {ids[e.downstream]}")
    for status, colour in STATUS_COLOURS.items():
        lines.append(f"    classDef {status} fill:{colour}")
    for n in nodes:
        lines.append(f"    class {ids[n.label]} {n.status}")
    return "\n".join(lines) + "\n"


def _print_run(run: RunRecord) -> None:
    console = make_console()
    head = Text.assemble(("run ", "bold"), (run.run_id, "bold"), "  ", status_text(run.status))
    console.print(head)
    facts = [
        ("dag", run.dag_nsref),
        ("started", format_when(run.started_at)),
        ("finished", format_when(run.finished_at)),
        ("duration", format_ms(run_ms(run))),
        ("attempt", str(run.attempt)),
        ("owner", f"{run.owner_host} pid {run.owner_pid}" if run.owner_host else ""),
        ("replay of", run.replay_of or ""),
        ("sub-run of", run.parent_run_id or ""),
        ("correlation id", run.correlation_id or ""),
        ("inputs", json.dumps(run.source_inputs) if run.source_inputs else ""),
    ]
    for name, value in facts:
        if value:
            console.print(Text.assemble((f"  {name:<15}", "bright_black"), value))
    if run.error_type:
        msg = first_line(run.error_message or "")
        where = f" at node {run.failed_node!r}" if run.failed_node else ""
        console.print(Text(f"  error{where}: {run.error_type}: {msg}", style="red"))


def _elements(c: Counter[str] | None) -> str:
    if not c:
        return ""
    rest = "".join(f", {v} {k}" for k, v in sorted(c.items()) if k != "completed")
    return f"{c.get('completed', 0)}/{sum(c.values())} completed{rest}"


def _node_table(nodes: list[NodeRecord], counts: dict[str, Counter[str]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    columns = ["NODE", "TYPE", "STATUS", "ATTEMPT", "EXECUTOR", "DURATION"]
    if counts:
        columns.append("ELEMENTS")
    columns.append("ERROR")
    for column in columns:
        table.add_column(column, no_wrap=column != "ERROR")
    for n in nodes:
        row: list[str | Text] = [
            n.label,
            n.node_type,
            status_text(n.status),
            str(n.attempt),
            n.executor or "",
            format_ms(n.duration_ms),
        ]
        if counts:
            row.append(_elements(counts.get(n.label)))
        error = ""
        if n.error_type:
            error = f"{n.error_type.rsplit('.', 1)[-1]}: {first_line(n.error_message or '')}"
        row.append(Text(error, style="red") if error else "")
        table.add_row(*row)
    return table


async def _load_tree(prov: ProvenanceBackend, run_id: str) -> RunTree:
    await prov.open()
    try:
        run = await resolve_run(prov, run_id)
        return await inspect_run(prov, run.run_id)
    finally:
        await prov.aclose()


def _node_line(n: NodeRecord) -> Text:
    text = Text.assemble((n.label, "bold"), "  ", status_text(n.status))
    facts = [n.node_type if n.node_type != "function" else "", format_ms(n.duration_ms)]
    if n.error_type:
        facts.append(f"{n.error_type.rsplit('.', 1)[-1]}: {first_line(n.error_message or '')}")
    for fact in facts:
        if fact:
            text.append(f"  {fact}", style="red" if fact is facts[-1] and n.error_type else "")
    return text


def _add_run(branch: Tree, tree: RunTree) -> None:
    """Each node of ``tree`` under ``branch``, and under each node the sub-runs it made."""
    for n in tree.nodes:
        node_branch = branch.add(_node_line(n))
        for child in tree.children_of(n.label):
            head = Text.assemble(
                (child.name, "cyan"),
                "  ",
                status_text(child.run.status),
                (f"  {child.via} sub-run {child.run.run_id}", "bright_black"),
            )
            _add_run(node_branch.add(head), child)


def _print_tree(tree: RunTree) -> None:
    run = tree.run
    head = Text.assemble(("run ", "bold"), (run.run_id, "bold"), "  ", run.dag_nsref, "  ")
    head.append_text(status_text(run.status))
    root = Tree(head)
    _add_run(root, tree)
    make_console().print(root)


def _print_outputs(console: Console, nodes: list[NodeRecord], edges: list[EdgeRecord]) -> None:
    """The outputs of the run's sinks (nodes no recorded edge leaves), summarised."""
    feeding = {e.upstream for e in edges}
    sinks = [n for n in nodes if n.status.has_output and n.label not in feeding]
    if not sinks:
        return
    console.print()
    console.print(Text("outputs", style="bold"))
    for n in sinks:
        shown = pretty_repr(
            n.output,
            max_width=max(console.width - len(n.label) - 5, 20),
            max_length=10,
            max_string=120,
            max_depth=3,
        )
        console.print(Text.assemble(f"  {n.label} = ", shown), soft_wrap=False)


def _print_failure(console: Console, node: NodeRecord, lines: list[LogRecord]) -> None:
    """A failed node's error, its traceback and its last log lines."""
    console.print()
    error = f"{node.error_type or 'error'}: {first_line(node.error_message or '')}"
    console.print(
        Text.assemble(("node ", "bold"), (node.label, "bold"), " failed: ", (error, "red"))
    )
    if node.traceback:
        console.print(Text(node.traceback.rstrip(), style="bright_black"), soft_wrap=True)
    if lines:
        console.print(Text(f"last log lines of {node.label}:", style="bold"))
        print_log_lines(console, lines, label=False, indent="  ")


@click.command()
@click.argument("run_id")
@click.option(
    "--tree",
    "as_tree",
    is_flag=True,
    help="The run as one tree: its nodes and, under each, the sub-runs it made (map "
    "elements, call nodes, switch branches, ctx.call calls), recursively.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "mermaid"]),
    default="table",
    show_default=True,
    help="A node table, or a Mermaid flowchart coloured by node status.",
)
@click.option(
    "--dag",
    "dag_ref",
    default=None,
    metavar="MODULE:DAG",
    help="Draw the whole DAG (with --format mermaid), not only what the run reached.",
)
@recorded_provenance_options
@json_option
@pass_state
def show(
    state: State,
    run_id: str,
    as_tree: bool,
    fmt: str,
    dag_ref: str | None,
    provenance: str | None,
    store: Path | None,
    as_json: bool,
) -> None:
    """Show one run: its status, every node's status, executor, duration and error, the
    outputs of its last nodes, and for a failed node its traceback and last log lines.

    RUN_ID may be a unique prefix of the id.
    """
    prov = provenance_for(state, {"provenance": provenance, "store": store})
    if as_tree:
        tree = state.run(lambda: _load_tree(prov, run_id))
        if as_json:
            echo_json(to_json(tree))
        else:
            _print_tree(tree)
        return
    shown = state.run(lambda: _load_run(prov, run_id))
    run, nodes, edges = shown.run, shown.nodes, shown.edges
    counts = _element_counts(run, shown.subs)
    if as_json:
        echo_json(
            {
                "run": to_json(run),
                "nodes": [to_json(n) for n in nodes],
                "sub_runs": {label: dict(c) for label, c in counts.items()},
                "failed_logs": {
                    label: [to_json(r) for r in lines] for label, lines in shown.failed_logs.items()
                },
            }
        )
        return
    if fmt == "mermaid":
        statuses = {n.label: str(n.status) for n in nodes}
        if dag_ref is not None:
            dag, _ = dag_for(state, dag_ref)
            click.echo(dag.to_mermaid(statuses=statuses), nl=False)
        else:
            click.echo(_records_mermaid(nodes, edges), nl=False)
        return
    _print_run(run)
    console = make_console()
    console.print()
    console.print(_node_table(nodes, counts))
    _print_outputs(console, nodes, edges)
    for node in nodes:
        if node.status is NodeStatus.FAILED:
            _print_failure(console, node, shown.failed_logs.get(node.label, []))
