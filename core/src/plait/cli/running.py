"""``plait run``, ``plait restart`` and ``plait replay``: a run with a progress display, its
outcome printed, its status as the exit code."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import rich_click as click
from click import get_current_context
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
    recorded_provenance_options,
    run_header,
)
from plait.cli.config import dag_for, provenance_for
from plait.cli.inputs import parse_inputs
from plait.cli.loading import resolve_run
from plait.dag import Dag, Plan
from plait.progress import RunProgress
from plait.protocols import ProvenanceBackend
from plait.records import RunRecord, RunStatus
from plait.runner import DagRunner, DagRunResult

__all__ = ["replay", "restart", "run", "run_with_progress"]


def run_options(fn: Callable[..., Any], *, existing: bool = False) -> Callable[..., Any]:
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
    fn = click.option(
        "--log-level",
        type=click.Choice([*_LOG_LEVELS], case_sensitive=False),
        default="info",
        show_default=True,
        help="The nodes' log lines kept in the provenance store: this level and above "
        "('none': none).",
    )(fn)
    return json_option(recorded_provenance_options(fn) if existing else provenance_options(fn))


def rerun_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`run_options` for ``restart`` and ``replay``: the store must exist."""
    return run_options(fn, existing=True)


_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "none": None,
}


async def run_with_progress(
    runner: DagRunner,
    action: Callable[[DagRunner], Awaitable[DagRunResult]],
    progress: RunProgress,
) -> DagRunResult:
    """``action(runner)`` with ``progress`` (registered on the runner's host) showing it."""
    with progress:
        return await action(runner)


def _print_result(result: DagRunResult, elapsed: float, dag_ref: str | None, prog: str) -> None:
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
    if result.status is not RunStatus.COMPLETED:
        console.print(f"resume it: {restart_command(result.run_id, dag_ref, prog)}")
    console.print(f"details: {prog} show {result.run_id}")


def restart_command(run_id: str, dag_ref: str | None, prog: str = "plait") -> str:
    """The command that resumes ``run_id`` (``--dag`` only when the run cannot tell)."""
    return f"{prog} restart {run_id}" + (f" --dag {dag_ref}" if dag_ref else "")


def program(state: State) -> str:
    """How the user invoked plait: ``plait``, with ``--config FILE`` when one was given."""
    return "plait" if state.config_path is None else f"plait --config {state.config_path}"


def _finish_run(
    state: State, result: DagRunResult, elapsed: float, *, as_json: bool, dag_ref: str | None
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
        _print_result(result, elapsed, dag_ref, program(state))
    if result.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        where = f" at node {result.failed_node!r}" if result.failed_node else ""
        if state.debug and result.exception is not None:
            traceback.print_exception(result.exception, file=sys.stderr)
        echo_error(f"run {result.run_id} {result.status}{where}: {first_line(result.error or '')}")
        if as_json:
            resume = restart_command(result.run_id, dag_ref, program(state))
            click.echo(f"resume it: {resume}", err=True)
    return exit_code(result.status)


def _runner(
    state: State, dag: Dag, options: dict[str, Any], prov: ProvenanceBackend | None = None
) -> DagRunner:
    return DagRunner(
        dag,
        provenance=prov or provenance_for(state, options),
        executor=options["executor"],
        max_concurrency=options["max_concurrency"],
        host=state.host,
        log_level=_LOG_LEVELS[options["log_level"].lower()],
    )


async def _find_run(prov: ProvenanceBackend, run_id: str) -> RunRecord:
    await prov.open()
    try:
        return await resolve_run(prov, run_id)
    finally:
        await prov.aclose()


def _recorded_run(
    state: State, run_id: str, dag_ref: str | None, options: dict[str, Any]
) -> tuple[ProvenanceBackend, RunRecord, Dag, str | None]:
    """The run ``run_id`` names, its DAG (from ``--dag``, else from where the run says it
    came from) and the ``--dag`` a restart command needs (``None``: the run knows)."""
    prov = provenance_for(state, options)
    old = state.run(lambda: _find_run(prov, run_id))
    ref = dag_ref or old.dag_ref
    if ref is None:
        raise click.UsageError(
            f"run {old.run_id} does not record where its DAG came from (it was not started "
            "by 'plait run'): give it with --dag MODULE:DAG"
        )
    dag, _ = dag_for(state, ref)
    return prov, old, dag, None if old.dag_ref else ref


def _execute(
    state: State,
    runner: DagRunner,
    action: Callable[[DagRunner], Awaitable[DagRunResult]],
    *,
    plan: Plan,
    done: int,
    title: str,
    dag_ref: str | None,
    options: dict[str, Any],
) -> None:
    """Run ``action`` with progress, print its outcome and exit with its status.
    ``dag_ref`` is the ``--dag`` a restart of the run needs (``None``: the run records it)."""
    as_json = options["as_json"]
    started = time.monotonic()
    progress = RunProgress(
        total=len(plan),
        done=done,
        host=runner.host,
        enabled=False if as_json else options["progress"],
        events=not as_json,
        title=title,
    )
    # with --json, stdout is the JSON alone: what nodes print goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            result = state.run(lambda: run_with_progress(runner, action, progress))
    except KeyboardInterrupt:
        if progress.run_id is not None:  # recorded as cancelled
            click.echo(
                f"run {progress.run_id} cancelled; resume it: "
                f"{restart_command(progress.run_id, dag_ref, program(state))}",
                err=True,
            )
        raise
    elapsed = time.monotonic() - started
    code = _finish_run(state, result, elapsed, as_json=as_json, dag_ref=dag_ref)
    get_current_context().exit(code)


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
        lambda r: r.run(
            source_inputs, correlation_id=correlation_id, dag_nsref=nsref, dag_ref=dag_ref
        ),
        plan=plan,
        done=0,
        title="run",
        dag_ref=None,  # the run records it
        options=options,
    )


