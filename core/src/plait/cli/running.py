"""``plait run``, ``plait restart`` and ``plait replay``: a run with a progress display, its
outcome printed, its status as the exit code."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import click
from rich.pretty import pretty_repr
from rich.text import Text

from plait.cli.common import (
    State,
    echo_error,
    echo_json,
    exit_code,
    first_line,
    json_option,
    make_console,
    output_json,
    pass_state,
    provenance_options,
    run_header,
)
from plait.cli.config import dag_for, provenance_for
from plait.cli.inputs import parse_inputs
from plait.cli.loading import resolve_run
from plait.dag import Dag, Plan
from plait.progress import RunProgress
from plait.protocols import ProvenanceBackend
from plait.records import RunStatus
from plait.runner import DagRunner, DagRunResult

__all__ = ["replay", "restart", "run", "run_with_progress"]


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that runs a DAG."""
    fn = click.option(
        "--progress/--no-progress",
        default=None,
        help="Live progress display (default: when stdout is a terminal).",
    )(fn)
    fn = click.option(
        "--max-concurrency",
        type=click.IntRange(min=1),
        default=None,
        help="At most N nodes running at once.",
    )(fn)
    fn = click.option(
        "--executor",
        metavar="NAME",
        default=None,
        help="Executor for sync nodes (default: $PLAIT_EXECUTOR, else 'thread').",
    )(fn)
    return json_option(provenance_options(fn))


async def run_with_progress(
    runner: DagRunner,
    action: Callable[[DagRunner], Awaitable[DagRunResult]],
    *,
    total: int,
    done: int,
    show: bool | None,
    title: str,
) -> DagRunResult:
    """``action(runner)`` under a live progress display (``show=None``: on a terminal)."""
    with RunProgress(total=total, done=done, host=runner.host, enabled=show, title=title):
        return await action(runner)


def _print_result(result: DagRunResult, elapsed: float, dag_ref: str, prog: str) -> None:
    console = make_console()
    console.print(run_header(result.run_id, result.status, elapsed))
    for label, value in result.outputs.items():
        shown = pretty_repr(
            value,
            max_width=console.width - len(label) - 3,
            max_length=10,
            max_string=200,
            max_depth=4,
        )
        console.print(Text.assemble((f"{label} = ", "bold"), shown))
    if result.status is RunStatus.PAUSED:
        console.print(f"resume it: {prog} restart {result.run_id} --dag {dag_ref}")
    console.print(f"details: {prog} show {result.run_id}")


def _finish_run(
    state: State, result: DagRunResult, elapsed: float, *, as_json: bool, dag_ref: str
) -> int:
    if as_json:
        echo_json(
            {
                "run_id": result.run_id,
                "status": str(result.status),
                "outputs": {k: output_json(v, k) for k, v in result.outputs.items()},
                "failed_node": result.failed_node,
                "error": result.error,
                "error_type": result.error_type,
                "elapsed_s": round(elapsed, 3),
            }
        )
    else:
        prog = "plait" if state.config_path is None else f"plait --config {state.config_path}"
        _print_result(result, elapsed, dag_ref, prog)
    if result.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        where = f" at node {result.failed_node!r}" if result.failed_node else ""
        if state.debug and result.exception is not None:
            traceback.print_exception(result.exception, file=sys.stderr)
        echo_error(f"run {result.run_id} {result.status}{where}: {first_line(result.error or '')}")
    return exit_code(result.status)


def _runner(
    state: State,
    dag: Dag,
    options: dict[str, Any],
) -> DagRunner:
    return DagRunner(
        dag,
        provenance=provenance_for(state, options),
        executor=options["executor"],
        max_concurrency=options["max_concurrency"],
        host=state.host,
    )


def _execute(
    state: State,
    runner: DagRunner,
    action: Callable[[DagRunner], Awaitable[DagRunResult]],
    *,
    plan: Plan,
    done: int,
    title: str,
    dag_ref: str,
    options: dict[str, Any],
) -> None:
    """Run ``action`` with progress, print its outcome and exit with its status."""
    as_json = options["as_json"]
    started = time.monotonic()
    result = state.run(
        lambda: run_with_progress(
            runner,
            action,
            total=len(plan.nodes),
            done=done,
            show=False if as_json else options["progress"],
            title=title,
        )
    )
    elapsed = time.monotonic() - started
    code = _finish_run(state, result, elapsed, as_json=as_json, dag_ref=dag_ref)
    click.get_current_context().exit(code)


