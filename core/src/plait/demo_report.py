"""How ``plait demo`` shows its outcome: the report, what the cache did, where to look next.

It sits beside :mod:`plait.demo` (the pipeline) so the command line only runs the demo and
hands its result here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from plait.demo import Report
from plait.records import CacheStats

__all__ = ["INSPECT_COMMANDS", "cache_delta", "print_report"]

#: What to try after the demo; ``{run_id}`` is filled in.
INSPECT_COMMANDS = (
    "plait runs",
    "plait show {run_id}",
    "plait show {run_id} --format mermaid --dag plait.demo:build_pipeline",
    "plait replay {run_id} --rerun enrich --dag plait.demo:build_pipeline",
    "plait graph plait.demo:build_pipeline",
    "plait cache stats",
)


def cache_delta(
    before: Mapping[str, CacheStats], after: Mapping[str, CacheStats]
) -> dict[str, int]:
    """Hits, misses and refreshes of the demo's cached callables between two snapshots of
    :func:`plait.demo.cache_counters`."""
    return {
        field: sum(getattr(after[k], field) - getattr(before[k], field) for k in after)
        for field in ("hits", "misses", "refreshes")
    }


def _report_table(report: Report) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rev = report.revenue
    table.add_row("orders scored", str(report.orders))
    table.add_row("accepted", str(report.accepted))
    review = ", ".join(report.to_review[:5])
    if len(report.to_review) > 5:
        review += f" and {len(report.to_review) - 5} more"
    table.add_row("to review", f"{len(report.to_review)}: {review}")
    table.add_row("revenue", f"{rev.total_eur:,.2f} EUR")
    table.add_row(
        "by segment", ", ".join(f"{k} {v:,.2f}" for k, v in sorted(rev.by_segment.items()))
    )
    table.add_row(
        "top customers", ", ".join(f"{name} ({eur:,.2f})" for name, eur in report.top_customers)
    )
    return table


def print_report(
    console: Console, run_id: str, report: Report | None, delta: Mapping[str, int]
) -> None:
    """The report (when the run produced one), the cache's hits and misses, and the
    commands that inspect run ``run_id``."""
    if report is not None:
        console.print()
        console.print(_report_table(report))
    hits, misses, refreshes = delta["hits"], delta["misses"], delta["refreshes"]
    console.print()
    line = f"cache: {hits} hits, {misses} misses, {refreshes} refreshes"
    if hits and not misses:
        console.print(f"{line}: the enrichment was served from the cache")
    else:
        console.print(f"{line}: run `plait demo` again to see cache hits")
    console.print()
    console.print(Text("inspect it:", style="bold"))
    for command in INSPECT_COMMANDS:
        console.print(f"  {command.format(run_id=run_id)}", soft_wrap=True)
    if importlib.util.find_spec("plait_ui") is not None:  # the web view is installed
        console.print("  plait ui          # the run drawn in a web view, on 127.0.0.1")