async def _prefilled(
    prov: ProvenanceBackend, plan: Plan, run_id: str, rerun: set[int] | None
) -> int:
    """How many nodes a restart (or a replay) of ``run_id`` will not execute."""
    await prov.open()
    try:
        records = await prov.get_node_executions(run_id)
    finally:
        await prov.aclose()
    done = 0
    for rec in records:
        node = plan.by_label.get(rec.label)
        if node is None or not (rec.status.has_output and rec.restorable):
            continue
        if rerun is None or node.index not in rerun:
            done += 1
    return done


def _check_rerun(plan: Plan, rerun: tuple[str, ...]) -> None:
    unknown = sorted(set(rerun) - set(plan.by_label))
    if unknown:
        raise click.BadParameter(
            f"DAG {plan.dag.nsref!r} has no node {', '.join(map(repr, unknown))} "
            f"(nodes: {', '.join(plan.by_label)})",
            param_hint="--rerun",
        )


_DAG_OPTION = click.option(
    "--dag",
    "dag_ref",
    default=None,
    metavar="MODULE:DAG|NSREF",
    help="The run's DAG (default: where the run says it came from; runs started by "
    "'plait run' know).",
)


@click.command()
@click.argument("run_id")
@_DAG_OPTION
@click.option("--force", is_flag=True, help="Take over a run that still looks alive.")
@rerun_options
@pass_state
def restart(state: State, /, run_id: str, dag_ref: str | None, force: bool, **options: Any) -> None:
    """Resume a paused, failed or cancelled run in place (completed nodes are kept).

    RUN_ID may be a unique prefix of the id.
    """
    prov, old, dag, hint = _recorded_run(state, run_id, dag_ref, options)
    plan = dag.plan()
    runner = _runner(state, dag, options, prov)
    done = state.run(lambda: _prefilled(prov, plan, old.run_id, None))
    _execute(
        state,
        runner,
        lambda r: r.restart(old.run_id, force=force),
        plan=plan,
        done=done,
        title="restart",
        dag_ref=hint,
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
@_DAG_OPTION
@rerun_options
@pass_state
def replay(
    state: State, /, run_id: str, rerun: tuple[str, ...], dag_ref: str | None, **options: Any
) -> None:
    """A new run that re-executes the --rerun nodes and their descendants, copying the rest.

    RUN_ID may be a unique prefix of the id.
    """
    if dag_ref is not None:  # a bad --rerun is found before the run is looked up
        _check_rerun(dag_for(state, dag_ref)[0].plan(), rerun)
    prov, old, dag, hint = _recorded_run(state, run_id, dag_ref, options)
    plan = dag.plan()
    _check_rerun(plan, rerun)
    runner = _runner(state, dag, options, prov)
    done = state.run(lambda: _prefilled(prov, plan, old.run_id, plan.descendants(rerun)))
    _execute(
        state,
        runner,
        lambda r: r.replay(old.run_id, rerun_nodes=set(rerun)),
        plan=plan,
        done=done,
        title="replay",
        dag_ref=hint,
        options=options,
    )
