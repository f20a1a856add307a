"""``plait cache stats|clear|prune``: inspect and clean the cache of ``@cached`` callables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import rich_click as click
from rich.table import Table

from plait import cache as cache_mod
from plait.cli.common import State, echo_json, json_option, make_console, pass_state, to_json

__all__ = ["cache"]

T = TypeVar("T")


@click.group(invoke_without_command=True)
@click.option(
    "--backend",
    default=None,
    metavar="NAME",
    help="Cache backend (default: $PLAIT_CACHE, else 'sqlite').",
)
@click.option(
    "--path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Cache file of the backend (default: the user's cache file).",
)
@click.pass_context
def cache(ctx: click.Context, backend: str | None, path: Path | None) -> None:
    """Inspect and clean the cache of @cached callables."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)
    state = ctx.ensure_object(State)
    state.cache_backend = backend
    state.cache_path = path


def _cache_call(state: State, op: Callable[..., T], *args: Any) -> T:
    try:
        return op(*args, backend=state.cache_backend, db_path=state.cache_path, host=state.host)
    finally:
        cache_mod.close_backends()


@cache.command("stats")
@json_option
@pass_state
def cache_stats(state: State, as_json: bool) -> None:
    """Hits, misses, refreshes and entries of every cached callable."""
    stats = _cache_call(state, cache_mod.stats)
    if as_json:
        echo_json([to_json(s) for s in stats.values()])
        return
    console = make_console()
    if not stats:
        console.print("the cache is empty")
        return
    table = Table(box=None, header_style="bold", pad_edge=False, show_footer=True)
    totals = [sum(getattr(s, f) for s in stats.values()) for f in ("hits", "misses", "refreshes")]
    entries = sum(s.entries for s in stats.values())
    table.add_column("CALLABLE", footer="total")
    for name, total in zip(("HITS", "MISSES", "REFRESHES"), totals, strict=True):
        table.add_column(name, justify="right", footer=str(total))
    table.add_column("ENTRIES", justify="right", footer=str(entries))
    for cid in sorted(stats):
        s = stats[cid]
        table.add_row(cid, str(s.hits), str(s.misses), str(s.refreshes), str(s.entries))
    console.print(table)


@cache.command("clear")
@click.argument("callable_id", required=False, metavar="[MODULE:CALLABLE]")
@json_option
@pass_state
def cache_clear(state: State, callable_id: str | None, as_json: bool) -> None:
    """Drop the entries and counters of one cached callable, or of all of them."""
    dropped = _cache_call(state, cache_mod.clear, callable_id)
    if as_json:
        echo_json({"cleared": dropped, "callable_id": callable_id})
    else:
        what = callable_id or "every callable"
        click.echo(f"cleared {dropped} entries of {what}")


@cache.command("prune")
@json_option
@pass_state
def cache_prune(state: State, as_json: bool) -> None:
    """Drop the entries older than their callable's max_ttl."""
    dropped = _cache_call(state, cache_mod.prune)
    if as_json:
        echo_json({"pruned": dropped})
    else:
        click.echo(f"pruned {dropped} expired entries")