@click.command()
@click.argument("dag_ref", metavar="MODULE:DAG|NSREF")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="LABEL.PARAM=VALUE",
    help="A source input; repeat for more. VALUE is JSON when it parses, else a string.",
)
@click.option("--correlation-id", default=None, help="Free-form id stored with the run.")
@run_options
@pass_state
def run(
    state: State,
    /,
    dag_ref: str,
    inputs: tuple[str, ...],
    correlation_id: str | None,
    **options: Any,
) -> None:
    """Run the DAG MODULE:DAG (or NSREF, a DAG of the --config file) once and record it.

    \b
    plait run pipeline:dag --input fetch.day=2024-05-01 --input fetch.limit=10
    plait --config pipeline.toml run reports:daily --input fetch.city=Oslo
    """
    dag, nsref = dag_for(state, dag_ref)
    plan = dag.plan()
    source_inputs = parse_inputs(plan, inputs)
    runner = _runner(state, dag, options)
    _execute(
        state,
        runner,
        lambda r: r.run(source_inputs, correlation_id=correlation_id, dag_nsref=nsref),
        plan=plan,
        done=0,
        title="run",
        dag_ref=dag_ref,
        options=options,
    )


async def _prefilled(
    prov: ProvenanceBackend, plan: Plan, run_id: str, rerun: set[int] | None
) -> tuple[str, int]:
    """The full run id and how many nodes a restart (or a replay) will not execute."""
    await prov.open()
    try:
        run = await resolve_run(prov, run_id)
        records = await prov.get_node_executions(run.run_id)
    finally:
        await prov.aclose()
    done = 0
    for rec in records:
        node = plan.by_label.get(rec.label)
        if node is None or not (rec.status.has_output and rec.restorable):
            continue
        if rerun is None or node.index not in rerun:
            done += 1
    return run.run_id, done


@click.command()
@click.argument("run_id")
@click.option("--dag", "dag_ref", required=True, metavar="MODULE:DAG|NSREF", help="The run's DAG.")
@click.option("--force", is_flag=True, help="Take over a run that still looks alive.")
@run_options
@pass_state
def restart(state: State, /, run_id: str, dag_ref: str, force: bool, **options: Any) -> None:
    """Resume a paused, failed or cancelled run in place (completed nodes are kept)."""
    dag, _ = dag_for(state, dag_ref)
    plan = dag.plan()
    runner = _runner(state, dag, options)
    full_id, done = state.run(lambda: _prefilled(runner.provenance, plan, run_id, None))
    _execute(
        state,
        runner,
        lambda r: r.restart(full_id, force=force),
        plan=plan,
        done=done,
        title="restart",
        dag_ref=dag_ref,
        options=options,
    )


@click.command()
@click.argument("run_id")
@click.option(
    "--rerun",
    "rerun",
    multiple=True,
    required=True,
    metavar="LABEL",
    help="A node to execute again (with everything downstream of it); repeat for more.",
)
@click.option("--dag", "dag_ref", required=True, metavar="MODULE:DAG|NSREF", help="The run's DAG.")
@run_options
@pass_state
def replay(
    state: State, /, run_id: str, rerun: tuple[str, ...], dag_ref: str, **options: Any
) -> None:
    """A new run that re-executes the --rerun nodes and their descendants, copying the rest."""
    dag, _ = dag_for(state, dag_ref)
    plan = dag.plan()
    unknown = sorted(set(rerun) - set(plan.by_label))
    if unknown:
        raise click.BadParameter(
            f"DAG {dag.nsref!r} has no node {', '.join(map(repr, unknown))} "
            f"(nodes: {', '.join(plan.by_label)})",
            param_hint="--rerun",
        )
    runner = _runner(state, dag, options)
    full_id, done = state.run(
        lambda: _prefilled(runner.provenance, plan, run_id, plan.descendants(rerun))
    )
    _execute(
        state,
        runner,
        lambda r: r.replay(full_id, rerun_nodes=set(rerun)),
        plan=plan,
        done=done,
        title="replay",
        dag_ref=dag_ref,
        options=options,
    )
