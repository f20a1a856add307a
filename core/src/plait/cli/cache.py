"""``plait cache stats|clear|prune|pushback``: inspect and clean the cache of ``@cached``
callables, and ask them to back off. With ``plait --config FILE``, the cache is the file's
``[storage.cache]`` unless ``--backend``/``--path`` name another."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import rich_click as click
from rich.console import Console
from rich.table import Table

from plait import cache as cache_mod
from plait.cli.common import State, echo_json, json_option, make_console, pass_state, to_json
from plait.cli.config import cache_backend_for

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
        backend = cache_backend_for(state)
        return op(*args, backend=backend, db_path=state.cache_path, host=state.host)
    finally:
        cache_mod.close_backends()


@cache.command("stats")
@json_option
@pass_state
def cache_stats(state: State, as_json: bool) -> None:
    """Hits, misses, refreshes and entries of every cached callable, and the pushbacks in
    force (JSON: {"callables": [...], "pushbacks": [{"prefix", "until"}]})."""
    stats = _cache_call(state, cache_mod.stats)
    pushbacks = _cache_call(state, cache_mod.pushbacks)
    if as_json:
        echo_json(
            {
                "callables": [to_json(s) for s in stats.values()],
                "pushbacks": [
                    {"prefix": prefix, "until": _when(until)} for prefix, until in pushbacks.items()
                ],
            }
        )
        return
    console = make_console()
    _print_pushbacks(console, pushbacks)
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


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _print_pushbacks(console: Console, pushbacks: dict[str, float]) -> None:
    if not pushbacks:
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("PUSHBACK PREFIX")
    table.add_column("REFRESHES SUPPRESSED UNTIL (UTC)")
    for prefix in sorted(pushbacks):
        table.add_row(prefix, _when(pushbacks[prefix]))
    console.print(table)
    console.print()


@cache.command("pushback")
@click.argument("prefix")
@click.argument("duration", required=False, default="1d", metavar="[DURATION]")
@click.option("--lift", is_flag=True, help="End the pushback of PREFIX now.")
@json_option
@pass_state
def cache_pushback(state: State, prefix: str, duration: str, lift: bool, as_json: bool) -> None:
    """Suppress refreshes of the cached callables under PREFIX (an nsref prefix such as
    'market', or 'module:function') for DURATION (30m, 6h, 2d; default 1d)."""
    seconds = 0.0 if lift else _seconds(duration)
    until = _cache_call(state, cache_mod.push_back, prefix, timedelta(seconds=seconds))
    if as_json:
        echo_json({"prefix": prefix, "until": _when(until), "lifted": lift})
    elif lift:
        click.echo(f"lifted the pushback of {prefix}")
    else:
        click.echo(f"refreshes under {prefix} suppressed until {_when(until)} (UTC)")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not a duration: write a number and a unit, e.g. 30m, 6h, 2d",
            param_hint="DURATION",
        )
    return float(match.group(1)) * _SECONDS[match.group(2)]


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
