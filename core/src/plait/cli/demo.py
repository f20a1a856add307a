"""``plait demo``: run the built-in pipeline (:mod:`plait.demo`) and show its report
(:mod:`plait.demo_report`)."""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import rich_click as click
from click import get_current_context
from rich.console import Console
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
from plait.cli.loading import open_provenance
from plait.cli.running import run_with_progress
from plait.progress import RunProgress
from plait.records import RunStatus
from plait.runner import DagRunner, DagRunResult

__all__ = ["demo"]


def _show_outcome(
    console: Console,
    result: DagRunResult,
    elapsed: float,
    delta: dict[str, int],
    *,
    as_json: bool,
) -> None:
    from plait import demo_report

    report = result.outputs.get("report")
    if as_json:
        echo_json(
            {
                "run_id": result.run_id,
                "status": str(result.status),
                "elapsed_s": round(elapsed, 3),
                "cache": delta,
                "report": output_json(report, "report") if report is not None else None,
                "error": result.error,
            }
        )
    else:
        console.print(run_header(result.run_id, result.status, elapsed))
        demo_report.print_report(console, result.run_id, report, delta)


@click.command()
@click.option("--orders", type=click.IntRange(1, 5000), default=40, show_default=True)
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day of orders to process (default: 2024-05-01).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress display (default: when stdout is a terminal).",
)
@provenance_options
@json_option
@pass_state
def demo(
    state: State,
    orders: int,
    day: datetime | None,
    progress: bool | None,
    provenance: str | None,
    store: Path | None,
    as_json: bool,
) -> None:
    """Run the built-in demo pipeline (no network; a few seconds).

    It scores a day of generated orders: fetch -> normalise -> a cached enrichment -> a
    map over the orders -> a report, recorded in the default provenance file and cached in
    the default cache file. Run it twice: the second run is served from the cache.
    """
    from plait import demo as demo_mod
    from plait import demo_report

    the_day: date = day.date() if day is not None else demo_mod.DEFAULT_DAY
    dag = demo_mod.build_pipeline()
    prov = open_provenance(state.host, provenance, store)
    runner = DagRunner(dag, provenance=prov, host=state.host)
    console = make_console()
    where = getattr(runner.provenance, "path", None)
    if not as_json:
        console.print(
            Text.assemble(
                ("plait demo", "bold"),
                f": scoring {orders} orders of {the_day.isoformat()}",
                f" (provenance: {where})" if where else "",
            )
        )
    before = demo_mod.cache_counters()
    started = time.monotonic()
    result = state.run(
        lambda: run_with_progress(
            runner,
            lambda r: r.run(demo_mod.demo_inputs(the_day, orders), correlation_id="plait-demo"),
            RunProgress(
                total=len(dag),
                host=runner.host,
                enabled=False if as_json else progress,
                events=not as_json,
                title="demo",
            ),
        )
    )
    elapsed = time.monotonic() - started
    delta = demo_report.cache_delta(before, demo_mod.cache_counters())
    _show_outcome(console, result, elapsed, delta, as_json=as_json)
    if result.status is not RunStatus.COMPLETED:
        echo_error(
            f"run {result.run_id} {result.status} at node {result.failed_node!r}: "
            f"{first_line(result.error or '')}"
        )
    get_current_context().exit(exit_code(result.status))
